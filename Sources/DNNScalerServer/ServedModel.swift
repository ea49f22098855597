import DNNScaler
import Foundation
import Synchronization

/// One loaded model: its runtime, its controller and how it is served.
public final class ServedModel: Sendable {
    /// The model's name.
    public let name: String
    /// The served version.
    public let version: Int
    /// The runtime that serves requests.
    public let runtime: ModelRuntime
    /// The controller that tunes it.
    public let controller: ModelController
    /// The profile the policy was built from (`nil` if the quick probe could not run the model).
    public let profile: Profile?
    private let currentOptions: Mutex<ModelServingOptions>

    init(
        name: String, version: Int, runtime: ModelRuntime, controller: ModelController, profile: Profile?,
        options: ModelServingOptions
    ) {
        self.name = name
        self.version = version
        self.runtime = runtime
        self.controller = controller
        self.profile = profile
        self.currentOptions = Mutex(options)
    }

    /// How it is served now.
    public var options: ModelServingOptions { currentOptions.withLock { $0 } }

    /// Loads a model: backend, a quick profile (or the saved one), runtime and controller. Blocking.
    /// `placement`: its compute CPUs are the cores the instances share (and, when split, where
    /// the probe and the instances run); `spinning`: whether idle intra-op threads spin-wait (the
    /// probe measures the same way).
    static func load(
        name: String, version: Int, path: String, options: ModelServingOptions, runtime ortRuntime: OnnxRuntime,
        placement: CPUPlacement, spinning: Bool
    ) throws(BackendError) -> ServedModel {
        let backend = try OnnxRuntimeModel(path: path, name: name, runtime: ortRuntime, allowSpinning: spinning)
        let cores = max(1, placement.computeCores)
        // A model the probe cannot run on made-up inputs is still served, with the policy's defaults.
        let profile = SystemInfo.withCurrentThread(pinnedTo: placement.pinnedCompute) {
            try? quickProfile(backend: backend, options: options, cores: cores)
        }
        let settings = RuntimeSettings(
            maxQueueSize: options.maxQueueSize, maxBatchSize: options.maxBatchSize, cores: cores, sloMs: options.sloMs,
            computeCPUs: placement.pinnedCompute)
        let policy = makePolicy(options: options, profile: profile, metadata: backend.metadata)
        let runtime = try ModelRuntime(backend: backend, settings: settings, initial: policy.initialConfiguration)
        let controller = try ModelController(
            runtime: runtime, policy: policy, percentile: options.percentile,
            capacity: makeCapacityEstimate(options: options, profile: profile, metadata: backend.metadata))
        return ServedModel(
            name: name, version: version, runtime: runtime, controller: controller, profile: profile, options: options)
    }

    /// Batches each instance runs at least per point and pass in the quick probe (up to 10 x the
    /// probe time): at 0.5 s a point of resnet50 on 2 cores was judged by about 6 batches per
    /// instance, and the mode and instance count it chose flipped between loads.
    static let quickProbeMinimumBatches = 10
    /// The quick probe measures its grid twice and keeps each point's faster pass.
    static let quickProbePasses = 2

    /// A short profile over instances {1, cores} x batch {1, 8}: enough for the mode decision and
    /// the joint policy's seed.
    static func quickProfile(
        backend: any InferenceBackend, options: ModelServingOptions, cores: Int
    ) throws(BackendError) -> Profile {
        let instanceCounts = Array(Set([1, min(cores, options.maxInstances)])).sorted()
        var settings = ProfilerSettings(
            batchSizes: [1, min(8, options.maxBatchSize)].reduce(into: []) { if !$0.contains($1) { $0.append($1) } },
            instanceCounts: instanceCounts, durationSeconds: options.probeSeconds, warmupBatches: 1,
            percentile: options.percentile, sloMs: options.sloMs,
            minimumBatchesPerInstance: quickProbeMinimumBatches, maximumDurationSeconds: 10 * options.probeSeconds)
        settings.passes = quickProbePasses
        return try Profiler(backend: backend, settings: settings).run(backendDescription: "quick probe at load")
    }

    static func makePolicy(
        options: ModelServingOptions, profile: Profile?, metadata: ModelMetadata
    ) -> any ScalingPolicy {
        let context = PolicyContext(
            profile: profile, maxBatch: metadata.supportsBatching ? options.maxBatchSize : 1,
            maxInstances: options.maxInstances, sloMs: options.sloMs,
            percentile: options.percentile)
        return PolicyFactory.make(
            options.policy, context: context,
            fixed: ServingConfiguration(
                batchLimit: options.staticBatchSize, instances: options.staticInstances,
                maxQueueDelayMs: options.maxQueueDelayMs))
    }

    /// The largest capacity used among `models` (0 when none has an estimate): the server-wide
    /// figure an autoscaler targets.
    static func serverCapacityUsed(_ models: [ServedModel]) -> Double {
        models.compactMap { $0.controller.capacity?.used }.max() ?? 0
    }

    /// The capacity estimate over the configurations the policy of `options` may reach.
    static func makeCapacityEstimate(
        options: ModelServingOptions, profile: Profile?, metadata: ModelMetadata
    ) -> CapacityEstimate {
        CapacityEstimate(
            profile: profile, maxBatch: metadata.supportsBatching ? options.maxBatchSize : 1,
            maxInstances: options.maxInstances, sloMs: options.sloMs, percentile: options.percentile,
            fixed: options.policy == .static
                ? ServingConfiguration(batchLimit: options.staticBatchSize, instances: options.staticInstances) : nil)
    }

    /// Applies new options without a restart: SLO, percentile-independent limits and the policy.
    func update(options newOptions: ModelServingOptions) throws(BackendError) {
        runtime.setSlo(ms: newOptions.sloMs)
        runtime.updateLimits(maxQueueSize: newOptions.maxQueueSize)
        let policy = Self.makePolicy(options: newOptions, profile: profile, metadata: runtime.metadata)
        try controller.replacePolicy(
            policy,
            capacity: Self.makeCapacityEstimate(options: newOptions, profile: profile, metadata: runtime.metadata))
        currentOptions.withLock { $0 = newOptions }
    }

    /// Stops the controller, serves what is queued, stops the instances. Blocking.
    func stop() {
        controller.stop()
        runtime.drainAndStop()
    }
}

extension ServedModel {
    /// Serves one decoded request and records its outcome in the metrics: the one path both
    /// front ends (HTTP and gRPC) take from a decoded request to its outputs.
    func serve(_ request: InferenceRequest, metrics: ServerMetrics) async throws(SchedulingError) -> InferenceResponse {
        let version = String(self.version)
        let start = ContinuousClock.now
        let response: InferenceResponse
        do {
            response = try await runtime.infer(request)
        } catch {
            metrics.recordFailure(model: name, version: version, reason: FailureReason(error))
            throw error
        }
        metrics.recordSuccess(
            model: name, version: version, latency: start.duration(to: .now),
            queue: .nanoseconds(Int64(response.queueNanoseconds)))
        return response
    }
}
