import DNNScaler
import Foundation

/// How one request ended.
public enum RequestOutcome: String, Sendable, Codable, CaseIterable {
    /// HTTP 200.
    case ok
    /// HTTP 503: the server shed the request (or was not ready).
    case shed
    /// Another 4xx: the server refused the request as bad.
    case clientError = "client_error"
    /// A 5xx other than 503.
    case serverError = "server_error"
    /// No answer within the request timeout.
    case timeout
    /// The connection failed or closed before an answer.
    case connection
}

/// One request as the load generator saw it; times in seconds from the start of the run.
public struct RequestRecord: Sendable, Equatable {
    /// When the request was meant to be sent (open loop: the schedule; closed loop: when it was sent).
    public var intended: Double
    /// When it was handed to the HTTP client.
    public var sent: Double
    /// When its answer (or error) arrived.
    public var finished: Double
    /// How it ended.
    public var outcome: RequestOutcome

    /// Latency as the user sees it: from the intended send time to the answer, in ms.
    public var latencyMs: Double { (finished - intended) * 1000 }
}

/// The server's configuration at a moment, read from `/dnnscaler/status`.
public struct ServerSample: Sendable, Codable, Equatable {
    /// Seconds from the start of the run.
    public var time: Double
    /// The batch limit the server runs with.
    public var batchLimit: Int
    /// The instance count.
    public var instances: Int
    /// The server's own tail latency over its recent window, ms.
    public var windowTailLatencyMs: Double?
}

/// Figures of the measured part of a run (warm-up excluded).
public struct BenchSummary: Sendable, Codable, Equatable {
    /// Requests scheduled (open loop) or sent (closed loop) in the measured part.
    public var requests: Int
    /// Requests answered with 200.
    public var succeeded: Int
    /// The rate requests were offered at, per second (open loop: the schedule's count / duration).
    public var offeredRate: Double
    /// Successful requests per second.
    public var throughput: Double
    /// Successful samples per second (requests x batch size).
    public var samplesPerSecond: Double
    /// Latency percentiles over successful requests, ms (nil without any).
    public var p50Ms: Double?
    /// 90th percentile, ms.
    public var p90Ms: Double?
    /// 95th percentile, ms.
    public var p95Ms: Double?
    /// 99th percentile, ms.
    public var p99Ms: Double?
    /// 99.9th percentile, ms.
    public var p999Ms: Double?
    /// Mean, ms.
    public var meanMs: Double?
    /// Maximum, ms.
    public var maxMs: Double?
    /// The SLO (ms) attainment is measured against.
    public var sloMs: Double?
    /// The fraction of all requests answered with 200 within the SLO (failures count as misses).
    public var sloAttainment: Double?
    /// The configured percentile over all requests, failures counted as infinitely late; nil when more than
    /// (100 - percentile)% of the requests failed.
    public var tailOverAllMs: Double?
    /// Whether the percentile over all requests is within the SLO.
    public var sloMet: Bool?
    /// Failed requests by kind.
    public var errors: [String: Int]
    /// 99th percentile of how late requests were sent against their schedule, ms (the generator's own lag).
    public var sendLagP99Ms: Double
}

/// One second of the run.
public struct SeriesPoint: Sendable, Codable, Equatable {
    /// Start of the second, seconds from the start of the run.
    public var time: Double
    /// Requests scheduled in this second.
    public var sent: Int
    /// Successful answers that arrived in this second (= throughput, requests/s).
    public var succeeded: Int
    /// Failed requests that ended in this second.
    public var failed: Int
    /// Shed (503) among them.
    public var shed: Int
    /// Successful answers of this second that took longer than the SLO (0 without an SLO).
    public var overSlo: Int
    /// 99th percentile latency of the successful answers of this second, ms.
    public var p99Ms: Double?
    /// The server's batch limit at the end of this second.
    public var batchLimit: Int?
    /// The server's instance count at the end of this second.
    public var instances: Int?
}

/// A whole run: settings, summary, time series.
public struct BenchResult: Sendable, Codable, Equatable {
    /// The URL.
    public var url: String
    /// The model.
    public var model: String
    /// `open` or `closed`.
    public var loop: String
    /// Open loop: the rate.
    public var rate: Double?
    /// Open loop: the distribution.
    public var distribution: String?
    /// Closed loop: the clients.
    public var concurrency: Int?
    /// Seconds measured.
    public var durationSeconds: Double
    /// Seconds of warm-up before.
    public var warmupSeconds: Double
    /// Samples per request.
    public var batchSize: Int
    /// Binary or JSON tensors.
    public var tensorFormat: String
    /// The figures.
    public var summary: BenchSummary
    /// Per-second series over the whole run, warm-up included.
    public var series: [SeriesPoint]

