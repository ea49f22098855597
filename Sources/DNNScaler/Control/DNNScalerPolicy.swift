/// The seed paper's DNNScaler: the profile picks the lever, then
/// - batching: every 3 s, bisect the batch limit within [1, 127] so the tail latency sits in
///   [0.85 x SLO, SLO]; when the limit sits on a search bound and latency leaves the band, the
///   range re-opens (how it follows SLO and load changes);
/// - multi-tenancy: start with the largest instance count the profile predicts fits the SLO; every
///   1 s add an instance below the band, remove the newest above the SLO; after a removal, hold
///   (add nothing) until the tail leaves ±15% of the first latency seen after it; a new instance
///   gets 3 s to warm up before the next decision.
///
/// Beyond the paper:
/// - batching searches only up to the largest batch whose profiled mean batch time fits the SLO: a
///   larger one can never sit in the band, and at a light load (batches do not fill, the tail stays
///   below the band) the paper's bisection would raise the limit there at once, so that a later
///   burst forms a batch that alone breaks the SLO;
/// - multi-tenancy neither starts with nor adds an instance that the profile measured to add less
///   than 5% throughput, nor one that ``InstanceCapacityModel`` predicts to sustain less load within
///   the SLO than one instance fewer (on a CPU each instance slows the others, so a count that fits
///   the SLO alone may leave no room for waiting). The prediction is trusted while the served tail
///   stays within ``distrustRatio`` of what it predicts for the current count and load; once the
///   served tail is further off (the profile, measured in isolation, misjudges the machine under
///   network load), the paper's rule decides alone from then on, starting from the paper's count;
/// - no instance is removed while the batch execution time (same percentile) is within half the
///   tail: the tail above the SLO is then mostly waiting, which one instance fewer only lengthens;
/// - a removal after which the tail is above the SLO and worse than before is undone (the tail came
///   from queueing or noise, not from execution time), and removals rest for 30 s;
/// - a tail percentile (p90 and up) above the SLO by less than ``clearOverloadRatio`` removes an
///   instance only when the requests completed after it (disjoint from the window that raised the
///   doubt) are above the SLO too: on shared cores one stall of the machine lifts a window's p99
///   just over the SLO, and the judged windows overlap, so consecutive decisions alone cannot tell
///   a stall from an overload.
public struct DNNScalerPolicy: ScalingPolicy {
    /// `dnnscaler`.
    public let name = PolicyKind.dnnscaler.rawValue
    /// 3 s for batching, 1 s for multi-tenancy, as in the paper.
    public var period: Double { lever == .batching ? 3 : 1 }
    /// The lever the profile chose.
    public var mode: ScalingMode? { lever }
    /// Batch 1 x 1 for batching; the largest fitting instance count at batch 1 for multi-tenancy.
    public let initialConfiguration: ServingConfiguration

    /// The lever the profile chose.
    public let lever: ScalingMode
    /// The upper end of the batch search: the paper's 127, or less if the model allows less.
    public let maxBatch: Int
    /// The profile's batch times, which cap the search at the largest batch that fits the SLO.
    private let batchTimes: ServiceTimeModel?
    /// The most instances.
    public let maxInstances: Int
    /// Seconds a new instance gets before the next decision.
    public let warmupSeconds = PolicyTuning.instanceWarmupSeconds
    /// An instance is worth adding only when the profile measured at least this much more
    /// throughput with it (beyond the paper): an instance that adds latency and no throughput is
    /// never started with nor added.
    public static let minimumInstanceGain = 1.05
    /// After a removal, a tail below the band within this fraction of the tail the removal left
    /// holds: the removal's own effect, not room for another instance.
    public static let holdTolerance = 0.15
    /// The profile's batch-1 throughput per measured instance count (empty without a profile).
    private let profiledThroughput: [Int: Double]
    /// The load each instance count is predicted to sustain within the SLO.
    private let capacity: InstanceCapacityModel
    /// The percentile the SLO is about.
    private let percentile: Double
    /// The paper's multi-tenancy start: the largest fitting count (without the capacity prediction).
    private let paperInstances: Int
    /// Whether the capacity prediction still steers (see ``distrustRatio``).
    public private(set) var trustsCapacityPrediction: Bool
    /// The served tail, over this multiple of the tail predicted for the current count at the
    /// current arrival rate, ends the trust in the prediction. The in-process profile predicts
    /// resnet50's served p99 on 2 cores within 0.8-1.0x, squeezenet's (1 instance x 2 threads)
    /// at 1.4-2.0x of it (`python3 -m bench.sim_vs_real` measures the ratio).
    public static let distrustRatio = 1.4

