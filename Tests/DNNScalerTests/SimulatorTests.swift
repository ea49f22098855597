import Testing

@testable import DNNScaler

@Suite struct SimulatorTests {
    /// A profile whose batches take `ms` per batch at batch 1, and `perSample` more per extra sample.
    static func profile(batchOneMs: Double, perSampleMs: Double = 0, instances: [Int] = [1]) -> Profile {
        var points: [ProfilePoint] = []
        for count in instances {
            for batch in [1, 2, 4, 8, 16] {
                let ms = (batchOneMs + perSampleMs * Double(batch - 1)) * Double(count)
                points.append(
                    ProfilePoint(
                        instances: count, threadsPerInstance: 1, batchSize: batch,
                        throughput: Double(batch * count) * 1000 / ms,
                        latencyMs: LatencySummary(mean: ms, p50: ms, p95: ms, p99: ms, atPercentile: ms), batches: 1,
                        residentMemoryBytes: 0))
            }
        }
        return Profile(
            model: "synthetic", backend: "test", device: "test", createdAt: "", percentile: 99, durationSeconds: 1,
            points: points, sloMs: nil)
    }

    /// M/D/1: Poisson arrivals, deterministic service D, one server. Mean wait in queue
    /// Wq = rho D / (2 (1 - rho)); at rho = 0.5 that is D / 2.
    @Test(arguments: [0.5, 0.8])
    func matchesMD1QueueingTheory(utilisation: Double) {
        let serviceMs = 10.0
        var simulator = Simulator(
            profile: Self.profile(batchOneMs: serviceMs),
            policy: StaticPolicy(configuration: ServingConfiguration(batchLimit: 1, instances: 1)),
            settings: SimulationSettings(
                sloMs: 1e9, arrivals: .poisson(rate: utilisation * 1000 / serviceMs), requests: 200_000, seed: 42,
                maxQueueSize: .max, admissionControl: false))
        let result = simulator.run()
        let expectedWait = utilisation * serviceMs / (2 * (1 - utilisation))
        #expect(result.completed == 200_000)
        #expect(
            abs(result.meanQueueMs - expectedWait) / expectedWait < 0.05, "Wq \(result.meanQueueMs) vs \(expectedWait)")
        #expect(abs(result.meanMs - (expectedWait + serviceMs)) / (expectedWait + serviceMs) < 0.05)
    }

    @Test func theSameSeedGivesTheSameResultAndAnotherSeedDoesNot() {
        func run(seed: UInt64) -> SimulationResult {
            var simulator = Simulator(
                profile: Self.profile(batchOneMs: 5, perSampleMs: 1, instances: [1, 2]),
                policy: JointPolicy(
                    context: PolicyContext(
                        profile: Self.profile(batchOneMs: 5, perSampleMs: 1, instances: [1, 2]), maxBatch: 16,
                        maxInstances: 2, sloMs: 40)),
                settings: SimulationSettings(sloMs: 40, arrivals: .poisson(rate: 400), requests: 20_000, seed: seed))
            return simulator.run()
        }
        #expect(run(seed: 7) == run(seed: 7))
        #expect(run(seed: 7) != run(seed: 8))
    }

    @Test func closedLoopThroughputFollowsTheServiceTime() {
        // One client, 4 ms per request: 250 requests/s, every latency 4 ms.
        var simulator = Simulator(
            profile: Self.profile(batchOneMs: 4),
            policy: StaticPolicy(configuration: ServingConfiguration(batchLimit: 1, instances: 1)),
            settings: SimulationSettings(sloMs: 100, arrivals: .closedLoop(clients: 1), requests: 1000))
        let result = simulator.run()
        #expect(result.completed == 1000)
        #expect(abs(result.throughput - 250) < 1)
        #expect(result.latencyMs.p99 == 4)
    }

    @Test func overloadIsShedAndAdmittedRequestsKeepTheirSLO() {
        // Capacity 100/s; 300/s offered. The server-side rules (admission, deadline drops) keep the tail.
        var simulator = Simulator(
            profile: Self.profile(batchOneMs: 10),
            policy: StaticPolicy(configuration: ServingConfiguration(batchLimit: 1, instances: 1)),
            settings: SimulationSettings(sloMs: 50, arrivals: .poisson(rate: 300), requests: 30_000, seed: 3))
        let result = simulator.run()
        #expect(result.shed > 15_000)
        // Admitted requests finish within the SLO plus at most the batch in flight (10 ms).
        #expect(result.latencyMs.p99 <= 60)
        #expect(abs(result.throughput - 100) < 5)
    }

    @Test func batchingPoliciesRaiseThroughputWhenBatchesAreCheap() {
        // A batch of b takes 10 + 1 (b - 1) ms: batching pays. 500/s offered: 5x batch-1 capacity.
        let profile = Self.profile(batchOneMs: 10, perSampleMs: 1)
        func capacity(_ policy: any ScalingPolicy) -> Double {
            var simulator = Simulator(
                profile: profile, policy: policy,
                settings: SimulationSettings(sloMs: 100, arrivals: .poisson(rate: 500), requests: 30_000, seed: 5))
            return simulator.run().throughput
        }
        let context = PolicyContext(profile: profile, maxBatch: 16, maxInstances: 1, sloMs: 100)
        let batchOne = capacity(StaticPolicy(configuration: ServingConfiguration(batchLimit: 1, instances: 1)))
        let dnnscaler = capacity(DNNScalerPolicy(context: context))
        let clipper = capacity(ClipperAIMDPolicy(maxBatch: 16))
        #expect(dnnscaler > 3 * batchOne)
        #expect(clipper > 3 * batchOne)
    }

    @Test func serviceTimesInterpolateBetweenMeasuredPoints() {
        let model = ServiceTimeModel(profile: Self.profile(batchOneMs: 10, perSampleMs: 2, instances: [1, 4]))
        #expect(model.batchMs(instances: 1, batch: 1) == 10)
        #expect(model.batchMs(instances: 1, batch: 3) == 14)  // between 2 (12 ms) and 4 (16 ms)
        #expect(model.batchMs(instances: 1, batch: 32) == 72)  // beyond 16 (40 ms), along the last slope
        #expect(model.batchMs(instances: 2, batch: 1) == 20)  // between 1 (10 ms) and 4 (40 ms) instances
    }

    /// Alternates between 3 and 1 instances every 0.5 s, so switches land while batches run.
    struct FlippingPolicy: ScalingPolicy {
        let name = "flipping"
        let period = 0.5
        let mode: ScalingMode? = nil
        let initialConfiguration = ServingConfiguration(batchLimit: 2, instances: 3)
        mutating func decide(_ observation: Observation) -> Decision {
            var next = observation.current
            next.instances = next.instances == 3 ? 1 : 3
            return Decision(configuration: next, reason: "flip")
        }
    }

    @Test func instanceSwitchesWhileBatchesRunLoseNoBatch() {
        // Switching removed idle instances and shifted the busy ones' indices without re-pointing
        // their completions: a batch could then never complete and the run never ended.
        var simulator = Simulator(
            profile: Self.profile(batchOneMs: 7, perSampleMs: 3, instances: [1, 3]), policy: FlippingPolicy(),
            settings: SimulationSettings(
                sloMs: 1000, arrivals: .poisson(rate: 250), requests: 20_000, seed: 11, instanceWarmupSeconds: 0.2))
        let result = simulator.run()
        #expect(result.completed + result.shed == 20_000)
        #expect(result.configurationChanges > 50)
        #expect(result.durationSeconds < 20_000 / 250 + 5)
    }
}

