import DNNScaler
import Foundation
import NIOCore

/// An output the client asked for, and how it goes back.
struct RequestedOutput {
    var name: String
    /// Raw bytes after the JSON rather than JSON `data`.
    var binary: Bool
    /// Written into the client's shared memory instead of the response body.
    var sharedMemory: SharedMemoryReference?
}

/// A decoded KServe v2 inference request, with how each output should be returned.
struct DecodedInferRequest {
    var request: InferenceRequest
    /// Requested outputs (`nil`: all outputs, using `binaryByDefault`).
    var outputs: [RequestedOutput]?
    /// `binary_data_output` from the request parameters.
    var binaryByDefault: Bool
}

/// A binary input the header announced, to be read from the body after it.
struct PendingBinaryInput {
    var name: String
    var dataType: DataType
    var shape: [Int]
    var byteCount: Int
}

/// A request's JSON header, parsed: the inputs it carried (JSON data, shared memory) and the
/// binary ones still to be read.
struct ParsedHeader {
    var id: String
    var timeoutMs: Double?
    var binaryByDefault: Bool
    var inputs: [String: Tensor]
    var binaryInputs: [PendingBinaryInput]
    var outputs: [RequestedOutput]?

    /// The request, with the binary inputs read.
    func decoded(binaryInputs binary: [String: Tensor], arrival: ContinuousClock.Instant?) -> DecodedInferRequest {
        let request = InferenceRequest(
            id: id, inputs: inputs.merging(binary) { first, _ in first },
            outputNames: outputs.map { $0.map(\.name) }, timeoutMs: timeoutMs, arrival: arrival)
        return DecodedInferRequest(request: request, outputs: outputs, binaryByDefault: binaryByDefault)
    }
}

/// Memory for binary inputs, 64-byte aligned, freed when the last tensor viewing it is gone.
final class BinaryInputMemory: Sendable {
    private let address: UInt

    init(count: Int) {
        let memory = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
        address = UInt(bitPattern: memory)
    }

    var pointer: UnsafeMutableRawPointer {
        // The address came from `allocate` and is never zero.
        UnsafeMutableRawPointer(bitPattern: address).unsafelyUnwrapped
    }

    deinit {
        pointer.deallocate()
    }
}

/// Fills the binary inputs, in body order, from the bytes after the header as they come.
struct BinaryInputs {
    private let pending: [PendingBinaryInput]
    private let memory: BinaryInputMemory
    private let offsets: [Int]
    private let total: Int
    private var filled = 0
    private var unclaimed = 0

    init(_ pending: [PendingBinaryInput]) {
        self.pending = pending
        // One allocation; each input starts at a 64-byte boundary.
        var offsets: [Int] = []
        var end = 0
        for input in pending {
            offsets.append(end)
            end += (input.byteCount + 63) / 64 * 64
        }
        self.offsets = offsets
        memory = BinaryInputMemory(count: end)
        total = pending.reduce(0) { $0 + $1.byteCount }
    }

    /// Copies the next bytes of the body into the inputs they belong to.
    mutating func append(_ chunk: ByteBuffer) {
        chunk.withUnsafeReadableBytes { bytes in
            var consumed = 0
            while consumed < bytes.count, filled < total {
                // The input the next byte belongs to, and how far into it.
                var index = 0
                var before = 0
                while before + pending[index].byteCount <= filled {
                    before += pending[index].byteCount
                    index += 1
                }
                let within = filled - before
                let take = min(pending[index].byteCount - within, bytes.count - consumed)
                if let source = bytes.baseAddress {
                    (memory.pointer + offsets[index] + within).copyMemory(from: source + consumed, byteCount: take)
                }
                consumed += take
                filled += take
            }
            unclaimed += bytes.count - consumed
        }
    }

