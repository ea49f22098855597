import DNNScaler
import DNNScalerServer
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// The KServe v2 / Triton HTTP protocol over a real socket, against real models.
@Suite(.serialized) struct ProtocolTests {
    @Test func healthMetadataAndConfig() async throws {
        let server = try await ServerTestSupport.server(models: ["simple", "linear_hand"])
        try await ServerTestSupport.withLiveServer(server) { client in
            try await client.execute(uri: "/v2/health/live", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v2/health/ready", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v2", method: .get) { response in
                let object = try #require(try ServerTestSupport.json(response) as? [String: Any])
                #expect(object["name"] as? String == "dnnscaler")
                #expect((object["extensions"] as? [String])?.contains("binary_tensor_data") == true)
                #expect((object["extensions"] as? [String])?.contains("statistics") == true)
            }
            try await client.execute(uri: "/v2/models/simple", method: .get) { response in
                let object = try #require(try ServerTestSupport.json(response) as? [String: Any])
                #expect(object["platform"] as? String == "onnxruntime_onnx")
                #expect(object["versions"] as? [String] == ["1"])
                let inputs = try #require(object["inputs"] as? [[String: Any]])
                #expect(inputs.map { $0["name"] as? String } == ["INPUT0", "INPUT1"])
                #expect(inputs.first?["datatype"] as? String == "INT32")
                #expect(inputs.first?["shape"] as? [Int] == [-1, 16])
            }
            try await client.execute(uri: "/v2/models/simple/versions/1/ready", method: .get) {
                #expect($0.status == .ok)
            }
            try await client.execute(uri: "/v2/models/simple/config", method: .get) { response in
                let object = try #require(try ServerTestSupport.json(response) as? [String: Any])
                #expect((object["max_batch_size"] as? Int ?? 0) > 0)
                let input = try #require((object["input"] as? [[String: Any]])?.first)
                #expect(input["data_type"] as? String == "TYPE_INT32")
                #expect(input["dims"] as? [String] == ["16"])
                #expect(object["dynamic_batching"] != nil)
            }
        }
    }

    @Test func jsonInferenceMatchesHandComputedValues() async throws {
        let server = try await ServerTestSupport.server(models: ["linear_hand"])
        try await ServerTestSupport.withLiveServer(server) { client in
            let request: [String: Any] = [
                "id": "req-7",
                "inputs": [["name": "x", "datatype": "FP32", "shape": [2, 3], "data": [[1, 2, 3], [-1, 0.5, 2]]]],
            ]
            try await client.execute(
                uri: "/v2/models/linear_hand/infer", method: .post, body: try ServerTestSupport.body(request)
            ) { response in
                #expect(response.status == .ok)
                let object = try #require(try ServerTestSupport.json(response) as? [String: Any])
                #expect(object["id"] as? String == "req-7")
                #expect(object["model_name"] as? String == "linear_hand")
                let output = try #require((object["outputs"] as? [[String: Any]])?.first)
                #expect(output["name"] as? String == "y")
                #expect(output["shape"] as? [Int] == [2, 2])
                #expect(output["data"] as? [Double] == [-3.5, 10, -5.5, 7.25])
            }
        }
    }

