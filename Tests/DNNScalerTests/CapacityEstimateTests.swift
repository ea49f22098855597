import Testing

@testable import DNNScaler

/// The capacity estimate: its queueing prediction, the served-time correction, the smoothed load.
@Suite struct CapacityEstimateTests {
    static func point(instances: Int, batch: Int, throughput: Double) -> ProfilePoint {
        let ms = 1000 * Double(instances * batch) / throughput
        return ProfilePoint(
            instances: instances, threadsPerInstance: 1, batchSize: batch, throughput: throughput,
            latencyMs: LatencySummary(mean: ms, p50: ms, p95: ms, p99: ms, atPercentile: ms), batches: 100,
            residentMemoryBytes: 0)
    }

    static func profile(_ points: [ProfilePoint]) -> Profile {
        Profile(
            model: "m", backend: "test", device: "test", createdAt: "", percentile: 99, durationSeconds: 1,
            points: points, sloMs: nil)
    }

    @Test func batchOneMatchesTheInstanceModel() {
        for (serviceMs, instances) in [(56.7, 1), (10.0, 2), (6.0, 3)] {
            let batched = CapacityEstimate.sustainableRate(
                batchMs: { _ in serviceMs }, batchLimit: 1, instances: instances, sloMs: 150, percentile: 99)
            let single = InstanceCapacityModel.sustainableRate(
                serviceMs: serviceMs, instances: instances, sloMs: 150, percentile: 99)
            #expect(abs(batched - single) / single < 0.08, "\(serviceMs) ms x \(instances): \(batched) vs \(single)")
        }
    }

    @Test func batchingRaisesTheRateWhenBatchesAreCheap() {
        // 10 ms for one, 20 ms for eight: batching sustains far more than batch 1.
        let batchMs: (Int) -> Double = { 10 + Double($0 - 1) * 10 / 7 }
        let one = CapacityEstimate.sustainableRate(
            batchMs: batchMs, batchLimit: 1, instances: 1, sloMs: 100, percentile: 99)
        let eight = CapacityEstimate.sustainableRate(
            batchMs: batchMs, batchLimit: 8, instances: 1, sloMs: 100, percentile: 99)
        #expect(one > 50 && one < 100)
        #expect(eight > 2 * one)
        #expect(eight < 400)  // below saturation, 8 per 20 ms
    }

    @Test func thePredictionPicksTheBestReachableConfiguration() {
        let profile = Self.profile([
            Self.point(instances: 1, batch: 1, throughput: 100), Self.point(instances: 1, batch: 8, throughput: 110),
            Self.point(instances: 2, batch: 1, throughput: 180), Self.point(instances: 2, batch: 8, throughput: 190),
        ])
        let estimate = CapacityEstimate(profile: profile, maxBatch: 8, maxInstances: 2, sloMs: 50, percentile: 99)
        #expect(estimate.predictedConfiguration?.instances == 2)
        let rate = estimate.predictedRate ?? 0
        #expect(rate > 100 && rate < 180)
        let fixed = CapacityEstimate(
            profile: profile, maxBatch: 8, maxInstances: 2, sloMs: 50, percentile: 99,
            fixed: ServingConfiguration(batchLimit: 1, instances: 1))
        #expect(fixed.predictedConfiguration == ServingConfiguration(batchLimit: 1, instances: 1))
        #expect((fixed.predictedRate ?? 0) < rate)
        #expect(CapacityEstimate(profile: nil, maxBatch: 8, maxInstances: 2, sloMs: 50, percentile: 99).used == nil)
    }

    @Test func loadIsSmoothedAndSlowerBatchesShrinkTheCapacity() {
        let profile = Self.profile([Self.point(instances: 1, batch: 1, throughput: 100)])
        var estimate = CapacityEstimate(profile: profile, maxBatch: 1, maxInstances: 1, sloMs: 100, percentile: 99)
        let predicted = estimate.sustainableRate ?? 0
        // 50 requests/s for 30 s, each batch of one taking twice the profiled 10 ms.
        var statistics = ModelStatistics()
        for tick in 0...150 {
            estimate.update(time: Double(tick) * 0.2, statistics: statistics, instances: 1)
            statistics.arrivals += 10
            statistics.batches[1, default: DurationStatistic()].count += 10
            statistics.batches[1, default: DurationStatistic()].ns += 10 * 20_000_000
        }
        #expect(abs(estimate.arrivalRate - 50) < 2)
        #expect(abs(estimate.serviceCorrection - 2) < 0.1)
        #expect(predicted > 0)
        #expect(abs((estimate.sustainableRate ?? 0) - predicted / 2) < 0.1 * predicted)
        #expect(abs((estimate.used ?? 0) - 50 / (predicted / 2)) < 0.1)
    }

