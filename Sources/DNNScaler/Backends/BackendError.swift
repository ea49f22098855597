/// Errors from loading and running models. Each case says what went wrong and how to fix it.
public enum BackendError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No ONNX Runtime library was found where DNNScaler looks.
    case libraryNotFound(searched: [String])
    /// A library was found but could not be loaded or is not a usable ONNX Runtime.
    case libraryUnusable(String)
    /// The model file does not exist.
    case modelNotFound(path: String)
    /// The runtime could not load the model (not ONNX, corrupt, unsupported operator, ...).
    case modelLoadFailed(path: String, reason: String)
    /// The model has an input or output DNNScaler cannot serve (e.g. strings, sequences).
    case unsupportedModel(path: String, reason: String)
    /// A request names an input the model does not have.
    case unknownInput(name: String, model: String, expected: [String])
    /// A request lacks an input the model needs.
    case missingInput(name: String, model: String)
    /// A request asks for an output the model does not have.
    case unknownOutput(name: String, model: String, expected: [String])
    /// An input has the wrong data type.
    case dataTypeMismatch(input: String, expected: DataType, actual: DataType)
    /// An input has the wrong shape.
    case shapeMismatch(input: String, expected: [Int], actual: [Int])
    /// A tensor could not be built (sizes, overflow).
    case invalidTensor(TensorError)
    /// The runtime failed while running; `message` is the runtime's own text.
    case runtimeFailed(message: String)
    /// A setting is out of range, e.g. zero threads.
    case invalidArgument(String)

    /// A one-line message for logs and clients.
    public var description: String {
        switch self {
        case .libraryNotFound(let searched):
            "ONNX Runtime library not found (looked in: \(searched.joined(separator: ", "))); "
                + "run scripts/setup, or set DNNSCALER_ORT_LIBRARY=/path/to/libonnxruntime.so (or --ort-library)"
        case .libraryUnusable(let reason):
            "\(reason); run scripts/setup, or point DNNSCALER_ORT_LIBRARY (or --ort-library) "
                + "at an ONNX Runtime 1.13+ libonnxruntime.so"
        case .modelNotFound(let path):
            "model file not found: \(path)"
        case .modelLoadFailed(let path, let reason):
            "cannot load model \(path): \(reason)"
        case .unsupportedModel(let path, let reason):
            "model \(path) cannot be served: \(reason)"
        case .unknownInput(let name, let model, let expected):
            "model '\(model)' has no input '\(name)' (inputs: \(expected.joined(separator: ", ")))"
        case .missingInput(let name, let model):
            "model '\(model)' needs input '\(name)', which the request lacks"
        case .unknownOutput(let name, let model, let expected):
            "model '\(model)' has no output '\(name)' (outputs: \(expected.joined(separator: ", ")))"
        case .dataTypeMismatch(let input, let expected, let actual):
            "input '\(input)' must be \(expected), got \(actual)"
        case .shapeMismatch(let input, let expected, let actual):
            "input '\(input)' has shape \(actual), the model expects \(expected) (-1: any size)"
        case .invalidTensor(let error):
            error.description
        case .runtimeFailed(let message):
            "inference failed: \(message)"
        case .invalidArgument(let reason):
            reason
        }
    }
}
