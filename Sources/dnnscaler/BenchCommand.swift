import ArgumentParser
import DNNScaler
import DNNScalerBench
import Foundation

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract:
            "Load a KServe v2 / Triton HTTP server and report throughput, latency percentiles and SLO attainment.",
        discussion: """
            Open loop (--rate) sends at scheduled times whatever the server does and counts latency from the
            scheduled time, so stalls are not hidden (no coordinated omission); closed loop (--concurrency) keeps C
            requests in flight. Keep-alive connections, binary tensors by default. Against a DNNScaler server it
            also records the batch size and instance count each second. --sweep finds the highest open-loop rate
            whose p-th percentile latency, over all requests with failures counted as misses, stays within --slo-ms.
            """
    )

    @Option(help: "The server's base URL.")
    var url = "http://127.0.0.1:8000"

    @Option(help: "The model to load.")
    var model: String

    @Option(help: "Open-loop rate in requests/s (the sweep's first rate with --sweep).")
    var rate: Double?

    @Option(help: "Closed loop with this many requests in flight.")
    var concurrency: Int?

    @Option(help: "Open-loop arrivals: poisson or constant.")
    var distribution = ArrivalDistribution.poisson.rawValue

    @Option(help: "Seconds of measured load (per trial with --sweep).")
    var duration = 10.0

    @Option(help: "Seconds of load before measuring (per trial with --sweep).")
    var warmup = 0.0

    @Option(help: "The latency SLO in ms (attainment; required by --sweep).")
    var sloMs: Double?

    @Option(help: "The percentile the SLO is about.")
    var percentile = 99.0

    @Option(help: "Samples per request (the batch dimension of each input).")
    var batchSize = 1

    @Option(help: "Tensor encoding: binary or json.")
    var tensorFormat = TensorFormat.binary.rawValue

    @Option(help: "Keep-alive connections the client may open.")
    var maxConnections = 64

    @Option(help: "Seconds before a request counts as timed out.")
    var timeout = 30.0

    @Option(help: "Seed of the arrival schedule and input data.")
    var seed: UInt64 = 1

    @Flag(help: "Find the highest rate sustained at --slo-ms (open loop, starting at --rate).")
    var sweep = false

    @Option(help: "Bisection steps of --sweep after the bracket is found.")
    var sweepSteps = 4

    @Option(help: "With --sweep, each rate runs long enough to measure at least this many requests (up to 120 s).")
    var sweepMinRequests = 500

    @Option(
        help:
            "With --sweep, the most times the rate is doubled (or halved, when the first rate misses) to find the bracket; each halving also doubles a trial's length under --sweep-min-requests."
    )
    var sweepBracketSteps = 8

    @Option(help: "Write the result (summary, per-second series; sweep trials) as JSON here.")
    var json: String?

    @Option(help: "Write the per-second series as CSV here.")
    var csv: String?

    @Option(help: "Draw throughput, p99 against the SLO, and the server's batch limit and instances over time (SVG).")
    var plot: String?

    @Flag(help: "No progress lines.")
    var quiet = false

    func validate() throws {
        guard ArrivalDistribution(rawValue: distribution) != nil else {
            throw ValidationError("--distribution must be poisson or constant")
        }
        guard TensorFormat(rawValue: tensorFormat) != nil else {
            throw ValidationError("--tensor-format must be binary or json")
        }
        if sweep {
            guard rate != nil, sloMs != nil else {
                throw ValidationError("--sweep needs --rate (first rate) and --slo-ms")
            }
            guard concurrency == nil else { throw ValidationError("--sweep is open loop: drop --concurrency") }
        } else {
            guard (rate == nil) != (concurrency == nil) else {
                throw ValidationError("give either --rate (open loop) or --concurrency (closed loop)")
            }
        }
        if let rate, !(rate > 0) { throw ValidationError("--rate must be positive") }
        if let concurrency, concurrency < 1 { throw ValidationError("--concurrency must be at least 1") }
        guard duration > 0, warmup >= 0 else { throw ValidationError("--duration must be positive, --warmup >= 0") }
        guard sweepMinRequests >= 0 else { throw ValidationError("--sweep-min-requests must be >= 0") }
        guard sweepBracketSteps >= 1 else { throw ValidationError("--sweep-bracket-steps must be at least 1") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        guard maxConnections >= 1 else { throw ValidationError("--max-connections must be at least 1") }
        guard percentile > 0, percentile < 100 else { throw ValidationError("--percentile must be in (0, 100)") }
        if let sloMs, !(sloMs > 0) { throw ValidationError("--slo-ms must be positive") }
    }

    func run() async throws {
        let arrivals = ArrivalDistribution(rawValue: distribution) ?? .poisson
        let shape: LoadShape =
            if let concurrency { .closedLoop(concurrency: concurrency) } else {
                .openLoop(rate: rate ?? 1, distribution: arrivals)
            }
        let settings = BenchSettings(
            url: url, model: model, shape: shape, durationSeconds: duration, warmupSeconds: warmup, sloMs: sloMs,
            percentile: percentile, batchSize: batchSize, tensorFormat: TensorFormat(rawValue: tensorFormat) ?? .binary,
            maxConnections: maxConnections, seed: seed, requestTimeoutSeconds: timeout)
        let client = LoadGenerator.makeClient(for: settings)
        var progress: (@Sendable (BenchProgress) -> Void)?
        if !quiet {
            progress = { (line: BenchProgress) in FileHandle.standardError.write(Data((line.line + "\n").utf8)) }
        }
        do {
            if sweep {
                let rateSweep = RateSweep(
                    settings: settings, startRate: rate ?? 1, refineSteps: sweepSteps,
                    maxBracketSteps: sweepBracketSteps, minRequests: sweepMinRequests)
                // Written unbuffered: a sweep's stdout is often a file or pipe that a time limit may cut short.
                let report: @Sendable (SweepTrial) -> Void = { trial in
                    FileHandle.standardOutput.write(Data((Self.trialLine(trial) + "\n").utf8))
                }
                let result = try await rateSweep.run(client: client, progress: progress, trial: report)
                print(
                    String(
                        format: "sustained rate at p%g <= %g ms: %.1f requests/s", percentile, sloMs ?? 0,
                        result.sustainedRate))
                if let best = result.best { try write(best, sweep: result) } else { try write(nil, sweep: result) }
            } else {
                let result = try await LoadGenerator(settings: settings, client: client).run(progress: progress)
                print(Self.report(result, percentile: percentile))
                try write(result, sweep: nil)
            }
        } catch {
            try? await client.shutdown()
            if let error = error as? BenchError { throw ValidationError(error.description) }
            throw error
        }
        try await client.shutdown()
    }

    private func write(_ result: BenchResult?, sweep: SweepResult?) throws {
        if let json {
            let data = try sweep?.jsonData() ?? result?.jsonData() ?? Data()
            try data.write(to: URL(fileURLWithPath: json))
        }
        if let csv, let result {
            try result.seriesCSV().write(toFile: csv, atomically: true, encoding: .utf8)
        }
        if let plot, let result {
            let load =
                result.rate.map { String(format: "open loop %.1f requests/s %@", $0, result.distribution ?? "") }
                ?? "closed loop, concurrency \(result.concurrency ?? 0)"
            let chart = result.timeSeriesChart(
                title: "\(result.model): measured with dnnscaler bench", subtitle: "\(load) against \(result.url)",
                sloMs: result.summary.sloMs)
            try chart.svg().write(toFile: plot, atomically: true, encoding: .utf8)
        }
    }

    static func trialLine(_ trial: SweepTrial) -> String {
        let summary = trial.summary
        return String(
            format: "rate %8.1f/s  %@  throughput %8.1f/s  p99 %8.2f ms  attainment %6.2f%%  failed %d",
            trial.rate, trial.sustained ? "sustained" : "missed   ", summary.throughput, summary.p99Ms ?? .nan,
            (summary.sloAttainment ?? 0) * 100, summary.requests - summary.succeeded)
    }

    static func report(_ result: BenchResult, percentile: Double) -> String {
        let summary = result.summary
        func ms(_ value: Double?) -> String { value.map { String(format: "%.2f ms", $0) } ?? "-" }
        var lines = [
            "\(result.model) at \(result.url), \(result.loop) loop"
                + (result.rate.map { String(format: ", %.1f requests/s %@", $0, result.distribution ?? "") } ?? "")
                + (result.concurrency.map { ", concurrency \($0)" } ?? "")
                + String(format: ", %.0f s measured", result.durationSeconds),
            String(
                format: "requests %d  succeeded %d  throughput %.1f requests/s (%.1f samples/s)", summary.requests,
                summary.succeeded, summary.throughput, summary.samplesPerSecond),
            "latency  p50 \(ms(summary.p50Ms))  p90 \(ms(summary.p90Ms))  p95 \(ms(summary.p95Ms))  "
                + "p99 \(ms(summary.p99Ms))  p99.9 \(ms(summary.p999Ms))  max \(ms(summary.maxMs))",
        ]
        if let slo = summary.sloMs, let attainment = summary.sloAttainment {
            lines.append(
                String(format: "SLO %g ms: attainment %.2f%%, ", slo, attainment * 100)
                    + "p\(String(format: "%g", percentile)) over all requests "
                    + "\(ms(summary.tailOverAllMs)) -> \((summary.sloMet ?? false) ? "met" : "missed")")
        }
        let errors = summary.errors.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
        lines.append("errors   " + (errors.isEmpty ? "none" : errors.joined(separator: "  ")))
        lines.append(
            String(
                format: "send lag p99 %.2f ms (how late the generator sent against its schedule)",
                summary.sendLagP99Ms))
        return lines.joined(separator: "\n")
    }
}
