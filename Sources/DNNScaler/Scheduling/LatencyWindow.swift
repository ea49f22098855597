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

    /// Completions since `since`.
    public func count(since: Double) -> Int {
        samples.reduce(0) { $0 + ($1.time >= since ? 1 : 0) }
    }
}
