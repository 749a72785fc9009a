/// One candidate path as the orchestrator sees it: an uplink (by priority) towards one endpoint,
/// over one transport kind (by preference).
public struct PathCandidate: Equatable, Sendable {
    public let id: UInt32
    /// Uplink order in the config: 0 = preferred.
    public let priority: Int
    /// Position of the path's transport kind in the peer's `Transport` list: 0 = preferred.
    public let transportRank: Int
    /// Which configured gateway endpoint the path leads to (0 = the first). Paths to different
    /// endpoints may reach different gateways of a cluster, which do not share session keys.
    public var gateway = 0
    public var linkUp = true
    public var hasAddress = true
    /// The path's transport is there: always for UDP (its uplink's socket); for TCP, the connection
    /// is established.
    public var transportUp = true
    public var quality = PathQuality()
    /// Healthy (alive, not volatile) continuously since; nil when not healthy.
    public var healthySinceMs: UInt64?
    /// Presumed dead by suspicion (silent for PTOs under traffic while a standby answered): the
    /// time its episode opened. Only an answer to a probe sent since revives it.
    public var presumedDeadSinceMs: UInt64?
    /// A stream path (TCP): its connection carries every frame whole (the kernel's TCP cuts the
    /// stream into segments that fit and finds its own path MTU), so it has no MTU to search or
    /// report, and nothing sent on it is fitted. A datagram path (UDP) carries one frame per
    /// datagram, which the path's MTU limits.
    public let isStream: Bool
    /// The path's MTU search (never run on a stream path). The host replaces the default with the
    /// uplink's MTU and the IP version of the gateway's address.
    public var mtu = PathMtuSearch(uplinkMtu: 1500, ipv6: false)
    /// The PATH_MTU report of this path to the gateway.
    public var mtuReport = PathMtuReport()

    public init(id: UInt32, priority: Int, transportRank: Int = 0, isStream: Bool = false, gateway: Int = 0) {
        self.id = id
        self.priority = priority
        self.transportRank = transportRank
        self.isStream = isStream
        self.gateway = gateway
    }

    /// Something can be sent on it: its uplink is up with an address and its transport is there.
    public var isUsable: Bool { linkUp && hasAddress && transportUp }
}

/// The client's report of one path's MTU to the gateway (PATH_MTU): what it last said, whether the
/// gateway receipted it, and when it was sent (it is repeated until receipted).
public struct PathMtuReport: Equatable, Sendable {
    public var maxDatagram: Int?
    public var receipted = false
    var sentMs: UInt64?

    public init() {}
}

/// A resume initiation in flight: its path, when it went, how many were sent this episode (each
/// retry goes to the next candidate), and whether it was sent while the session worked, to move it
/// back to a preferred gateway (`preempting`) rather than because its gateway stopped answering.
public struct ResumeAttempt: Equatable, Sendable {
    public let path: UInt32
    public let sentMs: UInt64
    public let sent: Int
    public var preempting = false
}

/// One REATTACH attempt: (path, version, nonce). Every retry sends exactly these, so the gateway
/// can answer a retry of a request it already applied with the same ACK (idempotent).
public struct ReattachAttempt: Equatable, Sendable {
    public let path: UInt32
    public let bindingVersion: UInt64
    public let nonce: ControlNonce
    public let reason: ReasonCode
    /// A move off a working active path that the session can do without: given up (and the
    /// active path confirmed again) when unanswered for `preferenceMoveGiveUpMs`.
    public let isPreference: Bool
    public let startedMs: UInt64
    public fileprivate(set) var lastSentMs: UInt64
}

/// What the daemon must do, in order.
public enum OrchestratorAction: Equatable, Sendable {
    /// Send a handshake initiation on `path`. The host builds the Noise message and keeps its state
    /// until the response; the orchestrator only decides when and where (retries, rotation, rekey).
    case sendInitiation(path: UInt32)
    case sendProbe(path: UInt32, seq: UInt32)
    /// An MTU probe on `path`: padded so that the IP packet carrying it is `size` bytes, or a small
    /// one (nil) that shows the path answered during the round (`PathMtuSearch`).
    case sendMtuProbe(path: UInt32, seq: UInt32, size: Int?)
    /// Tell the gateway, on `path`, the largest datagram the path carries both ways (PATH_MTU).
    case sendPathMtu(path: UInt32, maxDatagram: Int)
    /// The size `path`'s packets are fitted to changed (nil: no limit); `blackHole` when the size in
    /// use stopped passing while small probes did.
    case pathMtuChanged(path: UInt32, from: Int?, to: Int?, blackHole: Bool)
    /// Send a resume initiation on `path`: a fresh handshake naming the session (InitiationFlags),
    /// to continue it on the gateway there (another gateway of a cluster, or the same one).
    case sendResume(path: UInt32, reason: ReasonCode)
    /// Send REATTACH_REQUEST on `path`. A retry carries the same version and nonce as the first send.
    case sendReattach(path: UInt32, reason: ReasonCode, bindingVersion: UInt64, nonce: ControlNonce)
    /// Answer a PATH_CHALLENGE with `data` on the path it arrived on.
    case sendPathResponse(path: UInt32, data: UInt64)
    /// Data now goes on `path` (after REATTACH_ACK or the handshake): exactly one active path.
    case activate(path: UInt32)
    case stateChanged(StateChange)
    case audit(AuditRecord)
    case switched(from: UInt32?, to: UInt32, reason: ReasonCode, recoveryMs: UInt64)
    /// The active path was suspect and stayed silent: `probes` suspicion probes, the first
    /// `silentMs` ago, unanswered while `answeringPath` answered. A switch follows (PROBE_TIMEOUT).
    case presumedDead(path: UInt32, silentMs: UInt64, probes: Int, ptoMs: Double, answeringPath: UInt32)
    /// The session ended; with `restart` the daemon opens a new one (new id, BIRTH).
    case terminated(ReasonCode, restart: Bool)
}

/// The client's pure brain: facts in (netlink, probes, handshakes, gateway answers, time), actions
/// out. Deterministic: the same facts at the same times give the same actions; it reads no clock and
/// draws no random numbers (the nonce prefix comes in at init).
public struct ClientOrchestrator: Equatable, Sendable {
    /// Handshake initiations are retried this often, rotating over the usable paths.
    public static let handshakeRetryMs: UInt64 = 1000
    /// A rekey initiation without a response is repeated after this (WireGuard's REKEY_TIMEOUT).
    public static let rekeyRetryMs: UInt64 = 5000
    /// BIRTH never lasts longer than this (nor longer than TransportLossTtlMs).
    public static let maxHandshakeMs: UInt64 = 90_000
    /// A resume initiation without a response is sent again (on the next candidate) after this.
    public static let resumeRetryMs: UInt64 = 500
    /// A REATTACH rejected RATE_LIMITED waits this long before the next attempt.
    public static let rateLimitedBackoffMs: UInt64 = 1000
    /// A move off a working path that the gateway refused RATE_LIMITED, or that went unanswered
    /// until it was given up, is not asked for again before this, doubled for each failed move in
    /// a row up to `refusedMoveMaxBackoffMs`: the gateway's budget is a sliding minute, which these
    /// waits span after five refusals.
    public static let refusedMoveBackoffMs: UInt64 = 2000
    public static let refusedMoveMaxBackoffMs: UInt64 = 32_000
    /// PATH_RESPONSEs per second (burst and rate): a flood of challenges cannot make us a reflector.
    public static let pathResponsesPerSecond: UInt64 = 50
    /// MTU probes per second over all paths (burst and rate): well within the gateway's control
    /// budget per session, with the regular probes.
    public static let mtuProbesPerSecond: UInt64 = 40
    /// Probes whose fate is known that a path's loss needs before it counts (volatility) and before
    /// the path can be stable.
    public static let lossSamplesNeeded = 5
    /// BIRTH sends initiations on the preferred transport kind alone for this long, then on the
    /// next kind as well (UDP blocked: attach over TCP after 2 s), and so on.
    public static let transportFallbackMs: UInt64 = 2000

