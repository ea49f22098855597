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
    /// Open loop, at these times (ms from the start, ascending): a recorded trace replayed.
    case trace(arrivalsMs: [Double])
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
    /// Refuse requests at arrival that cannot finish before their deadline, and drop those whose
    /// batch would end after it (as the server does).
    public var admissionControl: Bool
    /// Seconds new instances take to load and warm up before they take traffic.
    public var instanceWarmupSeconds: Double
    /// Seconds per point of the time series.
    public var seriesInterval: Double
    /// Keep what became of every request (``SimulationResult/outcomes``).
    public var recordsOutcomes = false
    /// Virtual seconds excluded from the summary (latencies, throughput, SLO attainment): requests
    /// that arrive earlier are served but not counted, so the result describes the steady state
    /// after the policy's convergence. The time series always covers the whole run.
    public var measurementStartSeconds: Double

    /// Creates settings; the defaults mirror the server's.
    public init(
        sloMs: Double, percentile: Double = 99, arrivals: ArrivalProcess, requests: Int, seed: UInt64 = 1,
        maxQueueSize: Int = 1024, admissionControl: Bool = true, instanceWarmupSeconds: Double = 1,
        seriesInterval: Double = 1, measurementStartSeconds: Double = 0
    ) {
        self.sloMs = sloMs
        self.percentile = percentile
        self.arrivals = arrivals
        self.requests = requests
        self.seed = seed
        self.maxQueueSize = maxQueueSize
        self.admissionControl = admissionControl
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
    /// What became of each request, in the order sent (with ``SimulationSettings/recordsOutcomes``).
    public var outcomes: [RequestOutcome] = []
}

/// A discrete-event simulation, in virtual time, of the server's instance pool around the server's
/// own queue rules (``SchedulingCore``), running the same ``ScalingPolicy`` code as the server
/// against a ``Profile``'s latencies.
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

    fileprivate enum EventKind: Comparable {
        /// The batch of the instance with this id is done (ids are stable; array indices are not).
        case completion(instance: Int)
        case arrival(client: Int)
        case switchInstances
        /// The queue delay that held a batch open has passed.
        case fill
        case control
        case series
    }

    fileprivate struct Event: Comparable {
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

    /// Who sent a request: its closed-loop client (-1: open loop) and its place in the send order.
    fileprivate struct Sender {
        var client: Int
        var index: Int
    }

    /// A queued request.
    fileprivate typealias Request = QueuedRequest<Sender>

    fileprivate struct Instance {
        var id: Int
        var busy: Bool
        var retiring: Bool
        var batch: [Request]
        var batchStart: Double
    }

    /// Runs the simulation to the end. Deterministic for a seed.
    public mutating func run() -> SimulationResult {
        var run = Run(simulator: self)
        while let event = run.events.popMin() { run.handle(event) }
        policy = run.policy
        capacity = run.capacity
        return run.result()
    }
}

