import COnnxRuntime
import Foundation
import Synchronization

/// The ONNX Runtime C library, loaded once per process with dlopen, and its process-wide
/// environment. Get it with ``load(libraryPath:)``.
public final class OnnxRuntime: @unchecked Sendable {
    /// The environment variable that names the library, overriding the search.
    public static let libraryEnvironmentVariable = "DNNSCALER_ORT_LIBRARY"

    /// The library's version, e.g. `1.31.1`.
    public let version: String
    /// The path the library was loaded from.
    public let libraryPath: String

    // Immutable after init; ONNX Runtime allows concurrent use of one environment.
    let environment: OpaquePointer
    let cpuMemoryInfo: OpaquePointer

    private static let shared = Mutex<OnnxRuntime?>(nil)

    private init(libraryPath: String) throws(BackendError) {
        var error = [CChar](repeating: 0, count: 1024)
        let status = libraryPath.withCString { dns_ort_load($0, &error, error.count) }
        guard status == 0 else {
            throw .libraryUnusable(
                String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        self.libraryPath = String(cString: dns_ort_loaded_path())
        self.version = String(cString: dns_ort_version_string())
        var environment: OpaquePointer?
        try Self.check(
            dns_ort_create_env(
                4 /* ORT_LOGGING_LEVEL_FATAL: errors come back as Swift errors */, "dnnscaler", &environment))
        var memoryInfo: OpaquePointer?
        try Self.check(dns_ort_create_cpu_memory_info(&memoryInfo))
        guard let environment, let memoryInfo else {
            throw .libraryUnusable("ONNX Runtime returned no environment")
        }
        self.environment = environment
        self.cpuMemoryInfo = memoryInfo
    }

    /// Loads the library (once per process; later calls return the same runtime).
    ///
    /// - Parameter libraryPath: an explicit path (e.g. from `--ort-library`). When `nil`, the
    ///   `DNNSCALER_ORT_LIBRARY` environment variable, then the project's `.venv` (found from the
    ///   working directory and the executable upwards), then the system's library search path.
    public static func load(libraryPath: String? = nil) throws(BackendError) -> OnnxRuntime {
        try shared.withLock { (current: inout OnnxRuntime?) throws(BackendError) -> OnnxRuntime in
            if let current { return current }
            let path = try OnnxRuntimeLibraryLocator.locate(explicitPath: libraryPath)
            let runtime = try OnnxRuntime(libraryPath: path)
            current = runtime
            return runtime
        }
    }

    /// Turns an ONNX Runtime status into a thrown ``BackendError/runtimeFailed(message:)``.
    static func check(_ status: OpaquePointer?) throws(BackendError) {
        guard let status else { return }
        let message = String(cString: dns_ort_error_message(status))
        dns_ort_release_status(status)
        throw .runtimeFailed(message: message)
    }
}

/// Finds the ONNX Runtime shared library.
public enum OnnxRuntimeLibraryLocator {
    /// Where the library is looked for, in order, and the path to use.
    public static func locate(
        explicitPath: String?,
        environment: [String: String] = ProcessInfo.processInfo.environment,
        workingDirectory: String = FileManager.default.currentDirectoryPath,
        executablePath: String? = Bundle.main.executablePath
    ) throws(BackendError) -> String {
        let fileManager = FileManager.default
        if let explicitPath {
            guard fileManager.fileExists(atPath: explicitPath) else {
                throw .libraryNotFound(searched: ["\(explicitPath) (given explicitly)"])
            }
            return explicitPath
        }
        if let fromEnvironment = environment[OnnxRuntime.libraryEnvironmentVariable], !fromEnvironment.isEmpty {
            guard fileManager.fileExists(atPath: fromEnvironment) else {
                throw .libraryNotFound(searched: ["\(fromEnvironment) (from \(OnnxRuntime.libraryEnvironmentVariable))"]
                )
            }
            return fromEnvironment
        }
        var searched: [String] = []
        var roots = ancestors(of: workingDirectory)
        if let executablePath {
            roots += ancestors(of: (executablePath as NSString).deletingLastPathComponent)
        }
        var seen = Set<String>()
        for root in roots where seen.insert(root).inserted {
            let venvLib = (root as NSString).appendingPathComponent(".venv/lib")
            guard fileManager.fileExists(atPath: venvLib) else { continue }
            searched.append(venvLib)
            if let found = libraryInVenv(lib: venvLib) { return found }
        }
        for systemPath in ["/usr/local/lib/libonnxruntime.so", "/usr/lib/libonnxruntime.so"] {
            searched.append(systemPath)
            if fileManager.fileExists(atPath: systemPath) { return systemPath }
        }
        throw .libraryNotFound(searched: searched.isEmpty ? ["no .venv above \(workingDirectory)"] : searched)
    }

    private static func ancestors(of directory: String) -> [String] {
        var result: [String] = []
        var current = URL(fileURLWithPath: directory).standardizedFileURL
        while true {
            result.append(current.path)
            let parent = current.deletingLastPathComponent()
            if parent.path == current.path { break }
            current = parent
        }
        return result
    }

    private static func libraryInVenv(lib: String) -> String? {
        let fileManager = FileManager.default
        let pythons = ((try? fileManager.contentsOfDirectory(atPath: lib)) ?? []).filter { $0.hasPrefix("python") }
        for python in pythons.sorted().reversed() {
            let capi = "\(lib)/\(python)/site-packages/onnxruntime/capi"
            let candidates = ((try? fileManager.contentsOfDirectory(atPath: capi)) ?? [])
                .filter { $0.hasPrefix("libonnxruntime.so") }
                .sorted()
            if let best = candidates.last { return "\(capi)/\(best)" }
        }
        return nil
    }
}