    public private(set) var policy: PolicyConfig
    public private(set) var machine: SessionStateMachine
    public private(set) var paths: [PathCandidate]
    public private(set) var active: UInt32?
    /// The newest binding_version the gateway has authenticated to us.
    public private(set) var bindingVersion: UInt64 = 0
    /// The binding_version at which `active` was confirmed (handshake or the ACK of our attempt).
    public private(set) var activeConfirmedVersion: UInt64 = 0
    /// The REATTACH in flight; only while RECOVERING.
    public private(set) var attempt: ReattachAttempt?
    public private(set) var switches = 0
    /// Some REATTACH was sent and no ACK of the attempt in flight arrived since: the gateway may have
    /// applied it (its ACK lost), so the binding is not known to be `active` any more.
    private var reattachOutcomeUnknown = false
    private let noncePrefix: UInt64
    private var nonceCounter: UInt64 = 0
    /// No new attempt before this (RATE_LIMITED backoff, spacing after leaving RECOVERING).
    private var attemptNotBeforeMs: UInt64 = 0
    /// Moves by preference that failed since the last switch: refused RATE_LIMITED while the active
    /// path worked (the gateway's budget, its own `MaxSwitchesPerMinute`, which may be lower than
    /// ours, is spent), or given up unanswered (the target path loses what the exchange needs).
    private var failedPreferenceMoves = 0
    /// No move by preference (off a working active path) before this: the backoff after such a
    /// failure. A failover is not held by it.
    private var preferenceMoveNotBeforeMs: UInt64 = 0
    private var switchTimes: [UInt64] = []
    private var lastSwitchMs: UInt64?
    private let sessionStartMs: UInt64
    private var probeSeq: UInt32 = 0
    /// When the active path was declared dead or worse (for recovery_ms).
    private var troubleSinceMs: UInt64?
    /// When the active path fell silent, if that is why the session is recovering: paths that
    /// answered probes sent since are known to work now.
    private var outageSinceMs: UInt64?
    private var recoveryReason: ReasonCode?
    private var volatileSinceMs: UInt64?
    private var noTransportSinceMs: UInt64?
    private var lastInitiationMs: UInt64?
    private var initiationsSent = 0
    /// The least preferred transport rank an initiation went out on in this session (-1: none yet).
    private var handshakeRankTried = -1
    /// Last rekey initiation with no handshake completed since.
    private var rekeyInitiationMs: UInt64?
    private var pathResponses: TokenBucket
    private var mtuProbes: TokenBucket
    /// Failure detection on the active path while traffic flows (between DeadAfterMs checks).
    public private(set) var suspicion: ActivePathSuspicion
    /// Latest time seen: facts may arrive with clock readings taken on other threads, slightly
    /// older than one already processed; the orchestrator never lets its time run backwards.
    private var latestMs: UInt64 = 0
    /// Distinct gateway endpoints among the paths: more than one = the session may have to move
    /// to another gateway (resume) when its own stops answering.
    private var gatewayCount: Int
    /// The gateway holding the session's keys (the endpoint of the handshake or resume that made them).
    public private(set) var activeGateway: Int?
    /// The resume initiation in flight.
    public private(set) var resume: ResumeAttempt?
    /// The active path fell silent at this time (its first unanswered probe) and every standby was
    /// probed once since: those that do not answer share its fate (the gateway is gone).
    private var standbyCheckedForSilenceMs: UInt64?

    private mutating func clock(_ now: UInt64) -> UInt64 {
        latestMs = max(latestMs, now)
        return latestMs
    }

    /// `noncePrefix`: random per orchestrator (per session), chosen by the host; REATTACH nonces are
    /// this prefix and a counter, so they never repeat within the session.
    public init(policy: PolicyConfig, paths: [PathCandidate], noncePrefix: UInt64, nowMs: UInt64) {
        self.policy = policy
        self.paths = paths
        self.noncePrefix = noncePrefix
        machine = SessionStateMachine(nowMs: nowMs)
        sessionStartMs = nowMs
        latestMs = nowMs
        pathResponses = TokenBucket(capacity: ClientOrchestrator.pathResponsesPerSecond,
                                    refillPerSecond: Double(ClientOrchestrator.pathResponsesPerSecond), nowMs: nowMs)
        suspicion = ActivePathSuspicion(nowMs: nowMs)
        mtuProbes = TokenBucket(capacity: ClientOrchestrator.mtuProbesPerSecond,
                                refillPerSecond: Double(ClientOrchestrator.mtuProbesPerSecond), nowMs: nowMs)
        gatewayCount = Set(paths.map(\.gateway)).count
    }

    public var state: SessionState { machine.state }

    public var handshakeTimeoutMs: UInt64 { min(policy.transportLossTtlMs, ClientOrchestrator.maxHandshakeMs) }

    /// No answer to a REATTACH this long: send it again (same nonce).
    public var reattachRetryMs: UInt64 { max(policy.probeIntervalMs, 100) }

    /// The gateway's binding is known to be `active`: nothing we sent since can have moved it, and no
    /// newer version has been seen.
    public var bindingSettled: Bool { !reattachOutcomeUnknown && activeConfirmedVersion == bindingVersion }

    private var lateAfterMs: UInt64 { min(policy.deadAfterMs, max(policy.probeIntervalMs * 2, 200)) }

    private func index(_ id: UInt32) -> Int? { paths.firstIndex { $0.id == id } }

    private func isAlive(_ p: PathCandidate, _ now: UInt64) -> Bool {
        p.isUsable && p.presumedDeadSinceMs == nil && !p.quality.isSilent(nowMs: now, deadAfterMs: policy.deadAfterMs)
            && !activeSilentSinceLastAnswer(p, now)
    }

    private func isAlive(_ id: UInt32?, _ now: UInt64) -> Bool {
        id.flatMap { index($0) }.map { isAlive(paths[$0], now) } ?? false
    }

    private func volatility(_ p: PathCandidate, _ now: UInt64) -> ReasonCode? {
        if p.quality.samples(nowMs: now, lateAfterMs: lateAfterMs) >= ClientOrchestrator.lossSamplesNeeded,
           p.quality.lossPct(nowMs: now, lateAfterMs: lateAfterMs) >= policy.lossVolatilePct { return .lossThreshold }
        if p.quality.rttMs >= policy.rttVolatileMs { return .rttThreshold }
        if p.quality.jitterMs >= policy.jitterVolatileMs { return .jitterThreshold }
        return nil
    }

    /// Deterministic ranking of usable candidates: (transport preference, below the MTU floor,
    /// priority, loss, rtt, path id). Every path of the preferred transport kind ranks above every
    /// path of the next; within a kind, a path below the MTU floor after every path above it.
    public func ranked(nowMs now: UInt64, excluding: UInt32? = nil) -> [PathCandidate] {
        paths.filter { $0.id != excluding && isAlive($0, now) }.sorted {
            let (pa, pb) = (preference($0), preference($1))
            let a = (pa.0, pa.1, pa.2, $0.quality.lossPct(nowMs: now, lateAfterMs: lateAfterMs), $0.quality.rttMs, $0.id)
            let b = (pb.0, pb.1, pb.2, $1.quality.lossPct(nowMs: now, lateAfterMs: lateAfterMs), $1.quality.rttMs, $1.id)
            return a < b
        }
    }

    /// What a path is preferred for before its measurements: its transport kind's place in the
    /// peer's `Transport` list, then (a path known to carry less than IPv6's minimum MTU inside the
    /// tunnel after every path that carries it) the floor, then the uplink order.
    private func preference(_ p: PathCandidate) -> (Int, Int, Int) { (p.transportRank, p.mtu.isBelowFloor ? 1 : 0, p.priority) }