@Suite struct CapacitySearchTests {
    @Test func runsAreLengthenedToJudgeTheMinimumNumberOfRequests() {
        let profile = SimulatorTests.profile(batchOneMs: 100)
        var search = CapacitySearch(
            profile: profile, policy: .static, sloMs: 500, durationSeconds: 120, warmupSeconds: 40,
            minimumJudgedRequests: 1000)
        // 2/s: 80 judged seconds hold 160 requests; 1000 need 500 s after the 80 of the warm-up.
        #expect(search.requests(rate: 2) == 1080)
        // 50/s: 120 s already judge 4000.
        #expect(search.requests(rate: 50) == 6000)
        search.minimumJudgedRequests = 0
        #expect(search.requests(rate: 2) == 240)
    }

    @Test func aProbePoolsTheMeasuredRequestsOfEverySeed() {
        // 10 ms a request, one instance, at 90% load: some requests of each seed miss a 40 ms SLO.
        let profile = SimulatorTests.profile(batchOneMs: 10)
        let search = CapacitySearch(
            profile: profile, policy: .static, sloMs: 40, durationSeconds: 30, warmupSeconds: 5, seed: 7, seeds: 3)
        let (pooled, first) = search.pooledProbe(rate: 90)
        let runs = (0..<3).map { search.probe(rate: 90, seed: 7 + UInt64($0)) }
        #expect(first == runs[0])
        #expect(pooled.requests == runs.map(\.measuredRequests).reduce(0, +))
        #expect(pooled.completed == runs.map(\.measuredCompleted).reduce(0, +))
        let within = runs.map { $0.sloAttainment * Double($0.measuredRequests) }.reduce(0, +)
        #expect(abs(pooled.sloAttainment - within / Double(pooled.requests)) < 1e-12)
        // The seeds differ (otherwise pooling would add nothing), and the pooled attainment lies
        // between the worst and the best seed's.
        #expect(Set(runs.map(\.sloAttainment)).count > 1)
        #expect(pooled.sloAttainment >= runs.map(\.sloAttainment).min() ?? 1)
        #expect(pooled.sloAttainment <= runs.map(\.sloAttainment).max() ?? 0)
        #expect(search.sustained(pooled) == (pooled.sloAttainment >= 0.99))
    }
}
