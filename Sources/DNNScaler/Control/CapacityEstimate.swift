import DequeModule
import Foundation

/// How much of its capacity a model uses: the smoothed arrival rate (shed requests count, they
/// arrived) over the rate the best configuration the controller can reach sustains within the
/// SLO. What an autoscaler should target: below 1 the model keeps its SLO; a fleet kept at, say,
/// 0.7 scales out before shedding starts.
///
/// The sustainable rate is predicted once from the profile: for every reachable batch limit and
/// instance count, a seeded queueing simulation of Poisson arrivals at first-come-first-served
/// instances that each take up to the batch limit of what is waiting (the server's dynamic
/// batcher without a queue delay), with each batch taking the time the profile measured for its
/// size at that instance count; the highest rate whose percentile of latency stays within the SLO
/// wins. Served batch times then correct it: when batches take longer than the profile said (a
/// noisy neighbour, a slower node), the next prediction simulates them. Pure value type with no
/// clock: the server and the simulator feed it the same counters.
public struct CapacityEstimate: Sendable {
    /// The shortest span (s) the arrival rate is counted over.
    public static let arrivalWindowSeconds = 5.0
    /// Arrivals the rate is counted from, at least, where the shortest span holds fewer: at one
    /// request per second, five seconds hold five arrivals, and a rate counted from five Poisson
    /// arrivals is off by 45% (one standard deviation); from 50, by 14%.
    public static let arrivalWindowMinimumCount: UInt64 = 50
    /// The longest span (s) the arrival rate is counted over, however few arrived: how late the
    /// gauge may follow a falling load.
    public static let arrivalWindowMaxSeconds = 60.0
    /// How much one judged sample of served batch times moves the correction (exponential weight).
    public static let correctionWeight = 0.3
    /// Batches a correction sample needs before it is judged.
    public static let correctionMinimumBatches: UInt64 = 16
    /// The correction's bounds: beyond them the profile is wrong, not the node slower.
    public static let correctionBounds = 0.25...4.0
    /// The share of the time the instances must spend computing for their batch times to count
    /// towards the correction: at light load batches run on cold caches and waking cores, slower
    /// than under the load the capacity is about (the profile measured them saturated).
    public static let correctionMinimumBusy = 0.5
    /// Seconds between two predictions from what was served (the spread of batch times and the
    /// time a request spends in the server outside its queue and batch).
    public static let repredictionSeconds = 5.0
    /// Batch times the spread is read from, at least.
    public static let spreadMinimumBatches = 100
    /// Quantiles the spread keeps.
    static let spreadQuantiles = 50

    /// The predicted sustainable rate (requests/s) of the best reachable configuration, with the
    /// batch times corrected as they were when it was predicted; `nil` without a profile.
    public private(set) var predictedRate: Double?
    /// The configuration that rate belongs to.
    public private(set) var predictedConfiguration: ServingConfiguration?
    /// Observed over predicted batch time (1: as profiled).
    public private(set) var serviceCorrection = 1.0
    /// The arrival rate (requests/s) over the last ``arrivalWindowSeconds``, or over as long as
    /// it took ``arrivalWindowMinimumCount`` requests to arrive, up to ``arrivalWindowMaxSeconds``.
    public private(set) var arrivalRate = 0.0
    /// The mean time (ms) a served request spends in the server outside its queue and batch
    /// (reading and decoding, assembling and splitting batches), taken off the SLO's budget.
    public private(set) var overheadMs = 0.0
    /// Observed batch times over their mean, at evenly spaced quantiles (empty: every batch takes
    /// its mean time). A spread of batch times raises the tail at the same load.
    public private(set) var batchTimeSpread: [Double] = []

    private let batchTimes: BatchTimeModel
    private let candidates: [ServingConfiguration]
    private let sloMs: Double
    private let percentile: Double
    private let responseAllowance: Double
    private var last: (time: Double, statistics: ModelStatistics)?
    /// (time, cumulative arrivals) at each update over the longest window, oldest first.
    private var arrivalHistory: Deque<(time: Double, arrivals: UInt64)> = []
    private var pending = (observedNs: 0.0, predictedNs: 0.0, batches: UInt64(0))
    private var lastPrediction: Double?
    private var lastPredictionServed: UInt64 = 0
    /// The ``serviceCorrection`` the last prediction simulated with.
    private var predictionCorrection = 1.0

