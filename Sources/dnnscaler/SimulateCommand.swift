import ArgumentParser
import DNNScaler
import Foundation

struct SimulateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "simulate",
        abstract:
            "Simulate a policy against a profile in virtual time (the server's queue, batcher and instance pool).",
        discussion: """
            Runs the same policy code as the server against the latencies of a profile (from `dnnscaler profile
            --json`, or an imported GPU profile under profiles/gpu/), with open-loop (--rate) or closed-loop
            (--closed-loop) arrivals. Deterministic for a seed.
            """
    )

    @Option(help: "The profile (JSON from `dnnscaler profile --json`, or CSV).")
    var profile: String

    @Option(help: "dnnscaler, joint, clipper-aimd or static.")
    var policy: String = PolicyKind.dnnscaler.rawValue

    @Option(help: "Latency SLO in ms.")
    var sloMs: Double

    @Option(help: "The latency percentile the SLO is about.")
    var percentile = 99.0

    @Option(help: "Open-loop arrival rate (requests/s).")
    var rate: Double?

    @Option(help: "Arrival distribution for --rate: poisson or constant.")
    var distribution = "poisson"

    @Option(help: "Closed loop with this many clients.")
    var closedLoop: Int?

    @Option(help: "Requests to send.")
    var requests = 100_000

    @Option(help: "Random seed.")
    var seed: UInt64 = 1

    @Option(help: "Batch limit for --policy static.")
    var batchSize = 1

    @Option(help: "Instances for --policy static.")
    var instances = 1

    @Option(help: "The most instances a policy may use (default: the most the profile measured).")
    var maxInstances: Int?

    @Option(help: "The largest batch a policy may use.")
    var maxBatchSize = 127

    @Option(help: "Write the result as JSON to this file.")
    var json: String?

    @Option(help: "Write throughput, tail latency, batch limit and instances over virtual time as an SVG plot.")
    var plot: String?

    @Option(
        help: "Virtual seconds at the start not judged: latencies and attainment count the requests that arrive later.")
    var warmup = 0.0

    func validate() throws {
        guard PolicyKind(rawValue: policy) != nil else {
            throw ValidationError(
                "--policy must be one of \(PolicyKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard (rate == nil) != (closedLoop == nil) else {
            throw ValidationError("give exactly one of --rate R (open loop) or --closed-loop C")
        }
        if let rate, !(rate > 0 && rate.isFinite) { throw ValidationError("--rate must be positive") }
        if let closedLoop, closedLoop < 1 { throw ValidationError("--closed-loop must be at least 1") }
        guard distribution == "poisson" || distribution == "constant" else {
            throw ValidationError("--distribution must be poisson or constant")
        }
        guard sloMs > 0, requests > 0, percentile > 0, percentile <= 100 else {
            throw ValidationError("--slo-ms and --requests must be positive, --percentile in (0, 100]")
        }
        guard warmup >= 0, warmup.isFinite else { throw ValidationError("--warmup must be 0 or more seconds") }
    }

    func run() throws {
        let loaded = try Self.loadProfile(path: profile, sloMs: sloMs)
        let kind = PolicyKind(rawValue: policy) ?? .dnnscaler
        let context = PolicyContext(
            profile: loaded, maxBatch: maxBatchSize,
            maxInstances: maxInstances ?? loaded.points.map(\.instances).max() ?? 1, sloMs: sloMs,
            percentile: percentile)
        let scalingPolicy = PolicyFactory.make(
            kind, context: context, fixed: ServingConfiguration(batchLimit: batchSize, instances: instances))
        let arrivals: ArrivalProcess =
            if let closedLoop { .closedLoop(clients: closedLoop) } else if distribution == "constant" {
                .constant(rate: rate ?? 1)
            } else { .poisson(rate: rate ?? 1) }
        let capacity = CapacityEstimate(
            profile: loaded, maxBatch: context.maxBatch, maxInstances: context.maxInstances, sloMs: sloMs,
            percentile: percentile,
            fixed: kind == .static ? ServingConfiguration(batchLimit: batchSize, instances: instances) : nil)
        var simulator = Simulator(
            profile: loaded, policy: scalingPolicy,
            settings: SimulationSettings(
                sloMs: sloMs, percentile: percentile, arrivals: arrivals, requests: requests, seed: seed,
                measurementStartSeconds: warmup),
            capacity: capacity)
        let started = Date()
        let result = simulator.run()
        let wall = Date().timeIntervalSince(started)
        print(
            "simulated \(loaded.model) (\(loaded.device)), policy \(result.policy), SLO \(sloMs) ms p\(formatPercentile(percentile))"
        )
        print(
            String(
                format: "requests %d: completed %d, shed %d, virtual time %.1f s (%.2f s of wall time)", requests,
                result.completed, result.shed, result.durationSeconds, wall))
        if warmup > 0 {
            print(
                "judged after \(formatPercentile(warmup)) s: \(result.measuredRequests) requests, "
                    + "\(result.measuredCompleted) answered")
        }
        print(
            String(
                format:
                    "throughput %.1f/s; latency ms mean %.2f p50 %.2f p90 %.2f p95 %.2f p99 %.2f p99.9 %.2f; SLO attainment %.1f%%",
                result.throughput, result.meanMs, result.latencyMs.p50, result.p90Ms, result.latencyMs.p95,
                result.latencyMs.p99,
                result.p999Ms, result.sloAttainment * 100))
        print(
            "final configuration: \(result.finalConfiguration), \(result.configurationChanges) configuration changes")
        let used = result.series.filter { $0.time >= warmup }.compactMap(\.capacityUsed)
        if let rate = capacity.predictedRate, let configuration = capacity.predictedConfiguration, !used.isEmpty {
            print(
                String(
                    format: "capacity: %.1f/s predicted at %@; capacity used (median after the warm-up) %.2f", rate,
                    configuration.description, used.sorted()[used.count / 2]))
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(result).write(to: URL(fileURLWithPath: json))
            printError("wrote \(json)")
        }
        if let plot {
            let chart = result.timeSeriesChart(
                title: "\(loaded.model): \(result.policy), simulated",
                subtitle:
                    "dnnscaler simulate --policy \(policy) --slo-ms \(formatPercentile(sloMs)) "
                    + (rate.map { "--rate \(formatPercentile($0)) (\(distribution))" }
                        ?? "--closed-loop \(closedLoop ?? 1)")
                    + " --requests \(requests) --seed \(seed)"
                    + (warmup > 0 ? " --warmup \(formatPercentile(warmup))" : "") + "; profile \(loaded.device)",
                sloMs: sloMs, percentile: percentile)
            try chart.svg().write(toFile: plot, atomically: true, encoding: .utf8)
            printError("wrote \(plot)")
        }
    }

    static func loadProfile(path: String, sloMs: Double) throws -> Profile {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read profile \(path)")
        }
        if path.hasSuffix(".csv") {
            return try Profile(csvText: String(decoding: data, as: UTF8.self), sloMs: sloMs)
        }
        return try Profile(jsonData: data)
    }
}
