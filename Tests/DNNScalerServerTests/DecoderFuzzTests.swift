import DNNScaler
import Foundation
import InferenceProtocol
import NIOCore
import SwiftProtobuf
import Testing

@testable import DNNScalerServer

/// A seeded mutation fuzzer for the request decoder: valid JSON and binary requests are mutated
/// (bit flips, interesting bytes, truncation, splices, repeated chunks, deep nesting, wrong header
/// lengths), decoded and checked against the model's metadata, as the server does before queueing.
/// Every input must either become tensors that agree with the model or be refused with a 4xx and a
/// message; a crash or a hang fails the run.
@Suite struct DecoderFuzzTests {
    static let iterations = 100_000

    static let metadata = ModelMetadata(
        name: "fuzz", platform: "onnxruntime_onnx",
        inputs: [
            TensorSpec(name: "INPUT0", dataType: .int32, shape: [-1, 4]),
            TensorSpec(name: "INPUT1", dataType: .fp32, shape: [-1, 2]),
            TensorSpec(name: "text", dataType: .bytes, shape: [-1, 2]),
        ],
        outputs: [TensorSpec(name: "OUTPUT0", dataType: .int32, shape: [-1, 4])])

    /// Whether a decoded tensor's bytes are what its shape holds: the exact byte count, or for
    /// BYTES as many well-formed elements.
    static func wellFormed(_ tensor: Tensor) -> Bool {
        guard tensor.dataType == .bytes else {
            return tensor.byteCount == tensor.shape.reduce(1, *) * tensor.dataType.byteSize
        }
        return (try? tensor.byteStrings().count) == tensor.shape.reduce(1, *)
    }

    /// Valid requests: (body, header length) pairs.
    static func seeds() -> [([UInt8], Int?)] {
        let json =
            #"{"id":"a","inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"INT32","data":[1,2,3,4]},"#
            + #"{"name":"INPUT1","shape":[1,2],"datatype":"FP32","data":[[0.5,1e3]]},"#
            + #"{"name":"text","shape":[1,2],"datatype":"BYTES","data":["ab","\u00e9"]}],"#
            + #""outputs":[{"name":"OUTPUT0"}],"parameters":{"timeout":1000}}"#
        let header =
            #"{"inputs":[{"name":"INPUT0","shape":[2,4],"datatype":"INT32","#
            + #""parameters":{"binary_data_size":32}},{"name":"INPUT1","shape":[2,2],"datatype":"FP32","#
            + #""parameters":{"binary_data_size":16}},{"name":"text","shape":[2,2],"datatype":"BYTES","#
            + #""parameters":{"binary_data_size":20}}],"outputs":[{"name":"OUTPUT0","parameters":{"binary_data":true}}]}"#
        // BYTES: per element a 4-byte length, then its bytes (prefixes the mutations can break).
        let strings: [UInt8] = [1, 0, 0, 0, 0x61, 0, 0, 0, 0, 3, 0, 0, 0, 0x62, 0x63, 0x64, 0, 0, 0, 0]
        let binary = Array(header.utf8) + (0..<48).map { UInt8($0) } + strings
        return [(Array(json.utf8), nil), (binary, header.utf8.count)]
    }

