import DequeModule
import Foundation
import HeapModule

/// How requests arrive in a simulation.
public enum ArrivalProcess: Sendable, Equatable, Codable {
    /// Open loop, exponential inter-arrival times at `rate` requests/s.
    case poisson(rate: Double)
    /// Open loop, evenly spaced at `rate` requests/s.
    case constant(rate: Double)
    /// Closed loop: `clients` clients, each sending its next request when the last is answered.
    case closedLoop(clients: Int)
}

/// What to simulate.
public struct SimulationSettings: Sendable {
    /// The latency SLO in ms (the default deadline of each request).
    public var sloMs: Double
    /// The percentile the policy steers by and the report leads with.
    public var percentile: Double
    /// The arrival process.
    public var arrivals: ArrivalProcess
    /// Requests to send.
    public var requests: Int
    /// The seed: the same seed gives the same result.
    public var seed: UInt64
    /// The most queued requests.
    public var maxQueueSize: Int
    /// Refuse requests at arrival that cannot finish before their deadline (as the server does).
    public var admissionControl: Bool
    /// Drop queued requests whose deadline has passed (as the server does).
    public var dropExpired: Bool
    /// Seconds new instances take to load and warm up before they take traffic.
    public var instanceWarmupSeconds: Double
    /// Seconds per point of the time series.
    public var seriesInterval: Double
    /// Virtual seconds excluded from the summary (latencies, throughput, SLO attainment): requests
    /// that arrive earlier are served but not counted, so the result describes the steady state
    /// after the policy's convergence. The time series always covers the whole run.
    public var measurementStartSeconds: Double

    /// Creates settings; the defaults mirror the server's.
    public init(
        sloMs: Double, percentile: Double = 99, arrivals: ArrivalProcess, requests: Int, seed: UInt64 = 1,
        maxQueueSize: Int = 1024, admissionControl: Bool = true, dropExpired: Bool = true,
        instanceWarmupSeconds: Double = 1, seriesInterval: Double = 1, measurementStartSeconds: Double = 0
    ) {
        self.sloMs = sloMs
        self.percentile = percentile
        self.arrivals = arrivals
        self.requests = requests
        self.seed = seed
        self.maxQueueSize = maxQueueSize
        self.admissionControl = admissionControl
        self.dropExpired = dropExpired
        self.instanceWarmupSeconds = instanceWarmupSeconds
        self.seriesInterval = seriesInterval
        self.measurementStartSeconds = measurementStartSeconds
    }
}

/// One point of a simulation's time series.
public struct SimulationSeriesPoint: Sendable, Codable, Equatable {
    /// End of the interval, in seconds of virtual time.
    public var time: Double
    /// Completions per second in the interval.
    public var throughput: Double
    /// Tail latency (at the percentile) of completions in the interval, in ms (0 if none).
    public var tailLatencyMs: Double
    /// Batch limit at the end of the interval.
    public var batchLimit: Int
    /// Instances at the end of the interval.
    public var instances: Int
    /// Requests shed in the interval.
    public var shed: Int
    /// The capacity estimate's load figure at the end of the interval (``CapacityEstimate/used``),
    /// when the simulator was given an estimate.
    public var capacityUsed: Double? = nil
}

/// What a simulation measured.
public struct SimulationResult: Sendable, Codable, Equatable {
    /// The policy simulated.
    public var policy: String
    /// Requests answered.
    public var completed: Int
    /// Requests refused or dropped for load.
    public var shed: Int
    /// Virtual seconds from the first arrival to the last completion.
    public var durationSeconds: Double
    /// Completions per second (of the measured requests, from the measurement start).
    public var throughput: Double
    /// Per-request latency (arrival to completion) of answered (measured) requests.
    public var latencyMs: LatencySummary
    /// p90 and p99.9 of the same.
    public var p90Ms: Double
    /// The 99.9th percentile.
    public var p999Ms: Double
    /// Mean per-request latency.
    public var meanMs: Double
    /// Mean time in the queue.
    public var meanQueueMs: Double
    /// Answered within the SLO, as a fraction of all (measured) requests sent; shed ones count as misses.
    public var sloAttainment: Double
    /// The per-interval time series.
    public var series: [SimulationSeriesPoint]
    /// The configuration at the end.
    public var finalConfiguration: ServingConfiguration
    /// How many decisions changed the configuration.
    public var configurationChanges: Int
    /// Requests that arrived in the measured part of the run (all, without a measurement start).
    public var measuredRequests: Int
    /// Of those, the answered ones (the summary's latencies are theirs).
    public var measuredCompleted: Int
}

