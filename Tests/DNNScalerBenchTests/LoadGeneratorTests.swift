import DNNScalerBench
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Synchronization
import Testing

/// A local KServe-shaped endpoint that counts what it receives and can stall or refuse on demand.
final class CountingEndpoint: Sendable {
    struct State {
        var count = 0
        var bodyBytes = 0
        var inFlight = 0
        var maxInFlight = 0
        var firstArrival: ContinuousClock.Instant?
        var busyUntil: ContinuousClock.Instant?
    }
    let state = Mutex(State())
    /// Seconds after the first request during which every request waits until the window's end.
    let stall: ClosedRange<Double>?
    /// Every n-th request answers 503.
    let refuseEvery: Int?
    /// Work per request.
    let serviceTime: Duration
    /// Requests are served one at a time (a single-server FIFO queue) when set.
    let serial: Bool

    init(
        stall: ClosedRange<Double>? = nil, refuseEvery: Int? = nil, serviceTime: Duration = .zero,
        serial: Bool = false
    ) {
        self.stall = stall
        self.refuseEvery = refuseEvery
        self.serviceTime = serviceTime
        self.serial = serial
    }

    var count: Int { state.withLock { $0.count } }

    func application() -> some ApplicationProtocol {
        let router = Router()
        router.get("/v2/models/echo") { _, _ -> Response in
            let metadata =
                #"{"name":"echo","inputs":[{"name":"x","datatype":"FP32","shape":[-1,4]}],"#
                + #""outputs":[{"name":"y","datatype":"FP32","shape":[-1,4]}]}"#
            return Response(
                status: .ok, headers: [.contentType: "application/json"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: metadata)))
        }
        router.post("/v2/models/echo/infer") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let (index, arrivedAt) = self.state.withLock { state -> (Int, Double) in
                let now = ContinuousClock.now
                if state.firstArrival == nil { state.firstArrival = now }
                state.count += 1
                state.bodyBytes += body.readableBytes
                state.inFlight += 1
                state.maxInFlight = max(state.maxInFlight, state.inFlight)
                let since = (state.firstArrival ?? now).duration(to: now)
                return (state.count, Double(since.components.seconds) + Double(since.components.attoseconds) * 1e-18)
            }
            defer { self.state.withLock { $0.inFlight -= 1 } }
            if let stall = self.stall, stall.contains(arrivedAt) {
                try await Task.sleep(for: .milliseconds(Int((stall.upperBound - arrivedAt) * 1000)))
            }
            if self.serial {
                let done = self.state.withLock { state in
                    let begin = max(ContinuousClock.now, state.busyUntil ?? .now)
                    state.busyUntil = begin.advanced(by: self.serviceTime)
                    return begin.advanced(by: self.serviceTime)
                }
                try await Task.sleep(until: done, clock: .continuous)
            } else if self.serviceTime > .zero {
                try await Task.sleep(for: self.serviceTime)
            }
            if let refuseEvery = self.refuseEvery, index % refuseEvery == 0 {
                return Response(status: .serviceUnavailable)
            }
            return Response(status: .ok, body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"outputs":[]}"#)))
        }
        return Application(router: router)
    }

    /// Runs `body` with the endpoint's base URL.
    func withURL(_ body: @Sendable @escaping (String) async throws -> Void) async throws {
        try await application().test(.live) { client in
            let port = try #require(client.port)
            try await body("http://127.0.0.1:\(port)")
        }
    }
}

