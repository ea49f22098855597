import DNNScaler
import Foundation

/// Intended send times of an open-loop run, in seconds from the start; deterministic for a seed.
public struct ArrivalSchedule: Sendable {
    private var generator: SplitMix64
    private let rate: Double
    private let distribution: ArrivalDistribution
    private var next: Double
    private var index = 0

    /// A schedule at `rate` requests/s.
    public init(rate: Double, distribution: ArrivalDistribution, seed: UInt64) {
        self.rate = rate
        self.distribution = distribution
        generator = SplitMix64(seed: seed)
        next = 0
        if distribution == .poisson { next = gap() }
    }

    /// The next intended send time (seconds from the start).
    public mutating func nextTime() -> Double {
        let time = next
        index += 1
        // evenly spaced times are computed from the index, so they do not drift by rounding
        next = distribution == .constant ? Double(index) / rate : next + gap()
        return time
    }

    private mutating func gap() -> Double {
        let uniform = Double.random(in: Double.ulpOfOne..<1, using: &generator)
        return -log(uniform) / rate
    }
}
