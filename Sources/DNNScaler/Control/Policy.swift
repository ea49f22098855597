/// What a policy sees once per control period: the tail of per-request latency over the period
/// just ended, the load, and the configuration in force.
public struct Observation: Sendable, Equatable {
    /// Seconds since the controller started (injected time: policies read no clock).
    public var time: Double
    /// The latency percentile (e.g. p99) of requests completed in the period, in ms; `nil` if none.
    public var tailLatencyMs: Double?
    /// Requests completed in the period.
    public var completed: Int
    /// Requests that arrived in the period (served or not), per second.
    public var arrivalRate: Double
    /// Requests completed per second in the period.
    public var throughput: Double
    /// Requests shed in the period.
    public var shed: Int
    /// Requests waiting at the end of the period.
    public var queueLength: Int
    /// The SLO in ms.
    public var sloMs: Double
    /// The configuration in force during the period.
    public var current: ServingConfiguration
    /// The same percentile of batch execution times in the period (the service, without queueing), in ms.
    public var serviceTailMs: Double?
    /// The same percentile over only the requests completed since the policy's
    /// ``ScalingPolicy/confirmationSince`` (evidence disjoint from what raised the doubt), once
    /// they can be judged (enough of them, or the judging lookback has passed); `nil` before, or
    /// when the policy asks for none.
    public var confirmingTailLatencyMs: Double?

    /// Creates an observation.
    public init(
        time: Double, tailLatencyMs: Double?, completed: Int = 0, arrivalRate: Double = 0, throughput: Double = 0,
        shed: Int = 0, queueLength: Int = 0, sloMs: Double, current: ServingConfiguration, serviceTailMs: Double? = nil,
        confirmingTailLatencyMs: Double? = nil
    ) {
        self.serviceTailMs = serviceTailMs
        self.confirmingTailLatencyMs = confirmingTailLatencyMs
        self.time = time
        self.tailLatencyMs = tailLatencyMs
        self.completed = completed
        self.arrivalRate = arrivalRate
        self.throughput = throughput
        self.shed = shed
        self.queueLength = queueLength
        self.sloMs = sloMs
        self.current = current
    }

    /// What a policy sees at `time` (seconds), measured the one way the server's controller and
    /// the simulator share: the tail over the period that began at `periodStart`, reaching back
    /// (never before `lastChange`, the last configuration change) until it holds enough completions
    /// to judge the percentile (``LatencyWindow/judgingStart(periodStart:now:notBefore:minimumSamples:)``);
    /// `arrivals` and `shed` are the period's counts.
    public static func measured(
        time: Double, periodStart: Double, lastChange: Double, percentile: Double, latencyWindow: LatencyWindow,
        serviceWindow: LatencyWindow, arrivals: Int, shed: Int, queueLength: Int, sloMs: Double,
        current: ServingConfiguration, confirmationSince: Double?
    ) -> Observation {
        let minimumSamples = LatencyWindow.minimumSamples(forPercentile: percentile)
        let elapsed = max(1e-3, time - periodStart)
        let completed = latencyWindow.count(since: periodStart)
        let tailSince = latencyWindow.judgingStart(
            periodStart: periodStart, now: time, notBefore: lastChange, minimumSamples: minimumSamples)
        return Observation(
            time: time, tailLatencyMs: latencyWindow.percentile(percentile, since: tailSince), completed: completed,
            arrivalRate: Double(arrivals) / elapsed, throughput: Double(completed) / elapsed, shed: shed,
            queueLength: queueLength, sloMs: sloMs, current: current,
            serviceTailMs: serviceWindow.percentile(percentile, since: tailSince),
            confirmingTailLatencyMs: latencyWindow.settledPercentile(
                percentile, since: confirmationSince, now: time, minimumSamples: minimumSamples))
    }

    /// The band the tail latency should sit in: [``PolicyTuning/bandLowFraction`` x SLO, SLO].
    public var bandLowMs: Double { PolicyTuning.bandLowFraction * sloMs }

    /// Whether requests are waiting or being refused: the load is at or above capacity.
    public var isBacklogged: Bool { shed > 0 || queueLength > current.instances * current.batchLimit }

