import DequeModule
import Foundation

/// Settings of a ``ModelRuntime`` that do not change online.
public struct RuntimeSettings: Sendable, Equatable {
    /// The most requests waiting in the queue; more are refused at once.
    public var maxQueueSize: Int
    /// The largest batch the model may run (the controller's batch limit stays below it).
    public var maxBatchSize: Int
    /// Cores the instances share: each of k instances gets max(1, cores / k) intra-op threads.
    public var cores: Int
    /// The latency SLO in ms: the default deadline of a request.
    public var sloMs: Double
    /// Refuse a request at arrival when the queue ahead cannot be served before its deadline.
    public var admissionControl: Bool
    /// The share of each request's budget kept, while the model is shedding, for what the server
    /// cannot see: bytes waiting in the socket, the response's way back, the client's side.
    /// Admission and the drop at dispatch then aim at the rest.
    public var responseAllowance: Double
    /// How late, as a multiple of the SLO, a request whose deadline comes from the SLO may still be
    /// served while the model is not overloaded. The SLO is a percentile target, not a promise per
    /// request: a Poisson burst at moderate load is better answered a little late than refused.
    /// In overload (arrivals at ``overloadThreshold`` of what the instances serve, or shedding in
    /// the last second) the SLO itself is the deadline. A client's own `timeout` is always a hard
    /// deadline.
    public var lateLimitFactor: Double
    /// The offered load (arrived samples over the last second times the recent cost per sample,
    /// over the instances) from which the model counts as overloaded.
    public var overloadThreshold: Double
    /// The default ``responseAllowance``.
    public static let defaultResponseAllowance = 0.15
    /// The CPUs the instances' threads are pinned to (``CPUPlacement/pinnedCompute``); `nil`: not pinned.
    public var computeCPUs: [Int]?

    /// Creates settings.
    public init(
        maxQueueSize: Int = 1024, maxBatchSize: Int = 128, cores: Int = SystemInfo.cpuCores, sloMs: Double = 100,
        admissionControl: Bool = true, responseAllowance: Double = RuntimeSettings.defaultResponseAllowance,
        lateLimitFactor: Double = 2,
        overloadThreshold: Double = 0.9, computeCPUs: [Int]? = nil
    ) {
        self.maxQueueSize = maxQueueSize
        self.maxBatchSize = maxBatchSize
        self.cores = cores
        self.computeCPUs = computeCPUs
        self.sloMs = sloMs
        self.admissionControl = admissionControl
        self.responseAllowance = responseAllowance
        self.lateLimitFactor = lateLimitFactor
        self.overloadThreshold = overloadThreshold
    }
}

/// Where a runtime reads the time: the continuous clock in service; a test may step it by hand.
/// Queue delays still wait in real time, and look at this clock again when they wake.
public protocol RuntimeClock: Sendable {
    /// The current instant.
    var now: ContinuousClock.Instant { get }
}

/// The continuous clock (monotonic, counting while the system sleeps).
public struct ContinuousRuntimeClock: RuntimeClock {
    /// Creates the clock.
    public init() {}
    /// The current instant.
    public var now: ContinuousClock.Instant { ContinuousClock.now }
}

/// A point-in-time view of a runtime, for the controller, metrics and status.
public struct RuntimeSnapshot: Sendable {
    /// The configuration requests are served with now.
    public var configuration: ServingConfiguration
    /// Requests waiting.
    public var queueLength: Int
    /// Requests being computed.
    public var inFlight: Int
    /// Cumulative statistics.
    public var statistics: ModelStatistics
    /// Seconds since the runtime started (the time axis of ``latencyWindow``).
    public var time: Double
    /// Recent per-request latencies.
    public var latencyWindow: LatencyWindow
    /// Recent batch execution times (the service, without queueing).
    public var serviceWindow: LatencyWindow
}

/// Serves one loaded model: a bounded, deadline-aware queue; a dynamic batcher that never waits
/// when idle (unless a queue delay is configured); a pool of instances, each on its own thread,
/// each with cores / instances intra-op threads; and hitless reconfiguration.
public final class ModelRuntime: @unchecked Sendable {
    /// The model's name.
    public let name: String
    /// What the model takes and gives.
    public let metadata: ModelMetadata
    /// Settings (the queue limit can change online, see ``updateLimits(maxQueueSize:)``).
    public var settings: RuntimeSettings {
        condition.lock()
        defer { condition.unlock() }
        return currentSettings
    }

