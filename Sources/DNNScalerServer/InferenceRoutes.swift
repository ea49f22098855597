import DNNScaler
import Foundation
import HTTPTypes
import Hummingbird

/// The KServe v2 / Triton HTTP routes (docs: ../shared/docs/protocol.md).
public struct InferenceRoutes: Sendable {
    /// The server version reported by `GET /v2`.
    public static let serverVersion = "0.1.0"
    /// Protocol extensions always advertised; `system_shared_memory` is added when it is enabled.
    public static let extensions = ["binary_tensor_data", "model_configuration", "model_repository", "statistics"]
    /// The header that carries the JSON length of a binary request or response.
    // The literal is a valid field name, so the fallback is never taken.
    static let headerLengthField = HTTPField.Name("Inference-Header-Content-Length") ?? .contentLength

    let manager: ModelManager
    let metrics: ServerMetrics
    let maxBodyBytes: Int
    let sharedMemory: SharedMemoryRegistry
    let restrictions: APIRestrictions
    let platform: PlatformStatus?

    /// Creates the routes; clients may register shared memory only when `sharedMemory` is
    /// enabled, and call a group of `restrictions` only with its header; `platform` is shown in
    /// the status document.
    public init(
        manager: ModelManager, metrics: ServerMetrics, maxBodyBytes: Int = 64 << 20,
        sharedMemory: SharedMemoryRegistry = SharedMemoryRegistry(enabled: false),
        restrictions: APIRestrictions = APIRestrictions(), platform: PlatformStatus? = nil
    ) {
        self.platform = platform
        self.manager = manager
        self.metrics = metrics
        self.maxBodyBytes = maxBodyBytes
        self.sharedMemory = sharedMemory
        self.restrictions = restrictions
    }

    /// The extensions the server metadata advertises (HTTP and gRPC).
    static func advertisedExtensions(sharedMemory: SharedMemoryRegistry) -> [String] {
        extensions + (sharedMemory.enabled ? ["system_shared_memory"] : [])
    }

