/// Token buckets per source address in a fixed table, so a flood from many addresses costs memory
/// once, at startup. IPv4 sources count by address, IPv6 by /64 (one customer's prefix). The table
/// has `capacity` slots; a source is looked for in a window of `probeWindow` slots after its hash
/// (SipHash with the process's random seed, so a sender cannot aim at one window), and a new source
/// takes a free slot there or else the least recently seen one. An evicted source starts again with
/// a full burst: that is the price of the bound, and it is why this limiter sits behind the
/// cookie check and before a bounded queue rather than being the only defence.
public struct SourceRateLimiter: Sendable {
    struct Key: Hashable, Sendable {
        let prefix: UInt64
        let isV6: Bool

        init(_ address: IPAddress) {
            switch address {
            case .v4(let a): self.init(prefix: UInt64(a), isV6: false)
            case .v6(let hi, _): self.init(prefix: hi, isV6: true)
            }
        }

        init(prefix: UInt64, isV6: Bool) {
            self.prefix = prefix
            self.isV6 = isV6
        }
    }

    struct Entry: Sendable {
        var key: Key
        var tokens: Double
        var lastMs: UInt64
        var occupied: Bool
    }

    public static let defaultCapacity = 4096
    static let probeWindow = 8
    private var entries: ContiguousArray<Entry>
    private let mask: Int

    /// `capacity` is rounded up to a power of two.
    public init(capacity: Int = SourceRateLimiter.defaultCapacity) {
        var n = 16
        while n < capacity { n <<= 1 }
        mask = n - 1
        entries = ContiguousArray(repeating: Entry(key: Key(prefix: 0, isV6: false), tokens: 0, lastMs: 0, occupied: false),
                                  count: n)
    }

    public var capacity: Int { mask + 1 }

    /// Number of sources currently tracked (tests; O(capacity)).
    public var trackedSources: Int { entries.reduce(0) { $0 + ($1.occupied ? 1 : 0) } }

    /// Takes one token from the source's bucket (refilled at `perSecond`, holding at most `burst`).
    public mutating func allow(_ address: IPAddress, nowMs: UInt64, perSecond: Double, burst: Double) -> Bool {
        let key = Key(address)
        var hasher = Hasher()
        hasher.combine(key)
        let start = hasher.finalize() & mask
        var victim = start
        var victimMs = UInt64.max
        for i in 0..<SourceRateLimiter.probeWindow {
            let s = (start + i) & mask
            if !entries[s].occupied {
                // Slots are never emptied, so the source cannot sit beyond a free slot.
                victim = s
                break
            }
            if entries[s].key == key {
                let elapsed = nowMs > entries[s].lastMs ? Double(nowMs - entries[s].lastMs) : 0
                let tokens = min(burst, entries[s].tokens + elapsed / 1000 * perSecond)
                entries[s].lastMs = max(entries[s].lastMs, nowMs)
                guard tokens >= 1 else {
                    entries[s].tokens = tokens
                    return false
                }
                entries[s].tokens = tokens - 1
                return true
            }
            if entries[s].lastMs < victimMs {
                victim = s
                victimMs = entries[s].lastMs
            }
        }
        entries[victim] = Entry(key: key, tokens: burst - 1, lastMs: nowMs, occupied: true)
        return true
    }
}
