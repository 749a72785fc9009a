/// Quality of one path from its authenticated probes: loss over the last 20 probes, RTT (mean of
/// the last answered ones), jitter (mean absolute difference of consecutive RTTs, RFC 3550-like)
/// silence (no reply since a probe was sent) and the smoothed RTT the probe timeout is derived from.
/// Fixed storage; pure.
public struct PathQuality: Equatable, Sendable {
    public static let window = 20

    private var seqs = [UInt32](repeating: 0, count: PathQuality.window)
    private var sentMs = [UInt64](repeating: 0, count: PathQuality.window)
    private var rtts = [Double](repeating: -1, count: PathQuality.window) // -1 = unanswered
    private var next = 0
    private var used = 0
    public private(set) var lastSentMs: UInt64?
    public private(set) var lastReplyMs: UInt64?
    /// First probe sent after the last reply; nil when every probe so far was answered.
    public private(set) var silentSinceMs: UInt64?
    /// Send time of the newest answered probe: unanswered probes before it are lost, those after
    /// it are silence (a dead path, judged by `isSilent`, not loss).
    public private(set) var newestAnsweredSentMs: UInt64?
    public private(set) var rtt = RttEstimator()
    /// Probes before the first answer (a path still coming up: ARP, routes) are not loss.
    private var firstAnsweredSentMs: UInt64?
    /// The path came back from an outage with the answer to the probe sent then: probes sent
    /// before it do not count at all, answered or not (a fresh window, as for a path coming up).
    private var windowStartMs: UInt64?

    public init() {}

    public mutating func sent(seq: UInt32, atMs now: UInt64) {
        seqs[next] = seq
        sentMs[next] = now
        rtts[next] = -1
        next = (next + 1) % PathQuality.window
        used = min(used + 1, PathQuality.window)
        lastSentMs = now
        if silentSinceMs == nil { silentSinceMs = now }
    }

    /// Records a reply; returns when its probe was sent, or nil for an unknown or duplicate
    /// sequence number. `measuredRttMs` (from the probe's echoed send time, finer than the ms
    /// clock) wins if given.
    @discardableResult
    public mutating func replied(seq: UInt32, atMs now: UInt64, measuredRttMs: Double? = nil) -> UInt64? {
        for i in 0..<used where seqs[i] == seq && rtts[i] < 0 {
            let sample = measuredRttMs ?? Double(now >= sentMs[i] ? now - sentMs[i] : 0)
            rtts[i] = max(sample, 0.01)
            rtt.add(sampleMs: rtts[i])
            lastReplyMs = now
            silentSinceMs = nil
            newestAnsweredSentMs = max(newestAnsweredSentMs ?? 0, sentMs[i])
            firstAnsweredSentMs = min(firstAnsweredSentMs ?? .max, sentMs[i])
            return sentMs[i]
        }
        return nil
    }

    /// Forgets everything (path re-created, link came back).
    public mutating func reset() { self = PathQuality() }

    /// The path was dead (silent past DeadAfterMs, or presumed dead) and the probe sent at
    /// `sentMs` was answered: it came back. The probes it left unanswered before were an outage,
    /// not loss; like a path coming up, its loss window starts with this answer (the answers from
    /// before the outage do not dilute what it shows now).
    public mutating func cameBack(sentMs: UInt64) {
        firstAnsweredSentMs = max(firstAnsweredSentMs ?? sentMs, sentMs)
        windowStartMs = max(windowStartMs ?? sentMs, sentMs)
    }

    /// Loss in percent over the window: a probe is lost when it went unanswered (`lateAfterMs`)
    /// while a later one was answered.
    public func lossPct(nowMs: UInt64, lateAfterMs: UInt64) -> Double {
        var due = 0, lost = 0
        for i in 0..<used where isDue(i, nowMs, lateAfterMs) {
            due += 1
            if rtts[i] < 0 { lost += 1 }
        }
        return due == 0 ? 0 : Double(lost) * 100 / Double(due)
    }

    /// Probes whose fate is known (for "enough samples" decisions).
    public func samples(nowMs: UInt64, lateAfterMs: UInt64) -> Int {
        (0..<used).filter { isDue($0, nowMs, lateAfterMs) }.count
    }

    private func isDue(_ i: Int, _ nowMs: UInt64, _ lateAfterMs: UInt64) -> Bool {
        if let start = windowStartMs, sentMs[i] < start { return false }
        if rtts[i] >= 0 { return true }
        guard let newest = newestAnsweredSentMs, let first = firstAnsweredSentMs else { return false }
        return sentMs[i] < newest && sentMs[i] > first && nowMs >= sentMs[i] + lateAfterMs
    }

    /// RTT samples in send order (oldest first).
    private var orderedRtts: [Double] {
        (0..<used).map { rtts[(next - used + $0 + PathQuality.window) % PathQuality.window] }.filter { $0 >= 0 }
    }

    public var rttMs: Double {
        let r = orderedRtts.suffix(5)
        return r.isEmpty ? 0 : r.reduce(0, +) / Double(r.count)
    }

    public var jitterMs: Double {
        let r = orderedRtts
        guard r.count >= 2 else { return 0 }
        var sum = 0.0
        for i in 1..<r.count { sum += abs(r[i] - r[i - 1]) }
        return sum / Double(r.count - 1)
    }

    /// No authenticated reply for `deadAfterMs` while probes were going out.
    public func isSilent(nowMs: UInt64, deadAfterMs: UInt64) -> Bool {
        guard let s = silentSinceMs else { return false }
        return nowMs >= s + deadAfterMs
    }
}
