/// The `[Policy]` section with the contract's defaults. Times in milliseconds.
public struct PolicyConfig: Sendable, Equatable {
    public var probeIntervalMs: UInt64 = 200
    public var standbyProbeIntervalMs: UInt64 = 1000
    public var deadAfterMs: UInt64 = 1000
    public var lossVolatilePct: Double = 5
    public var rttVolatileMs: Double = 500
    public var jitterVolatileMs: Double = 100
    public var stableWindowMs: UInt64 = 3000
    public var maxRecoveryWindowMs: UInt64 = 5000
    public var transportLossTtlMs: UInt64 = 30000
    public var sessionTtlMs: UInt64 = 86_400_000
    public var maxSwitchesPerMinute: Int = 10
    public var switchCooldownMs: UInt64 = 1000
    public var preemptToPreferred: Bool = true
    public var restartOnTerminate: Bool = true

    public init() {}
}
