/// Serves one fixed configuration (for comparison, and for users who know what they want).
public struct StaticPolicy: ScalingPolicy {
    /// `static`.
    public let name = PolicyKind.static.rawValue
    /// Decisions change nothing; one a second keeps the status fresh.
    public let period = 1.0
    /// No lever is tuned.
    public let mode: ScalingMode? = nil
    /// The fixed configuration.
    public let initialConfiguration: ServingConfiguration

    /// Creates the policy.
    public init(configuration: ServingConfiguration) {
        initialConfiguration = configuration
    }

    /// Always the fixed configuration.
    public mutating func decide(_ observation: Observation) -> Decision {
        Decision(configuration: initialConfiguration, reason: "static configuration")
    }
}
