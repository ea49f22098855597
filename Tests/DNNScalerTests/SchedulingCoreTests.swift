import Foundation
import Synchronization
import Testing

@testable import DNNScaler

/// The queue's rules are one type, ``SchedulingCore``: driven through the server's runtime (real
/// threads, a clock the test steps) and through the simulator (virtual time), one arrival trace
/// gets the same decision for every request.
@Suite struct SchedulingCoreTests {
    /// Batch times of the scripted backend and of the simulator's profile (ms): 10 for one sample,
    /// 4 more per extra sample.
    static func batchMs(_ samples: Int) -> Double { 10 + 4 * Double(samples - 1) }

    static let sloMs = 30.0
    static let batchLimit = 4

    static var profile: Profile {
        let points = [1, 2, 4, 8].map { batch in
            let ms = batchMs(batch)
            return ProfilePoint(
                instances: 1, threadsPerInstance: 1, batchSize: batch, throughput: Double(batch) * 1000 / ms,
                latencyMs: LatencySummary(mean: ms, p50: ms, p95: ms, p99: ms, atPercentile: ms), batches: 1,
                residentMemoryBytes: 0)
        }
        return Profile(
            model: "scripted", backend: "test", device: "test", createdAt: "", percentile: 99, durationSeconds: 1,
            points: points, sloMs: nil)
    }

    /// Poisson arrivals near saturation with bursts, so that requests are batched, refused and
    /// expired (ms from the start).
    static func trace(count: Int, seed: UInt64) -> [Double] {
        var generator = SplitMix64(seed: seed)
        var time = 5.0
        return (0..<count).map { index in
            // Alternating 1-s phases at 120 and 400 requests/s.
            let rate = (index / 60) % 2 == 0 ? 120.0 : 400.0
            let uniform = (Double(generator.next() >> 11) + 0.5) / Double(1 << 53)
            time += -log(uniform) * 1000 / rate
            return time
        }
    }

    @Test func theRuntimeAndTheSimulatorDecideAlikeOnOneTrace() async throws {
        let arrivals = Self.trace(count: 400, seed: 11)
        var simulator = Simulator(
            profile: Self.profile,
            policy: StaticPolicy(configuration: ServingConfiguration(batchLimit: Self.batchLimit, instances: 1)),
            settings: {
                var settings = SimulationSettings(
                    sloMs: Self.sloMs, arrivals: .trace(arrivalsMs: arrivals), requests: arrivals.count)
                settings.recordsOutcomes = true
                return settings
            }())
        let simulated = simulator.run().outcomes
        let served = try await ScriptedRun(arrivals: arrivals).run()

        #expect(simulated.count == arrivals.count)
        // The trace exercises every rule: batches of several, refusals and drops at the deadline.
        let batches = Dictionary(grouping: simulated.compactMap { if case .served(let b) = $0 { b } else { nil } }) {
            $0
        }
        #expect(batches.values.contains { $0.count > 1 })
        #expect(simulated.contains(.refused))
        #expect(simulated.contains(.expired))
        let differing = zip(simulated, served).enumerated().filter { $0.element.0 != $0.element.1 }
        #expect(
            differing.isEmpty,
            "\(differing.count) differ, first: \(differing.prefix(5).map { "#\($0.offset) sim \($0.element.0) runtime \($0.element.1)" })"
        )
    }
}

/// A clock the test sets.
final class SteppedClock: RuntimeClock, @unchecked Sendable {
    private let origin = ContinuousClock.now
    private let offsetMs = Mutex(0.0)
    var now: ContinuousClock.Instant { origin.advanced(by: .microseconds(Int64(offsetMs.withLock { $0 } * 1000))) }
    func set(ms: Double) { offsetMs.withLock { $0 = ms } }
}

