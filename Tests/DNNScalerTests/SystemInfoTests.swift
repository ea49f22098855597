import Foundation
import Testing

@testable import DNNScaler

@Suite struct SystemInfoTests {
    /// The CPUs in /proc/self/status's `Cpus_allowed_list` (such as `0-3,8`), or nil off Linux.
    static func allowedCPUsFromProc() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) else {
            return nil
        }
        let list = line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces)
        var count = 0
        for range in list.split(separator: ",") {
            let bounds = range.split(separator: "-").compactMap { Int($0) }
            count += bounds.count == 2 ? bounds[1] - bounds[0] + 1 : 1
        }
        return count
    }

    @Test func coresAreTheCPUsTheAffinityMaskAllows() throws {
        let allowed = try #require(Self.allowedCPUsFromProc())
        #expect(SystemInfo.cpuCores == min(allowed, ProcessInfo.processInfo.activeProcessorCount))
        #expect(SystemInfo.deviceDescription.hasPrefix("cpu: \(SystemInfo.cpuCores) x "))
    }
}