    /// A policy-driven move from `active` to `best` (both working): always to a preferred transport
    /// kind, never to a less preferred one (only a failure moves a session there); within a kind,
    /// to a preferred uplink with `PreemptToPreferred`, and off a path below the MTU floor always.
    private func preempts(_ best: PathCandidate, over active: PathCandidate) -> Bool {
        if best.transportRank != active.transportRank { return best.transportRank < active.transportRank }
        return (policy.preemptToPreferred || active.mtu.isBelowFloor) && preference(best) < preference(active)
    }

    public func status(of id: UInt32, nowMs now: UInt64) -> String {
        guard let i = index(id) else { return "dead" }
        if id == active && machine.state != .terminated { return "active" }
        return isAlive(paths[i], now) ? "standby" : "dead"
    }

    public func quality(of id: UInt32) -> PathQuality? { index(id).map { paths[$0].quality } }

    public func mtu(of id: UInt32) -> PathMtuSearch? { index(id).map { paths[$0].mtu } }

    /// The path's probe timeout (nil before its first RTT sample).
    public func probeTimeoutMs(of id: UInt32) -> Double? {
        index(id).flatMap { ActivePathSuspicion.probeTimeoutMs(paths[$0].quality.rtt) }
    }

    /// The active path is under suspicion right now.
    public func isSuspect(_ id: UInt32) -> Bool { id == active && suspicion.episode != nil }

    /// How soon the host should tick again: while traffic flows on the active path, often enough to
    /// see when its answers stop (a tenth of its PTO, at least 1 ms) and exactly at the
    /// suspicion's next deadline; otherwise every 10 ms.
    public func tickIntervalMs(nowMs now: UInt64) -> UInt64 {
        guard suspicion.isWatching(nowMs: now), let a = active, let pto = probeTimeoutMs(of: a) else { return 10 }
        let sampling = min(10, max(1, UInt64(pto / 10)))
        guard let deadline = suspicion.nextDeadlineMs(ptoMs: pto) else { return sampling }
        return max(1, min(sampling, deadline > now ? deadline - now : 1))
    }

    public func lossPct(of id: UInt32, nowMs: UInt64) -> Double {
        index(id).map { paths[$0].quality.lossPct(nowMs: nowMs, lateAfterMs: lateAfterMs) } ?? 0
    }

    // MARK: facts: handshake

    /// A handshake response was accepted for an initiation sent on `path`: the first one attaches
    /// the session, later ones are rekeys. Either way a probe goes out on that path at once: the
    /// initiator sends first, and that frame is the confirmation the gateway binds on.
    public mutating func handshakeCompleted(path: UInt32, nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        var out: [OrchestratorAction] = []
        guard let i = index(path) else { return out }
        switch machine.state {
        case .birth:
            transition(.attached, .handshakeOK, now, &out)
            active = path
            activeGateway = paths[i].gateway
            bindingVersion = 1
            activeConfirmedVersion = 1
            out.append(.activate(path: path))
        case .recovering where resume != nil:
            resumed(onto: i, now, &out)
            return out
        case .attached where resume != nil, .volatile where resume != nil, .degraded where resume != nil:
            // A gateway answered a resume while the session still works here (a preemption, or a
            // recovery's resume answered after the window closed): it has recorded itself as the
            // session's owner, and the gateway in use lets the session go once it sees that.
            followResume(onto: i, now, &out)
            return out
        case .attached, .volatile, .recovering, .degraded:
            rekeyInitiationMs = nil
        case .terminated:
            return out
        }
        probe(i, now, &out)
        return out
    }

    /// The host's keys need renewing (age or message count, or they expired): a rekey initiation on
    /// the active path while it works, else on the best one; repeated every `rekeyRetryMs` until a
    /// handshake completes.
    public mutating func keysNeedRenewing(nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        var out: [OrchestratorAction] = []
        switch machine.state {
        case .birth, .terminated:
            return out
        case .attached, .volatile, .recovering, .degraded:
            break
        }
        if let last = rekeyInitiationMs, now < last + ClientOrchestrator.rekeyRetryMs { return out }
        // A resume brings fresh keys anyway; a rekey initiation would replace it. Not a preemption:
        // the keys in use come first (the preferred gateway is tried again later).
        if resume?.preempting == true { resume = nil }
        guard resume == nil else { return out }
        guard let path = isAlive(active, now) ? active : ranked(nowMs: now).first?.id ?? active else { return out }
        rekeyInitiationMs = now
        out.append(.sendInitiation(path: path))
        return out
    }

    // MARK: facts: netlink

    // MARK: reload

    /// A changed `[Policy]` (config reload): thresholds, intervals and budgets apply from the next
    /// fact; the session, its path and its measurements stay.
    public mutating func updatePolicy(_ new: PolicyConfig) { policy = new }

    /// Candidate paths added by a config reload (a new uplink or endpoint), after the existing
    /// ones. They are probed as standbys and compete by the usual ranking; a session still in BIRTH
    /// may handshake on them. Ids already known are ignored.
    public mutating func addPaths(_ new: [PathCandidate], nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        var out: [OrchestratorAction] = []
        let fresh = new.filter { index($0.id) == nil }
        paths += fresh
        gatewayCount = Set(paths.map(\.gateway)).count
        if machine.state == .birth, fresh.contains(where: { $0.isUsable }) { scheduleHandshake(now, &out) }
        return out
    }

    public mutating func linkChanged(uplinkPriority: Int, up: Bool, nowMs now: UInt64) -> [OrchestratorAction] {
        pathsChanged({ $0.priority == uplinkPriority }, usable: up, lost: .linkDown, now: clock(now)) { $0.linkUp = up }
    }

    public mutating func addressChanged(uplinkPriority: Int, present: Bool, nowMs now: UInt64) -> [OrchestratorAction] {
        pathsChanged({ $0.priority == uplinkPriority }, usable: present, lost: .addressLost, now: clock(now)) { $0.hasAddress = present }
    }

    /// A TCP path's connection was established (`up`), or it was refused, reset or closed: a link
    /// event for that path alone (losing the active path's connection is `LINK_DOWN`: for a TCP path
    /// the connection is its link).
    public mutating func transportChanged(path: UInt32, up: Bool, nowMs now: UInt64) -> [OrchestratorAction] {
        pathsChanged({ $0.id == path }, usable: up, lost: .linkDown, now: clock(now)) { $0.transportUp = up }
    }

    /// A fact about some paths (an uplink's, or one path's transport): they start measuring afresh;
    /// losing the active one starts recovery at once, losing the one a REATTACH is in flight on
    /// moves the attempt on, a returning one is probed (or gets the handshake) at once.
    private mutating func pathsChanged(_ affected: (PathCandidate) -> Bool, usable: Bool, lost: ReasonCode, now: UInt64,
                                       _ update: (inout PathCandidate) -> Void) -> [OrchestratorAction] {
        var out: [OrchestratorAction] = []
        for i in paths.indices where affected(paths[i]) {
            update(&paths[i])
            paths[i].quality.reset()
            paths[i].healthySinceMs = nil
            paths[i].presumedDeadSinceMs = nil
            if !usable {
                // When it comes back it may be another network: its MTU is measured afresh.
                let before = paths[i].mtu
                paths[i].mtu.reset()
                paths[i].mtuReport = PathMtuReport()
                noteMtuChange(i, before, &out)
            }
        }
        switch machine.state {
        case .terminated:
            return out
        case .birth:
            if usable { scheduleHandshake(now, &out) }
            return out
        case .attached, .volatile, .recovering, .degraded:
            break
        }
        if !usable, let a = active, let i = index(a), affected(paths[i]) {
            beginRecovery(lost, now, &out)
        } else if !usable, machine.state == .recovering {
            progressRecovery(now, &out)
        } else if usable {
            for i in paths.indices where affected(paths[i]) && paths[i].isUsable { probe(i, now, &out) }
            if machine.state == .degraded || machine.state == .recovering { evaluate(now, &out) }
        }
        return out
    }

