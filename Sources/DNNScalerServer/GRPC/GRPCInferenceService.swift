import DNNScaler
import Foundation
import GRPCCore
import InferenceProtocol

/// `inference.GRPCInferenceService`: the KServe v2 gRPC RPCs plus Triton's ModelConfig,
/// ModelStatistics and repository RPCs, over the same models, scheduler and metrics as the HTTP
/// front end. Errors map to gRPC status codes in ``rpcError(_:)-swift.type.method``.
public struct GRPCInferenceService: Inference_GRPCInferenceService.SimpleServiceProtocol {
    let manager: ModelManager
    let metrics: ServerMetrics
    /// The most tensor bytes one inference request may carry (the HTTP body limit, `--max-body-bytes`).
    public let maxRequestBytes: Int
    let sharedMemory: SharedMemoryRegistry

    /// Creates the service; clients may register shared memory only when `sharedMemory` is enabled.
    public init(
        manager: ModelManager, metrics: ServerMetrics, maxRequestBytes: Int = 64 << 20,
        sharedMemory: SharedMemoryRegistry = SharedMemoryRegistry(enabled: false)
    ) {
        self.manager = manager
        self.metrics = metrics
        self.maxRequestBytes = maxRequestBytes
        self.sharedMemory = sharedMemory
    }

    // MARK: Health and metadata

    /// The server is live while it runs.
    public func serverLive(
        request: Inference_ServerLiveRequest, context: ServerContext
    ) async throws -> Inference_ServerLiveResponse {
        .with { $0.live = true }
    }

    /// Ready once no model is loading.
    public func serverReady(
        request: Inference_ServerReadyRequest, context: ServerContext
    ) async throws -> Inference_ServerReadyResponse {
        .with { $0.ready = manager.isServerReady }
    }

    /// Whether a model (and version) serves; NOT_FOUND for a model the server does not know,
    /// INVALID_ARGUMENT for a name that could not name one.
    public func modelReady(
        request: Inference_ModelReadyRequest, context: ServerContext
    ) async throws -> Inference_ModelReadyResponse {
        do {
            _ = try manager.model(named: request.name, version: Self.version(request.version))
            return .with { $0.ready = true }
        } catch {
            if error.kind == .notFound || error.kind == .invalidArgument { throw Self.rpcError(error) }
            return .with { $0.ready = false }
        }
    }

    /// Name, version and the protocol extensions, as `GET /v2` reports them.
    public func serverMetadata(
        request: Inference_ServerMetadataRequest, context: ServerContext
    ) async throws -> Inference_ServerMetadataResponse {
        let document = InferenceRoutes.serverMetadata(sharedMemory: sharedMemory)
        return .with {
            $0.name = document.name
            $0.version = document.version
            $0.extensions = document.extensions
        }
    }

    /// A model's inputs and outputs.
    public func modelMetadata(
        request: Inference_ModelMetadataRequest, context: ServerContext
    ) async throws -> Inference_ModelMetadataResponse {
        let document = ModelMetadataDocument(try lookup(request.name, request.version))
        func tensors(_ tensors: [ModelMetadataDocument.Tensor]) -> [Inference_ModelMetadataResponse.TensorMetadata] {
            tensors.map { tensor in
                .with {
                    $0.name = tensor.name
                    $0.datatype = tensor.datatype
                    $0.shape = tensor.shape.map(Int64.init)
                }
            }
        }
        return .with {
            $0.name = document.name
            $0.versions = document.versions
            $0.platform = document.platform
            $0.inputs = tensors(document.inputs)
            $0.outputs = tensors(document.outputs)
        }
    }

    // MARK: Inference

    /// One inference. Reads the deadline from the `timeout` parameter or the `grpc-timeout` header.
    public func modelInfer(
        request: ServerRequest<Inference_ModelInferRequest>, context: ServerContext
    ) async throws -> ServerResponse<Inference_ModelInferResponse> {
        let timeoutMs = request.metadata[stringValues: "grpc-timeout"].first(where: { _ in true })
            .flatMap(GRPCTensorCodec.timeoutMilliseconds(header:))
        do {
            return ServerResponse(message: try await infer(request.message, metadataTimeoutMs: timeoutMs))
        } catch {
            return ServerResponse(error: error)
        }
    }

