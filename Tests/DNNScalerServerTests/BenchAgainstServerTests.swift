import DNNScaler
import DNNScalerBench
import DNNScalerServer
import Foundation
import Testing

/// `dnnscaler bench`'s load generator against the real server and the real ONNX Runtime.
@Suite(.serialized) struct BenchAgainstServerTests {
    @Test func openLoopAgainstTheServerRecordsItsConfiguration() async throws {
        let server = try await ServerTestSupport.server(
            models: ["simple"],
            defaults: ModelServingOptions(sloMs: 5000, policy: .static, staticBatchSize: 2, staticInstances: 1))
        try await ServerTestSupport.withLiveServer(server) { client in
            let port = try #require(client.port)
            let settings = BenchSettings(
                url: "http://127.0.0.1:\(port)", model: "simple",
                shape: .openLoop(rate: 60, distribution: .constant), durationSeconds: 2.2, sloMs: 1000)
            let http = LoadGenerator.makeClient(for: settings)
            let result = try await LoadGenerator(settings: settings, client: http).run()
            try await http.shutdown()
            #expect(result.summary.requests == 132)
            #expect(result.summary.succeeded == 132)
            #expect(result.summary.sloAttainment == 1)
            #expect(result.summary.sloMet == true)
            let reported = result.series.compactMap { point in point.batchLimit.map { ($0, point.instances ?? 0) } }
            #expect(!reported.isEmpty)
            #expect(reported.allSatisfy { $0 == (2, 1) })
            #expect(result.series.reduce(0) { $0 + $1.succeeded } == 132)
        }
    }
}
