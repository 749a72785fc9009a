/// What the authenticated probes of one path measured, one bucket per second of the monotonic
/// clock over the last `capacity` seconds (an hour by default): probes sent in that second, how many
/// of those were answered, and their RTTs. The timeline draws RTT and loss from it.
///
/// Bounded and cheap: a ring of `capacity` 24-byte buckets allocated at the first probe, written
/// once per probe sent and once per reply (the control plane's pace, never per data packet). A
/// reply counts in the bucket its probe was sent in, so a bucket's loss is exact once its replies
/// are due. Pure: the caller passes the times.
public struct ProbeHistory: Sendable {
    public struct Bucket: Equatable, Sendable {
        /// Monotonic second (`ms / 1000`) the bucket covers.
        public var second: UInt64
        public var sent: UInt16
        public var answered: UInt16
        public var rttSumMs: Float
        public var rttMaxMs: Float

        public init(second: UInt64, sent: UInt16 = 0, answered: UInt16 = 0, rttSumMs: Float = 0, rttMaxMs: Float = 0) {
            self.second = second
            self.sent = sent
            self.answered = answered
            self.rttSumMs = rttSumMs
            self.rttMaxMs = rttMaxMs
        }

        /// Mean RTT of the answered probes; nil when none was answered.
        public var rttMeanMs: Double? { answered == 0 ? nil : Double(rttSumMs) / Double(answered) }
    }

    public static let defaultCapacity = 3600

    public let capacity: Int
    private var ring: [Bucket] = []
    /// Newest second written; buckets older than `capacity` seconds before it are stale.
    private var newestSecond: UInt64 = 0

    public init(capacity: Int = ProbeHistory.defaultCapacity) {
        self.capacity = max(1, capacity)
    }

    /// A probe went out at `sentMs` (monotonic milliseconds).
    public mutating func probeSent(atMs sentMs: UInt64) {
        let second = sentMs / 1000
        if ring.isEmpty { ring = [Bucket](repeating: Bucket(second: .max), count: capacity) }
        guard second + UInt64(capacity) > newestSecond else { return }
        let i = slot(second)
        if ring[i].second != second { ring[i] = Bucket(second: second) }
        if ring[i].sent < .max { ring[i].sent += 1 }
        newestSecond = max(newestSecond, second)
    }

    /// The probe sent at `sentMs` was answered after `rttMs`. Ignored when its second has left the
    /// ring or holds no unanswered probe (so `answered <= sent` always).
    public mutating func probeAnswered(sentAtMs sentMs: UInt64, rttMs: Double) {
        let second = sentMs / 1000
        guard !ring.isEmpty, second + UInt64(capacity) > newestSecond else { return }
        let i = slot(second)
        guard ring[i].second == second, ring[i].answered < ring[i].sent else { return }
        let rtt = Float(max(0, rttMs))
        ring[i].answered += 1
        ring[i].rttSumMs += rtt
        ring[i].rttMaxMs = max(ring[i].rttMaxMs, rtt)
    }

    /// The buckets of the last `capacity` seconds that saw a probe, oldest first.
    public var buckets: [Bucket] {
        guard !ring.isEmpty else { return [] }
        let oldest = newestSecond >= UInt64(capacity) ? newestSecond - UInt64(capacity) + 1 : 0
        var out: [Bucket] = []
        var s = oldest
        while s <= newestSecond {
            let b = ring[slot(s)]
            if b.second == s { out.append(b) }
            s += 1
        }
        return out
    }

    private func slot(_ second: UInt64) -> Int { Int(second % UInt64(capacity)) }
}
