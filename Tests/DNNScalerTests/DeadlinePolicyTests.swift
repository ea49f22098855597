import Foundation
import Testing

@testable import DNNScaler

/// The runtime's deadline policy on a backend with a fixed cost per sample (a sleep), so that the
/// admission estimates are known in advance. The real ONNX Runtime is covered by ModelRuntimeTests;
/// here only the timing matters, and a real model's timing on a shared machine with few cores is not fixed.
@Suite struct DeadlinePolicyTests {
    /// `y = x`, taking `msPerSample` per sample of the batch.
    struct TimedBackend: InferenceBackend {
        let msPerSample: Double
        var metadata: ModelMetadata {
            ModelMetadata(
                name: "timed", platform: "test", inputs: [TensorSpec(name: "x", dataType: .fp32, shape: [-1, 1])],
                outputs: [TensorSpec(name: "y", dataType: .fp32, shape: [-1, 1])])
        }
        func makeInstance(threads: Int) throws(BackendError) -> any ModelInstance {
            Instance(msPerSample: msPerSample, threads: threads)
        }
        final class Instance: ModelInstance {
            let msPerSample: Double
            let threads: Int
            init(msPerSample: Double, threads: Int) {
                self.msPerSample = msPerSample
                self.threads = threads
            }
            func run(_ inputs: [String: Tensor], outputNames: [String]?) throws(BackendError) -> [String: Tensor] {
                guard let x = inputs["x"] else { throw .invalidArgument("no input x") }
                Thread.sleep(forTimeInterval: msPerSample * Double(x.shape.first ?? 1) / 1000)
                return ["y": x]
            }
        }
    }

    /// One instance at batch 1, 10 ms per sample, warmed so that the runtime knows its cost.
    static func runtime(sloMs: Double) async throws -> ModelRuntime {
        let runtime = try ModelRuntime(
            backend: TimedBackend(msPerSample: 10), settings: RuntimeSettings(maxBatchSize: 8, cores: 1, sloMs: sloMs),
            initial: ServingConfiguration(batchLimit: 1, instances: 1))
        for _ in 0..<3 { _ = try await runtime.infer(request(0)) }
        return runtime
    }

    static func request(_ value: Float, timeoutMs: Double? = nil) throws -> InferenceRequest {
        InferenceRequest(inputs: ["x": try Tensor(shape: [1, 1], values: [value])], timeoutMs: timeoutMs)
    }

    /// Sends `count` requests at once; returns the latency in ms of each success, and the sheds.
    static func burst(
        _ count: Int, on runtime: ModelRuntime, timeoutMs: Double? = nil
    ) async throws -> (served: [Double], shed: Int) {
        let outcomes = try await withThrowingTaskGroup(
            of: (index: Int, result: Result<InferenceResponse, SchedulingError>, ms: Double).self
        ) { group in
            for index in 0..<count {
                let request = try Self.request(Float(index), timeoutMs: timeoutMs)
                group.addTask {
                    let start = ContinuousClock.now
                    let result: Result<InferenceResponse, SchedulingError>
                    do throws(SchedulingError) {
                        result = .success(try await runtime.infer(request))
                    } catch {
                        result = .failure(error)
                    }
                    return (index, result, Profiler.milliseconds(start.duration(to: .now)))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        var served: [Double] = []
        var shed = 0
        for outcome in outcomes {
            switch outcome.result {
            case .success(let response):
                #expect(try response.outputs[0].tensor.values(as: Float.self) == [Float(outcome.index)])
                served.append(outcome.ms)
            case .failure(let error):
                #expect(error.isShed, "unexpected error: \(error)")
                shed += 1
            }
        }
        return (served, shed)
    }

    @Test func aPassingBurstAtModerateLoadIsServedLateRatherThanRefused() async throws {
        // 8 requests at once, 10 ms each: the last finishes near 80 ms, past the 60 ms SLO but
        // within twice it, and 8 samples in a second are far from overload.
        let runtime = try await Self.runtime(sloMs: 60)
        defer { runtime.drainAndStop() }
        let (served, shed) = try await Self.burst(8, on: runtime)
        #expect(shed == 0)
        #expect(served.count == 8)
        #expect(served.contains { $0 > 60 }, "the burst should have run past the SLO: \(served.sorted())")
    }

    @Test func inOverloadTheSLOIsTheDeadline() async throws {
        // 150 requests at once are 1.5 s of work offered within a second: overload. A few are
        // admitted before the arrivals count as overload; after that only what fits the SLO is.
        let runtime = try await Self.runtime(sloMs: 60)
        defer { runtime.drainAndStop() }
        let (served, shed) = try await Self.burst(150, on: runtime)
        #expect(served.count + shed == 150)
        #expect(shed >= 120, "served \(served.count), shed \(shed)")
        // Nothing is served later than the hard limit (2 x SLO), plus scheduling slack.
        #expect(served.allSatisfy { $0 < 160 }, "\(served.sorted())")
        #expect(runtime.snapshot().statistics.shedCount == UInt64(shed))
    }

    @Test func aClientTimeoutIsAlwaysAHardDeadline() async throws {
        // The same moderate burst with a 40 ms timeout: what would finish after it is refused.
        let runtime = try await Self.runtime(sloMs: 60)
        defer { runtime.drainAndStop() }
        let (served, shed) = try await Self.burst(8, on: runtime, timeoutMs: 40)
        #expect(shed >= 3, "served \(served.sorted()), shed \(shed)")
        #expect(served.count + shed == 8)
    }
}
