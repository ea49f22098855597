import DequeModule

/// A request as the queue's rules see it: its size, what it may batch with, and when it must
/// finish. `Item` is what the caller carries along (the server: the request and its
/// continuation; the simulator: its client).
public struct QueuedRequest<Item> {
    /// What the caller carries along.
    public var item: Item
    /// Samples (the first dimension of its inputs).
    public var samples: Int
    /// Shapes after the batch dimension, per model input: requests batch together only when equal.
    public var key: [[Int]]
    /// When the request reached the server, in the caller's ms (end-to-end latency and the
    /// deadline count from here).
    public var arrivalMs: Double
    /// When it entered the queue (queue time and the queue delay count from here).
    public var enqueuedMs: Double
    /// The latency it should meet (ms from arrival): its `timeout`, or the SLO.
    public var budgetMs: Double
    /// The latest it may still be served outside overload (ms from arrival): its `timeout`, or
    /// the SLO times ``RuntimeSettings/lateLimitFactor``.
    public var limitMs: Double

    /// Creates a request record.
    public init(
        item: Item, samples: Int, key: [[Int]] = [], arrivalMs: Double, enqueuedMs: Double, budgetMs: Double,
        limitMs: Double
    ) {
        self.item = item
        self.samples = samples
        self.key = key
        self.arrivalMs = arrivalMs
        self.enqueuedMs = enqueuedMs
        self.budgetMs = budgetMs
        self.limitMs = limitMs
    }
}

/// What became of one request, in the terms the server and the simulator share.
public enum RequestOutcome: Sendable, Equatable, Codable {
    /// Refused at arrival (queue full, or its deadline out of reach).
    case refused
    /// Admitted, then dropped from the queue for its deadline.
    case expired
    /// Run in the `batch`-th batch started (from 0).
    case served(batch: Int)
}

/// What an idle instance should do next.
public enum Dispatch<Item> {
    /// Run this batch (the oldest request and the compatible ones behind it).
    case run([QueuedRequest<Item>])
    /// The queue delay keeps the batch open: look again at this time (caller's ms).
    case waitUntil(Double)
    /// Nothing is waiting.
    case idle
}

/// The queue's rules, in one place for the server's runtime (threads, real time) and the
/// simulator (virtual time): admission, deadlines and the late limit, shedding, batch formation,
/// the queue delay and the cost estimate. It has no threads and no clock: every call takes the
/// caller's time in ms from a fixed origin, and the caller guards it.
public struct SchedulingCore<Item> {
    /// Batches of the recent backend times the cost per sample is the median of.
    public static var costWindow: Int { 32 }
    /// The weight of a new batch in its size's smoothed time.
    public static var batchTimeWeight: Double { 0.2 }
    /// How long after the last request shed the model still counts as shedding (ms).
    public static var sheddingMemoryMs: Double { 1000 }
    /// The most of a request's budget the response allowance may keep back.
    public static var maxResponseAllowance: Double { 0.5 }

    /// Settings (the queue limit can change online).
    public var settings: RuntimeSettings
    /// The SLO in ms: the budget of requests without a `timeout`.
    public var sloMs: Double
    /// The configuration being served: its batch limit, queue delay and instance count (the
    /// instances taking work now) shape batches and estimates.
    public var configuration: ServingConfiguration
    /// Whether requests may be batched together at all.
    public let supportsBatching: Bool
    /// Requests waiting, oldest first.
    public private(set) var queue: Deque<QueuedRequest<Item>> = []
    /// Samples waiting.
    public private(set) var queuedSamples = 0
    /// Requests refused or dropped for load so far.
    public private(set) var shedCount: UInt64 = 0
    /// The median backend time per sample over the last ``costWindow`` batches; `nil` before the
    /// first. Robust to the odd slow batch (a new shape, a noisy neighbour).
    public private(set) var msPerSample: Double?
    private var recentMsPerSample: [Double] = []
    /// Per batch size, its recent backend time (ms, smoothed): what the drop at batch start judges
    /// a batch by. Batches cost far less than their size times the cost per sample where batching
    /// gains (3x on a GPU), and a batch judged by that product would be dropped whole.
    private var batchMsBySize: [Int: Double] = [:]
    private var lastShedMs: Double?
    private var arrivals = ArrivalCounter()

    /// An empty queue.
    public init(settings: RuntimeSettings, configuration: ServingConfiguration, supportsBatching: Bool) {
        self.settings = settings
        self.sloMs = settings.sloMs
        self.configuration = configuration
        self.supportsBatching = supportsBatching
    }

