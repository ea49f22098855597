import AsyncHTTPClient
import Foundation

/// One rate tried by a sweep.
public struct SweepTrial: Sendable, Codable, Equatable {
    /// The offered rate, requests/s.
    public var rate: Double
    /// Whether the percentile over all requests (failures counted as misses) stayed within the SLO.
    public var sustained: Bool
    /// The run's figures.
    public var summary: BenchSummary
}

/// The outcome of a sweep: every trial and the highest sustained rate.
public struct SweepResult: Sendable, Codable, Equatable {
    /// The SLO, ms.
    public var sloMs: Double
    /// The percentile.
    public var percentile: Double
    /// The trials in the order run.
    public var trials: [SweepTrial]
    /// The highest rate sustained (0 when none was).
    public var sustainedRate: Double
    /// The run at that rate (nil when none was sustained).
    public var best: BenchResult?
}

extension SweepResult {
    /// The sweep as pretty JSON (snake_case keys, as ``BenchResult/jsonData()``).
    public func jsonData() throws -> Data {
        try BenchResult.jsonEncoder().encode(self)
    }
}

/// Finds the highest open-loop rate a server sustains at an SLO: doubles (or halves) the rate from a start
/// until the verdict flips, then bisects between the last sustained and the first failed rate.
public struct RateSweep: Sendable {
    /// The base settings (shape gives the distribution; the rate is set per trial). Needs an SLO.
    public let settings: BenchSettings
    /// The first rate tried.
    public let startRate: Double
    /// Bisection steps after the bracket is found.
    public let refineSteps: Int
    /// The most doubling or halving steps.
    public let maxBracketSteps: Int
    /// Each trial lasts long enough to measure at least this many requests (a p99 over 60 requests is
    /// their maximum: one hiccup would fail the rate), up to ``maxTrialSeconds``.
    public let minRequests: Int
    /// The longest measured part of a trial, in seconds.
    public let maxTrialSeconds: Double

    /// Creates a sweep.
    public init(
        settings: BenchSettings, startRate: Double, refineSteps: Int = 4, maxBracketSteps: Int = 8,
        minRequests: Int = 0, maxTrialSeconds: Double = 120
    ) {
        self.settings = settings
        self.startRate = startRate
        self.refineSteps = refineSteps
        self.maxBracketSteps = maxBracketSteps
        self.minRequests = minRequests
        self.maxTrialSeconds = maxTrialSeconds
    }

    /// Runs the sweep; `trial` hears each finished trial.
    public func run(
        client: HTTPClient, progress: (@Sendable (BenchProgress) -> Void)? = nil,
        trial report: (@Sendable (SweepTrial) -> Void)? = nil
    ) async throws -> SweepResult {
        guard let slo = settings.sloMs else { throw BenchError("a sweep needs --slo-ms") }
        guard startRate > 0 else { throw BenchError("the sweep's start rate must be positive") }
        let distribution: ArrivalDistribution
        if case .openLoop(_, let chosen) = settings.shape { distribution = chosen } else { distribution = .poisson }
        let template = try await RequestTemplate.fetch(
            client: client, baseURL: settings.baseURL, model: settings.model, format: settings.tensorFormat,
            batchSize: settings.batchSize, seed: settings.seed)
        var trials: [SweepTrial] = []
        var best: BenchResult?
        func attempt(_ rate: Double) async throws -> Bool {
            var trialSettings = settings
            trialSettings.shape = .openLoop(rate: rate, distribution: distribution)
            trialSettings.durationSeconds = max(
                settings.durationSeconds, min(maxTrialSeconds, Double(minRequests) / rate))
            let result = try await LoadGenerator(settings: trialSettings, client: client).run(
                template: template, progress: progress)
            let sustained = result.summary.sloMet ?? false
            let trial = SweepTrial(rate: rate, sustained: sustained, summary: result.summary)
            trials.append(trial)
            report?(trial)
            if sustained, rate > (best?.rate ?? 0) { best = result }
            return sustained
        }
        var low = 0.0
        var high: Double?
        var rate = startRate
        if try await attempt(rate) {
            low = rate
            for _ in 0..<maxBracketSteps {
                rate *= 2
                if try await attempt(rate) { low = rate } else { high = rate; break }
            }
        } else {
            high = rate
            for _ in 0..<maxBracketSteps {
                rate /= 2
                if try await attempt(rate) { low = rate; break } else { high = rate }
            }
        }
        if let upper = high, low > 0 {
            var top = upper
            for _ in 0..<refineSteps {
                let middle = (low + top) / 2
                if try await attempt(middle) { low = middle } else { top = middle }
            }
        }
        return SweepResult(
            sloMs: slo, percentile: settings.percentile, trials: trials, sustainedRate: low, best: best)
    }
}
