import DNNScaler
import Foundation
import InferenceProtocol
import NIOCore
import Testing

@testable import DNNScalerServer

/// The same bad request gets the same answer from the HTTP and the gRPC front end: the same
/// ``ErrorKind`` (so 400 and INVALID_ARGUMENT alike) and the same message.
@Suite struct FrontEndParityTests {
    static let metadata = ModelMetadata(
        name: "simple", platform: "test",
        inputs: [TensorSpec(name: "INPUT0", dataType: .int32, shape: [-1, 16])],
        outputs: [TensorSpec(name: "OUTPUT0", dataType: .int32, shape: [-1, 16])])

    /// A declared input: name, datatype and shape, as both protocols carry them.
    struct Declaration {
        var name: String? = "INPUT0"
        var datatype = "INT32"
        var shape: [Int64] = [1, 16]
    }

    /// Bad declarations, one request each (two inputs where a name repeats).
    static let catalogue: [(String, [Declaration])] = [
        ("an unsupported datatype", [Declaration(datatype: "FP8")]),
        ("an empty datatype", [Declaration(datatype: "")]),
        ("a negative dimension", [Declaration(shape: [1, -16])]),
        ("a dimension beyond 2^53", [Declaration(shape: [1, 1 << 60])]),
        ("a shape whose element count overflows", [Declaration(shape: [1 << 40, 1 << 40])]),
        ("a name given twice", [Declaration(), Declaration()]),
        ("an empty name", [Declaration(name: "")]),
    ]

    static func http(_ declarations: [Declaration]) -> ServerError? {
        let inputs = declarations.map { declaration -> [String: Any] in
            var input: [String: Any] = [
                "datatype": declaration.datatype, "shape": declaration.shape.map(NSNumber.init(value:)),
                "data": Array(repeating: 1, count: 16),
            ]
            if let name = declaration.name { input["name"] = name }
            return input
        }
        let body = try? JSONSerialization.data(withJSONObject: ["inputs": inputs])
        do {
            _ = try InferCodec.decode(body: ByteBuffer(bytes: body ?? Data()), headerLength: nil, metadata: metadata)
            return nil
        } catch {
            return error
        }
    }

    static func grpc(_ declarations: [Declaration]) -> ServerError? {
        let message = Inference_ModelInferRequest.with { request in
            request.modelName = "simple"
            request.inputs = declarations.map { declaration in
                .with {
                    $0.name = declaration.name ?? ""
                    $0.datatype = declaration.datatype
                    $0.shape = declaration.shape
                    $0.contents = .with { $0.intContents = Array(repeating: 1, count: 16) }
                }
            }
        }
        do {
            _ = try GRPCTensorCodec.decode(message, metadataTimeoutMs: nil)
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: catalogue)
    func bothFrontEndsAnswerABadDeclarationAlike(_ what: String, _ declarations: [Declaration]) throws {
        let overHTTP = try #require(Self.http(declarations), "HTTP accepted \(what)")
        let overGRPC = try #require(Self.grpc(declarations), "gRPC accepted \(what)")
        #expect(overHTTP.kind == .invalidArgument, "\(what): \(overHTTP)")
        #expect(overHTTP == overGRPC, "\(what): HTTP '\(overHTTP)' vs gRPC '\(overGRPC)'")
        #expect(GRPCInferenceService.rpcError(overGRPC).code == .invalidArgument)
        #expect(overHTTP.status == .badRequest)
    }

    /// The error `decode` refuses with; `nil` if it accepts.
    static func refusal(_ decode: () throws(ServerError) -> Void) -> ServerError? {
        do {
            try decode()
            return nil
        } catch {
            return error
        }
    }

    @Test(arguments: [0.0, -5])
    func bothFrontEndsRefuseABadTimeoutAlike(_ microseconds: Double) throws {
        let body = try JSONSerialization.data(withJSONObject: [
            "parameters": ["timeout": microseconds],
            "inputs": [
                ["name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "data": Array(repeating: 1, count: 16)]
            ],
        ])
        let overHTTP = Self.refusal { () throws(ServerError) in
            _ = try InferCodec.decode(body: ByteBuffer(bytes: body), headerLength: nil, metadata: Self.metadata)
        }
        let message = Inference_ModelInferRequest.with { request in
            request.parameters["timeout"] = .with { $0.doubleParam = microseconds }
            request.inputs = [
                .with {
                    $0.name = "INPUT0"
                    $0.datatype = "INT32"
                    $0.shape = [1, 16]
                    $0.contents = .with { $0.intContents = Array(repeating: 1, count: 16) }
                }
            ]
        }
        let overGRPC = Self.refusal { () throws(ServerError) in
            _ = try GRPCTensorCodec.decode(message, metadataTimeoutMs: nil)
        }
        let http = try #require(overHTTP, "HTTP accepted a timeout of \(microseconds)")
        #expect(http.kind == .invalidArgument)
        #expect(http == overGRPC)
    }

    @Test func everyKindHasOneStatusAndOneCode() {
        let kinds: [ErrorKind] = [
            .invalidArgument, .notFound, .forbidden, .tooLarge, .shed, .expired, .unavailable, .internal,
        ]
        let statuses = kinds.map { ServerError($0, "x").status.code }
        let codes = kinds.map { GRPCInferenceService.rpcError(ServerError($0, "x")).code }
        #expect(statuses == [400, 404, 403, 413, 503, 503, 503, 500])
        #expect(
            codes == [
                .invalidArgument, .notFound, .permissionDenied, .resourceExhausted, .resourceExhausted,
                .deadlineExceeded, .unavailable, .internalError,
            ])
    }
}