    private var searchLow = 1
    private var searchHigh: Int
    private var decideAfter = 0.0
    private var holdAround: Double?
    private var awaitingHoldReference = false
    /// The last removal, until the first decision after it: the count it left and the tail that
    /// triggered it.
    private var lastRemoval: (instances: Int, tail: Double)?
    /// No instance is removed before this time (seconds): a removal that made the tail worse was
    /// undone, and on a noisy machine the same removal would otherwise come straight back.
    private var removalsAfter = 0.0
    /// Seconds removals rest after an undone one.
    public let removalCooldownSeconds = 30.0
    /// A tail at or over this multiple of the SLO removes an instance at once (the paper's rule); a
    /// tail above the SLO by less waits for confirmation from the requests that follow. The stalls
    /// that removed instances wrongly on 2 shared cores lifted squeezenet's tail to 20.7-22.6 ms at
    /// a 20 ms SLO, where a real overload lifts it further.
    public static let clearOverloadRatio = 1.2
    /// Confirmation is asked for only when the policy steers by this percentile or a higher one: one
    /// stall lifts a p99 over a window, not a median.
    public static let stallSensitivePercentile = 90.0
    /// Since when a tail just above the SLO waits for confirmation (seconds), or `nil`.
    private var removalDoubtedSince: Double?
    /// Asks for the tail of the requests completed since a doubted removal.
    public var confirmationSince: Double? { removalDoubtedSince }

    /// Creates the policy from the profile in `context` (batching when there is none).
    public init(context: PolicyContext) {
        lever = context.profile?.decision.mode ?? .batching
        maxBatch = max(1, min(PolicyTuning.largestBatch, context.maxBatch))
        batchTimes = context.profile.flatMap { profile in
            profile.points.contains { $0.instances == 1 } ? ServiceTimeModel(profile: profile) : nil
        }
        maxInstances = max(1, context.maxInstances)
        searchHigh = maxBatch
        let throughputs = InstanceCapacityModel.batchOneThroughput(profile: context.profile)
        profiledThroughput = throughputs
        percentile = context.percentile
        switch lever {
        case .batching:
            capacity = InstanceCapacityModel(profile: nil, maxInstances: 1, sloMs: context.sloMs, percentile: 99)
            paperInstances = 1
            trustsCapacityPrediction = false
            initialConfiguration = ServingConfiguration(batchLimit: 1, instances: 1)
        case .multiTenancy:
            let model = InstanceCapacityModel(
                profile: context.profile, maxInstances: maxInstances, sloMs: context.sloMs,
                percentile: context.percentile)
            capacity = model
            var fitting = Self.largestFittingInstances(
                profile: context.profile, sloMs: context.sloMs, maxInstances: maxInstances)
            while fitting > 1, !Self.instanceAddsThroughput(fitting, throughputs: throughputs) { fitting -= 1 }
            paperInstances = fitting
            trustsCapacityPrediction = model.bestInstances != nil
            initialConfiguration = ServingConfiguration(
                batchLimit: 1, instances: min(fitting, model.bestInstances ?? fitting))
        }
    }

    /// The largest batch whose profiled mean time at 1 instance (interpolated between the measured
    /// batch sizes) fits `sloMs`, at most ``maxBatch``; ``maxBatch`` without a profile.
    func largestFittingBatch(sloMs: Double) -> Int {
        guard let batchTimes else { return maxBatch }
        return (1...maxBatch).last { batchTimes.batchMs(instances: 1, batch: $0) <= sloMs } ?? 1
    }

    /// Whether going from `instances - 1` to `instances` raised the measured throughput by at least
    /// ``minimumInstanceGain``; `true` when the profile did not measure both counts (the paper's rule
    /// then decides alone).
    static func instanceAddsThroughput(_ instances: Int, throughputs: [Int: Double]) -> Bool {
        guard let with = throughputs[instances], let without = throughputs[instances - 1], without > 0 else {
            return true
        }
        return with >= minimumInstanceGain * without
    }

    /// The largest instance count whose batch-1 latency, measured or linearly extrapolated from
    /// the profile's measured counts, fits the SLO (the paper predicts it by matrix completion).
    static func largestFittingInstances(profile: Profile?, sloMs: Double, maxInstances: Int) -> Int {
        let measured = (profile?.points ?? []).filter { $0.batchSize == 1 }.sorted { $0.instances < $1.instances }
        guard let first = measured.first else { return 1 }
        let last = measured[measured.count - 1]
        let slope =
            last.instances > first.instances
            ? (last.latencyMs.atPercentile - first.latencyMs.atPercentile) / Double(last.instances - first.instances)
            : first.latencyMs.atPercentile
        var best = 1
        for instances in 1...maxInstances {
            let predicted =
                measured.first { $0.instances == instances }?.latencyMs.atPercentile
                ?? last.latencyMs.atPercentile + slope * Double(instances - last.instances)
            if predicted <= sloMs { best = instances }
        }
        return best
    }

