/// Samples that arrived over the last second, in ten 100 ms buckets: cheap enough to update on
/// every request under the runtime's lock. Not thread-safe: its owner guards it.
struct ArrivalCounter: Sendable {
    private static let bucketCount = 10
    private static let bucketMs: Double = 100
    private var buckets = [Int](repeating: 0, count: bucketCount)
    /// The index (ms since the origin / 100) of the newest bucket written.
    private var newest = 0

    /// Records `samples` arriving at `elapsedMs` (ms since any fixed origin, never decreasing).
    mutating func record(samples: Int, atMs elapsedMs: Double) {
        advance(to: elapsedMs)
        buckets[newest % Self.bucketCount] += samples
    }

    /// Samples that arrived in the second up to `elapsedMs`.
    mutating func samplesInLastSecond(atMs elapsedMs: Double) -> Int {
        advance(to: elapsedMs)
        return buckets.reduce(0, +)
    }

    /// Clears the buckets that fell out of the window on the way to `elapsedMs`.
    private mutating func advance(to elapsedMs: Double) {
        let index = Int(max(0, elapsedMs) / Self.bucketMs)
        guard index > newest else { return }
        for stale in (newest + 1)...min(index, newest + Self.bucketCount) {
            buckets[stale % Self.bucketCount] = 0
        }
        newest = index
    }
}