@Suite(.serialized) struct LoadGeneratorTests {
    func run(_ settings: BenchSettings) async throws -> BenchResult {
        let client = LoadGenerator.makeClient(for: settings)
        do {
            let result = try await LoadGenerator(settings: settings, client: client).run()
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    @Test func constantRateIsKeptWithinTwoPercent() async throws {
        let endpoint = CountingEndpoint()
        try await endpoint.withURL { url in
            let settings = BenchSettings(
                url: url, model: "echo", shape: .openLoop(rate: 200, distribution: .constant), durationSeconds: 2,
                pollServerStatus: false)
            let result = try await run(settings)
            #expect(abs(Double(endpoint.count) - 400) <= 8, "the server counted \(endpoint.count), not 400 +- 2%")
            #expect(result.summary.requests == endpoint.count)
            #expect(result.summary.succeeded == endpoint.count)
            #expect(abs(result.summary.throughput - 200) <= 4)
            // binary tensors: a [1, 4] FP32 input is 16 bytes after the JSON header
            let perRequest = endpoint.state.withLock { $0.bodyBytes } / max(endpoint.count, 1)
            #expect(perRequest > 16)
        }
    }

    @Test func poissonRateOverAWindowIsWithinNoise() async throws {
        let endpoint = CountingEndpoint()
        try await endpoint.withURL { url in
            let settings = BenchSettings(
                url: url, model: "echo", shape: .openLoop(rate: 300, distribution: .poisson), durationSeconds: 2,
                seed: 7, pollServerStatus: false)
            let result = try await run(settings)
            // 600 expected; a Poisson count has a standard deviation of about 24
            #expect(abs(Double(endpoint.count) - 600) < 100)
            #expect(result.summary.requests == endpoint.count)
        }
    }

    @Test func aStalledServerShowsUpInTheLatencies() async throws {
        // Every request arriving between 0.5 s and 1.0 s after the first waits until 1.0 s: an open-loop
        // generator keeps sending, so ~50 of the 200 requests see up to 500 ms.
        let endpoint = CountingEndpoint(stall: 0.5...1.0)
        try await endpoint.withURL { url in
            let settings = BenchSettings(
                url: url, model: "echo", shape: .openLoop(rate: 100, distribution: .constant), durationSeconds: 2,
                sloMs: 100, maxConnections: 128, pollServerStatus: false)
            let result = try await run(settings)
            #expect(result.summary.succeeded == 200)
            // The requests sent from 0.5 s to about 0.9 s wait past the 100 ms SLO; all answer at 1.0 s.
            let late = result.series.map(\.overSlo)
            #expect(late.reduce(0, +) >= 30 && late.reduce(0, +) <= 55, "over the SLO per second: \(late)")
            #expect(late.first == 0, "nothing is late before the stall: \(late)")
            #expect((result.summary.p99Ms ?? 0) > 300, "p99 \(result.summary.p99Ms ?? 0) ms hides the stall")
            #expect((result.summary.p90Ms ?? 0) > 50, "p90 \(result.summary.p90Ms ?? 0) ms hides the stall")
            #expect((result.summary.maxMs ?? 0) > 400)
            #expect((result.summary.p50Ms ?? 1000) < 100)
        }
    }

    @Test func closedLoopKeepsTheConcurrencyAndCountsRefusals() async throws {
        let endpoint = CountingEndpoint(refuseEvery: 4, serviceTime: .milliseconds(5))
        try await endpoint.withURL { url in
            let settings = BenchSettings(
                url: url, model: "echo", shape: .closedLoop(concurrency: 3), durationSeconds: 1,
                pollServerStatus: false)
            let result = try await run(settings)
            let maxInFlight = endpoint.state.withLock { $0.maxInFlight }
            #expect(maxInFlight <= 3 && maxInFlight >= 2)
            #expect(result.summary.requests == endpoint.count)
            let shed = result.summary.errors["shed"] ?? 0
            #expect(abs(shed - endpoint.count / 4) <= 1)
            #expect(result.summary.succeeded + shed == result.summary.requests)
            #expect(result.summary.throughput > 50)
        }
    }

    @Test func sweepFindsTheRateASingleServerQueueSustains() async throws {
        // One request at a time, 20 ms each: capacity 50/s; above it the queue grows without bound, so a
        // p99 of 200 ms cannot hold at 75/s (the queue grows by 25 requests = 0.5 s a second).
        let endpoint = CountingEndpoint(serviceTime: .milliseconds(20), serial: true)
        try await endpoint.withURL { url in
            let settings = BenchSettings(
                url: url, model: "echo", shape: .openLoop(rate: 1, distribution: .poisson), durationSeconds: 2,
                sloMs: 200, pollServerStatus: false)
            let client = LoadGenerator.makeClient(for: settings)
            let result = try await RateSweep(settings: settings, startRate: 12, refineSteps: 3).run(client: client)
            try await client.shutdown()
            #expect(result.sustainedRate >= 20 && result.sustainedRate < 75, "sustained \(result.sustainedRate)/s")
            #expect(result.trials.filter { $0.rate >= 75 }.allSatisfy { !$0.sustained })
            #expect(result.trials.contains { $0.rate >= 75 })
            #expect(result.best?.rate == result.sustainedRate)
        }
    }

    @Test func scheduleIsDeterministicAndHasTheRate() {
        var first = ArrivalSchedule(rate: 50, distribution: .poisson, seed: 3)
        var second = ArrivalSchedule(rate: 50, distribution: .poisson, seed: 3)
        var other = ArrivalSchedule(rate: 50, distribution: .poisson, seed: 4)
        let a = (0..<1000).map { _ in first.nextTime() }
        let b = (0..<1000).map { _ in second.nextTime() }
        let c = (0..<1000).map { _ in other.nextTime() }
        #expect(a == b)
        #expect(a != c)
        var long = ArrivalSchedule(rate: 50, distribution: .poisson, seed: 9)
        var last = 0.0
        for _ in 0..<100_000 { last = long.nextTime() }
        #expect(abs(100_000 / last - 50) / 50 < 0.02)
        var constant = ArrivalSchedule(rate: 4, distribution: .constant, seed: 1)
        #expect([constant.nextTime(), constant.nextTime(), constant.nextTime()] == [0, 0.25, 0.5])
    }

    @Test func unreachableServerIsAClearError() async throws {
        let settings = BenchSettings(
            url: "http://127.0.0.1:1", model: "echo", shape: .closedLoop(concurrency: 1), durationSeconds: 1,
            pollServerStatus: false)
        await #expect(throws: BenchError.self) { _ = try await run(settings) }
    }

    @Test func binaryAndJSONBodies() throws {
        let inputs = [(name: "x", datatype: "FP32", shape: [2, 3]), (name: "n", datatype: "INT64", shape: [2, 1])]
        let binary = try RequestTemplate(
            inputs: inputs, outputs: ["y"], format: .binary, batchSize: 2, seed: 1)
        let headerLength = try #require(Int(binary.headers["Inference-Header-Content-Length"].first ?? ""))
        #expect(binary.body.readableBytes == headerLength + 6 * 4 + 2 * 8)
        let header = try #require(
            try JSONSerialization.jsonObject(with: Data(binary.body.getBytes(at: 0, length: headerLength) ?? []))
                as? [String: Any])
        let described = try #require(header["inputs"] as? [[String: Any]])
        #expect(described.map { ($0["parameters"] as? [String: Any])?["binary_data_size"] as? Int } == [24, 16])
        let json = try RequestTemplate(inputs: inputs, outputs: ["y"], format: .json, batchSize: 2, seed: 1)
        #expect(json.headers["Inference-Header-Content-Length"].isEmpty)
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(json.body.readableBytesView)) as? [String: Any])
        let data = (object["inputs"] as? [[String: Any]])?.map { ($0["data"] as? [Any])?.count }
        #expect(data == [6, 2])
        #expect(throws: BenchError.self) {
            _ = try RequestTemplate(
                inputs: [(name: "s", datatype: "STRING", shape: [1])], outputs: [], format: .binary, batchSize: 1,
                seed: 1)
        }
        // BYTES: one-digit strings, as JSON strings or in KServe's binary layout (4 + 1 bytes each).
        let strings = try RequestTemplate(
            inputs: [(name: "s", datatype: "BYTES", shape: [1, 3])], outputs: [], format: .json, batchSize: 1, seed: 1)
        let stringObject = try #require(
            try JSONSerialization.jsonObject(with: Data(strings.body.readableBytesView)) as? [String: Any])
        let values = (stringObject["inputs"] as? [[String: Any]])?.first?["data"] as? [String]
        #expect(values?.count == 3)
        #expect(values?.allSatisfy { $0.count == 1 && $0.allSatisfy(\.isNumber) } == true)
        let binaryStrings = try RequestTemplate(
            inputs: [(name: "s", datatype: "BYTES", shape: [1, 3])], outputs: [], format: .binary, batchSize: 1,
            seed: 1)
        let stringsHeaderLength = try #require(
            Int(binaryStrings.headers["Inference-Header-Content-Length"].first ?? ""))
        #expect(binaryStrings.body.readableBytes == stringsHeaderLength + 15)
    }
}
