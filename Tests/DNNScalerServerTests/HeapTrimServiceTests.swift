import Logging
import ServiceLifecycle
import Testing

@testable import DNNScalerServer

/// The periodic heap trim, as a service of the server's service group.
@Suite struct HeapTrimServiceTests {
    /// `serve --heap-trim-interval 0` turns the trim off; the service must then wait for shutdown,
    /// because a service group stops the whole server when one of its services returns.
    @Test func theTrimTurnedOffKeepsTheGroupRunningUntilShutdown() async throws {
        let group = ServiceGroup(services: [HeapTrimService(intervalSeconds: 0)], logger: Logger(label: "test"))
        let started = ContinuousClock.now
        async let running: Void = group.run()
        try await Task.sleep(for: .milliseconds(300))
        await group.triggerGracefulShutdown()
        try await running
        #expect(started.duration(to: .now) >= .milliseconds(300))
    }

    @Test func theTrimTurnedOnStopsAtShutdown() async throws {
        let group = ServiceGroup(services: [HeapTrimService(intervalSeconds: 0.05)], logger: Logger(label: "test"))
        async let running: Void = group.run()
        try await Task.sleep(for: .milliseconds(200))
        await group.triggerGracefulShutdown()
        try await running
    }
}