/// `y = x`, one batch at a time, each held until the test lets it finish; records which request
/// (the value of x) ran in which batch.
final class GatedBackend: InferenceBackend, @unchecked Sendable {
    private struct State {
        var armed = false
        var running: [Int]?
        var batches: [[Int]] = []
        var released = 0
    }
    private let state = Mutex(State())

    var metadata: ModelMetadata {
        ModelMetadata(
            name: "gated", platform: "test", inputs: [TensorSpec(name: "x", dataType: .fp32, shape: [-1, 1])],
            outputs: [TensorSpec(name: "y", dataType: .fp32, shape: [-1, 1])])
    }

    func makeInstance(threads: Int) throws(BackendError) -> any ModelInstance { Instance(backend: self) }

    /// From now on every batch waits for ``release()``.
    func arm() { state.withLock { $0.armed = true } }
    /// The batch running now (request indices), if any.
    var running: [Int]? { state.withLock { $0.running } }
    /// Batches finished.
    var finished: Int { state.withLock { $0.batches.count - ($0.running == nil ? 0 : 1) } }
    /// The batches started, in order (request indices).
    var batches: [[Int]] { state.withLock { $0.batches } }
    /// Lets the running batch finish.
    func release() { state.withLock { $0.released += 1 } }

    final class Instance: ModelInstance, @unchecked Sendable {
        let backend: GatedBackend
        let threads = 1
        init(backend: GatedBackend) { self.backend = backend }

        func run(_ inputs: [String: Tensor], outputNames: [String]?) throws(BackendError) -> [String: Tensor] {
            guard let x = inputs["x"] else { throw .invalidArgument("no input x") }
            let indices = ((try? x.values(as: Float.self)) ?? []).map { Int($0) }
            let ticket: Int? = backend.state.withLock { state in
                guard state.armed else { return nil }
                state.running = indices
                state.batches.append(indices)
                return state.batches.count
            }
            if let ticket {
                while backend.state.withLock({ $0.released < ticket }) { Thread.sleep(forTimeInterval: 0.0002) }
                backend.state.withLock { $0.running = nil }
            }
            return ["y": x]
        }
    }
}

/// What the runtime answered each request of a scripted run.
final class Outcomes: Sendable {
    private let outcomes: Mutex<[RequestOutcome?]>
    init(count: Int) { outcomes = Mutex(Array(repeating: nil, count: count)) }
    func set(_ index: Int, _ outcome: RequestOutcome) { outcomes.withLock { $0[index] = outcome } }
    /// Every answer (a request never answered counts as refused).
    var all: [RequestOutcome] { outcomes.withLock { $0.map { $0 ?? .refused } } }
}

/// Replays a trace through a real ``ModelRuntime`` on the gated backend, stepping its clock:
/// each arrival at its time, each batch finishing at its start plus ``SchedulingCoreTests/batchMs(_:)``.
struct ScriptedRun {
    let arrivals: [Double]

