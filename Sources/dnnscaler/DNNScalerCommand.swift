import ArgumentParser
import DNNScaler

@main
struct DNNScalerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dnnscaler",
        abstract:
            "DNNScaler: an inference server that batches or multi-tenants each model to maximise throughput under its latency SLO.",
        subcommands: [
            ServeCommand.self, ProfileCommand.self, SimulateCommand.self, BenchCommand.self,
            ImportGPUProfilesCommand.self,
            EvaluateCommand.self,
        ]
    )
}
