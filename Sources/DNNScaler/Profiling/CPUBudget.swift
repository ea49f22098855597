import Foundation

/// How many cores this process may use, and why: the CPUs its affinity mask allows (`taskset`,
/// a cpuset) and the CFS quota of its cgroup (a container's CPU limit), whichever is smaller,
/// rounded down, at least 1; or what the operator said (`serve --cores`). Also the cgroup's
/// memory limit, where one is set.
///
/// A container limited to 2 CPUs on a 64-CPU node sees 64 CPUs in its mask: sizing thread
/// pools from the mask would run 64 threads in a 2-core quota and be throttled every period.
public struct CPUBudget: Sendable, Equatable, Codable {
    /// Where the core count came from.
    public enum Source: String, Sendable, Codable {
        /// The CPU affinity mask.
        case affinity
        /// cgroup v2 `cpu.max`.
        case cgroupV2 = "cgroup-v2 cpu.max"
        /// cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`.
        case cgroupV1 = "cgroup-v1 cfs quota"
        /// `serve --cores`.
        case option = "--cores"
    }

    /// The cores the server sizes its work to.
    public var cores: Int
    /// Where ``cores`` came from.
    public var source: Source
    /// The CPUs the affinity mask allows, ascending (threads are only ever pinned within them).
    public var allowedCPUs: [Int]
    /// The cgroup CPU quota in cores (quota / period), if one is set.
    public var quotaCores: Double?
    /// The cgroup memory limit in bytes, if one is set.
    public var memoryLimitBytes: Int?

    /// Creates a budget.
    public init(
        cores: Int, source: Source, allowedCPUs: [Int], quotaCores: Double? = nil, memoryLimitBytes: Int? = nil
    ) {
        self.cores = cores
        self.source = source
        self.allowedCPUs = allowedCPUs
        self.quotaCores = quotaCores
        self.memoryLimitBytes = memoryLimitBytes
    }

    /// Reads the budget. `cgroupRoot` is where the cgroup file system is mounted and
    /// `selfCgroupFile` the process's cgroup membership (both injectable for tests); `override`
    /// (`--cores`) wins over both limits.
    public static func detect(
        allowedCPUs: [Int] = SystemInfo.allowedCPUs, cgroupRoot: String = "/sys/fs/cgroup",
        selfCgroupFile: String = "/proc/self/cgroup", override: Int? = nil
    ) -> CPUBudget {
        let limits = CgroupLimits.read(root: cgroupRoot, selfCgroupFile: selfCgroupFile)
        let allowed = allowedCPUs.isEmpty ? [0] : allowedCPUs
        var budget = CPUBudget(
            cores: allowed.count, source: .affinity, allowedCPUs: allowed, quotaCores: limits.quotaCores,
            memoryLimitBytes: limits.memoryLimitBytes)
        if let quota = limits.quotaCores, let version = limits.cpuSource {
            let quotaCores = max(1, Int(quota.rounded(.down)))
            if quotaCores < budget.cores {
                budget.cores = quotaCores
                budget.source = version
            }
        }
        if let override {
            budget.cores = override
            budget.source = .option
        }
        return budget
    }
}

/// The CPU quota and memory limit of this process's cgroup (v2 or v1), the strictest along its
/// path from the mount root.
struct CgroupLimits {
    var quotaCores: Double?
    var cpuSource: CPUBudget.Source?
    var memoryLimitBytes: Int?

    static func read(root: String, selfCgroupFile: String) -> CgroupLimits {
        let membership = (try? String(contentsOfFile: selfCgroupFile, encoding: .utf8)) ?? ""
        var limits = CgroupLimits()
        // cgroup v2: one line "0::/path"; the files sit in <root>/<path> and its ancestors.
        let unifiedPath = membership.split(separator: "\n").first { $0.hasPrefix("0::") }.map {
            String($0.dropFirst(3))
        }
        if FileManager.default.fileExists(atPath: "\(root)/cgroup.controllers") {
            for folder in folders(root: root, path: unifiedPath ?? "/") {
                if let quota = cpuMaxQuota(read("\(folder)/cpu.max")) {
                    limits.quotaCores = min(limits.quotaCores ?? .infinity, quota)
                    limits.cpuSource = .cgroupV2
                }
                if let text = read("\(folder)/memory.max"), let bytes = Int(text) {
                    limits.memoryLimitBytes = min(limits.memoryLimitBytes ?? .max, bytes)
                }
            }
            return limits
        }
        // cgroup v1: "N:cpu,cpuacct:/path" and "N:memory:/path"; each controller has its own mount.
        for line in membership.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let controllers = fields[1].split(separator: ",").map(String.init)
            let path = String(fields[2])
            if controllers.contains("cpu") {
                for mount in ["cpu,cpuacct", "cpuacct,cpu", "cpu"] where exists("\(root)/\(mount)") {
                    for folder in folders(root: "\(root)/\(mount)", path: path) {
                        guard let quota = read("\(folder)/cpu.cfs_quota_us").flatMap(Double.init),
                            let period = read("\(folder)/cpu.cfs_period_us").flatMap(Double.init), quota > 0,
                            period > 0
                        else { continue }
                        limits.quotaCores = min(limits.quotaCores ?? .infinity, quota / period)
                        limits.cpuSource = .cgroupV1
                    }
                    break
                }
            }
            if controllers.contains("memory"), exists("\(root)/memory") {
                for folder in folders(root: "\(root)/memory", path: path) {
                    // v1 reports "no limit" as a huge number near Int64.max rounded to pages.
                    if let bytes = read("\(folder)/memory.limit_in_bytes").flatMap(Int.init), bytes < (1 << 62) {
                        limits.memoryLimitBytes = min(limits.memoryLimitBytes ?? .max, bytes)
                    }
                }
            }
        }
        return limits
    }

    /// The quota in cores from a v2 `cpu.max` line ("max 100000" or "150000 100000").
    static func cpuMaxQuota(_ text: String?) -> Double? {
        guard let parts = text?.split(separator: " "), parts.count == 2, parts[0] != "max",
            let quota = Double(parts[0]), let period = Double(parts[1]), quota > 0, period > 0
        else { return nil }
        return quota / period
    }

    /// The mount root and each folder down `path` that exists under it. Inside a container the
    /// path printed in /proc/self/cgroup may be the host's while the mount shows only the
    /// container's own cgroup at its root, so the root is always read too.
    static func folders(root: String, path: String) -> [String] {
        var result = [root]
        var current = root
        for component in path.split(separator: "/") where component != ".." && component != "." {
            current += "/\(component)"
            guard exists(current) else { break }
            result.append(current)
        }
        return result
    }

    private static func read(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private static func exists(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: path)
    }
}