    /// Unary form, for the simple protocol; ``modelInfer(request:context:)-(ServerRequest<_>,_)`` is what runs.
    public func modelInfer(
        request: Inference_ModelInferRequest, context: ServerContext
    ) async throws -> Inference_ModelInferResponse {
        try await infer(request, metadataTimeoutMs: nil)
    }

    /// Triton's streaming inference: each request answered in order on the stream; a failed request
    /// answers with its `error_message` and the stream goes on.
    public func modelStreamInfer(
        request: RPCAsyncSequence<Inference_ModelInferRequest, any Error>,
        response: RPCWriter<Inference_ModelStreamInferResponse>, context: ServerContext
    ) async throws {
        for try await message in request {
            var answer = Inference_ModelStreamInferResponse()
            do {
                answer.inferResponse = try await infer(message, metadataTimeoutMs: nil)
            } catch {
                answer.errorMessage = error.message
                answer.inferResponse.id = message.id
                answer.inferResponse.modelName = message.modelName
            }
            try await response.write(answer)
        }
    }

    private func infer(
        _ message: Inference_ModelInferRequest, metadataTimeoutMs: Double?
    ) async throws(RPCError) -> Inference_ModelInferResponse {
        let arrival = ContinuousClock.now
        let model = try lookup(message.modelName, message.modelVersion)
        let version = String(model.version)
        let decoded: GRPCTensorCodec.Decoded
        do throws(ServerError) {
            let size = GRPCTensorCodec.payloadBytes(message)
            guard size <= maxRequestBytes else {
                throw .init(
                    .tooLarge,
                    "the request carries \(size) bytes of tensor data, over the \(maxRequestBytes)-byte limit")
            }
            // The call's own deadline (`grpc-timeout`) is a hard deadline when it is shorter than
            // the SLO. A longer one is served like a call without one (the SLO as the target):
            // clients often set a generous transport timeout that is no latency target.
            decoded = try GRPCTensorCodec.decode(
                message, metadataTimeoutMs: metadataTimeoutMs.flatMap { $0 < model.options.sloMs ? $0 : nil },
                arrival: arrival, sharedMemory: sharedMemory)
        } catch {
            metrics.recordFailure(model: model.name, version: version, reason: .invalid)
            throw Self.rpcError(error)
        }
        let response: InferenceResponse
        do {
            response = try await model.serve(decoded.request, metrics: metrics)
        } catch {
            throw Self.rpcError(error)
        }
        do {
            return try GRPCTensorCodec.encode(
                response, modelName: model.name, version: version, sharedMemoryOutputs: decoded.sharedMemoryOutputs)
        } catch {
            throw Self.rpcError(error)
        }
    }

    // MARK: Configuration and statistics

    /// Triton's ModelConfig, the same content as `GET /v2/models/{name}/config`.
    public func modelConfig(
        request: Inference_ModelConfigRequest, context: ServerContext
    ) async throws -> Inference_ModelConfigResponse {
        let document = ModelConfigDocument(try lookup(request.name, request.version))
        return .with { response in
            response.config.name = document.name
            response.config.platform = document.platform
            response.config.backend = document.backend
            response.config.maxBatchSize = Int32(clamping: document.maxBatchSize)
            response.config.input = document.input.map { tensor in
                .with {
                    $0.name = tensor.name
                    $0.dataType = Self.configDataType(tensor.dataType)
                    $0.dims = tensor.dims
                }
            }
            response.config.output = document.output.map { tensor in
                .with {
                    $0.name = tensor.name
                    $0.dataType = Self.configDataType(tensor.dataType)
                    $0.dims = tensor.dims
                }
            }
            response.config.instanceGroup = document.instanceGroup.map { group in
                .with {
                    $0.name = group.name
                    $0.kind = .cpu
                    $0.count = Int32(clamping: group.count)
                }
            }
            response.config.dynamicBatching = .with {
                $0.maxQueueDelayMicroseconds = UInt64(clamping: document.dynamicBatching.maxQueueDelayMicroseconds)
                $0.defaultQueuePolicy.maxQueueSize = UInt32(
                    clamping: document.dynamicBatching.defaultQueuePolicy.maxQueueSize)
            }
            let scaling = document.dnnscaler
            response.config.parameters = [
                "dnnscaler.slo_ms": .with { $0.stringValue = String(scaling.sloMs) },
                "dnnscaler.percentile": .with { $0.stringValue = String(scaling.percentile) },
                "dnnscaler.policy": .with { $0.stringValue = scaling.policy },
                "dnnscaler.batch_limit": .with { $0.stringValue = String(scaling.batchLimit) },
                "dnnscaler.instances": .with { $0.stringValue = String(scaling.instances) },
            ]
        }
    }