    /// The tensors, once every byte has come; an error names what is missing or left over.
    func finish() throws(ServerError) -> [String: Tensor] {
        if filled < total {
            var before = 0
            for input in pending {
                if before + input.byteCount > filled {
                    throw .badRequest(
                        "input '\(input.name)': the body ends \(before + input.byteCount - filled) bytes short of its binary data"
                    )
                }
                before += input.byteCount
            }
        }
        guard unclaimed == 0 else {
            throw .badRequest("the body has \(unclaimed) bytes of binary data that no input claims")
        }
        var tensors: [String: Tensor] = [:]
        for (index, input) in pending.enumerated() {
            let bytes = UnsafeRawBufferPointer(start: memory.pointer + offsets[index], count: input.byteCount)
            do {
                tensors[input.name] = try Tensor(
                    dataType: input.dataType, shape: input.shape, viewing: bytes, owner: memory)
            } catch {
                throw .badRequest("input '\(input.name)': \(error)")
            }
        }
        return tensors
    }
}

/// Decodes and encodes KServe v2 inference messages: JSON tensors, and Triton's binary tensor
/// extension (a JSON header of `Inference-Header-Content-Length` bytes, then raw tensor bytes).
enum InferCodec {
    /// The deepest JSON array nesting accepted for tensor data.
    static let maxNesting = 64

    /// Decodes a whole request body; `arrival` is when the request reached the server. Inputs and
    /// outputs may name regions of `sharedMemory`.
    static func decode(
        body: ByteBuffer, headerLength: Int?, metadata: ModelMetadata, arrival: ContinuousClock.Instant? = nil,
        sharedMemory: SharedMemoryRegistry? = nil
    ) throws(ServerError) -> DecodedInferRequest {
        let total = body.readableBytes
        let jsonLength = headerLength ?? total
        guard jsonLength >= 0, jsonLength <= total else {
            throw .badRequest(
                "Inference-Header-Content-Length is \(jsonLength) but the body has only \(total) bytes")
        }
        guard let headerBytes = body.getBytes(at: body.readerIndex, length: jsonLength) else {
            throw .badRequest("cannot read the JSON header")
        }
        let header = try parseHeader(headerBytes, binaryBytes: total - jsonLength, sharedMemory: sharedMemory)
        var binary = BinaryInputs(header.binaryInputs)
        binary.append(body.getSlice(at: body.readerIndex + jsonLength, length: total - jsonLength) ?? ByteBuffer())
        return try header.decoded(binaryInputs: binary.finish(), arrival: arrival)
    }

    /// Decodes a body as it arrives: the JSON header of `headerLength` bytes first, then each binary
    /// input's bytes straight into its tensor (one copy, no buffer of the whole body). More than
    /// `maxBodyBytes` in all is a 413.
    static func decode<Body: AsyncSequence>(
        streaming body: Body, headerLength: Int, maxBodyBytes: Int, arrival: ContinuousClock.Instant? = nil,
        sharedMemory: SharedMemoryRegistry? = nil
    ) async throws(ServerError) -> DecodedInferRequest where Body.Element == ByteBuffer {
        var iterator = body.makeAsyncIterator()
        var received = 0
        func next() async throws(ServerError) -> ByteBuffer? {
            let chunk: ByteBuffer?
            do {
                chunk = try await iterator.next()
            } catch {
                throw .badRequest("the request body could not be read: \(error)")
            }
            received += chunk?.readableBytes ?? 0
            guard received <= maxBodyBytes else { throw .bodyTooLarge(limit: maxBodyBytes) }
            return chunk
        }
        guard headerLength > 0 else { throw zeroHeaderLength }
        var prefix = ByteBuffer()
        while prefix.readableBytes < headerLength, var chunk = try await next() {
            if prefix.readableBytes == 0 {
                prefix = chunk
            } else {
                prefix.writeBuffer(&chunk)
            }
        }
        guard let headerBytes = prefix.readSlice(length: headerLength) else {
            throw .badRequest(
                "Inference-Header-Content-Length is \(headerLength) but the body has only \(prefix.readableBytes) bytes"
            )
        }
        let header = try parseHeader(
            headerBytes.readableBytesView, binaryBytes: nil, sharedMemory: sharedMemory)
        var binary = BinaryInputs(header.binaryInputs)
        binary.append(prefix)
        while let chunk = try await next() {
            binary.append(chunk)
        }
        return try header.decoded(binaryInputs: binary.finish(), arrival: arrival)
    }

    static let zeroHeaderLength = ServerError.badRequest(
        "raw binary requests (Inference-Header-Content-Length: 0) are not supported; send a JSON header")

