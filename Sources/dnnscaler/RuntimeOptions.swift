import ArgumentParser
import DNNScaler

/// Options shared by every command that runs models.
struct RuntimeOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Path to libonnxruntime.so (default: $DNNSCALER_ORT_LIBRARY, then the project's .venv).",
            valueName: "path"))
    var ortLibrary: String?

    func loadRuntime() throws -> OnnxRuntime {
        try OnnxRuntime.load(libraryPath: ortLibrary)
    }
}
