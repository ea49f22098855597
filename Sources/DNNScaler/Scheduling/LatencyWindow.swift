import DequeModule

/// Per-request end-to-end latencies of the recent past, for the controller's tail percentile.
/// Not thread-safe: its owner guards it.
public struct LatencyWindow: Sendable {
    /// How far back samples are kept, in seconds.
    public let horizonSeconds: Double
    /// The most samples kept, whatever their age.
    public let capacity: Int
    private var samples: Deque<(time: Double, latencyMs: Double)> = []

    /// Creates an empty window.
    public init(horizonSeconds: Double = 10, capacity: Int = 20_000) {
        self.horizonSeconds = horizonSeconds
        self.capacity = capacity
    }

    /// Records a completion at `time` (seconds, any fixed origin) that took `latencyMs`.
    public mutating func record(time: Double, latencyMs: Double) {
        samples.append((time, latencyMs))
        if samples.count > capacity { samples.removeFirst() }
        while let first = samples.first, first.time < time - horizonSeconds { samples.removeFirst() }
    }

    /// Latencies of completions at or after `since`, sorted ascending.
    public func latencies(since: Double) -> [Double] {
        samples.filter { $0.time >= since }.map(\.latencyMs).sorted()
    }

    /// The nearest-rank `percentile` of completions since `since`; `nil` when there are none.
    public func percentile(_ percentile: Double, since: Double) -> Double? {
        let sorted = latencies(since: since)
        return sorted.isEmpty ? nil : LatencySummary.percentile(percentile, ofSorted: sorted)
    }

    /// How far before `now` ``judgingStart(periodStart:now:notBefore:minimumSamples:)`` may reach
    /// for samples: at low rates a longer span would make the controller slow to react.
    public static let judgingLookbackSeconds = 5.0

    /// Where a tail percentile should be judged from: `periodStart` (the control period just
    /// ended), moved back - never before `notBefore` (the last configuration change), nor more than
    /// ``judgingLookbackSeconds`` before `now` - until the span holds at least `minimumSamples`
    /// completions. A p99 of the 40 requests of a 1-s period at 40 requests/s is their maximum,
    /// one stray scheduling delay; over 200 it is the second largest.
    public func judgingStart(periodStart: Double, now: Double, notBefore: Double, minimumSamples: Int) -> Double {
        guard minimumSamples > 0, !samples.isEmpty else { return periodStart }
        let earliest = max(notBefore, now - Self.judgingLookbackSeconds)
        let index = max(0, samples.count - minimumSamples)
        return min(periodStart, max(earliest, samples[index].time))
    }

    /// Whether a configuration change at `changeTime` can be judged at `now`: at least
    /// `minimumSamples` completions since it, or ``judgingLookbackSeconds`` passed. Until then the
    /// controllers ask their policy nothing: a tail over the first second after a change is the
    /// maximum of a few dozen requests, the reconfiguration's own transient among them, and a
    /// policy that moves on it undoes good changes (a removal judged over one second at 80
    /// requests/s was undone, and the policy then rested at the worse count).
    public func hasSettled(since changeTime: Double, now: Double, minimumSamples: Int) -> Bool {
        now - changeTime >= Self.judgingLookbackSeconds || count(since: changeTime) >= minimumSamples
    }

    /// `percentile` over the samples since `since` once they can be judged as
    /// ``hasSettled(since:now:minimumSamples:)`` says; `nil` before that, or when `since` is `nil`
    /// (what ``Observation/confirmingTailLatencyMs`` carries).
    public func settledPercentile(_ percentile: Double, since: Double?, now: Double, minimumSamples: Int) -> Double? {
        guard let since, hasSettled(since: since, now: now, minimumSamples: minimumSamples) else { return nil }
        return self.percentile(percentile, since: since)
    }

    /// The completions a nearest-rank `percentile` needs to be more than the maximum of a
    /// handful: twice 1 / (1 - percentile), e.g. 200 for p99 and 40 for p95.
    public static func minimumSamples(forPercentile percentile: Double) -> Int {
        let tailShare = max(1e-4, 1 - percentile / 100)
        return Int((2 / tailShare).rounded(.up))
    }

    /// Completions since `since`.
    public func count(since: Double) -> Int {
        samples.reduce(0) { $0 + ($1.time >= since ? 1 : 0) }
    }
}
