import ArgumentParser
import DNNScaler
import Foundation

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract:
            "Measure a model's throughput and latency over (instances x batch size) and decide batching vs multi-tenancy.",
        discussion: """
            Runs the model in process, one configuration after another: k instances (ONNX Runtime sessions),
            each with cores/k intra-op threads unless --threads says otherwise, each driven in a closed loop
            by its own thread at batch size b. Prints a table, the throughput gain of batching and of
            multi-tenancy over 1 instance at batch 1, the chosen mode and, with --slo-ms, the best
            configuration whose per-batch latency at --percentile fits the SLO.
            """
    )

    @Argument(help: "A model name in the repository, or a path to an .onnx file.")
    var model: String

    @Option(help: "The model repository (Triton layout: NAME/VERSION/model.onnx).")
    var modelRepository = "model_repository"

    @Option(help: "Comma-separated batch sizes.", transform: parseIntegerList)
    var batchSizes: [Int] = [1, 2, 4, 8, 16, 32]

    @Option(name: .customLong("instances"), help: "Comma-separated instance counts.", transform: parseIntegerList)
    var instanceCounts: [Int] = [1, 2]

    @Option(help: "Intra-op threads per instance: 'auto' (cores / instances) or a number.")
    var threads = "auto"

    @Option(help: "Latency SLO in milliseconds: report the best configuration that fits it.")
    var sloMs: Double?

    @Option(help: "The latency percentile to report and to judge the SLO by.")
    var percentile = 99.0

    @Option(help: "Seconds of measurement per configuration.")
    var duration = 5.0

    @Option(help: "Warm-up batches per instance before each configuration is measured.")
    var warmup = 2

    @Option(help: "Write the profile as JSON to this file.")
    var json: String?

    @Option(help: "Write the profile as CSV to this file.")
    var csv: String?

    @Flag(
        inversion: .prefixedNo,
        help:
            "Let idle intra-op threads spin-wait for work (ONNX Runtime's default). `serve` does not spin unless told to (`serve --spinning`); --no-spinning profiles the sessions as `serve` runs them."
    )
    var spinning = true

    @OptionGroup var runtimeOptions: RuntimeOptions

    func validate() throws {
        if threads != "auto" && Int(threads).map({ $0 < 1 }) ?? true {
            throw ValidationError("--threads must be 'auto' or a positive integer, got '\(threads)'")
        }
        do {
            try settings.validate()
        } catch {
            throw ValidationError(error.description)
        }
    }

    private var settings: ProfilerSettings {
        ProfilerSettings(
            batchSizes: batchSizes, instanceCounts: instanceCounts, threadsPerInstance: Int(threads),
            durationSeconds: duration, warmupBatches: max(0, warmup), percentile: percentile, sloMs: sloMs)
    }

    func run() throws {
        let runtime = try runtimeOptions.loadRuntime()
        let (name, path) = try ModelRepository(root: modelRepository).resolve(model)
        let backend = try OnnxRuntimeModel(path: path, name: name, runtime: runtime, allowSpinning: spinning)
        let profiler = Profiler(backend: backend, settings: settings)
        let total = profiler.grid().count
        printError(
            "Profiling \(name) (\(path)) with ONNX Runtime \(runtime.version) on \(SystemInfo.deviceDescription): "
                + "\(total) configurations x \(duration) s")
        let profile = try profiler.run(backendDescription: "onnxruntime \(runtime.version)") { event in
            switch event {
            case .started(let index, let total, let instances, let threads, let batchSize):
                printError(
                    "[\(index)/\(total)] \(instances) instance(s) x \(threads) thread(s), batch \(batchSize) ...",
                    terminator: "")
            case .finished(_, _, let point):
                printError(
                    String(
                        format: " %.1f/s, p%@ %.2f ms", point.throughput, formatPercentile(percentile),
                        point.latencyMs.atPercentile))
            case .skipped(let reason):
                printError("note: \(reason)")
            }
        }
        print(ProfileReport(profile: profile).text)
        if let json {
            try profile.jsonData().write(to: URL(fileURLWithPath: json))
            printError("wrote \(json)")
        }
        if let csv {
            try profile.csvText().write(toFile: csv, atomically: true, encoding: .utf8)
            printError("wrote \(csv)")
        }
    }
}

/// Parses `1,2,4` into integers, with a message that says what to type.
func parseIntegerList(_ text: String) throws -> [Int] {
    let parts = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    let values = parts.compactMap { Int($0) }
    guard !parts.isEmpty, values.count == parts.count, values.allSatisfy({ $0 >= 1 }) else {
        throw ValidationError("expected comma-separated positive integers such as 1,2,4; got '\(text)'")
    }
    return values
}

func formatPercentile(_ percentile: Double) -> String {
    percentile == percentile.rounded() ? String(Int(percentile)) : String(percentile)
}

func printError(_ message: String, terminator: String = "\n") {
    FileHandle.standardError.write(Data((message + terminator).utf8))
}