    /// Predicts from `profile` over the configurations a policy may reach: batch limits up to
    /// `maxBatch` and 1 through `maxInstances` instances, or only `fixed` (the static policy).
    /// `responseAllowance` is the share of the SLO kept for what the server cannot see (the
    /// request's and the response's way, the client's side), as the runtime keeps it when
    /// shedding (``RuntimeSettings/responseAllowance``).
    public init(
        profile: Profile?, maxBatch: Int, maxInstances: Int, sloMs: Double, percentile: Double,
        fixed: ServingConfiguration? = nil, responseAllowance: Double = RuntimeSettings.defaultResponseAllowance
    ) {
        self.responseAllowance = responseAllowance
        batchTimes = BatchTimeModel(profile: profile)
        candidates =
            fixed.map { [$0] }
            ?? Self.instanceCandidates(maxInstances).flatMap { instances in
                Self.batchCandidates(maxBatch).map { ServingConfiguration(batchLimit: $0, instances: instances) }
            }
        self.sloMs = sloMs
        self.percentile = percentile
        predict()
    }

    /// The sustainable rate now: the prediction, scaled by how the served-time correction moved
    /// since (until the next prediction simulates it).
    public var sustainableRate: Double? { predictedRate.map { $0 * predictionCorrection / serviceCorrection } }

    /// Arrival rate over sustainable rate; `nil` without a prediction (no profile).
    public var used: Double? {
        guard let rate = sustainableRate, rate > 0 else { return nil }
        return arrivalRate / rate
    }

    /// Takes over `previous`'s smoothed arrival rate, counters and what it learnt from served
    /// requests (a new SLO or policy changes the capacity, not the load or the machine).
    public mutating func carryArrivals(from previous: CapacityEstimate) {
        arrivalRate = previous.arrivalRate
        arrivalHistory = previous.arrivalHistory
        last = previous.last
        serviceCorrection = previous.serviceCorrection
        overheadMs = previous.overheadMs
        batchTimeSpread = previous.batchTimeSpread
        predict()
    }

    /// Folds in the runtime's cumulative `statistics` at `time` (seconds): arrivals (all
    /// outcomes), batches run per size with their backend time at `instances` instances, and the
    /// served requests' time in the server, queue and batch. `serviceWindow`, the recent batch
    /// times, gives their spread.
    public mutating func update(
        time: Double, statistics: ModelStatistics, instances: Int, serviceWindow: LatencyWindow? = nil
    ) {
        defer { last = (time, statistics) }
        guard let last, time > last.time else {
            if arrivalHistory.isEmpty { arrivalHistory.append((time, statistics.arrivals)) }
            return
        }
        let before = last.statistics
        let elapsed = time - last.time
        countArrivals(time: time, arrivals: statistics.arrivals)
        var interval = (observedNs: 0.0, predictedNs: 0.0, batches: UInt64(0))
        for (size, total) in statistics.batches {
            let earlier = before.batches[size] ?? DurationStatistic()
            let count = total.count &- earlier.count
            guard count > 0, let predictedMs = batchTimes.ms(batchSize: size, instances: instances) else { continue }
            interval.observedNs += Double(total.ns &- earlier.ns)
            interval.predictedNs += predictedMs * 1e6 * Double(count)
            interval.batches += count
        }
        if interval.observedNs >= Self.correctionMinimumBusy * elapsed * 1e9 * Double(max(1, instances)) {
            pending.observedNs += interval.observedNs
            pending.predictedNs += interval.predictedNs
            pending.batches += interval.batches
        }
        if pending.batches >= Self.correctionMinimumBatches, pending.predictedNs > 0 {
            let ratio = pending.observedNs / pending.predictedNs
            let corrected = serviceCorrection + Self.correctionWeight * (ratio - serviceCorrection)
            serviceCorrection = min(max(corrected, Self.correctionBounds.lowerBound), Self.correctionBounds.upperBound)
            pending = (0, 0, 0)
        }
        let served = statistics.success.count &- before.success.count
        if served > 0 {
            let outside =
                Double(statistics.success.ns &- before.success.ns) - Double(statistics.queue.ns &- before.queue.ns)
                - Double(statistics.computeInfer.ns &- before.computeInfer.ns)
            let sample = max(0, outside / Double(served) / 1e6)
            overheadMs += Self.correctionWeight * (sample - overheadMs)
        }
        // An idle model keeps its prediction: only served requests change what it rests on.
        guard statistics.success.count != lastPredictionServed,
            time - (lastPrediction ?? -.infinity) >= Self.repredictionSeconds
        else { return }
        lastPredictionServed = statistics.success.count
        if let serviceWindow {
            let recent = serviceWindow.latencies(since: time - 2 * Self.repredictionSeconds).sorted()
            if recent.count >= Self.spreadMinimumBatches {
                let quantiles = (0..<Self.spreadQuantiles).map { index in
                    recent[
                        min(
                            recent.count - 1,
                            Int(Double(recent.count) * (Double(index) + 0.5) / Double(Self.spreadQuantiles)))]
                }
                let mean = quantiles.reduce(0, +) / Double(quantiles.count)
                if mean > 0 { batchTimeSpread = quantiles.map { $0 / mean } }
            }
        }
        lastPrediction = time
        predict()
    }