    /// The uplink's MTU changed (netlink): its paths' searches follow.
    public mutating func uplinkMtuChanged(uplinkPriority: Int, mtu: Int, nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        var out: [OrchestratorAction] = []
        for i in paths.indices where paths[i].priority == uplinkPriority {
            let before = paths[i].mtu
            paths[i].mtu.uplinkMtuChanged(mtu, nowMs: now)
            noteMtuChange(i, before, &out)
        }
        return out
    }

    // MARK: facts: control messages

    public mutating func probeReplied(path: UInt32, seq: UInt32, nowMs now: UInt64, measuredRttMs: Double? = nil) -> [OrchestratorAction] {
        let now = clock(now)
        if PathMtuSearch.isMtuProbe(seq: seq) {
            // Not the path's loss, RTT or silence (a padded probe's fate is the MTU search's), but an
            // authenticated answer all the same.
            guard let i = index(path) else { return [] }
            let before = paths[i].mtu
            guard paths[i].mtu.replied(seq: seq, nowMs: now) else { return [] }
            if path == active { suspicion.heard(nowMs: now) }
            var out: [OrchestratorAction] = []
            noteMtuChange(i, before, &out)
            return out
        }
        guard let i = index(path) else { return [] }
        let wasDead = paths[i].isUsable && !isAlive(paths[i], now)
        guard let sentMs = paths[i].quality.replied(seq: seq, atMs: now, measuredRttMs: measuredRttMs) else { return [] }
        if let dead = paths[i].presumedDeadSinceMs, sentMs >= dead { paths[i].presumedDeadSinceMs = nil }
        if wasDead && isAlive(paths[i], now) { paths[i].quality.cameBack(sentMs: sentMs) }
        if path == active { suspicion.heard(nowMs: now) }
        return []
    }

    /// The gateway receipted a PATH_MTU report of `path`.
    public mutating func pathMtuReceipted(path: UInt32, maxDatagram: Int, nowMs now: UInt64) {
        _ = clock(now)
        guard let i = index(path), paths[i].mtuReport.maxDatagram == maxDatagram else { return }
        paths[i].mtuReport.receipted = true
    }

    /// The peer's cumulative data-plane packet counters (sealed and sent; received and
    /// authenticated), sampled by the host before each tick: the evidence for suspicion.
    public mutating func dataCounted(sentPackets: UInt64, receivedPackets: UInt64, nowMs now: UInt64) {
        suspicion.observe(sentPackets: sentPackets, receivedPackets: receivedPackets, nowMs: clock(now))
    }

    /// The gateway (authenticated hint) sees our traffic from an address it has not bound: a NAT
    /// re-mapped us, or its binding is not our active path. REATTACH the active path.
    public mutating func natRebindHinted(nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        var out: [OrchestratorAction] = []
        switch machine.state {
        case .attached, .volatile, .degraded:
            guard let a = active else { return out }
            rebind(a, reason: .natRebind, now, &out)
        case .birth, .recovering, .terminated:
            break
        }
        return out
    }

    /// REATTACH_ACK echoing `nonce`. The attempt in flight: the gateway bound its path at `version`.
    /// Any other (a duplicate, a late answer to an older attempt): only its version is news.
    public mutating func reattachAcked(nonce: ControlNonce, bindingVersion version: UInt64, nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        var out: [OrchestratorAction] = []
        guard machine.state == .recovering, let a = attempt, a.nonce == nonce else {
            adoptNewer(version)
            return out
        }
        attempt = nil
        reattachOutcomeUnknown = false
        suspicion.restart()
        // The answer to our own request is the gateway's word, taken as is: keeping a larger version
        // seen elsewhere would leave the session unsettled, re-binding on every tick.
        bindingVersion = version
        activeConfirmedVersion = version
        let from = active
        active = a.path
        out.append(.activate(path: a.path))
        transition(.attached, .reattachOK, now, &out)
        if from != a.path {
            switchTimes.append(now)
            lastSwitchMs = now
            switches += 1
            failedPreferenceMoves = 0
            out.append(.switched(from: from, to: a.path, reason: recoveryReason ?? a.reason,
                                 recoveryMs: elapsedMs(now, since: troubleSinceMs ?? now)))
        }
        troubleSinceMs = nil
        outageSinceMs = nil
        recoveryReason = nil
        volatileSinceMs = nil
        if let i = index(a.path) {
            paths[i].healthySinceMs = now
            // The new binding: is its size still what it was, and does the gateway know it (its
            // report is sent again: the address the gateway sees may be new)?
            paths[i].mtu.confirmSoon(nowMs: now)
            paths[i].mtuReport.receipted = false
            paths[i].mtuReport.sentMs = nil
        }
        return out
    }

    /// A sealed reject echoing `nonce`, carrying the gateway's current `version`. For the attempt in
    /// flight: STALE_VERSION resyncs and tries again at once, RATE_LIMITED backs off, UNKNOWN_SESSION
    /// ends the session. For any other nonce: only a newer version is news.
    public mutating func reattachRejected(reason: ReasonCode, nonce: ControlNonce, bindingVersion version: UInt64,
                                          nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        var out: [OrchestratorAction] = []
        guard machine.state == .recovering, let a = attempt, a.nonce == nonce else {
            adoptNewer(version)
            return out
        }
        attempt = nil
        out.append(.audit(AuditRecord(check: "reattach", result: "fail",
                                      detail: "gateway rejected REATTACH on path \(a.path): \(reason.rawValue) (gateway binding_version \(version))")))
        switch reason {
        case .staleVersion where version != a.bindingVersion:
            // The gateway's version is authoritative for our own request (it may even be lower).
            bindingVersion = version
            if isAlive(a.path, now) {
                startAttempt(to: a.path, reason: a.reason, isPreference: a.isPreference, since: a.startedMs, now, &out)
            } else {
                progressRecovery(now, &out)
            }
        case .rateLimited where a.path != active && version == activeConfirmedVersion && isAlive(active, now):
            // The gateway's switch budget is spent, its binding is still the one we confirmed on
            // the active path (every move raises the version), and that path works (a move by
            // preference, or a failed path that came back): the session stays there (DEGRADED
            // until the path is stable, then ATTACHED) and asks to move again only after a
            // backoff, not every second from RECOVERING.
            reattachOutcomeUnknown = false
            holdPreferenceMoves(now)
            attemptNotBeforeMs = now + ClientOrchestrator.rateLimitedBackoffMs
            transition(.degraded, .switchRateLimited, now, &out)
        case .rateLimited:
            adoptNewer(version)
            attemptNotBeforeMs = now + ClientOrchestrator.rateLimitedBackoffMs
        case .unknownSession:
            end(.peerClosed, now, &out)
        case .staleVersion, .handshakeOK, .lossThreshold, .rttThreshold, .jitterThreshold, .stabilityRestored,
             .linkDown, .addressLost, .probeTimeout, .betterPath, .natRebind, .candidateAvailable, .reattachOK,
             .recoveryWindowExceeded, .switchRateLimited, .sessionTTLExpired, .transportLossTTLExpired,
             .handshakeTimeout, .operatorRequest, .peerClosed, .policyHardFail, .ownershipConflict,
             .invalidProof, .replayDetected, .storeUnavailable:
            // Not a resync (a STALE_VERSION naming our own version would loop): a new attempt after
            // the retry interval.
            adoptNewer(version)
            attemptNotBeforeMs = now + reattachRetryMs
        }
        return out
    }

