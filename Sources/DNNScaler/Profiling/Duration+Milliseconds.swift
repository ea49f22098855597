extension Duration {
    /// The duration in milliseconds, with sub-millisecond precision.
    public var inMilliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
