import DNNScaler
import Foundation

/// The documents the server answers with (model metadata, Triton's model config and statistics,
/// DNNScaler's status), as typed values that belong to no protocol: HTTP encodes them as JSON
/// (``ServingDocuments/encoder``), gRPC maps them to its messages. Keys are the Swift names in
/// snake case (`sloMs` is `slo_ms`), the one rule both directions follow.
enum ServingDocuments {
    /// Encodes a document as the HTTP endpoints send it: snake-case keys, sorted.
    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        return encoder
    }

    /// Decodes what ``encoder`` wrote (clients and tests).
    static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}

/// An optional that a document writes as `null` rather than leaving its key out: clients of the
/// status document read `"used": null` as "not known yet", and a missing key as a malformed reply.
@propertyWrapper
struct NullWhenAbsent<Value: Codable & Sendable & Equatable>: Codable, Sendable, Equatable {
    /// The value, or `nil` (written as `null`).
    var wrappedValue: Value?

    /// Wraps `wrappedValue`.
    init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    /// Reads `null` as `nil`.
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        wrappedValue = container.decodeNil() ? nil : try container.decode(Value.self)
    }

    /// Writes `nil` as `null`.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        if let wrappedValue { try container.encode(wrappedValue) } else { try container.encodeNil() }
    }
}

extension DataType {
    /// Triton's model-config type: its name after `TYPE_` (bytes are `STRING`) and its number in
    /// `model_config.proto`'s `DataType`.
    var tritonConfigType: (name: String, number: Int) {
        switch self {
        case .bool: ("BOOL", 1)
        case .uint8: ("UINT8", 2)
        case .uint16: ("UINT16", 3)
        case .uint32: ("UINT32", 4)
        case .uint64: ("UINT64", 5)
        case .int8: ("INT8", 6)
        case .int16: ("INT16", 7)
        case .int32: ("INT32", 8)
        case .int64: ("INT64", 9)
        case .fp16: ("FP16", 10)
        case .fp32: ("FP32", 11)
        case .fp64: ("FP64", 12)
        case .bytes: ("STRING", 13)
        case .bf16: ("BF16", 14)
        }
    }
}

// MARK: Server, readiness, repository

/// `GET /v2`, `ServerMetadata`: the server's name, version and protocol extensions.
struct ServerMetadataDocument: Codable, Sendable, Equatable {
    var name: String
    var version: String
    var extensions: [String]
}

/// `GET .../ready` of one model.
struct ModelReadyDocument: Codable, Sendable, Equatable {
    var name: String
    var ready: Bool
}

/// `{"error": "..."}`: what every refusal over HTTP answers.
struct ErrorDocument: Codable, Sendable, Equatable {
    var error: String
}

/// One row of the repository index: a model folder or loaded model, its state and why.
struct RepositoryIndexEntryDocument: Codable, Sendable, Equatable {
    var name: String
    /// Absent for a folder that was never loaded.
    var version: String?
    var state: String
    var reason: String
}

/// A registered system shared-memory region, as Triton's status shows it.
struct SharedMemoryRegionDocument: Codable, Sendable, Equatable {
    var name: String
    var key: String
    var offset: Int
    var byteSize: Int
}

// MARK: Metadata

/// A model's name, versions, platform and tensors (`GET /v2/models/{name}`, `ModelMetadata`).
struct ModelMetadataDocument: Codable, Sendable, Equatable {
    /// One input or output: its name, the protocol's datatype name and its shape (-1: any size).
    struct Tensor: Codable, Sendable, Equatable {
        var name: String
        var datatype: String
        var shape: [Int]
    }

    var name: String
    var versions: [String]
    var platform: String
    var inputs: [Tensor]
    var outputs: [Tensor]

    /// What `model` declares.
    init(_ model: ServedModel) {
        let metadata = model.runtime.metadata
        func tensors(_ specs: [TensorSpec]) -> [Tensor] {
            specs.map { Tensor(name: $0.name, datatype: $0.dataType.rawValue, shape: $0.shape) }
        }
        name = model.name
        versions = [String(model.version)]
        platform = metadata.platform
        inputs = tensors(metadata.inputs)
        outputs = tensors(metadata.outputs)
    }
}

// MARK: Config

