import DNNScaler
import Foundation

/// Section (b) of the evaluation: capacities measured with the real server by `bench.capacity`
/// (`dnnscaler bench --sweep` against the real server), read from its JSON files.
struct MeasuredEvaluation {
    /// One model's measurements.
    struct ModelRun {
        var model: String
        var sloMs: Double
        var percentile: Double
        var date: String
        var command: String
        /// Configuration name -> sustained rate per round.
        var runs: [String: [Double]]
        /// Configuration name -> the server's configuration at the end of each round.
        var finals: [String: [String]]
        /// Policy name -> the Profiler's mode the server reported, per round (newer files only).
        var profileModes: [String: [String]]

        func median(_ name: String) -> Double? {
            guard let values = runs[name], !values.isEmpty else { return nil }
            let sorted = values.sorted()
            let middle = sorted.count / 2
            return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
        }

        var staticNames: [String] { runs.keys.filter { $0.hasPrefix("static") }.sorted() }

        var bestStatic: (name: String, rate: Double)? {
            staticNames.compactMap { name in median(name).map { (name, $0) } }.max { $0.1 < $1.1 }
        }
    }

    var models: [ModelRun]
    /// The CPUs of the machine the measurements ran on (from the files), when they say.
    var cpus: Int?

    /// Reads the JSON files `bench.capacity --json` wrote; missing files are skipped.
    init(paths: [String]) throws {
        var models: [ModelRun] = []
        var cpus: Int?
        for path in paths {
            guard let data = FileManager.default.contents(atPath: path) else { continue }
            guard let document = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                let entries = document["models"] as? [String: Any]
            else { throw EvaluationInputError(path: path, problem: "not a bench.capacity result") }
            cpus = cpus ?? (document["cpus"] as? NSNumber)?.intValue
            let arguments = document["args"] as? [String: Any] ?? [:]
            let command = Self.commandLine(arguments)
            for (model, value) in entries.sorted(by: { $0.key < $1.key }) {
                guard let entry = value as? [String: Any], let slo = (entry["slo_ms"] as? NSNumber)?.doubleValue,
                    let runs = entry["runs"] as? [String: [Double]]
                else { throw EvaluationInputError(path: path, problem: "model \(model) lacks slo_ms or runs") }
                models.append(
                    ModelRun(
                        model: model, sloMs: slo,
                        percentile: (arguments["percentile"] as? NSNumber)?.doubleValue ?? 99,
                        date: document["date"] as? String ?? "?", command: command, runs: runs,
                        finals: entry["final_configurations"] as? [String: [String]] ?? [:],
                        profileModes: entry["profile_modes"] as? [String: [String]] ?? [:]))
            }
        }
        self.models = models
        self.cpus = cpus
    }

    static func commandLine(_ arguments: [String: Any]) -> String {
        var parts = [".venv/bin/python -m bench.capacity"]
        for key in [
            "models", "slo_ms", "policies", "statics", "repeats", "duration", "warmup", "start_rate", "refine",
            "min_requests",
        ] {
            guard let value = arguments[key], !(value is NSNull) else { continue }
            parts.append("--\(key.replacingOccurrences(of: "_", with: "-")) \(value)")
        }
        return parts.joined(separator: " ")
    }

    static let policyNames = [
        PolicyKind.clipperAIMD.rawValue, PolicyKind.dnnscaler.rawValue, PolicyKind.joint.rawValue,
    ]

