import DNNScaler
import Foundation
import InferenceProtocol

/// Turns gRPC `ModelInferRequest`s into ``InferenceRequest``s and ``InferenceResponse``s back
/// into `ModelInferResponse`s. Inputs arrive either in `raw_input_contents` (what perf_analyzer and
/// tritonclient send) or in each input's typed `contents`; outputs always go back raw, as Triton does.
enum GRPCTensorCodec {
    /// A decoded request and the outputs it wants written into shared memory, by name.
    struct Decoded {
        var request: InferenceRequest
        var sharedMemoryOutputs: [String: SharedMemoryReference] = [:]
    }

    /// Decodes a request; every problem is a 400-class ``ServerError`` naming the input. `arrival`
    /// is when the request reached the server. Inputs and outputs may name regions of `sharedMemory`;
    /// `raw_input_contents` then holds one entry per input that is not in shared memory, in order.
    static func decode(
        _ message: Inference_ModelInferRequest, metadataTimeoutMs: Double?, arrival: ContinuousClock.Instant? = nil,
        sharedMemory: SharedMemoryRegistry? = nil
    ) throws(ServerError) -> Decoded {
        let raw = message.rawInputContents
        let inputReferences = try message.inputs.map { (input) throws(ServerError) in
            try sharedMemoryReference(input.parameters, registry: sharedMemory, what: "input '\(input.name)'")
        }
        let inBody = inputReferences.filter { $0 == nil }.count
        if !raw.isEmpty && raw.count != inBody {
            throw .badRequest(
                "raw_input_contents has \(raw.count) entries but the request has \(inBody) inputs not in shared memory")
        }
        var rawIndex = 0
        var inputs: [String: Tensor] = [:]
        var seenNames: Set<String> = []
        for (index, input) in message.inputs.enumerated() {
            let declared = try DeclaredInput(
                name: input.name, index: index, datatype: input.datatype, dimensions: input.shape.map(Double.init),
                seen: &seenNames)
            if let reference = inputReferences[index] {
                if input.hasContents { try declared.refuseDataBesideSharedMemory("contents") }
                inputs[declared.name] = try declared.tensor(in: reference)
            } else if !raw.isEmpty {
                if input.hasContents {
                    throw .badRequest("input '\(declared.name)' has both contents and raw_input_contents; send one")
                }
                let bytes = raw[rawIndex]
                rawIndex += 1
                let tensor = bytes.withUnsafeBytes { buffer in
                    Result { () throws(ServerError) in
                        try declared.tensor(copying: buffer, from: "raw_input_contents")
                    }
                }
                inputs[declared.name] = try tensor.get()
            } else {
                guard input.hasContents else {
                    throw .badRequest("input '\(declared.name)' has neither contents nor raw_input_contents")
                }
                inputs[declared.name] = try tensor(
                    from: input.contents, name: declared.name, dataType: declared.dataType, shape: declared.shape,
                    elementCount: declared.elementCount)
            }
        }
        let outputNames = message.outputs.isEmpty ? nil : message.outputs.map(\.name)
        var decoded = Decoded(
            request: InferenceRequest(
                id: message.id, inputs: inputs, outputNames: outputNames,
                timeoutMs: try timeoutMs(message.parameters["timeout"], metadataTimeoutMs: metadataTimeoutMs),
                arrival: arrival))
        for output in message.outputs {
            if let reference = try sharedMemoryReference(
                output.parameters, registry: sharedMemory, what: "output '\(output.name)'")
            {
                decoded.sharedMemoryOutputs[output.name] = reference
            }
        }
        return decoded
    }

    /// The shorter of the `timeout` parameter (microseconds, any numeric kind) and the deadline
    /// the `grpc-timeout` header gave, in milliseconds.
    static func timeoutMs(
        _ parameter: Inference_InferParameter?, metadataTimeoutMs: Double?
    ) throws(ServerError) -> Double? {
        guard let parameter else { return metadataTimeoutMs }
        let microseconds: Double
        switch parameter.parameterChoice {
        case .int64Param(let value): microseconds = Double(value)
        case .uint64Param(let value): microseconds = Double(value)
        case .doubleParam(let value): microseconds = value
        default: throw .badRequest("parameter 'timeout' must be a number of microseconds")
        }
        return min(metadataTimeoutMs ?? .infinity, try DeclaredInput.timeoutMs(microseconds: microseconds))
    }

    /// The `shared_memory_*` parameters of an input or output; `nil` when none is given.
    static func sharedMemoryReference(
        _ parameters: [String: Inference_InferParameter], registry: SharedMemoryRegistry?, what: String
    ) throws(ServerError) -> SharedMemoryReference? {
        try SharedMemoryReference.parse(
            parameters, registry: registry, what: what,
            string: { parameter in
                if case .stringParam(let text) = parameter.parameterChoice { return text }
                return nil
            },
            integer: { parameter in
                switch parameter.parameterChoice {
                case .int64Param(let value): return Int(exactly: value)
                case .uint64Param(let value): return Int(exactly: value)
                default: return nil
                }
            })
    }