/// Triton's ModelConfig as the server fills it (`GET .../config`, `ModelConfig`). In JSON it
/// follows protobuf's mapping: 64-bit integers as strings, enums by name.
struct ModelConfigDocument: Codable, Sendable, Equatable {
    /// An input or output: dims without the batch dimension when the model batches.
    struct Tensor: Codable, Sendable, Equatable {
        var name: String
        /// `TYPE_FP32` and so on (``DataType/tritonConfigType``).
        var dataType: String
        @Int64sAsStrings var dims: [Int64]
    }

    /// The one instance group: its instance count now.
    struct InstanceGroup: Codable, Sendable, Equatable {
        var name: String
        var kind: String
        var count: Int
    }

    /// The dynamic batcher's queue delay and queue limit.
    struct DynamicBatching: Codable, Sendable, Equatable {
        /// The queue policy: only its size limit.
        struct QueuePolicy: Codable, Sendable, Equatable {
            var maxQueueSize: Int
        }

        @Int64AsString var maxQueueDelayMicroseconds: Int64
        var defaultQueuePolicy: QueuePolicy
    }

    /// DNNScaler's own settings and the configuration the controller chose (gRPC: `dnnscaler.*`
    /// parameters).
    struct Scaling: Codable, Sendable, Equatable {
        var sloMs: Double
        var percentile: Double
        var policy: String
        var batchLimit: Int
        var instances: Int
    }

    var name: String
    var platform: String
    var backend: String
    var maxBatchSize: Int
    var input: [Tensor]
    var output: [Tensor]
    var instanceGroup: [InstanceGroup]
    var dynamicBatching: DynamicBatching
    var dnnscaler: Scaling

    /// `model`'s config as it serves now.
    init(_ model: ServedModel) {
        let metadata = model.runtime.metadata
        let batching = metadata.supportsBatching
        let configuration = model.runtime.currentConfiguration
        let options = model.options
        func tensors(_ specs: [TensorSpec]) -> [Tensor] {
            specs.map { spec in
                Tensor(
                    name: spec.name, dataType: "TYPE_" + spec.dataType.tritonConfigType.name,
                    dims: (batching ? Array(spec.shape.dropFirst()) : spec.shape).map(Int64.init))
            }
        }
        name = model.name
        platform = metadata.platform
        backend = "onnxruntime"
        maxBatchSize = batching ? options.maxBatchSize : 0
        input = tensors(metadata.inputs)
        output = tensors(metadata.outputs)
        instanceGroup = [InstanceGroup(name: model.name, kind: "KIND_CPU", count: configuration.instances)]
        dynamicBatching = DynamicBatching(
            maxQueueDelayMicroseconds: Int64(max(0, configuration.maxQueueDelayMs * 1000)),
            defaultQueuePolicy: .init(maxQueueSize: options.maxQueueSize))
        dnnscaler = Scaling(
            sloMs: options.sloMs, percentile: options.percentile, policy: options.policy.rawValue,
            batchLimit: configuration.batchLimit, instances: configuration.instances)
    }
}

/// A 64-bit integer written as a JSON string, as protobuf's JSON mapping writes it.
@propertyWrapper
struct Int64AsString: Codable, Sendable, Equatable {
    /// The integer.
    var wrappedValue: Int64

    /// Wraps `wrappedValue`.
    init(wrappedValue: Int64) { self.wrappedValue = wrappedValue }

    /// Reads a string (or a number, as protobuf's JSON parsers accept).
    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let text = try? container.decode(String.self) {
            guard let value = Int64(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an integer: \(text)")
            }
            wrappedValue = value
        } else {
            wrappedValue = try container.decode(Int64.self)
        }
    }

    /// Writes the string.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(String(wrappedValue))
    }
}

/// 64-bit integers written as a list of JSON strings (``Int64AsString``, element by element).
@propertyWrapper
struct Int64sAsStrings: Codable, Sendable, Equatable {
    /// The integers.
    var wrappedValue: [Int64]

    /// Wraps `wrappedValue`.
    init(wrappedValue: [Int64]) { self.wrappedValue = wrappedValue }

    /// Reads a list of strings or numbers.
    init(from decoder: any Decoder) throws {
        wrappedValue = try [Int64AsString](from: decoder).map(\.wrappedValue)
    }

