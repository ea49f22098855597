import Foundation
import Synchronization

/// What to measure: the grid and how long each point runs.
public struct ProfilerSettings: Sendable {
    /// Batch sizes to try (only 1 for models without a dynamic batch dimension).
    public var batchSizes: [Int]
    /// Instance counts to try.
    public var instanceCounts: [Int]
    /// Intra-op threads per instance; `nil` means cores / instances (at least 1).
    public var threadsPerInstance: Int?
    /// Seconds of measurement per point, after warm-up.
    public var durationSeconds: Double
    /// Warm-up batches per instance before a point is measured.
    public var warmupBatches: Int
    /// The latency percentile to report and judge the SLO by.
    public var percentile: Double
    /// The SLO to judge configurations against, if any.
    public var sloMs: Double?
    /// Batches each instance runs at least, even past `durationSeconds` (0: none): a short probe of
    /// a slow model otherwise judges a configuration by a handful of batches.
    public var minimumBatchesPerInstance: Int
    /// The longest a point may run to reach `minimumBatchesPerInstance`, in seconds.
    public var maximumDurationSeconds: Double
    /// Times the whole grid is measured, one pass after the other; each point keeps its fastest
    /// pass (see ``Profiler/fastestPasses(_:)``). 1 for `dnnscaler profile`.
    public var passes = 1

    /// Creates settings; the defaults are `dnnscaler profile`'s.
    public init(
        batchSizes: [Int] = [1, 2, 4, 8, 16, 32], instanceCounts: [Int] = [1, 2], threadsPerInstance: Int? = nil,
        durationSeconds: Double = 5, warmupBatches: Int = 2, percentile: Double = 99, sloMs: Double? = nil,
        minimumBatchesPerInstance: Int = 0, maximumDurationSeconds: Double? = nil
    ) {
        self.minimumBatchesPerInstance = minimumBatchesPerInstance
        self.maximumDurationSeconds = max(durationSeconds, maximumDurationSeconds ?? durationSeconds)
        self.batchSizes = batchSizes
        self.instanceCounts = instanceCounts
        self.threadsPerInstance = threadsPerInstance
        self.durationSeconds = durationSeconds
        self.warmupBatches = warmupBatches
        self.percentile = percentile
        self.sloMs = sloMs
    }

    /// Threads each of `instances` instances gets.
    public func threads(forInstances instances: Int, cores: Int = SystemInfo.cpuCores) -> Int {
        threadsPerInstance ?? max(1, cores / max(1, instances))
    }

    /// Checks the settings; the message says which value is wrong.
    public func validate() throws(BackendError) {
        guard !batchSizes.isEmpty, batchSizes.allSatisfy({ $0 >= 1 }) else {
            throw .invalidArgument("batch sizes must be positive integers, got \(batchSizes)")
        }
        guard !instanceCounts.isEmpty, instanceCounts.allSatisfy({ $0 >= 1 }) else {
            throw .invalidArgument("instance counts must be positive integers, got \(instanceCounts)")
        }
        if let threadsPerInstance, threadsPerInstance < 1 {
            throw .invalidArgument("threads per instance must be at least 1, got \(threadsPerInstance)")
        }
        guard durationSeconds > 0, durationSeconds.isFinite else {
            throw .invalidArgument("duration must be a positive number of seconds, got \(durationSeconds)")
        }
        guard percentile > 0, percentile <= 100 else {
            throw .invalidArgument("percentile must be in (0, 100], got \(percentile)")
        }
        if let sloMs, !(sloMs > 0 && sloMs.isFinite) {
            throw .invalidArgument("the SLO must be a positive number of milliseconds, got \(sloMs)")
        }
    }
}

/// Measures a model in process over a grid of (instances, threads, batch size): throughput,
/// per-batch latency percentiles and resident memory, then decides batching vs multi-tenancy.
public struct Profiler: Sendable {
    /// A progress event, for a caller that shows progress.
    public enum Progress: Sendable {
        /// Point `index` of `total` is about to be measured.
        case started(index: Int, total: Int, instances: Int, threads: Int, batchSize: Int)
        /// Point `index` of `total` is done.
        case finished(index: Int, total: Int, point: ProfilePoint)
        /// A requested configuration is skipped, with the reason.
        case skipped(String)
    }