    /// Counts the arrival rate back from `time` to the most recent update at least
    /// ``arrivalWindowSeconds`` earlier that leaves ``arrivalWindowMinimumCount`` arrivals in the
    /// span, or to the oldest within ``arrivalWindowMaxSeconds``. Unlike an exponential average of
    /// a fixed time constant, its error stays bounded at low rates and its delay short at high ones.
    private mutating func countArrivals(time: Double, arrivals: UInt64) {
        arrivalHistory.append((time, arrivals))
        while let oldest = arrivalHistory.first, time - oldest.time > Self.arrivalWindowMaxSeconds,
            arrivalHistory.count > 2
        {
            arrivalHistory.removeFirst()
        }
        // The oldest sample may lie just past the longest span (updates are not evenly spaced).
        var start = arrivalHistory[0]
        for sample in arrivalHistory.reversed().dropFirst()
        where time - sample.time >= Self.arrivalWindowSeconds
            && arrivals &- sample.arrivals >= Self.arrivalWindowMinimumCount
        {
            start = sample
            break
        }
        guard time > start.time else { return }
        arrivalRate = Double(arrivals &- start.arrivals) / (time - start.time)
    }

    /// The best candidate's sustainable rate with the current spread and overhead.
    private mutating func predict() {
        var best: (rate: Double, configuration: ServingConfiguration)?
        let budgetMs = sloMs * (1 - responseAllowance) - overheadMs
        // Served batch times scale the profile's inside the simulation: dividing its rate afterwards
        // would scale the SLO too, and overstate the capacity of a slower node.
        let correction = serviceCorrection
        predictionCorrection = correction
        for configuration in candidatesBySaturation() {
            guard batchTimes.hasPrediction(instances: configuration.instances),
                let profiledSingle = batchTimes.ms(batchSize: 1, instances: configuration.instances),
                let profiledFull = batchTimes.ms(
                    batchSize: configuration.batchLimit, instances: configuration.instances)
            else { continue }
            let single = profiledSingle * correction
            let full = profiledFull * correction
            // No configuration sustains more than it serves saturated: skip those that cannot win.
            let saturation =
                1000 * Double(configuration.instances) * max(1 / single, Double(configuration.batchLimit) / full)
            if let best, saturation <= best.rate { continue }
            let rate = Self.sustainableRate(
                batchMs: {
                    (batchTimes.ms(batchSize: $0, instances: configuration.instances) ?? .infinity) * correction
                },
                batchLimit: configuration.batchLimit, instances: configuration.instances, sloMs: budgetMs,
                percentile: percentile, spread: batchTimeSpread)
            if rate > (best?.rate ?? 0) { best = (rate, configuration) }
        }
        predictedRate = batchTimes.measured.isEmpty ? nil : (best?.rate ?? 0)
        predictedConfiguration = best?.configuration
    }