    /// PATH_CHALLENGE arrived on `path`: echo it there (the gateway validates that we receive there).
    public mutating func pathChallenged(path: UInt32, data: UInt64, nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        guard machine.state != .terminated, index(path) != nil, pathResponses.take(nowMs: now) else { return [] }
        return [.sendPathResponse(path: path, data: data)]
    }

    /// The gateway closed the session (authenticated CLOSE).
    public mutating func closedByPeer(nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        var out: [OrchestratorAction] = []
        guard machine.state != .terminated else { return out }
        end(.peerClosed, now, &out)
        return out
    }

    /// Ends the session for `reason` without asking for a new one (operator shutdown).
    public mutating func terminate(_ reason: ReasonCode, nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        var out: [OrchestratorAction] = []
        transition(.terminated, reason, now, &out)
        attempt = nil
        return out
    }

    /// A version the gateway authenticated (in an answer to an older attempt) is adopted when newer:
    /// the binding moved past the one we confirmed, so the session is no longer settled and re-binds.
    private mutating func adoptNewer(_ version: UInt64) {
        guard machine.state != .terminated, version > bindingVersion else { return }
        bindingVersion = version
    }

    // MARK: time

    public mutating func tick(nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        var out: [OrchestratorAction] = []
        guard machine.state != .terminated else { return out }
        if now >= sessionStartMs + policy.sessionTtlMs {
            end(.sessionTTLExpired, now, &out)
            return out
        }
        if machine.state == .birth {
            scheduleHandshake(now, &out)
            return out
        }
        sendDueProbes(now, &out)
        watchActivePath(now, &out)
        probeMtus(now, &out)
        reportMtus(now, &out)
        updateHealth(now)
        evaluate(now, &out)
        return out
    }

    /// MTU search rounds on every working datagram path that has answered a probe (so it has an
    /// RTT to time the round by).
    private mutating func probeMtus(_ now: UInt64, _ out: inout [OrchestratorAction]) {
        for i in paths.indices where !paths[i].isStream && isAlive(paths[i], now) && paths[i].quality.lastReplyMs != nil {
            let before = paths[i].mtu
            let pto = ActivePathSuspicion.probeTimeoutMs(paths[i].quality.rtt) ?? Double(policy.probeIntervalMs)
            let timeout = min(policy.deadAfterMs, max(PathMtuSearch.minTimeoutMs, UInt64(2 * pto)))
            let loss = paths[i].quality.lossPct(nowMs: now, lateAfterMs: lateAfterMs)
            for p in paths[i].mtu.poll(nowMs: now, timeoutMs: timeout, lossPct: loss, budget: &mtuProbes) {
                out.append(.sendMtuProbe(path: paths[i].id, seq: p.seq, size: p.size))
            }
            noteMtuChange(i, before, &out)
        }
    }

    /// PATH_MTU reports of working paths whose size is known (never a stream path's: none is
    /// searched) and not yet receipted by the gateway, repeated every `reattachRetryMs`.
    private mutating func reportMtus(_ now: UInt64, _ out: inout [OrchestratorAction]) {
        for i in paths.indices where isAlive(paths[i], now) {
            guard let d = paths[i].mtu.maxDatagram else { continue }
            if paths[i].mtuReport.maxDatagram != d {
                paths[i].mtuReport = PathMtuReport()
                paths[i].mtuReport.maxDatagram = d
            }
            guard !paths[i].mtuReport.receipted, paths[i].mtuReport.sentMs.map({ now >= $0 + reattachRetryMs }) ?? true else { continue }
            paths[i].mtuReport.sentMs = now
            out.append(.sendPathMtu(path: paths[i].id, maxDatagram: d))
        }
    }

    private func noteMtuChange(_ i: Int, _ before: PathMtuSearch, _ out: inout [OrchestratorAction]) {
        guard before.inUse != paths[i].mtu.inUse else { return }
        out.append(.pathMtuChanged(path: paths[i].id, from: before.inUse, to: paths[i].mtu.inUse,
                                   blackHole: paths[i].mtu.blackHoles > before.blackHoles))
    }

    /// Suspicion of the active path while it carries the session: probes when it is suspect, and
    /// the path presumed dead (so that `evaluate` moves away at once) when it stays silent while a
    /// standby answers.
    private mutating func watchActivePath(_ now: UInt64, _ out: inout [OrchestratorAction]) {
        switch machine.state {
        case .attached, .volatile, .degraded:
            break
        case .birth, .recovering, .terminated:
            suspicion.restart()
            return
        }
        guard let a = active, let ai = index(a), isAlive(paths[ai], now) else {
            suspicion.restart()
            return
        }
        let pto = ActivePathSuspicion.probeTimeoutMs(paths[ai].quality.rtt)
        func isStandby(_ i: Int) -> Bool { i != ai && paths[i].isUsable }
        var standbys = 0
        for i in paths.indices where isStandby(i) { standbys += 1 }
        switch suspicion.step(nowMs: now, ptoMs: pto, standbys: standbys) {
        case .nothing:
            break
        case .opened:
            probe(ai, now, &out)
            for i in paths.indices where isStandby(i) { probe(i, now, &out) }
            // Silence under traffic may be large packets dying while small ones pass.
            paths[ai].mtu.confirmSoon(nowMs: now)
        case .probeAgain:
            probe(ai, now, &out)
        }
        guard let episode = suspicion.episode, suspicion.silentLongEnough(nowMs: now, ptoMs: pto),
              let answering = ranked(nowMs: now, excluding: a).first(where: { ($0.quality.newestAnsweredSentMs ?? 0) >= episode.openedMs })
        else { return }
        suspicion.confirm()
        paths[ai].presumedDeadSinceMs = episode.openedMs
        out.append(.presumedDead(path: a, silentMs: now - (episode.firstProbeMs ?? now), probes: episode.probesSent,
                                 ptoMs: pto ?? 0, answeringPath: answering.id))
    }

    /// BIRTH: an initiation every `handshakeRetryMs`, rotating over the usable paths (one of them
    /// may be broken in one direction only), until a response or the handshake timeout. Only the
    /// preferred transport kind at first; every `transportFallbackMs` the next kind joins, and its
    /// best usable path gets an initiation at once.
    private mutating func scheduleHandshake(_ now: UInt64, _ out: inout [OrchestratorAction]) {
        if now >= sessionStartMs + handshakeTimeoutMs {
            end(.handshakeTimeout, now, &out)
            return
        }
        let allowedRank = Int(clamping: elapsedMs(now, since: sessionStartMs) / ClientOrchestrator.transportFallbackMs)
        let usable = paths.filter { $0.isUsable && $0.transportRank <= allowedRank }
            .sorted { ($0.transportRank, $0.priority, $0.id) < ($1.transportRank, $1.priority, $1.id) }
        if let fresh = usable.first(where: { $0.transportRank > handshakeRankTried }) {
            handshakeRankTried = fresh.transportRank
            initiationsSent += 1
            lastInitiationMs = now
            out.append(.sendInitiation(path: fresh.id))
            return
        }
        if let last = lastInitiationMs, now < last + ClientOrchestrator.handshakeRetryMs { return }
        guard !usable.isEmpty else { return }
        let path = usable[initiationsSent % usable.count].id
        initiationsSent += 1
        lastInitiationMs = now
        out.append(.sendInitiation(path: path))
    }

    private mutating func sendDueProbes(_ now: UInt64, _ out: inout [OrchestratorAction]) {
        checkStandbysWhenActiveFallsSilent(now, &out)
        for i in paths.indices where paths[i].isUsable {
            let fast = paths[i].id == active || paths[i].id == attempt?.path
            let interval = fast ? policy.probeIntervalMs : policy.standbyProbeIntervalMs
            if let last = paths[i].quality.lastSentMs, now < last + interval { continue }
            probe(i, now, &out)
        }
    }

