/// Batch x instances together (beyond the paper). Two time scales:
/// - fast (every 1 s): the batch limit is bisected within the band, as DNNScaler's batching does;
/// - slow: the instance count moves only when the batch loop is pinned at a bound - above the SLO
///   at batch 1 removes an instance; below the band at the largest batch while requests queue adds
///   one - and a new count gets 3 s to warm up.
/// When not backlogged it holds: the batch only grows while requests queue or are shed.
/// Above the SLO the batch goes down, unless the tail comes from waiting for batches (over twice
/// the batch time, or a backlog while the batch time is in the band): then it goes up by a quarter,
/// within the largest batch that fits the SLO. On the way down it never goes below the smallest
/// batch whose profiled throughput keeps up with the arrival rate, nor back to a limit it left as
/// too small while the load stays.
/// Above the SLO at batch 1 it tries the other instance counts (fewer first, then more), remembering
/// the tail seen at each and undoing a move that made it worse. It adds instances only up to a count
/// the profile shows faster and ``InstanceCapacityModel`` does not predict to sustain less load.
/// It starts from the profile's highest-throughput point whose per-batch latency leaves half the
/// SLO for queueing, over the whole grid, so it starts no worse than the better pure mode; at batch 1
/// with the instance count the capacity model predicts to sustain the most load, where that is
/// clearly more (``minimumPredictedGain``) than the half-SLO count's (as DNNScalerPolicy starts); and it
/// never raises the batch limit past what the profile says fits in half the SLO, nor past the batch
/// where the profile's throughput stops rising (a larger one would only add latency).
public struct JointPolicy: ScalingPolicy {
    /// `joint`.
    public let name = PolicyKind.joint.rawValue
    /// The fast loop's period: 1 s; while batching (limit over 1), ten of the recent batch times,
    /// up to 3 s (DNNScaler's batching period): a second of 200 ms batches judges five of them.
    public var period: Double { recentBatchLimit > 1 ? min(3, max(1, 10 * recentBatchMs / 1000)) : 1 }
    /// The batch execution time (at the steering percentile) the last decision saw, in ms.
    private var recentBatchMs = 0.0
    /// The batch limit the last decision left in force.
    private var recentBatchLimit = 1
    /// Whichever lever moved last.
    public private(set) var mode: ScalingMode?
    /// The profile's best point with room for queueing.
    public let initialConfiguration: ServingConfiguration
    /// The upper end of the batch search.
    public let maxBatch: Int
    /// The most instances.
    public let maxInstances: Int

    private var searchLow = 1
    private var searchHigh: Int
    private var decideAfter = 0.0
    /// Per instance count, the largest batch whose profiled batch time leaves half the SLO for
    /// waiting: a burst can then never form a batch that alone breaks the SLO.
    private var batchCaps: [Int: Int]
    /// Per instance count, the largest batch whose profiled batch time fits the whole SLO (and still
    /// raises throughput): the cap is extended to it when nothing else can add throughput.
    private let wideBatchCaps: [Int: Int]
    /// Per instance count, the profile's best throughput within the batch cap (empty without a profile).
    private let profiledThroughput: [Int: Double]
    /// The load each instance count at batch 1 is predicted to sustain within the SLO.
    private let capacity: InstanceCapacityModel
    /// The profile's batch times (nil without a profile): a batch limit whose throughput is below
    /// the arrival rate is never chosen on the way down.
    private let batchTimes: ServiceTimeModel?
    /// How much more than the arrival rate a batch limit's profiled throughput must offer for the
    /// limit to keep up (a server at 100% utilization queues without bound).
    public static let keepUpHeadroom = 1.1
    /// How much more throughput (by the profile) another instance count must offer to be added.
    public static let instanceGainRatio = 1.03
    /// How much worse than before an instance move the tail must get (and above the SLO) for the
    /// move to be undone.
    public static let undoRatio = 1.1
    /// Decisions in a row above the SLO at batch 1 before an instance move, unless backlogged.
    public static let confirmationsBeforeInstanceMove = 2
    /// A tail over this many batch times is made of waiting for batches, not of running them.
    public static let waitingForBatchesFactor = 2.0
    /// The batch limit grows by this fraction when requests wait for more than one batch.
    public static let batchRaiseFraction = 0.25
    /// A batch time at most this share of the tail: the tail is mostly queueing.
    public static let queueingShare = 0.5
    /// The weight of one decision's arrival rate in the smoothed one (about twenty decisions).
    public static let arrivalSmoothingWeight = 0.05
    /// Seconds new instances get before the next decision.
    public let warmupSeconds = PolicyTuning.instanceWarmupSeconds