    /// Triton's statistics for one model, or for every ready model when the name is empty.
    public func modelStatistics(
        request: Inference_ModelStatisticsRequest, context: ServerContext
    ) async throws -> Inference_ModelStatisticsResponse {
        let models = request.name.isEmpty ? manager.readyModels : [try lookup(request.name, request.version)]
        return .with { $0.modelStats = models.map(Self.statistics) }
    }

    static func statistics(_ model: ServedModel) -> Inference_ModelStatistics {
        let document = ModelStatisticsDocument(model)
        func duration(_ value: DurationStatistic) -> Inference_StatisticDuration {
            .with {
                $0.count = value.count
                $0.ns = value.ns
            }
        }
        let phases = document.inferenceStats
        return .with {
            $0.name = document.name
            $0.version = document.version
            $0.lastInference = document.lastInference
            $0.inferenceCount = document.inferenceCount
            $0.executionCount = document.executionCount
            $0.inferenceStats = .with {
                $0.success = duration(phases.success)
                $0.fail = duration(phases.fail)
                $0.queue = duration(phases.queue)
                $0.computeInput = duration(phases.computeInput)
                $0.computeInfer = duration(phases.computeInfer)
                $0.computeOutput = duration(phases.computeOutput)
                $0.cacheHit = duration(phases.cacheHit)
                $0.cacheMiss = duration(phases.cacheMiss)
            }
            $0.batchStats = document.batchStats.map { batch in
                .with {
                    $0.batchSize = UInt64(batch.batchSize)
                    $0.computeInput = duration(batch.computeInput)
                    $0.computeInfer = duration(batch.computeInfer)
                    $0.computeOutput = duration(batch.computeOutput)
                }
            }
        }
    }

    // MARK: Repository

    /// Every model folder and loaded model with its state and reason.
    public func repositoryIndex(
        request: Inference_RepositoryIndexRequest, context: ServerContext
    ) async throws -> Inference_RepositoryIndexResponse {
        .with {
            $0.models = manager.index(readyOnly: request.ready).map { entry in
                .with {
                    $0.name = entry.name
                    $0.version = entry.version ?? ""
                    $0.state = entry.state.rawValue
                    $0.reason = entry.reason
                }
            }
        }
    }

    /// Loads or reloads a model; a `config` string parameter overrides its config file.
    public func repositoryModelLoad(
        request: Inference_RepositoryModelLoadRequest, context: ServerContext
    ) async throws -> Inference_RepositoryModelLoadResponse {
        var override: Data?
        if let config = request.parameters["config"] {
            guard case .stringParam(let text) = config.parameterChoice else {
                throw RPCError(
                    code: .invalidArgument, message: "parameter 'config' must be a string holding the model config JSON"
                )
            }
            override = Data(text.utf8)
        }
        do {
            try await manager.load(name: request.modelName, override: override)
        } catch {
            throw Self.rpcError(error)
        }
        return Inference_RepositoryModelLoadResponse()
    }

    /// Unloads a model after its queued requests finish.
    public func repositoryModelUnload(
        request: Inference_RepositoryModelUnloadRequest, context: ServerContext
    ) async throws -> Inference_RepositoryModelUnloadResponse {
        do {
            try await manager.unload(name: request.modelName)
        } catch {
            throw Self.rpcError(error)
        }
        return Inference_RepositoryModelUnloadResponse()
    }

    // MARK: Shared memory

    /// The registered system shared-memory regions, or the one named.
    public func systemSharedMemoryStatus(
        request: Inference_SystemSharedMemoryStatusRequest, context: ServerContext
    ) async throws -> Inference_SystemSharedMemoryStatusResponse {
        let regions: [SystemSharedMemoryRegion]
        do {
            regions = try sharedMemory.status(name: request.name.isEmpty ? nil : request.name)
        } catch {
            throw Self.rpcError(error)
        }
        return .with { response in
            for region in regions {
                response.regions[region.name] = .with {
                    $0.name = region.name
                    $0.key = region.key
                    $0.offset = UInt64(region.offset)
                    $0.byteSize = UInt64(region.byteSize)
                }
            }
        }
    }