    /// The latest a request without a `timeout` may be served outside overload (ms from arrival).
    public var sloLimitMs: Double { sloMs * max(1, settings.lateLimitFactor) }

    // MARK: Admission

    /// Offers a request arriving at `nowMs`: queues it, or returns why it is refused (counted as
    /// shed). Its samples count towards the offered load either way.
    public mutating func offer(_ request: QueuedRequest<Item>, nowMs: Double) -> SchedulingError? {
        arrivals.record(samples: request.samples, atMs: nowMs)
        guard queue.count < settings.maxQueueSize else {
            recordShed(atMs: nowMs)
            return .queueFull(limit: settings.maxQueueSize)
        }
        if let refusal = admissionRefusal(
            samples: request.samples, arrivalMs: request.arrivalMs, nowMs: nowMs, budgetMs: request.budgetMs,
            limitMs: request.limitMs)
        {
            recordShed(atMs: nowMs)
            return refusal
        }
        queue.append(request)
        queuedSamples += request.samples
        return nil
    }

    /// Refuses a request before its body is read when even one sample with the SLO as its deadline
    /// could not be served in time now (counted as an arrival and as shed); `nil` otherwise, and
    /// nothing is recorded: the request is offered once it is read.
    public mutating func refusalBeforeReading(arrivalMs: Double, nowMs: Double) -> SchedulingError? {
        guard
            let refusal = admissionRefusal(
                samples: 1, arrivalMs: min(arrivalMs, nowMs), nowMs: nowMs, budgetMs: sloMs, limitMs: sloLimitMs)
        else { return nil }
        arrivals.record(samples: 1, atMs: nowMs)
        recordShed(atMs: nowMs)
        return refusal
    }

    /// Why `samples` that arrived at `arrivalMs` cannot be admitted at `nowMs`, if they cannot.
    private mutating func admissionRefusal(
        samples: Int, arrivalMs: Double, nowMs: Double, budgetMs: Double, limitMs: Double
    ) -> SchedulingError? {
        guard settings.admissionControl, let estimate = estimatedCompletionMs(addingSamples: samples) else {
            return nil
        }
        let elapsedMs = nowMs - arrivalMs
        let admissible = admissibleMs(budgetMs: budgetMs, limitMs: limitMs, atMs: nowMs)
        guard elapsedMs + estimate > admissible else { return nil }
        return .deadlineUnreachable(estimatedMs: elapsedMs + estimate, budgetMs: admissible)
    }

    /// How long until `samples` would finish if queued now: the samples ahead and its own, shared
    /// by the instances at the recent cost per sample. Deliberately not pessimistic (the batch in
    /// flight is not counted): refusing a request that would have made it costs throughput, and
    /// one that does not make it is dropped at its deadline anyway. `nil` before the first batch.
    public func estimatedCompletionMs(addingSamples samples: Int) -> Double? {
        guard let msPerSample else { return nil }
        return Double(queuedSamples + samples) * msPerSample / Double(max(1, configuration.instances))
    }

    // MARK: Deadlines

    /// How long after its arrival a request may finish and still be worth serving, as things
    /// stand at `nowMs`:
    /// - while shedding, the server's own share of the budget: the rest is left for what it cannot
    ///   see (bytes waiting in the socket, the response's way back), which grows with overload;
    /// - in overload without shedding yet, the budget;
    /// - otherwise the hard limit, so that a passing burst is served late rather than refused.
    public mutating func admissibleMs(budgetMs: Double, limitMs: Double, atMs nowMs: Double) -> Double {
        if isShedding(atMs: nowMs) {
            return budgetMs * (1 - min(max(settings.responseAllowance, 0), Self.maxResponseAllowance))
        }
        return isOverloaded(atMs: nowMs) ? budgetMs : limitMs
    }

    /// Whether the model has shed in the last second: overloaded, rather than a passing burst.
    public func isShedding(atMs nowMs: Double) -> Bool {
        guard let lastShedMs else { return false }
        return nowMs - lastShedMs < Self.sheddingMemoryMs
    }

    /// Whether the samples offered over the last second reach
    /// ``RuntimeSettings/overloadThreshold`` of what the instances serve at the recent cost.
    public mutating func isOverloaded(atMs nowMs: Double) -> Bool {
        guard let msPerSample else { return false }
        let offered = arrivals.samplesInLastSecond(atMs: nowMs)
        let load = Double(offered) * msPerSample / (1000 * Double(max(1, configuration.instances)))
        return load >= settings.overloadThreshold
    }

    private mutating func recordShed(atMs nowMs: Double) {
        shedCount += 1
        lastShedMs = nowMs
    }

    // MARK: Batches