    /// The smallest batch limit up to `upTo` whose profiled throughput at `instances` keeps up with
    /// `rate` (with ``keepUpHeadroom``); nil without a profile or when none does.
    func smallestKeepingUp(rate: Double, instances: Int, upTo: Int) -> Int? {
        guard let batchTimes, rate > 0, upTo >= 1 else { return nil }
        return (1...upTo).first {
            Double(instances * $0) * 1000 / batchTimes.batchMs(instances: instances, batch: $0)
                >= Self.keepUpHeadroom * rate
        }
    }
    /// The tail seen at each instance count (smoothed): an instance move that made it worse is
    /// undone, and not tried again while the memory says it is worse. Profiles are measured in
    /// isolation; on a small CPU the network threads change which count is faster.
    private var tailByInstances: [Int: Double] = [:]
    private var previousInstances: Int?
    /// Decisions in a row whose tail was above the SLO: an instance move (which builds sessions and
    /// costs CPU on a small machine) needs two, unless requests queue up or are shed.
    private var consecutiveAboveSLO = 0
    /// An instance count that an undo left is not tried again before this time (seconds): on a noisy
    /// machine a single good window would otherwise invite the same move back and forth.
    private var retryAfter: [Int: Double] = [:]
    /// Per instance count, a batch limit that was raised from because requests waited for more
    /// than one batch, and the (smoothed) arrival rate then: the bisection does not go back down to
    /// it until the load falls below ``smallBatchReleaseRatio`` of that rate. On the way down, a
    /// window whose tail is just over the SLO would otherwise undo the raise and queue again.
    private var tooSmallBatch: [Int: (batch: Int, rate: Double)] = [:]
    /// See ``tooSmallBatch``.
    public static let smallBatchReleaseRatio = 0.7
    /// The arrival rate, smoothed over about twenty decisions: at 5 requests/s a 30% fall is then
    /// about four of its standard deviations.
    private var smoothedArrivalRate = 0.0
    /// Seconds an undone instance count rests.
    public let retryCooldownSeconds = 60.0

    private func mayTry(_ instances: Int, at time: Double) -> Bool {
        time >= (retryAfter[instances] ?? 0)
    }

    /// The fewest instances above `instances` that the profile shows with more throughput (over 3%)
    /// than `instances`, within the batch caps, and that ``InstanceCapacityModel`` does not predict
    /// to sustain less load within the SLO: `instances + 1` where the profile did not measure it,
    /// `nil` at the most instances or where no larger measured count qualifies. Not always the next
    /// count: a profile may dip before it rises (DeePVS on a GPU: 1.84/s at 3 instances, 1.72 at 4,
    /// 2.16 at 5); and not any faster count: PNASNet-5-Mobile on a GPU runs 3% faster at 8 instances
    /// than at 4, each request taking twice as long, which sustains 30% less load within 82 ms.
    private func gainingInstances(above instances: Int) -> Int? {
        guard instances < maxInstances else { return nil }
        guard profiledThroughput[instances + 1] != nil else { return instances + 1 }
        let current = profiledThroughput[instances] ?? 0
        let currentLoad = capacity.sustainableRates[instances] ?? 0
        return ((instances + 1)...maxInstances).first {
            (profiledThroughput[$0] ?? 0) > Self.instanceGainRatio * current
                && (capacity.sustainableRates[$0] ?? .infinity) >= currentLoad
        }
    }