    /// The Markdown lines of section (b), linking `plotFile` when given.
    func markdown(plotLink: String?) -> [String] {
        let machine = cpus.map { "a machine with \($0) CPU core\($0 == 1 ? "" : "s")" } ?? "the machine that ran them"
        guard !models.isEmpty else {
            return [
                "No measured results yet: run `python3 -m bench.capacity --json docs/data/measured-<model>.json` and",
                "then `dnnscaler evaluate --measured ...`.", "",
            ]
        }
        var lines = [
            "Capacity at the SLO measured on \(machine) (CPU, ONNX Runtime), **measured**: the highest",
            "open-loop Poisson rate at which the p-th percentile latency over *all* requests (shed and failed ones",
            "counted as misses, latency from the scheduled send time) stays within the SLO, found by `dnnscaler bench",
            "--sweep` against a fresh `dnnscaler serve` per configuration and round; median over the rounds. The load",
            "generator runs on the same cores as the server.", "",
        ]
        for run in models {
            let best = run.bestStatic
            lines += [
                "### \(run.model), SLO \(EvaluateCommand.number(run.sloMs)) ms p\(EvaluateCommand.number(run.percentile)), measured \(run.date)",
                "", "`\(run.command)`", "",
                "| configuration | sustained requests/s (median) | rounds | server ends at | Profiler's mode | vs clipper-aimd | vs best static |",
                "|---|---|---|---|---|---|---|",
            ]
            let names = Self.policyNames.filter { run.runs[$0] != nil } + run.staticNames
            let clipper = run.median(PolicyKind.clipperAIMD.rawValue)
            for name in names {
                let value = run.median(name)
                let rounds = (run.runs[name] ?? []).map { EvaluateCommand.number($0) }.joined(separator: ", ")
                let finals = (run.finals[name] ?? []).joined(separator: ", ")
                let modes = Set(run.profileModes[name] ?? []).sorted().joined(separator: ", ")
                let versusClipper =
                    name.hasPrefix("static") ? "" : EvaluateCommand.gainText(value, baseline: clipper)
                let versusBest = name.hasPrefix("static") ? "" : EvaluateCommand.gainText(value, baseline: best?.rate)
                lines.append(
                    "| \(name) | \(value.map(EvaluateCommand.number) ?? "-") | \(rounds) | \(finals) | "
                        + "\(modes.isEmpty ? "-" : modes) | \(versusClipper) | \(versusBest) |")
            }
            lines.append("")
            if let dnnscaler = run.median(PolicyKind.dnnscaler.rawValue),
                let joint = run.median(PolicyKind.joint.rawValue)
            {
                let purest = max(dnnscaler, clipper ?? 0)
                lines.append(
                    "- joint / better of dnnscaler and clipper-aimd: "
                        + (purest > 0 ? String(format: "%.2f", joint / purest) : "-")
                        + (best.map { String(format: "; joint / best static (%@): %.2f", $0.name, joint / $0.rate) }
                            ?? "")
                        + (best.map { String(format: "; dnnscaler / best static: %.2f", dnnscaler / $0.rate) } ?? ""))
                lines.append("")
            }
        }
        if let plotLink { lines += ["![measured capacity](\(plotLink))", ""] }
        lines += [
            "How to read these: each figure is one sweep; on \(machine) that also runs the load generator, the same",
            "static configuration measures very differently from run to run near an SLO that sits at the noise floor",
            "of per-request latency (squeezenet at 20 ms), so compare within a model and mind the rounds column.",
            "[bench/README.md](../bench/README.md) says how to rerun them, measure the serving overhead, and cross-check",
            "the simulator against the server (`python3 -m bench.sim_vs_real`).",
            "",
        ]
        return lines
    }

    /// A grouped bar chart: per model, each policy's and the best static configuration's capacity.
    func chart() -> BarChart {
        let categories = models.map { "\($0.model) \(EvaluateCommand.number($0.sloMs)) ms" }
        var series: [(name: String, values: [Double?])] = Self.policyNames.map { name in
            (name: name, values: models.map { $0.median(name) })
        }
        series.append((name: "best static", values: models.map { $0.bestStatic?.rate }))
        return BarChart(
            title: "Throughput sustained within the SLO, measured",
            subtitle: "dnnscaler bench --sweep against dnnscaler serve, 2-core CPU; medians over rounds",
            yLabel: "requests/s", categories: categories, series: series, width: 900)
    }
}

/// A measured-results file that cannot be read.
struct EvaluationInputError: Error, CustomStringConvertible {
    var path: String
    var problem: String
    var description: String { "\(path): \(problem)" }
}
