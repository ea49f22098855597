import AsyncHTTPClient
import DNNScaler
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A line of progress, once a second while a run goes on.
public struct BenchProgress: Sendable {
    /// Seconds since the start.
    public var elapsed: Double
    /// Requests answered (or failed) so far.
    public var answered: Int
    /// Requests answered with 200 so far.
    public var succeeded: Int
    /// Failed so far.
    public var failed: Int
    /// Successful answers in the last second.
    public var lastSecondThroughput: Int
    /// 99th percentile latency of the last second's successful answers, ms.
    public var lastSecondP99Ms: Double?
    /// The server's configuration, when it reports one.
    public var server: ServerSample?

    /// The line as printed by `dnnscaler bench`.
    public var line: String {
        var text = String(
            format: "%5.0f s  answered %d  ok %d  failed %d  last second: %d/s", elapsed, answered, succeeded, failed,
            lastSecondThroughput)
        if let p99 = lastSecondP99Ms { text += String(format: "  p99 %.1f ms", p99) }
        if let server { text += "  server batch \(server.batchLimit) x \(server.instances) instances" }
        return text
    }
}

/// An HTTP load generator for KServe v2 servers: open loop free of coordinated omission (latency counts from
/// the scheduled send time, whatever the server does) or closed loop; keep-alive connections; binary tensors.
public struct LoadGenerator: Sendable {
    /// What to run.
    public let settings: BenchSettings
    private let client: HTTPClient

    /// A generator that sends with `client` (its connection pool sets how many connections are used).
    public init(settings: BenchSettings, client: HTTPClient) {
        self.settings = settings
        self.client = client
    }