    /// This process's resident memory in bytes (Linux `/proc/self/statm`), or nil elsewhere.
    static func residentBytes() -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return nil }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return nil }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// A leak of even a kilobyte per input would grow the process by about 90 MB between the
    /// 10,000th and the last input; the decoders must stay well under that. Checked only when
    /// `DNNSCALER_FUZZ_LEAK_CHECK=1`: `make test` runs this suite alone in its own process for it,
    /// since other suites running beside it load models and move the process's memory.
    static let leakLimitBytes = 48 << 20
    static let checkLeaks = ProcessInfo.processInfo.environment["DNNSCALER_FUZZ_LEAK_CHECK"] == "1"

    static let interesting: [UInt8] = [
        0, 0xFF, 0x7F, 0x80, UInt8(ascii: "\""), UInt8(ascii: "["), UInt8(ascii: "]"),
        UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: ","), UInt8(ascii: ":"), UInt8(ascii: "-"),
        UInt8(ascii: "9"), UInt8(ascii: "e"), UInt8(ascii: "\\"), 0xC3, 0xE2,
    ]

    static func mutate(_ seed: [UInt8], _ headerLength: Int?, using generator: inout SplitMix64) -> ([UInt8], Int?) {
        var bytes = seed
        var length = headerLength
        let rounds = Int.random(in: 1...4, using: &generator)
        for _ in 0..<rounds {
            guard !bytes.isEmpty else { break }
            let index = Int.random(in: 0..<bytes.count, using: &generator)
            switch Int.random(in: 0..<9, using: &generator) {
            case 0: bytes[index] ^= UInt8(1 << Int.random(in: 0..<8, using: &generator))
            case 1: bytes[index] = interesting.randomElement(using: &generator) ?? 0
            case 2: bytes.removeSubrange(index...)
            case 3:
                let end = min(bytes.count, index + Int.random(in: 1...16, using: &generator))
                bytes.insert(contentsOf: bytes[index..<end], at: index)
            case 4: bytes.remove(at: index)
            case 5:
                let digits = Array(String(Int.random(in: -3...1 << 40, using: &generator)).utf8)
                bytes.insert(contentsOf: digits, at: index)
            case 6:
                let depth = Int.random(in: 1...200, using: &generator)
                bytes.insert(contentsOf: [UInt8](repeating: UInt8(ascii: "["), count: depth), at: index)
            case 7:
                length =
                    [
                        nil, 0, -1, bytes.count, bytes.count + 1,
                        (length ?? 0) + Int.random(in: -8...8, using: &generator),
                    ]
                    .randomElement(using: &generator) ?? nil
            default:
                bytes.insert(UInt8.random(in: 0...255, using: &generator), at: index)
            }
        }
        return (bytes, length)
    }

    @Test func mutatedRequestsAreDecodedOrRefusedWithAClearError() throws {
        var generator = SplitMix64(seed: 0xF0CC)
        let seeds = Self.seeds()
        for (body, length) in seeds {  // the seeds themselves decode
            _ = try InferCodec.decode(body: ByteBuffer(bytes: body), headerLength: length, metadata: Self.metadata)
        }
        var accepted = 0
        var refusals: [String: Int] = [:]
        let started = ContinuousClock.now
        var residentAfterWarmUp: Int?
        for iteration in 0..<Self.iterations {
            if iteration == 10_000 { residentAfterWarmUp = Self.residentBytes() }
            let (seed, seedLength) = seeds[iteration % seeds.count]
            let (body, length) = Self.mutate(seed, seedLength, using: &generator)
            let outcome = Result { () throws(ServerError) in
                try InferCodec.decode(body: ByteBuffer(bytes: body), headerLength: length, metadata: Self.metadata)
            }
            guard case .success(let decoded) = outcome else {
                guard case .failure(let error) = outcome else { continue }
                #expect(error.status.code >= 400 && error.status.code < 500, "\(error.status) for a client's bytes")
                #expect(!error.message.isEmpty)
                let kind = String(error.message.prefix(while: { $0 != ":" && $0 != "'" }).prefix(40))
                refusals[kind, default: 0] += 1
                continue
            }
            // The runtime's check against the model's metadata comes next in the server (a 400 too).
            do throws(BackendError) {
                try Self.metadata.validate(inputs: decoded.request.inputs, outputNames: decoded.request.outputNames)
            } catch {
                #expect(!error.description.isEmpty)
                refusals["metadata: " + String(error.description.prefix(while: { $0 != "'" })), default: 0] += 1
                continue
            }
            accepted += 1
            for (name, tensor) in decoded.request.inputs {
                let spec = try #require(
                    Self.metadata.inputs.first { $0.name == name },
                    "decoded an input named \(name.debugDescription) from \(String(decoding: body, as: UTF8.self).debugDescription)"
                )
                #expect(tensor.dataType == spec.dataType)
                #expect(spec.accepts(shape: tensor.shape))
                #expect(Self.wellFormed(tensor))
            }
        }
        let seconds = Double((ContinuousClock.now - started).components.seconds)
        print(
            "decoder fuzz: \(Self.iterations) inputs in \(Int(seconds)) s, \(accepted) decoded, "
                + "\(Self.iterations - accepted) refused with a 4xx; top refusals: "
                + refusals.sorted { $0.value > $1.value }.prefix(6).map { "\($0.key) (\($0.value))" }.joined(
                    separator: "; "))
        #expect(accepted > 0)
        #expect(accepted < Self.iterations)
        #expect(seconds < 120, "the decoder took \(seconds) s for \(Self.iterations) inputs")
        if let before = residentAfterWarmUp, let after = Self.residentBytes() {
            print(
                "decoder fuzz: resident memory \(before >> 20) MiB after 10,000 inputs, \(after >> 20) MiB at the end")
            #expect(
                !Self.checkLeaks || after - before < Self.leakLimitBytes,
                "resident memory grew \((after - before) >> 20) MiB")
        }
    }

    /// Valid gRPC requests, serialized: inputs in raw_input_contents, and in typed contents.
    static func grpcSeeds() throws -> [[UInt8]] {
        var raw = Inference_ModelInferRequest()
        raw.modelName = "fuzz"
        raw.id = "r"
        raw.inputs = [
            .with {
                $0.name = "INPUT0"
                $0.datatype = "INT32"
                $0.shape = [2, 4]
            },
            .with {
                $0.name = "INPUT1"
                $0.datatype = "FP32"
                $0.shape = [2, 2]
            },
        ]
        raw.inputs.append(
            .with {
                $0.name = "text"
                $0.datatype = "BYTES"
                $0.shape = [1, 2]
            })
        raw.rawInputContents = [
            Data((0..<32).map { UInt8($0) }), Data((0..<16).map { UInt8($0) }),
            Data([2, 0, 0, 0, 0x61, 0x62, 0, 0, 0, 0]),
        ]
        raw.outputs = [.with { $0.name = "OUTPUT0" }]
        raw.parameters["timeout"] = .with { $0.int64Param = 5000 }
        var typed = Inference_ModelInferRequest()
        typed.modelName = "fuzz"
        typed.inputs = [
            .with {
                $0.name = "INPUT0"
                $0.datatype = "INT32"
                $0.shape = [1, 4]
                $0.contents.intContents = [1, -2, 3, 4]
            },
            .with {
                $0.name = "INPUT1"
                $0.datatype = "FP32"
                $0.shape = [1, 2]
                $0.contents.fp32Contents = [0.5, 1e3]
            },
            .with {
                $0.name = "text"
                $0.datatype = "BYTES"
                $0.shape = [1, 2]
                $0.contents.bytesContents = [Data("ab".utf8), Data()]
            },
        ]
        return [try raw.serializedBytes(), try typed.serializedBytes()]
    }

    /// The gRPC path: mutated protobuf bytes are parsed (a parse failure is INVALID_ARGUMENT from
    /// the transport), decoded into tensors and checked against the metadata, as the server does.
    @Test func mutatedGRPCRequestsAreDecodedOrRefusedWithAClearError() throws {
        var generator = SplitMix64(seed: 0x6A7C)
        let seeds = try Self.grpcSeeds()
        for seed in seeds {
            let message = try Inference_ModelInferRequest(serializedBytes: seed)
            let request = try GRPCTensorCodec.decode(message, metadataTimeoutMs: nil).request
            try Self.metadata.validate(inputs: request.inputs, outputNames: request.outputNames)
        }
        var accepted = 0
        var unparsable = 0
        var refusals: [String: Int] = [:]
        let started = ContinuousClock.now
        var residentAfterWarmUp: Int?
        for iteration in 0..<Self.iterations {
            if iteration == 10_000 { residentAfterWarmUp = Self.residentBytes() }
            let (bytes, _) = Self.mutate(seeds[iteration % seeds.count], nil, using: &generator)
            guard let message = try? Inference_ModelInferRequest(serializedBytes: bytes) else {
                unparsable += 1
                continue
            }
            let request: InferenceRequest
            do throws(ServerError) {
                request = try GRPCTensorCodec.decode(message, metadataTimeoutMs: nil).request
            } catch {
                #expect(error.status.code >= 400 && error.status.code < 500, "\(error.status) for a client's bytes")
                #expect(GRPCInferenceService.rpcError(error).code == .invalidArgument)
                #expect(!error.message.isEmpty)
                refusals[String(error.message.prefix(while: { $0 != ":" && $0 != "'" }).prefix(40)), default: 0] += 1
                continue
            }
            do throws(BackendError) {
                try Self.metadata.validate(inputs: request.inputs, outputNames: request.outputNames)
            } catch {
                #expect(GRPCInferenceService.rpcError(ServerError(error)).code == .invalidArgument)
                refusals["metadata: " + String(error.description.prefix(while: { $0 != "'" })), default: 0] += 1
                continue
            }
            accepted += 1
            for (name, tensor) in request.inputs {
                let spec = try #require(Self.metadata.inputs.first { $0.name == name })
                #expect(tensor.dataType == spec.dataType)
                #expect(spec.accepts(shape: tensor.shape))
                #expect(Self.wellFormed(tensor))
            }
        }
        let seconds = Double((ContinuousClock.now - started).components.seconds)
        print(
            "gRPC decoder fuzz: \(Self.iterations) inputs in \(Int(seconds)) s, \(accepted) decoded, "
                + "\(unparsable) not protobuf, \(Self.iterations - accepted - unparsable) refused with INVALID_ARGUMENT; "
                + "top refusals: "
                + refusals.sorted { $0.value > $1.value }.prefix(6).map { "\($0.key) (\($0.value))" }.joined(
                    separator: "; "))
        #expect(accepted > 0)
        #expect(accepted + unparsable < Self.iterations)
        #expect(seconds < 120, "the gRPC decoder took \(seconds) s for \(Self.iterations) inputs")
        if let before = residentAfterWarmUp, let after = Self.residentBytes() {
            print(
                "gRPC decoder fuzz: resident memory \(before >> 20) MiB after 10,000 inputs, \(after >> 20) MiB at the end"
            )
            #expect(
                !Self.checkLeaks || after - before < Self.leakLimitBytes,
                "resident memory grew \((after - before) >> 20) MiB")
        }
    }

    /// `body` as a stream of chunks cut at `cuts` (offsets into it).
    static func chunks(_ body: [UInt8], cuts: [Int]) -> AsyncStream<ByteBuffer> {
        let bounds = [0] + cuts.filter { $0 > 0 && $0 < body.count }.sorted() + [body.count]
        return AsyncStream { continuation in
            for (start, end) in zip(bounds, bounds.dropFirst()) where start < end {
                continuation.yield(ByteBuffer(bytes: body[start..<end]))
            }
            continuation.finish()
        }
    }

    /// What the server does with a binary request, read in chunks: the same tensors as decoding the
    /// collected body, or an error of the same status, whatever the chunks; and a body over the
    /// limit is a 413.
    @Test func streamingAgreesWithWholeBodyDecoding() async throws {
        let (seed, seedLength) = try #require(Self.seeds().first { $0.1 != nil })
        let headerLength = try #require(seedLength)
        let whole = try InferCodec.decode(
            body: ByteBuffer(bytes: seed), headerLength: headerLength, metadata: Self.metadata)
        for cut in 0...seed.count {  // every split into two chunks, and bytes one by one
            let streamed = try await InferCodec.decode(
                streaming: Self.chunks(seed, cuts: [cut]), headerLength: headerLength, maxBodyBytes: 1 << 20)
            #expect(streamed.request.inputs == whole.request.inputs, "split at \(cut)")
        }
        let byteByByte = try await InferCodec.decode(
            streaming: Self.chunks(seed, cuts: Array(0..<seed.count)), headerLength: headerLength, maxBodyBytes: 1 << 20
        )
        #expect(byteByByte.request.inputs == whole.request.inputs)
        #expect(byteByByte.request.inputs["INPUT1"]?.bytes == Array(seed[(headerLength + 32)..<(headerLength + 48)]))
        #expect(byteByByte.request.inputs["text"]?.bytes == Array(seed[(headerLength + 48)...]))
        do {
            _ = try await InferCodec.decode(
                streaming: Self.chunks(seed, cuts: [10]), headerLength: headerLength, maxBodyBytes: seed.count - 1)
            Issue.record("a body over the limit was accepted")
        } catch {
            #expect(error.status == .contentTooLarge)
        }

        var generator = SplitMix64(seed: 0x57EA)
        var agreed = 0
        for _ in 0..<20_000 {
            let (body, length) = Self.mutate(seed, seedLength, using: &generator)
            guard let length, length >= 0 else { continue }  // the route refuses these before decoding
            let cuts = (0..<Int.random(in: 0...4, using: &generator)).map { _ in
                Int.random(in: 0...max(body.count, 1), using: &generator)
            }
            let wholeOutcome = Result { () throws(ServerError) in
                try InferCodec.decode(body: ByteBuffer(bytes: body), headerLength: length, metadata: Self.metadata)
            }
            let streamedOutcome: Result<DecodedInferRequest, ServerError>
            do {
                streamedOutcome = .success(
                    try await InferCodec.decode(
                        streaming: Self.chunks(body, cuts: cuts), headerLength: length, maxBodyBytes: 1 << 20))
            } catch {
                streamedOutcome = .failure(error)
            }
            switch (wholeOutcome, streamedOutcome) {
            case (.success(let a), .success(let b)):
                #expect(a.request.inputs == b.request.inputs)
                #expect(a.request.outputNames == b.request.outputNames)
                #expect(a.request.id == b.request.id)
                agreed += 1
            case (.failure(let a), .failure(let b)):
                #expect(a.status == b.status, "\(a.message) | \(b.message)")
                agreed += 1
            default:
                Issue.record("whole body \(wholeOutcome) but streamed \(streamedOutcome)")
            }
        }
        #expect(agreed > 10_000)
    }
}
