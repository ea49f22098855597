import DNNScaler
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InferenceProtocol
import Testing

@testable import DNNScalerServer

/// The documents both front ends answer with come from one typed value: HTTP's JSON and gRPC's
/// messages say the same of the same model, and the JSON keeps the keys clients read.
@Suite(.serialized) struct ServingDocumentTests {
    static func document<Document: Decodable>(
        _ type: Document.Type, _ uri: String, from client: some TestClientProtocol
    ) async throws -> Document {
        try await client.execute(uri: uri, method: .get) { response in
            #expect(response.status == .ok, "\(uri): \(String(buffer: response.body))")
            return try ServingDocuments.decoder.decode(Document.self, from: Data(response.body.readableBytesView))
        }
    }

    @Test func httpAndGRPCDescribeTheModelAlike() async throws {
        try await GRPCFrontEndTests.withGRPCServer(models: ["simple"]) { grpc, server in
            let ones = [Int32](repeating: 1, count: 16)
            _ = try await grpc.modelInfer(GRPCFrontEndTests.simpleRequest(ones, ones))
            try await server.httpApplication().test(.router) { http in
                let metadata = try await Self.document(ModelMetadataDocument.self, "/v2/models/simple", from: http)
                let grpcMetadata = try await grpc.modelMetadata(.with { $0.name = "simple" })
                #expect(metadata.inputs.map(\.name) == ["INPUT0", "INPUT1"])
                #expect(grpcMetadata.inputs.map(\.name) == metadata.inputs.map(\.name))
                #expect(grpcMetadata.inputs.map(\.datatype) == metadata.inputs.map(\.datatype))
                #expect(grpcMetadata.outputs.map { $0.shape.map(Int.init) } == metadata.outputs.map(\.shape))
                #expect(grpcMetadata.versions == metadata.versions)

                let config = try await Self.document(ModelConfigDocument.self, "/v2/models/simple/config", from: http)
                let grpcConfig = try await grpc.modelConfig(.with { $0.name = "simple" }).config
                #expect(config.input.map(\.dataType) == ["TYPE_INT32", "TYPE_INT32"])
                #expect(grpcConfig.input.map(\.dataType) == [.typeInt32, .typeInt32])
                #expect(grpcConfig.input.map(\.dims) == config.input.map(\.dims))
                #expect(Int(grpcConfig.maxBatchSize) == config.maxBatchSize)
                #expect(grpcConfig.instanceGroup.map { Int($0.count) } == config.instanceGroup.map(\.count))
                #expect(grpcConfig.parameters["dnnscaler.instances"]?.stringValue == String(config.dnnscaler.instances))
                #expect(grpcConfig.parameters["dnnscaler.policy"]?.stringValue == config.dnnscaler.policy)
                #expect(
                    grpcConfig.dynamicBatching.defaultQueuePolicy.maxQueueSize
                        == UInt32(config.dynamicBatching.defaultQueuePolicy.maxQueueSize))

                let statistics = try await Self.document(
                    ModelStatisticsListDocument.self, "/v2/models/simple/stats", from: http
                ).modelStats
                let grpcStatistics = try await grpc.modelStatistics(.with { $0.name = "simple" }).modelStats
                #expect(statistics.first?.inferenceStats.success.count == 1)
                #expect(
                    grpcStatistics.map(\.inferenceStats.success.count) == statistics.map(\.inferenceStats.success.count)
                )
                #expect(grpcStatistics.map(\.executionCount) == statistics.map(\.executionCount))
                #expect(
                    grpcStatistics.first?.batchStats.map { Int($0.batchSize) }
                        == statistics.first?.batchStats.map(\.batchSize))
            }
        }
    }

    @Test func theJSONKeepsTheKeysClientsRead() async throws {
        let server = try await ServerTestSupport.server(models: ["simple"])
        try await ServerTestSupport.withLiveServer(server) { client in
            try await client.execute(uri: "/v2/models/simple/config", method: .get) { response in
                let config = try #require(try ServerTestSupport.json(response) as? [String: Any])
                let batching = try #require(config["dynamic_batching"] as? [String: Any])
                // Protobuf's JSON mapping: 64-bit integers as strings.
                #expect(batching["max_queue_delay_microseconds"] is String)
                let input = try #require((config["input"] as? [[String: Any]])?.first)
                #expect(input["dims"] as? [String] == ["16"])
                #expect(input["data_type"] as? String == "TYPE_INT32")
            }
            try await client.execute(uri: "/dnnscaler/status", method: .get) { response in
                let status = try #require(try ServerTestSupport.json(response) as? [String: Any])
                let model = try #require((status["models"] as? [[String: Any]])?.first)
                // A value not known yet is null, not a missing key.
                for key in ["window_tail_latency_ms", "capacity", "profile", "slo_ms", "queue_length"] {
                    #expect(model.keys.contains(key), "status lacks \(key)")
                }
                let server = try #require(status["server"] as? [String: Any])
                #expect(server["model_control_mode"] as? String == "none")
                let typed = try ServingDocuments.decoder.decode(
                    ServerStatusDocument.self, from: Data(response.body.readableBytesView))
                #expect(typed.models.map(\.name) == ["simple"])
                #expect(typed.models.first?.configuration.instances ?? 0 >= 1)
            }
        }
    }
}
