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

extension PolicyConfig {
    /// Every key whose value differs from `old`, as `Key old -> new` (config spelling).
    public func differences(from old: PolicyConfig) -> [String] {
        func b(_ v: Bool) -> String { v ? "true" : "false" }
        func d(_ v: Double) -> String { v.rounded() == v && abs(v) < 1e15 ? String(Int64(v)) : String(v) }
        let pairs: [(String, String, String)] = [
            ("ProbeIntervalMs", "\(old.probeIntervalMs)", "\(probeIntervalMs)"),
            ("StandbyProbeIntervalMs", "\(old.standbyProbeIntervalMs)", "\(standbyProbeIntervalMs)"),
            ("DeadAfterMs", "\(old.deadAfterMs)", "\(deadAfterMs)"),
            ("LossVolatilePct", d(old.lossVolatilePct), d(lossVolatilePct)),
            ("RttVolatileMs", d(old.rttVolatileMs), d(rttVolatileMs)),
            ("JitterVolatileMs", d(old.jitterVolatileMs), d(jitterVolatileMs)),
            ("StableWindowMs", "\(old.stableWindowMs)", "\(stableWindowMs)"),
            ("MaxRecoveryWindowMs", "\(old.maxRecoveryWindowMs)", "\(maxRecoveryWindowMs)"),
            ("TransportLossTtlMs", "\(old.transportLossTtlMs)", "\(transportLossTtlMs)"),
            ("SessionTtlMs", "\(old.sessionTtlMs)", "\(sessionTtlMs)"),
            ("MaxSwitchesPerMinute", "\(old.maxSwitchesPerMinute)", "\(maxSwitchesPerMinute)"),
            ("SwitchCooldownMs", "\(old.switchCooldownMs)", "\(switchCooldownMs)"),
            ("PreemptToPreferred", b(old.preemptToPreferred), b(preemptToPreferred)),
            ("RestartOnTerminate", b(old.restartOnTerminate), b(restartOnTerminate)),
        ]
        return pairs.filter { $0.1 != $0.2 }.map { "\($0.0) \($0.1) -> \($0.2)" }
    }
}
