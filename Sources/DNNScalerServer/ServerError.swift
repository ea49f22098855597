import DNNScaler
import Foundation
import Hummingbird

/// An error as the KServe v2 protocol shows it: an HTTP status and `{"error": "<message>"}`.
/// Every library error is mapped to a status here, in one place.
public struct ServerError: Error, Sendable, Equatable, CustomStringConvertible, HTTPResponseError {
    /// The HTTP status.
    public var status: HTTPResponse.Status
    /// The message for the client.
    public var message: String

    /// Creates an error.
    public init(status: HTTPResponse.Status, message: String) {
        self.status = status
        self.message = message
    }

    /// 400 Bad Request.
    public static func badRequest(_ message: String) -> ServerError {
        ServerError(status: .badRequest, message: message)
    }
    /// 403 Forbidden: the server is configured not to do this for clients (model control off, a
    /// restricted API without its header). Not 503: balancers retry a 503 elsewhere.
    public static func forbidden(_ message: String) -> ServerError {
        ServerError(status: .forbidden, message: message)
    }
    /// 404 Not Found.
    public static func notFound(_ message: String) -> ServerError { ServerError(status: .notFound, message: message) }
    /// 413 Content Too Large: a request body over `limit` bytes.
    public static func bodyTooLarge(limit: Int) -> ServerError {
        ServerError(status: .contentTooLarge, message: "request body exceeds the \(limit)-byte limit")
    }
    /// 503 Service Unavailable.
    public static func unavailable(_ message: String) -> ServerError {
        ServerError(status: .serviceUnavailable, message: message)
    }

    /// The message.
    public var description: String { message }

    /// Maps a scheduling error: shed and unavailable are 503, client mistakes 400, backend failures 500.
    public init(_ error: SchedulingError) {
        switch error {
        case .queueFull, .deadlineUnreachable, .deadlineExpired, .unavailable:
            self = .unavailable(error.description)
        case .backend(let backendError):
            self.init(backendError)
        }
    }

    /// Maps a backend error: request mistakes are 400, the runtime failing is 500.
    public init(_ error: BackendError) {
        switch error {
        case .unknownInput, .missingInput, .unknownOutput, .dataTypeMismatch, .shapeMismatch, .invalidTensor,
            .invalidArgument:
            self = .badRequest(error.description)
        case .runtimeFailed, .modelLoadFailed, .unsupportedModel, .modelNotFound, .libraryNotFound, .libraryUnusable:
            self = ServerError(status: .internalServerError, message: error.description)
        }
    }

    /// `{"error": "<message>"}` with the status.
    public func response(from request: Request, context: some RequestContext) throws -> Response {
        Response.json(["error": message], status: status)
    }
}

extension Response {
    /// A JSON response from a JSON-serialisable value.
    static func json(_ object: Any, status: HTTPResponse.Status = .ok) -> Response {
        let data =
            (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]))
            ?? Data(#"{"error": "response could not be encoded"}"#.utf8)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
    }
}
