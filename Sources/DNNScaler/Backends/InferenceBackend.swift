/// The name, data type and shape of one model input or output. Dynamic dimensions are `-1`.
public struct TensorSpec: Sendable, Equatable, Codable {
    /// The tensor's name in the model.
    public var name: String
    /// The element type.
    public var dataType: DataType
    /// The dimensions; `-1` marks a dynamic dimension.
    public var shape: [Int]

    /// Creates a spec.
    public init(name: String, dataType: DataType, shape: [Int]) {
        self.name = name
        self.dataType = dataType
        self.shape = shape
    }

    /// Whether the first dimension is dynamic, so requests can be batched along it.
    public var hasDynamicBatchDimension: Bool { shape.first == -1 }

    /// Whether `actual` is a shape this spec accepts: same rank, and equal wherever the spec is fixed.
    public func accepts(shape actual: [Int]) -> Bool {
        guard actual.count == shape.count else { return false }
        return zip(shape, actual).allSatisfy { expected, given in expected == -1 ? given >= 0 : expected == given }
    }
}

/// What a loaded model takes and gives.
public struct ModelMetadata: Sendable, Equatable {
    /// The model's name (its folder in the repository, or the file's base name).
    public var name: String
    /// Triton's platform string, e.g. `onnxruntime_onnx`.
    public var platform: String
    /// The inputs, in the model's order.
    public var inputs: [TensorSpec]
    /// The outputs, in the model's order.
    public var outputs: [TensorSpec]

    /// Creates metadata.
    public init(name: String, platform: String, inputs: [TensorSpec], outputs: [TensorSpec]) {
        self.name = name
        self.platform = platform
        self.inputs = inputs
        self.outputs = outputs
    }

    /// Whether every input and output has a dynamic first dimension, so requests can be batched.
    public var supportsBatching: Bool {
        !inputs.isEmpty && (inputs + outputs).allSatisfy(\.hasDynamicBatchDimension)
    }
}

/// A model that can create instances of itself: the seam between scheduling and the runtime.
public protocol InferenceBackend: Sendable {
    /// What the model takes and gives.
    var metadata: ModelMetadata { get }

    /// Creates one instance (e.g. an ONNX Runtime session) that uses `threads` intra-op threads.
    /// Blocking: call it off the cooperative thread pool.
    func makeInstance(threads: Int) throws(BackendError) -> any ModelInstance
}

/// One loaded copy of a model. `run` may be called from several threads at once; it blocks for
/// the duration of the inference, so callers run it on dedicated threads.
public protocol ModelInstance: AnyObject, Sendable {
    /// The intra-op threads this instance computes with.
    var threads: Int { get }

    /// Runs one batch. `inputs` maps every model input name to a tensor; `outputNames` selects
    /// outputs (`nil`: all, in the model's order). Inputs are checked against the metadata first.
    func run(_ inputs: [String: Tensor], outputNames: [String]?) throws(BackendError) -> [String: Tensor]
}

extension ModelMetadata {
    /// Checks inputs and requested outputs against the model, so that a client mistake becomes a
    /// clear error instead of reaching the runtime.
    public func validate(inputs given: [String: Tensor], outputNames: [String]?) throws(BackendError) {
        for name in given.keys where !inputs.contains(where: { $0.name == name }) {
            throw .unknownInput(name: name, model: self.name, expected: inputs.map(\.name))
        }
        for spec in inputs {
            guard let tensor = given[spec.name] else {
                throw .missingInput(name: spec.name, model: name)
            }
            guard tensor.dataType == spec.dataType else {
                throw .dataTypeMismatch(input: spec.name, expected: spec.dataType, actual: tensor.dataType)
            }
            guard spec.accepts(shape: tensor.shape) else {
                throw .shapeMismatch(input: spec.name, expected: spec.shape, actual: tensor.shape)
            }
            if tensor.dataType == .bytes {
                // ONNX Runtime keeps strings NUL-terminated: an element with a NUL would be cut
                // short without a word, so it is refused here, before it can share a batch.
                let withNul: Int?
                do {
                    let count = try Shape.elementCount(tensor.shape)
                    withNul = try tensor.withUnsafeBytes { (raw) throws(TensorError) in
                        try BytesElements.ranges(in: raw, count: count).firstIndex { raw[$0].contains(0) }
                    }
                } catch {
                    throw .invalidTensor(error)
                }
                if let index = withNul {
                    throw .invalidArgument(
                        "input '\(spec.name)': BYTES element \(index) contains a NUL byte, which ONNX Runtime strings cannot hold"
                    )
                }
            }
        }
        for name in outputNames ?? [] where !outputs.contains(where: { $0.name == name }) {
            throw .unknownOutput(name: name, model: self.name, expected: outputs.map(\.name))
        }
    }
}