/// A discrete-event simulation, in virtual time, of the server's queue, batcher and instance pool,
/// running the same ``ScalingPolicy`` code as the server against a ``Profile``'s latencies.
public struct Simulator {
    /// The latencies.
    public let serviceTimes: ServiceTimeModel
    /// The policy.
    public var policy: any ScalingPolicy
    /// What to simulate.
    public let settings: SimulationSettings
    /// The capacity estimate fed with the simulated counters, as the server's controller feeds
    /// it; each series point reports its load figure. `nil`: not reported.
    public var capacity: CapacityEstimate?
    /// How often (ms) a control step held back by an unsettled change looks again, as the server's
    /// controller loop ticks.
    static let settleCheckMs = 200.0

    /// Creates a simulator.
    public init(
        profile: Profile, policy: any ScalingPolicy, settings: SimulationSettings, capacity: CapacityEstimate? = nil
    ) {
        serviceTimes = ServiceTimeModel(profile: profile)
        self.policy = policy
        self.settings = settings
        self.capacity = capacity
    }

    private enum EventKind: Comparable {
        /// The batch of the instance with this id is done (ids are stable; array indices are not).
        case completion(instance: Int)
        case arrival(client: Int)
        case switchInstances
        case control
        case series
    }

    private struct Event: Comparable {
        var time: Double
        var sequence: Int
        var kind: EventKind

        static func < (lhs: Event, rhs: Event) -> Bool {
            (lhs.time, lhs.sequence) < (rhs.time, rhs.sequence)
        }

        static func == (lhs: Event, rhs: Event) -> Bool {
            lhs.time == rhs.time && lhs.sequence == rhs.sequence
        }
    }

    private struct Request {
        var arrival: Double
        var deadline: Double
        var client: Int
    }

    private struct Instance {
        var id: Int
        var busy: Bool
        var retiring: Bool
        var batch: [Request]
        var batchStart: Double
    }