    /// An HTTP client with keep-alive connections suited to `settings`; shut it down after use.
    public static func makeClient(for settings: BenchSettings) -> HTTPClient {
        var configuration = HTTPClient.Configuration()
        configuration.connectionPool = .init(
            idleTimeout: .seconds(120), concurrentHTTP1ConnectionsPerHostSoftLimit: max(1, settings.maxConnections))
        configuration.decompression = .disabled
        return HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: configuration)
    }

    /// Runs the load and returns every request's record plus the server samples.
    public func run(progress: (@Sendable (BenchProgress) -> Void)? = nil) async throws -> BenchResult {
        let template = try await RequestTemplate.fetch(
            client: client, baseURL: settings.baseURL, model: settings.model, format: settings.tensorFormat,
            batchSize: settings.batchSize, seed: settings.seed)
        return try await run(template: template, progress: progress)
    }

    /// Runs the load with a prepared request.
    public func run(
        template: RequestTemplate, progress: (@Sendable (BenchProgress) -> Void)? = nil
    ) async throws -> BenchResult {
        let recorder = Recorder()
        let start = ContinuousClock.now
        let total = settings.warmupSeconds + settings.durationSeconds
        let request = makeRequest(template)
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await monitor(recorder: recorder, start: start, progress: progress)
            }
            await sendLoad(request: request, recorder: recorder, start: start, total: total)
            group.cancelAll()
        }
        return BenchResult(settings: settings, records: recorder.records(), samples: recorder.samples())
    }

    private func makeRequest(_ template: RequestTemplate) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: "\(settings.baseURL)/v2/models/\(settings.model)/infer")
        request.method = .POST
        request.headers = template.headers
        request.body = .bytes(template.body)
        return request
    }

    private func sendLoad(
        request: HTTPClientRequest, recorder: Recorder, start: ContinuousClock.Instant, total: Double
    )
        async
    {
        switch settings.shape {
        case .openLoop(let rate, let distribution):
            var schedule = ArrivalSchedule(rate: rate, distribution: distribution, seed: settings.seed)
            await withDiscardingTaskGroup { group in
                while true {
                    let intended = schedule.nextTime()
                    if intended >= total { break }
                    let instant = start.advanced(by: .seconds(intended))
                    if instant > .now { try? await Task.sleep(until: instant, tolerance: nil, clock: .continuous) }
                    group.addTask {
                        await send(request, intended: intended, start: start, recorder: recorder)
                    }
                }
            }
        case .closedLoop(let concurrency):
            await withDiscardingTaskGroup { group in
                for _ in 0..<max(1, concurrency) {
                    group.addTask {
                        while true {
                            let now = Self.seconds(since: start)
                            if now >= total { break }
                            await send(request, intended: now, start: start, recorder: recorder)
                        }
                    }
                }
            }
        }
    }

    private func send(
        _ request: HTTPClientRequest, intended: Double, start: ContinuousClock.Instant, recorder: Recorder
    ) async {
        let sent = Self.seconds(since: start)
        let outcome: RequestOutcome
        do {
            let response = try await client.execute(
                request, timeout: .milliseconds(Int64(settings.requestTimeoutSeconds * 1000)))
            _ = try await response.body.collect(upTo: Int.max)
            switch response.status.code {
            case 200: outcome = .ok
            case 503: outcome = .shed
            case 400..<500: outcome = .clientError
            default: outcome = .serverError
            }
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout {
            outcome = .timeout
        } catch {
            outcome = .connection
        }
        recorder.append(
            RequestRecord(intended: intended, sent: sent, finished: Self.seconds(since: start), outcome: outcome))
    }

    /// Once a second: reads the server's status and reports progress, until cancelled.
    private func monitor(
        recorder: Recorder, start: ContinuousClock.Instant, progress: (@Sendable (BenchProgress) -> Void)?
    ) async {
        var pollStatus = settings.pollServerStatus
        var tick = 1.0
        while !Task.isCancelled {
            try? await Task.sleep(until: start.advanced(by: .seconds(tick)), tolerance: nil, clock: .continuous)
            if Task.isCancelled { break }
            var sample: ServerSample?
            if pollStatus {
                sample = await readStatus(time: Self.seconds(since: start))
                if let sample { recorder.appendSample(sample) } else { pollStatus = false }
            }
            if let progress {
                var line = recorder.progress()
                line.elapsed = tick
                line.server = sample
                progress(line)
            }
            tick += 1
        }
    }

    /// The model's configuration from `/dnnscaler/status`; nil when the server has none (another server).
    private func readStatus(time: Double) async -> ServerSample? {
        var request = HTTPClientRequest(url: "\(settings.baseURL)/dnnscaler/status")
        request.method = .GET
        guard let response = try? await client.execute(request, timeout: .seconds(2)), response.status == .ok,
            let body = try? await response.body.collect(upTo: 16 << 20),
            let document = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
            let models = document["models"] as? [[String: Any]],
            let model = models.first(where: { $0["name"] as? String == settings.model }),
            let configuration = model["configuration"] as? [String: Any],
            let batch = (configuration["batch_limit"] as? NSNumber)?.intValue,
            let instances = (configuration["instances"] as? NSNumber)?.intValue
        else { return nil }
        return ServerSample(
            time: time, batchLimit: batch, instances: instances,
            windowTailLatencyMs: (model["window_tail_latency_ms"] as? NSNumber)?.doubleValue)
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        (ContinuousClock.now - start).inMilliseconds / 1000
    }
}

/// Thread-safe storage of the records of a run.
final class Recorder: Sendable {
    private struct State {
        var records: [RequestRecord] = []
        var samples: [ServerSample] = []
        var succeeded = 0
        var failed = 0
        var reported = 0
    }
    private let state = Mutex(State())

    func append(_ record: RequestRecord) {
        state.withLock { state in
            state.records.append(record)
            if record.outcome == .ok { state.succeeded += 1 } else { state.failed += 1 }
        }
    }
    func appendSample(_ sample: ServerSample) { state.withLock { $0.samples.append(sample) } }
    func records() -> [RequestRecord] { state.withLock { $0.records } }
    func samples() -> [ServerSample] { state.withLock { $0.samples } }

    /// Totals so far and the figures of the answers recorded since the last call.
    func progress() -> BenchProgress {
        state.withLock { state in
            let recent = state.records[state.reported...].filter { $0.outcome == .ok }.map(\.latencyMs).sorted()
            state.reported = state.records.count
            return BenchProgress(
                elapsed: 0, answered: state.records.count, succeeded: state.succeeded, failed: state.failed,
                lastSecondThroughput: recent.count,
                lastSecondP99Ms: recent.isEmpty ? nil : LatencySummary.percentile(99, ofSorted: recent))
        }
    }
}
