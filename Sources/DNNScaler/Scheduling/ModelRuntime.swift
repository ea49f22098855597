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
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    // Everything below is guarded by `condition`.
    private let condition = NSCondition()
    private var queue: Deque<PendingRequest> = []
    private var queuedSamples = 0
    private var configuration: ServingConfiguration
    private var generation = 0
    private var liveWorkers = 0
    private var inFlight = 0
    private var accepting = false
    private var statistics = ModelStatistics()
    private var window = LatencyWindow()
    private var serviceWindow = LatencyWindow()
    private var sloMs: Double
    private var currentSettings: RuntimeSettings
    /// When a request was last refused or dropped for load.
    private var lastShed: ContinuousClock.Instant?
    /// Samples offered over the last second, admitted or not: what overload is judged from.
    private var arrivals = ArrivalCounter()
    /// Recent backend times per sample (the last 32 batches).
    private var recentMsPerSample: [Double] = []
    /// Their median, for admission estimates and the overload test (robust to the odd slow batch:
    /// a new shape, a noisy neighbour). Updated once per batch, as it is read several times per request.
    private var msPerSample: Double?
    /// Serialises reconfigurations.
    private let reconfiguration = NSLock()

    /// Creates the runtime and its first instances (blocking: loads and warms the sessions).
    public init(
        backend: any InferenceBackend, settings: RuntimeSettings, initial: ServingConfiguration
    ) throws(BackendError) {
        self.backend = backend
        self.metadata = backend.metadata
        self.name = backend.metadata.name
        self.currentSettings = settings
        self.sloMs = settings.sloMs
        self.start = clock.now
        let initial = Self.normalized(initial, settings: settings, metadata: backend.metadata)
        configuration = initial
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
        arrivals.record(samples: batchSize, atMs: elapsedMs(at: now))
        guard queue.count < currentSettings.maxQueueSize else {
            recordShed()
            return .queueFull(limit: currentSettings.maxQueueSize)
        }
        let budgetMs = request.timeoutMs ?? sloMs
        let limitMs = request.timeoutMs ?? sloLimitMs
        let arrival = min(request.arrival ?? now, now)
        if let refusal = admissionRefusal(
            samples: batchSize, arrival: arrival, now: now, budgetMs: budgetMs, limitMs: limitMs)
        {
            recordShed()
            return refusal
        }
        let pending = PendingRequest(
            request: request, batchSize: batchSize, key: key, arrival: arrival, enqueued: now,
            budgetMs: budgetMs, limitMs: limitMs, continuation: continuation)
        queue.append(pending)
        queuedSamples += batchSize
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
        guard accepting else { return nil }
        guard
            let refusal = admissionRefusal(
                samples: 1, arrival: min(arrival, now), now: now, budgetMs: sloMs, limitMs: sloLimitMs)
        else {
            return nil
        }
        statistics.arrivals += 1
        arrivals.record(samples: 1, atMs: elapsedMs(at: now))
        recordShed()
        return refusal
    }

    /// `instant` plus `milliseconds` (capped at about 11 days, so that a huge timeout cannot overflow).
    private static func instant(
        _ instant: ContinuousClock.Instant, plusMs milliseconds: Double
    ) -> ContinuousClock.Instant {
        instant.advanced(by: .nanoseconds(Int64(min(milliseconds, 1e9) * 1e6)))
    }

    /// The latest a request without a `timeout` may be served outside overload (lock held).
    private var sloLimitMs: Double { sloMs * max(1, currentSettings.lateLimitFactor) }

    /// Milliseconds since the runtime started.
    private func elapsedMs(at now: ContinuousClock.Instant) -> Double {
        Profiler.milliseconds(start.duration(to: now))
    }

    /// Counts a request refused or dropped for load, and notes when (lock held).
    private func recordShed() {
        statistics.shedCount += 1
        lastShed = clock.now
    }

    /// Whether the model has shed in the last second: overloaded, rather than a passing burst.
    private func isShedding(at now: ContinuousClock.Instant) -> Bool {
        guard let lastShed else { return false }
        return lastShed.duration(to: now) < .seconds(1)
    }

    /// Whether arrivals over the last second reach ``RuntimeSettings/overloadThreshold`` of what
    /// the instances serve at the recent cost per sample (lock held).
    private func isOverloaded(at now: ContinuousClock.Instant) -> Bool {
        guard let msPerSample else { return false }
        let offered = arrivals.samplesInLastSecond(atMs: elapsedMs(at: now))
        let load = Double(offered) * msPerSample / (1000 * Double(max(1, configuration.instances)))
        return load >= currentSettings.overloadThreshold
    }

    /// How long after its arrival a request with soft budget `budgetMs` and hard limit `limitMs`
    /// may finish and still be worth serving, as things stand now (lock held):
    /// - while shedding, the server's own share of the budget: the rest is left for what it cannot
    ///   see (bytes waiting in the socket, the response's way back), which grows with overload;
    /// - in overload without shedding yet, the budget;
    /// - otherwise the hard limit, so that a passing burst is served late rather than refused.
    private func admissibleMs(budgetMs: Double, limitMs: Double, at now: ContinuousClock.Instant) -> Double {
        if isShedding(at: now) {
            return budgetMs * (1 - min(max(currentSettings.responseAllowance, 0), 0.5))
        }
        return isOverloaded(at: now) ? budgetMs : limitMs
    }

    /// Why a request of `samples` that arrived at `arrival` cannot be admitted now, if it cannot (lock held).
    private func admissionRefusal(
        samples: Int, arrival: ContinuousClock.Instant, now: ContinuousClock.Instant, budgetMs: Double,
        limitMs: Double
    ) -> SchedulingError? {
        guard currentSettings.admissionControl, let estimate = estimatedCompletionMs(addingSamples: samples) else {
            return nil
        }
        let elapsedMs = Profiler.milliseconds(arrival.duration(to: now))
        let admissible = admissibleMs(budgetMs: budgetMs, limitMs: limitMs, at: now)
        guard elapsedMs + estimate > admissible else { return nil }
        return .deadlineUnreachable(estimatedMs: elapsedMs + estimate, budgetMs: admissible)
    }

    /// How long until a request of `samples` would finish if queued now: the samples ahead of it and
    /// its own, shared by all instances at the recent cost per sample. Deliberately not pessimistic
    /// (the batch in flight is not counted): refusing a request that would have made it costs
    /// throughput, and one that does not make it is dropped from the queue at its deadline anyway.
    /// `nil` until the backend has been timed.
    private func estimatedCompletionMs(addingSamples samples: Int) -> Double? {
        guard let msPerSample else { return nil }
        let instances = Double(max(1, configuration.instances))
        return Double(queuedSamples + samples) * msPerSample / instances
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

    /// Waits for work and takes the next batch: the oldest request plus the compatible requests
    /// behind it, up to the batch limit. `nil` when this worker's generation has been replaced.
    private func nextBatch(generation workerGeneration: Int) -> [PendingRequest]? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            guard workerGeneration == generation else { return nil }
            dropExpiredRequests()
            if let oldest = queue.first {
                let limit = configuration.batchLimit
                if configuration.maxQueueDelayMs > 0, queuedSamples < limit {
                    let fillDeadline = oldest.enqueued.advanced(
                        by: .microseconds(Int64(configuration.maxQueueDelayMs * 1000)))
                    let remaining = clock.now.duration(to: fillDeadline)
                    if remaining > .zero {
                        _ = condition.wait(until: Date(timeIntervalSinceNow: Profiler.milliseconds(remaining) / 1000))
                        continue
                    }
                }
                var batch = [queue.removeFirst()]
                var samples = batch[0].batchSize
                while let next = queue.first, next.key == batch[0].key, samples + next.batchSize <= limit,
                    metadata.supportsBatching
                {
                    batch.append(queue.removeFirst())
                    samples += next.batchSize
                }
                queuedSamples -= samples
                batch = dropLateRequests(from: batch, samples: samples)
                guard !batch.isEmpty else { continue }
                inFlight += batch.count
                return batch
            }
            condition.wait()
        }
    }

    /// Fails the requests of a batch about to start that would finish after their deadline, at the
    /// recent cost per sample (lock held): running them would spend an instance on answers that
    /// arrive too late, and their latency would break the SLO of admitted requests. Returns the rest.
    private func dropLateRequests(from batch: [PendingRequest], samples: Int) -> [PendingRequest] {
        guard currentSettings.admissionControl, let msPerSample else { return batch }
        let now = clock.now
        let end = Self.instant(now, plusMs: msPerSample * Double(samples))
        var kept: [PendingRequest] = []
        for pending in batch {
            if deadline(of: pending, at: now) < end {
                failLate(pending, at: now)
            } else {
                kept.append(pending)
            }
        }
        return kept
    }

    /// When `pending` must finish, as things stand now (lock held); see ``admissibleMs(budgetMs:limitMs:at:)``.
    private func deadline(of pending: PendingRequest, at now: ContinuousClock.Instant) -> ContinuousClock.Instant {
        Self.instant(
            pending.arrival, plusMs: admissibleMs(budgetMs: pending.budgetMs, limitMs: pending.limitMs, at: now))
    }

    /// Fails a request that cannot finish within its deadline, counted as shed (lock held).
    private func failLate(_ pending: PendingRequest, at now: ContinuousClock.Instant) {
        recordShed()
        let waited = Profiler.milliseconds(pending.arrival.duration(to: now))
        pending.continuation.resume(returning: .failure(.deadlineExpired(waitedMs: waited, budgetMs: pending.budgetMs)))
    }

    /// Fails queued requests whose deadline has passed (lock held); the batch about to start is
    /// checked against its estimated end in ``dropLateRequests(from:samples:)``.
    private func dropExpiredRequests() {
        let now = clock.now
        while let first = queue.first, deadline(of: first, at: now) < now {
            queue.removeFirst()
            queuedSamples -= first.batchSize
            failLate(first, at: now)
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
            recentMsPerSample.append(batchMs / Double(samples))
            if recentMsPerSample.count > 32 { recentMsPerSample.removeFirst() }
            msPerSample = recentMsPerSample.sorted()[recentMsPerSample.count / 2]
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
        while !queue.isEmpty || inFlight > 0 {
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
        return RuntimeSnapshot(
            configuration: configuration, queueLength: queue.count, inFlight: inFlight, statistics: statistics,
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

/// A request waiting in the queue. Its continuation is resumed exactly once: by the worker that
/// runs it, or by the queue when its deadline passes.
final class PendingRequest: @unchecked Sendable {
    let request: InferenceRequest
    let batchSize: Int
    /// Shapes after the batch dimension, per model input: requests batch together only when equal.
    let key: [[Int]]
    /// When the request reached the server (end-to-end latency and the deadline count from here).
    let arrival: ContinuousClock.Instant
    /// When it entered the queue (queue time counts from here).
    let enqueued: ContinuousClock.Instant
    /// The latency it should meet (ms from arrival): its `timeout`, or the SLO.
    let budgetMs: Double
    /// The latest it may still be served outside overload (ms from arrival): its `timeout`, or
    /// the SLO times ``RuntimeSettings/lateLimitFactor``.
    let limitMs: Double
    let continuation: CheckedContinuation<Result<InferenceResponse, SchedulingError>, Never>

    init(
        request: InferenceRequest, batchSize: Int, key: [[Int]], arrival: ContinuousClock.Instant,
        enqueued: ContinuousClock.Instant, budgetMs: Double, limitMs: Double,
        continuation: CheckedContinuation<Result<InferenceResponse, SchedulingError>, Never>
    ) {
        self.request = request
        self.batchSize = batchSize
        self.key = key
        self.arrival = arrival
        self.enqueued = enqueued
        self.budgetMs = budgetMs
        self.limitMs = limitMs
        self.continuation = continuation
    }
}
