import Foundation
import Synchronization
import Testing

@testable import DNNScaler

/// The scheduler with the real ONNX Runtime: batching, routing of outputs, shedding, reconfiguration.
@Suite struct ModelRuntimeTests {
    /// y = x W + b of linear_hand, computed here independently.
    static func expectedLinear(_ x: [Float]) -> [Float] {
        [x[0] * 1 + x[1] * 2 + x[2] * -3 + 0.5, x[0] * -1 + x[1] * 0.5 + x[2] * 4 - 2]
    }

    static func runtime(
        _ model: String, batch: Int = 8, instances: Int = 1, delayMs: Double = 0, queue: Int = 1024,
        sloMs: Double = 10_000
    ) throws -> ModelRuntime {
        try ModelRuntime(
            backend: try TestSupport.model(model),
            settings: RuntimeSettings(maxQueueSize: queue, maxBatchSize: 64, cores: 2, sloMs: sloMs),
            initial: ServingConfiguration(batchLimit: batch, instances: instances, maxQueueDelayMs: delayMs))
    }

    static func linearRequest(_ index: Int) throws -> (InferenceRequest, [Float]) {
        let x = [Float(index), Float(index % 7) * 0.5, Float(-index % 5)]
        let request = InferenceRequest(id: "r\(index)", inputs: ["x": try Tensor(shape: [1, 3], values: x)])
        return (request, expectedLinear(x))
    }