    private let backend: any InferenceBackend
    /// The time source: the continuous clock, or a test's (``init(backend:settings:initial:clock:)``).
    private let clock: any RuntimeClock
    private let start: ContinuousClock.Instant
    // Everything below is guarded by `condition`.
    private let condition = NSCondition()
    /// The queue's rules (shared with the simulator), on ms since ``start``.
    private var core: SchedulingCore<PendingRequest>
    private var configuration: ServingConfiguration {
        get { core.configuration }
        set { core.configuration = newValue }
    }
    private var generation = 0
    private var liveWorkers = 0
    private var inFlight = 0
    private var accepting = false
    private var statistics = ModelStatistics()
    private var window = LatencyWindow()
    private var serviceWindow = LatencyWindow()
    private var sloMs: Double {
        get { core.sloMs }
        set { core.sloMs = newValue }
    }
    private var currentSettings: RuntimeSettings {
        get { core.settings }
        set { core.settings = newValue }
    }
    /// Serialises reconfigurations.
    private let reconfiguration = NSLock()

    /// Creates the runtime and its first instances (blocking: loads and warms the sessions).
    public init(
        backend: any InferenceBackend, settings: RuntimeSettings, initial: ServingConfiguration,
        clock: any RuntimeClock = ContinuousRuntimeClock()
    ) throws(BackendError) {
        self.clock = clock
        self.backend = backend
        self.metadata = backend.metadata
        self.name = backend.metadata.name
        self.start = clock.now
        let initial = Self.normalized(initial, settings: settings, metadata: backend.metadata)
        core = SchedulingCore(
            settings: settings, configuration: initial, supportsBatching: backend.metadata.supportsBatching)
        let instances = try Self.makeWarmInstances(backend: backend, count: initial.instances, settings: settings)
        condition.lock()
        accepting = true
        startWorkers(instances)
        condition.unlock()
    }

    // MARK: Serving

    /// Serves one request: validates it, admits or refuses it, waits for its batch and returns its outputs.
    public func infer(_ request: InferenceRequest) async throws(SchedulingError) -> InferenceResponse {
        do {
            try metadata.validate(inputs: request.inputs, outputNames: request.outputNames)
        } catch {
            countRejected()
            throw .backend(error)
        }
        let batchSize = request.batchSize
        let consistentBatch = request.inputs.values.allSatisfy { $0.shape.first == batchSize }
        guard batchSize >= 1, consistentBatch else {
            countRejected()
            throw .backend(.invalidArgument("all inputs must have the same batch size (first dimension) of at least 1"))
        }
        let maxBatch = metadata.supportsBatching ? settings.maxBatchSize : Int.max
        guard batchSize <= maxBatch else {
            countRejected()
            throw .backend(
                .invalidArgument("batch size \(batchSize) exceeds the model's max_batch_size \(maxBatch)"))
        }
        let key = metadata.inputs.map { request.inputs[$0.name].map { Array($0.shape.dropFirst()) } ?? [] }
        let result = await withCheckedContinuation {
            (continuation: CheckedContinuation<Result<InferenceResponse, SchedulingError>, Never>) in
            if let refusal = enqueue(request, batchSize: batchSize, key: key, continuation: continuation) {
                continuation.resume(returning: .failure(refusal))
            }
        }
        return try result.get()
    }

    private func countRejected() {
        condition.lock()
        statistics.arrivals += 1
        statistics.rejectedCount += 1
        condition.unlock()
    }

    /// Adds a request to the queue, or returns why it is refused.
    private func enqueue(
        _ request: InferenceRequest, batchSize: Int, key: [[Int]],
        continuation: CheckedContinuation<Result<InferenceResponse, SchedulingError>, Never>
    ) -> SchedulingError? {
        let now = clock.now
        condition.lock()
        defer { condition.unlock() }
        statistics.arrivals += 1
        guard accepting else {
            return .unavailable("model '\(name)' is not accepting requests (unloading or stopped)")
        }
        let arrival = min(request.arrival ?? now, now)
        let nowMs = elapsedMs(at: now)
        let queued = QueuedRequest(
            item: PendingRequest(
                request: request, batchSize: batchSize, arrival: arrival, enqueued: now, continuation: continuation),
            samples: batchSize, key: key, arrivalMs: elapsedMs(at: arrival), enqueuedMs: nowMs,
            budgetMs: request.timeoutMs ?? sloMs, limitMs: request.timeoutMs ?? core.sloLimitMs)
        if let refusal = core.offer(queued, nowMs: nowMs) { return refusal }
        condition.signal()
        return nil
    }

