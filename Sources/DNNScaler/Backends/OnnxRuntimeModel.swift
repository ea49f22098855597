import COnnxRuntime
import Foundation

/// An ONNX model served by ONNX Runtime on the CPU. Each instance is an ONNX Runtime session
/// with its own intra-op thread pool, so k instances can split the machine's cores between them.
public struct OnnxRuntimeModel: InferenceBackend {
    /// What the model takes and gives, read from the model when it was loaded.
    public let metadata: ModelMetadata
    /// The model file.
    public let path: String
    /// The runtime that runs it.
    public let runtime: OnnxRuntime
    /// Whether idle intra-op threads spin waiting for work (ONNX Runtime's default). It matters for
    /// instances with several threads: in process it is faster; served on 2 shared cores it was
    /// erratic (docs/design-decisions.md), so `serve` turns it off unless `--spinning`.
    public let allowSpinning: Bool

    /// Loads the model's metadata and checks that the runtime accepts the file.
    /// - Parameters:
    ///   - path: the `.onnx` file.
    ///   - name: the model's name; defaults to the repository folder or file name.
    public init(
        path: String, name: String? = nil, runtime: OnnxRuntime, allowSpinning: Bool = true
    ) throws(BackendError) {
        guard FileManager.default.fileExists(atPath: path) else { throw .modelNotFound(path: path) }
        self.path = path
        self.runtime = runtime
        self.allowSpinning = allowSpinning
        // A light session (no graph optimization, one thread) is enough to read names and types.
        let probe = try OnnxRuntimeSession(
            path: path, threads: 1, optimize: false, allowSpinning: false, runtime: runtime)
        let modelName = name ?? Self.defaultName(for: path)
        metadata = ModelMetadata(
            name: modelName, platform: "onnxruntime_onnx", inputs: probe.inputs, outputs: probe.outputs)
    }

    /// Creates a session with `threads` intra-op threads.
    public func makeInstance(threads: Int) throws(BackendError) -> any ModelInstance {
        try OnnxRuntimeInstance(model: self, threads: threads)
    }

    /// `model_repository/resnet50/1/model.onnx` -> `resnet50`; `/tmp/foo.onnx` -> `foo`.
    static func defaultName(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        let components = url.pathComponents
        if components.count >= 3, Int(components[components.count - 2]) != nil {
            return components[components.count - 3]
        }
        return url.deletingPathExtension().lastPathComponent
    }
}

/// One ONNX Runtime session of an ``OnnxRuntimeModel``.
public final class OnnxRuntimeInstance: ModelInstance {
    /// The intra-op threads of this session.
    public let threads: Int
    private let metadata: ModelMetadata
    private let session: OnnxRuntimeSession
    private let allOutputNames: [String]

    init(model: OnnxRuntimeModel, threads: Int) throws(BackendError) {
        guard threads >= 1 else { throw .invalidArgument("an instance needs at least 1 thread, got \(threads)") }
        self.threads = threads
        metadata = model.metadata
        session = try OnnxRuntimeSession(
            path: model.path, threads: threads, optimize: true, allowSpinning: model.allowSpinning,
            runtime: model.runtime)
        allOutputNames = metadata.outputs.map(\.name)
    }

    /// Runs one batch after checking the inputs against the model's metadata.
    public func run(_ inputs: [String: Tensor], outputNames: [String]?) throws(BackendError) -> [String: Tensor] {
        try metadata.validate(inputs: inputs, outputNames: outputNames)
        // validate() guarantees a tensor for every model input.
        let ordered = metadata.inputs.compactMap { inputs[$0.name] }
        let outputs = outputNames ?? allOutputNames
        let results = try session.run(inputs: ordered, outputNames: outputs)
        return Dictionary(uniqueKeysWithValues: zip(outputs, results))
    }
}