    /// The latency the knobs are judged by. Normally the per-request tail. When backlogged, the
    /// queue (bounded by shedding at the SLO) makes the tail, and a smaller batch would only make
    /// the queue worse; what the configuration decides is then about two batch times (one waiting
    /// for the batch in flight, one running), so the smaller of the tail and that is used.
    public var steeringLatencyMs: Double? {
        guard let tail = tailLatencyMs else { return nil }
        guard isBacklogged, let service = serviceTailMs else { return tail }
        return min(tail, 2 * service)
    }
}

/// A policy's answer: the configuration to serve with next, and why.
public struct Decision: Sendable, Equatable {
    /// The configuration to apply.
    public var configuration: ServingConfiguration
    /// A short human-readable reason, shown in the status API and logs.
    public var reason: String

    /// Creates a decision.
    public init(configuration: ServingConfiguration, reason: String) {
        self.configuration = configuration
        self.reason = reason
    }
}

/// A scaling policy: a value holding its own state, `decide(observation) -> decision`, with no
/// clock, no I/O and no actor, so the server, the simulator and the tests run the same code.
public protocol ScalingPolicy: Sendable {
    /// The name users select it by (`--policy`).
    var name: String { get }
    /// Seconds between decisions.
    var period: Double { get }
    /// The lever it tunes now.
    var mode: ScalingMode? { get }
    /// The configuration to start with.
    var initialConfiguration: ServingConfiguration { get }
    /// Decides the next configuration from what was observed over the last period.
    mutating func decide(_ observation: Observation) -> Decision
    /// When set, the next observations carry ``Observation/confirmingTailLatencyMs`` over the
    /// requests completed since this time (seconds): a policy that doubts one window asks for
    /// requests that window did not hold.
    var confirmationSince: Double? { get }
}

extension ScalingPolicy {
    /// No confirmation asked for.
    public var confirmationSince: Double? { nil }
}

/// The policies `--policy` can name.
public enum PolicyKind: String, Sendable, Codable, CaseIterable {
    /// The seed paper's DNNScaler: profile -> mode, then bisect the batch or step the instances.
    case dnnscaler
    /// Batch x instances together: fast batch loop, slow instance loop, seeded from the profile.
    case joint
    /// Clipper's AIMD batching on one instance (the paper's baseline).
    case clipperAIMD = "clipper-aimd"
    /// A fixed configuration.
    case `static`
}

/// What a policy may use to start: the model's profile (or a quick probe) and the limits.
public struct PolicyContext: Sendable {
    /// The profile that decides the mode and seeds the start.
    public var profile: Profile?
    /// The largest batch limit allowed.
    public var maxBatch: Int
    /// The most instances allowed.
    public var maxInstances: Int
    /// The SLO in ms.
    public var sloMs: Double
    /// The latency percentile the SLO is about (99 for p99).
    public var percentile: Double

    /// Creates a context.
    public init(profile: Profile?, maxBatch: Int, maxInstances: Int, sloMs: Double, percentile: Double = 99) {
        self.profile = profile
        self.maxBatch = maxBatch
        self.maxInstances = maxInstances
        self.sloMs = sloMs
        self.percentile = percentile
    }
}

/// Builds policies by kind.
public enum PolicyFactory {
    /// A policy of `kind`; `fixed` is what `static` serves (default batch 1 x 1 instance).
    public static func make(
        _ kind: PolicyKind, context: PolicyContext, fixed: ServingConfiguration? = nil
    ) -> any ScalingPolicy {
        switch kind {
        case .dnnscaler: DNNScalerPolicy(context: context)
        case .joint: JointPolicy(context: context)
        case .clipperAIMD: ClipperAIMDPolicy(maxBatch: context.maxBatch)
        case .static: StaticPolicy(configuration: fixed ?? ServingConfiguration(batchLimit: 1, instances: 1))
        }
    }
}

/// Tuning constants the policies share.
public enum PolicyTuning {
    /// The lower edge of the band the tail should sit in, as a fraction of the SLO (the paper's 0.85).
    public static let bandLowFraction = 0.85
    /// The largest batch limit any policy searches (the paper's 127).
    public static let largestBatch = 127
    /// Seconds new instances get (loading, warming up) before the next decision is taken.
    public static let instanceWarmupSeconds = 3.0
    /// Throughputs within this ratio of the best count as equal: past the smallest batch that
    /// reaches it, a larger one only adds latency.
    public static let sameThroughputRatio = 0.97
}