    /// The bytes of tensor data and text a request carries: raw contents, typed contents at 8
    /// bytes a value (their widest), the id and parameter strings. Checked against the size limit.
    static func payloadBytes(_ message: Inference_ModelInferRequest) -> Int {
        var total = message.id.utf8.count + message.rawInputContents.reduce(0) { $0 + $1.count }
        for input in message.inputs where input.hasContents {
            let contents = input.contents
            total +=
                8
                * (contents.boolContents.count + contents.intContents.count + contents.int64Contents.count
                    + contents.uintContents.count + contents.uint64Contents.count + contents.fp32Contents.count
                    + contents.fp64Contents.count)
            total += contents.bytesContents.reduce(0) { $0 + $1.count }
        }
        return total
    }

    /// A tensor from the typed `contents` field that belongs to `dataType`.
    private static func tensor(
        from contents: Inference_InferTensorContents, name: String, dataType: DataType, shape: [Int],
        elementCount: Int
    ) throws(ServerError) -> Tensor {
        func make<Element: TensorElement>(_ values: [Element], field: String) throws(ServerError) -> Tensor {
            guard values.count == elementCount else {
                throw .badRequest(
                    "input '\(name)': \(field) holds \(values.count) values but shape \(shape) needs \(elementCount)")
            }
            do {
                return try Tensor(shape: shape, values: values)
            } catch {
                throw .badRequest("input '\(name)': \(error)")
            }
        }
        func narrowed<Wide: BinaryInteger, Element: FixedWidthInteger & TensorElement>(
            _ values: [Wide], to type: Element.Type, field: String
        ) throws(ServerError) -> Tensor {
            var narrow: [Element] = []
            narrow.reserveCapacity(values.count)
            for value in values {
                guard let exact = Element(exactly: value) else {
                    throw .badRequest("input '\(name)': \(field) value \(value) does not fit \(dataType)")
                }
                narrow.append(exact)
            }
            return try make(narrow, field: field)
        }
        switch dataType {
        case .bool: return try make(contents.boolContents, field: "bool_contents")
        case .int8: return try narrowed(contents.intContents, to: Int8.self, field: "int_contents")
        case .int16: return try narrowed(contents.intContents, to: Int16.self, field: "int_contents")
        case .int32: return try make(contents.intContents, field: "int_contents")
        case .int64: return try make(contents.int64Contents, field: "int64_contents")
        case .uint8: return try narrowed(contents.uintContents, to: UInt8.self, field: "uint_contents")
        case .uint16: return try narrowed(contents.uintContents, to: UInt16.self, field: "uint_contents")
        case .uint32: return try make(contents.uintContents, field: "uint_contents")
        case .uint64: return try make(contents.uint64Contents, field: "uint64_contents")
        case .fp32: return try make(contents.fp32Contents, field: "fp32_contents")
        case .fp64: return try make(contents.fp64Contents, field: "fp64_contents")
        case .fp16, .bf16:
            throw .badRequest("input '\(name)': \(dataType) tensors must be sent in raw_input_contents")
        case .bytes:
            guard contents.bytesContents.count == elementCount else {
                throw .badRequest(
                    "input '\(name)': bytes_contents holds \(contents.bytesContents.count) values but shape \(shape) needs \(elementCount)"
                )
            }
            do {
                return try Tensor(shape: shape, byteStrings: contents.bytesContents.map { Array($0) })
            } catch {
                throw .badRequest("input '\(name)': \(error)")
            }
        }
    }

    /// The response: every output's name, datatype and shape, and its bytes in `raw_output_contents`;
    /// an output sent to shared memory is written there and its `raw_output_contents` entry is empty
    /// (the entries stay aligned with the outputs, as Triton's clients read them by position).
    static func encode(
        _ response: InferenceResponse, modelName: String, version: String,
        sharedMemoryOutputs: [String: SharedMemoryReference] = [:]
    ) throws(ServerError) -> Inference_ModelInferResponse {
        for output in response.outputs {
            try sharedMemoryOutputs[output.name]?.write(output: output.tensor, what: "output '\(output.name)'")
        }
        var message = Inference_ModelInferResponse()
        message.modelName = modelName
        message.modelVersion = version
        message.id = response.id
        message.outputs = response.outputs.map { output in
            var tensor = Inference_ModelInferResponse.InferOutputTensor()
            tensor.name = output.name
            tensor.datatype = output.tensor.dataType.rawValue
            tensor.shape = output.tensor.shape.map(Int64.init)
            return tensor
        }
        message.rawOutputContents = response.outputs.map { output in
            sharedMemoryOutputs[output.name] == nil ? output.tensor.withUnsafeBytes { Data($0) } : Data()
        }
        return message
    }

    /// The `grpc-timeout` header value (`<digits><unit>`, unit one of H M S m u n) in milliseconds.
    static func timeoutMilliseconds(header: String) -> Double? {
        guard let unit = header.last, let amount = Double(header.dropLast()), amount > 0 else { return nil }
        switch unit {
        case "H": return amount * 3_600_000
        case "M": return amount * 60_000
        case "S": return amount * 1000
        case "m": return amount
        case "u": return amount / 1000
        case "n": return amount / 1_000_000
        default: return nil
        }
    }
}