    private mutating func probe(_ i: Int, _ now: UInt64, _ out: inout [OrchestratorAction]) {
        probeSeq &+= 1
        paths[i].quality.sent(seq: probeSeq, atMs: now)
        out.append(.sendProbe(path: paths[i].id, seq: probeSeq))
    }

    private mutating func updateHealth(_ now: UInt64) {
        for i in paths.indices {
            let healthy = isAlive(paths[i], now) && paths[i].quality.lastReplyMs != nil && volatility(paths[i], now) == nil
            if healthy { if paths[i].healthySinceMs == nil { paths[i].healthySinceMs = now } } else { paths[i].healthySinceMs = nil }
        }
    }

    /// Healthy for `StableWindowMs`, with a loss measured on enough probes to mean something (a
    /// lossy path that keeps coming back from outages starts fresh windows: without this it would
    /// look clean each time and draw the session onto it, again and again).
    private func isStable(_ p: PathCandidate, _ now: UInt64) -> Bool {
        guard let s = p.healthySinceMs else { return false }
        return now >= s + policy.stableWindowMs
            && p.quality.samples(nowMs: now, lateAfterMs: lateAfterMs) >= ClientOrchestrator.lossSamplesNeeded
    }

    /// The state-dependent decisions of one tick.
    private mutating func evaluate(_ now: UInt64, _ out: inout [OrchestratorAction]) {
        let anyAlive = paths.contains { isAlive($0, now) }
        if anyAlive { noTransportSinceMs = nil } else if noTransportSinceMs == nil { noTransportSinceMs = now }
        if let since = noTransportSinceMs, now >= since + policy.transportLossTtlMs {
            end(.transportLossTTLExpired, now, &out)
            return
        }
        let activeIndex = active.flatMap { index($0) }
        let activeAlive = isAlive(active, now)
        switch machine.state {
        case .birth, .terminated:
            return
        case .attached:
            guard let ai = activeIndex, activeAlive else {
                beginRecovery(.probeTimeout, now, &out)
                return
            }
            if !bindingSettled {
                rebind(paths[ai].id, reason: .natRebind, now, &out)
                return
            }
            if let v = volatility(paths[ai], now) {
                volatileSinceMs = now
                transition(.volatile, v, now, &out)
                return
            }
            // Back to a preferred transport kind always; to a preferred uplink of the same kind
            // only with PreemptToPreferred; off a path below the MTU floor always. The target is
            // the best-ranked of those that are stable: a lossy preferred uplink that keeps coming
            // back must not hold the session on TCP while another UDP path has long been stable.
            if let best = ranked(nowMs: now).first(where: { preempts($0, over: paths[ai]) && isStable($0, now) }),
               mayPolicySwitch(now) {
                troubleSinceMs = now
                recoveryReason = .betterPath
                transition(.recovering, .betterPath, now, &out)
                startAttempt(to: best.id, reason: .betterPath, isPreference: true, now, &out)
                return
            }
            preemptGateway(ai, now, &out)
        case .volatile:
            guard let ai = activeIndex, activeAlive else {
                beginRecovery(.probeTimeout, now, &out)
                return
            }
            if !bindingSettled {
                rebind(paths[ai].id, reason: .natRebind, now, &out)
                return
            }
            if volatility(paths[ai], now) == nil, isStable(paths[ai], now) {
                volatileSinceMs = nil
                transition(.attached, .stabilityRestored, now, &out)
                return
            }
            // Leaving a volatile path is still a preference: the candidate must be stable, and of a
            // transport kind at least as preferred (a lossy UDP path is no reason to go to TCP).
            let rank = paths[ai].transportRank
            if let better = ranked(nowMs: now, excluding: active).first(where: {
                $0.transportRank <= rank && volatility($0, now) == nil && isStable($0, now)
            }), mayPolicySwitch(now) {
                troubleSinceMs = volatileSinceMs ?? now
                recoveryReason = .betterPath
                transition(.recovering, .betterPath, now, &out)
                startAttempt(to: better.id, reason: .betterPath, isPreference: true, now, &out)
                return
            }
            if let since = volatileSinceMs, now >= since + policy.maxRecoveryWindowMs {
                transition(.degraded, .recoveryWindowExceeded, now, &out)
            }
        case .recovering:
            if now >= machine.enteredAtMs + policy.maxRecoveryWindowMs {
                attempt = nil
                // DEGRADED is visible for a moment before the next attempt, not a flicker.
                attemptNotBeforeMs = max(attemptNotBeforeMs, now + max(policy.switchCooldownMs, reattachRetryMs))
                transition(.degraded, .recoveryWindowExceeded, now, &out)
                return
            }
            progressRecovery(now, &out)
        case .degraded:
            let settled = bindingSettled
            if settled, let ai = activeIndex, activeAlive, volatility(paths[ai], now) == nil, isStable(paths[ai], now) {
                transition(.attached, .stabilityRestored, now, &out)
                troubleSinceMs = nil
                volatileSinceMs = nil
                return
            }
            if gatewayCount > 1, !activeAlive, reattachTarget(now) == nil, now >= attemptNotBeforeMs {
                // No path to the session's gateway works: look for it on another one.
                troubleSinceMs = troubleSinceMs ?? now
                recoveryReason = .candidateAvailable
                transition(.recovering, .candidateAvailable, now, &out)
                progressResume(now, &out)
                return
            }
            guard now >= attemptNotBeforeMs, let target = degradedTarget(settled: settled, activeAlive: activeAlive, now),
                  target == active || mayFailureSwitch(now) else { return }
            troubleSinceMs = troubleSinceMs ?? now
            recoveryReason = .candidateAvailable
            transition(.recovering, .candidateAvailable, now, &out)
            startAttempt(to: target, reason: .candidateAvailable, isPreference: settled && activeAlive && target != active, now, &out)
        }
    }

    /// Where DEGRADED tries next, nil = keep waiting. A settled binding on a working active path
    /// waits for it to stabilise, unless it is volatile and a clean candidate exists; otherwise
    /// (active dead, or the gateway's binding unknown) the best working path, which may be the
    /// active one itself (re-confirming the binding).
    private func degradedTarget(settled: Bool, activeAlive: Bool, _ now: UInt64) -> UInt32? {
        guard settled && activeAlive else { return reattachTarget(now) }
        guard now >= preferenceMoveNotBeforeMs, let ai = active.flatMap({ index($0) }), volatility(paths[ai], now) != nil else { return nil }
        let rank = paths[ai].transportRank
        return ranked(nowMs: now, excluding: active).first { $0.transportRank <= rank && volatility($0, now) == nil }?.id
    }

    /// The best path for a new attempt: working ones only; first those that answered a probe sent
    /// since the active path fell silent (one outage can silence several paths at once: UDP blocked
    /// on every uplink leaves only the TCP paths answering, and the UDP ones are not yet past
    /// DeadAfterMs), then those that answered a probe at all and are not volatile, then by rank.
    private func reattachTarget(_ now: UInt64) -> UInt32? {
        let alive = ranked(nowMs: now).filter { mayReattach($0) }
        let proven = alive.filter { $0.quality.lastReplyMs != nil }
        if let since = outageSinceMs,
           let fresh = proven.first(where: { ($0.quality.newestAnsweredSentMs ?? 0) >= since && volatility($0, now) == nil }) {
            return fresh.id
        }
        return (proven.first { volatility($0, now) == nil } ?? proven.first ?? alive.first)?.id
    }

