/// Which latency statistic must stay within the SLO for a load to count as sustained.
public enum SLOStatistic: String, Sendable, CaseIterable {
    /// The 99th percentile of per-request latency, with shed requests counted as misses: at least
    /// 99% of the requests sent are answered within the SLO. Policies steer by p99.
    case p99
    /// The mean per-request latency of answered requests, with at most 1% of requests shed.
    /// Policies steer by the median (the nearest percentile they can), as the seed paper's
    /// controllers steer by a mean.
    case mean
}

/// Finds, in simulation, the highest open-loop Poisson arrival rate a policy sustains on a profile
/// with the SLO statistic within the SLO: a bisection over the rate with a fixed seed, each
/// probe a run of ``durationSeconds`` of virtual time judged after ``warmupSeconds``.
public struct CapacitySearch: Sendable {
    /// The latencies.
    public var profile: Profile
    /// The policy searched.
    public var policy: PolicyKind
    /// The SLO in ms.
    public var sloMs: Double
    /// What must stay within it.
    public var statistic: SLOStatistic
    /// Virtual seconds per probe.
    public var durationSeconds: Double
    /// Virtual seconds at the start of each probe that are not judged (the policy converging).
    public var warmupSeconds: Double
    /// The seed of every probe.
    public var seed: UInt64
    /// Bisection steps.
    public var iterations: Int
    /// The largest batch a policy may use.
    public var maxBatch: Int

    /// Creates a search; the most instances a policy may use is the most the profile measured.
    public init(
        profile: Profile, policy: PolicyKind, sloMs: Double, statistic: SLOStatistic = .p99,
        durationSeconds: Double = 120, warmupSeconds: Double = 40, seed: UInt64 = 1, iterations: Int = 9,
        maxBatch: Int = 127
    ) {
        self.profile = profile
        self.policy = policy
        self.sloMs = sloMs
        self.statistic = statistic
        self.durationSeconds = durationSeconds
        self.warmupSeconds = warmupSeconds
        self.seed = seed
        self.iterations = iterations
        self.maxBatch = maxBatch
    }

    /// The percentile policies steer by for the statistic.
    public var steeringPercentile: Double { statistic == .p99 ? 99 : 50 }

    /// One probe at `rate` requests/s.
    public func probe(rate: Double) -> SimulationResult {
        let context = PolicyContext(
            profile: profile, maxBatch: maxBatch, maxInstances: profile.points.map(\.instances).max() ?? 1,
            sloMs: sloMs, percentile: steeringPercentile)
        var simulator = Simulator(
            profile: profile, policy: PolicyFactory.make(policy, context: context),
            settings: SimulationSettings(
                sloMs: sloMs, percentile: steeringPercentile, arrivals: .poisson(rate: rate),
                requests: max(1, Int((rate * durationSeconds).rounded())), seed: seed,
                measurementStartSeconds: warmupSeconds))
        return simulator.run()
    }

    /// Whether a probe's result meets the SLO statistic.
    public func sustained(_ result: SimulationResult) -> Bool {
        guard result.measuredRequests > 0 else { return false }
        switch statistic {
        case .p99:
            return result.sloAttainment >= 0.99
        case .mean:
            return result.meanMs <= sloMs
                && Double(result.measuredCompleted) >= 0.99 * Double(result.measuredRequests)
        }
    }

    /// What a search found.
    public struct Outcome: Sendable {
        /// The highest rate found sustained (0 if none was).
        public var rate: Double
        /// The probe at that rate (`nil` if none was sustained).
        public var result: SimulationResult?
    }

    /// Bisects the rate in (0, `ceiling`]; `ceiling` defaults to 1.5 x the profile's best
    /// throughput. Sustainability need not be monotonic in the rate: the answer is a sustained
    /// rate with an unsustained one within (ceiling / 2^iterations) above it.
    public func run(ceiling: Double? = nil) -> Outcome {
        var high = ceiling ?? 1.5 * (profile.points.map(\.throughput).max() ?? 1)
        var low = 0.0
        var best: SimulationResult?
        let top = probe(rate: high)
        if sustained(top) { return Outcome(rate: high, result: top) }
        for _ in 0..<iterations {
            let middle = (low + high) / 2
            let result = probe(rate: middle)
            if sustained(result) {
                low = middle
                best = result
            } else {
                high = middle
            }
        }
        return Outcome(rate: low, result: best)
    }
}
