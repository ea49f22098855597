import AsyncHTTPClient
import DNNScaler
import Foundation
import NIOCore
import NIOHTTP1

/// One inference request body, built once from the model's metadata and sent for every request.
public struct RequestTemplate: Sendable {
    /// The request body (JSON header + binary tensors, or JSON only).
    public let body: ByteBuffer
    /// The headers to send with it.
    public let headers: HTTPHeaders
    /// Samples per request.
    public let batchSize: Int

    /// Builds the body for `inputs` (name, datatype, full shape including the batch dimension).
    public init(
        inputs: [(name: String, datatype: String, shape: [Int])], outputs: [String], format: TensorFormat,
        batchSize: Int, seed: UInt64
    ) throws(BenchError) {
        var generator = SplitMix64(seed: seed ^ 0xDA7A)
        var headers = HTTPHeaders()
        var inputObjects: [[String: Any]] = []
        var blobs: [[UInt8]] = []
        for input in inputs {
            guard let type = DataType(kserveName: input.datatype) else {
                throw BenchError(
                    "input \(input.name): datatype \(input.datatype) is not supported by the load generator")
            }
            let count = input.shape.reduce(1, *)
            let bytes = Self.sampleBytes(type: type, count: count, using: &generator)
            var object: [String: Any] = ["name": input.name, "shape": input.shape, "datatype": input.datatype]
            switch format {
            case .binary:
                object["parameters"] = ["binary_data_size": bytes.count]
                blobs.append(bytes)
            case .json:
                object["data"] = Self.jsonValues(type: type, bytes: bytes)
            }
            inputObjects.append(object)
        }
        let outputObjects: [[String: Any]] = outputs.map { name in
            format == .binary ? ["name": name, "parameters": ["binary_data": true]] : ["name": name]
        }
        let header: Data
        do {
            header = try JSONSerialization.data(withJSONObject: ["inputs": inputObjects, "outputs": outputObjects])
        } catch {
            throw BenchError("cannot encode the request header: \(error)")
        }
        var buffer = ByteBuffer()
        buffer.writeBytes(header)
        for blob in blobs { buffer.writeBytes(blob) }
        headers.add(name: "Content-Type", value: format == .binary ? "application/octet-stream" : "application/json")
        if format == .binary { headers.add(name: "Inference-Header-Content-Length", value: String(header.count)) }
        self.body = buffer
        self.headers = headers
        self.batchSize = batchSize
    }

    /// Reads `GET /v2/models/{model}` and builds a request of `batchSize` samples.
    public static func fetch(
        client: HTTPClient, baseURL: String, model: String, format: TensorFormat, batchSize: Int, seed: UInt64
    ) async throws -> RequestTemplate {
        var request = HTTPClientRequest(url: "\(baseURL)/v2/models/\(model)")
        request.method = .GET
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: .seconds(5))
        } catch {
            throw BenchError("cannot reach \(baseURL): \(error)")
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else {
            throw BenchError(
                "model metadata of \(model): HTTP \(response.status.code) \(String(buffer: body))")
        }
        guard let metadata = try? JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
            let inputs = metadata["inputs"] as? [[String: Any]]
        else { throw BenchError("model metadata of \(model) is not a KServe v2 metadata document") }
        let outputs = (metadata["outputs"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
        var described: [(name: String, datatype: String, shape: [Int])] = []
        for input in inputs {
            guard let name = input["name"] as? String, let datatype = input["datatype"] as? String,
                let rawShape = input["shape"] as? [Any]
            else { throw BenchError("model metadata of \(model): an input lacks name, datatype or shape") }
            var shape = rawShape.compactMap { ($0 as? NSNumber)?.intValue }
            if let first = shape.first, first < 0 { shape[0] = batchSize }
            if shape.contains(where: { $0 < 0 }) {
                throw BenchError("input \(name) has a variable dimension \(shape) besides the batch dimension")
            }
            described.append((name, datatype, shape))
        }
        return try RequestTemplate(
            inputs: described, outputs: outputs, format: format, batchSize: batchSize, seed: seed)
    }

    /// Plausible values of a type as little-endian bytes: floats in [0, 1), small integers, booleans;
    /// for BYTES, one-digit decimal strings in KServe's binary layout.
    static func sampleBytes(type: DataType, count: Int, using generator: inout SplitMix64) -> [UInt8] {
        if type == .bytes {
            let digits = (0..<count).map { _ in Array(String(UInt64.random(in: 0..<10, using: &generator)).utf8) }
            return (try? BytesElements.serialize(digits)) ?? []
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(count * type.byteSize)
        for _ in 0..<count {
            let small = UInt64.random(in: 0..<10, using: &generator)
            switch type {
            case .fp32:
                withUnsafeBytes(of: Float.random(in: 0..<1, using: &generator).bitPattern.littleEndian) {
                    bytes.append(contentsOf: $0)
                }
            case .fp64:
                withUnsafeBytes(of: Double.random(in: 0..<1, using: &generator).bitPattern.littleEndian) {
                    bytes.append(contentsOf: $0)
                }
            case .fp16:
                bytes.append(contentsOf: [0x00, 0x3C])  // 1.0
            case .bf16:
                bytes.append(contentsOf: [0x80, 0x3F])  // 1.0
            case .bool:
                bytes.append(UInt8(small & 1))
            default:
                var value = small.littleEndian
                withUnsafeBytes(of: &value) { bytes.append(contentsOf: $0.prefix(type.byteSize)) }
            }
        }
        return bytes
    }

    /// The JSON `data` array for bytes made by ``sampleBytes(type:count:using:)``.
    static func jsonValues(type: DataType, bytes: [UInt8]) -> [Any] {
        if type == .bytes {
            let elements = bytes.withUnsafeBytes { (try? BytesElements.elements(in: $0)) ?? [] }
            return elements.map { String(decoding: $0, as: UTF8.self) }
        }
        let size = type.byteSize
        return stride(from: 0, to: bytes.count, by: size).map { offset -> Any in
            let slice = bytes[offset..<offset + size]
            var raw: UInt64 = 0
            for (shift, byte) in slice.enumerated() { raw |= UInt64(byte) << (8 * UInt64(shift)) }
            switch type {
            case .fp32: return Double(Float(bitPattern: UInt32(raw)))
            case .fp64: return Double(bitPattern: raw)
            case .fp16, .bf16: return 1.0
            case .bool: return raw != 0
            default: return Int(raw)
            }
        }
    }
}