    /// One step of bisection (batching) or instance stepping (multi-tenancy).
    public mutating func decide(_ observation: Observation) -> Decision {
        switch lever {
        case .batching: decideBatch(observation)
        case .multiTenancy: decideInstances(observation)
        }
    }

    private mutating func decideBatch(_ observation: Observation) -> Decision {
        var next = observation.current
        next.instances = 1
        guard let tail = observation.steeringLatencyMs else {
            return Decision(configuration: next, reason: "no completed requests: hold")
        }
        let batch = next.batchLimit
        let tailText = ClipperAIMDPolicy.ms(tail)
        if tail < observation.bandLowMs {
            let fitting = largestFittingBatch(sloMs: observation.sloMs)
            if batch >= searchHigh { searchHigh = fitting }  // on the upper bound: re-open the range
            searchHigh = min(searchHigh, fitting)
            guard batch < searchHigh else {
                return Decision(
                    configuration: next,
                    reason: "tail \(tailText) below band at the largest batch that fits the SLO: hold")
            }
            searchLow = batch
            next.batchLimit = (batch + searchHigh + 1) / 2
            return Decision(
                configuration: next, reason: "tail \(tailText) below band: batch up to \(next.batchLimit) (bisect)")
        }
        if tail > observation.sloMs {
            if batch <= searchLow { searchLow = 1 }  // on the lower bound: re-open the range
            guard batch > searchLow || batch > 1 else {
                return Decision(configuration: next, reason: "tail \(tailText) above SLO at batch 1: hold")
            }
            searchHigh = batch
            next.batchLimit = max(1, min(batch - 1, (searchLow + batch) / 2))
            return Decision(
                configuration: next, reason: "tail \(tailText) above SLO: batch down to \(next.batchLimit) (bisect)")
        }
        return Decision(configuration: next, reason: "tail \(tailText) in band: hold")
    }

    private mutating func decideInstances(_ observation: Observation) -> Decision {
        var next = observation.current
        next.batchLimit = 1
        guard observation.time >= decideAfter else {
            return Decision(configuration: next, reason: "new instance warming up: hold")
        }
        guard let tail = observation.steeringLatencyMs else {
            return Decision(configuration: next, reason: "no completed requests: hold")
        }
        if awaitingHoldReference {
            holdAround = tail
            awaitingHoldReference = false
        }
        if let undo = undoWorseningRemoval(observation, next: next, tail: tail) { return undo }
        if let distrust = distrustPrediction(observation, next: next, tail: tail) { return distrust }
        let doubtedSince = removalDoubtedSince
        removalDoubtedSince = nil
        if tail > observation.sloMs {
            return instancesAboveSLO(observation, next: next, tail: tail, doubtedSince: doubtedSince)
        }
        if tail < observation.bandLowMs { return instancesBelowBand(observation, next: next, tail: tail) }
        return Decision(configuration: next, reason: "tail \(ClipperAIMDPolicy.ms(tail)) in band: hold")
    }

    /// Beyond the paper: when the last removal left the tail above the SLO and worse, the tail came
    /// from queueing (or noise), not from the instances' execution time: undo it and rest removals.
    private mutating func undoWorseningRemoval(
        _ observation: Observation, next: ServingConfiguration, tail: Double
    ) -> Decision? {
        guard let removal = lastRemoval else { return nil }
        lastRemoval = nil
        guard tail > observation.sloMs, tail > removal.tail else { return nil }
        var next = next
        next.instances = removal.instances
        holdAround = nil
        removalsAfter = observation.time + removalCooldownSeconds
        decideAfter = observation.time + warmupSeconds
        return Decision(
            configuration: next,
            reason:
                "tail \(ClipperAIMDPolicy.ms(tail)) worse than \(ClipperAIMDPolicy.ms(removal.tail)) before the removal: "
                + "back to \(removal.instances) instances")
    }