    /// Maps a client's shared-memory object as a named region.
    public func systemSharedMemoryRegister(
        request: Inference_SystemSharedMemoryRegisterRequest, context: ServerContext
    ) async throws -> Inference_SystemSharedMemoryRegisterResponse {
        guard request.offset <= UInt64(Int.max), request.byteSize <= UInt64(Int.max) else {
            throw RPCError(code: .invalidArgument, message: "offset and byte_size must fit a 64-bit signed integer")
        }
        do {
            try sharedMemory.register(
                name: request.name, key: request.key, offset: Int(request.offset), byteSize: Int(request.byteSize))
        } catch {
            throw Self.rpcError(error)
        }
        return Inference_SystemSharedMemoryRegisterResponse()
    }

    /// Unregisters the region named, or every region when the name is empty.
    public func systemSharedMemoryUnregister(
        request: Inference_SystemSharedMemoryUnregisterRequest, context: ServerContext
    ) async throws -> Inference_SystemSharedMemoryUnregisterResponse {
        do {
            try sharedMemory.unregister(name: request.name.isEmpty ? nil : request.name)
        } catch {
            throw Self.rpcError(error)
        }
        return Inference_SystemSharedMemoryUnregisterResponse()
    }

    /// No CUDA region can exist on this CPU server: empty, or an error for a named one.
    public func cudaSharedMemoryStatus(
        request: Inference_CudaSharedMemoryStatusRequest, context: ServerContext
    ) async throws -> Inference_CudaSharedMemoryStatusResponse {
        do {
            try sharedMemory.cudaStatus(name: request.name.isEmpty ? nil : request.name)
        } catch {
            throw Self.rpcError(error)
        }
        return Inference_CudaSharedMemoryStatusResponse()
    }

    /// CUDA shared memory is refused: this server runs its models on the CPU.
    public func cudaSharedMemoryRegister(
        request: Inference_CudaSharedMemoryRegisterRequest, context: ServerContext
    ) async throws -> Inference_CudaSharedMemoryRegisterResponse {
        do {
            try sharedMemory.cudaRegister()
        } catch {
            throw Self.rpcError(error)
        }
    }

    /// Nothing to unregister; answers OK, as Triton's clients unregister both kinds when they finish.
    public func cudaSharedMemoryUnregister(
        request: Inference_CudaSharedMemoryUnregisterRequest, context: ServerContext
    ) async throws -> Inference_CudaSharedMemoryUnregisterResponse {
        do {
            try sharedMemory.cudaUnregister()
        } catch {
            throw Self.rpcError(error)
        }
        return Inference_CudaSharedMemoryUnregisterResponse()
    }

    // MARK: Helpers

    private func lookup(_ name: String, _ version: String) throws(RPCError) -> ServedModel {
        guard !name.isEmpty else { throw RPCError(code: .invalidArgument, message: "the request names no model") }
        do {
            return try manager.model(named: name, version: Self.version(version))
        } catch {
            throw Self.rpcError(error)
        }
    }

    /// An empty version means "the served one", as in Triton.
    private static func version(_ text: String) -> String? { text.isEmpty ? nil : text }

    /// The gRPC status of an error's kind: shed is RESOURCE_EXHAUSTED, an expired deadline
    /// DEADLINE_EXCEEDED, a model not ready UNAVAILABLE, request mistakes INVALID_ARGUMENT.
    static func rpcError(_ error: ServerError) -> RPCError {
        let code: RPCError.Code =
            switch error.kind {
            case .invalidArgument: .invalidArgument
            case .notFound: .notFound
            case .forbidden: .permissionDenied
            case .tooLarge, .shed: .resourceExhausted
            case .expired: .deadlineExceeded
            case .unavailable: .unavailable
            case .internal: .internalError
            }
        return RPCError(code: code, message: error.message)
    }

    /// The gRPC status for a scheduling outcome (through its kind, ``ServerError/init(_:)-(SchedulingError)``).
    static func rpcError(_ error: SchedulingError) -> RPCError { rpcError(ServerError(error)) }

    /// The config's `TYPE_...` name as the protobuf enum (its number, ``DataType/tritonConfigType``).
    static func configDataType(_ name: String) -> Inference_DataType {
        let type = DataType.allCases.first { "TYPE_" + $0.tritonConfigType.name == name }
        return type.flatMap { Inference_DataType(rawValue: $0.tritonConfigType.number) } ?? .typeInvalid
    }
}