    @Test func binaryTensorsInBothDirections() async throws {
        let server = try await ServerTestSupport.server(models: ["simple"])
        try await ServerTestSupport.withLiveServer(server) { client in
            let a = (0..<32).map { Int32($0 * 11 - 100) }
            let b = (0..<32).map { Int32(7 - $0) }
            let header: [String: Any] = [
                "inputs": [
                    [
                        "name": "INPUT0", "datatype": "INT32", "shape": [2, 16],
                        "parameters": ["binary_data_size": 128],
                    ],
                    [
                        "name": "INPUT1", "datatype": "INT32", "shape": [2, 16],
                        "parameters": ["binary_data_size": 128],
                    ],
                ],
                "outputs": [
                    ["name": "OUTPUT0", "parameters": ["binary_data": true]],
                    ["name": "OUTPUT1", "parameters": ["binary_data": false]],
                ],
            ]
            let json = try JSONSerialization.data(withJSONObject: header)
            var body = ByteBuffer(bytes: json)
            a.withUnsafeBytes { _ = body.writeBytes($0) }
            b.withUnsafeBytes { _ = body.writeBytes($0) }
            try await client.execute(
                uri: "/v2/models/simple/infer", method: .post,
                headers: [
                    ServerTestSupport.headerLength: String(json.count), .contentType: "application/octet-stream",
                ],
                body: body
            ) { response in
                #expect(response.status == .ok)
                let jsonLength = try #require(response.headers[ServerTestSupport.headerLength].flatMap { Int($0) })
                let bytes = Array(response.body.readableBytesView)
                let object = try #require(
                    try JSONSerialization.jsonObject(with: Data(bytes[0..<jsonLength])) as? [String: Any])
                let outputs = try #require(object["outputs"] as? [[String: Any]])
                #expect(outputs.map { $0["name"] as? String } == ["OUTPUT0", "OUTPUT1"])
                #expect((outputs[0]["parameters"] as? [String: Any])?["binary_data_size"] as? Int == 128)
                let sums = bytes[jsonLength...].withUnsafeBytes { Array($0.bindMemory(to: Int32.self)) }
                #expect(sums == zip(a, b).map { $0 + $1 })
                #expect(outputs[1]["data"] as? [Int] == zip(a, b).map { Int($0 - $1) })
            }
        }
    }

    @Test func badRequestsGetClearErrorsAndTheServerKeepsServing() async throws {
        let server = try await ServerTestSupport.server(models: ["simple", "linear_hand"], maxBodyBytes: 4096)
        try await ServerTestSupport.withLiveServer(server) { client in
            func expectError(
                _ uri: String, body: ByteBuffer?, headers: HTTPFields = [:], status: HTTPResponse.Status,
                containing text: String
            ) async throws {
                try await client.execute(uri: uri, method: body == nil ? .get : .post, headers: headers, body: body) {
                    response in
                    #expect(response.status == status, "\(uri): \(String(buffer: response.body))")
                    let object = try ServerTestSupport.json(response) as? [String: Any]
                    let message = object?["error"] as? String ?? ""
                    #expect(message.contains(text), "\(uri): '\(message)' lacks '\(text)'")
                }
            }
            let infer = "/v2/models/linear_hand/infer"
            func input(_ fields: [String: Any]) throws -> ByteBuffer {
                try ServerTestSupport.body([
                    "inputs": [["name": "x", "datatype": "FP32", "shape": [1, 3]].merging(fields) { $1 }]
                ])
            }
            try await expectError("/v2/models/nope", body: nil, status: .notFound, containing: "unknown model 'nope'")
            try await expectError(
                "/v2/models/simple/versions/9", body: nil, status: .notFound, containing: "no version '9'")
            try await expectError(
                "/v2/models/nope/infer", body: try input(["data": [1, 2, 3]]), status: .notFound,
                containing: "unknown model")
            try await expectError(
                infer, body: ByteBuffer(string: "{\"inputs\": [1,"), status: .badRequest, containing: "malformed JSON")
            try await expectError(
                infer, body: ByteBuffer(string: "[1, 2]"), status: .badRequest, containing: "JSON object")
            try await expectError(
                infer, body: try input(["data": [1, 2]]), status: .badRequest,
                containing: "has 2 values, shape [1, 3] needs 3")
            try await expectError(
                infer, body: try input(["datatype": "FP64", "data": [1, 2, 3]]), status: .badRequest,
                containing: "must be FP32, got FP64")
            try await expectError(
                infer, body: try input(["datatype": "STRINGY", "data": [1, 2, 3]]), status: .badRequest,
                containing: "unsupported datatype 'STRINGY'")
            try await expectError(
                infer, body: try input(["shape": [1, 4], "data": [1, 2, 3, 4]]), status: .badRequest,
                containing: "has shape [1, 4], the model expects [-1, 3]")
            try await expectError(
                infer, body: try input(["name": "X", "data": [1, 2, 3]]), status: .badRequest,
                containing: "no input 'X'")
            try await expectError(
                infer, body: try input(["shape": [Int.max, Int.max], "data": [1]]), status: .badRequest,
                containing: "too large")
            try await expectError(
                infer, body: try input(["shape": [1, -3], "data": [1]]), status: .badRequest, containing: "non-negative"
            )
            try await expectError(
                infer,
                body: try ServerTestSupport.body([
                    "inputs": [["name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]]],
                    "outputs": [["name": "z"]],
                ]), status: .badRequest, containing: "no output 'z'")
            try await expectError(
                infer, body: try input(["data": [1, 2, 3]]), headers: [ServerTestSupport.headerLength: "99999"],
                status: .badRequest, containing: "Inference-Header-Content-Length is 99999")
            try await expectError(
                infer, body: try input(["data": [1, 2, 3]]), headers: [ServerTestSupport.headerLength: "abc"],
                status: .badRequest, containing: "must be an integer")
            // A binary request: `header` (the JSON part), then `padding` zero bytes of tensor data,
            // with Inference-Header-Content-Length saying the header's length unless `headerLength` does.
            func expectBinaryError(
                _ header: ByteBuffer, padding: Int, headerLength: String? = nil, status: HTTPResponse.Status,
                containing text: String
            ) async throws {
                var body = header
                body.writeBytes([UInt8](repeating: 0, count: padding))
                try await expectError(
                    infer, body: body,
                    headers: [ServerTestSupport.headerLength: headerLength ?? String(header.readableBytes)],
                    status: status, containing: text)
            }
            // Binary data shorter than declared, and bytes no input claims.
            let header = ByteBuffer(
                bytes: try JSONSerialization.data(withJSONObject: [
                    "inputs": [
                        ["name": "x", "datatype": "FP32", "shape": [1, 3], "parameters": ["binary_data_size": 12]]
                    ]
                ]))
            try await expectBinaryError(header, padding: 8, status: .badRequest, containing: "short of its binary data")
            try await expectBinaryError(header, padding: 20, status: .badRequest, containing: "no input claims")
            try await expectError(
                infer, body: ByteBuffer(bytes: [UInt8](repeating: 0x20, count: 5000)), status: .contentTooLarge,
                containing: "4096-byte limit")
            // Binary bodies are decoded as they arrive: a bad header is refused before the tensor bytes
            // are read (they are drained, and the connection serves the next request), and a body
            // over the limit is a 413 there too; also a negative header length.
            try await expectBinaryError(
                ByteBuffer(string: #"{"inputs": [ oops"#), padding: 3000, status: .badRequest,
                containing: "malformed JSON")
            try await expectBinaryError(header, padding: 5000, status: .contentTooLarge, containing: "4096-byte limit")
            try await expectBinaryError(
                header, padding: 20, headerLength: "-4", status: .badRequest, containing: "must not be negative")
            try await expectError(
                infer, body: ByteBuffer(bytes: [0xFF, 0xFE, 0x7B]), status: .badRequest, containing: "malformed JSON")
            // Still serving.
            try await client.execute(uri: infer, method: .post, body: try input(["data": [1, 2, 3]])) { response in
                #expect(response.status == .ok)
            }
        }
    }

    @Test func concurrentClientsGetTheirOwnOutputs() async throws {
        let server = try await ServerTestSupport.server(
            models: ["linear_hand"], defaults: ServerTestSupport.batchingOptions)
        try await ServerTestSupport.withLiveServer(server) { client in
            let port = try #require(client.port)
            // 32 connections at once, each sending 8 requests one after another, every input distinct.
            @Sendable func x(_ index: Int, _ round: Int) -> [Double] {
                [Double(index), Double(round) * 0.5, Double(index % 3) - 1]
            }
            try await ServerTestSupport.concurrentJSONClients(
                port: port, uri: "/v2/models/linear_hand/infer", connections: 32, rounds: 8,
                request: { connection, round in
                    let index = connection * 8 + round
                    return [
                        "id": "\(index)",
                        "inputs": [["name": "x", "datatype": "FP32", "shape": [1, 3], "data": x(index, round)]],
                    ]
                },
                check: { connection, round, object in
                    let index = connection * 8 + round
                    let x = x(index, round)
                    let expected = [x[0] + 2 * x[1] - 3 * x[2] + 0.5, -x[0] + 0.5 * x[1] + 4 * x[2] - 2]
                    #expect(object["id"] as? String == "\(index)")
                    let data = (object["outputs"] as? [[String: Any]])?.first?["data"] as? [Double]
                    #expect(data == expected.map { Double(Float($0)) })
                })
            try await client.execute(uri: "/v2/models/linear_hand/stats", method: .get) { response in
                let object = try #require(try ServerTestSupport.json(response) as? [String: Any])
                let stats = try #require((object["model_stats"] as? [[String: Any]])?.first)
                #expect(stats["version"] as? String == "1")
                #expect(stats["inference_count"] as? Int == 256)
                let executions = try #require(stats["execution_count"] as? Int)
                #expect(executions < 256, "concurrent requests should have been batched")
                let inference = try #require(stats["inference_stats"] as? [String: [String: Int]])
                #expect(inference["success"]?["count"] == 256)
                #expect(inference["queue"]?["count"] == 256)
                #expect(inference["compute_input"]?["count"] == inference["compute_infer"]?["count"])
                #expect(inference["compute_output"]?["count"] == inference["compute_infer"]?["count"])
            }
        }
    }
}

@Suite(.serialized) struct ProtocolEdgeTests {
    @Test func batchesOverTheLimitAndBooleansAsNumbersAreRefused() async throws {
        let server = try await ServerTestSupport.server(
            models: ["linear_hand"], defaults: ModelServingOptions(sloMs: 5000, maxBatchSize: 4, probeSeconds: 0.05))
        try await ServerTestSupport.withLiveServer(server) { client in
            let tooBig: [String: Any] = [
                "inputs": [
                    ["name": "x", "datatype": "FP32", "shape": [5, 3], "data": [Double](repeating: 1, count: 15)]
                ]
            ]
            try await client.execute(
                uri: "/v2/models/linear_hand/infer", method: .post, body: try ServerTestSupport.body(tooBig)
            ) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("batch size 5 exceeds the model's max_batch_size 4"))
            }
            let booleans: [String: Any] = [
                "inputs": [["name": "x", "datatype": "FP32", "shape": [1, 3], "data": [true, false, true]]]
            ]
            try await client.execute(
                uri: "/v2/models/linear_hand/infer", method: .post, body: try ServerTestSupport.body(booleans)
            ) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("must be numbers, got true"))
            }
            let noID: [String: Any] = [
                "inputs": [["name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]]]
            ]
            try await client.execute(
                uri: "/v2/models/linear_hand/infer", method: .post, body: try ServerTestSupport.body(noID)
            ) { response in
                let object = try #require(try ServerTestSupport.json(response) as? [String: Any])
                #expect(object["id"] == nil)
            }
        }
    }
}