    /// The candidates, the one that serves most when saturated first, so that those that cannot
    /// beat the best found so far are skipped.
    private func candidatesBySaturation() -> [ServingConfiguration] {
        func saturation(_ configuration: ServingConfiguration) -> Double {
            guard let full = batchTimes.ms(batchSize: configuration.batchLimit, instances: configuration.instances),
                full > 0
            else { return 0 }
            return Double(configuration.instances * configuration.batchLimit) / full
        }
        return candidates.sorted { saturation($0) > saturation($1) }
    }

    /// Batch limits tried: powers of two up to `maxBatch`, and `maxBatch`.
    static func batchCandidates(_ maxBatch: Int) -> [Int] {
        var sizes: [Int] = []
        var size = 1
        while size < maxBatch {
            sizes.append(size)
            size *= 2
        }
        return sizes + [max(1, maxBatch)]
    }

    /// Instance counts tried: every count up to 8, then powers of two (and the most).
    static func instanceCandidates(_ maxInstances: Int) -> [Int] {
        let most = max(1, maxInstances)
        var counts = Array(1...min(most, 8))
        var count = 16
        while count < most {
            counts.append(count)
            count *= 2
        }
        if most > 8 { counts.append(most) }
        return counts
    }

    /// The highest Poisson arrival rate (requests/s) at which `instances` first-come-first-served
    /// instances, each taking up to `batchLimit` waiting requests at once and `batchMs(n)` for a
    /// batch of n, keep the `percentile` of latency (waiting included) within `sloMs`. A bisection
    /// over the same seeded arrivals as ``InstanceCapacityModel``, scaled.
    public static func sustainableRate(
        batchMs: (Int) -> Double, batchLimit: Int, instances: Int, sloMs: Double, percentile: Double,
        spread: [Double] = []
    ) -> Double {
        let single = batchMs(1)
        guard single > 0, single <= sloMs, instances > 0, batchLimit > 0 else { return 0 }
        // Half of the instance model's seeded arrivals: this runs for every candidate configuration,
        // at load and again as served batch times come in.
        let gaps = InstanceCapacityModel.unitGaps.prefix(simulatedArrivals)
        let allowedMisses = Int((Double(gaps.count) * (1 - percentile / 100)).rounded(.down))
        // Each batch's time is its mean times a quantile of the spread, in a fixed random order.
        let multipliers = spread.isEmpty ? [1.0] : spreadOrder.map { spread[$0 % spread.count] }
        let fullBatch = batchMs(batchLimit)
        var low = 0.0
        // Saturation: every instance always running full batches (per ms).
        let saturation = fullBatch.isFinite ? Double(instances * batchLimit) / fullBatch : 0
        var high = max(saturation, Double(instances) / single)
        // Batch times by size, looked up once instead of per simulated batch.
        let table = (0...batchLimit).map { batchMs(max(1, $0)) }
        var arrivals = [Double](repeating: 0, count: gaps.count)
        // Bisect to within one percent (at most 24 halvings).
        for _ in 0..<24 where high - low > 0.01 * high {
            let middle = (low + high) / 2
            var now = 0.0
            for index in gaps.indices {
                now += gaps[index] / middle
                arrivals[index] = now
            }
            let misses = batchedMisses(
                arrivals: arrivals, batchMs: { table[$0] }, batchLimit: batchLimit, instances: instances,
                sloMs: sloMs, allowed: allowedMisses, multipliers: multipliers)
            if misses <= allowedMisses { low = middle } else { high = middle }
        }
        return low * 1000
    }

    /// Arrivals each simulated rate is judged on.
    static let simulatedArrivals = 2000

