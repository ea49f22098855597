import DNNScaler
import Foundation
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

/// Where and what the server serves.
public struct ServerSettings: Sendable {
    /// The address to bind.
    public var host: String
    /// KServe v2 / Triton HTTP port.
    public var httpPort: Int
    /// KServe v2 / Triton gRPC port.
    public var grpcPort: Int
    /// Prometheus metrics port.
    public var metricsPort: Int
    /// The model repository.
    public var repository: ModelRepository
    /// Models to load at start (`nil`: all in the repository).
    public var models: [String]?
    /// Options every model starts from.
    public var defaults: ModelServingOptions
    /// The largest request body accepted, in bytes.
    public var maxBodyBytes: Int
    /// How often the C heap's free pages are handed back to the system, in seconds (0: never).
    public var heapTrimIntervalSeconds: Double
    /// Whether clients may register system shared-memory regions (Triton's `--allow-client-shm`).
    public var allowClientSharedMemory: Bool
    /// Whether idle intra-op threads spin-wait for work (ONNX Runtime's default).
    public var spinning: Bool
    /// Which CPUs compute and which serve I/O (``InferenceServer/runConcurrencyOnEventLoops(threads:pinnedTo:)``
    /// pins the event loops; the models pin their instances).
    public var placement: CPUPlacement
    /// The cores the process may use and where that came from (shown in `/dnnscaler/status`).
    public var cpuBudget: CPUBudget
    /// Whether clients may load and unload models.
    public var modelControlMode: ModelControlMode
    /// HTTP endpoint groups that need a header (`--http-restricted-api`).
    public var httpRestrictions: APIRestrictions
    /// gRPC method groups that need a metadata key (`--grpc-restricted-protocol`).
    public var grpcRestrictions: APIRestrictions
    /// After SIGTERM, how long the server keeps serving while it reports not ready, in seconds.
    public var drainGraceSeconds: Double

    /// Creates settings.
    public init(
        host: String = "0.0.0.0", httpPort: Int = 8000, grpcPort: Int = 8001, metricsPort: Int = 8002,
        repository: ModelRepository,
        models: [String]? = nil, defaults: ModelServingOptions = ModelServingOptions(), maxBodyBytes: Int = 64 << 20,
        heapTrimIntervalSeconds: Double = 10, allowClientSharedMemory: Bool = false, spinning: Bool = false,
        placement: CPUPlacement = .unsplit(SystemInfo.allowedCPUs), cpuBudget: CPUBudget? = nil,
        modelControlMode: ModelControlMode = .none, httpRestrictions: APIRestrictions = APIRestrictions(),
        grpcRestrictions: APIRestrictions = APIRestrictions(), drainGraceSeconds: Double = 0
    ) {
        self.cpuBudget =
            cpuBudget
            ?? CPUBudget(
                cores: placement.computeCores + placement.io.count, source: .affinity,
                allowedCPUs: placement.compute + placement.io)
        self.modelControlMode = modelControlMode
        self.httpRestrictions = httpRestrictions
        self.grpcRestrictions = grpcRestrictions
        self.drainGraceSeconds = drainGraceSeconds
        self.host = host
        self.httpPort = httpPort
        self.grpcPort = grpcPort
        self.metricsPort = metricsPort
        self.repository = repository
        self.models = models
        self.defaults = defaults
        self.maxBodyBytes = maxBodyBytes
        self.heapTrimIntervalSeconds = heapTrimIntervalSeconds
        self.allowClientSharedMemory = allowClientSharedMemory
        self.spinning = spinning
        self.placement = placement
    }
}

/// The whole server: models, the HTTP and gRPC front ends, the metrics endpoint, graceful shutdown.
public struct InferenceServer: Sendable {
    /// Settings.
    public let settings: ServerSettings
    /// The models.
    public let manager: ModelManager
    /// The metrics.
    public let metrics: ServerMetrics
    /// The clients' registered system shared-memory regions.
    public let sharedMemory: SharedMemoryRegistry
    private let logger: Logger

    /// Creates the server; nothing runs until ``run()`` or ``services(onHTTPRunning:)``.
    public init(settings: ServerSettings, runtime: OnnxRuntime, logger: Logger) {
        self.settings = settings
        self.logger = logger
        manager = ModelManager(
            repository: settings.repository, defaults: settings.defaults, runtime: runtime,
            placement: settings.placement, spinning: settings.spinning, controlMode: settings.modelControlMode,
            logger: logger)
        metrics = ServerMetrics()
        sharedMemory = SharedMemoryRegistry(enabled: settings.allowClientSharedMemory)
    }

    /// Sizes the NIO event loop group to `threads` and makes it Swift Concurrency's global
    /// executor, so that a request's handler runs on the loop that reads and writes its
    /// connection instead of hopping to a separate thread pool and back; with `cpus`, each loop
    /// is pinned to them (``CPUPlacement/io``). Call once, before the server or anything else uses
    /// NIO's singleton group. Returns whether the executor was installed.
    public static func runConcurrencyOnEventLoops(threads: Int, pinnedTo cpus: [Int]? = nil) async -> Bool {
        NIOSingletons.groupLoopCountSuggestion = max(1, threads)
        let installed = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        if let cpus {
            for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() {
                _ = try? await loop.submit { SystemInfo.pinCurrentThread(to: cpus) }.get()
            }
        }
        return installed
    }

