import COnnxRuntime
import Foundation

/// A thin owner of one `OrtSession`: creation, metadata queries and `Run`. ONNX Runtime allows
/// concurrent `Run` calls on one session, so this class is Sendable.
final class OnnxRuntimeSession: @unchecked Sendable {
    private let runtime: OnnxRuntime
    private let session: OpaquePointer
    /// The model's inputs and outputs, in the model's order.
    let inputs: [TensorSpec]
    let outputs: [TensorSpec]
    /// C copies of the input and output names, made once: `Run` takes names on every call.
    private let inputCNames: [UnsafePointer<CChar>?]
    private let outputCNames: [String: UnsafePointer<CChar>?]

    init(path: String, threads: Int, optimize: Bool, allowSpinning: Bool, runtime: OnnxRuntime) throws(BackendError) {
        self.runtime = runtime
        var options: OpaquePointer?
        try OnnxRuntime.check(dns_ort_create_session_options(&options))
        guard let options else { throw .runtimeFailed(message: "ONNX Runtime returned no session options") }
        defer { dns_ort_release_session_options(options) }
        try OnnxRuntime.check(dns_ort_set_intra_op_threads(options, Int32(clamping: threads)))
        try OnnxRuntime.check(dns_ort_set_inter_op_threads(options, 1))
        try OnnxRuntime.check(dns_ort_set_execution_mode(options, 0))
        try OnnxRuntime.check(dns_ort_set_graph_optimization_level(options, optimize ? 99 : 0))
        if !allowSpinning {
            try OnnxRuntime.check(dns_ort_add_session_config_entry(options, "session.intra_op.allow_spinning", "0"))
        }
        var session: OpaquePointer?
        do {
            try OnnxRuntime.check(
                path.withCString { dns_ort_create_session(runtime.environment, $0, options, &session) })
        } catch .runtimeFailed(let message) {
            throw .modelLoadFailed(path: path, reason: message)
        }
        guard let session else { throw .modelLoadFailed(path: path, reason: "ONNX Runtime returned no session") }
        do {
            var inputCount = 0
            try OnnxRuntime.check(dns_ort_session_input_count(session, &inputCount))
            inputs = try (0..<inputCount).map { (index) throws(BackendError) -> TensorSpec in
                try Self.spec(
                    session: session, index: index, path: path, name: dns_ort_session_input_name,
                    typeInfo: dns_ort_session_input_type_info)
            }
            var outputCount = 0
            try OnnxRuntime.check(dns_ort_session_output_count(session, &outputCount))
            outputs = try (0..<outputCount).map { (index) throws(BackendError) -> TensorSpec in
                try Self.spec(
                    session: session, index: index, path: path, name: dns_ort_session_output_name,
                    typeInfo: dns_ort_session_output_type_info)
            }
        } catch {
            dns_ort_release_session(session)
            throw error
        }
        self.session = session
        inputCNames = inputs.map { UnsafePointer(strdup($0.name)) }
        outputCNames = Dictionary(
            outputs.map { ($0.name, UnsafePointer(strdup($0.name))) }, uniquingKeysWith: { first, _ in first })
    }

    deinit {
        dns_ort_release_session(session)
        for name in inputCNames { free(UnsafeMutablePointer(mutating: name)) }
        for name in outputCNames.values { free(UnsafeMutablePointer(mutating: name)) }
    }

