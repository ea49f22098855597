/// The knobs DNNScaler turns per model: how large a batch may grow, how many instances run side
/// by side, and how long a partial batch may wait to fill.
public struct ServingConfiguration: Sendable, Equatable, Codable, CustomStringConvertible {
    /// The largest batch (in samples) one instance runs at once.
    public var batchLimit: Int
    /// Instances running side by side; each gets cores / instances intra-op threads.
    public var instances: Int
    /// How long the oldest queued request may wait for a batch to fill, in ms; 0 never waits
    /// (an idle instance takes whatever is queued at once).
    public var maxQueueDelayMs: Double

    /// Creates a configuration.
    public init(batchLimit: Int, instances: Int, maxQueueDelayMs: Double = 0) {
        self.batchLimit = batchLimit
        self.instances = instances
        self.maxQueueDelayMs = maxQueueDelayMs
    }

    /// `batch 8 x 2 instances, delay 0 ms`.
    public var description: String {
        "batch \(batchLimit) x \(instances) instance\(instances == 1 ? "" : "s"), delay \(maxQueueDelayMs) ms"
    }

    /// Clamps every knob into the allowed ranges.
    public func clamped(maxBatch: Int, maxInstances: Int) -> ServingConfiguration {
        ServingConfiguration(
            batchLimit: min(max(1, batchLimit), max(1, maxBatch)),
            instances: min(max(1, instances), max(1, maxInstances)),
            maxQueueDelayMs: max(0, maxQueueDelayMs))
    }
}