    @Test func concurrentRequestsAreBatchedAndEachGetsItsOwnOutput() async throws {
        let runtime = try Self.runtime("linear_hand", batch: 16, instances: 2, delayMs: 2)
        defer { runtime.drainAndStop() }
        let requests = 400
        let mismatches = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<requests {
                group.addTask {
                    let (request, expected) = try Self.linearRequest(index)
                    let response = try await runtime.infer(request)
                    let y = try response.outputs.first { $0.name == "y" }?.tensor.values(as: Float.self)
                    return (response.id == "r\(index)" && y == expected) ? 0 : 1
                }
            }
            return try await group.reduce(0, +)
        }
        #expect(mismatches == 0)
        let statistics = runtime.snapshot().statistics
        #expect(statistics.success.count == UInt64(requests))
        #expect(statistics.inferenceCount == UInt64(requests))
        // Requests arriving together were run together.
        #expect(statistics.executionCount < UInt64(requests))
        #expect(statistics.batches.keys.contains { $0 > 1 })
        #expect(statistics.computeInput.count == statistics.computeInfer.count)
        #expect(statistics.computeInfer.count == statistics.computeOutput.count)
    }

    @Test func requestsWithTheirOwnBatchDimensionAreSplitBackCorrectly() async throws {
        let runtime = try Self.runtime("simple", batch: 16, instances: 1, delayMs: 5)
        defer { runtime.drainAndStop() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<24 {
                group.addTask {
                    let rows = index % 3 + 1
                    let a = (0..<(rows * 16)).map { Int32(index * 1000 + $0) }
                    let b = (0..<(rows * 16)).map { Int32($0 * 3) }
                    let response = try await runtime.infer(
                        InferenceRequest(
                            inputs: [
                                "INPUT0": try Tensor(shape: [rows, 16], values: a),
                                "INPUT1": try Tensor(shape: [rows, 16], values: b),
                            ], outputNames: ["OUTPUT1"]))
                    #expect(response.outputs.map(\.name) == ["OUTPUT1"])
                    let difference = try response.outputs[0].tensor.values(as: Int32.self)
                    #expect(response.outputs[0].tensor.shape == [rows, 16])
                    #expect(difference == zip(a, b).map { $0 - $1 })
                }
            }
            try await group.waitForAll()
        }
    }

    /// Threads of this process confined to exactly `cpus` (/proc/self/task/*/status).
    static func threadsPinned(to cpus: [Int]) -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { SystemInfoTests.allowedCPUsFromProc(statusPath: "/proc/self/task/\($0)/status") == cpus }
            .count
    }

    /// With compute CPUs, every instance's threads (its worker and ONNX Runtime's intra-op pool)
    /// are confined to them, also after a reconfiguration; outputs stay right.
    @Test func instancesArePinnedToTheComputeCPUs() async throws {
        let allowed = SystemInfo.allowedCPUs
        // The first CPU (CPUPlacementTests pins to the last one); on one CPU every thread is on it.
        let compute = try #require(allowed.first)
        let runtime = try ModelRuntime(
            backend: try TestSupport.model("linear_hand"),
            settings: RuntimeSettings(maxBatchSize: 8, cores: 2, computeCPUs: [compute]),
            initial: ServingConfiguration(batchLimit: 1, instances: 1))
        defer { runtime.drainAndStop() }
        for index in 0..<4 {
            let (request, expected) = try Self.linearRequest(index)
            #expect(try await runtime.infer(request).outputs[0].tensor.values(as: Float.self) == expected)
        }
        if allowed.count > 1 {
            // 1 instance x 2 threads: the worker and one pool thread.
            #expect(Self.threadsPinned(to: [compute]) >= 2)
        }
        try runtime.apply(ServingConfiguration(batchLimit: 1, instances: 2))
        let (request, expected) = try Self.linearRequest(9)
        #expect(try await runtime.infer(request).outputs[0].tensor.values(as: Float.self) == expected)
        if allowed.count > 1 {
            // The two new workers (1 thread each), besides the old ones still winding down.
            #expect(Self.threadsPinned(to: [compute]) >= 2)
        }
    }

    @Test func invalidRequestsFailAloneAndAreCounted() async throws {
        let runtime = try Self.runtime("linear_hand")
        defer { runtime.drainAndStop() }
        await #expect(throws: SchedulingError.backend(.shapeMismatch(input: "x", expected: [-1, 3], actual: [1, 2]))) {
            try await runtime.infer(InferenceRequest(inputs: ["x": try Tensor(shape: [1, 2], values: [Float(1), 2])]))
        }
        let (good, expected) = try Self.linearRequest(3)
        let response = try await runtime.infer(good)
        #expect(try response.outputs[0].tensor.values(as: Float.self) == expected)
        #expect(runtime.snapshot().statistics.rejectedCount == 1)
    }

    @Test func aRuntimeErrorFailsOnlyItsBatch() async throws {
        let runtime = try Self.runtime("reshape_rows_of_three", batch: 1)
        defer { runtime.drainAndStop() }
        await #expect(throws: SchedulingError.self) {
            try await runtime.infer(
                InferenceRequest(inputs: ["x": try Tensor(shape: [1, 4], values: [Float](repeating: 1, count: 4))]))
        }
        let fine = try await runtime.infer(
            InferenceRequest(inputs: ["x": try Tensor(shape: [1, 6], values: [Float](repeating: 2, count: 6))]))
        #expect(fine.outputs[0].tensor.shape == [2, 3])
        #expect(runtime.snapshot().statistics.failure.count == 1)
    }

    @Test func aRequestThatFailsItsBatchFailsAloneAndTheOthersAreAnswered() async throws {
        // Eight requests wait for one batch (20 ms queue delay); one holds digits that are no
        // number, which fails string_echo's Cast for the whole batch. Run again one by one, only
        // that request fails.
        let runtime = try Self.runtime("string_echo", batch: 8, instances: 1, delayMs: 20)
        defer { runtime.drainAndStop() }
        let outcomes = try await withThrowingTaskGroup(of: (Int, [Float]?).self) { group in
            for index in 0..<8 {
                group.addTask {
                    let digits = index == 5 ? ["not a number", "1"] : ["\(index)", "\(index).5"]
                    let strings = { (values: [String]) in
                        try Tensor(shape: [1, 2], byteStrings: values.map { Array($0.utf8) })
                    }
                    let request = InferenceRequest(
                        id: "\(index)", inputs: ["text": try strings(["t", "u"]), "digits": try strings(digits)])
                    let response: InferenceResponse
                    do throws(SchedulingError) {
                        response = try await runtime.infer(request)
                    } catch {
                        return (index, nil)
                    }
                    return (index, try response.outputs.first { $0.name == "number" }?.tensor.values(as: Float.self))
                }
            }
            return try await group.reduce(into: [Int: [Float]?]()) { $0[$1.0] = $1.1 }
        }
        for index in 0..<8 where index != 5 {
            #expect(outcomes[index] == [Float(index), Float(index) + 0.5], "request \(index)")
        }
        #expect(outcomes[5] == .some(nil))
        let statistics = runtime.snapshot().statistics
        #expect(statistics.failure.count == 1)
        #expect(statistics.success.count == 7)
    }

    @Test func aFullQueueShedsWithAClearError() async throws {
        // One instance, batch 1, a queue of 2: a burst of 40 must see refusals, and every request
        // gets exactly one answer.
        let runtime = try Self.runtime("tiny_cnn", batch: 1, instances: 1, queue: 2)
        defer { runtime.drainAndStop() }
        let image = try Tensor(shape: [1, 3, 16, 16], values: TestSupport.randomFloats(count: 768, seed: 9))
        let outcomes = await withTaskGroup(of: String.self) { group in
            for _ in 0..<40 {
                group.addTask {
                    do throws(SchedulingError) {
                        _ = try await runtime.infer(InferenceRequest(inputs: ["image": image]))
                        return "ok"
                    } catch {
                        return error.isShed ? "shed" : "other: \(error)"
                    }
                }
            }
            return await group.reduce(into: [String: Int]()) { $0[$1, default: 0] += 1 }
        }
        #expect(outcomes.values.reduce(0, +) == 40)
        #expect((outcomes["shed"] ?? 0) > 0)
        #expect((outcomes["ok"] ?? 0) > 0)
        #expect(outcomes.keys.allSatisfy { $0 == "ok" || $0 == "shed" })
        #expect(
            SchedulingError.queueFull(limit: 2).description
                == "request rejected: the model's queue is full (2 requests); retry later")
    }

    @Test func requestsThatCannotMeetTheirDeadlineAreRejectedEarly() async throws {
        let runtime = try Self.runtime("squeezenet", batch: 1, instances: 1)
        defer { runtime.drainAndStop() }
        let input = try Profiler.sampleInputs(for: runtime.metadata, batchSize: 1)
        // A 0.01 ms budget cannot be met by a model that takes milliseconds.
        await #expect {
            try await runtime.infer(InferenceRequest(inputs: input, timeoutMs: 0.01))
        } throws: { error in
            guard let error = error as? SchedulingError else { return false }
            return error.isShed
        }
        #expect(runtime.snapshot().statistics.shedCount == 1)
        // A generous budget is served.
        _ = try await runtime.infer(InferenceRequest(inputs: input, timeoutMs: 10_000))
    }

    @Test func reconfigurationUnderLoadLosesNoRequest() async throws {
        let runtime = try Self.runtime("linear_hand", batch: 4, instances: 1)
        defer { runtime.drainAndStop() }
        let failures = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<300 {
                group.addTask {
                    let (request, expected) = try Self.linearRequest(index)
                    do {
                        let response = try await runtime.infer(request)
                        return try response.outputs[0].tensor.values(as: Float.self) == expected ? 0 : 1
                    } catch {
                        return 1
                    }
                }
            }
            group.addTask {
                for step in 0..<6 {
                    try runtime.apply(ServingConfiguration(batchLimit: step % 2 == 0 ? 8 : 2, instances: step % 2 + 1))
                }
                return 0
            }
            return try await group.reduce(0, +)
        }
        #expect(failures == 0)
        #expect(runtime.currentConfiguration == ServingConfiguration(batchLimit: 2, instances: 2))
        #expect(runtime.snapshot().statistics.success.count == 300)
    }

    @Test func drainServesEverythingQueuedThenRefuses() async throws {
        let runtime = try Self.runtime("tiny_cnn", batch: 2, instances: 1)
        let image = try Tensor(shape: [1, 3, 16, 16], values: TestSupport.randomFloats(count: 768, seed: 5))
        let tasks = (0..<20).map { _ in
            Task { try await runtime.infer(InferenceRequest(inputs: ["image": image])) }
        }
        try await Task.sleep(for: .milliseconds(5))
        runtime.drainAndStop()
        var served = 0
        var refused = 0
        for task in tasks {
            switch await task.result {
            case .success: served += 1
            case .failure(let error as SchedulingError):
                if case .unavailable = error { refused += 1 }
            case .failure: break
            }
        }
        #expect(served + refused == 20)
        #expect(served > 0)
        #expect(!runtime.isReady)
        await #expect(throws: SchedulingError.self) {
            try await runtime.infer(InferenceRequest(inputs: ["image": image]))
        }
    }
}

