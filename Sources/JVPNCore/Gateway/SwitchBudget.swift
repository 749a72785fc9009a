/// `MaxSwitchesPerMinute` as an exact sliding window: at most `limit` switches in any 60 s. A token
/// bucket with burst would let more through in a minute than the policy names.
public struct SwitchBudget: Equatable, Sendable {
    public private(set) var limit: Int
    private var times: [UInt64] = []
    static let windowMs: UInt64 = 60_000

    public init(limit: Int) { self.limit = max(limit, 1) }

    /// A new `MaxSwitchesPerMinute` (config reload): the switches of the last minute still count.
    public mutating func setLimit(_ limit: Int) { self.limit = max(limit, 1) }

    private mutating func forget(_ nowMs: UInt64) {
        times.removeAll { elapsedMs(nowMs, since: $0) >= SwitchBudget.windowMs }
    }

    public mutating func allows(nowMs: UInt64) -> Bool {
        forget(nowMs)
        return times.count < limit
    }

    public mutating func record(nowMs: UInt64) {
        forget(nowMs)
        times.append(nowMs)
    }

    /// When the next switch will be allowed (now if already allowed).
    public mutating func nextAllowedMs(nowMs: UInt64) -> UInt64 {
        forget(nowMs)
        guard times.count >= limit, let oldest = times.first else { return nowMs }
        return oldest + SwitchBudget.windowMs
    }
}
