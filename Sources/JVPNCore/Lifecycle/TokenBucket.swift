/// A token bucket for rate limits (control messages per session and globally). Pure: time comes in.
public struct TokenBucket: Equatable, Sendable {
    public let capacity: Double
    public let refillPerSecond: Double
    private var tokens: Double
    private var lastMs: UInt64

    public init(capacity: UInt64, refillPerSecond: Double, nowMs: UInt64) {
        self.capacity = Double(capacity)
        self.refillPerSecond = refillPerSecond
        tokens = Double(capacity)
        lastMs = nowMs
    }

    /// Takes one token if there is one.
    public mutating func take(nowMs: UInt64) -> Bool {
        take(count: 1, nowMs: nowMs)
    }

    /// Takes `count` tokens if there are that many, else none.
    public mutating func take(count: UInt64, nowMs: UInt64) -> Bool {
        if nowMs > lastMs {
            tokens = min(capacity, tokens + Double(nowMs - lastMs) / 1000 * refillPerSecond)
            lastMs = nowMs
        }
        guard tokens >= Double(count) else { return false }
        tokens -= Double(count)
        return true
    }
}