    /// Creates the policy, seeded from the profile in `context`.
    public init(context: PolicyContext) {
        maxBatch = max(1, min(PolicyTuning.largestBatch, context.maxBatch))
        maxInstances = max(1, context.maxInstances)
        var caps: [Int: Int] = [:]
        var wideCaps: [Int: Int] = [:]
        var times: ServiceTimeModel?
        if let profile = context.profile, !profile.points.isEmpty {
            let model = ServiceTimeModel(profile: profile)
            times = model
            let maxBatch = self.maxBatch
            for instances in 1...maxInstances {
                func fitting(_ budget: Double) -> Int {
                    let fits = (1...maxBatch).last { model.batchMs(instances: instances, batch: $0) <= budget } ?? 1
                    return min(
                        fits, Self.saturatingBatch(profile: profile, instances: instances, upTo: fits) ?? maxBatch)
                }
                caps[instances] = fitting(context.sloMs / 2)
                wideCaps[instances] = fitting(context.sloMs)
            }
        }
        wideBatchCaps = wideCaps
        batchTimes = times
        var throughputs: [Int: Double] = [:]
        for point in context.profile?.points ?? [] where point.batchSize <= (caps[point.instances] ?? maxBatch) {
            throughputs[point.instances] = max(throughputs[point.instances] ?? 0, point.throughput)
        }
        profiledThroughput = throughputs
        batchCaps = caps
        let capacity = InstanceCapacityModel(
            profile: context.profile, maxInstances: maxInstances, sloMs: context.sloMs, percentile: context.percentile)
        self.capacity = capacity
        let seed = Self.seed(context: context, maxBatch: maxBatch, maxInstances: maxInstances, capacity: capacity)
        initialConfiguration = seed
        searchHigh = caps[seed.instances] ?? maxBatch
        mode = initialConfiguration.instances > 1 ? .multiTenancy : .batching
    }

    /// The smallest measured batch at `instances` whose throughput is within 3% of the best measured
    /// one up to `upTo`: past it a larger batch only adds latency. Nil when nothing was measured there,
    /// or when throughput still rose at the largest measured batch.
    static func saturatingBatch(profile: Profile, instances: Int, upTo: Int) -> Int? {
        let measured = profile.points.filter { $0.instances == instances && $0.batchSize <= upTo }
        guard let best = measured.map(\.throughput).max(), let largest = measured.map(\.batchSize).max() else {
            return nil
        }
        let saturating =
            measured.filter { $0.throughput >= PolicyTuning.sameThroughputRatio * best }.map(\.batchSize).min()
            ?? largest
        // Still rising at the largest measured batch (and that batch is not the only one): no
        // evidence that a larger one gains nothing.
        return saturating == largest && measured.count > 1 ? nil : saturating
    }

    /// "add an instance", or "add instances: 3 -> 5" for a jump past counts the profile shows no faster.
    private static func describeAddition(from instances: Int, to more: Int) -> String {
        more == instances + 1 ? "add an instance" : "add instances: \(instances) -> \(more)"
    }

    /// The next batch limit up when waiting, not execution, breaks the SLO: a quarter more, at most
    /// the largest batch whose profiled time fits the whole SLO (nil when already there), so that a
    /// burst never forms a batch far larger than the last one served.
    private func raisedBatch(from batch: Int, instances: Int) -> Int? {
        guard let wide = wideBatchCaps[instances], batch < wide else { return nil }
        return min(wide, batch + max(1, Int(Double(batch) * Self.batchRaiseFraction)))
    }

    /// Raises the batch limit to `raised` (from ``raisedBatch(from:instances:)``) and says why; the
    /// limit it left, too small for the load, is not gone back to while the load stays (see
    /// ``tooSmallBatch``).
    private mutating func raiseBatch(_ next: ServingConfiguration, to raised: Int, because why: String) -> Decision {
        var next = next
        tooSmallBatch[next.instances] = (next.batchLimit, smoothedArrivalRate)
        searchLow = next.batchLimit
        next.batchLimit = raised
        batchCaps[next.instances] = max(batchCap(instances: next.instances), raised)
        searchHigh = max(searchHigh, raised)
        mode = .batching
        return Decision(configuration: next, reason: "\(why): batch up to \(raised)")
    }

    private func batchCap(instances: Int) -> Int {
        batchCaps[instances] ?? maxBatch
    }

    /// Moves `next` to `count` instances: remembers the count it leaves (an undo goes back to it),
    /// keeps the batch limit within the new count's cap and restarts the batch search there, and
    /// gives the new instances ``warmupSeconds`` before the next decision.
    private mutating func moveInstances(_ next: inout ServingConfiguration, to count: Int, at time: Double) {
        previousInstances = next.instances
        next.instances = count
        next.batchLimit = min(next.batchLimit, batchCap(instances: count))
        searchLow = 1
        searchHigh = batchCap(instances: count)
        decideAfter = time + warmupSeconds
        mode = .multiTenancy
    }

