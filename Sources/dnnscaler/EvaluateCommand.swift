import ArgumentParser
import DNNScaler
import Foundation

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Reproduce the paper's comparison in simulation over the imported GPU profiles.",
        discussion: """
            For every job (SLO) recorded in the profiles under --gpu-profiles: the highest open-loop Poisson rate
            that clipper-aimd, dnnscaler and joint sustain with the SLO statistic within the SLO (bisection, fixed
            seed), DNNScaler's mode against the authors', and the gain over Clipper against the paper's claim.
            Writes a Markdown report and SVG plots.
            """
    )

    @Option(help: "The folder of imported GPU profiles (dnnscaler import-gpu-profiles).")
    var gpuProfiles = "profiles/gpu"

    @Option(help: "The Markdown report to write.")
    var output = "docs/evaluation.md"

    @Option(help: "The folder for the SVG plots (relative links are written from the report's folder).")
    var plots = "docs/plots"

    @Option(help: "A previous report to list what moved against (default: the report --output replaces).")
    var previous: String?

    @Option(help: "Virtual seconds per probe.")
    var duration = 120.0

    @Option(help: "Virtual seconds of each probe not judged (policies converging).")
    var warmup = 40.0

    @Option(help: "Runs are made longer where needed to judge at least this many requests after the warm-up.")
    var minimumJudged = 1000

    @Option(help: "Bisection steps per search.")
    var iterations = 9

    @Option(help: "Random seed of every probe's first run.")
    var seed: UInt64 = 1

    @Option(help: "Runs per probe, seeds --seed, --seed + 1, ...; judged on their requests pooled.")
    var seeds = 3

    @Option(help: "The job whose runs are drawn over time (model and dataset, as in the profile's name).")
    var exampleJob = "InceptionV1 (ImageNet)"

    @Option(
        help:
            "JSON results of bench.capacity (real server, measured) for section (b); repeatable, missing files skipped."
    )
    var measured: [String] = ["docs/data/measured-squeezenet.json", "docs/data/measured-resnet50.json"]

    static let policies: [PolicyKind] = [.clipperAIMD, .dnnscaler, .joint]

    struct Job {
        var name: String
        var profile: Profile
        var source: SourceJob
        var batchingPath: Profile?
    }

    struct Row {
        var job: Job
        var capacity: [PolicyKind: Double]
        var clipperBatchingPath: Double?
        var results: [PolicyKind: SimulationResult]
    }

    func run() throws {
        let started = Date()
        let jobs = try loadJobs()
        guard !jobs.isEmpty else { throw ValidationError("no profiles with jobs under \(gpuProfiles)") }
        try FileManager.default.createDirectory(atPath: plots, withIntermediateDirectories: true)
        var tables: [SLOStatistic: [Row]] = [:]
        for statistic in SLOStatistic.allCases {
            var rows: [Row] = []
            for job in jobs {
                var capacity: [PolicyKind: Double] = [:]
                var results: [PolicyKind: SimulationResult] = [:]
                for policy in Self.policies {
                    let outcome = search(job.profile, policy: policy, sloMs: job.source.sloMs, statistic).run()
                    capacity[policy] = outcome.rate
                    results[policy] = outcome.result
                }
                let faithful = job.batchingPath.map {
                    search($0, policy: .clipperAIMD, sloMs: job.source.sloMs, statistic).run().rate
                }
                rows.append(Row(job: job, capacity: capacity, clipperBatchingPath: faithful, results: results))
                printError(
                    "\(statistic.rawValue) \(job.name) SLO \(Self.number(job.source.sloMs)) ms: "
                        + Self.policies.map { "\($0.rawValue) \(Self.number(capacity[$0] ?? 0))/s" }.joined(
                            separator: ", "))
            }
            tables[statistic] = rows
        }
        let measuredRuns = try MeasuredEvaluation(paths: measured)
        let plotFiles = try writePlots(tables: tables, jobs: jobs, measured: measuredRuns)
        var report = markdown(
            tables: tables, plotFiles: plotFiles, measuredRuns: measuredRuns,
            wallSeconds: Date().timeIntervalSince(started))
        let previousReport = try? String(contentsOfFile: previous ?? output, encoding: .utf8)
        let moved = ReportComparison.section(previous: previousReport, current: report)
        if let measuredPart = report.range(of: "\n## (b)") {
            report.insert(contentsOf: "\n" + moved, at: measuredPart.lowerBound)
        } else {
            report += "\n" + moved
        }
        try report.write(toFile: output, atomically: true, encoding: .utf8)
        printError("wrote \(output) and \(plotFiles.count) plots in \(plots)")
    }

    func search(_ profile: Profile, policy: PolicyKind, sloMs: Double, _ statistic: SLOStatistic) -> CapacitySearch {
        CapacitySearch(
            profile: profile, policy: policy, sloMs: sloMs, statistic: statistic, durationSeconds: duration,
            warmupSeconds: warmup, seed: seed, seeds: seeds,
            minimumJudgedRequests: minimumJudged, iterations: iterations)
    }

    func loadJobs() throws -> [Job] {
        let files = try FileManager.default.contentsOfDirectory(atPath: gpuProfiles).filter { $0.hasSuffix(".json") }
            .sorted()
        var jobs: [Job] = []
        for file in files {
            let path = (gpuProfiles as NSString).appendingPathComponent(file)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw ValidationError("cannot read \(path)")
            }
            let profile = try Profile(jsonData: data)
            for source in profile.source?.jobs ?? [] {
                jobs.append(
                    Job(
                        name: profile.model, profile: profile, source: source,
                        batchingPath: GPUProfileImporter.batchingPathOnly(profile)))
            }
        }
        // The authors' order: batching jobs, then multi-tenancy jobs, each by name and SLO.
        return jobs.sorted {
            ($0.source.modeAssigned?.rawValue ?? "", $0.name, $0.source.sloMs)
                < ($1.source.modeAssigned?.rawValue ?? "", $1.name, $1.source.sloMs)
        }
    }

    static func label(_ job: Job) -> String { "\(job.name) \(number(job.source.sloMs)) ms" }

    func writePlots(tables: [SLOStatistic: [Row]], jobs: [Job], measured: MeasuredEvaluation) throws -> [String: String]
    {
        var files: [String: String] = [:]
        func write(_ key: String, _ name: String, _ svg: String) throws {
            let path = (plots as NSString).appendingPathComponent(name)
            try svg.write(toFile: path, atomically: true, encoding: .utf8)
            files[key] = name
        }
        for (statistic, rows) in tables {
            let chart = BarChart(
                title: "Throughput sustained within the SLO (\(statistic.rawValue)), simulated",
                subtitle: "GPU profiles from the DNNScaler/BatchDVFS artifacts; \(commandLine)",
                yLabel: "requests/s", categories: rows.map { Self.label($0.job) },
                series: Self.policies.map { policy in
                    (name: policy.rawValue, values: rows.map { $0.capacity[policy] })
                } + [(name: "clipper-aimd, batching path", values: rows.map(\.clipperBatchingPath))],
                width: 1300)
            try write("capacity-\(statistic.rawValue)", "capacity-\(statistic.rawValue).svg", chart.svg())
            let gains = BarChart(
                title: "Gain over clipper-aimd (\(statistic.rawValue)), simulated",
                subtitle: "capacity ratio; jobs where the baseline sustains no rate are left out; \(commandLine)",
                yLabel: "x clipper-aimd", categories: rows.map { Self.label($0.job) },
                series: [
                    (
                        name: "dnnscaler",
                        values: rows.map { Self.ratio($0.capacity[.dnnscaler], $0.capacity[.clipperAIMD]) }
                    ),
                    (name: "joint", values: rows.map { Self.ratio($0.capacity[.joint], $0.capacity[.clipperAIMD]) }),
                    (
                        name: "dnnscaler vs clipper on batching path",
                        values: rows.map { Self.ratio($0.capacity[.dnnscaler], $0.clipperBatchingPath) }
                    ),
                ], width: 1300)
            try write("gain-\(statistic.rawValue)", "gain-\(statistic.rawValue).svg", gains.svg())
        }
        if let example = tables[.p99]?.first(where: { $0.job.name == exampleJob }) {
            let rate = example.capacity[.dnnscaler] ?? 0
            for policy in Self.policies where rate > 0 {
                var probe = search(example.job.profile, policy: policy, sloMs: example.job.source.sloMs, .p99)
                probe.warmupSeconds = 0
                let result = probe.probe(rate: rate)
                let chart = result.timeSeriesChart(
                    title: "\(example.job.name): \(policy.rawValue) at \(Self.number(rate)) requests/s, simulated",
                    subtitle:
                        "Poisson arrivals at dnnscaler's p99 capacity, SLO \(Self.number(example.job.source.sloMs)) ms p99, seed \(seed); \(commandLine)",
                    sloMs: example.job.source.sloMs, percentile: 99)
                try write("example-\(policy.rawValue)", "example-\(policy.rawValue).svg", chart.svg())
            }
        }
        if !measured.models.isEmpty {
            try write("measured", "measured-capacity.svg", measured.chart().svg())
        }
        return files
    }

    var commandLine: String {
        "dnnscaler evaluate --gpu-profiles \(gpuProfiles) --duration \(Self.number(duration)) --warmup \(Self.number(warmup)) --iterations \(iterations) --minimum-judged \(minimumJudged) --seed \(seed) --seeds \(seeds)"
    }

    static func ratio(_ numerator: Double?, _ denominator: Double?) -> Double? {
        guard let numerator, let denominator, denominator > 0 else { return nil }
        return numerator / denominator
    }

    static func number(_ value: Double) -> String {
        value >= 100 || value == value.rounded() ? String(Int(value.rounded())) : String(format: "%.1f", value)
    }

    static func gainText(_ value: Double?, baseline: Double?) -> String {
        guard let baseline else { return "-" }
        guard let value, baseline > 0 else { return baseline == 0 && (value ?? 0) > 0 ? "inf" : "-" }
        return String(format: "%.2fx", value / baseline)
    }

    func markdown(
        tables: [SLOStatistic: [Row]], plotFiles: [String: String], measuredRuns: MeasuredEvaluation,
        wallSeconds: Double
    ) -> String {
        let plotPrefix: String = {
            let outputFolder = URL(fileURLWithPath: output).deletingLastPathComponent().standardizedFileURL.path
            let plotFolder = URL(fileURLWithPath: plots).standardizedFileURL.path
            return plotFolder.hasPrefix(outputFolder + "/")
                ? String(plotFolder.dropFirst(outputFolder.count + 1)) : plotFolder
        }()
        var lines = introduction(wallSeconds: wallSeconds)
        for statistic in SLOStatistic.allCases {
            guard let rows = tables[statistic] else { continue }
            lines += capacityTable(statistic: statistic, rows: rows, plotFiles: plotFiles, plotPrefix: plotPrefix)
        }
        let examples = Self.policies.compactMap { plotFiles["example-\($0.rawValue)"] }
        if !examples.isEmpty {
            lines += [
                "### One job over time, simulated", "",
                "\(exampleJob), each policy at dnnscaler's p99 capacity, whole run (warm-up included):", "",
            ]
            lines += examples.map { "![\($0), simulated](\(plotPrefix)/\($0))" } + [""]
        }
        lines += [
            "## (b) Measured with the real server", "",
        ]
        lines += measuredRuns.markdown(plotLink: plotFiles["measured"].map { "\(plotPrefix)/\($0)" })
        return lines.joined(separator: "\n")
    }

    /// The report's title, the command that made it, and section (a)'s method.
    func introduction(wallSeconds: Double) -> [String] {
        [
            "# Evaluation: DNNScaler against Clipper-style AIMD",
            "",
            "Made by `\(commandLine) --output \(output) --plots \(plots)` (or `make evaluation`);",
            "\(Int(wallSeconds.rounded())) s of wall time on the machine that ran it. Do not edit by hand: rerun.",
            "",
            "## (a) Simulated on the GPU profiles",
            "",
            "**Every figure in this section is simulated**: the project's discrete-event simulator runs the",
            "server's policy code in virtual time against latency profiles imported from the DNNScaler and",
            "BatchDVFS artifacts (`profiles/gpu`, see its README for the source commits and caveats). Nothing",
            "here was measured on a GPU by this project.",
            "",
            "**Method.** For each job in the source's `slo.csv` (a model, a dataset and an SLO) and each policy,",
            "a bisection over the open-loop Poisson arrival rate (\(iterations) steps from 1.5 x the profile's best",
            "throughput) finds the highest rate the policy *sustains*: each probe is \(seeds) run(s) (seeds \(seed)..\(seed + UInt64(max(1, seeds)) - 1)) of",
            "\(Self.number(duration)) s of virtual time (longer where needed to judge at least \(minimumJudged) requests), judged on",
            "the requests that arrive after the first \(Self.number(warmup)) s (the policy converging), pooled over",
            "the runs: one seed's arrivals decide a rate near a policy's knee by chance. Requests carry the SLO as their deadline; the simulated",
            "server sheds what cannot make it, as the real one does. Policies get at most the instance counts the",
            "profile measured (10 with multi-tenancy data, else 1) and batches up to 127.",
            "",
            "**SLO statistic.** The source's SLOs were written for a *mean*: per-batch service time over a 3 s",
            "window (batching jobs) or per-request latency of one instance (multi-tenancy jobs), closed loop, no",
            "queue. This project's SLOs are about per-request latency from arrival to response, queueing included.",
            "Both are reported:",
            "- **p99** (our definition, the headline): at least 99% of the requests sent are answered within the",
            "  SLO (shed requests count as misses); policies steer by p99.",
            "- **mean** (closer to the paper's): the mean per-request latency of answered requests is within the",
            "  SLO and at most 1% are shed; policies steer by p50 (the nearest statistic they steer by).",
            "Queueing is still included in both, so neither equals the paper's closed-loop service-time statistic.",
            "",
            "**Clipper on the batching path.** The authors' two tables are different software paths (see",
            "`profiles/gpu/README.md`): batch 1 costs 53 ms on the batching path but 10 ms in the multi-tenancy",
            "path for InceptionV2 ImageNet. Our profiles give every policy the faster path at 1 instance x batch 1.",
            "The paper's Clipper baseline ran the batching scripts only; the column *clipper (batching path)* runs",
            "clipper-aimd on the batching-path points alone (batch 1 extrapolated from the smallest measured batch",
            "sizes where it was not measured), which is how the paper's comparison was set up.",
            "",
        ]
    }

    /// One SLO statistic's table of simulated capacities, its summary and its plots.
    func capacityTable(
        statistic: SLOStatistic, rows: [Row], plotFiles: [String: String], plotPrefix: String
    ) -> [String] {
        var lines = [
            "### Throughput sustained within the SLO (\(statistic.rawValue)), simulated", "",
            "requests/s; *modes*: the authors' assignment (`slo.csv`) and what our Profiler picks from the profile",
            "(gains of batching / multi-tenancy over 1 instance x batch 1; `tie` = no data to decide).", "",
            "| job | SLO ms | authors' mode | Profiler's mode (gains) | clipper-aimd | clipper (batching path) | dnnscaler | joint | dnnscaler / clipper | dnnscaler / clipper (batching path) | joint vs best pure |",
            "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        lines += rows.map(Self.tableRow)
        lines.append("")
        lines += summary(rows: rows, statistic: statistic)
        for key in ["capacity-\(statistic.rawValue)", "gain-\(statistic.rawValue)"] {
            if let file = plotFiles[key] { lines += ["![\(key), simulated](\(plotPrefix)/\(file))", ""] }
        }
        return lines
    }

    /// One job's row: its modes, each policy's capacity and the gains.
    static func tableRow(_ row: Row) -> String {
        let decision = row.job.profile.decision
        let tie = decision.batchingGain == decision.multiTenancyGain
        let picked =
            "\(tie ? "tie" : decision.mode.rawValue) (\(String(format: "%.2f", decision.batchingGain)) / \(String(format: "%.2f", decision.multiTenancyGain)))"
        let clipper = row.capacity[.clipperAIMD] ?? 0
        let dnnscaler = row.capacity[.dnnscaler] ?? 0
        let joint = row.capacity[.joint] ?? 0
        let bestPure = max(clipper, dnnscaler)
        let jointText =
            joint >= 0.98 * bestPure
            ? "ok" : "**worse: \(String(format: "%.0f%%", 100 * (joint / max(1e-9, bestPure) - 1)))**"
        return
            "| \(row.job.name) | \(Self.number(row.job.source.sloMs)) | \(row.job.source.modeAssigned?.rawValue ?? "-") | \(picked) | \(Self.number(clipper)) | \(row.clipperBatchingPath.map(Self.number) ?? "-") | \(Self.number(dnnscaler)) | \(Self.number(joint)) | \(Self.gainText(dnnscaler, baseline: clipper)) | \(Self.gainText(dnnscaler, baseline: row.clipperBatchingPath)) | \(jointText) |"
    }

    func summary(rows: [Row], statistic: SLOStatistic) -> [String] {
        func gains(_ baseline: (Row) -> Double?) -> (ratios: [Double], infinite: Int) {
            var ratios: [Double] = []
            var infinite = 0
            for row in rows where !row.job.name.hasPrefix("DeePVS") {  // the paper has no Clipper run for DeePVS
                guard let base = baseline(row) else { continue }
                let value = row.capacity[.dnnscaler] ?? 0
                if base > 0 { ratios.append(value / base) } else if value > 0 { infinite += 1 }
            }
            return (ratios, infinite)
        }
        func describe(_ name: String, _ gain: (ratios: [Double], infinite: Int)) -> String {
            guard !gain.ratios.isEmpty else { return "- \(name): no job where both sustain a rate." }
            let mean = gain.ratios.reduce(0, +) / Double(gain.ratios.count)
            let better = gain.ratios.filter { $0 > 1.02 }.count
            let worse = gain.ratios.filter { $0 < 0.98 }.count
            return
                "- \(name): over \(gain.ratios.count) jobs, dnnscaler/clipper is \(String(format: "%.2f", gain.ratios.min() ?? 0))x to "
                + "\(String(format: "%.2f", gain.ratios.max() ?? 0))x, mean \(String(format: "%.2f", mean))x "
                + "(+\(String(format: "%.0f", 100 * (mean - 1)))%); dnnscaler higher on \(better), lower on \(worse)"
                + (gain.infinite > 0
                    ? "; on \(gain.infinite) more the baseline sustains no rate at all and dnnscaler does" : "")
                + "."
        }
        let agree = rows.filter { row in
            let decision = row.job.profile.decision
            return decision.batchingGain != decision.multiTenancyGain && row.job.source.modeAssigned == decision.mode
        }.count
        let jointWorse = rows.filter { row in
            (row.capacity[.joint] ?? 0) < 0.98 * max(row.capacity[.clipperAIMD] ?? 0, row.capacity[.dnnscaler] ?? 0)
        }.map(\.job.name)
        return [
            "Summary (\(statistic.rawValue), simulated). The paper claims up to 14x and 218% on average over Clipper:",
            describe("against clipper-aimd on our profiles", gains { $0.capacity[.clipperAIMD] }),
            describe("against clipper-aimd on the batching path only", gains(\.clipperBatchingPath)),
            "- The Profiler's mode matches the authors' on \(agree) of \(rows.count) jobs (ties count as no match).",
            jointWorse.isEmpty
                ? "- joint sustains at least 98% of the better pure policy on every job."
                : "- joint sustains less than 98% of the better pure policy on: \(jointWorse.joined(separator: ", ")).",
            "",
        ]
    }
}
