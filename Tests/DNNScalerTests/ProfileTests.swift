import Foundation
import Testing

@testable import DNNScaler

@Suite struct ProfileTests {
    static func point(_ instances: Int, _ batch: Int, throughput: Double, p99: Double) -> ProfilePoint {
        ProfilePoint(
            instances: instances, threadsPerInstance: max(1, 2 / instances), batchSize: batch, throughput: throughput,
            latencyMs: LatencySummary(mean: p99 / 2, p50: p99 / 2, p95: p99 * 0.9, p99: p99, atPercentile: p99),
            batches: 100, residentMemoryBytes: 1 << 20)
    }

    static let batchingFriendly = [
        point(1, 1, throughput: 100, p99: 10), point(1, 4, throughput: 300, p99: 20),
        point(1, 16, throughput: 500, p99: 60), point(2, 1, throughput: 120, p99: 17),
        point(2, 4, throughput: 350, p99: 30),
    ]

    @Test func percentilesUseNearestRank() {
        let samples = (1...100).map(Double.init)
        let summary = LatencySummary(samples: samples.shuffled(), percentile: 99.9)
        #expect(summary.p50 == 50)
        #expect(summary.p95 == 95)
        #expect(summary.p99 == 99)
        #expect(summary.atPercentile == 100)
        #expect(summary.mean == 50.5)
        #expect(LatencySummary.percentile(99, ofSorted: []) == 0)
    }

    @Test func picksBatchingWhenItGainsMore() {
        let decision = ProfileDecision(points: Self.batchingFriendly, sloMs: nil)
        #expect(decision.mode == .batching)
        #expect(decision.baselineThroughput == 100)
        #expect(decision.batchingGain == 5)
        #expect(decision.multiTenancyGain == 1.2)
        #expect(decision.bestInMode?.batchSize == 16)
    }

    @Test func picksMultiTenancyWhenItGainsMore() {
        let points = [
            Self.point(1, 1, throughput: 100, p99: 10), Self.point(1, 8, throughput: 130, p99: 70),
            Self.point(4, 1, throughput: 400, p99: 15), Self.point(8, 1, throughput: 450, p99: 30),
        ]
        let decision = ProfileDecision(points: points, sloMs: 20)
        #expect(decision.mode == .multiTenancy)
        #expect(decision.multiTenancyGain == 4.5)
        // 8 instances gain most, but only 4 fit a 20 ms SLO.
        #expect(decision.bestInMode?.instances == 4)
    }

    @Test func batchingMustGainClearlyMoreThanMultiTenancy() {
        // resnet50 on 2 cores: both levers within a few percent of 1; batching 2% ahead.
        let close = [
            Self.point(1, 1, throughput: 24.0, p99: 45), Self.point(1, 8, throughput: 25.0, p99: 330),
            Self.point(2, 1, throughput: 24.5, p99: 85),
        ]
        #expect(ProfileDecision(points: close, sloMs: 150).mode == .multiTenancy)
        var clear = close
        clear[1].throughput = 26.5
        #expect(ProfileDecision(points: clear, sloMs: 150).mode == .batching)
    }

    @Test func sloPicksTheBestConfigurationThatFits() {
        let decision = ProfileDecision(points: Self.batchingFriendly, sloMs: 35)
        #expect(decision.bestInMode?.batchSize == 4)
        #expect(decision.bestInMode?.instances == 1)
        // The mixed 2 x batch 4 point fits too and beats every pure point under the SLO.
        #expect(decision.bestOverall?.instances == 2)
        #expect(decision.bestOverall?.batchSize == 4)
        #expect(ProfileDecision(points: Self.batchingFriendly, sloMs: 5).bestOverall == nil)
    }

    @Test func jsonRoundTrips() throws {
        let profile = Profile(
            model: "m", backend: "onnxruntime 1.31.1", device: "cpu: 2 x test", createdAt: "2026-11-25T00:00:00Z",
            percentile: 99, durationSeconds: 5, points: Self.batchingFriendly, sloMs: 35)
        let decoded = try Profile(jsonData: try profile.jsonData())
        #expect(decoded == profile)
    }

    @Test func jsonWithAnUnknownFormatVersionIsRejected() throws {
        let profile = Profile(
            model: "m", backend: "b", device: "d", createdAt: "", percentile: 99, durationSeconds: 1,
            points: Self.batchingFriendly, sloMs: nil)
        var object = try #require(try JSONSerialization.jsonObject(with: profile.jsonData()) as? [String: Any])
        object["formatVersion"] = 99
        let data = try JSONSerialization.data(withJSONObject: object)
        #expect(throws: ProfileFileError.unsupportedFormatVersion(99)) { try Profile(jsonData: data) }
    }

    @Test func csvRoundTripsThePoints() throws {
        let profile = Profile(
            model: "resnet50", backend: "csv", device: "unknown", createdAt: "", percentile: 99, durationSeconds: 0,
            points: Self.batchingFriendly + [Self.point(1, 2, throughput: 123.456789, p99: 12.3456789)], sloMs: 35)
        let decoded = try Profile(csvText: profile.csvText(), sloMs: 35)
        #expect(decoded.points == profile.points)
        #expect(decoded.model == "resnet50")
        #expect(decoded.decision == profile.decision)
    }

