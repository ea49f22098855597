import DNNScaler
import DNNScalerServer
import Foundation
import GRPCCore
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import InferenceProtocol
import NIOCore
import Testing

/// BYTES (ONNX STRING) tensors through every way in and out, against `string_echo`: echo = text,
/// number = digits parsed as FP32 (both [batch, 2]).
@Suite(.serialized) struct BytesTensorTests {
    /// A JSON input of BYTES strings.
    static func input(_ name: String, _ values: [String], rows: Int = 1) -> [String: Any] {
        ["name": name, "datatype": "BYTES", "shape": [rows, 2], "data": values]
    }

    /// A binary input: its header entry and its bytes.
    static func binaryInput(_ name: String, _ elements: [[UInt8]], rows: Int = 1) throws -> ([String: Any], [UInt8]) {
        let data = try BytesElements.serialize(elements)
        return (
            ["name": name, "datatype": "BYTES", "shape": [rows, 2], "parameters": ["binary_data_size": data.count]],
            data
        )
    }

    static func binaryBody(header: [String: Any], tensors: [[UInt8]]) throws -> (ByteBuffer, Int) {
        let json = try JSONSerialization.data(withJSONObject: header)
        var body = ByteBuffer(bytes: json)
        for tensor in tensors { body.writeBytes(tensor) }
        return (body, json.count)
    }