    /// Writes the strings.
    func encode(to encoder: any Encoder) throws {
        try wrappedValue.map(Int64AsString.init(wrappedValue:)).encode(to: encoder)
    }
}

// MARK: Statistics

/// Triton's statistics for one model (`$model_stat`, `ModelStatistics`): cumulative counts and
/// nanoseconds. The cache is never used (zero), and per batch size only the compute time is
/// measured (input and output preparation count, with 0 ns).
struct ModelStatisticsDocument: Codable, Sendable, Equatable {
    /// Per outcome and phase.
    struct InferenceStatistics: Codable, Sendable, Equatable {
        var success: DurationStatistic
        var fail: DurationStatistic
        var queue: DurationStatistic
        var computeInput: DurationStatistic
        var computeInfer: DurationStatistic
        var computeOutput: DurationStatistic
        var cacheHit = DurationStatistic()
        var cacheMiss = DurationStatistic()
    }

    /// Batches run at one size.
    struct BatchStatistics: Codable, Sendable, Equatable {
        var batchSize: Int
        var computeInput: DurationStatistic
        var computeInfer: DurationStatistic
        var computeOutput: DurationStatistic
    }

    var name: String
    var version: String
    /// Milliseconds since the epoch of the last inference (0: none yet).
    var lastInference: UInt64
    var inferenceCount: UInt64
    var executionCount: UInt64
    var inferenceStats: InferenceStatistics
    var batchStats: [BatchStatistics]

    /// `model`'s counters now.
    init(_ model: ServedModel) {
        let statistics = model.runtime.snapshot().statistics
        name = model.name
        version = String(model.version)
        lastInference = statistics.lastInferenceMs
        inferenceCount = statistics.inferenceCount
        executionCount = statistics.executionCount
        inferenceStats = InferenceStatistics(
            success: statistics.success, fail: statistics.failure, queue: statistics.queue,
            computeInput: statistics.computeInput, computeInfer: statistics.computeInfer,
            computeOutput: statistics.computeOutput)
        batchStats = statistics.batches.keys.sorted().map { size in
            let batch = statistics.batches[size] ?? DurationStatistic()
            var countOnly = DurationStatistic()
            countOnly.count = batch.count
            return BatchStatistics(
                batchSize: size, computeInput: countOnly, computeInfer: batch, computeOutput: countOnly)
        }
    }
}

/// `GET /v2/models/stats` and `GET .../stats`: the models' statistics.
struct ModelStatisticsListDocument: Codable, Sendable, Equatable {
    var modelStats: [ModelStatisticsDocument]
}

// MARK: Status

/// DNNScaler's status of one model (`/dnnscaler/status`): what the controller chose and why,
/// the queue, the capacity estimate and the profile's decision.
struct ModelStatusDocument: Codable, Sendable, Equatable {
    /// A batch limit and instance count.
    struct Choice: Codable, Sendable, Equatable {
        var batchLimit: Int
        var instances: Int
    }

    /// The configuration serving now.
    struct Configuration: Codable, Sendable, Equatable {
        var batchLimit: Int
        var instances: Int
        var threadsPerInstance: Int
        var maxQueueDelayMs: Double
    }

    /// ``CapacityEstimate`` as of the controller's last step.
    struct Capacity: Codable, Sendable, Equatable {
        @NullWhenAbsent var used: Double?
        var arrivalRate: Double
        @NullWhenAbsent var sustainableRate: Double?
        var serviceCorrection: Double
        var overheadMs: Double
        @NullWhenAbsent var batchTimeP99OverMean: Double?
        @NullWhenAbsent var predictedConfiguration: Choice?
    }

    /// The quick profile's mode decision and gains.
    struct ProfileSummary: Codable, Sendable, Equatable {
        var mode: String
        var batchingGain: Double
        var multiTenancyGain: Double
        var baselineThroughput: Double
    }

    /// One of the controller's recent decisions.
    struct Decision: Codable, Sendable, Equatable {
        var timeS: Double
        var batchLimit: Int
        var instances: Int
        var reason: String
        var changed: Bool
        @NullWhenAbsent var tailLatencyMs: Double?
        @NullWhenAbsent var serviceTailLatencyMs: Double?
        var arrivalRate: Double
    }

