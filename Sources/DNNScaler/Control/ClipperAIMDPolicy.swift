/// Clipper-style AIMD batching on a single instance, the seed paper's baseline: every 3 s, tail
/// latency below 0.85 x SLO adds 4 to the batch limit; above the SLO multiplies it by 0.9.
public struct ClipperAIMDPolicy: ScalingPolicy {
    /// `clipper-aimd`.
    public let name = PolicyKind.clipperAIMD.rawValue
    /// 3 s, as in the paper.
    public let period = 3.0
    /// Batching only.
    public let mode: ScalingMode? = .batching
    /// Batch 1, one instance.
    public let initialConfiguration = ServingConfiguration(batchLimit: 1, instances: 1)
    /// The largest batch limit.
    public let maxBatch: Int

    /// Creates the policy.
    public init(maxBatch: Int) {
        self.maxBatch = max(1, maxBatch)
    }

    /// Additive increase below the band, multiplicative decrease above the SLO.
    public mutating func decide(_ observation: Observation) -> Decision {
        var next = observation.current
        next.instances = 1
        guard let tail = observation.steeringLatencyMs else {
            return Decision(configuration: next, reason: "no completed requests: hold")
        }
        if tail > observation.sloMs {
            next.batchLimit = max(1, Int((Double(next.batchLimit) * 0.9).rounded(.down)))
            return Decision(configuration: next, reason: "tail \(Self.ms(tail)) > SLO: batch x0.9")
        }
        if tail < observation.bandLowMs {
            next.batchLimit = min(maxBatch, next.batchLimit + 4)
            return Decision(configuration: next, reason: "tail \(Self.ms(tail)) < 0.85 SLO: batch +4")
        }
        return Decision(configuration: next, reason: "tail \(Self.ms(tail)) in band: hold")
    }

    static func ms(_ value: Double) -> String { "\((value * 10).rounded() / 10) ms" }
}