    /// The model to measure.
    public let backend: any InferenceBackend
    /// The grid and durations.
    public let settings: ProfilerSettings

    /// Creates a profiler.
    public init(backend: any InferenceBackend, settings: ProfilerSettings) {
        self.backend = backend
        self.settings = settings
    }

    /// The configurations to measure, in order: instances outer, batch sizes inner.
    public func grid() -> [(instances: Int, batchSize: Int)] {
        let batchSizes = backend.metadata.supportsBatching ? settings.batchSizes : [1]
        return settings.instanceCounts.flatMap { instances in batchSizes.map { (instances, $0) } }
    }

    /// Runs the whole grid. Blocking (it runs the model on its own threads); call it off the
    /// cooperative pool for long profiles.
    public func run(
        backendDescription: String, progress: (Progress) -> Void = { _ in }
    ) throws(BackendError) -> Profile {
        try settings.validate()
        if !backend.metadata.supportsBatching && settings.batchSizes != [1] {
            progress(.skipped("model has no dynamic batch dimension: measuring batch size 1 only"))
        }
        let configurations = grid()
        let passes = max(1, settings.passes)
        let total = configurations.count * passes
        var measured: [[ProfilePoint]] = []
        for pass in 0..<passes {
            var points: [ProfilePoint] = []
            for (index, configuration) in configurations.enumerated() {
                let step = pass * configurations.count + index + 1
                let threads = settings.threads(forInstances: configuration.instances)
                progress(
                    .started(
                        index: step, total: total, instances: configuration.instances, threads: threads,
                        batchSize: configuration.batchSize))
                let point = try measure(
                    instances: configuration.instances, threads: threads, batchSize: configuration.batchSize)
                points.append(point)
                progress(.finished(index: step, total: total, point: point))
            }
            measured.append(points)
        }
        let points = Self.fastestPasses(measured)
        return Profile(
            model: backend.metadata.name, backend: backendDescription, device: SystemInfo.deviceDescription,
            createdAt: ISO8601DateFormatter().string(from: Date()), percentile: settings.percentile,
            durationSeconds: settings.durationSeconds, points: points, sloMs: settings.sloMs)
    }

    /// Per grid point, the pass with the highest throughput: on a shared machine a disturbance
    /// (another process, a noisy neighbour) only ever slows a measurement down, so the fastest of
    /// passes taken seconds apart is the least disturbed. The quick probe's two passes keep one
    /// slow stretch from deciding the mode: resnet50's single-pass probe once measured batch 1 x 1
    /// instance at 60% of its speed, and both other levers 1.6x better than it.
    public static func fastestPasses(_ passes: [[ProfilePoint]]) -> [ProfilePoint] {
        guard var best = passes.first else { return [] }
        for pass in passes.dropFirst() {
            for (index, point) in pass.enumerated()
            where index < best.count && point.throughput > best[index].throughput {
                best[index] = point
            }
        }
        return best
    }