    /// Refuses a request at once, before its body is read, when even a one-sample request with
    /// the SLO as its deadline could not be served in time now. A front end calls it as soon as a
    /// request's head arrives, so that overload does not also cost reading and decoding the bodies
    /// of requests that are refused anyway. Counted as shed.
    public func refusalBeforeReading(arrival: ContinuousClock.Instant) -> SchedulingError? {
        let now = clock.now
        condition.lock()
        defer { condition.unlock() }
        guard accepting,
            let refusal = core.refusalBeforeReading(arrivalMs: elapsedMs(at: arrival), nowMs: elapsedMs(at: now))
        else { return nil }
        statistics.arrivals += 1
        return refusal
    }

    /// Milliseconds since the runtime started.
    private func elapsedMs(at now: ContinuousClock.Instant) -> Double {
        Profiler.milliseconds(start.duration(to: now))
    }

    // MARK: Workers

    private func startWorkers(_ instances: [any ModelInstance]) {
        // Called with the lock held.
        let workerGeneration = generation
        let computeCPUs = currentSettings.computeCPUs
        for instance in instances {
            liveWorkers += 1
            let thread = Thread { [self] in
                // The worker is the first of its instance's intra-op threads: it computes too.
                if let computeCPUs { SystemInfo.pinCurrentThread(to: computeCPUs) }
                workerLoop(instance: instance, generation: workerGeneration)
            }
            thread.name = "dnnscaler-\(name)-g\(workerGeneration)"
            thread.stackSize = 4 << 20
            thread.start()
        }
    }

    private func workerLoop(instance: any ModelInstance, generation workerGeneration: Int) {
        while let batch = nextBatch(generation: workerGeneration) {
            execute(batch, on: instance)
        }
        condition.lock()
        liveWorkers -= 1
        condition.broadcast()
        condition.unlock()
    }

    /// Waits for work and takes the next batch (``SchedulingCore/nextBatch(nowMs:dropped:)``),
    /// failing the requests it drops for their deadline. `nil` when this worker's generation has
    /// been replaced.
    private func nextBatch(generation workerGeneration: Int) -> [PendingRequest]? {
        condition.lock()
        defer { condition.unlock() }
        var dropped: [(request: QueuedRequest<PendingRequest>, error: SchedulingError)] = []
        while true {
            guard workerGeneration == generation else { return nil }
            let dispatch = core.nextBatch(nowMs: elapsedMs(at: clock.now), dropped: &dropped)
            for (queued, error) in dropped { queued.item.continuation.resume(returning: .failure(error)) }
            dropped.removeAll()
            switch dispatch {
            case .run(let batch):
                inFlight += batch.count
                return batch.map(\.item)
            case .waitUntil(let fillMs):
                let remainingMs = fillMs - elapsedMs(at: clock.now)
                if remainingMs > 0 { _ = condition.wait(until: Date(timeIntervalSinceNow: remainingMs / 1000)) }
            case .idle:
                condition.wait()
            }
        }
    }

