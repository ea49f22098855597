import Foundation

/// How a model gains throughput: bigger batches through one instance, or more instances side by side.
public enum ScalingMode: String, Sendable, Codable, CaseIterable {
    /// Batch requests through a single instance.
    case batching
    /// Run several instances side by side, each at batch 1.
    case multiTenancy = "multi-tenancy"
}

/// Per-batch latency statistics of one configuration, in milliseconds.
public struct LatencySummary: Sendable, Codable, Equatable {
    /// Mean.
    public var mean: Double
    /// Median.
    public var p50: Double
    /// 95th percentile.
    public var p95: Double
    /// 99th percentile.
    public var p99: Double
    /// The percentile the profile was asked for (``Profile/percentile``); equals p99 when that is 99.
    public var atPercentile: Double

    /// Creates a summary from already computed values.
    public init(mean: Double, p50: Double, p95: Double, p99: Double, atPercentile: Double) {
        self.mean = mean
        self.p50 = p50
        self.p95 = p95
        self.p99 = p99
        self.atPercentile = atPercentile
    }

    /// Summarises raw samples (milliseconds) with nearest-rank percentiles.
    public init(samples: [Double], percentile: Double) {
        let sorted = samples.sorted()
        mean = sorted.isEmpty ? 0 : sorted.reduce(0, +) / Double(sorted.count)
        p50 = Self.percentile(50, ofSorted: sorted)
        p95 = Self.percentile(95, ofSorted: sorted)
        p99 = Self.percentile(99, ofSorted: sorted)
        atPercentile = Self.percentile(percentile, ofSorted: sorted)
    }

    /// The nearest-rank percentile of sorted samples (0 for none).
    public static func percentile(_ percentile: Double, ofSorted sorted: [Double]) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((percentile / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }
}

/// One measured configuration: k instances x t threads each, batch size b.
public struct ProfilePoint: Sendable, Codable, Equatable {
    /// Instances running side by side.
    public var instances: Int
    /// Intra-op threads of each instance.
    public var threadsPerInstance: Int
    /// Requests (samples) per batch.
    public var batchSize: Int
    /// Inferences (samples, not batches) per second over all instances.
    public var throughput: Double
    /// Per-batch latency, measured around each backend call.
    public var latencyMs: LatencySummary
    /// Batches completed during the measurement.
    public var batches: Int
    /// Resident memory of the process after this point's run, in bytes (0 where unknown).
    public var residentMemoryBytes: Int
    /// Where an imported point's numbers come from (a citation such as `owner/repo@commit:path`);
    /// `nil` for points this project measured. Optional in the JSON.
    public var source: String?

    /// Creates a point.
    public init(
        instances: Int, threadsPerInstance: Int, batchSize: Int, throughput: Double, latencyMs: LatencySummary,
        batches: Int, residentMemoryBytes: Int, source: String? = nil
    ) {
        self.instances = instances
        self.threadsPerInstance = threadsPerInstance
        self.batchSize = batchSize
        self.throughput = throughput
        self.latencyMs = latencyMs
        self.batches = batches
        self.residentMemoryBytes = residentMemoryBytes
        self.source = source
    }
}

/// The Profiler's verdict: which lever gains more over the batch-1, single-instance baseline and,
/// given an SLO, the best configuration whose per-batch tail latency fits it.
public struct ProfileDecision: Sendable, Codable, Equatable {
    /// The lever with the larger gain (batching only by more than ``batchingMargin``).
    public var mode: ScalingMode
    /// Throughput of 1 instance at batch 1 (inferences/s).
    public var baselineThroughput: Double
    /// Best single-instance throughput over all batch sizes / baseline.
    public var batchingGain: Double
    /// Best batch-1 throughput over all instance counts / baseline.
    public var multiTenancyGain: Double
    /// The SLO the configurations were judged against, if one was given.
    public var sloMs: Double?
    /// Highest-throughput point in the chosen mode whose latency at the percentile fits the SLO
    /// (or, without an SLO, the highest-throughput point in the chosen mode).
    public var bestInMode: ProfilePoint?
    /// Highest-throughput point of the whole grid (mixed k x b included) that fits the SLO.
    public var bestOverall: ProfilePoint?

    /// Batching is chosen only when its gain is more than this multiple of multi-tenancy's (beyond
    /// the paper, which takes the larger gain). Multi-tenancy reaches its gain with a few requests in
    /// flight, batching with a batch of many, so at equal gains multi-tenancy's latency is lower; and
    /// on a CPU both gains are often within a few percent of 1, where a short probe's noise alone
    /// decided (resnet50 on 2 cores: batching 1.009-1.044, multi-tenancy 1.018-1.026 over loads).
    public static let batchingMargin = 1.05