    /// What an idle instance should do at `nowMs`. Requests whose deadline has passed in the
    /// queue, and those of the batch about to start that would finish after theirs
    /// (``estimatedBatchMs(samples:)``), are removed, counted as shed and appended to `dropped` with their error: running them
    /// would spend an instance on answers that come too late and break the SLO of the others.
    public mutating func nextBatch(
        nowMs: Double, dropped: inout [(request: QueuedRequest<Item>, error: SchedulingError)]
    ) -> Dispatch<Item> {
        while true {
            dropExpired(nowMs: nowMs, dropped: &dropped)
            guard let oldest = queue.first else { return .idle }
            let limit = configuration.batchLimit
            if configuration.maxQueueDelayMs > 0, queuedSamples < limit {
                let fillDeadline = oldest.enqueuedMs + configuration.maxQueueDelayMs
                if fillDeadline > nowMs { return .waitUntil(fillDeadline) }
            }
            var batch = [queue.removeFirst()]
            var samples = batch[0].samples
            while supportsBatching, let next = queue.first, next.key == batch[0].key, samples + next.samples <= limit {
                batch.append(queue.removeFirst())
                samples += next.samples
            }
            queuedSamples -= samples
            batch = dropLate(from: batch, samples: samples, nowMs: nowMs, dropped: &dropped)
            if !batch.isEmpty { return .run(batch) }
        }
    }

    /// Records a batch of `samples` that took `ms` in the backend (the cost estimate).
    public mutating func recordBatch(samples: Int, ms: Double) {
        let size = max(1, samples)
        batchMsBySize[size] = batchMsBySize[size].map { $0 + Self.batchTimeWeight * (ms - $0) } ?? ms
        recentMsPerSample.append(ms / Double(size))
        if recentMsPerSample.count > Self.costWindow { recentMsPerSample.removeFirst() }
        msPerSample = recentMsPerSample.sorted()[recentMsPerSample.count / 2]
    }

    /// How long a batch of `samples` should take, erring short: its size's recent time; else the
    /// next larger seen size's, scaled down in proportion; else the largest smaller size's (a batch
    /// takes no less than a smaller one). Short, because a batch dropped as late that would have
    /// made it costs throughput, while one that runs late is dropped by its deadline next time.
    /// `nil` before the first batch.
    public func estimatedBatchMs(samples: Int) -> Double? {
        if let known = batchMsBySize[samples] { return known }
        if let larger = batchMsBySize.keys.filter({ $0 > samples }).min(), let ms = batchMsBySize[larger] {
            return ms * Double(samples) / Double(larger)
        }
        return batchMsBySize.keys.filter { $0 < samples }.max().flatMap { batchMsBySize[$0] }
    }

    /// When a request must finish (caller's ms), as things stand at `nowMs`.
    private mutating func deadlineMs(of request: QueuedRequest<Item>, atMs nowMs: Double) -> Double {
        request.arrivalMs + admissibleMs(budgetMs: request.budgetMs, limitMs: request.limitMs, atMs: nowMs)
    }

    private mutating func dropExpired(
        nowMs: Double, dropped: inout [(request: QueuedRequest<Item>, error: SchedulingError)]
    ) {
        while let first = queue.first, deadlineMs(of: first, atMs: nowMs) < nowMs {
            queue.removeFirst()
            queuedSamples -= first.samples
            drop(first, nowMs: nowMs, dropped: &dropped)
        }
    }

    private mutating func dropLate(
        from batch: [QueuedRequest<Item>], samples: Int, nowMs: Double,
        dropped: inout [(request: QueuedRequest<Item>, error: SchedulingError)]
    ) -> [QueuedRequest<Item>] {
        guard settings.admissionControl, let batchMs = estimatedBatchMs(samples: samples) else { return batch }
        let endMs = nowMs + batchMs
        var kept: [QueuedRequest<Item>] = []
        for request in batch {
            if deadlineMs(of: request, atMs: nowMs) < endMs {
                drop(request, nowMs: nowMs, dropped: &dropped)
            } else {
                kept.append(request)
            }
        }
        return kept
    }

    private mutating func drop(
        _ request: QueuedRequest<Item>, nowMs: Double,
        dropped: inout [(request: QueuedRequest<Item>, error: SchedulingError)]
    ) {
        recordShed(atMs: nowMs)
        dropped.append(
            (request, .deadlineExpired(waitedMs: nowMs - request.arrivalMs, budgetMs: request.budgetMs)))
    }
}

extension SchedulingCore: Sendable where Item: Sendable {}
extension QueuedRequest: Sendable where Item: Sendable {}
extension Dispatch: Sendable where Item: Sendable {}
