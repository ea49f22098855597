import GRPCCore
import GRPCNIOTransportHTTP2
import Logging
import ServiceLifecycle

/// The gRPC front end as a lifecycle service: serves `inference.GRPCInferenceService` over
/// HTTP/2 (plaintext) until graceful shutdown, when it stops accepting new RPCs and lets the
/// ones in flight finish.
public struct GRPCFrontEnd: Service {
    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let transport: HTTP2ServerTransport.Posix
    private let logger: Logger

    /// Concurrent calls per connection (HTTP/2 streams).
    public static let maxConcurrentStreams = 64
    /// The HTTP/2 flow-control window per stream and per connection, in bytes.
    public static let windowBytes = 1 << 20

    /// Creates the front end on `host:port` (0: any free port). The service refuses requests whose
    /// tensor data exceeds its limit with RESOURCE_EXHAUSTED and a message; the transport takes
    /// messages up to twice that limit (plus 1 MiB) so that those requests reach the service, and
    /// resets the stream of anything larger without reading it.
    /// Calls to a group of `restrictions` need its metadata key (PERMISSION_DENIED otherwise).
    public init(
        service: GRPCInferenceService, host: String, port: Int, restrictions: APIRestrictions = APIRestrictions(),
        logger: Logger
    ) {
        let transportLimit = service.maxRequestBytes.multipliedReportingOverflow(by: 2).partialValue
        transport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: host, port: port), transportSecurity: .plaintext,
            config: .defaults {
                $0.rpc.maxRequestPayloadSize = max(transportLimit, 0) + (1 << 20)
                // Advertised, so that clients queue calls beyond it: left unset, swift-nio-http2
                // still enforces its default of 100 open streams and answers the 101st with a
                // connection-wide GOAWAY (PROTOCOL_ERROR), failing every call on the connection.
                $0.http2.maxConcurrentStreams = Self.maxConcurrentStreams
                // A window of one large request per stream, so that a request's bytes arrive (and it
                // is admitted or refused) without waiting for window updates; memory stays bounded
                // by streams x window.
                $0.http2.targetWindowSize = Self.windowBytes
            })
        server = GRPCServer(
            transport: transport, services: [service],
            interceptors: restrictions.requirements.isEmpty
                ? [] : [RestrictedAPIInterceptor(restrictions: restrictions)])
        self.logger = logger
    }

    /// The port it listens on, once bound.
    public var listeningPort: Int? {
        get async { try? await transport.listeningAddress.ipv4?.port }
    }

    /// Serves until graceful shutdown (or cancellation).
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await server.serve()
        } onGracefulShutdown: {
            logger.info("gRPC: stopping, finishing in-flight RPCs")
            server.beginGracefulShutdown()
        }
    }
}