    /// Indices into a spread's quantiles, one per simulated batch, from a fixed seed.
    static let spreadOrder: [Int] = {
        var generator = SplitMix64(seed: 0x5EED5)
        return (0..<InstanceCapacityModel.unitGaps.count).map { _ in Int(generator.next() % 1_000_003) }
    }()

    /// Requests whose latency exceeds `sloMs` (counting stops past `allowed`).
    static func batchedMisses(
        arrivals: [Double], batchMs: (Int) -> Double, batchLimit: Int, instances: Int, sloMs: Double, allowed: Int,
        multipliers: [Double] = [1]
    ) -> Int {
        var freeAt = [Double](repeating: 0, count: instances)
        var next = 0
        var misses = 0
        var batchIndex = 0
        while next < arrivals.count {
            var earliest = 0
            for index in 1..<instances where freeAt[index] < freeAt[earliest] { earliest = index }
            let start = max(freeAt[earliest], arrivals[next])
            var size = 1
            while size < batchLimit, next + size < arrivals.count, arrivals[next + size] <= start { size += 1 }
            let done = start + batchMs(size) * multipliers[batchIndex % multipliers.count]
            batchIndex += 1
            for index in next..<(next + size) where done - arrivals[index] > sloMs { misses += 1 }
            if misses > allowed { return misses }
            freeAt[earliest] = done
            next += size
        }
        return misses
    }
}

/// The time (ms) one instance takes for a batch of n at k instances, from a profile's throughput
/// (k instances at t samples/s running batches of b: k·b/t each), linear in the batch size
/// between measured sizes; at an instance count the profile lacks, the batch-1 time comes from
/// ``InstanceCapacityModel``'s interpolation and the batch shape from the nearest measured count.
struct BatchTimeModel: Sendable {
    /// Per measured instance count: (batch size, ms) ascending.
    let measured: [Int: [(size: Double, ms: Double)]]
    /// Batch-1 ms per instance count, measured or interpolated (``InstanceCapacityModel``).
    let singleMs: [Int: Double]

    init(profile: Profile?) {
        var byCount: [Int: [Int: Double]] = [:]
        for point in profile?.points ?? [] where point.throughput > 0 {
            let ms = 1000 * Double(point.instances * point.batchSize) / point.throughput
            byCount[point.instances, default: [:]][point.batchSize] = min(
                byCount[point.instances]?[point.batchSize] ?? .infinity, ms)
        }
        measured = byCount.mapValues { sizes in sizes.sorted { $0.key < $1.key }.map { (Double($0.key), $0.value) } }
        let maxCount = max(1, (byCount.keys.max() ?? 1) * 4)
        singleMs = InstanceCapacityModel.serviceMsByCount(profile: profile, maxInstances: maxCount)
    }

    func hasPrediction(instances: Int) -> Bool {
        measured[instances] != nil || (!measured.isEmpty && singleMs[instances] != nil)
    }

    func ms(batchSize: Int, instances: Int) -> Double? {
        if let points = measured[instances] { return Self.shape(points, at: Double(batchSize)) }
        guard let single = singleMs[instances],
            let nearest = measured.keys.min(by: { abs($0 - instances) < abs($1 - instances) }),
            let points = measured[nearest], let nearestSingle = Self.shape(points, at: 1), nearestSingle > 0,
            let scaled = Self.shape(points, at: Double(batchSize))
        else { return nil }
        return single * scaled / nearestSingle
    }

    /// Linear through the measured sizes; beyond them along the nearest segment (proportional
    /// with one point), never below a tenth of the smallest measured time.
    static func shape(_ points: [(size: Double, ms: Double)], at size: Double) -> Double? {
        guard let first = points.first else { return nil }
        guard points.count > 1 else { return first.ms * size / first.size }
        var lower = points[0]
        var upper = points[1]
        for index in 1..<points.count where points[index - 1].size <= size {
            lower = points[index - 1]
            upper = points[index]
        }
        let slope = (upper.ms - lower.ms) / (upper.size - lower.size)
        return max(first.ms / 10, lower.ms + slope * (size - lower.size))
    }
}
