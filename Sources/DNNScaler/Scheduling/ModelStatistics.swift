/// A cumulative count and total duration, as Triton's statistics report them.
public struct DurationStatistic: Sendable, Equatable, Codable {
    /// How many.
    public var count: UInt64 = 0
    /// Total nanoseconds.
    public var ns: UInt64 = 0

    /// Zero.
    public init() {}

    /// Adds one occurrence of `nanoseconds`.
    public mutating func add(_ nanoseconds: UInt64, count: UInt64 = 1) {
        self.count &+= count
        ns &+= nanoseconds
    }
}

/// Cumulative statistics of one model since it was loaded (Triton's `$model_stat` and more).
public struct ModelStatistics: Sendable, Equatable {
    /// Requests answered successfully (end-to-end duration).
    public var success = DurationStatistic()
    /// Requests that failed after admission: backend errors (end-to-end duration).
    public var failure = DurationStatistic()
    /// Time successful requests spent queued.
    public var queue = DurationStatistic()
    /// Time spent assembling batch inputs, per request.
    public var computeInput = DurationStatistic()
    /// Time spent in the backend, per request (each request is charged its batch's time).
    public var computeInfer = DurationStatistic()
    /// Time spent splitting outputs, per request.
    public var computeOutput = DurationStatistic()
    /// Samples inferred (a request of batch 4 counts 4).
    public var inferenceCount: UInt64 = 0
    /// Batches run.
    public var executionCount: UInt64 = 0
    /// Requests refused for load: queue full, deadline unreachable or expired.
    public var shedCount: UInt64 = 0
    /// Requests refused as invalid (bad names, shapes, types).
    public var rejectedCount: UInt64 = 0
    /// Requests that arrived (all outcomes).
    public var arrivals: UInt64 = 0
    /// Wall-clock time of the last completed inference, in ms since 1970 (0: none yet).
    public var lastInferenceMs: UInt64 = 0
    /// Per executed batch size: batches run and their backend time.
    public var batches: [Int: DurationStatistic] = [:]

    /// All zero.
    public init() {}
}
