import Testing

@testable import DNNScaler

/// The queueing prediction that ranks instance counts by the load they sustain within the SLO.
@Suite struct InstanceCapacityModelTests {
    static func point(_ instances: Int, _ batch: Int, throughput: Double, meanMs: Double, p99Ms: Double) -> ProfilePoint
    {
        ProfilePoint(
            instances: instances, threadsPerInstance: max(1, 2 / instances), batchSize: batch, throughput: throughput,
            latencyMs: LatencySummary(mean: meanMs, p50: meanMs, p95: p99Ms, p99: p99Ms, atPercentile: p99Ms),
            batches: 100, residentMemoryBytes: 1 << 20)
    }

    /// Like resnet50 on 2 CPU cores: 1 instance takes 41 ms a request, 2 take 75 ms each, for 8% more
    /// throughput; the second instance's p99 alone fits a 150 ms SLO easily.
    static let cpuLike = Profile(
        model: "m", backend: "test", device: "test", createdAt: "", percentile: 99, durationSeconds: 1,
        points: [
            point(1, 1, throughput: 24.6, meanMs: 41, p99Ms: 45),
            point(1, 8, throughput: 24.0, meanMs: 330, p99Ms: 340),
            point(2, 1, throughput: 26.5, meanMs: 75, p99Ms: 85),
            point(2, 8, throughput: 24.5, meanMs: 650, p99Ms: 660),
        ], sloMs: nil)

    @Test func oneServerFarFromTheSLOSustainsNearlyItsThroughput() {
        let rate = InstanceCapacityModel.sustainableRate(serviceMs: 10, instances: 1, sloMs: 1000, percentile: 99)
        #expect(rate > 90 && rate < 100)
        // The SLO leaves no room to wait: only the 1% of requests allowed to miss may queue.
        let tight = InstanceCapacityModel.sustainableRate(serviceMs: 10, instances: 1, sloMs: 10, percentile: 99)
        #expect(tight < 5)
        #expect(InstanceCapacityModel.sustainableRate(serviceMs: 20, instances: 4, sloMs: 10, percentile: 99) == 0)
    }

    @Test func moreInstancesThatDoNotSlowEachOtherSustainMore() {
        let one = InstanceCapacityModel.sustainableRate(serviceMs: 10, instances: 1, sloMs: 30, percentile: 99)
        let four = InstanceCapacityModel.sustainableRate(serviceMs: 10, instances: 4, sloMs: 30, percentile: 99)
        #expect(four > 3.5 * one)
    }

    @Test func slowerInstancesWithLittleMoreThroughputSustainLessWithinATightSLO() {
        let model = InstanceCapacityModel(profile: Self.cpuLike, maxInstances: 2, sloMs: 150, percentile: 99)
        let one = model.sustainableRates[1] ?? 0
        let two = model.sustainableRates[2] ?? 0
        #expect(one > 1.05 * two)
        #expect(model.bestInstances == 1)
        #expect(!model.instanceAddsSustainableLoad(2))
        // With a loose SLO the extra throughput wins.
        let loose = InstanceCapacityModel(profile: Self.cpuLike, maxInstances: 2, sloMs: 2000, percentile: 99)
        #expect(loose.bestInstances == 2)
        #expect(InstanceCapacityModel(profile: nil, maxInstances: 2, sloMs: 150, percentile: 99).bestInstances == nil)
    }

    @Test func dnnscalerMultiTenancyKeepsTheCountThatSustainsTheMostLoad() {
        var policy = DNNScalerPolicy(
            context: PolicyContext(profile: Self.cpuLike, maxBatch: 8, maxInstances: 2, sloMs: 150))
        #expect(policy.lever == .multiTenancy)
        // The paper's rule alone would start at 2 (its p99 fits the SLO).
        #expect(policy.initialConfiguration == ServingConfiguration(batchLimit: 1, instances: 1))
        let decision = policy.decide(
            PolicyTests.observation(time: 1, tail: 90, slo: 150, current: policy.initialConfiguration))
        #expect(decision.configuration.instances == 1)
        #expect(decision.reason.contains("predicted to sustain less load"))
        // With a loose SLO the same profile starts with both instances.
        let loose = DNNScalerPolicy(
            context: PolicyContext(profile: Self.cpuLike, maxBatch: 8, maxInstances: 2, sloMs: 2000))
        #expect(loose.initialConfiguration.instances == 2)
    }

    @Test func thePredictedTailGrowsWithTheLoadAndStaysAboveTheServiceTime() {
        let model = InstanceCapacityModel(profile: Self.cpuLike, maxInstances: 2, sloMs: 150, percentile: 99)
        let light = model.predictedTailMs(instances: 1, ratePerSecond: 2, percentile: 99) ?? 0
        let heavy = model.predictedTailMs(instances: 1, ratePerSecond: 20, percentile: 99) ?? 0
        #expect(light >= 1000 / 24.6 && light < heavy)
        // At or past the instances' throughput the queue has no steady state.
        #expect(model.predictedTailMs(instances: 1, ratePerSecond: 30, percentile: 99) == nil)
    }

    @Test func aServedTailFarAboveThePredictionHandsTheDecisionBackToThePapersRule() {
        var policy = DNNScalerPolicy(
            context: PolicyContext(profile: Self.cpuLike, maxBatch: 8, maxInstances: 2, sloMs: 150))
        let start = policy.initialConfiguration
        func observed(_ time: Double, tail: Double) -> Observation {
            Observation(time: time, tailLatencyMs: tail, completed: 200, arrivalRate: 8, sloMs: 150, current: start)
        }
        // Near the prediction (about 130 ms at 8 requests/s): trusted, and no second instance.
        var decision = policy.decide(observed(1, tail: 100))
        #expect(policy.trustsCapacityPrediction)
        #expect(decision.configuration.instances == 1)
        // Twice the prediction: the profile misjudges the served machine; the paper's start (2) takes over.
        decision = policy.decide(observed(2, tail: 200))
        #expect(!policy.trustsCapacityPrediction)
        #expect(decision.configuration.instances == 2)
        #expect(decision.reason.contains("the paper's rule decides"))
    }
}
