import DNNScaler
import Foundation
import Prometheus
import Synchronization

/// Prometheus metrics per model, on swift-prometheus: Triton's names where they fit
/// (`nv_inference_*`), DNNScaler's own (`dnnscaler_*`) for the controller's state.
public final class ServerMetrics: Sendable {
    /// The registry `/metrics` renders.
    public let registry = PrometheusCollectorRegistry()
    private let lastSeen = Mutex<[String: ModelStatistics]>([:])
    private static let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(20), .milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(500),
        .seconds(1), .seconds(2), .seconds(5),
    ]

    /// Creates an empty registry.
    public init() {}

    /// The per-request metrics of one model version, looked up once (the registry's lookup builds
    /// label strings and takes its lock on every call).
    private struct RequestMetrics: Sendable {
        let success: Counter
        let latency: DurationHistogram
        let queue: DurationHistogram
    }
    private let requestMetrics = Mutex<[String: RequestMetrics]>([:])
    private let failureCounters = Mutex<[String: Counter]>([:])

    private func metrics(model: String, version: String) -> RequestMetrics {
        let key = "\(model)\u{0}\(version)"
        if let cached = requestMetrics.withLock({ $0[key] }) { return cached }
        let labels = [("model", model), ("version", version)]
        let created = RequestMetrics(
            success: registry.makeCounter(
                descriptor: MetricNameDescriptor(
                    metricName: "nv_inference_request_success", unitName: "",
                    helpText: "Successful inference requests"),
                labels: labels),
            latency: registry.makeDurationHistogram(
                descriptor: MetricNameDescriptor(
                    metricName: "dnnscaler_request_latency_seconds", unitName: "",
                    helpText: "End-to-end request latency in the server (arrival to response)"),
                labels: labels, buckets: Self.latencyBuckets),
            queue: registry.makeDurationHistogram(
                descriptor: MetricNameDescriptor(
                    metricName: "dnnscaler_queue_time_seconds", unitName: "",
                    helpText: "Time requests spent queued before their batch ran"),
                labels: labels, buckets: Self.latencyBuckets))
        return requestMetrics.withLock { cache in
            if let existing = cache[key] { return existing }
            cache[key] = created
            return created
        }
    }

    /// Records one answered request.
    func recordSuccess(model: String, version: String, latency: Duration, queue: Duration) {
        let handles = metrics(model: model, version: version)
        handles.success.increment()
        handles.latency.record(latency)
        handles.queue.record(queue)
    }

    /// Records one failed request with a reason: `shed`, `invalid`, `unavailable` or `backend`.
    func recordFailure(model: String, version: String, reason failure: FailureReason) {
        let reason = failure.rawValue
        let key = "\(model)\u{0}\(version)\u{0}\(reason)"
        if let counter = failureCounters.withLock({ $0[key] }) {
            counter.increment()
            return
        }
        let counter = registry.makeCounter(
            descriptor: MetricNameDescriptor(
                metricName: "nv_inference_request_failure", unitName: "",
                helpText: "Failed inference requests by reason"),
            labels: [("model", model), ("version", version), ("reason", reason)])
        failureCounters.withLock { $0[key] = $0[key] ?? counter }
        counter.increment()
    }

    /// Brings the state gauges and cumulative counters up to date before a scrape.
    func refresh(models: [ServedModel]) {
        registry.makeGauge(
            descriptor: MetricNameDescriptor(
                metricName: "dnnscaler_server_capacity_used", unitName: "",
                helpText:
                    "The largest dnnscaler_capacity_used of the models: what an autoscaler should target (scale out before 1)"
            )
        ).set(to: ServedModel.serverCapacityUsed(models))
        for model in models {
            let labels = [("model", model.name), ("version", String(model.version))]
            let snapshot = model.runtime.snapshot()
            let statistics = snapshot.statistics
            let previous = lastSeen.withLock { $0[model.name] } ?? ModelStatistics()
            func counter(_ name: String, _ help: String, _ now: UInt64, _ before: UInt64) {
                let counter = registry.makeCounter(
                    descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels)
                if now > before { counter.increment(by: Int64(now - before)) }
            }
            counter(
                "nv_inference_count", "Inferences performed (a batch of 4 counts 4)", statistics.inferenceCount,
                previous.inferenceCount)
            counter("nv_inference_exec_count", "Batches executed", statistics.executionCount, previous.executionCount)
            counter(
                "nv_inference_request_duration_us", "Cumulative end-to-end request duration (us)",
                statistics.success.ns / 1000, previous.success.ns / 1000)
            counter(
                "nv_inference_queue_duration_us", "Cumulative queue duration (us)", statistics.queue.ns / 1000,
                previous.queue.ns / 1000)
            counter(
                "nv_inference_compute_infer_duration_us", "Cumulative compute duration (us)",
                statistics.computeInfer.ns / 1000, previous.computeInfer.ns / 1000)
            counter(
                "dnnscaler_shed_total", "Requests refused for load (queue full, deadline)", statistics.shedCount,
                previous.shedCount)
            lastSeen.withLock { $0[model.name] = statistics }

            let options = model.options
            let status = model.controller.status
            func gauge(_ name: String, _ help: String, _ value: Double) {
                registry.makeGauge(
                    descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: labels
                ).set(to: value)
            }
            gauge("dnnscaler_batch_limit", "Current batch size limit", Double(snapshot.configuration.batchLimit))
            gauge("dnnscaler_instances", "Current instance count", Double(snapshot.configuration.instances))
            gauge("dnnscaler_queue_length", "Requests waiting", Double(snapshot.queueLength))
            gauge("dnnscaler_slo_ms", "Latency SLO (ms)", options.sloMs)
            let capacity = model.controller.capacity
            gauge(
                "dnnscaler_capacity_used",
                "Smoothed arrival rate (shed included) over the rate the best reachable configuration sustains within the SLO",
                capacity?.used ?? 0)
            gauge(
                "dnnscaler_capacity_sustainable_rate",
                "Requests/s the best reachable configuration sustains within the SLO",
                capacity?.sustainableRate ?? 0)
            gauge("dnnscaler_percentile", "Latency percentile the SLO is about", options.percentile)
            gauge(
                "dnnscaler_window_tail_latency_ms", "Tail latency (at the percentile) over the last 3 s",
                snapshot.latencyWindow.percentile(options.percentile, since: snapshot.time - 3) ?? 0)
            for mode in ScalingMode.allCases {
                registry.makeGauge(
                    descriptor: MetricNameDescriptor(
                        metricName: "dnnscaler_mode", unitName: "", helpText: "1 for the lever the policy tunes now"),
                    labels: labels + [("mode", mode.rawValue)]
                ).set(to: status.mode == mode ? 1 : 0)
            }
        }
    }

    /// The Prometheus text exposition, after bringing the gauges up to date.
    public func render(models: [ServedModel]) -> [UInt8] {
        refresh(models: models)
        return registry.emitToBuffer()
    }
}

/// Why an inference request failed, as the `reason` label of `nv_inference_request_failure` says
/// it, for HTTP and gRPC alike.
enum FailureReason: String, Sendable {
    /// The request was wrong: names, shapes, types, data, a malformed body.
    case invalid
    /// Refused or dropped for load: queue full, deadline out of reach or passed.
    case shed
    /// The model is not accepting requests (unloading, stopped).
    case unavailable
    /// The backend failed to run a valid request.
    case backend

    /// The reason for a scheduling error.
    init(_ error: SchedulingError) {
        switch error {
        case .backend(.runtimeFailed): self = .backend
        case .backend: self = .invalid
        case .unavailable: self = .unavailable
        case .queueFull, .deadlineUnreachable, .deadlineExpired: self = .shed
        }
    }
}
