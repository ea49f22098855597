import ArgumentParser
import DNNScaler
import DNNScalerServer
import Foundation
import Logging

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the model repository over KServe v2 / Triton HTTP and gRPC, tuning each model to its SLO.",
        discussion: """
            Loads every model of the repository (or --models), profiles each briefly, and serves it with the
            chosen policy. Per-model settings come from <repository>/<model>/config.json (docs/model-config.md);
            the options here are the defaults. SIGTERM reports not ready at once and serves on for
            --drain-grace-seconds; then (and at once on SIGINT or a second signal) the server stops accepting,
            finishes what is in flight and exits 0. Security: docs/security.md.
            """
    )

    @Option(help: "The model repository (Triton layout: NAME/VERSION/model.onnx).")
    var modelRepository = "model_repository"

    @Option(help: "Comma-separated models to load at start (default: all in the repository).")
    var models: String?

    @Option(help: "Address to bind.")
    var host = "0.0.0.0"

    @Option(help: "HTTP port (KServe v2 / Triton).")
    var httpPort = 8000

    @Option(help: "gRPC port (inference.GRPCInferenceService).")
    var grpcPort = 8001

    @Option(help: "Prometheus metrics port.")
    var metricsPort = 8002

    @Option(help: "Default latency SLO in ms.")
    var sloMs = 100.0

    @Option(help: "Default latency percentile the SLO is about.")
    var percentile = 99.0

    @Option(help: "Default policy: dnnscaler, joint, clipper-aimd or static.")
    var policy: String = PolicyKind.joint.rawValue

    @Option(help: "Batch limit for --policy static.")
    var batchSize = 1

    @Option(help: "Instances for --policy static.")
    var instances = 1

    @Option(help: "How long a partial batch may wait to fill, in ms (0: never waits).")
    var maxQueueDelayMs = 0.0

    @Option(help: "The most queued requests per model; more are refused with 503.")
    var maxQueueSize = 1024

    @Option(help: "The largest batch a model may run.")
    var maxBatchSize = 64

    @Option(help: "The largest request body (HTTP) or message (gRPC), in bytes.")
    var maxBodyBytes = 64 << 20

    @Option(help: "How often free C heap memory is handed back to the system, in seconds (0: never).")
    var heapTrimInterval = 10.0

    @Flag(
        help:
            "Let clients register system shared-memory regions (Triton's extension; off by default: a client could make the server read and write any shared-memory object this user can open)."
    )
    var allowClientShm = false

    @Flag(
        inversion: .prefixedNo,
        help:
            "Let an instance's idle intra-op threads spin-wait for work between its parallel steps (ONNX Runtime's default). Off by default: on 2 shared cores it made the served throughput of 1 instance x 2 threads bimodal from run to run."
    )
    var spinning = false

    @Option(
        help: ArgumentHelp(
            "CPUs kept for the front end's event loops: the last N of the CPUs this process may use; the models' instances are pinned to the rest and share them. 0 (the default): every thread may run on every CPU. `python3 -m bench.serving_overhead --io-cores 1` measures its effect (bench/README.md).",
            valueName: "N"))
    var ioCores = 0

    @Option(
        help:
            "none (default): serve the start set; clients may not load or unload models (403 / PERMISSION_DENIED). explicit: clients may load, reconfigure and unload models of the repository (Triton's names)."
    )
    var modelControlMode: String = ModelControlMode.none.rawValue

    @Option(
        help: ArgumentHelp(
            "Protect HTTP endpoint groups with a header: API[,API...]:HEADER=VALUE, APIs model-repository, shared-memory, statistics (includes /dnnscaler/status), model-config. Repeatable. Calls without the header get 403.",
            valueName: "spec"))
    var httpRestrictedApi: [String] = []

    @Option(
        help: ArgumentHelp(
            "The same for gRPC methods, with a metadata key: API[,API...]:KEY=VALUE. Calls without it get PERMISSION_DENIED.",
            valueName: "spec"))
    var grpcRestrictedProtocol: [String] = []

    @Option(
        help:
            "After SIGTERM, seconds to keep serving while reporting not ready, so that load balancers stop sending first (0: none; SIGINT and a second signal skip it)."
    )
    var drainGraceSeconds = 5.0

    @Option(
        help:
            "Cores the model instances share (default: the smaller of the CPU affinity mask and the cgroup CPU quota, rounded down, at least 1); --io-cores are counted against it."
    )
    var cores: Int?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @OptionGroup var runtimeOptions: RuntimeOptions

    func validate() throws {
        guard PolicyKind(rawValue: policy) != nil else {
            throw ValidationError(
                "--policy must be one of \(PolicyKind.allCases.map(\.rawValue).joined(separator: ", ")); got '\(policy)'"
            )
        }
        guard heapTrimInterval >= 0, heapTrimInterval.isFinite else {
            throw ValidationError("--heap-trim-interval must be 0 (never) or a number of seconds")
        }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be trace, debug, info, notice, warning, error or critical")
        }
        guard ModelControlMode(rawValue: modelControlMode) != nil else {
            throw ValidationError("--model-control-mode must be none or explicit; got '\(modelControlMode)'")
        }
        guard drainGraceSeconds >= 0, drainGraceSeconds.isFinite else {
            throw ValidationError("--drain-grace-seconds must be 0 or a number of seconds")
        }
        if let cores, cores < 1 { throw ValidationError("--cores must be at least 1; got \(cores)") }
        do {
            try defaults.validate()
            _ = try restrictions()
        } catch {
            throw ValidationError(error.message)
        }
        do {
            _ = try placement(budget: budget)
        } catch {
            throw ValidationError("--io-cores: \(error.message)")
        }
        if let names = models?.split(separator: ",") {
            for name in names {
                do {
                    try ModelName.validate(String(name))
                } catch {
                    throw ValidationError("--models: \(error.message)")
                }
            }
        }
    }

    private var budget: CPUBudget { CPUBudget.detect(override: cores) }

    private func placement(budget: CPUBudget) throws(CPUPlacementError) -> CPUPlacement {
        try CPUPlacement.split(allowed: budget.allowedCPUs, ioCores: ioCores, cores: budget.cores)
    }

    private func restrictions() throws(ServerError) -> (http: APIRestrictions, grpc: APIRestrictions) {
        (
            try APIRestrictions(parsing: httpRestrictedApi, option: "--http-restricted-api"),
            try APIRestrictions(parsing: grpcRestrictedProtocol, option: "--grpc-restricted-protocol")
        )
    }

    private var defaults: ModelServingOptions {
        ModelServingOptions(
            sloMs: sloMs, percentile: percentile, policy: PolicyKind(rawValue: policy) ?? .joint,
            staticBatchSize: batchSize, staticInstances: instances, maxQueueDelayMs: maxQueueDelayMs,
            maxQueueSize: maxQueueSize, maxBatchSize: maxBatchSize)
    }

    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        var logger = Logger(label: "dnnscaler")
        logger.logLevel = Logger.Level(rawValue: logLevel) ?? .info
        let budget = self.budget
        let placement = try placement(budget: budget)
        let restrictions = try restrictions()
        if placement.isSplit {
            // Threads started from here on (Dispatch's, the controllers') stay off the compute CPUs.
            SystemInfo.pinCurrentThread(to: placement.io)
        }
        if ProcessInfo.processInfo.environment["DNNSCALER_NIO_EXECUTOR"] != "0" {
            let installed = await InferenceServer.runConcurrencyOnEventLoops(
                threads: placement.isSplit ? placement.io.count : placement.computeCores,
                pinnedTo: placement.isSplit ? placement.io : nil)
            logger.debug("tasks on NIO event loops", metadata: ["installed": "\(installed)"])
        }
        let runtime = try runtimeOptions.loadRuntime()
        var serverDefaults = defaults
        serverDefaults.maxInstances = placement.computeCores
        let repository = ModelRepository(root: modelRepository)
        guard !repository.modelNames().isEmpty else {
            throw ValidationError("the model repository '\(modelRepository)' has no models; run scripts/setup")
        }
        let settings = ServerSettings(
            host: host, httpPort: httpPort, grpcPort: grpcPort, metricsPort: metricsPort, repository: repository,
            models: models.map { $0.split(separator: ",").map(String.init) }, defaults: serverDefaults,
            maxBodyBytes: maxBodyBytes, heapTrimIntervalSeconds: heapTrimInterval,
            allowClientSharedMemory: allowClientShm, spinning: spinning, placement: placement, cpuBudget: budget,
            modelControlMode: ModelControlMode(rawValue: modelControlMode) ?? .none,
            httpRestrictions: restrictions.http, grpcRestrictions: restrictions.grpc,
            drainGraceSeconds: drainGraceSeconds)
        logger.info(
            "starting DNNScaler",
            metadata: [
                "http": "\(host):\(httpPort)", "grpc": "\(host):\(grpcPort)", "metrics": "\(host):\(metricsPort)",
                "ort": "\(runtime.version)", "cpus": "\(placement)",
                "cores_from": "\(budget.source.rawValue)", "model_control": "\(modelControlMode)",
                "repository": "\(modelRepository)",
            ])
        try await InferenceServer(settings: settings, runtime: runtime, logger: logger).run()
        logger.info("stopped")
    }
}