    private func execute(_ batch: [PendingRequest], on instance: any ModelInstance) {
        let started = clock.now
        let outcome: Result<[[String: Tensor]], BackendError>
        var inputDone = started
        var inferDone = started
        do throws(BackendError) {
            let inputs = try Self.batchInputs(batch)
            inputDone = clock.now
            let wanted = Self.commonOutputNames(batch)
            let outputs = try instance.run(inputs, outputNames: wanted)
            inferDone = clock.now
            outcome = .success(try Self.splitOutputs(outputs, batch: batch))
        } catch {
            inferDone = clock.now
            outcome = .failure(error)
        }
        if case .failure = outcome, batch.count > 1 {
            // One request's data can fail a whole batch (a string ONNX Runtime cannot parse, a
            // reshape that does not divide): run each request alone, so that only its own fails
            // and the others, batched with it by chance, are still answered.
            for pending in batch { execute([pending], on: instance) }
            return
        }
        let finished = clock.now
        let inputNs = Self.nanoseconds(started.duration(to: inputDone))
        let inferNs = Self.nanoseconds(inputDone.duration(to: inferDone))
        let outputNs = Self.nanoseconds(inferDone.duration(to: finished))
        let samples = batch.reduce(0) { $0 + $1.batchSize }
        let wallMs = UInt64(Date().timeIntervalSince1970 * 1000)

        condition.lock()
        inFlight -= batch.count
        let time = Profiler.milliseconds(start.duration(to: finished)) / 1000
        switch outcome {
        case .success:
            statistics.executionCount += 1
            statistics.inferenceCount += UInt64(samples)
            statistics.batches[samples, default: DurationStatistic()].add(inferNs)
            statistics.lastInferenceMs = wallMs
            let batchMs = Double(inferNs) / 1e6
            serviceWindow.record(time: time, latencyMs: batchMs)
            core.recordBatch(samples: samples, ms: batchMs)
        case .failure:
            break
        }
        for pending in batch {
            let endToEnd = Self.nanoseconds(pending.arrival.duration(to: finished))
            let queued = Self.nanoseconds(pending.enqueued.duration(to: started))
            switch outcome {
            case .success:
                statistics.success.add(endToEnd)
                statistics.queue.add(queued)
                statistics.computeInput.add(inputNs)
                statistics.computeInfer.add(inferNs)
                statistics.computeOutput.add(outputNs)
                window.record(time: time, latencyMs: Double(endToEnd) / 1e6)
            case .failure:
                statistics.failure.add(endToEnd)
            }
        }
        condition.broadcast()
        condition.unlock()

        for (index, pending) in batch.enumerated() {
            switch outcome {
            case .success(let perRequest):
                let outputs = (pending.request.outputNames ?? metadata.outputs.map(\.name)).compactMap { name in
                    perRequest[index][name].map { (name: name, tensor: $0) }
                }
                pending.continuation.resume(
                    returning: .success(
                        InferenceResponse(
                            id: pending.request.id, outputs: outputs,
                            queueNanoseconds: Self.nanoseconds(pending.enqueued.duration(to: started)),
                            computeNanoseconds: inferNs, executedBatchSize: samples)))
            case .failure(let error):
                pending.continuation.resume(returning: .failure(.backend(error)))
            }
        }
    }

    private static func batchInputs(_ batch: [PendingRequest]) throws(BackendError) -> [String: Tensor] {
        if batch.count == 1 { return batch[0].request.inputs }
        var inputs: [String: Tensor] = [:]
        for name in batch[0].request.inputs.keys {
            do {
                inputs[name] = try Tensor.concatenatingBatches(batch.compactMap { $0.request.inputs[name] })
            } catch {
                throw .invalidTensor(error)
            }
        }
        return inputs
    }

    /// The outputs to compute: the one list all requests share, or all (`nil`) when they differ.
    private static func commonOutputNames(_ batch: [PendingRequest]) -> [String]? {
        let first = batch[0].request.outputNames
        return batch.allSatisfy { $0.request.outputNames == first } ? first : nil
    }

    private static func splitOutputs(
        _ outputs: [String: Tensor], batch: [PendingRequest]
    ) throws(BackendError) -> [[String: Tensor]] {
        if batch.count == 1 { return [outputs] }
        var perRequest = [[String: Tensor]](repeating: [:], count: batch.count)
        let sizes = batch.map(\.batchSize)
        for (name, tensor) in outputs {
            do {
                for (index, part) in try tensor.splittingBatches(sizes).enumerated() { perRequest[index][name] = part }
            } catch {
                throw .runtimeFailed(message: "output '\(name)' cannot be split per request: \(error)")
            }
        }
        return perRequest
    }

    // MARK: Configuration

    /// The configuration in force.
    public var currentConfiguration: ServingConfiguration {
        condition.lock()
        defer { condition.unlock() }
        return configuration
    }

    /// The SLO requests are served against.
    public var currentSloMs: Double {
        condition.lock()
        defer { condition.unlock() }
        return sloMs
    }

    /// Changes the default deadline of new requests.
    public func setSlo(ms: Double) {
        condition.lock()
        sloMs = ms
        condition.unlock()
    }

    /// Changes the queue limit; requests already queued stay.
    public func updateLimits(maxQueueSize: Int) {
        condition.lock()
        currentSettings.maxQueueSize = max(1, maxQueueSize)
        condition.unlock()
    }

