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
/// with the SLO statistic within the SLO: a bisection over the rate, each probe ``seeds`` runs of
/// ``durationSeconds`` of virtual time (seeds ``seed``, ``seed`` + 1, ...) judged after
/// ``warmupSeconds`` on their requests pooled. One seed's arrivals decide a rate near a policy's
/// knee by chance (the same policy may pass 47/s and fail 46/s); pooling several is what
/// `bench/pooled_capacity.py` does with trials on a real server.
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
    /// The first seed of every probe.
    public var seed: UInt64
    /// Runs per probe, each with its own seed, judged pooled.
    public var seeds: Int
    /// Each run is made longer than ``durationSeconds`` where needed to judge at least this many
    /// requests: at DeePVS's 2 requests/s, 80 judged seconds hold 160 requests, and whether their
    /// mean is within the SLO is then mostly the seed's doing.
    public var minimumJudgedRequests: Int
    /// Bisection steps.
    public var iterations: Int
    /// The largest batch a policy may use.
    public var maxBatch: Int

    /// Creates a search; the most instances a policy may use is the most the profile measured.
    public init(
        profile: Profile, policy: PolicyKind, sloMs: Double, statistic: SLOStatistic = .p99,
        durationSeconds: Double = 120, warmupSeconds: Double = 40, seed: UInt64 = 1, seeds: Int = 1,
        minimumJudgedRequests: Int = 0, iterations: Int = 9, maxBatch: Int = 127
    ) {
        self.profile = profile
        self.policy = policy
        self.sloMs = sloMs
        self.statistic = statistic
        self.durationSeconds = durationSeconds
        self.warmupSeconds = warmupSeconds
        self.seed = seed
        self.seeds = max(1, seeds)
        self.minimumJudgedRequests = max(0, minimumJudgedRequests)
        self.iterations = iterations
        self.maxBatch = maxBatch
    }

    /// The percentile policies steer by for the statistic.
    public var steeringPercentile: Double { statistic == .p99 ? 99 : 50 }

    /// Requests one run at `rate` sends: ``durationSeconds`` worth, or enough to judge
    /// ``minimumJudgedRequests`` after the warm-up.
    public func requests(rate: Double) -> Int {
        let judged = max(rate * max(0, durationSeconds - warmupSeconds), Double(minimumJudgedRequests))
        return max(1, Int((rate * warmupSeconds + judged).rounded()))
    }

    /// One run at `rate` requests/s with `seed` (by default the search's first seed).
    public func probe(rate: Double, seed: UInt64? = nil) -> SimulationResult {
        let context = PolicyContext(
            profile: profile, maxBatch: maxBatch, maxInstances: profile.points.map(\.instances).max() ?? 1,
            sloMs: sloMs, percentile: steeringPercentile)
        var simulator = Simulator(
            profile: profile, policy: PolicyFactory.make(policy, context: context),
            settings: SimulationSettings(
                sloMs: sloMs, percentile: steeringPercentile, arrivals: .poisson(rate: rate),
                requests: requests(rate: rate), seed: seed ?? self.seed,
                measurementStartSeconds: warmupSeconds))
        return simulator.run()
    }

    /// The measured part of one or more runs, pooled: what the SLO statistic is judged on.
    public struct PooledRuns: Sendable, Equatable {
        /// Requests that arrived in the measured parts.
        public var requests = 0
        /// Of those, answered.
        public var completed = 0
        /// Of those, answered within the SLO (shed ones are misses).
        public var withinSLO = 0.0
        /// Sum of the answered requests' latencies, in ms.
        public var latencySumMs = 0.0

        /// Nothing yet.
        public init() {}

        /// One run's measured part.
        public init(_ result: SimulationResult) {
            add(result)
        }

        /// Adds a run's measured part.
        public mutating func add(_ result: SimulationResult) {
            requests += result.measuredRequests
            completed += result.measuredCompleted
            withinSLO += result.sloAttainment * Double(result.measuredRequests)
            latencySumMs += result.meanMs * Double(result.measuredCompleted)
        }

        /// Answered within the SLO as a fraction of all requests (0 without requests).
        public var sloAttainment: Double { requests > 0 ? withinSLO / Double(requests) : 0 }
        /// Mean latency of the answered requests (0 without any).
        public var meanMs: Double { completed > 0 ? latencySumMs / Double(completed) : 0 }
    }

    /// Every seed's run at `rate`, pooled, and the first seed's result.
    public func pooledProbe(rate: Double) -> (pooled: PooledRuns, first: SimulationResult) {
        let first = probe(rate: rate)
        var pooled = PooledRuns(first)
        for offset in 1..<seeds {
            pooled.add(probe(rate: rate, seed: seed &+ UInt64(offset)))
        }
        return (pooled, first)
    }

    /// Whether pooled runs meet the SLO statistic.
    public func sustained(_ runs: PooledRuns) -> Bool {
        guard runs.requests > 0 else { return false }
        switch statistic {
        case .p99:
            return runs.sloAttainment >= 0.99
        case .mean:
            return runs.meanMs <= sloMs && Double(runs.completed) >= 0.99 * Double(runs.requests)
        }
    }

    /// What a search found.
    public struct Outcome: Sendable {
        /// The highest rate found sustained (0 if none was).
        public var rate: Double
        /// The first seed's run at that rate (`nil` if none was sustained).
        public var result: SimulationResult?
    }

    /// Bisects the rate in (0, `ceiling`]; `ceiling` defaults to 1.5 x the profile's best
    /// throughput. Sustainability need not be monotonic in the rate: the answer is a sustained
    /// rate with an unsustained one within (ceiling / 2^iterations) above it.
    public func run(ceiling: Double? = nil) -> Outcome {
        var high = ceiling ?? 1.5 * (profile.points.map(\.throughput).max() ?? 1)
        var low = 0.0
        var best: SimulationResult?
        let top = pooledProbe(rate: high)
        if sustained(top.pooled) { return Outcome(rate: high, result: top.first) }
        for _ in 0..<iterations {
            let middle = (low + high) / 2
            let result = pooledProbe(rate: middle)
            if sustained(result.pooled) {
                low = middle
                best = result.first
            } else {
                high = middle
            }
        }
        return Outcome(rate: low, result: best)
    }
}