    private static func spec(
        session: OpaquePointer, index: Int, path: String,
        name nameGetter: (OpaquePointer?, Int, UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> OpaquePointer?,
        typeInfo typeInfoGetter: (OpaquePointer?, Int, UnsafeMutablePointer<OpaquePointer?>?) -> OpaquePointer?
    ) throws(BackendError) -> TensorSpec {
        var rawName: UnsafeMutablePointer<CChar>?
        try OnnxRuntime.check(nameGetter(session, index, &rawName))
        guard let rawName else { throw .unsupportedModel(path: path, reason: "tensor \(index) has no name") }
        let name = String(cString: rawName)
        dns_ort_free_name(rawName)

        var typeInfo: OpaquePointer?
        try OnnxRuntime.check(typeInfoGetter(session, index, &typeInfo))
        guard let typeInfo else { throw .unsupportedModel(path: path, reason: "'\(name)' has no type information") }
        defer { dns_ort_release_type_info(typeInfo) }
        var onnxType: Int32 = 0
        try OnnxRuntime.check(dns_ort_type_info_onnx_type(typeInfo, &onnxType))
        guard onnxType == 1 else {
            throw .unsupportedModel(path: path, reason: "'\(name)' is not a tensor (ONNX type \(onnxType))")
        }
        var tensorInfo: OpaquePointer?
        try OnnxRuntime.check(dns_ort_type_info_tensor_info(typeInfo, &tensorInfo))
        guard let tensorInfo else { throw .unsupportedModel(path: path, reason: "'\(name)' has no tensor info") }
        let (elementType, shape) = try Self.typeAndShape(tensorInfo)
        guard let dataType = DataType(onnxElementType: elementType) else {
            throw .unsupportedModel(path: path, reason: "'\(name)' has ONNX element type \(elementType), not served")
        }
        return TensorSpec(name: name, dataType: dataType, shape: shape)
    }

    private static func typeAndShape(_ info: OpaquePointer) throws(BackendError) -> (Int32, [Int]) {
        var elementType: Int32 = 0
        try OnnxRuntime.check(dns_ort_tensor_element_type(info, &elementType))
        var rank = 0
        try OnnxRuntime.check(dns_ort_tensor_dimension_count(info, &rank))
        var dimensions = [Int64](repeating: 0, count: rank)
        try OnnxRuntime.check(dns_ort_tensor_dimensions(info, &dimensions, rank))
        return (elementType, dimensions.map { $0 < 0 ? -1 : Int($0) })
    }

    /// Runs the session on one tensor per model input, in the model's input order. Inputs are
    /// passed to ONNX Runtime without copying; outputs stay in ONNX Runtime's memory, owned by the
    /// returned tensors and released with them.
    func run(inputs tensors: [Tensor], outputNames: [String]) throws(BackendError) -> [Tensor] {
        guard tensors.count == inputCNames.count else {
            throw .invalidArgument("expected \(inputCNames.count) input tensors, got \(tensors.count)")
        }
        let outputNamePointers = try outputNames.map { (name) throws(BackendError) -> UnsafePointer<CChar>? in
            guard let pointer = outputCNames[name] else {
                throw .unknownOutput(name: name, model: "", expected: outputs.map(\.name))
            }
            return pointer
        }
        var values: [OpaquePointer?] = []
        values.reserveCapacity(tensors.count)
        defer { for value in values { dns_ort_release_value(value) } }
        for tensor in tensors {
            var value: OpaquePointer?
            let shape = tensor.shape.map(Int64.init)
            if tensor.dataType == .bytes {
                values.append(try Self.stringValue(tensor, shape: shape))
                continue
            }
            try tensor.withUnsafeBytes { (bytes) throws(BackendError) in
                // ONNX Runtime does not write input tensors; the mutable cast is what its C API takes.
                let data = UnsafeMutableRawPointer(mutating: bytes.baseAddress)
                try OnnxRuntime.check(
                    dns_ort_create_tensor_with_data(
                        runtime.cpuMemoryInfo, data, bytes.count, shape, shape.count, tensor.dataType.onnxElementType,
                        &value))
            }
            values.append(value)
        }
        var outputValues = [OpaquePointer?](repeating: nil, count: outputNames.count)
        let status = withExtendedLifetime(tensors) {
            values.withUnsafeBufferPointer { valuePointers in
                dns_ort_run(
                    session, inputCNames, valuePointers.baseAddress, tensors.count, outputNamePointers,
                    outputNames.count, &outputValues)
            }
        }
        do throws(BackendError) {
            try OnnxRuntime.check(status)
        } catch {
            for output in outputValues { dns_ort_release_value(output) }
            throw error
        }
        var results: [Tensor] = []
        results.reserveCapacity(outputValues.count)
        for (index, output) in outputValues.enumerated() {
            do throws(BackendError) {
                results.append(try Self.adoptOutput(output, name: outputNames[index]))
            } catch {
                // Values already adopted are released by their tensors; release the rest here.
                for remaining in outputValues[(index + 1)...] { dns_ort_release_value(remaining) }
                throw error
            }
        }
        return results
    }

    /// A STRING value holding a copy of a BYTES tensor's elements (ONNX Runtime keeps strings in
    /// its own memory). Elements must hold no NUL byte (``ModelMetadata/validate`` refuses them).
    private static func stringValue(_ tensor: Tensor, shape: [Int64]) throws(BackendError) -> OpaquePointer? {
        // All elements back to back, each with its terminator, and where each starts: one copy of
        // the request's bytes.
        var text = [CChar]()
        var starts: [Int] = []
        do {
            let count = try Shape.elementCount(tensor.shape)
            try tensor.withUnsafeBytes { (raw) throws(TensorError) in
                let ranges = try BytesElements.ranges(in: raw, count: count)
                text.reserveCapacity(raw.count)
                starts.reserveCapacity(count)
                for range in ranges {
                    starts.append(text.count)
                    for byte in raw[range] { text.append(CChar(bitPattern: byte)) }
                    text.append(0)
                }
            }
        } catch {
            throw .invalidTensor(error)
        }
        var value: OpaquePointer?
        let status = text.withUnsafeBufferPointer { characters in
            let base = characters.baseAddress
            let pointers: [UnsafePointer<CChar>?] = starts.map { start in base.map { $0 + start } }
            return dns_ort_create_string_tensor(shape, shape.count, pointers, pointers.count, &value)
        }
        try OnnxRuntime.check(status)
        return value
    }

    /// Copies a STRING output into a BYTES tensor (and releases the value).
    private static func copyStrings(_ output: OpaquePointer, shape: [Int], name: String) throws(BackendError) -> Tensor
    {
        let count: Int
        do {
            count = try Shape.elementCount(shape)
        } catch {
            throw .invalidTensor(error)
        }
        var length = 0
        try OnnxRuntime.check(dns_ort_string_tensor_data_length(output, &length))
        var content = [UInt8](repeating: 0, count: max(1, length))
        var offsets = [Int](repeating: 0, count: max(1, count))
        try OnnxRuntime.check(dns_ort_string_tensor_content(output, &content, length, &offsets, count))
        let elements = (0..<count).map { index in
            Array(content[offsets[index]..<(index + 1 < count ? offsets[index + 1] : length)])
        }
        do {
            return try Tensor(shape: shape, byteStrings: elements)
        } catch {
            throw .runtimeFailed(message: "output '\(name)': \(error)")
        }
    }

    /// Wraps an output value as a tensor that owns it (no copy; BYTES outputs are copied).
    private static func adoptOutput(_ output: OpaquePointer?, name: String) throws(BackendError) -> Tensor {
        guard let output else { throw .runtimeFailed(message: "ONNX Runtime returned no value for '\(name)'") }
        let value = OwnedValue(output)
        var info: OpaquePointer?
        try OnnxRuntime.check(dns_ort_value_type_and_shape(output, &info))
        guard let info else { throw .runtimeFailed(message: "output '\(name)' has no shape") }
        defer { dns_ort_release_tensor_type_and_shape_info(info) }
        let (elementType, shape) = try typeAndShape(info)
        guard let dataType = DataType(onnxElementType: elementType) else {
            throw .runtimeFailed(message: "output '\(name)' has ONNX element type \(elementType), not served")
        }
        if dataType == .bytes {
            return try withExtendedLifetime(value) { () throws(BackendError) in
                try copyStrings(output, shape: shape, name: name)
            }
        }
        let byteCount: Int
        do {
            byteCount = try Shape.byteCount(shape, dataType: dataType)
        } catch {
            throw .invalidTensor(error)
        }
        var data: UnsafeMutableRawPointer?
        try OnnxRuntime.check(dns_ort_tensor_mutable_data(output, &data))
        let bytes = UnsafeRawBufferPointer(start: byteCount == 0 ? nil : data, count: byteCount)
        // The buffer's release closure holds the value; releasing the buffer releases the value.
        let buffer = TensorBuffer(external: bytes) { _ in withExtendedLifetime(value) {} }
        return Tensor(dataType: dataType, shape: shape, buffer: buffer, byteOffset: 0, byteCount: byteCount)
    }
}

/// Releases an `OrtValue` when the last reference goes: the tensor's buffer, or an error path.
private final class OwnedValue: @unchecked Sendable {
    let value: OpaquePointer

    init(_ value: OpaquePointer) { self.value = value }

    deinit { dns_ort_release_value(value) }
}