    static func seed(
        context: PolicyContext, maxBatch: Int, maxInstances: Int, capacity: InstanceCapacityModel
    ) -> ServingConfiguration {
        let points = (context.profile?.points ?? []).filter {
            $0.batchSize <= maxBatch && $0.instances <= maxInstances
        }
        let roomy = points.filter { $0.latencyMs.atPercentile <= context.sloMs / 2 }
        // The fastest roomy point, or the one with the lowest latency among those within 3% of it.
        let best = roomy.map(\.throughput).max() ?? 0
        let chosen =
            roomy.filter { $0.throughput >= PolicyTuning.sameThroughputRatio * best }.min {
                $0.latencyMs.atPercentile < $1.latencyMs.atPercentile
            } ?? points.min { $0.latencyMs.atPercentile < $1.latencyMs.atPercentile }
        guard let chosen else { return ServingConfiguration(batchLimit: 1, instances: 1) }
        var seed = ServingConfiguration(batchLimit: chosen.batchSize, instances: chosen.instances)
        if seed.batchLimit == 1 {
            // At batch 1 the instance count is what decides, and half the SLO is a rule of thumb for
            // it: with slow requests (DeePVS on a GPU: 1.1 s alone, 2.5 s at 6 instances, SLO 3 s)
            // the count that leaves half the SLO for waiting sustains far less load than the count
            // the queueing model predicts to sustain the most (as DNNScalerPolicy starts).
            if let best = capacity.bestInstances, let bestRate = capacity.sustainableRates[best],
                bestRate >= minimumPredictedGain * (capacity.sustainableRates[seed.instances] ?? 0)
            {
                seed.instances = best
            }
        }
        return seed
    }

    /// How much more load (predicted by ``InstanceCapacityModel``) another instance count at batch 1
    /// must sustain to replace the roomy seed's count.
    public static let minimumPredictedGain = 1.01

    /// One step of the fast loop, and of the slow loop when the fast one is pinned.
    public mutating func decide(_ observation: Observation) -> Decision {
        let decision = step(observation)
        recentBatchLimit = decision.configuration.batchLimit
        return decision
    }

    private mutating func step(_ observation: Observation) -> Decision {
        let next = observation.current
        guard observation.time >= decideAfter else {
            return Decision(configuration: next, reason: "new instances warming up: hold")
        }
        guard let tail = observation.steeringLatencyMs else {
            return Decision(configuration: next, reason: "no completed requests: hold")
        }
        remember(observation, tail: tail)
        if let undo = undoWorseningMove(observation, tail: tail) { return undo }
        if tail > observation.sloMs { return aboveSLO(observation, tail: tail) }
        if tail < observation.bandLowMs { return belowBand(observation, tail: tail) }
        let batch = next.batchLimit
        if observation.isBacklogged, let served = observation.tailLatencyMs, served > observation.sloMs,
            let raised = raisedBatch(from: batch, instances: next.instances)
        {
            // The batch time is within the band but the queue breaks the SLO: the batches are too
            // small for the load (InceptionV3 on a GPU at 46/s and an SLO of 322 ms: batch 6 serves
            // a p99 of 357 ms, batch 8 304 ms).
            return raiseBatch(
                next, to: raised,
                because:
                    "tail \(ClipperAIMDPolicy.ms(served)) above SLO from queueing with the batch time in band, backlogged"
            )
        }
        return Decision(configuration: next, reason: "tail \(ClipperAIMDPolicy.ms(tail)) in band: hold")
    }

    /// Updates what the policy remembers from one observation: rested counts, the smoothed load,
    /// the batch time, the tail per instance count and the run of decisions above the SLO.
    private mutating func remember(_ observation: Observation, tail: Double) {
        for (count, until) in retryAfter where observation.time >= until {
            // Rested long enough: forget what was seen there (the load may have changed since).
            retryAfter[count] = nil
            tailByInstances[count] = nil
        }
        smoothedArrivalRate =
            smoothedArrivalRate == 0
            ? observation.arrivalRate
            : smoothedArrivalRate + Self.arrivalSmoothingWeight * (observation.arrivalRate - smoothedArrivalRate)
        for (count, small) in tooSmallBatch where smoothedArrivalRate < Self.smallBatchReleaseRatio * small.rate {
            tooSmallBatch[count] = nil  // the load fell: a smaller batch may do again
        }
        if let service = observation.serviceTailMs { recentBatchMs = service }
        let instances = observation.current.instances
        tailByInstances[instances] = tailByInstances[instances].map { ($0 + tail) / 2 } ?? tail
        consecutiveAboveSLO = tail > observation.sloMs ? consecutiveAboveSLO + 1 : 0
    }