    /// Parses the JSON header. Binary inputs are listed in body order, to be read after the header;
    /// with `binaryBytes` (how many follow the header, when known) each is checked to fit as it is
    /// met, as are bytes no input claims.
    static func parseHeader(
        _ headerBytes: some Collection<UInt8>, binaryBytes: Int?, sharedMemory: SharedMemoryRegistry?
    ) throws(ServerError) -> ParsedHeader {
        let object = try headerObject(headerBytes)
        let parameters = object["parameters"] as? [String: Any] ?? [:]
        let timeoutMs = try parameters["timeout"].map { (timeout) throws(ServerError) in
            try DeclaredInput.timeoutMs(microseconds: JSONValues.number(timeout)?.doubleValue)
        }
        let binaryByDefault = JSONValues.boolean(parameters["binary_data_output"]) ?? false
        guard let inputList = object["inputs"] as? [Any] else { throw .badRequest("the request has no 'inputs' array") }
        var binaryRemaining = binaryBytes
        var binaryInputs: [PendingBinaryInput] = []
        var inputs: [String: Tensor] = [:]
        var seenNames: Set<String> = []
        for (index, entry) in inputList.enumerated() {
            guard let input = entry as? [String: Any] else { throw .badRequest("each input must be a JSON object") }
            switch try parseInput(input, index: index, seen: &seenNames, sharedMemory: sharedMemory) {
            case .ready(let name, let tensor):
                inputs[name] = tensor
            case .binary(let pending):
                if let available = binaryRemaining {
                    guard available >= pending.byteCount else {
                        throw .badRequest(
                            "input '\(pending.name)': the body ends \(pending.byteCount - available) bytes short of its binary data"
                        )
                    }
                    binaryRemaining = available - pending.byteCount
                }
                binaryInputs.append(pending)
            }
        }
        if let unclaimed = binaryRemaining, unclaimed > 0 {
            throw .badRequest("the body has \(unclaimed) bytes of binary data that no input claims")
        }
        return ParsedHeader(
            id: (object["id"] as? String) ?? "", timeoutMs: timeoutMs, binaryByDefault: binaryByDefault,
            inputs: inputs, binaryInputs: binaryInputs,
            outputs: try requestedOutputs(object, binaryByDefault: binaryByDefault, sharedMemory: sharedMemory))
    }

