import Foundation
import Synchronization
import Testing

@testable import DNNScaler

@Suite struct SystemInfoTests {
    /// A thread's allowed CPUs as /proc lists them (`Cpus_allowed_list`, such as `0-3,8`),
    /// expanded; the calling thread's by default. `nil` off Linux.
    static func allowedCPUsFromProc(statusPath: String = "/proc/thread-self/status") -> [Int]? {
        guard let text = try? String(contentsOfFile: statusPath, encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
        else { return nil }
        var cpus: [Int] = []
        for range in line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces).split(
            separator: ",")
        {
            let bounds = range.split(separator: "-").compactMap { Int($0) }
            if let first = bounds.first { cpus += Array(first...(bounds.last ?? first)) }
        }
        return cpus
    }

    @Test func coresAreTheCPUsTheAffinityMaskAllows() throws {
        let allowed = try #require(Self.allowedCPUsFromProc()).count
        #expect(SystemInfo.cpuCores == min(allowed, ProcessInfo.processInfo.activeProcessorCount))
        #expect(SystemInfo.deviceDescription.hasPrefix("cpu: \(SystemInfo.cpuCores) x "))
    }
}

/// CPU placement: the split `serve --io-cores` makes, and pinning threads for real.
@Suite struct CPUPlacementTests {
    @Test func theLastCPUsGoToIOAndTheRestCompute() throws {
        let placement = try CPUPlacement.split(allowed: [0, 1, 2, 3, 6, 7], ioCores: 2)
        #expect(placement.compute == [0, 1, 2, 3])
        #expect(placement.io == [6, 7])
        #expect(placement.isSplit)
        #expect(placement.pinnedCompute == [0, 1, 2, 3])
        #expect(placement.description == "compute 0-3 (4 cores), io 6-7")
    }

    @Test func noIOCoresMeansNothingIsPinned() throws {
        let placement = try CPUPlacement.split(allowed: [0, 1, 2], ioCores: 0)
        #expect(placement == .unsplit([0, 1, 2]))
        #expect(!placement.isSplit)
        #expect(placement.pinnedCompute == nil)
        #expect(placement.description == "unsplit 0-2 (3 cores)")
    }

    @Test func atLeastOneCPUMustCompute() {
        for ioCores in [2, 3, -1] {
            #expect {
                try CPUPlacement.split(allowed: [4, 5], ioCores: ioCores)
            } throws: { error in
                "\(error)".contains("between 0 and 1") && "\(error)".contains("2 core(s) on CPU(s) 4-5")
            }
        }
    }

    @Test func cpuListsAreWrittenAsRanges() {
        #expect(CPUPlacement.list([0, 1, 2, 4, 6, 7]) == "0-2,4,6-7")
        #expect(CPUPlacement.list([3]) == "3")
        #expect(CPUPlacement.list([]) == "")
    }

    @Test func allowedCPUsAreTheAffinityMask() throws {
        let fromProc = try #require(SystemInfoTests.allowedCPUsFromProc())
        #expect(SystemInfo.allowedCPUs == fromProc)
    }

    /// Pinned inside, given back after; a thread started inside keeps the pinned set.
    @Test func aThreadPinnedForAWhileGetsItsCPUsBackAndItsChildrenKeepThePin() async throws {
        let allowed = SystemInfo.allowedCPUs
        let last = try #require(allowed.last)
        // A dedicated thread, so that no test-runner thread is pinned even for a moment.
        let (inside, child, after) = await withCheckedContinuation {
            (continuation: CheckedContinuation<([Int]?, [Int]?, [Int]?), Never>) in
            let thread = Thread {
                let child = Mutex<[Int]?>(nil)
                let inside = SystemInfo.withCurrentThread(pinnedTo: [last]) { () -> [Int]? in
                    let finished = DispatchSemaphore(value: 0)
                    Thread {
                        child.withLock { $0 = SystemInfoTests.allowedCPUsFromProc() }
                        finished.signal()
                    }.start()
                    finished.wait()
                    return SystemInfoTests.allowedCPUsFromProc()
                }
                continuation.resume(returning: (inside, child.withLock { $0 }, SystemInfoTests.allowedCPUsFromProc()))
            }
            thread.start()
        }
        #expect(inside == [last])
        #expect(child == [last])
        #expect(after == allowed)
    }
}
