import DNNScaler
import DNNScalerServer
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import InferenceProtocol
import Logging
import ServiceLifecycle
import Testing

/// The gRPC front end over a real socket, with the real ONNX Runtime behind it, driven by
/// grpc-swift's client (tritonclient and perf_analyzer drive it in Tests/Interop).
@Suite(.serialized) struct GRPCFrontEndTests {
    typealias Client = Inference_GRPCInferenceService.Client<HTTP2ClientTransport.Posix>

    /// Serves `models` on a free port, runs `body` with a client, then shuts the server down.
    static func withGRPCServer(
        models: [String], maxMessageBytes: Int = 64 << 20, allowClientSharedMemory: Bool = false,
        repository: ModelRepository = ServerTestSupport.repository, modelControlMode: ModelControlMode = .none,
        restrictions: APIRestrictions = APIRestrictions(), _ body: @Sendable (Client) async throws -> Void
    ) async throws {
        try await withGRPCServer(
            models: models, maxMessageBytes: maxMessageBytes, allowClientSharedMemory: allowClientSharedMemory,
            repository: repository, modelControlMode: modelControlMode, restrictions: restrictions
        ) { client, _ in try await body(client) }
    }

    /// As above, with the server too (its HTTP application serves the same models).
    static func withGRPCServer(
        models: [String], maxMessageBytes: Int = 64 << 20, allowClientSharedMemory: Bool = false,
        repository: ModelRepository = ServerTestSupport.repository, modelControlMode: ModelControlMode = .none,
        restrictions: APIRestrictions = APIRestrictions(),
        _ body: @Sendable (Client, InferenceServer) async throws -> Void
    ) async throws {
        let server = try await ServerTestSupport.server(
            models: models, repository: repository, allowClientSharedMemory: allowClientSharedMemory,
            modelControlMode: modelControlMode)
        var logger = Logger(label: "test-grpc")
        logger.logLevel = .warning
        let frontEnd = GRPCFrontEnd(
            service: GRPCInferenceService(
                manager: server.manager, metrics: server.metrics, maxRequestBytes: maxMessageBytes,
                sharedMemory: server.sharedMemory),
            host: "127.0.0.1", port: 0, restrictions: restrictions, logger: logger)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await frontEnd.run() }
            let port = try #require(await frontEnd.listeningPort)
            let transport = try HTTP2ClientTransport.Posix(
                target: .ipv4(address: "127.0.0.1", port: port), transportSecurity: .plaintext,
                config: .defaults { $0.http2.maxFrameSize = 1 << 20 })
            do {
                try await withGRPCClient(transport: transport) { client in
                    try await body(Client(wrapping: client), server)
                }
            } catch {
                group.cancelAll()
                await server.manager.stopAll()
                throw error
            }
            group.cancelAll()
        }
        await server.manager.stopAll()
    }

    static func simpleRequest(_ a: [Int32], _ b: [Int32], id: String = "") -> Inference_ModelInferRequest {
        .with {
            $0.modelName = "simple"
            $0.id = id
            $0.inputs = ["INPUT0", "INPUT1"].map { name in
                .with {
                    $0.name = name
                    $0.datatype = "INT32"
                    $0.shape = [1, 16]
                }
            }
            $0.rawInputContents = [a, b].map { values in values.withUnsafeBytes { Data($0) } }
        }
    }

    static func int32s(_ data: Data) -> [Int32] {
        data.withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
    }

    /// The gRPC status an RPC ends with, or nil if it succeeded.
    static func status(_ call: () async throws -> Void) async -> RPCError.Code? {
        do {
            try await call()
            return nil
        } catch let error as RPCError {
            return error.code
        } catch {
            return .unknown
        }
    }

    static func parameter(_ text: String) -> Inference_InferParameter { .with { $0.stringParam = text } }
    static func parameter(_ value: Int) -> Inference_InferParameter { .with { $0.int64Param = Int64(value) } }

    @Test func sharedMemoryAndMessageTensorsTogether() async throws {
        let memory = try ClientSharedMemory(suffix: "grpc", size: 4096)
        let a = (0..<16).map { Int32($0 * 17 - 90) }
        let b = (0..<16).map { Int32(40 - $0) }
        memory.write(a, at: 0)
        try await Self.withGRPCServer(models: ["simple"], allowClientSharedMemory: true) { client in
            _ = try await client.systemSharedMemoryRegister(
                .with {
                    $0.name = "region"
                    $0.key = memory.key
                    $0.byteSize = 1024
                })
            let status = try await client.systemSharedMemoryStatus(.with { _ in })
            #expect(status.regions["region"]?.key == memory.key)
            #expect(status.regions["region"]?.byteSize == 1024)
            // INPUT0 and OUTPUT0 in shared memory; INPUT1's bytes and OUTPUT1's in the message.
            var request = Self.simpleRequest(a, b)
            request.inputs[0].parameters = [
                "shared_memory_region": Self.parameter("region"), "shared_memory_byte_size": Self.parameter(64),
            ]
            request.rawInputContents = [b.withUnsafeBytes { Data($0) }]
            request.outputs = [
                .with {
                    $0.name = "OUTPUT0"
                    $0.parameters = [
                        "shared_memory_region": Self.parameter("region"),
                        "shared_memory_byte_size": Self.parameter(64), "shared_memory_offset": Self.parameter(512),
                    ]
                },
                .with { $0.name = "OUTPUT1" },
            ]
            let response = try await client.modelInfer(request)
            #expect(response.outputs.map(\.name) == ["OUTPUT0", "OUTPUT1"])
            #expect(response.rawOutputContents.map(\.count) == [0, 64])
            #expect(memory.read(count: 16, at: 512) == zip(a, b).map { $0 + $1 })
            #expect(Self.int32s(response.rawOutputContents[1]) == zip(a, b).map { $0 - $1 })

            // Two raw entries for one input outside shared memory; an unknown region; a CUDA region.
            var tooMany = request
            tooMany.rawInputContents.append(Data(count: 64))
            #expect(await Self.status { _ = try await client.modelInfer(tooMany) } == .invalidArgument)
            var unknown = request
            unknown.inputs[0].parameters["shared_memory_region"] = Self.parameter("nope")
            #expect(await Self.status { _ = try await client.modelInfer(unknown) } == .invalidArgument)
            #expect(
                await Self.status {
                    _ = try await client.cudaSharedMemoryRegister(.with { $0.name = "gpu" })
                } == .invalidArgument)
            _ = try await client.systemSharedMemoryUnregister(.with { _ in })
            #expect(try await client.systemSharedMemoryStatus(.with { _ in }).regions.isEmpty)
            #expect(await Self.status { _ = try await client.modelInfer(request) } == .invalidArgument)
            // Still serving.
            let plain = try await client.modelInfer(Self.simpleRequest(a, b))
            #expect(Self.int32s(plain.rawOutputContents[0]) == zip(a, b).map { $0 + $1 })
        }
    }

    @Test func sharedMemoryIsRefusedUnlessEnabled() async throws {
        try await Self.withGRPCServer(models: ["simple"]) { client in
            let metadata = try await client.serverMetadata(.with { _ in })
            #expect(!metadata.extensions.contains("system_shared_memory"))
            #expect(
                await Self.status {
                    _ = try await client.systemSharedMemoryRegister(
                        .with {
                            $0.name = "region"
                            $0.key = "/anything"
                            $0.byteSize = 64
                        })
                } == .invalidArgument)
        }
    }

    @Test func concurrentClientsGetTheirOwnOutputs() async throws {
        try await Self.withGRPCServer(models: ["simple"]) { client in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for caller in 0..<16 {
                    group.addTask {
                        for round in 0..<8 {
                            let a = (0..<16).map { Int32(caller * 1000 + round * 16 + $0) }
                            let b = (0..<16).map { Int32(-caller - $0 * round) }
                            let response = try await client.modelInfer(
                                Self.simpleRequest(a, b, id: "\(caller)-\(round)"))
                            #expect(response.id == "\(caller)-\(round)")
                            #expect(response.outputs.map(\.name) == ["OUTPUT0", "OUTPUT1"])
                            #expect(Self.int32s(response.rawOutputContents[0]) == zip(a, b).map { $0 + $1 })
                            #expect(Self.int32s(response.rawOutputContents[1]) == zip(a, b).map { $0 - $1 })
                        }
                    }
                }
                try await group.waitForAll()
            }
            let statistics = try await client.modelStatistics(.with { $0.name = "simple" })
            #expect(statistics.modelStats.first?.inferenceStats.success.count == 128)
        }
    }

    @Test func badRequestsGetTheirStatusCodeAndTheServerKeepsServing() async throws {
        try await Self.withGRPCServer(models: ["simple"], maxMessageBytes: 4096) { client in
            let ones = [Int32](repeating: 1, count: 16)
            var unknownModel = Self.simpleRequest(ones, ones)
            unknownModel.modelName = "nope"
            var badShape = Self.simpleRequest(ones, ones)
            badShape.inputs[0].shape = [1, 15]
            var shortBytes = Self.simpleRequest(ones, ones)
            shortBytes.rawInputContents[1] = Data(count: 3)
            var overflow = Self.simpleRequest(ones, ones)
            overflow.inputs[0].shape = [1 << 40, 1 << 40]
            var typedMismatch = Self.simpleRequest(ones, ones)
            typedMismatch.rawInputContents = []
            typedMismatch.inputs[0].contents.fp32Contents = [1]
            typedMismatch.inputs[1].contents.intContents = ones
            var tooLarge = Self.simpleRequest(ones, ones)
            tooLarge.id = String(repeating: "x", count: 8192)
            let cases: [(String, Inference_ModelInferRequest, RPCError.Code)] = [
                ("unknown model", unknownModel, .notFound), ("bad shape", badShape, .invalidArgument),
                ("short raw bytes", shortBytes, .invalidArgument), ("overflowing shape", overflow, .invalidArgument),
                ("typed contents of the wrong type", typedMismatch, .invalidArgument),
                ("message over the limit", tooLarge, .resourceExhausted),
            ]
            for (what, request, code) in cases {
                let got = await Self.status { _ = try await client.modelInfer(request) }
                #expect(got == code, "\(what): \(String(describing: got)), expected \(code)")
            }
            // Far over the limit (beyond what the transport reads): the stream is reset, the server goes on.
            var huge = Self.simpleRequest(ones, ones)
            huge.id = String(repeating: "y", count: 2 << 20)
            let hugeStatus = await Self.status { _ = try await client.modelInfer(huge) }
            #expect(hugeStatus != nil)
            let ok = try await client.modelInfer(Self.simpleRequest(ones, ones))
            #expect(Self.int32s(ok.rawOutputContents[0]) == [Int32](repeating: 2, count: 16))
            let metadataStatus = await Self.status { _ = try await client.modelMetadata(.with { $0.name = "nope" }) }
            #expect(metadataStatus == .notFound)
            let config = try await client.modelConfig(.with { $0.name = "simple" })
            #expect(config.config.maxBatchSize > 0)
            #expect(config.config.input.map(\.dims) == [[16], [16]])
            #expect(config.config.input.first?.dataType == .typeInt32)
        }
    }
}
