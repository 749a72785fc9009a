/// Counts of what the suspicion did, for status and metrics.
public struct SuspicionCounters: Equatable, Sendable {
    /// Episodes opened: data went out on the active path and nothing came back for a probe timeout.
    public var raised = 0
    /// Episodes that ended with an answer (the path was fine: a false alarm, no switch).
    public var cleared = 0
    /// Episodes that ended with the path presumed dead (silent while a standby answered).
    public var confirmed = 0
    /// Probes sent because of suspicion (on the active path and the standbys).
    public var probes = 0

    public init() {}
}

/// Failure detection while traffic flows, in the spirit of QUIC's probe timeout (RFC 9002, 6.2):
/// when data has gone out on the active path and nothing authenticated has come back for one PTO
/// of that path, the path is suspect. The orchestrator then probes it at once (and again after
/// each PTO, a few times) and probes the standbys; an answer clears the suspicion, silence for a
/// few PTOs while a standby answers confirms it.
///
/// The data plane is seen only through cumulative packet counters the host samples (the packet
/// path writes nothing new): a sample where the sent count moved and the received count did not
/// starts the unanswered interval, one where the received count moved ends it.
///
/// False alarms are cheap but bounded: suspicion probes draw from a token bucket, and each
/// cleared episode doubles the silence needed to open the next one (one level back per second
/// without a false alarm), so one-way traffic or long think times cannot make a probe storm.
public struct ActivePathSuspicion: Equatable, Sendable {
    /// Timer granularity in the PTO: the host samples counters about every millisecond.
    public static let granularityMs = 2.0
    /// The gateway answers a probe on its receive thread, without waiting for anything.
    public static let replyDelayMs = 1.0
    /// Suspicion probes per episode on the active path: the first at once, then one per PTO.
    public static let probesPerEpisode = 3
    /// Confirmation needs this many of them unanswered.
    public static let unansweredToConfirm = 2
    /// Suspicion probes on the active path per second (also the burst).
    public static let probesPerSecond: UInt64 = 10
    /// Cleared episodes raise the opening threshold to PTO x 2^level, level at most this (past
    /// the probe interval, the regular probes' answers come first and no episode opens).
    public static let maxBackoffLevel = 10
    /// One level of backoff is forgotten after this long without a false alarm.
    public static let backoffDecayMs: UInt64 = 1000
    /// Traffic seen this recently keeps the host's sampling fast.
    public static let trafficRecentMs: UInt64 = 100

    /// One suspicion of the active path.
    public struct Episode: Equatable, Sendable {
        public let openedMs: UInt64
        public fileprivate(set) var probesSent = 0
        public fileprivate(set) var firstProbeMs: UInt64?
        public fileprivate(set) var lastProbeMs: UInt64?
    }

    /// What the orchestrator should send now.
    public enum Step: Equatable, Sendable {
        case nothing
        /// An episode opened: probe the active path and every standby at once.
        case opened
        /// Probe the active path again.
        case probeAgain
    }

    public private(set) var counters = SuspicionCounters()
    public private(set) var episode: Episode?
    /// Data went out at (or just before) this sample and nothing authenticated came back since.
    public private(set) var unansweredSinceMs: UInt64?
    private var sentSeen: UInt64?
    private var receivedSeen: UInt64?
    private var lastTrafficMs: UInt64?
    private var backoffLevel = 0
    private var lastFalseAlarmMs: UInt64 = 0
    private var budget: TokenBucket

    public init(nowMs: UInt64) {
        budget = TokenBucket(capacity: ActivePathSuspicion.probesPerSecond,
                             refillPerSecond: Double(ActivePathSuspicion.probesPerSecond), nowMs: nowMs)
    }

    public static func probeTimeoutMs(_ rtt: RttEstimator) -> Double? {
        rtt.probeTimeoutMs(granularityMs: granularityMs, replyDelayMs: replyDelayMs)
    }