    /// RECOVERING: retry the attempt in flight while its path works, else start one on the next
    /// candidate (within the switch budget; exhausted = DEGRADED, which resumes once it refills).
    private mutating func progressRecovery(_ now: UInt64, _ out: inout [OrchestratorAction]) {
        if let a = attempt, let i = index(a.path), isAlive(paths[i], now) {
            if a.isPreference, now >= a.startedMs + preferenceMoveGiveUpMs(to: a.path), let back = active, back != a.path,
               isAlive(back, now) {
                giveUpPreferenceMove(a, back: back, now, &out)
                return
            }
            if now >= a.lastSentMs + reattachRetryMs && mayRepeat(a, on: paths[i]) { resendAttempt(now, &out) }
            return
        }
        attempt = nil
        if resume != nil || (gatewayCount > 1 && reattachTarget(now) == nil) {
            progressResume(now, &out)
            return
        }
        guard now >= attemptNotBeforeMs, let target = reattachTarget(now) else { return }
        guard target == active || mayFailureSwitch(now) else {
            transition(.degraded, .switchRateLimited, now, &out)
            return
        }
        startAttempt(to: target, reason: recoveryReason ?? .probeTimeout, now, &out)
    }

    /// Failure-driven: into RECOVERING at once and REATTACH on the best working candidate. From
    /// DEGRADED only when an attempt can start now (else DEGRADED keeps waiting, without churn).
    private mutating func beginRecovery(_ reason: ReasonCode, _ now: UInt64, _ out: inout [OrchestratorAction]) {
        switch machine.state {
        case .attached, .volatile:
            break
        case .degraded:
            guard let target = reattachTarget(now), target == active || mayFailureSwitch(now) else { return }
        case .recovering:
            progressRecovery(now, &out)
            return
        case .birth, .terminated:
            return
        }
        troubleSinceMs = troubleSinceMs ?? now
        outageSinceMs = reason == .probeTimeout ? active.flatMap { index($0) }.flatMap { paths[$0].quality.silentSinceMs } : nil
        recoveryReason = reason
        attempt = nil
        transition(.recovering, reason, now, &out)
        progressRecovery(now, &out)
    }

    /// REATTACH on the path we already use: the gateway's binding is not (known to be) ours.
    private mutating func rebind(_ path: UInt32, reason: ReasonCode, _ now: UInt64, _ out: inout [OrchestratorAction]) {
        troubleSinceMs = now
        recoveryReason = reason
        transition(.recovering, reason, now, &out)
        startAttempt(to: path, reason: reason, now, &out)
    }

    /// A move by preference to `path` is given up when the path has not carried the exchange in
    /// this long: five probe intervals, at least 1 s (several REATTACH retries), and at least four
    /// of the path's probe timeouts (a validation round trip and a REATTACH round trip, each lost
    /// once), so a slow path that is stable is not given up on.
    public func preferenceMoveGiveUpMs(to path: UInt32?) -> UInt64 {
        let pto = path.flatMap { index($0) }.flatMap { ActivePathSuspicion.probeTimeoutMs(paths[$0].quality.rtt) } ?? 0
        return max(policy.probeIntervalMs * 5, 1000, UInt64(4 * pto))
    }

    /// A move by preference went unanswered while the active path still works: the target loses
    /// what the exchange needs, however clean its probes looked. The session stays where it is and
    /// confirms the active path with a new attempt (the gateway may have applied the move, its ACKs
    /// lost: then this moves the binding back); the target must prove itself stable again, and
    /// preference moves wait as after a refusal.
    private mutating func giveUpPreferenceMove(_ a: ReattachAttempt, back: UInt32, _ now: UInt64, _ out: inout [OrchestratorAction]) {
        out.append(.audit(AuditRecord(check: "reattach", result: "fail",
                                      detail: "no answer to REATTACH on path \(a.path) in \(elapsedMs(now, since: a.startedMs)) ms; back to path \(back)")))
        if let i = index(a.path) { paths[i].healthySinceMs = nil }
        // The gateway may have applied the move (its ACKs lost) and will then count the move back
        // too: both count against the minute's budget here as they may there.
        switchTimes += [now, now]
        holdPreferenceMoves(now)
        startAttempt(to: back, reason: .probeTimeout, now, &out)
    }

    private mutating func holdPreferenceMoves(_ now: UInt64) {
        failedPreferenceMoves += 1
        let backoff = ClientOrchestrator.refusedMoveBackoffMs << UInt64(min(failedPreferenceMoves - 1, 4))
        preferenceMoveNotBeforeMs = now + min(backoff, ClientOrchestrator.refusedMoveMaxBackoffMs)
    }

    /// A new attempt: the newest version we know and a nonce never used before in this session.
    /// `since`: when the move began, if this attempt continues it (a resync after STALE_VERSION
    /// does not restart a preference move's give-up bound).
    private mutating func startAttempt(to path: UInt32, reason: ReasonCode, isPreference: Bool = false, since: UInt64? = nil,
                                       _ now: UInt64, _ out: inout [OrchestratorAction]) {
        nonceCounter += 1
        let a = ReattachAttempt(path: path, bindingVersion: bindingVersion,
                                nonce: ControlNonce(prefix: noncePrefix, counter: nonceCounter), reason: reason,
                                isPreference: isPreference, startedMs: since ?? now, lastSentMs: now)
        attempt = a
        reattachOutcomeUnknown = true
        out.append(.sendReattach(path: a.path, reason: a.reason, bindingVersion: a.bindingVersion, nonce: a.nonce))
    }

    /// A datagram path loses copies: each retry is another chance. A stream path's connection
    /// delivers the copy already written to it, in order, or breaks (then the path is down and the
    /// attempt moves on); a copy written behind it would only queue after it and reach the gateway
    /// late, stale once the binding has moved on (a STALE_VERSION reject, a security event). So on
    /// a stream the attempt is repeated only when the connection answered a probe written after
    /// the last copy: that copy was delivered ahead of the probe and its answer did not come back
    /// (dropped above TCP by a backed-up sender), or the copy itself was dropped on our side.
    private func mayRepeat(_ a: ReattachAttempt, on p: PathCandidate) -> Bool {
        guard p.isStream else { return true }
        return (p.quality.newestAnsweredSentMs ?? 0) > a.lastSentMs
    }

    private mutating func resendAttempt(_ now: UInt64, _ out: inout [OrchestratorAction]) {
        guard var a = attempt else { return }
        a.lastSentMs = now
        attempt = a
        out.append(.sendReattach(path: a.path, reason: a.reason, bindingVersion: a.bindingVersion, nonce: a.nonce))
    }

    private mutating func switchesInLastMinute(_ now: UInt64) -> Int {
        switchTimes.removeAll { $0 + 60_000 <= now }
        return switchTimes.count
    }

    private mutating func mayFailureSwitch(_ now: UInt64) -> Bool {
        switchesInLastMinute(now) < policy.maxSwitchesPerMinute
    }

    /// A move by preference: within our budget and cooldown, and not while backing off from the
    /// gateway's refusal.
    private mutating func mayPolicySwitch(_ now: UInt64) -> Bool {
        // A move by preference never takes the minute's last switch: that one is a failover's.
        guard switchesInLastMinute(now) + 1 < policy.maxSwitchesPerMinute, now >= preferenceMoveNotBeforeMs else { return false }
        if let last = lastSwitchMs, now < last + policy.switchCooldownMs { return false }
        return true
    }

    private mutating func end(_ reason: ReasonCode, _ now: UInt64, _ out: inout [OrchestratorAction]) {
        transition(.terminated, reason, now, &out)
        attempt = nil
        resume = nil
        out.append(.terminated(reason, restart: policy.restartOnTerminate))
    }

    private mutating func transition(_ to: SessionState, _ reason: ReasonCode, _ now: UInt64, _ out: inout [OrchestratorAction]) {
        switch machine.transition(to: to, reason: reason, now: now) {
        case .applied(let c): out.append(.stateChanged(c))
        case .rejected(let a): out.append(.audit(a))
        }
    }
}

