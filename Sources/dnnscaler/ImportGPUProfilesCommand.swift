import ArgumentParser
import DNNScaler
import Foundation

struct ImportGPUProfilesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import-gpu-profiles",
        abstract: "Turn the recovered DNNScaler/BatchDVFS GPU latency tables into profiles the simulator reads.",
        discussion: """
            Reads batch_latency.csv, mt_latency.csv and slo.csv from --source and writes one profile per
            (model, dataset) as JSON (Model_Dataset.json) into --output. Each profile records its source files,
            the citation of every point, the jobs (SLO, assigned mode) and what the import decided; see
            profiles/gpu/README.md.
            """
    )

    @Option(help: "The folder holding batch_latency.csv, mt_latency.csv and slo.csv.")
    var source = "../shared/data/gpu-profiles"

    @Option(help: "The folder to write the profiles into (created if missing).")
    var output = "profiles/gpu"

    func run() throws {
        let imported = try GPUProfileImporter(directory: source).profiles()
        try FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
        for entry in imported {
            let path = (output as NSString).appendingPathComponent(entry.fileStem + ".json")
            try entry.profile.jsonData().write(to: URL(fileURLWithPath: path))
            let instances = Set(entry.profile.points.map(\.instances)).count
            let batches = Set(entry.profile.points.filter { $0.instances == 1 }.map(\.batchSize)).count
            let jobs = entry.profile.source?.jobs.map { "\(Int($0.sloMs)) ms" }.joined(separator: ", ") ?? ""
            print(
                "\(entry.fileStem): \(entry.profile.points.count) points (\(batches) batch sizes, \(instances) instance counts), "
                    + "mode \(entry.profile.decision.mode.rawValue)\(jobs.isEmpty ? "" : ", SLO \(jobs)")")
        }
        printError("wrote \(imported.count) profiles to \(output)")
    }
}
