import DNNScaler
import DNNScalerServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// Repository index, load with a config override, unload; a corrupt model next to good ones.
@Suite(.serialized) struct RepositoryTests {
    @Test func loadOverrideChangesSloAndPolicyWithoutRestart() async throws {
        let server = try await ServerTestSupport.server(models: ["simple"], modelControlMode: .explicit)
        try await ServerTestSupport.withLiveServer(server) { client in
            let config = #"{"dnnscaler": {"slo_ms": 42, "policy": "static", "batch_size": 4, "instances": 1}}"#
            try await client.execute(
                uri: "/v2/repository/models/simple/load", method: .post,
                body: try ServerTestSupport.body(["parameters": ["config": config]])
            ) { #expect($0.status == .ok) }
            try await client.execute(uri: "/dnnscaler/status", method: .get) { response in
                let object = try #require(try ServerTestSupport.json(response) as? [String: Any])
                let model = try #require((object["models"] as? [[String: Any]])?.first)
                #expect(model["slo_ms"] as? Double == 42)
                #expect(model["policy"] as? String == "static")
                let configuration = try #require(model["configuration"] as? [String: Any])
                #expect(configuration["batch_limit"] as? Int == 4)
                #expect(configuration["instances"] as? Int == 1)
            }
            try await client.execute(
                uri: "/v2/repository/models/simple/load", method: .post,
                body: try ServerTestSupport.body(["parameters": ["config": #"{"dnnscaler": {"slo_ms": -1}}"#]])
            ) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("slo_ms must be a positive number"))
            }
            try await client.execute(
                uri: "/v2/repository/models/simple/load", method: .post,
                body: try ServerTestSupport.body(["parameters": ["config": #"{"dnnscaler": {"slo": 5}}"#]])
            ) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("unknown field 'dnnscaler.slo'"))
            }
        }
    }

    @Test func unloadAndLoadAgain() async throws {
        let server = try await ServerTestSupport.server(models: ["simple"], modelControlMode: .explicit)
        try await ServerTestSupport.withLiveServer(server) { client in
            try await client.execute(uri: "/v2/repository/models/simple/unload", method: .post) {
                #expect($0.status == .ok)
            }
            try await client.execute(uri: "/v2/models/simple/ready", method: .get) {
                #expect($0.status == .serviceUnavailable)
            }
            try await client.execute(uri: "/v2/repository/index", method: .post) { response in
                let rows = try #require(try ServerTestSupport.json(response) as? [[String: Any]])
                let simple = try #require(rows.first { $0["name"] as? String == "simple" })
                #expect(simple["state"] as? String == "UNAVAILABLE")
                #expect(simple["reason"] as? String == "unloaded")
            }
            try await client.execute(uri: "/v2/repository/models/simple/load", method: .post) {
                #expect($0.status == .ok)
            }
            try await client.execute(uri: "/v2/models/simple/ready", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v2/repository/models/nothere/load", method: .post) {
                #expect($0.status == .notFound)
            }
        }
    }

    @Test func aCorruptModelIsUnavailableWithItsReasonAndOthersServe() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("repo-\(UUID())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: "\(root)/simple/1", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: "\(root)/broken/1", withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            atPath: try ServerTestSupport.repository.modelFile(name: "simple"), toPath: "\(root)/simple/1/model.onnx")
        try Data("not an onnx model".utf8).write(to: URL(fileURLWithPath: "\(root)/broken/1/model.onnx"))
        let server = try await ServerTestSupport.server(
            models: ["broken", "simple"], repository: ModelRepository(root: root))
        try await ServerTestSupport.withLiveServer(server) { client in
            try await client.execute(
                uri: "/v2/repository/index", method: .post, body: try ServerTestSupport.body([String: Any]())
            ) { response in
                let rows = try #require(try ServerTestSupport.json(response) as? [[String: Any]])
                let broken = try #require(rows.first { $0["name"] as? String == "broken" })
                #expect(broken["state"] as? String == "UNAVAILABLE")
                #expect((broken["reason"] as? String)?.contains("Protobuf parsing failed") == true)
                #expect(rows.first { $0["name"] as? String == "simple" }?["state"] as? String == "READY")
            }
            try await client.execute(
                uri: "/v2/repository/index", method: .post, body: try ServerTestSupport.body(["ready": true])
            ) {
                response in
                let rows = try #require(try ServerTestSupport.json(response) as? [[String: Any]])
                #expect(rows.map { $0["name"] as? String } == ["simple"])
            }
            try await client.execute(uri: "/v2/models/broken", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(String(buffer: response.body).contains("Protobuf parsing failed"))
            }
            try await client.execute(uri: "/v2/models/simple", method: .get) { #expect($0.status == .ok) }
        }
    }

    @Test func metricsUseTritonNamesAndShowTheController() async throws {
        let server = try await ServerTestSupport.server(models: ["simple"])
        try await ServerTestSupport.withLiveServer(server) { client in
            let request: [String: Any] = [
                "inputs": [
                    ["name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "data": [Int](repeating: 1, count: 16)],
                    ["name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "data": [Int](repeating: 2, count: 16)],
                ]
            ]
            for _ in 0..<3 {
                try await client.execute(
                    uri: "/v2/models/simple/infer", method: .post, body: try ServerTestSupport.body(request)
                ) { #expect($0.status == .ok) }
            }
            try await client.execute(uri: "/v2/models/simple/infer", method: .post, body: ByteBuffer(string: "{")) {
                #expect($0.status == .badRequest)
            }
        }
        let text = String(decoding: server.metrics.render(models: server.manager.readyModels), as: UTF8.self)
        #expect(text.contains(#"nv_inference_request_success{model="simple",version="1"} 3"#))
        #expect(text.contains(#"nv_inference_request_failure{model="simple",version="1",reason="invalid"} 1"#))
        #expect(text.contains(#"nv_inference_count{model="simple",version="1"} 3"#))
        #expect(text.contains("nv_inference_exec_count"))
        #expect(text.contains("dnnscaler_request_latency_seconds_bucket"))
        #expect(text.contains("dnnscaler_queue_time_seconds_bucket"))
        #expect(text.contains(#"dnnscaler_slo_ms{model="simple",version="1"} 5000"#))
        #expect(text.contains("dnnscaler_batch_limit"))
        #expect(text.contains("dnnscaler_instances"))
        #expect(text.contains("dnnscaler_mode"))
        #expect(text.contains("dnnscaler_shed_total"))
        #expect(text.contains("dnnscaler_window_tail_latency_ms"))
    }
}