    func run() async throws -> [RequestOutcome] {
        let clock = SteppedClock()
        let backend = GatedBackend()
        let runtime = try ModelRuntime(
            backend: backend,
            settings: RuntimeSettings(maxBatchSize: 8, cores: 1, sloMs: SchedulingCoreTests.sloMs),
            initial: ServingConfiguration(batchLimit: SchedulingCoreTests.batchLimit, instances: 1), clock: clock)
        backend.arm()
        let outcomes = Outcomes(count: arrivals.count)
        var tasks: [Task<Void, Never>] = []
        var next = 0
        var batchStart = 0.0
        var finishedSeen = 0

        /// Waits until the runtime has nothing left to do at this instant: a batch runs, or nothing
        /// is queued or in flight (a batch just taken from the queue is in flight before it runs).
        func settle(arrived: Int) async throws {
            for _ in 0..<20_000 {
                let snapshot = runtime.snapshot()
                if snapshot.statistics.arrivals == UInt64(arrived), backend.finished == finishedSeen,
                    snapshot.statistics.executionCount == UInt64(finishedSeen),
                    backend.running != nil || (snapshot.queueLength == 0 && snapshot.inFlight == 0)
                {
                    return
                }
                try await Task.sleep(for: .microseconds(200))
            }
            Issue.record("the runtime did not settle")
        }

        var runningSince: (start: Double, samples: Int)?
        while next < arrivals.count || backend.running != nil {
            if let batch = backend.running, runningSince == nil {
                runningSince = (batchStart, batch.count)
            }
            let completion = runningSince.map { $0.start + SchedulingCoreTests.batchMs($0.samples) }
            if let completion, next >= arrivals.count || completion <= arrivals[next] {
                clock.set(ms: completion)
                batchStart = completion
                runningSince = nil
                finishedSeen += 1
                backend.release()
                try await settle(arrived: next)
            } else {
                let index = next
                clock.set(ms: arrivals[index])
                if backend.running == nil { batchStart = arrivals[index] }
                next += 1
                let request = InferenceRequest(inputs: ["x": try Tensor(shape: [1, 1], values: [Float(index)])])
                tasks.append(
                    Task {
                        let outcome: RequestOutcome
                        do throws(SchedulingError) {
                            _ = try await runtime.infer(request)
                            outcome = .served(batch: -1)
                        } catch .deadlineExpired {
                            outcome = .expired
                        } catch {
                            outcome = .refused
                        }
                        outcomes.set(index, outcome)
                    })
                try await settle(arrived: next)
            }
        }
        for task in tasks { await task.value }
        var result = outcomes.all
        for (ordinal, batch) in backend.batches.enumerated() {
            for index in batch { result[index] = .served(batch: ordinal) }
        }
        runtime.drainAndStop()
        return result
    }
}

/// The core's own rules, driven directly.
@Suite struct SchedulingCoreRuleTests {
    static func request(_ index: Int, at ms: Double, budgetMs: Double) -> QueuedRequest<Int> {
        QueuedRequest(item: index, samples: 1, arrivalMs: ms, enqueuedMs: ms, budgetMs: budgetMs, limitMs: budgetMs)
    }

    @Test func aBatchIsJudgedByItsSizesTimeNotBySizeTimesTheCostPerSample() {
        var core = SchedulingCore<Int>(
            settings: RuntimeSettings(sloMs: 100), configuration: ServingConfiguration(batchLimit: 8, instances: 1),
            supportsBatching: true)
        // Batching gains 4x: one sample takes 10 ms, eight take 20 ms.
        for _ in 0..<4 {
            core.recordBatch(samples: 1, ms: 10)
            core.recordBatch(samples: 8, ms: 20)
        }
        #expect(core.estimatedBatchMs(samples: 8) == 20)
        #expect(core.estimatedBatchMs(samples: 4) == 10)  // the larger size's, in proportion: erring short
        #expect(core.estimatedBatchMs(samples: 16) == 20)  // no less than the largest smaller size
        // Eight requests with 30 ms left each: the batch takes 20 ms and runs; at the median cost per
        // sample (2.5 or 10 ms) times eight it would be judged 20-80 ms and could be dropped whole.
        for index in 0..<8 { _ = core.offer(Self.request(index, at: 0, budgetMs: 100), nowMs: 0) }
        var dropped: [(request: QueuedRequest<Int>, error: SchedulingError)] = []
        guard case .run(let batch) = core.nextBatch(nowMs: 70, dropped: &dropped) else {
            Issue.record("no batch")
            return
        }
        #expect(batch.count == 8)
        #expect(dropped.isEmpty)
        // With 15 ms left the same batch would end late: dropped, counted as shed.
        for index in 0..<8 { _ = core.offer(Self.request(index, at: 100, budgetMs: 100), nowMs: 100) }
        guard case .idle = core.nextBatch(nowMs: 185, dropped: &dropped) else {
            Issue.record("a late batch ran")
            return
        }
        #expect(dropped.count == 8)
        #expect(core.shedCount == 8)
    }
}