    /// Undoes the last instance move when it broke the SLO and made the tail worse (a tail that
    /// grows but stays within the SLO is the price of the added throughput); the count it leaves
    /// rests for ``retryCooldownSeconds``.
    private mutating func undoWorseningMove(_ observation: Observation, tail: Double) -> Decision? {
        var next = observation.current
        guard let previous = previousInstances, let before = tailByInstances[previous],
            tail > observation.sloMs, tail > Self.undoRatio * before
        else { return nil }
        retryAfter[next.instances] = observation.time + retryCooldownSeconds
        moveInstances(&next, to: previous, at: observation.time)
        previousInstances = nil
        return Decision(
            configuration: next,
            reason:
                "tail \(ClipperAIMDPolicy.ms(tail)) worse than \(ClipperAIMDPolicy.ms(before)) with \(previous) instance(s): back"
        )
    }

    /// The tail is above the SLO: a larger batch when requests wait for batches, else a smaller
    /// one; at batch 1, another instance count.
    private mutating func aboveSLO(_ observation: Observation, tail: Double) -> Decision {
        var next = observation.current
        let tailText = ClipperAIMDPolicy.ms(tail)
        let batch = next.batchLimit
        guard batch > 1 else { return aboveSLOAtBatchOne(observation, tail: tail) }
        // Requests that waited for more than one batch (the tail over twice the batch time): a
        // larger limit lets them share a batch instead of queueing behind each other (InceptionV4 on
        // a GPU at 4.5/s, SLO 139 ms: batch 1 takes 64 ms and serves a p99 above the SLO, batch 2
        // takes 78 ms and meets it).
        if waitedForBatches(observation, tail: tail), let raised = raisedBatch(from: batch, instances: next.instances) {
            return raiseBatch(
                next, to: raised, because: "tail \(tailText) above SLO from waiting for more than one batch")
        }
        if batch <= searchLow { searchLow = 1 }
        let halved = max(1, min(batch - 1, (searchLow + batch) / 2))
        let keepingUp = smallestKeepingUp(rate: observation.arrivalRate, instances: next.instances, upTo: batch)
        let floor = tooSmallBatch[next.instances].map { $0.batch + 1 }
        if let floor, floor >= batch {
            return Decision(
                configuration: next,
                reason:
                    "tail \(tailText) above SLO, but batch \(floor - 1) had requests waiting for more than "
                    + "one batch: hold")
        }
        if let keepingUp, keepingUp >= batch {
            // A smaller batch would not keep up with the load (by the profile): the queue, and with
            // it the tail, would only grow (InceptionV3 on a GPU at 46/s: batch 8 with a tail just
            // over the SLO went to 4, which serves 43/s, and shed).
            return Decision(
                configuration: next,
                reason:
                    "tail \(tailText) above SLO, but a smaller batch serves less than "
                    + "the \((observation.arrivalRate * 10).rounded() / 10)/s arriving, by the profile: hold")
        }
        searchHigh = batch
        next.batchLimit = max(halved, keepingUp ?? 1, floor ?? 1)
        mode = .batching
        return Decision(configuration: next, reason: "tail \(tailText) above SLO: batch down to \(next.batchLimit)")
    }

    /// Whether the tail is made of waiting for more than one batch rather than of running one.
    private func waitedForBatches(_ observation: Observation, tail: Double) -> Bool {
        observation.serviceTailMs.map { tail > Self.waitingForBatchesFactor * $0 } ?? false
    }