    @Test func lowRatesAreCountedOverEnoughArrivalsAndRisesFollowedWithinSeconds() {
        let profile = Self.profile([Self.point(instances: 1, batch: 1, throughput: 100)])
        var estimate = CapacityEstimate(profile: profile, maxBatch: 1, maxInstances: 1, sloMs: 100, percentile: 99)
        var statistics = ModelStatistics()
        var time = 0.0
        var tick = 0
        func run(seconds: Double, arrivalEvery interval: Int) {
            // Updates every 100 ms, one arrival every `interval` updates (0: none).
            for _ in 0..<Int(seconds * 10) {
                time += 0.1
                tick += 1
                if interval > 0, tick % interval == 0 { statistics.arrivals += 1 }
                estimate.update(time: time, statistics: statistics, instances: 1)
            }
        }
        estimate.update(time: time, statistics: statistics, instances: 1)
        // 0.5 requests/s: five seconds hold two or three arrivals; the rate is counted over 50.
        run(seconds: 120, arrivalEvery: 20)
        #expect(abs(estimate.arrivalRate - 0.5) < 0.02, "\(estimate.arrivalRate)")
        // A rise to 10/s shows within the shortest span.
        run(seconds: CapacityEstimate.arrivalWindowSeconds + 0.5, arrivalEvery: 1)
        #expect(abs(estimate.arrivalRate - 10) < 0.5, "\(estimate.arrivalRate)")
        // Silence: back to 0 once the longest span holds no arrival.
        run(seconds: CapacityEstimate.arrivalWindowMaxSeconds + 1, arrivalEvery: 0)
        #expect(estimate.arrivalRate == 0)
    }

    @Test func spreadBatchTimesAndTimeOutsideTheBatchLowerTheRate() {
        let profile = Self.profile([Self.point(instances: 2, batch: 1, throughput: 200)])
        var estimate = CapacityEstimate(profile: profile, maxBatch: 1, maxInstances: 2, sloMs: 40, percentile: 99)
        let steady = estimate.predictedRate ?? 0
        // Batches as profiled on average (10 ms) but spread from 5 to 20 ms, and 4 ms per request
        // outside queue and batch.
        var statistics = ModelStatistics()
        var window = LatencyWindow()
        for tick in 0...60 {
            let time = Double(tick) * 0.2
            for index in 0..<10 {
                let batchMs = [5.0, 7.5, 10, 12.5, 15, 5, 7.5, 10, 7.5, 20][index]
                window.record(time: time, latencyMs: batchMs)
                statistics.batches[1, default: DurationStatistic()].add(UInt64(batchMs * 1e6))
                statistics.computeInfer.add(UInt64(batchMs * 1e6))
                statistics.success.add(UInt64((batchMs + 4) * 1e6))
            }
            statistics.arrivals += 10
            estimate.update(time: time, statistics: statistics, instances: 2, serviceWindow: window)
        }
        #expect(abs(estimate.overheadMs - 4) < 0.1)
        #expect(estimate.batchTimeSpread.count == CapacityEstimate.spreadQuantiles)
        #expect((estimate.batchTimeSpread.max() ?? 0) > 1.5)
        let spread = estimate.predictedRate ?? 0
        #expect(spread < 0.95 * steady, "\(spread) vs \(steady)")
        #expect(spread > 0.3 * steady)
    }

    /// Feeds `seconds` of `rate` requests/s on one instance profiled at 10 ms whose batches take
    /// `batchMs`; returns the estimate.
    static func served(seconds: Int, batchMs: Double, rate: Int = 40, sloMs: Double = 100) -> CapacityEstimate {
        let profile = Self.profile([Self.point(instances: 1, batch: 1, throughput: 100)])
        var estimate = CapacityEstimate(profile: profile, maxBatch: 1, maxInstances: 1, sloMs: sloMs, percentile: 99)
        var statistics = ModelStatistics()
        var service = LatencyWindow()
        for tick in 0...(seconds * 5) {
            let time = Double(tick) * 0.2
            for _ in 0..<(rate / 5) {
                service.record(time: time, latencyMs: batchMs)
                statistics.batches[1, default: DurationStatistic()].add(UInt64(batchMs * 1e6))
                statistics.computeInfer.add(UInt64(batchMs * 1e6))
                statistics.success.add(UInt64(batchMs * 1e6))
            }
            statistics.arrivals += UInt64(rate / 5)
            estimate.update(time: time, statistics: statistics, instances: 1, serviceWindow: service)
        }
        return estimate
    }

    @Test func slowerBatchesAreSimulatedNotScaled() {
        // Batches take 20 ms where the profile said 10: the SLO does not stretch with them, so the
        // capacity falls below half of the profiled one, to what 20-ms batches sustain.
        let profiled = Self.served(seconds: 0, batchMs: 10).sustainableRate ?? 0
        let slow = Self.served(seconds: 60, batchMs: 20)
        #expect(abs(slow.serviceCorrection - 2) < 0.05)
        let direct = CapacityEstimate.sustainableRate(
            batchMs: { _ in 20 }, batchLimit: 1, instances: 1,
            sloMs: 100 * (1 - RuntimeSettings.defaultResponseAllowance),
            percentile: 99)
        let rate = slow.sustainableRate ?? 0
        #expect(rate < 0.5 * profiled, "\(rate) vs \(profiled)")
        #expect(abs(rate - direct) < 0.05 * direct, "\(rate) vs \(direct)")
        // At light load (the instance busy a fifth of the time) slow batches say little about the
        // load the capacity is about: the correction stays.
        #expect(Self.served(seconds: 60, batchMs: 20, rate: 10).serviceCorrection == 1)
    }
}