    /// Runs the simulation to the end. Deterministic for a seed.
    public mutating func run() -> SimulationResult {
        var generator = SplitMix64(seed: settings.seed)
        var events = Heap<Event>()
        var sequence = 0
        func schedule(_ time: Double, _ kind: EventKind) {
            events.insert(Event(time: time, sequence: sequence, kind: kind))
            sequence += 1
        }

        var configuration = policy.initialConfiguration
        var activeInstances = max(1, configuration.instances)
        var nextInstanceID = 0
        func makeInstances(_ count: Int) -> [Instance] {
            defer { nextInstanceID += count }
            return (0..<count).map {
                Instance(id: nextInstanceID + $0, busy: false, retiring: false, batch: [], batchStart: 0)
            }
        }
        var instances = makeInstances(activeInstances)
        var pendingInstances: Int?
        var queue: Deque<Request> = []
        var sent = 0
        var completed = 0
        var shed = 0
        var changes = 0
        var latencies: [Double] = []
        latencies.reserveCapacity(settings.requests)
        var queueTimeTotal = 0.0
        var withinSLO = 0
        let measureFrom = settings.measurementStartSeconds * 1000
        var measuredSent = 0
        var measuredCompleted = 0
        var msPerSample: Double?
        var window = LatencyWindow(horizonSeconds: 30, capacity: 200_000)
        var serviceWindow = LatencyWindow(horizonSeconds: 30, capacity: 200_000)
        var lastDecision = 0.0
        var lastChange = 0.0
        let minimumTailSamples = LatencyWindow.minimumSamples(forPercentile: settings.percentile)
        var arrivalsSinceDecision = 0
        var shedSinceDecision = 0
        var series: [SimulationSeriesPoint] = []
        var intervalLatencies: [Double] = []
        var intervalShed = 0
        var lastCompletion = 0.0
        // Cumulative counters in the runtime's form, for the capacity estimate.
        var statistics = ModelStatistics()
        func nanoseconds(_ ms: Double) -> UInt64 { UInt64(max(0, ms * 1e6)) }

        func interArrivalMs(_ rate: Double, poisson: Bool) -> Double {
            guard rate > 0 else { return .infinity }
            if !poisson { return 1000 / rate }
            let uniform = (Double(generator.next() >> 11) + 0.5) / Double(1 << 53)
            return -log(uniform) * 1000 / rate
        }

        switch settings.arrivals {
        case .poisson(let rate): schedule(interArrivalMs(rate, poisson: true), .arrival(client: -1))
        case .constant(let rate): schedule(interArrivalMs(rate, poisson: false), .arrival(client: -1))
        case .closedLoop(let clients):
            for client in 0..<max(1, clients) { schedule(0, .arrival(client: client)) }
        }
        schedule(policy.period * 1000, .control)
        schedule(settings.seriesInterval * 1000, .series)

        /// Requests still to send, queued or running: periodic events keep coming until none are.
        func workRemains() -> Bool {
            sent < settings.requests || !queue.isEmpty || instances.contains(where: \.busy)
        }

        func startBatches(at now: Double) {
            for index in instances.indices where !instances[index].busy && !instances[index].retiring {
                if settings.dropExpired {
                    // As the server: drop what has passed its deadline in the queue.
                    while let first = queue.first, first.deadline < now {
                        queue.removeFirst()
                        shed += 1
                        intervalShed += 1
                        shedSinceDecision += 1
                        if first.client >= 0 { schedule(now + 1, .arrival(client: first.client)) }
                    }
                }
                guard !queue.isEmpty else { return }
                let size = min(configuration.batchLimit, queue.count)
                let batch = Array(queue.prefix(size))
                queue.removeFirst(size)
                instances[index].busy = true
                instances[index].batch = batch
                instances[index].batchStart = now
                let service = serviceTimes.batchMs(instances: activeInstances, batch: size)
                schedule(now + service, .completion(instance: instances[index].id))
            }
        }

        while let event = events.popMin() {
            let now = event.time
            switch event.kind {
            case .arrival(let client):
                guard sent < settings.requests else { continue }
                sent += 1
                if now >= measureFrom { measuredSent += 1 }
                arrivalsSinceDecision += 1
                statistics.arrivals += 1
                let request = Request(arrival: now, deadline: now + settings.sloMs, client: client)
                var refused = queue.count >= settings.maxQueueSize
                if !refused, settings.admissionControl, let msPerSample {
                    refused = Double(queue.count + 1) * msPerSample / Double(activeInstances) > settings.sloMs
                }
                if refused {
                    shed += 1
                    intervalShed += 1
                    shedSinceDecision += 1
                    if client >= 0 { schedule(now + 1, .arrival(client: client)) }
                } else {
                    queue.append(request)
                    startBatches(at: now)
                }
                switch settings.arrivals {
                case .poisson(let rate): schedule(now + interArrivalMs(rate, poisson: true), .arrival(client: -1))
                case .constant(let rate): schedule(now + interArrivalMs(rate, poisson: false), .arrival(client: -1))
                case .closedLoop: break
                }
            case .completion(let id):
                guard let index = instances.firstIndex(where: { $0.id == id }) else { continue }
                let batch = instances[index].batch
                let service = now - instances[index].batchStart
                serviceWindow.record(time: now / 1000, latencyMs: service)
                statistics.batches[batch.count, default: DurationStatistic()].add(nanoseconds(service))
                msPerSample =
                    (msPerSample.map { $0 * 0.8 } ?? 0) + (msPerSample == nil ? 1 : 0.2) * service
                    / Double(batch.count)
                for request in batch {
                    let latency = now - request.arrival
                    statistics.success.add(nanoseconds(latency))
                    statistics.queue.add(nanoseconds(instances[index].batchStart - request.arrival))
                    statistics.computeInfer.add(nanoseconds(service))
                    intervalLatencies.append(latency)
                    window.record(time: now / 1000, latencyMs: latency)
                    completed += 1
                    if request.arrival >= measureFrom {
                        latencies.append(latency)
                        queueTimeTotal += instances[index].batchStart - request.arrival
                        if latency <= settings.sloMs { withinSLO += 1 }
                        measuredCompleted += 1
                    }
                    if request.client >= 0 { schedule(now, .arrival(client: request.client)) }
                }
                lastCompletion = now
                instances[index].busy = false
                instances[index].batch = []
                if instances[index].retiring { instances.remove(at: index) }
                startBatches(at: now)
            case .switchInstances:
                guard let count = pendingInstances else { continue }
                pendingInstances = nil
                for index in instances.indices { instances[index].retiring = true }
                instances.removeAll { !$0.busy }
                // Busy old instances finish their batch; the new ones start now.
                instances += makeInstances(count)
                activeInstances = count
                startBatches(at: now)
            case .control:
                let time = now / 1000
                guard window.hasSettled(since: lastChange, now: time, minimumSamples: minimumTailSamples) else {
                    // As the server's controller: no decision before the last change can be judged.
                    if workRemains() {
                        schedule(now + Self.settleCheckMs, .control)
                    }
                    continue
                }
                let elapsed = max(1e-3, time - lastDecision)
                let completedInPeriod = window.count(since: lastDecision)
                let tailSince = window.judgingStart(
                    periodStart: lastDecision, now: time, notBefore: lastChange, minimumSamples: minimumTailSamples)
                let observation = Observation(
                    time: time, tailLatencyMs: window.percentile(settings.percentile, since: tailSince),
                    completed: completedInPeriod, arrivalRate: Double(arrivalsSinceDecision) / elapsed,
                    throughput: Double(completedInPeriod) / elapsed, shed: shedSinceDecision, queueLength: queue.count,
                    sloMs: settings.sloMs, current: configuration,
                    serviceTailMs: serviceWindow.percentile(settings.percentile, since: tailSince),
                    confirmingTailLatencyMs: window.settledPercentile(
                        settings.percentile, since: policy.confirmationSince, now: time,
                        minimumSamples: minimumTailSamples))
                lastDecision = time
                arrivalsSinceDecision = 0
                shedSinceDecision = 0
                let decision = policy.decide(observation)
                var next = decision.configuration
                next.instances = max(1, next.instances)
                next.batchLimit = max(1, next.batchLimit)
                if next != configuration {
                    changes += 1
                    // A new batch limit takes over at once; a new instance count after its warm-up.
                    lastChange = time
                    if next.instances != configuration.instances {
                        lastChange = time + settings.instanceWarmupSeconds
                        pendingInstances = next.instances
                        schedule(now + settings.instanceWarmupSeconds * 1000, .switchInstances)
                    }
                    configuration = next
                    startBatches(at: now)
                }
                if workRemains() {
                    schedule(now + policy.period * 1000, .control)
                }
            case .series:
                intervalLatencies.sort()
                capacity?.update(
                    time: now / 1000, statistics: statistics, instances: activeInstances, serviceWindow: serviceWindow)
                series.append(
                    SimulationSeriesPoint(
                        time: now / 1000, throughput: Double(intervalLatencies.count) / settings.seriesInterval,
                        tailLatencyMs: LatencySummary.percentile(settings.percentile, ofSorted: intervalLatencies),
                        batchLimit: configuration.batchLimit, instances: activeInstances, shed: intervalShed,
                        capacityUsed: capacity?.used))
                intervalLatencies.removeAll(keepingCapacity: true)
                intervalShed = 0
                if workRemains() {
                    schedule(now + settings.seriesInterval * 1000, .series)
                }
            }
        }

        latencies.sort()
        let duration = max(1e-9, lastCompletion / 1000)
        let measuredDuration = max(1e-9, (lastCompletion - min(measureFrom, lastCompletion)) / 1000)
        let summary = LatencySummary(
            mean: latencies.isEmpty ? 0 : latencies.reduce(0, +) / Double(latencies.count),
            p50: LatencySummary.percentile(50, ofSorted: latencies),
            p95: LatencySummary.percentile(95, ofSorted: latencies),
            p99: LatencySummary.percentile(99, ofSorted: latencies),
            atPercentile: LatencySummary.percentile(settings.percentile, ofSorted: latencies))
        return SimulationResult(
            policy: policy.name, completed: completed, shed: shed, durationSeconds: duration,
            throughput: Double(measuredCompleted) / measuredDuration, latencyMs: summary,
            p90Ms: LatencySummary.percentile(90, ofSorted: latencies),
            p999Ms: LatencySummary.percentile(99.9, ofSorted: latencies), meanMs: summary.mean,
            meanQueueMs: measuredCompleted > 0 ? queueTimeTotal / Double(measuredCompleted) : 0,
            sloAttainment: measuredSent > 0 ? Double(withinSLO) / Double(measuredSent) : 0, series: series,
            finalConfiguration: configuration, configurationChanges: changes, measuredRequests: measuredSent,
            measuredCompleted: measuredCompleted)
    }
}
