import Foundation
import Testing

@testable import DNNScaler

@Suite struct GPUProfileImporterTests {
    static let batchHeader =
        "model,dataset,batch_size,latency_ms,throughput_ips,gpu_clock_mhz,source_file,clock_control,n_batches,"
        + "latency_ms_median,latency_ms_p10,latency_ms_p90,experiment"
    static let batchRows = [
        "NetA,Set1,1,50,20,1531,repo@abc:a.zip!a1.csv,default_governor,12,48,40,60,Clipper-powercap",
        "NetA,Set1,5,100,50,1531,repo@abc:a.zip!a1.csv,default_governor,30,95,80,120,Clipper-powercap",
        // A set application clock: another controller's run, left out.
        "NetA,Set1,9,400,22.5,1063,repo@abc:b.zip!b.csv,app_clock,7,390,380,420,BatchDVFS",
        "NetB,Set1,5,80,62.5,1531,\"repo@abc:c.zip!c,1.csv\",default_governor,3,79,70,90,Clipper-powercap",
    ]
    static let mtHeader = "model,dataset,instances,latency_ms,source_file,aggregate_throughput_ips"
    static let mtRows = [
        "NetA,Set1,1,10,repo@def:DNNs_Latency_Instance.xlsx#Sheet1!C2,100",
        "NetA,Set1,2,12,repo@def:DNNs_Latency_Instance.xlsx#Sheet1!D2,166.7",
        "NetC,Set2,1,20,repo@def:DNNs_Latency_Instance.xlsx#Sheet1!C3,50",
    ]
    static let sloHeader = "model,dataset,mode_assigned,slo_ms,source_file,job_label,slo_statistic"
    static let sloRows = [
        "NetA,Set1,multitenancy,40,repo@def:cmd.sh#L1,Job 1,mean",
        "NetB,Set1,batching,200,repo@def:b.sh#L3,02_NetB,mean",
        "NetB,Set1,batching,150,repo@def:b.sh#L5,03_NetB,mean",
    ]

    static func importer(
        batch: [String] = batchRows, mt: [String] = mtRows, slo: [String] = sloRows, batchHeader: String = batchHeader
    ) -> GPUProfileImporter {
        GPUProfileImporter(
            batchLatencyCSV: ([batchHeader] + batch).joined(separator: "\n"),
            multiTenancyCSV: ([mtHeader] + mt).joined(separator: "\n") + "\n",
            sloCSV: ([sloHeader] + slo).joined(separator: "\r\n"))
    }

    @Test func oneProfilePerPairWithPointsWhereTheyBelong() throws {
        let imported = try Self.importer().profiles()
        #expect(imported.map(\.fileStem) == ["NetA_Set1", "NetB_Set1", "NetC_Set2"])
        let netA = imported[0].profile
        // Batch 5 from the batching table (1 instance); the app-clock row is left out; batch 1 at
        // 1 instance comes from the multi-tenancy table, which wins where both measure it.
        #expect(netA.points.map { [$0.instances, $0.batchSize] } == [[1, 1], [1, 5], [2, 1]])
        let batchOne = try #require(netA.point(instances: 1, batchSize: 1))
        #expect(batchOne.latencyMs.mean == 10)
        #expect(GPUProfileImporter.isMultiTenancyPathPoint(batchOne))
        #expect(netA.source?.notes.contains { $0.contains("50.0 ms") && $0.contains("10.0 ms") } == true)
        let five = try #require(netA.point(instances: 1, batchSize: 5))
        #expect(five.latencyMs.mean == 100)
        #expect(five.latencyMs.p50 == 95)
        #expect(five.latencyMs.p99 == 120)  // p90 stands in for the unpublished p99
        #expect(five.throughput == 50)
        #expect(five.batches == 30)
        #expect(five.source == "repo@abc:a.zip!a1.csv")
        #expect(!GPUProfileImporter.isMultiTenancyPathPoint(five))
        let two = try #require(netA.point(instances: 2, batchSize: 1))
        #expect(abs(two.throughput - 2000.0 / 12) < 1e-9)
        #expect(two.latencyMs.p99 == 12)
        // A quoted field keeps its comma.
        #expect(imported[1].profile.points.first?.source == "repo@abc:c.zip!c,1.csv")
        // Multi-tenancy data only: batch 1 only.
        #expect(imported[2].profile.points.map(\.batchSize) == [1])
    }

