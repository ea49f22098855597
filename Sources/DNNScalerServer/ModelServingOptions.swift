import DNNScaler
import Foundation

/// How one model is served: SLO, policy, limits. Built from the server's defaults, then the
/// model's `config.json` in the repository, then a load request's config override (each layer
/// sets only the fields it names). Schema: docs/model-config.md.
public struct ModelServingOptions: Sendable, Equatable {
    /// Latency SLO in ms.
    public var sloMs: Double
    /// The percentile of per-request latency the SLO is about.
    public var percentile: Double
    /// The scaling policy.
    public var policy: PolicyKind
    /// Batch limit for the static policy.
    public var staticBatchSize: Int
    /// Instances for the static policy.
    public var staticInstances: Int
    /// Max queue delay in ms for the static policy; the other policies start from it too.
    public var maxQueueDelayMs: Double
    /// The most queued requests.
    public var maxQueueSize: Int
    /// The largest batch the model may run.
    public var maxBatchSize: Int
    /// The most instances a policy may run.
    public var maxInstances: Int
    /// Seconds per point of the quick profile run at load (when no profile file exists).
    public var probeSeconds: Double

    /// Creates options.
    public init(
        sloMs: Double = 100, percentile: Double = 99, policy: PolicyKind = .joint, staticBatchSize: Int = 1,
        staticInstances: Int = 1, maxQueueDelayMs: Double = 0, maxQueueSize: Int = 1024, maxBatchSize: Int = 64,
        maxInstances: Int = SystemInfo.cpuCores, probeSeconds: Double = 0.5
    ) {
        self.sloMs = sloMs
        self.percentile = percentile
        self.policy = policy
        self.staticBatchSize = staticBatchSize
        self.staticInstances = staticInstances
        self.maxQueueDelayMs = maxQueueDelayMs
        self.maxQueueSize = maxQueueSize
        self.maxBatchSize = maxBatchSize
        self.maxInstances = maxInstances
        self.probeSeconds = probeSeconds
    }

    /// Checks ranges; the message names the field.
    public func validate() throws(ServerError) {
        guard sloMs > 0, sloMs.isFinite else { throw .badRequest("slo_ms must be a positive number, got \(sloMs)") }
        guard percentile > 0, percentile <= 100 else {
            throw .badRequest("percentile must be in (0, 100], got \(percentile)")
        }
        guard staticBatchSize >= 1, staticInstances >= 1, maxBatchSize >= 1, maxInstances >= 1 else {
            throw .badRequest("batch sizes and instance counts must be at least 1")
        }
        guard maxQueueSize >= 1 else { throw .badRequest("max_queue_size must be at least 1, got \(maxQueueSize)") }
        guard maxQueueDelayMs >= 0, maxQueueDelayMs.isFinite else {
            throw .badRequest("max_queue_delay_ms must be >= 0, got \(maxQueueDelayMs)")
        }
        guard probeSeconds > 0, probeSeconds.isFinite else {
            throw .badRequest("probe_seconds must be positive, got \(probeSeconds)")
        }
    }

    /// Applies a model config document (JSON object): Triton's `max_batch_size`,
    /// `dynamic_batching.max_queue_delay_microseconds`, `dynamic_batching.default_queue_policy.max_queue_size`,
    /// `instance_group[0].count`, and the `dnnscaler` object's fields.
    public func applying(configJSON data: Data) throws(ServerError) -> ModelServingOptions {
        guard let object = try? JSONSerialization.jsonObject(with: data), let config = object as? [String: Any] else {
            throw .badRequest("model config must be a JSON object")
        }
        var result = self
        if let value = config["max_batch_size"] {
            let maxBatch = try Self.integer(value, field: "max_batch_size")
            result.maxBatchSize = max(1, maxBatch)
        }
        if let batching = config["dynamic_batching"] as? [String: Any] {
            if let delay = batching["max_queue_delay_microseconds"] {
                result.maxQueueDelayMs = Double(try Self.integer(delay, field: "max_queue_delay_microseconds")) / 1000
            }
            if let policy = batching["default_queue_policy"] as? [String: Any], let size = policy["max_queue_size"] {
                result.maxQueueSize = try Self.integer(size, field: "default_queue_policy.max_queue_size")
            }
        }
        if let groups = config["instance_group"] as? [[String: Any]], let count = groups.first?["count"] {
            result.staticInstances = try Self.integer(count, field: "instance_group.count")
        }
        if let ours = config["dnnscaler"] {
            guard let ours = ours as? [String: Any] else { throw .badRequest("'dnnscaler' must be a JSON object") }
            let known: Set = [
                "slo_ms", "percentile", "policy", "batch_size", "instances", "max_queue_delay_ms", "max_queue_size",
                "max_batch_size", "max_instances", "probe_seconds",
            ]
            if let unknown = ours.keys.first(where: { !known.contains($0) }) {
                throw .badRequest(
                    "unknown field 'dnnscaler.\(unknown)' (known: \(known.sorted().joined(separator: ", ")))")
            }
            if let value = ours["slo_ms"] { result.sloMs = try Self.number(value, field: "slo_ms") }
            if let value = ours["percentile"] { result.percentile = try Self.number(value, field: "percentile") }
            if let value = ours["policy"] {
                guard let text = value as? String, let kind = PolicyKind(rawValue: text) else {
                    throw .badRequest(
                        "policy must be one of \(PolicyKind.allCases.map(\.rawValue).joined(separator: ", ")), got \(value)"
                    )
                }
                result.policy = kind
            }
            if let value = ours["batch_size"] { result.staticBatchSize = try Self.integer(value, field: "batch_size") }
            if let value = ours["instances"] { result.staticInstances = try Self.integer(value, field: "instances") }
            if let value = ours["max_queue_delay_ms"] {
                result.maxQueueDelayMs = try Self.number(value, field: "max_queue_delay_ms")
            }
            if let value = ours["max_queue_size"] {
                result.maxQueueSize = try Self.integer(value, field: "max_queue_size")
            }
            if let value = ours["max_batch_size"] {
                result.maxBatchSize = try Self.integer(value, field: "max_batch_size")
            }
            if let value = ours["max_instances"] {
                result.maxInstances = try Self.integer(value, field: "max_instances")
            }
            if let value = ours["probe_seconds"] {
                result.probeSeconds = try Self.number(value, field: "probe_seconds")
            }
        }
        try result.validate()
        return result
    }

    private static func number(_ value: Any, field: String) throws(ServerError) -> Double {
        if let number = JSONValues.number(value) { return number.doubleValue }
        if let text = value as? String, let number = Double(text) { return number }
        throw .badRequest("\(field) must be a number, got \(value)")
    }

    private static func integer(_ value: Any, field: String) throws(ServerError) -> Int {
        let number = try number(value, field: field)
        guard number == number.rounded(), abs(number) < 1e9 else {
            throw .badRequest("\(field) must be an integer, got \(value)")
        }
        return Int(number)
    }
}
