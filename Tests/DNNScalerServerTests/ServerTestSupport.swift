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
        maxBodyBytes: Int = 64 << 20, allowClientSharedMemory: Bool = false
    ) async throws -> InferenceServer {
        let runtime = try OnnxRuntime.load(
            libraryPath: ProcessInfo.processInfo.environment[OnnxRuntime.libraryEnvironmentVariable])
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        let options = defaults ?? ModelServingOptions(sloMs: 5000, policy: .joint, probeSeconds: 0.05)
        let server = InferenceServer(
            settings: ServerSettings(
                host: "127.0.0.1", httpPort: 0, metricsPort: 0, repository: repository, models: models,
                defaults: options, maxBodyBytes: maxBodyBytes, allowClientSharedMemory: allowClientSharedMemory),
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
}
