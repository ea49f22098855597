import DNNScaler
import Foundation
import Hummingbird

/// What kind of failure an error is, belonging to no protocol: HTTP maps it to a status
/// (``ServerError/status``) and gRPC to a code (`GRPCInferenceService.rpcError`), each in one place.
public enum ErrorKind: Sendable, Equatable {
    /// The request is wrong (names, shapes, types, data, a malformed body or a hostile name).
    case invalidArgument
    /// No such model, version or region.
    case notFound
    /// The server is configured not to do this for clients (model control off, a restricted API
    /// without its header). Not "unavailable": balancers retry that elsewhere.
    case forbidden
    /// The request is larger than the server accepts.
    case tooLarge
    /// Refused or dropped for load before its deadline could pass (queue full, deadline out of reach).
    case shed
    /// Dropped because its deadline passed, or would have, while it waited.
    case expired
    /// Not ready to serve (loading, unloading, draining).
    case unavailable
    /// The server or its backend failed on a valid request.
    case `internal`
}

/// An error as the protocols show it: a kind and a message for the client.
public struct ServerError: Error, Sendable, Equatable, CustomStringConvertible, HTTPResponseError {
    /// What kind of failure it is.
    public var kind: ErrorKind
    /// The message for the client.
    public var message: String

    /// Creates an error.
    public init(_ kind: ErrorKind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// The request is wrong (400 / INVALID_ARGUMENT).
    public static func badRequest(_ message: String) -> ServerError { ServerError(.invalidArgument, message) }
    /// Not for clients here (403 / PERMISSION_DENIED).
    public static func forbidden(_ message: String) -> ServerError { ServerError(.forbidden, message) }
    /// No such thing (404 / NOT_FOUND).
    public static func notFound(_ message: String) -> ServerError { ServerError(.notFound, message) }
    /// A request body over `limit` bytes (413 / RESOURCE_EXHAUSTED).
    public static func bodyTooLarge(limit: Int) -> ServerError {
        ServerError(.tooLarge, "request body exceeds the \(limit)-byte limit")
    }
    /// Not ready (503 / UNAVAILABLE).
    public static func unavailable(_ message: String) -> ServerError { ServerError(.unavailable, message) }

    /// The message.
    public var description: String { message }

    /// The HTTP status of the kind: shed, expired and unavailable are 503 (retry elsewhere or later).
    public var status: HTTPResponse.Status {
        switch kind {
        case .invalidArgument: .badRequest
        case .notFound: .notFound
        case .forbidden: .forbidden
        case .tooLarge: .contentTooLarge
        case .shed, .expired, .unavailable: .serviceUnavailable
        case .internal: .internalServerError
        }
    }

    /// Maps a scheduling error: load is shed or expired, client mistakes invalid, backend failures internal.
    public init(_ error: SchedulingError) {
        switch error {
        case .queueFull, .deadlineUnreachable: self.init(.shed, error.description)
        case .deadlineExpired: self.init(.expired, error.description)
        case .unavailable: self.init(.unavailable, error.description)
        case .backend(let backendError): self.init(backendError)
        }
    }

    /// Maps a backend error: request mistakes are invalid, the runtime failing is internal.
    public init(_ error: BackendError) {
        switch error {
        case .unknownInput, .missingInput, .unknownOutput, .dataTypeMismatch, .shapeMismatch, .invalidTensor,
            .invalidArgument:
            self.init(.invalidArgument, error.description)
        case .runtimeFailed, .modelLoadFailed, .unsupportedModel, .modelNotFound, .libraryNotFound, .libraryUnusable:
            self.init(.internal, error.description)
        }
    }

    /// `{"error": "<message>"}` with the status.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        Response.json(["error": message], status: status)
    }
}

extension Response {
    /// A JSON response with a document (``ServingDocuments/encoder``).
    static func json(_ document: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let data =
            (try? ServingDocuments.encoder.encode(document))
            ?? Data(#"{"error": "response could not be encoded"}"#.utf8)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