    /// The HTTP application (KServe v2 routes).
    public func httpApplication(
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        Application(
            router: InferenceRoutes(
                manager: manager, metrics: metrics, maxBodyBytes: settings.maxBodyBytes, sharedMemory: sharedMemory,
                restrictions: settings.httpRestrictions, platform: PlatformStatus(settings: settings)
            ).router(),
            server: .http1LargeReads(),
            configuration: .init(address: .hostname(settings.host, port: settings.httpPort), serverName: "dnnscaler"),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    /// The gRPC front end (`inference.GRPCInferenceService`).
    public func grpcFrontEnd() -> GRPCFrontEnd {
        GRPCFrontEnd(
            service: GRPCInferenceService(
                manager: manager, metrics: metrics, maxRequestBytes: settings.maxBodyBytes, sharedMemory: sharedMemory),
            host: settings.host, port: settings.grpcPort, restrictions: settings.grpcRestrictions, logger: logger)
    }

    /// The metrics application (`GET /metrics`, Prometheus text).
    public func metricsApplication() -> some ApplicationProtocol {
        let router = Router()
        let manager = self.manager
        let metrics = self.metrics
        router.get("/metrics") { _, _ -> Response in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: metrics.render(models: manager.readyModels))))
        }
        return Application(
            router: router,
            configuration: .init(
                address: .hostname(settings.host, port: settings.metricsPort), serverName: "dnnscaler"),
            logger: logger)
    }

    /// Runs until SIGINT or SIGTERM: loads the models and serves. On SIGTERM it reports not ready
    /// at once and serves on for ``ServerSettings/drainGraceSeconds`` (a second signal ends the
    /// grace); SIGINT skips the grace. Then it stops accepting, closes idle connections, finishes
    /// the requests in flight, drains the queues and returns.
    public func run() async throws {
        // Services shut down in reverse order: the front ends stop before the models drain.
        let group = ServiceGroup(
            configuration: .init(
                services: [
                    .init(service: ModelService(manager: manager, names: settings.models, logger: logger)),
                    .init(service: metricsApplication()),
                    .init(service: httpApplication()),
                    .init(service: grpcFrontEnd()),
                    .init(service: HeapTrimService(intervalSeconds: settings.heapTrimIntervalSeconds)),
                    .init(
                        service: DrainService(
                            manager: manager, graceSeconds: settings.drainGraceSeconds, logger: logger),
                        successTerminationBehavior: .gracefullyShutdownGroup),
                ],
                logger: logger))
        try await group.run()
    }
}

/// Traps SIGTERM and SIGINT. At the first signal it marks the server as draining (readiness
/// answers 503 / not ready while liveness stays up); after SIGTERM it waits
/// ``graceSeconds`` (load balancers notice and stop sending) or a second signal, after SIGINT not
/// at all, then returns, which shuts the group down gracefully. A third signal exits at once.
struct DrainService: Service {
    let manager: ModelManager
    let graceSeconds: Double
    let logger: Logger

    private enum Event: Sendable {
        case signal(UnixSignal)
        case graceOver
        case groupShutdown
    }

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        let (events, continuation) = AsyncStream.makeStream(of: Event.self)
        // Left running after this service returns, so that signals stay trapped while the front
        // ends and the models shut down, and a third one still ends the process.
        Task {
            var count = 0
            for await signal in signals {
                count += 1
                if count >= 3 {
                    logger.warning("third signal during shutdown: exiting now")
                    exit(1)
                }
                continuation.yield(.signal(signal))
            }
        }
        var next = events.makeAsyncIterator()
        // Another service ending shuts the group down without a signal: then there is no grace.
        let first = await withGracefulShutdownHandler {
            await next.next()
        } onGracefulShutdown: {
            continuation.yield(.groupShutdown)
        }
        guard case .signal(let signal) = first else { return }
        manager.beginDrain()
        guard signal == .sigterm, graceSeconds > 0 else {
            logger.info("signal received: shutting down", metadata: ["signal": "\(signal)"])
            return
        }
        logger.info(
            "SIGTERM: reporting not ready, serving on for the drain grace", metadata: ["grace_s": "\(graceSeconds)"])
        let grace = Duration.milliseconds(Int64(graceSeconds * 1000))
        let timer = Task {
            try? await Task.sleep(for: grace)
            continuation.yield(.graceOver)
        }
        defer { timer.cancel() }
        // The grace's end, a second signal or the group shutting down, whichever comes first.
        _ = await next.next()
        logger.info("drain grace over: stopping the front ends")
    }
}

/// Hands the C heap's free pages back to the system every `intervalSeconds` until shutdown. With
/// glibc's per-thread arenas, freed request bodies stay resident: a 30-minute soak at 70% of
/// capacity grew from 173 to 202 MiB without it, and calling `malloc_trim` by hand released 25 to
/// 37 MiB each time (docs/design-decisions.md).
struct HeapTrimService: Service {
    let intervalSeconds: Double

    func run() async throws {
        // A service group treats a service that returns as failed and stops the server: with the
        // trim off, wait for shutdown instead of returning.
        guard intervalSeconds > 0 else {
            try? await gracefulShutdown()
            return
        }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(Int64(intervalSeconds * 1000)))
                guard !Task.isCancelled else { break }
                SystemInfo.releaseFreeHeapMemory()
            }
        }
    }
}

/// Loads the models at start and drains them at shutdown (after the HTTP server has stopped).
struct ModelService: Service {
    let manager: ModelManager
    let names: [String]?
    let logger: Logger

    func run() async throws {
        await manager.loadAll(names: names)
        logger.info("all models loaded", metadata: ["ready": "\(manager.readyModels.map(\.name))"])
        try? await gracefulShutdown()
        logger.info("draining models")
        await manager.stopAll()
        logger.info("models drained")
    }
}