    /// Above the SLO at batch 1: more instances when the tail is queueing, fewer when it is
    /// execution, one more when fewer measured no better; a move needs two windows in a row unless
    /// requests queue or are shed.
    private mutating func aboveSLOAtBatchOne(_ observation: Observation, tail: Double) -> Decision {
        var next = observation.current
        let tailText = ClipperAIMDPolicy.ms(tail)
        if consecutiveAboveSLO < Self.confirmationsBeforeInstanceMove, !observation.isBacklogged {
            return Decision(
                configuration: next,
                reason: "tail \(tailText) above SLO at batch 1 once, no backlog: confirm before moving instances")
        }
        if let service = observation.serviceTailMs, service <= Self.queueingShare * tail {
            // The tail is mostly queueing, not execution (as in DNNScalerPolicy: compared with the
            // tail, not the SLO, so a batch time near half the SLO does not flip the verdict from one
            // window to the next): fewer instances would only lengthen the queue. More help only
            // where the profile shows more throughput (or has not measured it).
            let serviceText = ClipperAIMDPolicy.ms(service)
            if let more = gainingInstances(above: next.instances), (tailByInstances[more] ?? 0) < tail,
                mayTry(more, at: observation.time)
            {
                let added = Self.describeAddition(from: next.instances, to: more)
                moveInstances(&next, to: more, at: observation.time)
                return Decision(
                    configuration: next,
                    reason: "tail \(tailText) above SLO from queueing (batch time \(serviceText)): \(added)")
            }
            if waitedForBatches(observation, tail: tail),
                let raised = raisedBatch(from: next.batchLimit, instances: next.instances)
            {
                return raiseBatch(
                    next, to: raised,
                    because:
                        "tail \(tailText) above SLO from waiting for more than one batch, no instance count adds throughput"
                )
            }
            return Decision(
                configuration: next,
                reason: "tail \(tailText) above SLO from queueing (batch time \(serviceText)), "
                    + "no instance count adds throughput: hold")
        }
        if next.instances > 1, (tailByInstances[next.instances - 1] ?? 0) < tail,
            mayTry(next.instances - 1, at: observation.time)
        {
            moveInstances(&next, to: next.instances - 1, at: observation.time)
            return Decision(configuration: next, reason: "tail \(tailText) above SLO at batch 1: remove an instance")
        }
        if let more = gainingInstances(above: next.instances), (tailByInstances[more] ?? 0) < tail,
            mayTry(more, at: observation.time)
        {
            // Fewer instances cannot help (or measured no better); the profile, measured in
            // isolation, may misjudge the split of the cores once the network threads compete for
            // them: try one more instance (each with fewer intra-op threads). The memory undoes the
            // move if the tail gets worse, and it is not tried again while remembered worse.
            let added = more == next.instances + 1 ? "try one more instance" : "try \(more) instances"
            moveInstances(&next, to: more, at: observation.time)
            return Decision(
                configuration: next,
                reason: "tail \(tailText) above SLO at batch 1, fewer instances no better: \(added)")
        }
        return Decision(
            configuration: next,
            reason: "tail \(tailText) above SLO at batch 1; other instance counts measured no better: hold")
    }

    /// Below the band: hold unless backlogged; then a larger batch up to the cap, the whole SLO's
    /// batch when nothing else adds throughput, or another instance where the profile shows more.
    private mutating func belowBand(_ observation: Observation, tail: Double) -> Decision {
        var next = observation.current
        let tailText = ClipperAIMDPolicy.ms(tail)
        let batch = next.batchLimit
        // Not backlogged: every request is served as it comes; a larger batch limit would only let a
        // burst form a slower batch. Keep batches small, latency low, headroom for bursts.
        guard observation.isBacklogged else {
            return Decision(configuration: next, reason: "tail \(tailText) below band, not backlogged: hold")
        }
        let cap = batchCap(instances: next.instances)
        if batch >= searchHigh { searchHigh = cap }
        if batch < searchHigh {
            searchLow = batch
            next.batchLimit = (batch + searchHigh + 1) / 2
            mode = .batching
            return Decision(configuration: next, reason: "tail \(tailText) below band: batch up to \(next.batchLimit)")
        }
        // Only where the profile shows more throughput with one more instance: resnet50 on 2 cores
        // measures none, and each try of a second instance broke the SLO while it lasted.
        let addable = gainingInstances(above: next.instances).flatMap { more in
            (tailByInstances[more] ?? 0) <= observation.sloMs && mayTry(more, at: observation.time) ? more : nil
        }
        if addable == nil, let wide = wideBatchCaps[next.instances], wide > cap {
            // Nothing else can add throughput and the tail leaves room: let batches take up to the
            // whole SLO (the bisection backs off if the tail leaves the band).
            batchCaps[next.instances] = wide
            searchLow = batch
            searchHigh = wide
            next.batchLimit = (batch + wide + 1) / 2
            mode = .batching
            return Decision(
                configuration: next,
                reason: "tail \(tailText) below band at the half-SLO batch, backlogged: batch up to \(next.batchLimit)")
        }
        if let more = addable {
            let added = Self.describeAddition(from: next.instances, to: more)
            moveInstances(&next, to: more, at: observation.time)
            return Decision(
                configuration: next, reason: "tail \(tailText) below band at the largest batch, backlogged: \(added)")
        }
        return Decision(configuration: next, reason: "tail \(tailText) below band at the largest batch: hold")
    }
}