extension Simulator {
    /// One run's state: the event queue, the instances around the shared ``SchedulingCore``, the
    /// policy's bookkeeping and what is measured. Times are ms of virtual time.
    fileprivate struct Run {
        let settings: SimulationSettings
        let serviceTimes: ServiceTimeModel
        var policy: any ScalingPolicy
        var capacity: CapacityEstimate?
        var events = Heap<Event>()
        private var sequence = 0
        private var generator: SplitMix64
        private var configuration: ServingConfiguration
        private var activeInstances: Int
        private var nextInstanceID = 0
        private var instances: [Instance] = []
        private var pendingInstances: Int?
        private var core: SchedulingCore<Sender>
        private var fillScheduledAt: Double?
        private var outcomes: [RequestOutcome] = []
        private var batchesStarted = 0
        private let requestCount: Int
        private var sent = 0
        private var completed = 0
        private var shed = 0
        private var changes = 0
        private var latencies: [Double] = []
        private var queueTimeTotal = 0.0
        private var withinSLO = 0
        private let measureFrom: Double
        private var measuredSent = 0
        private var measuredCompleted = 0
        private var window = LatencyWindow(horizonSeconds: 30, capacity: 200_000)
        private var serviceWindow = LatencyWindow(horizonSeconds: 30, capacity: 200_000)
        private var lastDecision = 0.0
        private var lastChange = 0.0
        private let minimumTailSamples: Int
        private var arrivalsSinceDecision = 0
        private var shedSinceDecision = 0
        private var series: [SimulationSeriesPoint] = []
        private var intervalLatencies: [Double] = []
        private var intervalShed = 0
        private var lastCompletion = 0.0
        /// Cumulative counters in the runtime's form, for the capacity estimate.
        private var statistics = ModelStatistics()

        init(simulator: Simulator) {
            settings = simulator.settings
            serviceTimes = simulator.serviceTimes
            policy = simulator.policy
            capacity = simulator.capacity
            generator = SplitMix64(seed: settings.seed)
            configuration = policy.initialConfiguration
            activeInstances = max(1, configuration.instances)
            core = SchedulingCore(
                settings: RuntimeSettings(
                    maxQueueSize: settings.maxQueueSize, maxBatchSize: .max, cores: 1, sloMs: settings.sloMs,
                    admissionControl: settings.admissionControl),
                configuration: configuration, supportsBatching: true)
            measureFrom = settings.measurementStartSeconds * 1000
            minimumTailSamples = LatencyWindow.minimumSamples(forPercentile: settings.percentile)
            if case .trace(let times) = settings.arrivals {
                requestCount = min(settings.requests, times.count)
            } else {
                requestCount = settings.requests
            }
            latencies.reserveCapacity(requestCount)
            if settings.recordsOutcomes { outcomes = Array(repeating: .refused, count: requestCount) }
            instances = makeInstances(activeInstances)
            syncCore()
            switch settings.arrivals {
            case .closedLoop(let clients):
                for client in 0..<max(1, clients) { schedule(0, .arrival(client: client)) }
            case .trace(let times):
                if let first = times.first { schedule(first, .arrival(client: -1)) }
            case .poisson, .constant:
                scheduleNextArrival(after: 0)
            }
            schedule(policy.period * 1000, .control)
            schedule(settings.seriesInterval * 1000, .series)
        }

        mutating func handle(_ event: Event) {
            let now = event.time
            switch event.kind {
            case .arrival(let client): arrive(client: client, at: now)
            case .completion(let id): complete(instance: id, at: now)
            case .switchInstances: switchInstances(at: now)
            case .fill:
                fillScheduledAt = nil
                startBatches(at: now)
            case .control: control(at: now)
            case .series: recordSeriesPoint(at: now)
            }
        }

        private mutating func schedule(_ time: Double, _ kind: EventKind) {
            events.insert(Event(time: time, sequence: sequence, kind: kind))
            sequence += 1
        }

        private mutating func makeInstances(_ count: Int) -> [Instance] {
            defer { nextInstanceID += count }
            return (0..<count).map {
                Instance(id: nextInstanceID + $0, busy: false, retiring: false, batch: [], batchStart: 0)
            }
        }

        /// Gives the core the batch limit in force and the instances taking work now.
        private mutating func syncCore() {
            var served = configuration
            served.instances = activeInstances
            core.configuration = served
        }

        private mutating func record(_ outcome: RequestOutcome, of request: Request) {
            guard settings.recordsOutcomes else { return }
            outcomes[request.item.index] = outcome
        }

        /// Requests still to send, queued or running: periodic events keep coming until none are.
        private func workRemains() -> Bool {
            sent < requestCount || !core.queue.isEmpty || instances.contains(where: \.busy)
        }

        private mutating func scheduleNextArrival(after now: Double) {
            func gapMs(_ rate: Double, poisson: Bool) -> Double {
                guard rate > 0 else { return .infinity }
                if !poisson { return 1000 / rate }
                let uniform = (Double(generator.next() >> 11) + 0.5) / Double(1 << 53)
                return -log(uniform) * 1000 / rate
            }
            switch settings.arrivals {
            case .poisson(let rate): schedule(now + gapMs(rate, poisson: true), .arrival(client: -1))
            case .constant(let rate): schedule(now + gapMs(rate, poisson: false), .arrival(client: -1))
            case .trace(let times): if sent < times.count { schedule(times[sent], .arrival(client: -1)) }
            case .closedLoop: break
            }
        }

        private mutating func countShed(_ request: Request, at now: Double) {
            shed += 1
            intervalShed += 1
            shedSinceDecision += 1
            if request.item.client >= 0 { schedule(now + 1, .arrival(client: request.item.client)) }
        }

        private mutating func startBatches(at now: Double) {
            var dropped: [(request: Request, error: SchedulingError)] = []
            for index in instances.indices where !instances[index].busy && !instances[index].retiring {
                let dispatch = core.nextBatch(nowMs: now, dropped: &dropped)
                for (request, _) in dropped {
                    countShed(request, at: now)
                    record(.expired, of: request)
                }
                dropped.removeAll()
                switch dispatch {
                case .idle:
                    return
                case .waitUntil(let fillMs):
                    if fillScheduledAt != fillMs {
                        fillScheduledAt = fillMs
                        schedule(fillMs, .fill)
                    }
                    return
                case .run(let batch):
                    for request in batch { record(.served(batch: batchesStarted), of: request) }
                    batchesStarted += 1
                    let samples = batch.reduce(0) { $0 + $1.samples }
                    instances[index].busy = true
                    instances[index].batch = batch
                    instances[index].batchStart = now
                    let service = serviceTimes.batchMs(instances: activeInstances, batch: samples)
                    schedule(now + service, .completion(instance: instances[index].id))
                }
            }
        }

        private mutating func arrive(client: Int, at now: Double) {
            guard sent < requestCount else { return }
            sent += 1
            if now >= measureFrom { measuredSent += 1 }
            arrivalsSinceDecision += 1
            statistics.arrivals += 1
            let request = Request(
                item: Sender(client: client, index: sent - 1), samples: 1, arrivalMs: now, enqueuedMs: now,
                budgetMs: settings.sloMs, limitMs: core.sloLimitMs)
            if core.offer(request, nowMs: now) != nil {
                countShed(request, at: now)
                record(.refused, of: request)
            } else {
                startBatches(at: now)
            }
            scheduleNextArrival(after: now)
        }

        private mutating func complete(instance id: Int, at now: Double) {
            guard let index = instances.firstIndex(where: { $0.id == id }) else { return }
            func nanoseconds(_ ms: Double) -> UInt64 { UInt64(max(0, ms * 1e6)) }
            let batch = instances[index].batch
            let batchStart = instances[index].batchStart
            let service = now - batchStart
            serviceWindow.record(time: now / 1000, latencyMs: service)
            let samples = batch.reduce(0) { $0 + $1.samples }
            statistics.batches[samples, default: DurationStatistic()].add(nanoseconds(service))
            core.recordBatch(samples: samples, ms: service)
            for request in batch {
                let latency = now - request.arrivalMs
                statistics.success.add(nanoseconds(latency))
                statistics.queue.add(nanoseconds(batchStart - request.enqueuedMs))
                statistics.computeInfer.add(nanoseconds(service))
                intervalLatencies.append(latency)
                window.record(time: now / 1000, latencyMs: latency)
                completed += 1
                if request.arrivalMs >= measureFrom {
                    latencies.append(latency)
                    queueTimeTotal += batchStart - request.enqueuedMs
                    if latency <= settings.sloMs { withinSLO += 1 }
                    measuredCompleted += 1
                }
                if request.item.client >= 0 { schedule(now, .arrival(client: request.item.client)) }
            }
            lastCompletion = now
            instances[index].busy = false
            instances[index].batch = []
            if instances[index].retiring { instances.remove(at: index) }
            startBatches(at: now)
        }

        private mutating func switchInstances(at now: Double) {
            guard let count = pendingInstances else { return }
            pendingInstances = nil
            for index in instances.indices { instances[index].retiring = true }
            instances.removeAll { !$0.busy }
            // Busy old instances finish their batch; the new ones start now.
            instances += makeInstances(count)
            activeInstances = count
            syncCore()
            startBatches(at: now)
        }

        private mutating func control(at now: Double) {
            let time = now / 1000
            guard window.hasSettled(since: lastChange, now: time, minimumSamples: minimumTailSamples) else {
                // As the server's controller: no decision before the last change can be judged.
                if workRemains() { schedule(now + Simulator.settleCheckMs, .control) }
                return
            }
            let observation = Observation.measured(
                time: time, periodStart: lastDecision, lastChange: lastChange, percentile: settings.percentile,
                latencyWindow: window, serviceWindow: serviceWindow, arrivals: arrivalsSinceDecision,
                shed: shedSinceDecision, queueLength: core.queue.count, sloMs: settings.sloMs,
                current: configuration, confirmationSince: policy.confirmationSince)
            lastDecision = time
            arrivalsSinceDecision = 0
            shedSinceDecision = 0
            var next = policy.decide(observation).configuration
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
                syncCore()
                startBatches(at: now)
            }
            if workRemains() { schedule(now + policy.period * 1000, .control) }
        }

        private mutating func recordSeriesPoint(at now: Double) {
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
            if workRemains() { schedule(now + settings.seriesInterval * 1000, .series) }
        }

        /// The summary of what was measured.
        mutating func result() -> SimulationResult {
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
                measuredCompleted: measuredCompleted, outcomes: outcomes)
        }
    }
}