@Suite struct LatencyWindowTests {
    @Test func keepsOnlyTheHorizonAndComputesPercentiles() {
        var window = LatencyWindow(horizonSeconds: 10, capacity: 1000)
        for second in 0..<20 {
            window.record(time: Double(second), latencyMs: Double(second))
        }
        // Samples older than 10 s before the newest (19) are gone.
        #expect(window.count(since: 0) == 11)
        #expect(window.percentile(50, since: 15) == 17)
        #expect(window.percentile(99, since: 0) == 19)
        #expect(window.percentile(99, since: 100) == nil)
    }

    @Test func theTailIsJudgedOverEnoughSamplesButNotAcrossAChange() {
        #expect(LatencyWindow.minimumSamples(forPercentile: 99) == 200)
        #expect(LatencyWindow.minimumSamples(forPercentile: 95) == 40)
        var window = LatencyWindow(horizonSeconds: 30, capacity: 100_000)
        // 40 completions a second for 10 s: one period holds 40, so the span reaches back 5 s.
        for index in 0..<400 {
            window.record(time: Double(index) / 40, latencyMs: 1)
        }
        let start = window.judgingStart(periodStart: 9, now: 10, notBefore: 0, minimumSamples: 200)
        #expect(start == 5)
        #expect(window.count(since: start) == 200)
        // Never before the last configuration change.
        #expect(window.judgingStart(periodStart: 9, now: 10, notBefore: 7.5, minimumSamples: 200) == 7.5)
        // Never more than the lookback before now, however few samples there are.
        #expect(window.judgingStart(periodStart: 9, now: 10, notBefore: 0, minimumSamples: 10_000) == 5)
        // A period that already holds enough is judged alone.
        #expect(window.judgingStart(periodStart: 9, now: 10, notBefore: 0, minimumSamples: 20) == 9)
    }