    /// The header as a JSON object.
    private static func headerObject(_ headerBytes: some Collection<UInt8>) throws(ServerError) -> [String: Any] {
        if headerBytes.isEmpty { throw zeroHeaderLength }
        let parsed: Any
        do {
            parsed = try JSONSerialization.jsonObject(with: Data(headerBytes))
        } catch {
            // Foundation's localizedDescription is generic on Linux; the debug description says where and what.
            let detail =
                (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? error.localizedDescription
            throw .badRequest("malformed JSON in the request header: \(detail)")
        }
        guard let object = parsed as? [String: Any] else { throw .badRequest("the request must be a JSON object") }
        return object
    }

    /// An input of the header: read (JSON data, shared memory) or still to come in binary.
    private enum HeaderInput {
        case ready(name: String, tensor: Tensor)
        case binary(PendingBinaryInput)
    }

    /// The input at `index`: its declaration checked (``DeclaredInput``), then its data taken from
    /// shared memory, JSON `data`, or announced as `binary_data_size` bytes after the header.
    private static func parseInput(
        _ input: [String: Any], index: Int, seen: inout Set<String>, sharedMemory: SharedMemoryRegistry?
    ) throws(ServerError) -> HeaderInput {
        let declared = try DeclaredInput(
            name: input["name"] as? String ?? "", index: index, datatype: input["datatype"] as? String,
            dimensions: (input["shape"] as? [Any]).map { values in
                values.map { JSONValues.number($0)?.doubleValue ?? -1 }
            }, seen: &seen)
        let name = declared.name
        let parameters = input["parameters"] as? [String: Any] ?? [:]
        if let reference = try sharedMemoryReference(parameters, registry: sharedMemory, what: "input '\(name)'") {
            if input["data"] != nil || parameters["binary_data_size"] != nil {
                try declared.refuseDataBesideSharedMemory("data/binary_data_size")
            }
            return .ready(name: name, tensor: try declared.tensor(in: reference))
        }
        if let size = parameters["binary_data_size"] {
            guard let binarySize = JSONValues.integer(size), binarySize >= 0 else {
                throw .badRequest("input '\(name)': binary_data_size must be a non-negative integer")
            }
            try declared.checkByteCount(binarySize, from: "binary_data_size")
            return .binary(
                PendingBinaryInput(
                    name: name, dataType: declared.dataType, shape: declared.shape,
                    byteCount: declared.byteCount ?? binarySize))
        }
        guard let data = input["data"] else {
            throw .badRequest("input '\(name)' has neither 'data' nor binary_data_size")
        }
        return .ready(
            name: name, tensor: try tensorFromJSON(data, name: name, dataType: declared.dataType, shape: declared.shape)
        )
    }

    /// The header's `outputs`, each binary or JSON (`binaryByDefault` where it does not say) or
    /// written to shared memory; `nil` when the header lists none (every output, in JSON).
    private static func requestedOutputs(
        _ object: [String: Any], binaryByDefault: Bool, sharedMemory: SharedMemoryRegistry?
    ) throws(ServerError) -> [RequestedOutput]? {
        guard let outputList = object["outputs"] as? [Any] else { return nil }
        var outputs: [RequestedOutput] = []
        for entry in outputList {
            guard let output = entry as? [String: Any], let name = output["name"] as? String else {
                throw .badRequest("each requested output must be an object with a 'name'")
            }
            let parameters = output["parameters"] as? [String: Any] ?? [:]
            let binary = JSONValues.boolean(parameters["binary_data"]) ?? binaryByDefault
            let reference = try sharedMemoryReference(parameters, registry: sharedMemory, what: "output '\(name)'")
            outputs.append(RequestedOutput(name: name, binary: binary, sharedMemory: reference))
        }
        return outputs
    }

    /// The `shared_memory_*` parameters of an input or output in a JSON header; `nil` when none is given.
    static func sharedMemoryReference(
        _ parameters: [String: Any], registry: SharedMemoryRegistry?, what: String
    ) throws(ServerError) -> SharedMemoryReference? {
        try SharedMemoryReference.parse(
            parameters, registry: registry, what: what, string: { $0 as? String },
            integer: { JSONValues.integer($0) })
    }

    /// Flattens JSON `data` (flat or nested, row-major) into a tensor of `dataType`, converting each
    /// value as the walk reaches it (one pass, no intermediate array of boxed values).
    static func tensorFromJSON(
        _ data: Any, name: String, dataType: DataType, shape: [Int]
    ) throws(ServerError) -> Tensor {
        let expected: Int
        do {
            expected = try Shape.elementCount(shape)
        } catch {
            throw .badRequest("input '\(name)': \(error)")
        }
        func values<Element>(
            _ convert: (Any) throws(ServerError) -> Element
        ) throws(ServerError) -> [Element] {
            try collect(data, name: name, shape: shape, expected: expected, convert)
        }
        func integers<Element: FixedWidthInteger & TensorElement>(
            _ type: Element.Type
        ) throws(ServerError) -> [Element] {
            try values { (value) throws(ServerError) in try integer(value, Element.self, name) }
        }
        do {
            switch dataType {
            case .bool:
                return try Tensor(
                    shape: shape,
                    values: try values { (value) throws(ServerError) -> Bool in
                        if let flag = JSONValues.boolean(value) { return flag }
                        throw .badRequest("input '\(name)': BOOL data must be true or false, got \(value)")
                    })
            case .uint8: return try Tensor(shape: shape, values: try integers(UInt8.self))
            case .uint16: return try Tensor(shape: shape, values: try integers(UInt16.self))
            case .uint32: return try Tensor(shape: shape, values: try integers(UInt32.self))
            case .uint64: return try Tensor(shape: shape, values: try integers(UInt64.self))
            case .int8: return try Tensor(shape: shape, values: try integers(Int8.self))
            case .int16: return try Tensor(shape: shape, values: try integers(Int16.self))
            case .int32: return try Tensor(shape: shape, values: try integers(Int32.self))
            case .int64: return try Tensor(shape: shape, values: try integers(Int64.self))
            case .fp32:
                return try Tensor(
                    shape: shape, values: try values { (value) throws(ServerError) in Float(try float(value, name)) })
            case .fp64:
                return try Tensor(
                    shape: shape, values: try values { (value) throws(ServerError) in try float(value, name) })
            case .fp16, .bf16:
                throw ServerError.badRequest(
                    "input '\(name)': \(dataType) cannot be sent as JSON; use binary tensor data")
            case .bytes:
                return try Tensor(
                    shape: shape,
                    byteStrings: try values { (value) throws(ServerError) -> [UInt8] in
                        guard let text = value as? String else {
                            throw .badRequest("input '\(name)': BYTES data must be strings, got \(describe(value))")
                        }
                        return Array(text.utf8)
                    })
            }
        } catch let error as ServerError {
            throw error
        } catch {
            throw .badRequest("input '\(name)': \(error)")
        }
    }

    /// The most values `collect` reserves room for before it has seen them (1 Mi).
    static let maxReservedValues = 1 << 20

    /// The leaves of `data` in row-major order, each converted; there must be `expected` of them
    /// (`shape`'s element count, named in the error).
    private static func collect<Element>(
        _ data: Any, name: String, shape: [Int], expected: Int, _ convert: (Any) throws(ServerError) -> Element
    ) throws(ServerError) -> [Element] {
        var result: [Element] = []
        // `expected` comes from the client's shape, not from the values sent: reserve no more than
        // a request's body can hold values for (a mutated shape asked for terabytes).
        result.reserveCapacity(min(expected, maxReservedValues))
        var count = 0
        func visit(_ value: Any, depth: Int) throws(ServerError) {
            // Told apart by exact type first: JSONSerialization gives `[Any]` arrays and NSNumber
            // leaves, and the casts that fail cost more than the conversion (a number tried as an
            // array; an array tried as a number is bridged to an NSArray, all its items copied).
            let array = type(of: value) == [Any].self || !(value is NSNumber) ? value as? [Any] : nil
            guard let array else {
                count += 1
                if count <= expected { result.append(try convert(value)) }
                return
            }
            guard depth < maxNesting else {
                throw .badRequest("input '\(name)': data is nested deeper than \(maxNesting)")
            }
            for element in array { try visit(element, depth: depth + 1) }
        }
        try visit(data, depth: 0)
        guard count == expected else {
            throw .badRequest("input '\(name)' has \(count) values, shape \(shape) needs \(expected)")
        }
        return result
    }

    private static func integer<Element: FixedWidthInteger & TensorElement>(
        _ value: Any, _ type: Element.Type, _ name: String
    ) throws(ServerError) -> Element {
        guard let number = JSONValues.number(value) else {
            throw .badRequest("input '\(name)': \(Element.dataType) data must be integers, got \(describe(value))")
        }
        let converted: Element?
        if Element.isSigned {
            converted = Element(exactly: number.int64Value).flatMap { number.doubleValue == Double($0) ? $0 : nil }
        } else {
            converted =
                number.doubleValue < 0
                ? nil
                : Element(exactly: number.uint64Value)
                    .flatMap { abs(number.doubleValue - Double($0)) < 1 ? $0 : nil }
        }
        guard let converted else {
            throw .badRequest("input '\(name)': \(value) is not a valid \(Element.dataType) value")
        }
        return converted
    }

    private static func float(_ value: Any, _ name: String) throws(ServerError) -> Double {
        guard let number = JSONValues.number(value) else {
            throw .badRequest("input '\(name)': floating-point data must be numbers, got \(describe(value))")
        }
        return number.doubleValue
    }

    /// A JSON value as the client wrote it (booleans as true/false, not 1/0).
    private static func describe(_ value: Any) -> String {
        if let flag = JSONValues.boolean(value) { return flag ? "true" : "false" }
        if value is NSNull { return "null" }
        return "\(value)"
    }

    // MARK: Encoding

    /// The response body and the length of its JSON part when binary outputs follow (else `nil`).
    /// Outputs requested into shared memory are written there; one that does not fit its region
    /// is an error.
    static func encode(
        _ response: InferenceResponse, modelName: String, version: String, decoded: DecodedInferRequest
    ) throws(ServerError) -> (body: ByteBuffer, jsonLength: Int?) {
        var json = #"{"model_name":"# + jsonString(modelName) + #","model_version":"# + jsonString(version)
        // The id is echoed only when the client gave one (as Triton does).
        if !response.id.isEmpty { json += #","id":"# + jsonString(response.id) }
        json += #","outputs":["#
        var binaryParts: [Tensor] = []
        for (index, output) in response.outputs.enumerated() {
            let requested = decoded.outputs?.first { $0.name == output.name }
            let binary = requested?.binary ?? decoded.binaryByDefault
            let tensor = output.tensor
            if index > 0 { json += "," }
            json +=
                #"{"name":"# + jsonString(output.name) + #","datatype":""# + tensor.dataType.rawValue + #"","shape":["#
            json += tensor.shape.map(String.init).joined(separator: ",") + "]"
            if let reference = requested?.sharedMemory {
                try reference.write(output: tensor, what: "output '\(output.name)'")
                // No `parameters` and no `data`: Triton's clients read any output `parameters` as
                // binary data in the body; the client knows where it asked the output to go.
                json += "}"
                continue
            }
            // BYTES that are not all UTF-8 text go back binary, as FP16 and BF16 always do.
            let texts = tensor.dataType == .bytes && !binary ? utf8Texts(tensor) : nil
            if binary || tensor.dataType == .fp16 || tensor.dataType == .bf16
                || (tensor.dataType == .bytes && texts == nil)
            {
                json += #","parameters":{"binary_data_size":\#(tensor.byteCount)}}"#
                binaryParts.append(tensor)
            } else {
                json += #","data":["# + (texts.map(jsonStrings) ?? jsonValues(tensor)) + "]}"
            }
        }
        json += "]}"
        var buffer = ByteBuffer()
        let jsonLength = buffer.writeString(json)
        for tensor in binaryParts {
            _ = tensor.withUnsafeBytes { buffer.writeBytes($0) }
        }
        return (buffer, binaryParts.isEmpty ? nil : jsonLength)
    }

    static func jsonValues(_ tensor: Tensor) -> String {
        func join<Element: TensorElement>(_ type: Element.Type, _ render: (Element) -> String) -> String {
            ((try? tensor.values(as: type)) ?? []).map(render).joined(separator: ",")
        }
        switch tensor.dataType {
        case .bool: return join(Bool.self) { $0 ? "true" : "false" }
        case .uint8: return join(UInt8.self) { String($0) }
        case .uint16: return join(UInt16.self) { String($0) }
        case .uint32: return join(UInt32.self) { String($0) }
        case .uint64: return join(UInt64.self) { String($0) }
        case .int8: return join(Int8.self) { String($0) }
        case .int16: return join(Int16.self) { String($0) }
        case .int32: return join(Int32.self) { String($0) }
        case .int64: return join(Int64.self) { String($0) }
        case .fp32: return join(Float.self) { $0.isFinite ? "\($0)" : "null" }
        case .fp64: return join(Double.self) { $0.isFinite ? "\($0)" : "null" }
        case .fp16, .bf16: return ""
        case .bytes: return jsonStrings(utf8Texts(tensor) ?? [])
        }
    }

    /// The elements of a BYTES tensor as text; `nil` when one is not UTF-8 (JSON cannot carry it:
    /// such an output goes back as binary data).
    static func utf8Texts(_ tensor: Tensor) -> [String]? {
        var texts: [String] = []
        for element in (try? tensor.byteStrings()) ?? [] {
            guard let text = String(validating: element, as: UTF8.self) else { return nil }
            texts.append(text)
        }
        return texts
    }

    /// JSON string literals for `texts`, comma-separated.
    static func jsonStrings(_ texts: [String]) -> String {
        texts.map(jsonString).joined(separator: ",")
    }

    /// A JSON string literal (quotes included) for `text`.
    static func jsonString(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\r": result += "\\r"
            case "\t": result += "\\t"
            case let control where control.value < 0x20:
                result += String(format: "\\u%04x", control.value)
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result + "\""
    }
}
