import ArgumentParser
import DNNScaler

struct ProfileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "profile", abstract: "Profile a model.")
    @Argument var model: String
    func run() async throws {
        let runtime = try OnnxRuntime.load()
        let loaded = try OnnxRuntimeModel(path: model, runtime: runtime)
        print(runtime.version, loaded.metadata)
        let instance = try loaded.makeInstance(threads: 2)
        var inputs: [String: Tensor] = [:]
        for spec in loaded.metadata.inputs {
            inputs[spec.name] = try Tensor.zeros(dataType: spec.dataType, shape: spec.shape.map { $0 < 0 ? 2 : $0 })
        }
        let out = try instance.run(inputs, outputNames: nil)
        print(out)
    }
}