    @Test func malformedCsvSaysWhatIsWrong() {
        #expect(throws: ProfileFileError.malformedCSV("missing column 'threads_per_instance'")) {
            try Profile(csvText: "model,instances\nm,1\n")
        }
        var rows = Profile(
            model: "m", backend: "b", device: "d", createdAt: "", percentile: 99, durationSeconds: 1,
            points: [Self.point(1, 1, throughput: 1, p99: 1)], sloMs: nil
        ).csvText()
        rows = rows.replacingOccurrences(of: "\nm,1,2,1,", with: "\nm,one,2,1,")
        #expect(throws: ProfileFileError.malformedCSV("row 2: 'one' in instances is not an integer")) {
            try Profile(csvText: rows)
        }
    }

    @Test func profilerMeasuresARealModel() throws {
        let model = try TestSupport.model("tiny_cnn")
        let settings = ProfilerSettings(
            batchSizes: [1, 4], instanceCounts: [1, 2], durationSeconds: 0.2, warmupBatches: 1, sloMs: 1000)
        var events = 0
        let profile = try Profiler(backend: model, settings: settings).run(backendDescription: "test") { _ in
            events += 1
        }
        #expect(events == 8)
        #expect(profile.points.map { [$0.instances, $0.batchSize] } == [[1, 1], [1, 4], [2, 1], [2, 4]])
        #expect(
            profile.points.map(\.threadsPerInstance) == [2, 2, 1, 1].map { max(1, SystemInfo.cpuCores / (3 - $0)) }
                || SystemInfo.cpuCores != 2)
        for point in profile.points {
            #expect(point.throughput > 0)
            #expect(point.batches > 0)
            #expect(point.latencyMs.p50 > 0 && point.latencyMs.p50 <= point.latencyMs.p99)
            #expect(point.residentMemoryBytes > 0)
        }
        #expect(profile.decision.bestOverall != nil)
    }

    @Test func eachPointKeepsItsFastestPass() {
        let first = [Self.point(1, 1, throughput: 60, p99: 40), Self.point(2, 1, throughput: 105, p99: 45)]
        let second = [Self.point(1, 1, throughput: 100, p99: 30), Self.point(2, 1, throughput: 98, p99: 50)]
        let kept = Profiler.fastestPasses([first, second])
        #expect(kept.map(\.throughput) == [100, 105])
        #expect(kept.map(\.latencyMs.p99) == [30, 45])
        #expect(Profiler.fastestPasses([first]) == first)
        #expect(Profiler.fastestPasses([]).isEmpty)
    }

    @Test func twoPassesMeasureTheGridTwiceAndKeepOnePointEach() throws {
        let backend = DeadlinePolicyTests.TimedBackend(msPerSample: 2)
        var settings = ProfilerSettings(
            batchSizes: [1, 2], instanceCounts: [1], durationSeconds: 0.05, warmupBatches: 0)
        settings.passes = 2
        var finished: [Int] = []
        let profile = try Profiler(backend: backend, settings: settings).run(backendDescription: "test") { event in
            if case .finished(let index, let total, _) = event {
                finished.append(index)
                #expect(total == 4)
            }
        }
        #expect(finished == [1, 2, 3, 4])
        #expect(profile.points.map(\.batchSize) == [1, 2])
    }

    @Test func aShortProbeStillRunsTheMinimumBatchesWithinItsCap() throws {
        // 10 ms a sample: 0.01 s alone would measure one or two batches of 1.
        let backend = DeadlinePolicyTests.TimedBackend(msPerSample: 10)
        let settings = ProfilerSettings(
            batchSizes: [1], instanceCounts: [1], durationSeconds: 0.01, warmupBatches: 0,
            minimumBatchesPerInstance: 15, maximumDurationSeconds: 5)
        let point = try Profiler(backend: backend, settings: settings).measure(instances: 1, threads: 1, batchSize: 1)
        #expect(point.batches >= 15)
        // The cap wins over the minimum.
        let capped = ProfilerSettings(
            batchSizes: [1], instanceCounts: [1], durationSeconds: 0.01, warmupBatches: 0,
            minimumBatchesPerInstance: 1_000, maximumDurationSeconds: 0.1)
        let short = try Profiler(backend: backend, settings: capped).measure(instances: 1, threads: 1, batchSize: 1)
        #expect(short.batches < 100)
    }

    @Test func settingsRejectNonsense() {
        #expect(throws: BackendError.self) { try ProfilerSettings(batchSizes: [0]).validate() }
        #expect(throws: BackendError.self) { try ProfilerSettings(instanceCounts: []).validate() }
        #expect(throws: BackendError.self) { try ProfilerSettings(durationSeconds: -1).validate() }
        #expect(throws: BackendError.self) { try ProfilerSettings(percentile: 101).validate() }
        #expect(throws: BackendError.self) { try ProfilerSettings(sloMs: 0).validate() }
    }

    @Test func modelsWithoutABatchDimensionAreProfiledAtBatchOneOnly() throws {
        let metadata = ModelMetadata(
            name: "fixed", platform: "p", inputs: [TensorSpec(name: "x", dataType: .fp32, shape: [1, 3])],
            outputs: [TensorSpec(name: "y", dataType: .fp32, shape: [1, 2])])
        struct FixedBatchModel: InferenceBackend {
            let metadata: ModelMetadata
            func makeInstance(threads: Int) throws(BackendError) -> any ModelInstance {
                throw .invalidArgument("not used")
            }
        }
        let profiler = Profiler(
            backend: FixedBatchModel(metadata: metadata), settings: ProfilerSettings(batchSizes: [1, 8]))
        #expect(profiler.grid().map(\.batchSize) == [1, 1])
    }
}
