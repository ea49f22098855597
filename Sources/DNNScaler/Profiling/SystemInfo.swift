import COnnxRuntime
import Foundation

/// Facts about the machine the process runs on.
public enum SystemInfo {
    /// Cores this process may use: its CPU affinity mask (so `taskset -c 0,1` or a container's
    /// cpuset gives 2 on a 16-core host), or the active processor count where the mask is unknown.
    public static var cpuCores: Int {
        max(1, min(allowedCPUs.count, ProcessInfo.processInfo.activeProcessorCount))
    }

    /// The CPU model from /proc/cpuinfo, e.g. `AMD EPYC 9B14`; `unknown CPU` elsewhere.
    public static var cpuModel: String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown CPU" }
        for line in text.split(separator: "\n") where line.hasPrefix("model name") {
            if let colon = line.firstIndex(of: ":") {
                return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        return "unknown CPU"
    }

    /// `cpu: 2 x AMD EPYC 9B14`.
    public static var deviceDescription: String { "cpu: \(cpuCores) x \(cpuModel)" }

    /// Hands the C heap's free pages back to the system (glibc `malloc_trim`): large buffers freed
    /// by one thread stay in its arena otherwise, and resident memory creeps up over hours of 600 KB
    /// request bodies. Returns whether anything was released; `false` off glibc.
    @discardableResult
    public static func releaseFreeHeapMemory() -> Bool {
        dns_release_free_heap_memory() != 0
    }

    /// The process's resident memory in bytes (VmRSS), or 0 where /proc is not available.
    public static func residentMemoryBytes() -> Int {
        statusField("VmRSS:")
    }

    /// The process's peak resident memory in bytes (VmHWM), or 0 where /proc is not available.
    public static func peakResidentMemoryBytes() -> Int {
        statusField("VmHWM:")
    }

    private static func statusField(_ name: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(name) {
            let kilobytes = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first
            return (kilobytes.flatMap { Int($0) } ?? 0) * 1024
        }
        return 0
    }
}