    /// Builds the result of a run from its records.
    public init(
        settings: BenchSettings, records: [RequestRecord], samples: [ServerSample]
    ) {
        url = settings.url
        model = settings.model
        durationSeconds = settings.durationSeconds
        warmupSeconds = settings.warmupSeconds
        batchSize = settings.batchSize
        tensorFormat = settings.tensorFormat.rawValue
        switch settings.shape {
        case .openLoop(let rate, let distribution):
            loop = "open"
            self.rate = rate
            self.distribution = distribution.rawValue
        case .closedLoop(let concurrency):
            loop = "closed"
            self.concurrency = concurrency
        }
        let measured = records.filter { $0.intended >= settings.warmupSeconds }
        summary = Self.summarize(measured, settings: settings)
        series = Self.series(
            records, samples: samples, until: settings.warmupSeconds + settings.durationSeconds, sloMs: settings.sloMs)
    }

    static func summarize(_ records: [RequestRecord], settings: BenchSettings) -> BenchSummary {
        let duration = max(settings.durationSeconds, 1e-9)
        let okLatencies = records.filter { $0.outcome == .ok }.map(\.latencyMs).sorted()
        func at(_ percentile: Double) -> Double? {
            okLatencies.isEmpty ? nil : LatencySummary.percentile(percentile, ofSorted: okLatencies)
        }
        var errors: [String: Int] = [:]
        for record in records where record.outcome != .ok { errors[record.outcome.rawValue, default: 0] += 1 }
        let lags = records.map { max(0, $0.sent - $0.intended) * 1000 }.sorted()
        var attainment: Double?
        var tailOverAll: Double?
        var met: Bool?
        if let slo = settings.sloMs, !records.isEmpty {
            attainment = Double(okLatencies.filter { $0 <= slo }.count) / Double(records.count)
        }
        if !records.isEmpty {
            // Failed requests count as infinitely late.
            let failures = [Double](repeating: .infinity, count: records.count - okLatencies.count)
            let tail = LatencySummary.percentile(settings.percentile, ofSorted: okLatencies + failures)
            if tail.isFinite { tailOverAll = tail }
            if let slo = settings.sloMs { met = tailOverAll.map { $0 <= slo } ?? false }
        }
        return BenchSummary(
            requests: records.count, succeeded: okLatencies.count, offeredRate: Double(records.count) / duration,
            throughput: Double(okLatencies.count) / duration,
            samplesPerSecond: Double(okLatencies.count * settings.batchSize) / duration,
            p50Ms: at(50), p90Ms: at(90), p95Ms: at(95), p99Ms: at(99), p999Ms: at(99.9),
            meanMs: okLatencies.isEmpty ? nil : okLatencies.reduce(0, +) / Double(okLatencies.count),
            maxMs: okLatencies.last, sloMs: settings.sloMs, sloAttainment: attainment, tailOverAllMs: tailOverAll,
            sloMet: met, errors: errors,
            sendLagP99Ms: lags.isEmpty ? 0 : LatencySummary.percentile(99, ofSorted: lags))
    }

    static func series(
        _ records: [RequestRecord], samples: [ServerSample], until end: Double, sloMs: Double?
    ) -> [SeriesPoint] {
        let seconds = max(1, Int(end.rounded(.up)))
        var points = (0..<seconds).map {
            SeriesPoint(time: Double($0), sent: 0, succeeded: 0, failed: 0, shed: 0, overSlo: 0)
        }
        var latencies = [[Double]](repeating: [], count: seconds)
        for record in records {
            let sentSecond = min(seconds - 1, max(0, Int(record.intended)))
            points[sentSecond].sent += 1
            let second = min(seconds - 1, max(0, Int(record.finished)))
            if record.outcome == .ok {
                points[second].succeeded += 1
                latencies[second].append(record.latencyMs)
                if let sloMs, record.latencyMs > sloMs { points[second].overSlo += 1 }
            } else {
                points[second].failed += 1
                if record.outcome == .shed { points[second].shed += 1 }
            }
        }
        var sampleIndex = 0
        var current: ServerSample?
        for second in 0..<seconds {
            if !latencies[second].isEmpty {
                points[second].p99Ms = LatencySummary.percentile(99, ofSorted: latencies[second].sorted())
            }
            while sampleIndex < samples.count, samples[sampleIndex].time < Double(second + 1) {
                current = samples[sampleIndex]
                sampleIndex += 1
            }
            points[second].batchLimit = current?.batchLimit
            points[second].instances = current?.instances
        }
        return points
    }

    /// The result as pretty JSON (snake_case keys).
    public func jsonData() throws -> Data {
        try Self.jsonEncoder().encode(self)
    }

    /// The encoder of the JSON files `dnnscaler bench` writes: snake_case keys, pretty, sorted.
    static func jsonEncoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return encoder
    }

    /// The per-second series as CSV.
    public func seriesCSV() -> String {
        func cell(_ value: Double?) -> String { value.map { String(format: "%.3f", $0) } ?? "" }
        var lines = ["time_s,sent,succeeded,failed,shed,over_slo,p99_ms,batch_limit,instances"]
        for point in series {
            lines.append(
                "\(Int(point.time)),\(point.sent),\(point.succeeded),\(point.failed),\(point.shed),\(point.overSlo),"
                    + "\(cell(point.p99Ms)),"
                    + "\(point.batchLimit.map(String.init) ?? ""),\(point.instances.map(String.init) ?? "")")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