    /// The peer's cumulative data counters, sampled now. The first sample only sets the baseline.
    public mutating func observe(sentPackets: UInt64, receivedPackets: UInt64, nowMs now: UInt64) {
        defer { sentSeen = sentPackets; receivedSeen = receivedPackets }
        guard let sent = sentSeen, let received = receivedSeen else { return }
        // Received first: when both moved in one sample, the order inside it is unknown, and
        // assuming the answer came last is the side that cannot raise a false alarm.
        if receivedPackets != received { heard(nowMs: now) }
        if sentPackets != sent {
            lastTrafficMs = now
            if unansweredSinceMs == nil { unansweredSinceMs = now }
        }
    }

    /// Something authenticated came back on the active path (data, or a probe reply there).
    public mutating func heard(nowMs now: UInt64) {
        unansweredSinceMs = nil
        guard episode != nil else { return }
        episode = nil
        counters.cleared += 1
        backoffLevel = min(backoffLevel + 1, ActivePathSuspicion.maxBackoffLevel)
        lastFalseAlarmMs = now
    }

    /// The active path changed, or the session is in a state where it is not watched: the timing
    /// starts over (the counters, the budget and the backoff stay).
    public mutating func restart() {
        unansweredSinceMs = nil
        episode = nil
    }

    /// Silence that opens an episode: one PTO, doubled per recent false alarm.
    public func openingThresholdMs(ptoMs: Double) -> Double {
        ptoMs * Double(1 << backoffLevel)
    }

    /// Advances the timers; `ptoMs` is the active path's (nil: no RTT sample yet, nothing to
    /// suspect). The caller sends what the step says; every probe it asks for is counted here.
    public mutating func step(nowMs now: UInt64, ptoMs: Double?, standbys: Int) -> Step {
        if backoffLevel > 0, now >= lastFalseAlarmMs + ActivePathSuspicion.backoffDecayMs {
            backoffLevel -= 1
            lastFalseAlarmMs = now
        }
        guard let pto = ptoMs else { return .nothing }
        if var e = episode {
            guard e.probesSent < ActivePathSuspicion.probesPerEpisode,
                  let last = e.lastProbeMs, Double(now) >= Double(last) + pto,
                  budget.take(nowMs: now) else { return .nothing }
            e.probesSent += 1
            e.lastProbeMs = now
            episode = e
            counters.probes += 1
            return .probeAgain
        }
        guard let since = unansweredSinceMs, Double(now) >= Double(since) + openingThresholdMs(ptoMs: pto),
              budget.take(nowMs: now) else { return .nothing }
        episode = Episode(openedMs: now, probesSent: 1, firstProbeMs: now, lastProbeMs: now)
        counters.raised += 1
        counters.probes += 1 + standbys
        return .opened
    }

    /// The open episode has seen enough silence to call the path dead: enough of its probes went
    /// unanswered, the first of them for two PTOs (three since the data that went unanswered).
    /// The caller confirms only if a standby answered meanwhile.
    public func silentLongEnough(nowMs now: UInt64, ptoMs: Double?) -> Bool {
        guard let e = episode, let pto = ptoMs, let first = e.firstProbeMs else { return false }
        return e.probesSent >= ActivePathSuspicion.unansweredToConfirm && Double(now) >= Double(first) + 2 * pto
    }

    /// The path is presumed dead: the episode ends and the orchestrator moves away.
    public mutating func confirm() {
        guard episode != nil else { return }
        episode = nil
        unansweredSinceMs = nil
        counters.confirmed += 1
    }

    /// Traffic flowed recently or an episode is open: the host should sample often.
    public func isWatching(nowMs now: UInt64) -> Bool {
        episode != nil || unansweredSinceMs != nil || lastTrafficMs.map { now < $0 + ActivePathSuspicion.trafficRecentMs } ?? false
    }

    /// The next time `step` or `silentLongEnough` would act (rounded up to the ms clock), so that
    /// the host can tick exactly then instead of up to one sampling interval late.
    public func nextDeadlineMs(ptoMs: Double?) -> UInt64? {
        guard let pto = ptoMs else { return nil }
        if let e = episode, let first = e.firstProbeMs, let last = e.lastProbeMs {
            let confirm = Double(first) + 2 * pto
            let again = e.probesSent < ActivePathSuspicion.probesPerEpisode ? Double(last) + pto : confirm
            return UInt64(min(confirm, again).rounded(.up))
        }
        return unansweredSinceMs.map { UInt64((Double($0) + openingThresholdMs(ptoMs: pto)).rounded(.up)) }
    }
}