    /// Decides from measured points, as DNNScaler's Profiler does (with ``batchingMargin``).
    public init(points: [ProfilePoint], sloMs: Double?) {
        let singleInstance = points.filter { $0.instances == 1 }
        let batchOne = points.filter { $0.batchSize == 1 }
        let baseline =
            singleInstance.first { $0.batchSize == 1 }?.throughput
            ?? points.min { ($0.instances, $0.batchSize) < ($1.instances, $1.batchSize) }?.throughput ?? 0
        let bestBatching = singleInstance.map(\.throughput).max() ?? baseline
        let bestMultiTenancy = batchOne.map(\.throughput).max() ?? baseline
        baselineThroughput = baseline
        batchingGain = baseline > 0 ? bestBatching / baseline : 1
        multiTenancyGain = baseline > 0 ? bestMultiTenancy / baseline : 1
        mode = batchingGain > Self.batchingMargin * multiTenancyGain ? .batching : .multiTenancy
        self.sloMs = sloMs
        let fits: (ProfilePoint) -> Bool = { point in sloMs.map { point.latencyMs.atPercentile <= $0 } ?? true }
        let modePoints = mode == .batching ? singleInstance : batchOne
        bestInMode = modePoints.filter(fits).max { $0.throughput < $1.throughput }
        bestOverall = points.filter(fits).max { $0.throughput < $1.throughput }
    }
}

/// A model's measured throughput and latency over a grid of (instances, threads, batch size):
/// what `dnnscaler profile` writes and the server and simulator read. See docs/profile-format.md.
public struct Profile: Sendable, Codable, Equatable {
    /// The version of this format; readers reject versions they do not know.
    public static let currentFormatVersion = 1

    /// Format version of this document.
    public var formatVersion: Int
    /// The model's name.
    public var model: String
    /// Where the measurement ran, e.g. `onnxruntime 1.31.1`, or a GPU profile's source.
    public var backend: String
    /// The hardware, e.g. `cpu: 2 x AMD EPYC 9B14`.
    public var device: String
    /// When it was measured (ISO 8601).
    public var createdAt: String
    /// The latency percentile reported as ``LatencySummary/atPercentile``.
    public var percentile: Double
    /// Measured seconds per point.
    public var durationSeconds: Double
    /// The measured grid.
    public var points: [ProfilePoint]
    /// The Profiler's decision.
    public var decision: ProfileDecision
    /// Where an imported profile's numbers come from, and what was decided in importing them;
    /// `nil` for profiles this project measured. Optional in the JSON.
    public var source: ProfileSource?

    /// Creates a profile and its decision.
    public init(
        model: String, backend: String, device: String, createdAt: String, percentile: Double,
        durationSeconds: Double, points: [ProfilePoint], sloMs: Double?, source: ProfileSource? = nil
    ) {
        formatVersion = Self.currentFormatVersion
        self.model = model
        self.backend = backend
        self.device = device
        self.createdAt = createdAt
        self.percentile = percentile
        self.durationSeconds = durationSeconds
        self.points = points
        decision = ProfileDecision(points: points, sloMs: sloMs)
        self.source = source
    }

    /// The point measured at this configuration, if any.
    public func point(instances: Int, batchSize: Int) -> ProfilePoint? {
        points.first { $0.instances == instances && $0.batchSize == batchSize }
    }
}

/// The provenance of an imported profile: the files its numbers come from, the decisions taken in
/// importing them, and the jobs (SLO, assigned mode) the source defines for the model.
public struct ProfileSource: Sendable, Codable, Equatable {
    /// One line on what the numbers are, e.g. "GPU latencies from the DNNScaler and BatchDVFS artifacts".
    public var description: String
    /// The source files (paths or `owner/repo@commit:path` citations).
    public var files: [String]
    /// What importing decided: which rows became points, how gaps were filled, caveats.
    public var notes: [String]
    /// The jobs the source defines on this model: SLO and the mode its authors assigned.
    public var jobs: [SourceJob]

    /// Creates a source record.
    public init(description: String, files: [String], notes: [String], jobs: [SourceJob] = []) {
        self.description = description
        self.files = files
        self.notes = notes
        self.jobs = jobs
    }
}

/// A job the source of an imported profile defines: a latency SLO and the mode its authors gave it.
public struct SourceJob: Sendable, Codable, Equatable {
    /// The job's name in the source (e.g. a result-file prefix).
    public var label: String
    /// The latency SLO in ms.
    public var sloMs: Double
    /// What the source's controller compares with the SLO (e.g. a mean per-batch latency).
    public var sloStatistic: String
    /// The mode the source's authors assigned, if any.
    public var modeAssigned: ScalingMode?
    /// Where the job is defined (a citation).
    public var citation: String

    /// Creates a job.
    public init(label: String, sloMs: Double, sloStatistic: String, modeAssigned: ScalingMode?, citation: String) {
        self.label = label
        self.sloMs = sloMs
        self.sloStatistic = sloStatistic
        self.modeAssigned = modeAssigned
        self.citation = citation
    }
}
