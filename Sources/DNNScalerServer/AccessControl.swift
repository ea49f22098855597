import DNNScaler
import Foundation
import GRPCCore
import HTTPTypes
import Hummingbird

/// Whether clients may load and unload models (Triton's `--model-control-mode`).
public enum ModelControlMode: String, Sendable, CaseIterable {
    /// The models given at start serve; repository load and unload are refused (403 /
    /// PERMISSION_DENIED). The default: a client cannot change what the server runs.
    case none
    /// Clients may load, reload with a config override, and unload models of the repository.
    case explicit
}

/// The endpoint groups a header can protect (Triton's `--http-restricted-api` and
/// `--grpc-restricted-protocol` names).
public enum RestrictedAPI: String, Sendable, CaseIterable {
    /// Repository index, load and unload.
    case modelRepository = "model-repository"
    /// System and CUDA shared-memory registration and status.
    case sharedMemory = "shared-memory"
    /// Per-model statistics and DNNScaler's status document (`/dnnscaler/status`).
    case statistics
    /// The model configuration.
    case modelConfig = "model-config"

    /// The group an HTTP path belongs to, or `nil` for one that cannot be restricted (health,
    /// metadata, inference).
    public static func group(httpPath path: String) -> RestrictedAPI? {
        let parts = path.split(separator: "?", maxSplits: 1).first.map { $0.split(separator: "/") } ?? []
        guard let first = parts.first else { return nil }
        if first == "dnnscaler" { return parts.count > 1 && parts[1] == "status" ? .statistics : nil }
        guard first == "v2", parts.count > 1 else { return nil }
        switch parts[1] {
        case "repository": return .modelRepository
        case "systemsharedmemory", "cudasharedmemory": return .sharedMemory
        case "models":
            // /v2/models/stats, /v2/models/NAME[/versions/V]/{stats,config}
            if parts.count == 3, parts[2] == "stats" { return .statistics }
            guard parts.count == 4 || parts.count == 6 else { return nil }
            switch parts[parts.count - 1] {
            case "stats": return .statistics
            case "config": return .modelConfig
            default: return nil
            }
        default: return nil
        }
    }

    /// The group a gRPC method of `inference.GRPCInferenceService` belongs to, or `nil`.
    public static func group(grpcMethod method: String) -> RestrictedAPI? {
        switch method {
        case "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload": .modelRepository
        case "SystemSharedMemoryStatus", "SystemSharedMemoryRegister", "SystemSharedMemoryUnregister",
            "CudaSharedMemoryStatus", "CudaSharedMemoryRegister", "CudaSharedMemoryUnregister":
            .sharedMemory
        case "ModelStatistics": .statistics
        case "ModelConfig": .modelConfig
        default: nil
        }
    }
}

/// Which endpoint groups need which header, parsed from Triton's `API[,API...]:HEADER=VALUE`
/// (the option may be given several times; a group may be named once).
public struct APIRestrictions: Sendable, Equatable {
    /// The header (HTTP header or gRPC metadata key, compared without case) and value a group needs.
    public struct Requirement: Sendable, Equatable {
        /// The header's name, lowercased.
        public var header: String
        /// The value it must carry exactly.
        public var value: String

        /// Creates a requirement; `header` is compared without case.
        public init(header: String, value: String) {
            self.header = header.lowercased()
            self.value = value
        }
    }

    /// Requirements by group; a group not named is open.
    public var requirements: [RestrictedAPI: Requirement] = [:]

    /// No restriction.
    public init() {}

    /// Parses option values such as `model-repository,shared-memory:admin-key=s3cret`.
    public init(parsing specifications: [String], option: String) throws(ServerError) {
        for specification in specifications {
            guard let colon = specification.firstIndex(of: ":") else {
                throw .badRequest("\(option) '\(specification)' must be API[,API...]:HEADER=VALUE")
            }
            let apis = specification[..<colon].split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            let pair = specification[specification.index(after: colon)...]
            guard let equals = pair.firstIndex(of: "=") else {
                throw .badRequest("\(option) '\(specification)' must be API[,API...]:HEADER=VALUE")
            }
            let header = pair[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            let value = String(pair[pair.index(after: equals)...])
            guard !header.isEmpty, !value.isEmpty, !apis.isEmpty,
                header.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ":") })
            else {
                throw .badRequest(
                    "\(option) '\(specification)' needs at least one API, a header name and a non-empty value")
            }
            for name in apis {
                guard let api = RestrictedAPI(rawValue: name) else {
                    throw .badRequest(
                        "\(option): unknown API '\(name)' (known: \(RestrictedAPI.allCases.map(\.rawValue).joined(separator: ", ")))"
                    )
                }
                guard requirements[api] == nil else {
                    throw .badRequest("\(option): API '\(name)' is restricted twice")
                }
                requirements[api] = Requirement(header: header, value: value)
            }
        }
    }

    /// Refuses (403) a call to `api` whose headers lack the required one; `header(name)` reads a
    /// header's value by its lowercased name.
    public func check(_ api: RestrictedAPI?, header: (String) -> String?) throws(ServerError) {
        guard let api, let requirement = requirements[api] else { return }
        guard header(requirement.header) == requirement.value else {
            throw .forbidden(
                "the '\(api.rawValue)' API is restricted (--http-restricted-api / --grpc-restricted-protocol): this call needs the header '\(requirement.header)' with its configured value"
            )
        }
    }
}

/// Refuses HTTP calls to a restricted endpoint group that lack the group's header (403), before
/// any handler runs.
struct RestrictedAPIMiddleware<Context: RequestContext>: RouterMiddleware {
    let restrictions: APIRestrictions

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        try restrictions.check(RestrictedAPI.group(httpPath: request.uri.path)) { name in
            HTTPField.Name(name).flatMap { request.headers[$0] }
        }
        return try await next(request, context)
    }
}

/// Refuses gRPC calls to a restricted method group that lack the group's metadata key
/// (PERMISSION_DENIED), before the handler runs.
struct RestrictedAPIInterceptor: ServerInterceptor {
    let restrictions: APIRestrictions

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        do {
            try restrictions.check(RestrictedAPI.group(grpcMethod: context.descriptor.method)) { name in
                request.metadata[stringValues: name].first(where: { _ in true })
            }
        } catch {
            return StreamingServerResponse(error: GRPCInferenceService.rpcError(error))
        }
        return try await next(request, context)
    }
}

/// What the status document says about the platform: the cores used and where they came from,
/// the CPU split, and the memory limit where one is set.
public struct PlatformStatus: Sendable {
    /// The process's core budget.
    public var budget: CPUBudget
    /// How the cores are split between compute and I/O.
    public var placement: CPUPlacement

    /// From the server's settings.
    public init(settings: ServerSettings) {
        budget = settings.cpuBudget
        placement = settings.placement
    }

    /// The status document's CPU fields.
    var cpuDocument: ServerStatusDocument.CPU {
        ServerStatusDocument.CPU(
            cores: budget.cores, source: budget.source.rawValue, allowedCpus: CPUPlacement.list(budget.allowedCPUs),
            quotaCores: budget.quotaCores, computeCores: placement.computeCores, ioCores: placement.io.count,
            computeCpus: CPUPlacement.list(placement.compute))
    }
}