    /// Measures one configuration: `instances` threads, each driving its own instance in a closed
    /// loop of `batchSize` batches for the configured duration.
    public func measure(instances: Int, threads: Int, batchSize: Int) throws(BackendError) -> ProfilePoint {
        let sessions = try (0..<instances).map { (_) throws(BackendError) in try backend.makeInstance(threads: threads)
        }
        let inputs = try Self.sampleInputs(for: backend.metadata, batchSize: batchSize)
        for session in sessions {
            for _ in 0..<settings.warmupBatches { _ = try session.run(inputs, outputNames: nil) }
        }
        let clock = ContinuousClock()
        let results = Mutex<(latencies: [Double], error: BackendError?, end: ContinuousClock.Instant?)>(([], nil, nil))
        let start = clock.now
        let deadline = start.advanced(by: .milliseconds(Int64(settings.durationSeconds * 1000)))
        let hardDeadline = start.advanced(by: .milliseconds(Int64(settings.maximumDurationSeconds * 1000)))
        let minimumBatches = settings.minimumBatchesPerInstance
        let finished = DispatchGroup()
        for session in sessions {
            finished.enter()
            let thread = Thread {
                var latencies: [Double] = []
                var failure: BackendError?
                while clock.now < deadline || (latencies.count < minimumBatches && clock.now < hardDeadline) {
                    let before = clock.now
                    do throws(BackendError) {
                        _ = try session.run(inputs, outputNames: nil)
                    } catch {
                        failure = error
                        break
                    }
                    latencies.append(Self.milliseconds(before.duration(to: clock.now)))
                }
                let end = clock.now
                results.withLock { state in
                    state.latencies += latencies
                    if state.error == nil { state.error = failure }
                    state.end = max(state.end ?? end, end)
                }
                finished.leave()
            }
            thread.stackSize = 8 << 20
            thread.start()
        }
        finished.wait()
        let (latencies, failure, end) = results.withLock { ($0.latencies, $0.error, $0.end) }
        if let failure { throw failure }
        let elapsed = Self.milliseconds(start.duration(to: end ?? clock.now)) / 1000
        return ProfilePoint(
            instances: instances, threadsPerInstance: threads, batchSize: batchSize,
            throughput: elapsed > 0 ? Double(latencies.count * batchSize) / elapsed : 0,
            latencyMs: LatencySummary(samples: latencies, percentile: settings.percentile), batches: latencies.count,
            residentMemoryBytes: SystemInfo.residentMemoryBytes())
    }

    /// Deterministic pseudo-random inputs of the model's shapes, with dynamic dimensions set to
    /// `batchSize` (first) or 1 (others).
    public static func sampleInputs(
        for metadata: ModelMetadata, batchSize: Int
    ) throws(BackendError) -> [String: Tensor] {
        var inputs: [String: Tensor] = [:]
        var generator = SplitMix64(seed: 0x5EED)
        for spec in metadata.inputs {
            let shape = spec.shape.enumerated().map { index, dimension in
                dimension >= 0 ? dimension : (index == 0 ? batchSize : 1)
            }
            do {
                if spec.dataType == .bytes {
                    // Short decimal strings: what a text model that parses numbers accepts.
                    let elements = (0..<(try Shape.elementCount(shape))).map { _ in
                        Array(String(generator.next() % 10).utf8)
                    }
                    inputs[spec.name] = try Tensor(shape: shape, byteStrings: elements)
                    continue
                }
                let count = try Shape.byteCount(shape, dataType: spec.dataType)
                var bytes = [UInt8](repeating: 0, count: count)
                if spec.dataType == .fp32 {
                    bytes.withUnsafeMutableBytes { raw in
                        for index in 0..<(count / 4) {
                            raw.storeBytes(
                                of: Float(generator.next() >> 40) / Float(1 << 24), toByteOffset: index * 4,
                                as: Float.self)
                        }
                    }
                } else if spec.dataType == .bool {
                    for index in bytes.indices { bytes[index] = UInt8(generator.next() & 1) }
                } else {
                    // Small non-negative integers are valid for every integer type; for FP16/FP64 they
                    // form ordinary finite numbers.
                    for index in stride(from: 0, to: count, by: spec.dataType.byteSize) {
                        bytes[index] = UInt8(generator.next() & 0x3F)
                    }
                }
                inputs[spec.name] = try Tensor(dataType: spec.dataType, shape: shape, bytes: bytes)
            } catch {
                throw .invalidTensor(error)
            }
        }
        return inputs
    }

    static func milliseconds(_ duration: Duration) -> Double {
        duration.inMilliseconds
    }
}

/// A small, fast, seedable generator (SplitMix64), so profiles and tests are reproducible.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// Creates a generator whose sequence is fixed by `seed`.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed >> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed >> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed >> 31)
    }
}