    /// When the served tail is far above what the capacity model predicts at this load, the profile
    /// misjudges the served machine: from then on the paper's rule decides alone.
    private mutating func distrustPrediction(
        _ observation: Observation, next: ServingConfiguration, tail: Double
    ) -> Decision? {
        guard trustsCapacityPrediction, let served = observation.tailLatencyMs,
            let predicted = capacity.predictedTailMs(
                instances: next.instances, ratePerSecond: observation.arrivalRate, percentile: percentile),
            served > Self.distrustRatio * predicted
        else { return nil }
        trustsCapacityPrediction = false
        var next = next
        let reason =
            "tail \(ClipperAIMDPolicy.ms(tail)) is over \(Self.distrustRatio)x the \(ClipperAIMDPolicy.ms(predicted)) "
            + "predicted for \(next.instances) instance(s) at \(Int(observation.arrivalRate.rounded())) requests/s: "
            + "the paper's rule decides from now on"
        if paperInstances > next.instances {
            next.instances = paperInstances
            decideAfter = observation.time + warmupSeconds
            return Decision(configuration: next, reason: reason + ", starting at \(paperInstances) instances")
        }
        return Decision(configuration: next, reason: reason)
    }

    /// Above the SLO: remove an instance (the paper's rule), unless there is one, a removal made it
    /// worse, the tail is queueing, or - just above the SLO - the requests that follow call it a stall.
    private mutating func instancesAboveSLO(
        _ observation: Observation, next: ServingConfiguration, tail: Double, doubtedSince: Double?
    ) -> Decision {
        var next = next
        let tailText = ClipperAIMDPolicy.ms(tail)
        guard next.instances > 1 else {
            return Decision(configuration: next, reason: "tail \(tailText) above SLO with 1 instance: hold")
        }
        guard observation.time >= removalsAfter else {
            return Decision(
                configuration: next, reason: "tail \(tailText) above SLO, but a removal made it worse: hold")
        }
        if let service = observation.serviceTailMs, service <= tail / 2 {
            // Beyond the paper: waiting makes most of the tail, not execution, and one instance
            // fewer would only lengthen the queue.
            return Decision(
                configuration: next,
                reason: "tail \(tailText) above SLO from queueing (batch time \(ClipperAIMDPolicy.ms(service))): hold")
        }
        if percentile >= Self.stallSensitivePercentile, tail < Self.clearOverloadRatio * observation.sloMs {
            // Beyond the paper: just above the SLO, a stall and an overload look alike; the requests
            // that follow tell them apart.
            guard doubtedSince != nil, let fresh = observation.confirmingTailLatencyMs else {
                // A new doubt starts now; a standing one keeps its start until enough follow.
                removalDoubtedSince = doubtedSince ?? observation.time
                return Decision(
                    configuration: next,
                    reason: "tail \(tailText) just above SLO: confirming on the requests that follow")
            }
            guard fresh > observation.sloMs else {
                return Decision(
                    configuration: next,
                    reason:
                        "tail \(tailText) just above SLO, but \(ClipperAIMDPolicy.ms(fresh)) over the requests "
                        + "since: a stall, not an overload: hold")
            }
        }
        lastRemoval = (next.instances, tail)
        next.instances -= 1
        awaitingHoldReference = true
        holdAround = nil
        return Decision(configuration: next, reason: "tail \(tailText) above SLO: remove an instance")
    }

    /// Below the band: add an instance (the paper's rule) where the profile shows more throughput and
    /// the capacity model does not predict less load within the SLO; hold near the tail a removal left.
    private mutating func instancesBelowBand(
        _ observation: Observation, next: ServingConfiguration, tail: Double
    ) -> Decision {
        var next = next
        let tailText = ClipperAIMDPolicy.ms(tail)
        if let reference = holdAround, abs(tail - reference) <= Self.holdTolerance * reference {
            return Decision(configuration: next, reason: "tail \(tailText) below band, holding after a removal")
        }
        holdAround = nil
        guard next.instances < maxInstances else {
            return Decision(configuration: next, reason: "tail \(tailText) below band at the most instances: hold")
        }
        guard Self.instanceAddsThroughput(next.instances + 1, throughputs: profiledThroughput) else {
            return Decision(
                configuration: next,
                reason:
                    "tail \(tailText) below band, but the profile shows no throughput gain from "
                    + "\(next.instances + 1) instances: hold")
        }
        guard !trustsCapacityPrediction || capacity.instanceAddsSustainableLoad(next.instances + 1) else {
            return Decision(
                configuration: next,
                reason:
                    "tail \(tailText) below band, but \(next.instances + 1) instances are predicted to sustain "
                    + "less load within the SLO: hold")
        }
        next.instances += 1
        decideAfter = observation.time + warmupSeconds
        return Decision(configuration: next, reason: "tail \(tailText) below band: add an instance")
    }
}