    /// Decisions the document lists, the most recent.
    static let decisionCount = 10

    var name: String
    var version: String
    var policy: String
    /// `batching`, `multi-tenancy`, or `fixed` for a policy without a mode.
    var mode: String
    var sloMs: Double
    var percentile: Double
    var configuration: Configuration
    /// The percentile of latency over the last ``ModelStatusDocument/tailWindowSeconds``.
    @NullWhenAbsent var windowTailLatencyMs: Double?
    @NullWhenAbsent var capacity: Capacity?
    var queueLength: Int
    var inFlight: Int
    var shed: UInt64
    var succeeded: UInt64
    var failed: UInt64
    @NullWhenAbsent var profile: ProfileSummary?
    var decisions: [Decision]

    /// Seconds of latency ``windowTailLatencyMs`` is taken over.
    static let tailWindowSeconds = 3.0

    /// `model`'s status now.
    init(_ model: ServedModel) {
        let snapshot = model.runtime.snapshot()
        let status = model.controller.status
        let options = model.options
        name = model.name
        version = String(model.version)
        policy = status.policy
        mode = status.mode?.rawValue ?? "fixed"
        sloMs = options.sloMs
        percentile = options.percentile
        configuration = Configuration(
            batchLimit: snapshot.configuration.batchLimit, instances: snapshot.configuration.instances,
            threadsPerInstance: max(1, model.runtime.settings.cores / snapshot.configuration.instances),
            maxQueueDelayMs: snapshot.configuration.maxQueueDelayMs)
        windowTailLatencyMs = snapshot.latencyWindow.percentile(
            options.percentile, since: snapshot.time - Self.tailWindowSeconds)
        capacity = model.controller.capacity.map { capacity in
            Capacity(
                used: capacity.used, arrivalRate: capacity.arrivalRate, sustainableRate: capacity.sustainableRate,
                serviceCorrection: capacity.serviceCorrection, overheadMs: capacity.overheadMs,
                batchTimeP99OverMean: capacity.batchTimeSpread.last,
                predictedConfiguration: capacity.predictedConfiguration.map {
                    Choice(batchLimit: $0.batchLimit, instances: $0.instances)
                })
        }
        queueLength = snapshot.queueLength
        inFlight = snapshot.inFlight
        shed = snapshot.statistics.shedCount
        succeeded = snapshot.statistics.success.count
        failed = snapshot.statistics.failure.count
        profile = (model.profile?.decision).map { decision in
            ProfileSummary(
                mode: decision.mode.rawValue, batchingGain: decision.batchingGain,
                multiTenancyGain: decision.multiTenancyGain, baselineThroughput: decision.baselineThroughput)
        }
        decisions = status.decisions.suffix(Self.decisionCount).map { record in
            Decision(
                timeS: record.time, batchLimit: record.configuration.batchLimit,
                instances: record.configuration.instances, reason: record.reason, changed: record.changed,
                tailLatencyMs: record.tailLatencyMs, serviceTailLatencyMs: record.serviceTailMs,
                arrivalRate: record.arrivalRate)
        }
    }
}

/// `/dnnscaler/status`: the server (platform, drain, control mode, the largest capacity used)
/// and its ready models.
struct ServerStatusDocument: Codable, Sendable, Equatable {
    /// The cores the instances share, where the count came from, and their split.
    struct CPU: Codable, Sendable, Equatable {
        var cores: Int
        /// Where the count came from (``CPUBudget/Source``: `affinity`, `cgroup-v2 cpu.max`, ...).
        var source: String
        /// CPU list syntax, such as `0-3,6`.
        var allowedCpus: String
        @NullWhenAbsent var quotaCores: Double?
        var computeCores: Int
        var ioCores: Int
        var computeCpus: String
    }

    /// The server-wide part.
    struct Server: Codable, Sendable, Equatable {
        @NullWhenAbsent var cpu: CPU?
        @NullWhenAbsent var memoryLimitBytes: Int?
        /// The largest ``ModelStatusDocument/Capacity/used`` over the models (0 with none).
        var capacityUsed: Double
        var draining: Bool
        var modelControlMode: String
    }

    var server: Server
    var models: [ModelStatusDocument]
}
