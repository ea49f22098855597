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
            let models = manager.readyModels
            let server = ServerStatusDocument.Server(
                cpu: platform?.cpuDocument, memoryLimitBytes: platform?.budget.memoryLimitBytes,
                capacityUsed: ServedModel.serverCapacityUsed(models), draining: manager.isDraining,
                modelControlMode: manager.controlMode.rawValue)
            return Response.json(ServerStatusDocument(server: server, models: models.map(ModelStatusDocument.init)))
        }
        return router
    }

    /// Liveness, readiness (503 while draining or loading) and the server's metadata.
    private func addHealthRoutes(to router: Router<BasicRequestContext>) {
        router.get("/v2/health/live") { _, _ in HTTPResponse.Status.ok }
        router.get("/v2/health/ready") { _, _ -> Response in
            if manager.isDraining {
                return Response.json(ErrorDocument(error: "draining: shutting down"), status: .serviceUnavailable)
            }
            return manager.allReady
                ? Response(status: .ok)
                : Response.json(ErrorDocument(error: "models are loading"), status: .serviceUnavailable)
        }
        router.get("/v2") { _, _ -> Response in
            Response.json(Self.serverMetadata(sharedMemory: sharedMemory))
        }
    }

    /// Per model (and version): metadata, readiness, config, statistics and inference.
    private func addModelRoutes(to router: Router<BasicRequestContext>) {
        for prefix in ["/v2/models/:name", "/v2/models/:name/versions/:version"] {
            router.get(RouterPath(prefix)) { _, context -> Response in
                let model = try manager.model(
                    named: try context.parameters.require("name"), version: context.parameters.get("version"))
                return Response.json(ModelMetadataDocument(model))
            }
            router.get(RouterPath(prefix + "/ready")) { _, context -> Response in
                let name = try context.parameters.require("name")
                do {
                    _ = try manager.model(named: name, version: context.parameters.get("version"))
                    return Response.json(ModelReadyDocument(name: name, ready: true))
                } catch let error as ServerError {
                    // An unknown or malformed name is an error; a known model that does not serve is "not ready".
                    if error.kind == .notFound || error.kind == .invalidArgument { throw error }
                    return Response.json(ModelReadyDocument(name: name, ready: false), status: .serviceUnavailable)
                }
            }
            router.get(RouterPath(prefix + "/config")) { _, context -> Response in
                let model = try manager.model(
                    named: try context.parameters.require("name"), version: context.parameters.get("version"))
                return Response.json(ModelConfigDocument(model))
            }
            router.get(RouterPath(prefix + "/stats")) { _, context -> Response in
                let model = try manager.model(
                    named: try context.parameters.require("name"), version: context.parameters.get("version"))
                return Response.json(ModelStatisticsListDocument(modelStats: [ModelStatisticsDocument(model)]))
            }
            router.post(RouterPath(prefix + "/infer")) { request, context -> Response in
                try await infer(request: request, context: context)
            }
        }
        router.get("/v2/models/stats") { _, _ -> Response in
            Response.json(
                ModelStatisticsListDocument(modelStats: manager.readyModels.map(ModelStatisticsDocument.init)))
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
                manager.index(readyOnly: readyOnly).map {
                    RepositoryIndexEntryDocument(
                        name: $0.name, version: $0.version, state: $0.state.rawValue, reason: $0.reason)
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
            Response.json(try sharedMemory.status(name: nil).map(\.document))
        }
        router.get("/v2/systemsharedmemory/region/:region/status") { _, context -> Response in
            Response.json(try sharedMemory.status(name: context.parameters.require("region")).map(\.document))
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
            return Response.json([SharedMemoryRegionDocument]())
        }
        router.get("/v2/cudasharedmemory/region/:region/status") { _, context -> Response in
            try sharedMemory.cudaStatus(name: context.parameters.require("region"))
            return Response.json([SharedMemoryRegionDocument]())
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

    /// The server's name, version and extensions (HTTP and gRPC).
    static func serverMetadata(sharedMemory: SharedMemoryRegistry) -> ServerMetadataDocument {
        ServerMetadataDocument(
            name: "dnnscaler", version: serverVersion, extensions: advertisedExtensions(sharedMemory: sharedMemory))
    }
}