    /// Applies a configuration without dropping requests. Batch limit and queue delay change at
    /// once; a new instance count builds and warms new instances first, then switches, and the
    /// old instances finish their current batch before they go. Blocking while instances load.
    public func apply(_ requested: ServingConfiguration) throws(BackendError) {
        reconfiguration.lock()
        defer { reconfiguration.unlock() }
        let settings = self.settings
        let target = Self.normalized(requested, settings: settings, metadata: metadata)
        let current = currentConfiguration
        if target.instances != current.instances {
            let instances = try Self.makeWarmInstances(backend: backend, count: target.instances, settings: settings)
            condition.lock()
            configuration = target
            generation += 1
            if accepting { startWorkers(instances) }
            condition.broadcast()
            condition.unlock()
        } else {
            condition.lock()
            configuration = target
            condition.broadcast()
            condition.unlock()
        }
    }

    /// Stops accepting requests, serves everything queued and in flight, then stops the instances.
    /// Blocking; returns when the last worker has finished.
    public func drainAndStop() {
        condition.lock()
        accepting = false
        while !core.queue.isEmpty || inFlight > 0 {
            condition.wait()
        }
        generation += 1
        condition.broadcast()
        while liveWorkers > 0 {
            condition.wait()
        }
        condition.unlock()
    }

    /// Seconds since the runtime started (the clock of ``snapshot()`` and the latency windows).
    public var elapsedSeconds: Double { elapsedMs(at: clock.now) / 1000 }

    /// A consistent view for the controller, metrics and status.
    public func snapshot() -> RuntimeSnapshot {
        let now = clock.now
        condition.lock()
        defer { condition.unlock() }
        var statistics = statistics
        statistics.shedCount = core.shedCount
        return RuntimeSnapshot(
            configuration: configuration, queueLength: core.queue.count, inFlight: inFlight, statistics: statistics,
            time: elapsedMs(at: now) / 1000, latencyWindow: window,
            serviceWindow: serviceWindow)
    }

    /// Whether the runtime accepts requests.
    public var isReady: Bool {
        condition.lock()
        defer { condition.unlock() }
        return accepting && liveWorkers > 0
    }

    // MARK: Helpers

    private static func normalized(
        _ configuration: ServingConfiguration, settings: RuntimeSettings, metadata: ModelMetadata
    ) -> ServingConfiguration {
        configuration.clamped(
            maxBatch: metadata.supportsBatching ? settings.maxBatchSize : 1, maxInstances: max(1, settings.cores * 4))
    }

    /// Builds and warms `count` instances sharing the settings' cores; their intra-op threads
    /// start on the settings' compute CPUs, if any.
    private static func makeWarmInstances(
        backend: any InferenceBackend, count: Int, settings: RuntimeSettings
    ) throws(BackendError) -> [any ModelInstance] {
        let threads = max(1, settings.cores / max(1, count))
        let warmup = (try? Profiler.sampleInputs(for: backend.metadata, batchSize: 1)) ?? [:]
        return try SystemInfo.withCurrentThread(pinnedTo: settings.computeCPUs) { () throws(BackendError) in
            try (0..<count).map { (_) throws(BackendError) -> any ModelInstance in
                let instance = try backend.makeInstance(threads: threads)
                // Warm-up runs on made-up inputs; a model that needs particular sizes may reject them,
                // which must not keep it from serving real requests.
                _ = try? instance.run(warmup, outputNames: nil)
                return instance
            }
        }
    }

    static func nanoseconds(_ duration: Duration) -> UInt64 {
        let (seconds, attoseconds) = duration.components
        return UInt64(max(0, seconds)) * 1_000_000_000 + UInt64(max(0, attoseconds) / 1_000_000_000)
    }
}

/// A request waiting in the queue, as the runtime carries it (its deadline and batch key live in
/// its ``QueuedRequest``). Its continuation is resumed exactly once: by the worker that runs it, or
/// by the queue when its deadline passes.
final class PendingRequest: @unchecked Sendable {
    let request: InferenceRequest
    let batchSize: Int
    /// When the request reached the server (end-to-end latency counts from here).
    let arrival: ContinuousClock.Instant
    /// When it entered the queue (queue time counts from here).
    let enqueued: ContinuousClock.Instant
    let continuation: CheckedContinuation<Result<InferenceResponse, SchedulingError>, Never>

    init(
        request: InferenceRequest, batchSize: Int, arrival: ContinuousClock.Instant, enqueued: ContinuousClock.Instant,
        continuation: CheckedContinuation<Result<InferenceResponse, SchedulingError>, Never>
    ) {
        self.request = request
        self.batchSize = batchSize
        self.arrival = arrival
        self.enqueued = enqueued
        self.continuation = continuation
    }
}
