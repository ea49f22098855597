import DNNScaler
import DNNScalerServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging

enum ServerTestSupport {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let repository = ModelRepository(root: "\(packageRoot)/model_repository")

    /// A server over `repository` with `models` loaded, quick to start.
    static func server(
        models: [String], repository: ModelRepository = repository, defaults: ModelServingOptions? = nil,
        maxBodyBytes: Int = 64 << 20, allowClientSharedMemory: Bool = false,
        modelControlMode: ModelControlMode = .none, httpRestrictions: APIRestrictions = APIRestrictions(),
        grpcRestrictions: APIRestrictions = APIRestrictions()
    ) async throws -> InferenceServer {
        let runtime = try OnnxRuntime.load(
            libraryPath: ProcessInfo.processInfo.environment[OnnxRuntime.libraryEnvironmentVariable])
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let options = defaults ?? ModelServingOptions(sloMs: 5000, policy: .joint, probeSeconds: 0.05)
        let server = InferenceServer(
            settings: ServerSettings(
                host: "127.0.0.1", httpPort: 0, metricsPort: 0, repository: repository, models: models,
                defaults: options, maxBodyBytes: maxBodyBytes, allowClientSharedMemory: allowClientSharedMemory,
                modelControlMode: modelControlMode, httpRestrictions: httpRestrictions,
                grpcRestrictions: grpcRestrictions),
            runtime: runtime, logger: logger)
        await server.manager.loadAll(names: models)
        return server
    }

    /// Runs `body` against the server's HTTP application over a real socket, then drains the models.
    static func withLiveServer(
        _ server: InferenceServer, _ body: @Sendable (any TestClientProtocol) async throws -> Void
    ) async throws {
        do {
            try await server.httpApplication().test(.live) { client in try await body(client) }
        } catch {
            await server.manager.stopAll()
            throw error
        }
        await server.manager.stopAll()
    }

    static func json(_ response: TestResponse) throws -> Any {
        try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView))
    }

    static func body(_ object: Any) throws -> ByteBuffer {
        ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: object))
    }

    static let headerLength = HTTPField.Name("Inference-Header-Content-Length") ?? .contentLength

    /// Static batching (up to 8, 2 instances, 2 ms queue delay): concurrent requests share batches.
    static let batchingOptions = ModelServingOptions(
        sloMs: 5000, policy: .static, staticBatchSize: 8, staticInstances: 2, maxQueueDelayMs: 2, probeSeconds: 0.05)

    /// `connections` clients at once, each on its own keep-alive connection to `port`, each posting
    /// `rounds` JSON requests to `uri` one after another: `request(connection, round)` builds each
    /// body, `check(connection, round, answer)` judges each answer's JSON object.
    static func concurrentJSONClients(
        port: Int, uri: String, connections: Int, rounds: Int,
        request: @escaping @Sendable (Int, Int) -> [String: Any],
        check: @escaping @Sendable (Int, Int, [String: Any]) -> Void
    ) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for connection in 0..<connections {
                group.addTask {
                    let own = TestClient(host: "127.0.0.1", port: port)
                    own.connect()
                    defer { Task { try? await own.shutdown() } }
                    for round in 0..<rounds {
                        let response = try await own.execute(
                            TestClient.Request(
                                uri, method: .post, body: try body(request(connection, round))))
                        let object =
                            try JSONSerialization.jsonObject(
                                with: Data(response.body?.readableBytesView ?? ByteBuffer().readableBytesView))
                            as? [String: Any]
                        check(connection, round, object ?? [:])
                    }
                }
            }
            try await group.waitForAll()
        }
    }
}
