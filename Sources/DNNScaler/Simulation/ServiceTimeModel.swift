/// Per-batch service time of a configuration, read from a ``Profile``: measured points are used
/// as they are; other batch sizes are interpolated linearly between measured ones (extrapolated
/// from the last two beyond them), and other instance counts likewise along the instance axis.
public struct ServiceTimeModel: Sendable {
    /// Measured mean per-batch latency (ms) by instances, then batch size.
    private let grid: [Int: [(batch: Int, ms: Double)]]
    private let instanceCounts: [Int]

    /// Builds the model from a profile's points (mean per-batch latency).
    public init(profile: Profile) {
        var grid: [Int: [(batch: Int, ms: Double)]] = [:]
        for point in profile.points {
            grid[point.instances, default: []].append((point.batchSize, point.latencyMs.mean))
        }
        for key in grid.keys { grid[key]?.sort { $0.batch < $1.batch } }
        self.grid = grid
        instanceCounts = grid.keys.sorted()
    }

    /// The mean time (ms) one of `instances` busy instances takes for a batch of `batch` samples.
    public func batchMs(instances: Int, batch: Int) -> Double {
        guard !instanceCounts.isEmpty else { return 1 }
        if grid[instances] != nil { return Self.along(grid[instances] ?? [], at: batch) }
        let curve = instanceCounts.map { (Double($0), Self.along(grid[$0] ?? [], at: batch)) }
        return max(1e-3, Self.interpolate(curve, at: Double(instances)))
    }

    private static func along(_ points: [(batch: Int, ms: Double)], at batch: Int) -> Double {
        max(1e-3, interpolate(points.map { (Double($0.batch), $0.ms) }, at: Double(batch)))
    }

    /// Piecewise-linear through `points` (sorted by x), linear beyond the ends.
    static func interpolate(_ points: [(Double, Double)], at x: Double) -> Double {
        guard let first = points.first else { return 1 }
        guard points.count > 1 else {
            // One point: scale proportionally (a batch of 2 takes twice as long) as the cautious guess.
            return first.0 > 0 ? first.1 * max(x, 1) / first.0 : first.1
        }
        var lower = points[0]
        var upper = points[1]
        if x >= points[points.count - 1].0 {
            lower = points[points.count - 2]
            upper = points[points.count - 1]
        } else if x > points[0].0 {
            for index in 1..<points.count where points[index].0 >= x {
                lower = points[index - 1]
                upper = points[index]
                break
            }
        }
        guard upper.0 != lower.0 else { return lower.1 }
        return lower.1 + (upper.1 - lower.1) * (x - lower.0) / (upper.0 - lower.0)
    }
}
