import Foundation
import Synchronization

/// A decision as the status API shows it.
public struct DecisionRecord: Sendable, Codable, Equatable {
    /// Seconds since the runtime started.
    public var time: Double
    /// The configuration decided.
    public var configuration: ServingConfiguration
    /// Why.
    public var reason: String
    /// The tail latency it was based on, in ms.
    public var tailLatencyMs: Double?
    /// The same percentile of batch execution times (no queueing) it saw, in ms.
    public var serviceTailMs: Double?
    /// Requests that arrived per second over the period it looked at.
    public var arrivalRate: Double
    /// Whether the configuration changed.
    public var changed: Bool
}

/// Runs a policy against a live ``ModelRuntime``: once per policy period it builds an
/// ``Observation`` from the runtime's latency window and counters, asks the policy, and applies
/// the decision (hitless). Keeps the last decisions for the status API.
public final class ModelController: Sendable {
    /// The runtime it steers.
    public let runtime: ModelRuntime
    /// The latency percentile it steers by.
    public let percentile: Double
    private let state: Mutex<State>

    private struct State {
        var policy: any ScalingPolicy
        var lastDecisionTime: Double
        /// When the configuration last changed (the tail is never judged over samples before it).
        var lastChangeTime: Double
        var lastArrivals: UInt64
        var lastShed: UInt64
        var decisions: [DecisionRecord] = []
        var stopped = false
        var capacity: CapacityEstimate?
    }

    /// Creates a controller; applies the policy's initial configuration first (blocking).
    /// `capacity` is kept up to date from the runtime's counters at every step.
    public init(
        runtime: ModelRuntime, policy: any ScalingPolicy, percentile: Double, capacity: CapacityEstimate? = nil
    ) throws(BackendError) {
        self.runtime = runtime
        self.percentile = percentile
        let snapshot = runtime.snapshot()
        state = Mutex(
            State(
                policy: policy, lastDecisionTime: snapshot.time, lastChangeTime: snapshot.time,
                lastArrivals: snapshot.statistics.arrivals,
                lastShed: snapshot.statistics.shedCount, capacity: capacity))
        try runtime.apply(policy.initialConfiguration)
    }

    /// The capacity estimate as of the last step; `nil` without a profile.
    public var capacity: CapacityEstimate? { state.withLock { $0.capacity } }

    /// The policy's name, the lever it tunes and its recent decisions (newest last): every change,
    /// and the latest hold.
    public var status: (policy: String, mode: ScalingMode?, decisions: [DecisionRecord]) {
        state.withLock { ($0.policy.name, $0.policy.mode, $0.decisions) }
    }

    /// Replaces the policy (e.g. after an SLO or policy change) and its capacity estimate, and
    /// applies its start. The estimate keeps the smoothed arrival rate it had.
    public func replacePolicy(_ policy: any ScalingPolicy, capacity: CapacityEstimate? = nil) throws(BackendError) {
        let snapshot = runtime.snapshot()
        state.withLock {
            if var capacity {
                if let previous = $0.capacity { capacity.carryArrivals(from: previous) }
                $0.capacity = capacity
            }
            $0.policy = policy
            $0.lastDecisionTime = snapshot.time
            $0.lastChangeTime = snapshot.time
            $0.lastArrivals = snapshot.statistics.arrivals
            $0.lastShed = snapshot.statistics.shedCount
        }
        try runtime.apply(policy.initialConfiguration)
    }

    /// Decides once if a policy period has passed since the last decision; returns the record.
    /// Blocking when the decision changes the instance count (instances load and warm up).
    @discardableResult
    public func step() -> DecisionRecord? {
        let snapshot = runtime.snapshot()
        let decided: (decision: Decision, observation: Observation)? = state.withLock { state in
            state.capacity?.update(
                time: snapshot.time, statistics: snapshot.statistics, instances: snapshot.configuration.instances,
                serviceWindow: snapshot.serviceWindow)
            guard !state.stopped, snapshot.time - state.lastDecisionTime >= state.policy.period else { return nil }
            let minimumSamples = LatencyWindow.minimumSamples(forPercentile: percentile)
            guard
                snapshot.latencyWindow.hasSettled(
                    since: state.lastChangeTime, now: snapshot.time, minimumSamples: minimumSamples)
            else { return nil }
            let observation = Observation.measured(
                time: snapshot.time, periodStart: state.lastDecisionTime, lastChange: state.lastChangeTime,
                percentile: percentile, latencyWindow: snapshot.latencyWindow, serviceWindow: snapshot.serviceWindow,
                arrivals: Int(snapshot.statistics.arrivals - state.lastArrivals),
                shed: Int(snapshot.statistics.shedCount - state.lastShed), queueLength: snapshot.queueLength,
                sloMs: runtime.currentSloMs, current: snapshot.configuration,
                confirmationSince: state.policy.confirmationSince)
            state.lastDecisionTime = snapshot.time
            state.lastArrivals = snapshot.statistics.arrivals
            state.lastShed = snapshot.statistics.shedCount
            return (state.policy.decide(observation), observation)
        }
        guard let (decision, observation) = decided else { return nil }
        let changed = decision.configuration != observation.current
        var reason = decision.reason
        if changed {
            do {
                try runtime.apply(decision.configuration)
                let appliedAt = runtime.elapsedSeconds
                state.withLock { $0.lastChangeTime = appliedAt }
            } catch {
                reason += "; applying failed: \(error)"
            }
        }
        let record = DecisionRecord(
            time: observation.time, configuration: runtime.currentConfiguration, reason: reason,
            tailLatencyMs: observation.tailLatencyMs, serviceTailMs: observation.serviceTailMs,
            arrivalRate: observation.arrivalRate, changed: changed)
        state.withLock { state in
            // Changes are kept (the last 50); a hold only replaces a previous hold at the end.
            if !record.changed, let last = state.decisions.last, !last.changed {
                state.decisions[state.decisions.count - 1] = record
            } else {
                state.decisions.append(record)
            }
            if state.decisions.count > 50 { state.decisions.removeFirst(state.decisions.count - 50) }
        }
        return record
    }

    /// Stops deciding (the runtime keeps serving with its last configuration).
    public func stop() {
        state.withLock { $0.stopped = true }
    }

    /// Steps every `tick` on a dedicated thread (decisions may block while instances load) until
    /// ``stop()``; `onDecision` sees each changed decision.
    public func startLoop(tick: Duration = .milliseconds(200), onDecision: @escaping @Sendable (DecisionRecord) -> Void)
    {
        let thread = Thread { [self] in
            while !state.withLock({ $0.stopped }) {
                if let record = step(), record.changed { onDecision(record) }
                Thread.sleep(forTimeInterval: Profiler.milliseconds(tick) / 1000)
            }
        }
        thread.name = "dnnscaler-controller-\(runtime.name)"
        thread.start()
    }
}
