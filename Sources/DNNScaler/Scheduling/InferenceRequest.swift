/// One client request: named input tensors (batch dimension first), the outputs wanted and the
/// time by which it must be answered.
public struct InferenceRequest: Sendable {
    /// The client's id, echoed in the response (may be empty).
    public var id: String
    /// Every model input by name.
    public var inputs: [String: Tensor]
    /// The outputs to return (`nil`: all, in the model's order).
    public var outputNames: [String]?
    /// The latest acceptable completion time; `nil` uses the model's SLO from arrival.
    public var timeoutMs: Double?
    /// When the request reached the server (a front end sets it before reading the body); its
    /// deadline and the latency it is charged count from here. `nil`: when the runtime gets it.
    public var arrival: ContinuousClock.Instant?

    /// Creates a request.
    public init(
        id: String = "", inputs: [String: Tensor], outputNames: [String]? = nil, timeoutMs: Double? = nil,
        arrival: ContinuousClock.Instant? = nil
    ) {
        self.id = id
        self.inputs = inputs
        self.outputNames = outputNames
        self.timeoutMs = timeoutMs
        self.arrival = arrival
    }

    /// Samples in this request: the first dimension of its inputs (1 for scalars).
    public var batchSize: Int {
        inputs.values.first?.shape.first ?? 1
    }
}

/// The answer to one request.
public struct InferenceResponse: Sendable {
    /// The request's id.
    public var id: String
    /// Output tensors in the requested order (or the model's order).
    public var outputs: [(name: String, tensor: Tensor)]
    /// Time spent queued, in ns.
    public var queueNanoseconds: UInt64
    /// Time spent in the backend for the batch this request was part of, in ns.
    public var computeNanoseconds: UInt64
    /// Samples in the batch this request ran in.
    public var executedBatchSize: Int
}

/// Why a request was not served. The protocol layers map these to status codes in one place.
public enum SchedulingError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The queue holds its maximum number of requests.
    case queueFull(limit: Int)
    /// The queue ahead is too long to finish before the request's deadline.
    case deadlineUnreachable(estimatedMs: Double, budgetMs: Double)
    /// The deadline passed while the request waited, or its batch would end after it.
    case deadlineExpired(waitedMs: Double, budgetMs: Double)
    /// The model is not loaded or is being unloaded.
    case unavailable(String)
    /// The request itself is wrong (names, shapes, types) or the backend failed.
    case backend(BackendError)

    /// A one-line message for clients and logs.
    public var description: String {
        switch self {
        case .queueFull(let limit):
            "request rejected: the model's queue is full (\(limit) requests); retry later"
        case .deadlineUnreachable(let estimated, let budget):
            "request rejected: it would finish in about \(Self.format(estimated)) ms, "
                + "beyond its \(Self.format(budget)) ms deadline (server overloaded)"
        case .deadlineExpired(let waited, let budget):
            "request dropped: after \(Self.format(waited)) ms in the server it could not finish within its "
                + "\(Self.format(budget)) ms deadline (server overloaded)"
        case .unavailable(let reason):
            reason
        case .backend(let error):
            error.description
        }
    }

    /// Whether the request was refused for load (shed), rather than for being wrong.
    public var isShed: Bool {
        switch self {
        case .queueFull, .deadlineUnreachable, .deadlineExpired: true
        case .unavailable, .backend: false
        }
    }

    private static func format(_ value: Double) -> String {
        value.isFinite ? String(Int(value.rounded())) : "inf"
    }
}
