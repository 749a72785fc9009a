/// SECURITY_EVENTs are evidence for an operator, not a per-packet log: a hostile peer (or anyone who
/// knows a receiver index) must not be able to fill a disk with them. Events pass a per-session and a
/// global bucket; what does not pass is counted, and the counts are reported in status and metrics.
public struct SecurityEventLimiter: Equatable, Sendable {
    public static let perSessionBurst: UInt64 = 10
    public static let perSessionPerSecond = 1.0
    public static let globalBurst: UInt64 = 50
    public static let globalPerSecond = 10.0

    private var global: TokenBucket
    public private(set) var suppressedTotal: UInt64 = 0

    public init(nowMs: UInt64) {
        global = TokenBucket(capacity: SecurityEventLimiter.globalBurst, refillPerSecond: SecurityEventLimiter.globalPerSecond,
                             nowMs: nowMs)
    }

    public static func sessionBucket(nowMs: UInt64) -> TokenBucket {
        TokenBucket(capacity: perSessionBurst, refillPerSecond: perSessionPerSecond, nowMs: nowMs)
    }

    /// True if the event may be emitted; otherwise it is counted as suppressed (here and in `session`).
    public mutating func admit(session bucket: inout TokenBucket, suppressed: inout UInt64, nowMs: UInt64) -> Bool {
        var s = bucket
        var g = global
        if s.take(nowMs: nowMs), g.take(nowMs: nowMs) {
            bucket = s
            global = g
            return true
        }
        suppressed += 1
        suppressedTotal += 1
        return false
    }
}
