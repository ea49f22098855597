import Foundation

/// Predicts, from a profile, how much open-loop load k instances at batch 1 sustain within the SLO:
/// the highest Poisson arrival rate at which k first-come-first-served instances, each taking the
/// time per request that the profile's batch-1 throughput at k instances implies (interpolated
/// between measured counts), keep the percentile of latency (waiting included) within the SLO. It
/// is a small queueing simulation with a fixed seed, so the same profile always gives the same
/// answer.
///
/// Beyond the paper: the paper adds instances while the tail sits below its band, which on a GPU
/// costs little latency. On a CPU an instance takes cores from the others, so each request runs
/// slower (resnet50 on 2 cores: about 41 ms with 1 instance, 75-80 ms with 2, for 2-8% more
/// throughput); with a 150 ms SLO the second instance leaves 70 ms for waiting instead of 110 and
/// sustains less load than one instance does. Ranking instance counts by the load they sustain
/// within the SLO catches that; ranking by throughput does not.
public struct InstanceCapacityModel: Sendable {
    /// The predicted sustainable arrival rate (requests/s) per instance count, 1 through the most.
    public let sustainableRates: [Int: Double]
    /// The time (ms) one instance takes per request, per instance count, 1 through the most.
    public let serviceMs: [Int: Double]

    /// Predicts the rates of 1 through `maxInstances` instances; empty without a profile.
    public init(profile: Profile?, maxInstances: Int, sloMs: Double, percentile: Double) {
        let services = Self.serviceMsByCount(profile: profile, maxInstances: maxInstances)
        serviceMs = services
        var rates: [Int: Double] = [:]
        for (instances, ms) in services {
            rates[instances] = Self.sustainableRate(
                serviceMs: ms, instances: instances, sloMs: sloMs, percentile: percentile)
        }
        sustainableRates = rates
    }

    /// The time (ms) one instance takes per request at 1 through `maxInstances` instances: from
    /// the best measured batch-1 throughput (k instances at t requests/s: k / t each), piecewise
    /// linear between and beyond the measured counts; empty without a profile.
    static func serviceMsByCount(profile: Profile?, maxInstances: Int) -> [Int: Double] {
        let serviceByCount = batchOneThroughput(profile: profile).filter { $0.value > 0 }
            .reduce(into: [Int: Double]()) { $0[$1.key] = 1000 * Double($1.key) / $1.value }
        let measured = serviceByCount.sorted { $0.key < $1.key }.map { (Double($0.key), $0.value) }
        guard !measured.isEmpty else { return [:] }
        var services: [Int: Double] = [:]
        for instances in 1...max(1, maxInstances) {
            services[instances] =
                serviceByCount[instances]
                ?? (measured.count > 1
                    ? ServiceTimeModel.interpolate(measured, at: Double(instances))
                    : measured[0].1 * Double(instances) / measured[0].0)
        }
        return services
    }

    /// The best measured batch-1 throughput per instance count (empty without a profile).
    static func batchOneThroughput(profile: Profile?) -> [Int: Double] {
        var throughputs: [Int: Double] = [:]
        for point in profile?.points ?? [] where point.batchSize == 1 {
            throughputs[point.instances] = max(throughputs[point.instances] ?? 0, point.throughput)
        }
        return throughputs
    }

    /// The instance count that sustains the most load; among counts predicted within
    /// ``nearTieRatio`` of the most, the one with the most throughput (the fewest of equals); `nil`
    /// without a profile. The queueing model sees each count's mean time per request only: where it
    /// ranks two counts nearly equal, the served machine decides, and there the count with more
    /// throughput has more headroom (resnet50 on 2 cores, 150 ms: 1 x 2 threads predicted 2% ahead
    /// of 2 x 1 thread from a probe that measured 5% less throughput for it; served, it sustained
    /// 28-30/s against 34-37/s in a capacity sweep).
    public var bestInstances: Int? {
        guard let best = sustainableRates.values.max() else { return nil }
        let near = sustainableRates.filter { $0.value >= Self.nearTieRatio * best }.keys.sorted()
        func throughput(_ instances: Int) -> Double {
            serviceMs[instances].map { 1000 * Double(instances) / $0 } ?? 0
        }
        return near.max { throughput($0) < throughput($1) || (throughput($0) == throughput($1) && $0 > $1) }
    }

    /// How close (as a fraction of the most) a count's predicted load must be to count as a tie.
    public static let nearTieRatio = 0.97

    /// Whether going from `instances - 1` to `instances` is predicted to sustain more load; `true`
    /// when either count was not predicted (no profile).
    public func instanceAddsSustainableLoad(_ instances: Int) -> Bool {
        guard let with = sustainableRates[instances], let without = sustainableRates[instances - 1] else {
            return true
        }
        return with > without
    }

    /// The percentile of latency (waiting included, ms) that `instances` instances are predicted to
    /// give at `ratePerSecond` Poisson arrivals; `nil` when the count was not predicted or the rate
    /// reaches their throughput (the queue then grows without bound).
    public func predictedTailMs(instances: Int, ratePerSecond: Double, percentile: Double) -> Double? {
        guard let serviceMs = serviceMs[instances], ratePerSecond > 0,
            ratePerSecond < 1000 * Double(instances) / serviceMs
        else { return nil }
        var latencies = Self.latencies(
            serviceMs: serviceMs, instances: instances, ratePerMs: ratePerSecond / 1000, unitGaps: Self.unitGaps)
        latencies.sort()
        let rank = Int((Double(latencies.count) * percentile / 100).rounded(.up)) - 1
        return latencies[min(max(rank, 0), latencies.count - 1)]
    }

    /// The highest Poisson arrival rate at which `instances` FCFS servers taking `serviceMs` each
    /// keep the `percentile` of latency within `sloMs`; 0 when one request alone does not fit.
    /// A bisection over the rate on simulated arrivals (the same seeded arrivals, scaled, at every
    /// rate).
    public static func sustainableRate(serviceMs: Double, instances: Int, sloMs: Double, percentile: Double) -> Double {
        guard serviceMs > 0, serviceMs <= sloMs, instances > 0 else { return 0 }
        let allowedMisses = Int((Double(unitGaps.count) * (1 - percentile / 100)).rounded(.down))
        var low = 0.0
        var high = Double(instances) / serviceMs  // saturation, per ms
        for _ in 0..<24 {
            let middle = (low + high) / 2
            let misses = latencies(serviceMs: serviceMs, instances: instances, ratePerMs: middle, unitGaps: unitGaps)
                .count(where: { $0 > sloMs })
            if misses <= allowedMisses { low = middle } else { high = middle }
        }
        return low * 1000
    }

    /// 4000 unit-rate exponential gaps from a fixed seed: at rate r each gap is gap / r.
    static let unitGaps: [Double] = {
        var generator = SplitMix64(seed: 0x5EED)
        return (0..<4000).map { _ in -log1p(-Double.random(in: 0..<1, using: &generator)) }
    }()

    /// Per arrival, its latency (waiting plus `serviceMs`) at `instances` first-come-first-served servers.
    static func latencies(serviceMs: Double, instances: Int, ratePerMs: Double, unitGaps: [Double]) -> [Double] {
        var freeAt = [Double](repeating: 0, count: instances)
        var now = 0.0
        return unitGaps.map { gap in
            now += gap / ratePerMs
            var earliest = 0
            for index in 1..<instances where freeAt[index] < freeAt[earliest] { earliest = index }
            let start = max(now, freeAt[earliest])
            freeAt[earliest] = start + serviceMs
            return start + serviceMs - now
        }
    }
}
