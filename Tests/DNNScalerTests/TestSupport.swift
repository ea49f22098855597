import DNNScaler
import Foundation

/// Paths and loaders shared by the tests. The model repository is the one `scripts/setup` builds.
enum TestSupport {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let repository = ModelRepository(root: "\(packageRoot)/model_repository")

    static func runtime() throws -> OnnxRuntime {
        try OnnxRuntime.load(libraryPath: ProcessInfo.processInfo.environment[OnnxRuntime.libraryEnvironmentVariable])
    }

    static func model(_ name: String) throws -> OnnxRuntimeModel {
        try OnnxRuntimeModel(path: try repository.modelFile(name: name), name: name, runtime: try runtime())
    }

    /// Deterministic FP32 values in [-1, 1).
    static func randomFloats(count: Int, seed: UInt64) -> [Float] {
        var generator = SplitMix64(seed: seed)
        return (0..<count).map { _ in Float(generator.next() >> 40) / Float(1 << 23) - 1 }
    }
}