    @Test func jobsJoinTheirProfileAndTheDecisionUsesTheTightestSLO() throws {
        let imported = try Self.importer().profiles()
        let netA = imported[0].profile
        #expect(netA.source?.jobs.map(\.sloMs) == [40])
        #expect(netA.source?.jobs.first?.modeAssigned == .multiTenancy)
        #expect(netA.decision.sloMs == 40)
        #expect(netA.decision.mode == .multiTenancy)  // 166.7/s at 2 instances vs 50/s batching, baseline 100/s
        let netB = imported[1].profile
        #expect(netB.source?.jobs.map(\.label) == ["02_NetB", "03_NetB"])
        #expect(netB.source?.jobs.allSatisfy { $0.modeAssigned == .batching } == true)
        #expect(netB.decision.sloMs == 150)
        #expect(imported[2].profile.source?.jobs.isEmpty == true)
        #expect(imported[2].profile.decision.sloMs == nil)
    }

    @Test func importedProfilesRoundTripThroughJSONAndOldJSONStillReads() throws {
        let profile = try Self.importer().profiles()[0].profile
        let decoded = try Profile(jsonData: try profile.jsonData())
        #expect(decoded == profile)
        // A profile written before `source` existed has neither field: it still reads.
        let plain = Profile(
            model: profile.model, backend: profile.backend, device: profile.device, createdAt: "", percentile: 99,
            durationSeconds: 0,
            points: profile.points.map {
                var point = $0
                point.source = nil
                return point
            }, sloMs: 40)
        let text = String(decoding: try plain.jsonData(), as: UTF8.self)
        #expect(!text.contains("\"source\""))
        #expect(try Profile(jsonData: Data(text.utf8)) == plain)
    }

    @Test func batchingPathOnlyDropsTheMultiTenancyRows() throws {
        let profile = try Self.importer().profiles()[0].profile
        let batching = try #require(GPUProfileImporter.batchingPathOnly(profile))
        #expect(batching.points.map(\.batchSize) == [5])
        #expect(GPUProfileImporter.batchingPathOnly(try Self.importer().profiles()[2].profile) == nil)
    }

    @Test func badInputIsReportedWithFileAndLine() {
        #expect(throws: GPUProfileImportError.missingColumn(file: "batch_latency.csv", column: "latency_ms_p90")) {
            try Self.importer(batchHeader: Self.batchHeader.replacingOccurrences(of: "latency_ms_p90", with: "p90"))
                .profiles()
        }
        #expect(
            throws: GPUProfileImportError.badRow(
                file: "mt_latency.csv", line: 3, reason: "'x' in latency_ms is not a positive number")
        ) {
            try Self.importer(mt: ["NetA,Set1,1,10,s,1", "NetA,Set1,2,x,s,1"]).profiles()
        }
        #expect(
            throws: GPUProfileImportError.badRow(
                file: "batch_latency.csv", line: 2, reason: "'0' in batch_size is not an integer >= 1")
        ) {
            try Self.importer(batch: ["NetA,Set1,0,50,20,1531,s,default_governor,1,1,1,1,e"]).profiles()
        }
        #expect(
            throws: GPUProfileImportError.badRow(file: "batch_latency.csv", line: 2, reason: "12 fields, expected 13")
        ) {
            try Self.importer(batch: ["NetA,Set1,1,50,20,1531,s,default_governor,1,1,1,1"]).profiles()
        }
        #expect(
            throws: GPUProfileImportError.duplicatePoint(file: "mt_latency.csv", line: 3, key: "NetA Set1 1 instances")
        ) {
            try Self.importer(mt: ["NetA,Set1,1,10,s,1", "NetA,Set1,1,11,s,1"]).profiles()
        }
        #expect(throws: GPUProfileImportError.badRow(file: "slo.csv", line: 2, reason: "unknown mode_assigned 'dvfs'"))
        {
            try Self.importer(slo: ["NetA,Set1,dvfs,40,s,Job,mean"]).profiles()
        }
        #expect(throws: GPUProfileImportError.badRow(file: "mt_latency.csv", line: 2, reason: "unclosed quote")) {
            try Self.importer(mt: ["NetA,Set1,1,10,\"s,1"]).profiles()
        }
    }

    @Test func readsAFolderAndNamesTheMissingFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("gpu-import-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try ([Self.batchHeader] + Self.batchRows).joined(separator: "\n").write(
            to: folder.appendingPathComponent("batch_latency.csv"), atomically: true, encoding: .utf8)
        try ([Self.mtHeader] + Self.mtRows).joined(separator: "\n").write(
            to: folder.appendingPathComponent("mt_latency.csv"), atomically: true, encoding: .utf8)
        #expect(throws: GPUProfileImportError.unreadable(file: folder.appendingPathComponent("slo.csv").path)) {
            try GPUProfileImporter(directory: folder.path)
        }
        try ([Self.sloHeader] + Self.sloRows).joined(separator: "\n").write(
            to: folder.appendingPathComponent("slo.csv"), atomically: true, encoding: .utf8)
        let imported = try GPUProfileImporter(directory: folder.path).profiles()
        #expect(imported.count == 3)
        #expect(imported[0].profile.source?.files.first == "\(folder.lastPathComponent)/batch_latency.csv")
    }
}
