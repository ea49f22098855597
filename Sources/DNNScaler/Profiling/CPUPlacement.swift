import COnnxRuntime
import Foundation

/// Which CPUs compute and which do I/O: the model instances and their ONNX Runtime threads run on
/// ``compute``; the event loops that read requests and write responses on ``io``.
///
/// Unsplit (the default), every thread may run on every CPU the process may use, and the front
/// end's work preempts inference on whichever core it lands: on one core, squeezenet served at
/// 0.88 of its in-process throughput. Split, inference keeps its cores to itself (1.03 of in process
/// with the event loop on a core of its own), at the price of the cores given to I/O.
public struct CPUPlacement: Sendable, Equatable, CustomStringConvertible {
    /// CPUs for the model instances (their count is the cores the instances share).
    public var compute: [Int]
    /// CPUs for the event loops; empty when unsplit.
    public var io: [Int]
    /// The cores the instances share: the process's core budget (``CPUBudget``) less the I/O
    /// cores. Can be fewer than ``compute``'s CPUs when a cgroup quota is the limit.
    public var computeCores: Int

    /// Every CPU in `allowed` for everything: nothing pinned; the instances share `cores`
    /// (default: one per allowed CPU).
    public static func unsplit(_ allowed: [Int], cores: Int? = nil) -> CPUPlacement {
        CPUPlacement(compute: allowed, io: [], computeCores: max(1, cores ?? allowed.count))
    }

    /// The last `ioCores` of `allowed` (ascending CPU numbers) for I/O, the rest for compute;
    /// `cores` (default: one per allowed CPU) is the budget the I/O cores are counted against.
    /// `ioCores` 0 is ``unsplit(_:cores:)``; at least one core must stay for compute.
    public static func split(
        allowed: [Int], ioCores: Int, cores: Int? = nil
    ) throws(CPUPlacementError)
        -> CPUPlacement
    {
        let budget = cores ?? allowed.count
        guard ioCores >= 0, ioCores < min(budget, allowed.count) else {
            throw CPUPlacementError(
                message:
                    "io cores must be between 0 and \(max(0, min(budget, allowed.count) - 1)): this process may use \(budget) core(s) on CPU(s) \(Self.list(allowed)) and at least one must compute"
            )
        }
        guard ioCores > 0 else { return unsplit(allowed, cores: budget) }
        return CPUPlacement(
            compute: Array(allowed.dropLast(ioCores)), io: Array(allowed.suffix(ioCores)),
            computeCores: budget - ioCores)
    }

    /// Whether compute and I/O have CPUs of their own.
    public var isSplit: Bool { !io.isEmpty }

    /// The CPUs compute threads are pinned to, or `nil` when nothing is pinned.
    public var pinnedCompute: [Int]? { isSplit ? compute : nil }

    /// `compute 0-2 (3 cores), io 3` or `unsplit 0-3 (4 cores)`.
    public var description: String {
        isSplit
            ? "compute \(Self.list(compute)) (\(computeCores) cores), io \(Self.list(io))"
            : "unsplit \(Self.list(compute)) (\(computeCores) cores)"
    }

    /// CPU numbers as ranges: `0-3,6`.
    public static func list(_ cpus: [Int]) -> String {
        var parts: [String] = []
        var index = 0
        while index < cpus.count {
            var end = index
            while end + 1 < cpus.count, cpus[end + 1] == cpus[end] + 1 { end += 1 }
            parts.append(end == index ? "\(cpus[index])" : "\(cpus[index])-\(cpus[end])")
            index = end + 1
        }
        return parts.joined(separator: ",")
    }
}

/// An impossible CPU split.
public struct CPUPlacementError: Error, Sendable, CustomStringConvertible {
    /// What is wrong, for the user.
    public var message: String
    /// The message.
    public var description: String { message }
}

extension SystemInfo {
    /// The CPUs the calling thread may run on, ascending (its affinity mask: `taskset`, a cpuset),
    /// or `0..<activeProcessorCount` where the mask cannot be read.
    public static var allowedCPUs: [Int] {
        var cpus = [Int32](repeating: 0, count: 4096)
        let count = Int(dns_affinity_cpus(&cpus, Int32(cpus.count)))
        guard count > 0 else { return Array(0..<ProcessInfo.processInfo.activeProcessorCount) }
        return cpus.prefix(count).map(Int.init)
    }

    /// Confines the calling thread to `cpus`; threads it starts afterwards inherit them. Returns
    /// `false` (and changes nothing) where the system refuses, e.g. off Linux.
    @discardableResult
    public static func pinCurrentThread(to cpus: [Int]) -> Bool {
        let values = cpus.map(Int32.init)
        return dns_set_thread_affinity(values, Int32(values.count)) == 0
    }

    /// Runs `work` with the calling thread pinned to `cpus` (nothing pinned when `nil`), then gives
    /// the thread its CPUs back. Threads `work` starts (ONNX Runtime's intra-op pools) keep `cpus`.
    public static func withCurrentThread<Result, Failure: Error>(
        pinnedTo cpus: [Int]?, _ work: () throws(Failure) -> Result
    ) throws(Failure) -> Result {
        guard let cpus else { return try work() }
        let before = allowedCPUs
        pinCurrentThread(to: cpus)
        defer { pinCurrentThread(to: before) }
        return try work()
    }
}