    @Test func aChangeIsJudgedOnlyOnceEnoughRequestsOrTheLookbackFollowIt() {
        var window = LatencyWindow(horizonSeconds: 30, capacity: 100_000)
        // 80 completions a second for 10 s; a change at 8 s.
        for index in 0..<800 {
            window.record(time: Double(index) / 80, latencyMs: 1)
        }
        // One second after it: 80 requests, not 200.
        #expect(!window.hasSettled(since: 8, now: 9, minimumSamples: 200))
        // 2.5 s after it: 200 requests.
        #expect(window.hasSettled(since: 7.5, now: 10, minimumSamples: 200))
        // However few requests came, the lookback ends the wait; a change not yet in force never settles.
        #expect(window.hasSettled(since: 5, now: 10, minimumSamples: 10_000))
        #expect(!window.hasSettled(since: 11, now: 10, minimumSamples: 1))
    }

    @Test func aConfirmingTailHoldsOnlyTheRequestsSinceItsStart() {
        var window = LatencyWindow(horizonSeconds: 30, capacity: 100_000)
        // 40 completions a second: 25 ms each for the first 5 s (a stall's aftermath), 10 ms after.
        for index in 0..<400 {
            let time = Double(index) / 40
            window.record(time: time, latencyMs: time < 5 ? 25 : 10)
        }
        // Since 5 s: 200 requests, all 10 ms; the 25 ms before are not among them.
        #expect(window.settledPercentile(99, since: 5, now: 10, minimumSamples: 200) == 10)
        // Since 8 s: 80 requests, 2 s: too few to judge yet.
        #expect(window.settledPercentile(99, since: 8, now: 10, minimumSamples: 200) == nil)
        // Nothing asked for, nothing computed.
        #expect(window.settledPercentile(99, since: nil, now: 10, minimumSamples: 200) == nil)
    }
}