    /// A router with every route.
    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: RestrictedAPIMiddleware(restrictions: restrictions))
        addHealthRoutes(to: router)
        addModelRoutes(to: router)
        addRepositoryRoutes(to: router)
        addSharedMemoryRoutes(to: router)
        router.get("/dnnscaler/status") { _, _ -> Response in
            var server = platform?.json ?? [:]
            let models = manager.readyModels
            server["capacity_used"] = ServedModel.serverCapacityUsed(models)
            server["draining"] = manager.isDraining
            server["model_control_mode"] = manager.controlMode.rawValue
            return Response.json(["server": server, "models": models.map(Self.statusJSON)])
        }
        return router
    }

    /// Liveness, readiness (503 while draining or loading) and the server's metadata.
    private func addHealthRoutes(to router: Router<BasicRequestContext>) {
        router.get("/v2/health/live") { _, _ in HTTPResponse.Status.ok }
        router.get("/v2/health/ready") { _, _ -> Response in
            if manager.isDraining {
                return Response.json(["error": "draining: shutting down"], status: .serviceUnavailable)
            }
            return manager.allReady
                ? Response(status: .ok) : Response.json(["error": "models are loading"], status: .serviceUnavailable)
        }
        router.get("/v2") { _, _ -> Response in
            Response.json([
                "name": "dnnscaler", "version": Self.serverVersion,
                "extensions": Self.advertisedExtensions(sharedMemory: sharedMemory),
            ])
        }
    }

    /// Per model (and version): metadata, readiness, config, statistics and inference.
    private func addModelRoutes(to router: Router<BasicRequestContext>) {
        for prefix in ["/v2/models/:name", "/v2/models/:name/versions/:version"] {
            router.get(RouterPath(prefix)) { _, context -> Response in
                let model = try manager.model(
                    named: try context.parameters.require("name"), version: context.parameters.get("version"))
                return Response.json(Self.metadataJSON(model))
            }
            router.get(RouterPath(prefix + "/ready")) { _, context -> Response in
                let name = try context.parameters.require("name")
                do {
                    _ = try manager.model(named: name, version: context.parameters.get("version"))
                    return Response.json(["name": name, "ready": true])
                } catch let error as ServerError {
                    // An unknown or malformed name is an error; a known model that does not serve is "not ready".
                    if error.kind == .notFound || error.kind == .invalidArgument { throw error }
                    return Response.json(["name": name, "ready": false], status: .serviceUnavailable)
                }
            }
            router.get(RouterPath(prefix + "/config")) { _, context -> Response in
                let model = try manager.model(
                    named: try context.parameters.require("name"), version: context.parameters.get("version"))
                return Response.json(Self.configJSON(model))
            }
            router.get(RouterPath(prefix + "/stats")) { _, context -> Response in
                let model = try manager.model(
                    named: try context.parameters.require("name"), version: context.parameters.get("version"))
                return Response.json(["model_stats": [Self.statisticsJSON(model)]])
            }
            router.post(RouterPath(prefix + "/infer")) { request, context -> Response in
                try await infer(request: request, context: context)
            }
        }
        router.get("/v2/models/stats") { _, _ -> Response in
            Response.json(["model_stats": manager.readyModels.map(Self.statisticsJSON)])
        }
    }

    /// The repository's index, load (with a config override) and unload.
    private func addRepositoryRoutes(to router: Router<BasicRequestContext>) {
        router.post("/v2/repository/index") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            var readyOnly = false
            if body.readableBytes > 0 {
                guard
                    let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
                else {
                    throw ServerError.badRequest(
                        "repository index body must be a JSON object such as {\"ready\": true}")
                }
                readyOnly = JSONValues.boolean(object["ready"]) ?? false
            }
            return Response.json(
                manager.index(readyOnly: readyOnly).map { entry -> [String: Any] in
                    var row: [String: Any] = [
                        "name": entry.name, "state": entry.state.rawValue, "reason": entry.reason,
                    ]
                    if let version = entry.version { row["version"] = version }
                    return row
                })
        }
        router.post("/v2/repository/models/:name/load") { request, context -> Response in
            let name = try context.parameters.require("name")
            let body = try await request.body.collect(upTo: maxBodyBytes)
            var override: Data?
            if body.readableBytes > 0 {
                guard
                    let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
                else {
                    throw ServerError.badRequest("load body must be a JSON object")
                }
                if let parameters = object["parameters"] as? [String: Any], let config = parameters["config"] {
                    guard let text = config as? String else {
                        throw ServerError.badRequest("parameters.config must be a string holding the model config JSON")
                    }
                    override = Data(text.utf8)
                }
            }
            try await manager.load(name: name, override: override)
            return Response(status: .ok)
        }
        router.post("/v2/repository/models/:name/unload") { _, context -> Response in
            try await manager.unload(name: try context.parameters.require("name"))
            return Response(status: .ok)
        }
    }

    // MARK: System shared memory

    private func addSharedMemoryRoutes(to router: Router<BasicRequestContext>) {
        router.get("/v2/systemsharedmemory/status") { _, _ -> Response in
            Response.json(try sharedMemory.status(name: nil).map(\.statusJSON))
        }
        router.get("/v2/systemsharedmemory/region/:region/status") { _, context -> Response in
            Response.json(try sharedMemory.status(name: context.parameters.require("region")).map(\.statusJSON))
        }
        router.post("/v2/systemsharedmemory/region/:region/register") { request, context -> Response in
            let name = try context.parameters.require("region")
            let body = try await request.body.collect(upTo: 1 << 20)
            guard
                let object = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any]
            else {
                throw ServerError.badRequest(
                    #"register body must be a JSON object {"key": ..., "offset": ..., "byte_size": ...}"#)
            }
            guard let key = object["key"] as? String else {
                throw ServerError.badRequest("register needs a string 'key'")
            }
            func integer(_ field: String, default value: Int?) throws -> Int {
                guard let raw = object[field] else {
                    if let value { return value }
                    throw ServerError.badRequest("register needs '\(field)'")
                }
                guard let integer = JSONValues.integer(raw), integer >= 0 else {
                    throw ServerError.badRequest("register: '\(field)' must be a non-negative integer")
                }
                return integer
            }
            try sharedMemory.register(
                name: name, key: key, offset: try integer("offset", default: 0),
                byteSize: try integer("byte_size", default: nil))
            return Response(status: .ok)
        }
        router.post("/v2/systemsharedmemory/unregister") { _, _ -> Response in
            try sharedMemory.unregister(name: nil)
            return Response(status: .ok)
        }
        router.post("/v2/systemsharedmemory/region/:region/unregister") { _, context -> Response in
            try sharedMemory.unregister(name: context.parameters.require("region"))
            return Response(status: .ok)
        }
        // CUDA shared memory: none can exist on this CPU server (the registry answers).
        router.get("/v2/cudasharedmemory/status") { _, _ -> Response in
            try sharedMemory.cudaStatus(name: nil)
            return Response.json([Any]())
        }
        router.get("/v2/cudasharedmemory/region/:region/status") { _, context -> Response in
            try sharedMemory.cudaStatus(name: context.parameters.require("region"))
            return Response.json([Any]())
        }
        router.post("/v2/cudasharedmemory/region/:region/register") { _, _ -> Response in
            try sharedMemory.cudaRegister()
        }
        for path in ["/v2/cudasharedmemory/unregister", "/v2/cudasharedmemory/region/:region/unregister"] {
            router.post(RouterPath(path)) { _, _ -> Response in
                try sharedMemory.cudaUnregister()
                return Response(status: .ok)
            }
        }
    }

    // MARK: Inference

    private func infer(request: Request, context: BasicRequestContext) async throws -> Response {
        // The head has arrived; the body may still be on its way. The deadline counts from here.
        let arrival = ContinuousClock.now
        let name = try context.parameters.require("name")
        let model = try manager.model(named: name, version: context.parameters.get("version"))
        let version = String(model.version)
        if let refusal = model.runtime.refusalBeforeReading(arrival: arrival) {
            metrics.recordFailure(model: name, version: version, reason: FailureReason(refusal))
            throw ServerError(refusal)
        }
        var headerLength: Int?
        if let value = request.headers[Self.headerLengthField] {
            guard let parsed = Int(value.trimmingCharacters(in: .whitespaces)) else {
                metrics.recordFailure(model: name, version: version, reason: .invalid)
                throw ServerError.badRequest("Inference-Header-Content-Length must be an integer, got '\(value)'")
            }
            guard parsed >= 0 else {
                metrics.recordFailure(model: name, version: version, reason: .invalid)
                throw ServerError.badRequest("Inference-Header-Content-Length must not be negative, got '\(value)'")
            }
            headerLength = parsed
        }
        let decoded: DecodedInferRequest
        do {
            if let headerLength {
                // Binary tensors: read straight from the socket's buffers into the tensors.
                decoded = try await InferCodec.decode(
                    streaming: request.body, headerLength: headerLength, maxBodyBytes: maxBodyBytes, arrival: arrival,
                    sharedMemory: sharedMemory)
            } else {
                let body: ByteBuffer
                do {
                    body = try await request.body.collect(upTo: maxBodyBytes)
                } catch {
                    throw ServerError.bodyTooLarge(limit: maxBodyBytes)
                }
                decoded = try InferCodec.decode(
                    body: body, headerLength: nil, metadata: model.runtime.metadata, arrival: arrival,
                    sharedMemory: sharedMemory)
            }
        } catch {
            metrics.recordFailure(model: name, version: version, reason: .invalid)
            throw error
        }
        let response: InferenceResponse
        do {
            response = try await model.serve(decoded.request, metrics: metrics)
        } catch {
            throw ServerError(error)
        }
        let (responseBody, jsonLength) = try InferCodec.encode(
            response, modelName: name, version: version, decoded: decoded)
        var headers: HTTPFields = [:]
        if let jsonLength {
            headers[.contentType] = "application/octet-stream"
            headers[Self.headerLengthField] = String(jsonLength)
        } else {
            headers[.contentType] = "application/json"
        }
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: responseBody))
    }

    // MARK: JSON documents

    static func metadataJSON(_ model: ServedModel) -> [String: Any] {
        let metadata = model.runtime.metadata
        func tensors(_ specs: [TensorSpec]) -> [[String: Any]] {
            specs.map { ["name": $0.name, "datatype": $0.dataType.rawValue, "shape": $0.shape] }
        }
        return [
            "name": model.name, "versions": [String(model.version)], "platform": metadata.platform,
            "inputs": tensors(metadata.inputs), "outputs": tensors(metadata.outputs),
        ]
    }

    /// Triton's ModelConfig as protobuf JSON (int64 as strings, enums as names).
    static func configJSON(_ model: ServedModel) -> [String: Any] {
        let metadata = model.runtime.metadata
        let batching = metadata.supportsBatching
        let configuration = model.runtime.currentConfiguration
        let options = model.options
        func tensors(_ specs: [TensorSpec]) -> [[String: Any]] {
            specs.map { spec in
                let dims = batching ? Array(spec.shape.dropFirst()) : spec.shape
                return [
                    "name": spec.name, "data_type": "TYPE_\(tritonTypeName(spec.dataType))",
                    "dims": dims.map(String.init),
                ]
            }
        }
        return [
            "name": model.name, "platform": metadata.platform, "backend": "onnxruntime",
            "max_batch_size": batching ? options.maxBatchSize : 0,
            "input": tensors(metadata.inputs), "output": tensors(metadata.outputs),
            "instance_group": [["name": model.name, "kind": "KIND_CPU", "count": configuration.instances]],
            "dynamic_batching": [
                "max_queue_delay_microseconds": String(Int(configuration.maxQueueDelayMs * 1000)),
                "default_queue_policy": ["max_queue_size": String(options.maxQueueSize)],
            ],
            "dnnscaler": [
                "slo_ms": options.sloMs, "percentile": options.percentile, "policy": options.policy.rawValue,
                "batch_limit": configuration.batchLimit, "instances": configuration.instances,
            ],
        ]
    }

    static func tritonTypeName(_ dataType: DataType) -> String {
        switch dataType {
        case .bool: "BOOL"
        case .uint8: "UINT8"
        case .uint16: "UINT16"
        case .uint32: "UINT32"
        case .uint64: "UINT64"
        case .int8: "INT8"
        case .int16: "INT16"
        case .int32: "INT32"
        case .int64: "INT64"
        case .fp16: "FP16"
        case .bf16: "BF16"
        case .fp32: "FP32"
        case .fp64: "FP64"
        case .bytes: "STRING"
        }
    }

    /// Triton's `$model_stat`.
    static func statisticsJSON(_ model: ServedModel) -> [String: Any] {
        let statistics = model.runtime.snapshot().statistics
        func duration(_ value: DurationStatistic) -> [String: Any] { ["count": value.count, "ns": value.ns] }
        let zero = duration(DurationStatistic())
        return [
            "name": model.name, "version": String(model.version), "last_inference": statistics.lastInferenceMs,
            "inference_count": statistics.inferenceCount, "execution_count": statistics.executionCount,
            "inference_stats": [
                "success": duration(statistics.success), "fail": duration(statistics.failure),
                "queue": duration(statistics.queue), "compute_input": duration(statistics.computeInput),
                "compute_infer": duration(statistics.computeInfer),
                "compute_output": duration(statistics.computeOutput),
                "cache_hit": zero, "cache_miss": zero,
            ],
            "batch_stats": statistics.batches.keys.sorted().map { size -> [String: Any] in
                let batch = statistics.batches[size] ?? DurationStatistic()
                return [
                    "batch_size": size, "compute_input": ["count": batch.count, "ns": 0],
                    "compute_infer": duration(batch), "compute_output": ["count": batch.count, "ns": 0],
                ]
            },
        ]
    }

    /// DNNScaler's status document for one model.
    static func statusJSON(_ model: ServedModel) -> [String: Any] {
        let snapshot = model.runtime.snapshot()
        let status = model.controller.status
        let options = model.options
        let decision = model.profile?.decision
        return [
            "name": model.name, "version": String(model.version), "policy": status.policy,
            "mode": status.mode?.rawValue ?? "fixed", "slo_ms": options.sloMs, "percentile": options.percentile,
            "configuration": [
                "batch_limit": snapshot.configuration.batchLimit, "instances": snapshot.configuration.instances,
                "threads_per_instance": max(1, model.runtime.settings.cores / snapshot.configuration.instances),
                "max_queue_delay_ms": snapshot.configuration.maxQueueDelayMs,
            ],
            "window_tail_latency_ms": snapshot.latencyWindow.percentile(options.percentile, since: snapshot.time - 3)
                as Any? ?? NSNull(),
            "capacity": model.controller.capacity.map { capacity -> [String: Any] in
                [
                    "used": capacity.used as Any? ?? NSNull(), "arrival_rate": capacity.arrivalRate,
                    "sustainable_rate": capacity.sustainableRate as Any? ?? NSNull(),
                    "service_correction": capacity.serviceCorrection, "overhead_ms": capacity.overheadMs,
                    "batch_time_p99_over_mean": capacity.batchTimeSpread.last as Any? ?? NSNull(),
                    "predicted_configuration": capacity.predictedConfiguration.map {
                        ["batch_limit": $0.batchLimit, "instances": $0.instances]
                    } as Any? ?? NSNull(),
                ]
            } as Any? ?? NSNull(),
            "queue_length": snapshot.queueLength, "in_flight": snapshot.inFlight,
            "shed": snapshot.statistics.shedCount, "succeeded": snapshot.statistics.success.count,
            "failed": snapshot.statistics.failure.count,
            "profile": decision.map { decision -> [String: Any] in
                [
                    "mode": decision.mode.rawValue, "batching_gain": decision.batchingGain,
                    "multi_tenancy_gain": decision.multiTenancyGain,
                    "baseline_throughput": decision.baselineThroughput,
                ]
            } as Any? ?? NSNull(),
            "decisions": status.decisions.suffix(10).map { record -> [String: Any] in
                [
                    "time_s": record.time, "batch_limit": record.configuration.batchLimit,
                    "instances": record.configuration.instances, "reason": record.reason, "changed": record.changed,
                    "tail_latency_ms": record.tailLatencyMs as Any? ?? NSNull(),
                    "service_tail_latency_ms": record.serviceTailMs as Any? ?? NSNull(),
                    "arrival_rate": record.arrivalRate,
                ]
            },
        ]
    }
}
