import Foundation

/// How the load generator sends requests.
public enum LoadShape: Sendable, Equatable {
    /// Open loop: requests are sent at scheduled times whatever the server does; latency counts from the
    /// scheduled time, so a stalled server shows up in the latencies (no coordinated omission).
    case openLoop(rate: Double, distribution: ArrivalDistribution)
    /// Closed loop: `concurrency` clients, each sending its next request when its last one is answered.
    case closedLoop(concurrency: Int)
}

/// How open-loop arrivals are spaced.
public enum ArrivalDistribution: String, Sendable, CaseIterable, Codable {
    /// Exponential inter-arrival times (a Poisson process).
    case poisson
    /// Evenly spaced.
    case constant
}

/// How input tensors travel in the request body.
public enum TensorFormat: String, Sendable, CaseIterable, Codable {
    /// Triton's binary tensor extension (`Inference-Header-Content-Length`).
    case binary
    /// KServe v2 JSON `data` arrays.
    case json
}

/// Everything one load-generator run needs.
public struct BenchSettings: Sendable {
    /// The server's base URL, e.g. `http://127.0.0.1:8000`.
    public var url: String
    /// The model to load.
    public var model: String
    /// Open or closed loop.
    public var shape: LoadShape
    /// Seconds of measured load.
    public var durationSeconds: Double
    /// Seconds of the same load before measuring (the controller adapts; not in the summary).
    public var warmupSeconds: Double
    /// The latency SLO in ms, for attainment and the sweep.
    public var sloMs: Double?
    /// The percentile the SLO is about.
    public var percentile: Double
    /// Samples per request (the first dimension of each input when the model batches).
    public var batchSize: Int
    /// The tensor encoding.
    public var tensorFormat: TensorFormat
    /// Keep-alive connections the client may open.
    public var maxConnections: Int
    /// Seed of the arrival schedule and the input data.
    public var seed: UInt64
    /// Seconds after which a request counts as timed out.
    public var requestTimeoutSeconds: Double
    /// Poll the server's `/dnnscaler/status` every second for batch size and instance count.
    public var pollServerStatus: Bool

    /// Creates settings.
    public init(
        url: String, model: String, shape: LoadShape, durationSeconds: Double = 10, warmupSeconds: Double = 0,
        sloMs: Double? = nil, percentile: Double = 99, batchSize: Int = 1, tensorFormat: TensorFormat = .binary,
        maxConnections: Int = 64, seed: UInt64 = 1, requestTimeoutSeconds: Double = 30, pollServerStatus: Bool = true
    ) {
        self.url = url
        self.model = model
        self.shape = shape
        self.durationSeconds = durationSeconds
        self.warmupSeconds = warmupSeconds
        self.sloMs = sloMs
        self.percentile = percentile
        self.batchSize = batchSize
        self.tensorFormat = tensorFormat
        self.maxConnections = maxConnections
        self.seed = seed
        self.requestTimeoutSeconds = requestTimeoutSeconds
        self.pollServerStatus = pollServerStatus
    }

    /// The base URL without a trailing slash.
    var baseURL: String { url.hasSuffix("/") ? String(url.dropLast()) : url }
}

/// What went wrong with a benchmark run itself (not with a request).
public struct BenchError: Error, CustomStringConvertible, Sendable {
    /// What happened.
    public let description: String

    /// Creates an error.
    public init(_ description: String) { self.description = description }
}