    /// Splits a response with binary outputs into its JSON object and the bytes after it.
    static func binaryResponse(_ response: TestResponse) throws -> ([String: Any], [UInt8]) {
        let bytes = Array(response.body.readableBytesView)
        let jsonLength = response.headers[ServerTestSupport.headerLength].flatMap { Int($0) } ?? bytes.count
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(bytes[0..<jsonLength])) as? [String: Any])
        return (object, Array(bytes[jsonLength...]))
    }

    static func output(_ object: [String: Any], _ name: String) -> [String: Any]? {
        (object["outputs"] as? [[String: Any]])?.first { $0["name"] as? String == name }
    }

    static func floats(_ data: Data) -> [Float] {
        data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }

    @Test func jsonStringsRoundTripAndParse() async throws {
        let server = try await ServerTestSupport.server(models: ["string_echo"])
        try await ServerTestSupport.withLiveServer(server) { client in
            try await client.execute(uri: "/v2/models/string_echo", method: .get) { response in
                let object = try #require(try ServerTestSupport.json(response) as? [String: Any])
                let inputs = try #require(object["inputs"] as? [[String: Any]])
                #expect(inputs.map { $0["datatype"] as? String } == ["BYTES", "BYTES"])
                let outputs = try #require(object["outputs"] as? [[String: Any]])
                #expect(outputs.map { $0["datatype"] as? String } == ["BYTES", "FP32"])
            }
            try await client.execute(uri: "/v2/models/string_echo/config", method: .get) { response in
                let object = try #require(try ServerTestSupport.json(response) as? [String: Any])
                #expect((object["input"] as? [[String: Any]])?.first?["data_type"] as? String == "TYPE_STRING")
            }
            let text = ["ünïcode ✓", "", "tab\there", "\"quoted\" \\ slash"]
            let request: [String: Any] = [
                "inputs": [
                    Self.input("text", text, rows: 2), Self.input("digits", ["1.5", "-2", "1e3", "0.25"], rows: 2),
                ]
            ]
            try await client.execute(
                uri: "/v2/models/string_echo/infer", method: .post, body: try ServerTestSupport.body(request)
            ) { response in
                #expect(response.status == .ok)
                let object = try #require(try ServerTestSupport.json(response) as? [String: Any])
                let echo = try #require(Self.output(object, "echo"))
                #expect(echo["datatype"] as? String == "BYTES")
                #expect(echo["shape"] as? [Int] == [2, 2])
                #expect(echo["data"] as? [String] == text)
                let number = try #require(Self.output(object, "number"))
                #expect(number["data"] as? [Double] == [1.5, -2, 1000, 0.25])
            }
        }
    }

    @Test func binaryBytesInBothDirectionsAndNonTextGoesBackBinary() async throws {
        let server = try await ServerTestSupport.server(models: ["string_echo"])
        try await ServerTestSupport.withLiveServer(server) { client in
            // Elements of different lengths, one empty; the echo asked for in binary, the number in JSON.
            let (text, textData) = try Self.binaryInput(
                "text", [Array("42".utf8), [], Array("three".utf8), Array("-0.5".utf8)], rows: 2)
            let (digits, digitsData) = try Self.binaryInput(
                "digits", ["4", "3.25", "-8", "16"].map { Array($0.utf8) }, rows: 2)
            let header: [String: Any] = [
                "inputs": [text, digits],
                "outputs": [
                    ["name": "echo", "parameters": ["binary_data": true]],
                    ["name": "number", "parameters": ["binary_data": false]],
                ],
            ]
            let (body, jsonLength) = try Self.binaryBody(header: header, tensors: [textData, digitsData])
            try await client.execute(
                uri: "/v2/models/string_echo/infer", method: .post,
                headers: [ServerTestSupport.headerLength: String(jsonLength)], body: body
            ) { response in
                #expect(response.status == .ok)
                let (object, tail) = try Self.binaryResponse(response)
                let echo = try #require(Self.output(object, "echo"))
                #expect((echo["parameters"] as? [String: Any])?["binary_data_size"] as? Int == textData.count)
                #expect(tail == textData)
                #expect(Self.output(object, "number")?["data"] as? [Double] == [4, 3.25, -8, 16])
            }
            // Bytes that are no UTF-8 text cannot be JSON strings: asked for as JSON, the echo
            // comes back binary (as FP16 does), byte for byte.
            let (raw, rawData) = try Self.binaryInput("text", [[0xFF, 0xFE, 0x31], [0x80]])
            let (one, oneData) = try Self.binaryInput("digits", [Array("1".utf8), Array("2".utf8)])
            let rawHeader: [String: Any] = [
                "inputs": [raw, one], "outputs": [["name": "echo", "parameters": ["binary_data": false]]],
            ]
            let (rawBody, rawLength) = try Self.binaryBody(header: rawHeader, tensors: [rawData, oneData])
            try await client.execute(
                uri: "/v2/models/string_echo/infer", method: .post,
                headers: [ServerTestSupport.headerLength: String(rawLength)], body: rawBody
            ) { response in
                #expect(response.status == .ok)
                let (object, tail) = try Self.binaryResponse(response)
                let echo = try #require(Self.output(object, "echo"))
                #expect(echo["data"] == nil)
                #expect(tail == rawData)
            }
        }
    }

    @Test func malformedBytesAndNulBytesAreRefusedAndTheServerKeepsServing() async throws {
        let server = try await ServerTestSupport.server(models: ["string_echo"])
        try await ServerTestSupport.withLiveServer(server) { client in
            let (digits, digitsData) = try Self.binaryInput("digits", [Array("1".utf8), Array("2".utf8)])
            let cases: [(String, [UInt8], [Int], String)] = [
                ("a length past the end", [9, 0, 0, 0, 0x31], [1, 1], "declares 9 bytes"),
                ("a cut length prefix", [1, 0, 0, 0, 0x31, 2, 0], [1, 2], "length prefix needs 4"),
                (
                    "more elements than the shape", try BytesElements.serialize([[0x31], [0x32], [0x33]]), [1, 2],
                    "follow"
                ),
                ("a NUL inside an element", try BytesElements.serialize([[0x31, 0, 0x32], [0x33]]), [1, 2], "NUL"),
            ]
            for (what, data, shape, message) in cases {
                let header: [String: Any] = [
                    "inputs": [
                        [
                            "name": "text", "datatype": "BYTES", "shape": shape,
                            "parameters": ["binary_data_size": data.count],
                        ],
                        digits,
                    ]
                ]
                let (body, length) = try Self.binaryBody(header: header, tensors: [data, digitsData])
                try await client.execute(
                    uri: "/v2/models/string_echo/infer", method: .post,
                    headers: [ServerTestSupport.headerLength: String(length)], body: body
                ) { response in
                    #expect(response.status == .badRequest, "\(what)")
                    let error = (try? ServerTestSupport.json(response) as? [String: Any])?["error"] as? String ?? ""
                    #expect(error.contains(message), "\(what): \(error)")
                }
            }
            let numbers: [String: Any] = [
                "inputs": [
                    ["name": "text", "datatype": "BYTES", "shape": [1, 2], "data": [1, 2]],
                    Self.input("digits", ["1", "2"]),
                ]
            ]
            try await client.execute(
                uri: "/v2/models/string_echo/infer", method: .post, body: try ServerTestSupport.body(numbers)
            ) { response in
                #expect(response.status == .badRequest)
                let error = (try? ServerTestSupport.json(response) as? [String: Any])?["error"] as? String ?? ""
                #expect(error.contains("must be strings"), "\(error)")
            }
            // A string the model cannot parse fails in ONNX Runtime: a 500 naming it, not a crash.
            let unparsable: [String: Any] = [
                "inputs": [Self.input("text", ["a", "b"]), Self.input("digits", ["one", "2"])]
            ]
            try await client.execute(
                uri: "/v2/models/string_echo/infer", method: .post, body: try ServerTestSupport.body(unparsable)
            ) { response in
                #expect(response.status == .internalServerError)
            }
            // Still serving.
            let good: [String: Any] = ["inputs": [Self.input("text", ["8", "9"]), Self.input("digits", ["8", "9"])]]
            try await client.execute(
                uri: "/v2/models/string_echo/infer", method: .post, body: try ServerTestSupport.body(good)
            ) { response in
                #expect(response.status == .ok)
            }
        }
    }

    @Test func concurrentClientsWithStringsOfEveryLengthGetTheirOwnOutputs() async throws {
        let server = try await ServerTestSupport.server(
            models: ["string_echo"], defaults: ServerTestSupport.batchingOptions)
        try await ServerTestSupport.withLiveServer(server) { client in
            let port = try #require(client.port)
            // Distinct values of different lengths: requests batched together must still get back
            // exactly their own strings.
            @Sendable func text(_ connection: Int, _ round: Int) -> [String] {
                [
                    String(repeating: "é", count: connection % 5) + "\(connection)/\(round)",
                    String(repeating: "x", count: round * 3),
                ]
            }
            @Sendable func digits(_ connection: Int, _ round: Int) -> [String] {
                [
                    String(connection * 1000 + round),
                    "-" + String(round) + "." + String(repeating: "5", count: connection % 7 + 1),
                ]
            }
            try await ServerTestSupport.concurrentJSONClients(
                port: port, uri: "/v2/models/string_echo/infer", connections: 24, rounds: 6,
                request: { connection, round in
                    [
                        "id": "\(connection)-\(round)",
                        "inputs": [
                            Self.input("text", text(connection, round)),
                            Self.input("digits", digits(connection, round)),
                        ],
                    ]
                },
                check: { connection, round, object in
                    #expect(object["id"] as? String == "\(connection)-\(round)")
                    #expect(Self.output(object, "echo")?["data"] as? [String] == text(connection, round))
                    let number = Self.output(object, "number")?["data"] as? [Double]
                    #expect(number?.map { Float($0) } == digits(connection, round).map { Float($0) ?? .nan })
                })
            try await client.execute(uri: "/v2/models/string_echo/stats", method: .get) { response in
                let object = try #require(try ServerTestSupport.json(response) as? [String: Any])
                let stats = try #require((object["model_stats"] as? [[String: Any]])?.first)
                #expect(stats["inference_count"] as? Int == 144)
                #expect((stats["execution_count"] as? Int ?? 144) < 144, "concurrent requests should have been batched")
            }
        }
    }

    @Test func grpcTypedAndRawBytes() async throws {
        try await GRPCFrontEndTests.withGRPCServer(models: ["string_echo"]) { client in
            /// `text` from typed contents or raw, `digits` always typed.
            func request(text: [String]?, raw: [UInt8]? = nil, digits: [String]) -> Inference_ModelInferRequest {
                var textInput = Inference_ModelInferRequest.InferInputTensor()
                textInput.name = "text"
                textInput.datatype = "BYTES"
                textInput.shape = [1, 2]
                if let text { textInput.contents.bytesContents = text.map { Data($0.utf8) } }
                var digitsInput = textInput
                digitsInput.name = "digits"
                digitsInput.contents.bytesContents = digits.map { Data($0.utf8) }
                return .with {
                    $0.modelName = "string_echo"
                    $0.inputs = [textInput, digitsInput]
                    if let raw {
                        // raw_input_contents holds every input when it is used at all.
                        $0.inputs[1].clearContents()
                        $0.rawInputContents = [
                            Data(raw), Data((try? BytesElements.serialize(digits.map { Array($0.utf8) })) ?? []),
                        ]
                    }
                }
            }
            let typedResponse = try await client.modelInfer(request(text: ["a b", "ç"], digits: ["2.5", "100"]))
            let names = typedResponse.outputs.map(\.name)
            let echo = try #require(names.firstIndex(of: "echo"))
            let number = try #require(names.firstIndex(of: "number"))
            #expect(typedResponse.outputs[echo].datatype == "BYTES")
            let echoed = try typedResponse.rawOutputContents[echo].withUnsafeBytes {
                try BytesElements.elements(in: $0)
            }
            #expect(echoed == [Array("a b".utf8), Array("ç".utf8)])
            #expect(Self.floats(typedResponse.rawOutputContents[number]) == [2.5, 100])
            let serialized = try BytesElements.serialize([Array("7".utf8), []])
            let rawResponse = try await client.modelInfer(request(text: nil, raw: serialized, digits: ["7", "-1.5"]))
            #expect(Array(rawResponse.rawOutputContents[echo]) == serialized)
            #expect(Self.floats(rawResponse.rawOutputContents[number]) == [7, -1.5])
            // One typed value for a shape of two, and malformed raw data: INVALID_ARGUMENT.
            let wrongCount = request(text: ["1"], digits: ["1", "2"])
            #expect(await GRPCFrontEndTests.status { _ = try await client.modelInfer(wrongCount) } == .invalidArgument)
            let malformed = request(text: nil, raw: [5, 0, 0, 0, 0x31], digits: ["1", "2"])
            #expect(await GRPCFrontEndTests.status { _ = try await client.modelInfer(malformed) } == .invalidArgument)
        }
    }
}