/// Moving the session to another gateway of a cluster (a resume): when no path to the gateway that
/// holds the session's keys works any more, the client sends a fresh handshake naming the session
/// to the next gateway (`sendResume`), and once it answers, confirms the new keys with a REATTACH on
/// that path: the gateway's ACK carries the session's new `binding_version`, and the switch is a
/// TRANSPORT_SWITCH like any other.
extension ClientOrchestrator {
    /// A path can carry a REATTACH only if its gateway holds our keys: it leads to the session's
    /// gateway or has answered a probe sealed with them. After a silence, only paths that answered
    /// a probe sent since the silence began: the others are presumed gone with the gateway.
    func mayReattach(_ p: PathCandidate) -> Bool {
        guard gatewayCount > 1 else { return true }
        guard p.gateway == activeGateway || p.quality.lastReplyMs != nil else { return false }
        guard let silence = outageSinceMs else { return true }
        return (p.quality.newestAnsweredSentMs ?? 0) >= silence
    }

    /// A session that may have to move to another gateway counts the active path's silence from its
    /// last answer (`DeadAfterMs` as the contract words it), not from the first probe that went
    /// unanswered: up to a probe interval sooner, which a gateway failure costs in full.
    func activeSilentSinceLastAnswer(_ p: PathCandidate, _ now: UInt64) -> Bool {
        guard gatewayCount > 1, p.id == active, p.quality.silentSinceMs != nil, let last = p.quality.lastReplyMs else { return false }
        return now >= last + policy.deadAfterMs
    }

    /// Once the active path has been silent for `lateAfterMs`, every standby is probed at once: by
    /// the time the active path is declared dead, the standbys that still reach the gateway have
    /// answered, and the session knows whether the gateway itself is gone.
    mutating func checkStandbysWhenActiveFallsSilent(_ now: UInt64, _ out: inout [OrchestratorAction]) {
        guard gatewayCount > 1, let a = active, let ai = index(a), let silent = paths[ai].quality.silentSinceMs,
              now >= silent + lateAfterMs, standbyCheckedForSilenceMs != silent else { return }
        standbyCheckedForSilenceMs = silent
        for i in paths.indices where i != ai && paths[i].isUsable {
            probe(i, now, &out)
        }
    }

    /// Whether a stream (TCP) path's connection is wanted: towards the session's own gateway, towards
    /// any while there is none yet (BIRTH), towards every one while the session looks for a new
    /// gateway (a resume in flight). A connection to another gateway of a cluster would carry frames
    /// that gateway cannot open: it would time out unauthenticated and be opened again, on and on.
    public func wantsConnection(path id: UInt32) -> Bool {
        guard gatewayCount > 1, let g = activeGateway, let i = index(id) else { return true }
        return paths[i].gateway == g || (resume.map { !$0.preempting } ?? false)
    }

    /// Candidates for a resume, best first: the other gateways in configuration order after the
    /// session's own (so a failed gateway is tried last), each by transport kind (as `Transport`
    /// orders them) then uplink priority; paths that cannot send (`isUsable`) are left out.
    func resumeCandidates() -> [UInt32] {
        let g = max(gatewayCount, 1)
        let own = activeGateway ?? 0
        return paths.filter(\.isUsable).sorted {
            let a = (($0.gateway - own - 1 + g * 2) % g, $0.transportRank, $0.priority, $0.id)
            let b = (($1.gateway - own - 1 + g * 2) % g, $1.transportRank, $1.priority, $1.id)
            return a < b
        }.map(\.id)
    }

    /// RECOVERING with no path to the session's gateway: a resume initiation now, then every
    /// `resumeRetryMs` on the next candidate.
    mutating func progressResume(_ now: UInt64, _ out: inout [OrchestratorAction]) {
        // A preemption in flight becomes the recovery's first resume: its answer may still come,
        // and the gateway that gives it owns the session by then.
        resume?.preempting = false
        if let r = resume, now < r.sentMs + ClientOrchestrator.resumeRetryMs { return }
        let candidates = resumeCandidates()
        guard !candidates.isEmpty else { return }
        let sent = resume?.sent ?? 0
        let path = candidates[sent % candidates.count]
        resume = ResumeAttempt(path: path, sentMs: now, sent: sent + 1)
        out.append(.sendResume(path: path, reason: recoveryReason ?? .probeTimeout))
    }

    /// The resume was answered on path `i`: the session's keys are now that gateway's. Every path
    /// measures afresh (answers under the old keys say nothing of the new gateway), the paths to the
    /// new gateway report their known MTU again (it has none of the receipts given before: it may be
    /// a restarted process that gave them), and a REATTACH on the path confirms the keys and
    /// learns the session's new binding_version.
    mutating func resumed(onto i: Int, _ now: UInt64, _ out: inout [OrchestratorAction]) {
        resume = nil
        activeGateway = paths[i].gateway
        outageSinceMs = nil
        standbyCheckedForSilenceMs = nil
        rekeyInitiationMs = nil
        for k in paths.indices {
            paths[k].quality.reset()
            paths[k].healthySinceMs = nil
            paths[k].presumedDeadSinceMs = nil
            if paths[k].gateway == activeGateway {
                paths[k].mtuReport.receipted = false
                paths[k].mtuReport.sentMs = nil
            }
        }
        suspicion.restart()
        startAttempt(to: paths[i].id, reason: recoveryReason ?? .probeTimeout, now, &out)
        probe(i, now, &out)
    }

    /// Back to a preferred gateway (earlier in `Endpoint`) by the uplinks' policy: with
    /// `PreemptToPreferred`, once the active path has been stable for `StableWindowMs`, within the
    /// switch budget and `SwitchCooldownMs`, a resume initiation (reason BETTER_PATH) to one
    /// preferred gateway, and again at most every `StableWindowMs` while none answers (each time to
    /// the next preferred gateway, in order). Another gateway cannot be probed before it holds the
    /// session's keys, so its answer to the resume is the proof that it works; an unanswered one
    /// costs the session nothing. Only onto a path whose transport kind is at least as preferred as
    /// the active one's.
    mutating func preemptGateway(_ ai: Int, _ now: UInt64, _ out: inout [OrchestratorAction]) {
        guard gatewayCount > 1, policy.preemptToPreferred, let own = activeGateway, own > 0, rekeyInitiationMs == nil,
              isStable(paths[ai], now) else { return }
        if let r = resume, !r.preempting || now < r.sentMs + policy.stableWindowMs { return }
        guard mayPolicySwitch(now) else { return }
        let rank = paths[ai].transportRank
        var best: [Int: PathCandidate] = [:]
        for p in paths where p.gateway < own && p.isUsable && p.transportRank <= rank {
            if let b = best[p.gateway], (b.transportRank, b.priority, b.id) <= (p.transportRank, p.priority, p.id) { continue }
            best[p.gateway] = p
        }
        let targets = best.keys.sorted().compactMap { best[$0] }
        guard !targets.isEmpty else { return }
        let sent = resume?.sent ?? 0
        let target = targets[sent % targets.count]
        resume = ResumeAttempt(path: target.id, sentMs: now, sent: sent + 1, preempting: true)
        out.append(.sendResume(path: target.id, reason: .betterPath))
    }

    /// A resume was answered on path `i` while the session was not recovering: into RECOVERING
    /// (BETTER_PATH for a preemption) and on as for any resume.
    mutating func followResume(onto i: Int, _ now: UInt64, _ out: inout [OrchestratorAction]) {
        let reason: ReasonCode = resume?.preempting == true ? .betterPath : .candidateAvailable
        troubleSinceMs = troubleSinceMs ?? now
        recoveryReason = reason
        attempt = nil
        transition(.recovering, reason, now, &out)
        resumed(onto: i, now, &out)
    }
}
