/// One candidate path as the orchestrator sees it: an uplink (by priority) towards one endpoint.
public struct PathCandidate: Equatable, Sendable {
    public let id: UInt32
    /// Uplink order in the config: 0 = preferred.
    public let priority: Int
    public var linkUp = true
    public var hasAddress = true
    public var quality = PathQuality()
    /// Healthy (alive, not volatile) continuously since; nil when not healthy.
    public var healthySinceMs: UInt64?

    public init(id: UInt32, priority: Int) {
        self.id = id
        self.priority = priority
    }
}

/// What the daemon must do, in order.
public enum OrchestratorAction: Equatable, Sendable {
    case sendProbe(path: UInt32, seq: UInt32)
    /// Send REATTACH_REQUEST on `path` with `bindingVersion`; the daemon adds a fresh nonce.
    case sendReattach(path: UInt32, reason: ReasonCode, bindingVersion: UInt64)
    /// Data now goes on `path` (after REATTACH_ACK or the handshake): exactly one active path.
    case activate(path: UInt32)
    case stateChanged(StateChange)
    case audit(AuditRecord)
    case switched(from: UInt32?, to: UInt32, reason: ReasonCode, recoveryMs: UInt64)
    /// The session ended; with RestartOnTerminate the daemon opens a new one.
    case terminated(ReasonCode, restart: Bool)
}

/// The client's pure brain: facts in (netlink, probes, acks, time), actions out. Deterministic:
/// the same facts at the same times give the same actions.
public struct ClientOrchestrator: Equatable, Sendable {
    public let policy: PolicyConfig
    public private(set) var machine: SessionStateMachine
    public private(set) var paths: [PathCandidate]
    public private(set) var active: UInt32?
    public private(set) var bindingVersion: UInt64 = 0
    public private(set) var switches = 0
    private var switchTimes: [UInt64] = []
    private var lastSwitchMs: UInt64?
    private var sessionStartMs: UInt64
    private var probeSeq: UInt32 = 0
    /// When the active path was declared dead or worse (for recovery_ms).
    private var troubleSinceMs: UInt64?
    private var recoveryReason: ReasonCode?
    private var pendingPath: UInt32?
    private var pendingSentMs: UInt64 = 0
    private var volatileSinceMs: UInt64?
    private var noTransportSinceMs: UInt64?
    private var degradedRetryMs: UInt64 = 0
    /// Latest time seen: facts may arrive with clock readings taken on other threads, slightly
    /// older than one already processed; the orchestrator never lets its time run backwards.
    private var latestMs: UInt64 = 0

    private mutating func clock(_ now: UInt64) -> UInt64 {
        latestMs = max(latestMs, now)
        return latestMs
    }

    public init(policy: PolicyConfig, paths: [PathCandidate], nowMs: UInt64) {
        self.policy = policy
        self.paths = paths
        machine = SessionStateMachine(nowMs: nowMs)
        sessionStartMs = nowMs
    }

    public var state: SessionState { machine.state }

    private var lateAfterMs: UInt64 { min(policy.deadAfterMs, max(policy.probeIntervalMs * 2, 200)) }

    private func index(_ id: UInt32) -> Int? { paths.firstIndex { $0.id == id } }

    private func isAlive(_ p: PathCandidate, _ now: UInt64) -> Bool {
        p.linkUp && p.hasAddress && !p.quality.isSilent(nowMs: now, deadAfterMs: policy.deadAfterMs)
    }

    private func volatility(_ p: PathCandidate, _ now: UInt64) -> ReasonCode? {
        if p.quality.samples(nowMs: now, lateAfterMs: lateAfterMs) >= 5,
           p.quality.lossPct(nowMs: now, lateAfterMs: lateAfterMs) >= policy.lossVolatilePct { return .lossThreshold }
        if p.quality.rttMs >= policy.rttVolatileMs { return .rttThreshold }
        if p.quality.jitterMs >= policy.jitterVolatileMs { return .jitterThreshold }
        return nil
    }

    /// Deterministic ranking of usable candidates: (priority, loss, rtt, path id).
    public func ranked(nowMs now: UInt64, excluding: UInt32? = nil) -> [PathCandidate] {
        paths.filter { $0.id != excluding && isAlive($0, now) }.sorted {
            let a = ($0.priority, $0.quality.lossPct(nowMs: now, lateAfterMs: lateAfterMs), $0.quality.rttMs, $0.id)
            let b = ($1.priority, $1.quality.lossPct(nowMs: now, lateAfterMs: lateAfterMs), $1.quality.rttMs, $1.id)
            return a < b
        }
    }

    public func status(of id: UInt32, nowMs now: UInt64) -> String {
        guard let i = index(id) else { return "dead" }
        if id == active && machine.state != .terminated { return "active" }
        return isAlive(paths[i], now) ? "standby" : "dead"
    }

    public func quality(of id: UInt32) -> PathQuality? { index(id).map { paths[$0].quality } }

    public func lossPct(of id: UInt32, nowMs: UInt64) -> Double {
        index(id).map { paths[$0].quality.lossPct(nowMs: nowMs, lateAfterMs: lateAfterMs) } ?? 0
    }

    // MARK: facts

    public mutating func handshakeCompleted(path: UInt32, nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        var out: [OrchestratorAction] = []
        guard machine.state == .birth else { return out }
        transition(.attached, .handshakeOK, now, &out)
        active = path
        bindingVersion = 1
        out.append(.activate(path: path))
        return out
    }

    public mutating func linkChanged(uplinkPriority: Int, up: Bool, nowMs now: UInt64) -> [OrchestratorAction] {
        uplinkChanged(uplinkPriority, usable: up, lost: .linkDown, now: clock(now)) { $0.linkUp = up }
    }

    public mutating func addressChanged(uplinkPriority: Int, present: Bool, nowMs now: UInt64) -> [OrchestratorAction] {
        uplinkChanged(uplinkPriority, usable: present, lost: .addressLost, now: clock(now)) { $0.hasAddress = present }
    }

    /// A netlink fact about one uplink: its paths start measuring afresh; losing the active one
    /// starts recovery at once, a returning one is probed at once.
    private mutating func uplinkChanged(_ priority: Int, usable: Bool, lost: ReasonCode, now: UInt64,
                                        _ update: (inout PathCandidate) -> Void) -> [OrchestratorAction] {
        var out: [OrchestratorAction] = []
        for i in paths.indices where paths[i].priority == priority {
            update(&paths[i])
            paths[i].quality.reset()
            paths[i].healthySinceMs = nil
        }
        if !usable, let a = active, let i = index(a), paths[i].priority == priority {
            beginRecovery(lost, now, &out)
        } else if usable {
            probeNow(uplinkPriority: priority, now, &out)
            if machine.state == .degraded { evaluate(now, &out) }
        }
        return out
    }

    public mutating func probeReplied(path: UInt32, seq: UInt32, nowMs now: UInt64, measuredRttMs: Double? = nil) -> [OrchestratorAction] {
        let now = clock(now)
        guard let i = index(path) else { return [] }
        paths[i].quality.replied(seq: seq, atMs: now, measuredRttMs: measuredRttMs)
        return []
    }

    /// The gateway asked us (authenticated hint) to re-bind the active path after a NAT change.
    public mutating func natRebindHinted(nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        var out: [OrchestratorAction] = []
        guard let a = active, machine.state == .attached || machine.state == .volatile || machine.state == .degraded,
              pendingPath == nil else { return out }
        troubleSinceMs = now
        recoveryReason = .natRebind
        transition(.recovering, .natRebind, now, &out)
        pendingPath = a
        pendingSentMs = now
        out.append(.sendReattach(path: a, reason: .natRebind, bindingVersion: bindingVersion))
        return out
    }

    public mutating func reattachAcked(path: UInt32, bindingVersion version: UInt64, nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        var out: [OrchestratorAction] = []
        guard machine.state == .recovering, pendingPath == path, version > bindingVersion else { return out }
        let from = active
        bindingVersion = version
        active = path
        pendingPath = nil
        let reason = recoveryReason ?? .betterPath
        let recovery = elapsedMs(now, since: troubleSinceMs ?? now)
        switchTimes.append(now)
        lastSwitchMs = now
        switches += 1
        out.append(.activate(path: path))
        transition(.attached, .reattachOK, now, &out)
        out.append(.switched(from: from, to: path, reason: reason, recoveryMs: recovery))
        troubleSinceMs = nil
        recoveryReason = nil
        volatileSinceMs = nil
        if let i = index(path) { paths[i].healthySinceMs = now }
        return out
    }

    public mutating func reattachRejected(_ reason: ReasonCode, nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        var out: [OrchestratorAction] = []
        out.append(.audit(AuditRecord(check: "reattach", result: "fail", detail: "gateway rejected REATTACH: \(reason.rawValue)")))
        pendingPath = nil // the next tick retries, bounded by the recovery window
        return out
    }

    public mutating func terminate(_ reason: ReasonCode, nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        var out: [OrchestratorAction] = []
        transition(.terminated, reason, now, &out)
        return out
    }

    /// Probe one path now (new keys to confirm, a path to measure at once).
    public mutating func probeNow(path: UInt32, nowMs now: UInt64) -> [OrchestratorAction] {
        let now = clock(now)
        var out: [OrchestratorAction] = []
        if let i = index(path), paths[i].linkUp, paths[i].hasAddress { probe(i, now, &out) }
        return out
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
        sendDueProbes(now, &out)
        updateHealth(now)
        guard machine.state != .birth else { return out }
        evaluate(now, &out)
        return out
    }

    private mutating func sendDueProbes(_ now: UInt64, _ out: inout [OrchestratorAction]) {
        for i in paths.indices where paths[i].linkUp && paths[i].hasAddress {
            let interval = paths[i].id == active || paths[i].id == pendingPath ? policy.probeIntervalMs : policy.standbyProbeIntervalMs
            if let last = paths[i].quality.lastSentMs, now < last + interval { continue }
            probe(i, now, &out)
        }
    }

    private mutating func probeNow(uplinkPriority: Int, _ now: UInt64, _ out: inout [OrchestratorAction]) {
        for i in paths.indices where paths[i].priority == uplinkPriority && paths[i].linkUp && paths[i].hasAddress {
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

    private func isStable(_ p: PathCandidate, _ now: UInt64) -> Bool {
        guard let s = p.healthySinceMs else { return false }
        return now >= s + policy.stableWindowMs
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
        let activeAlive = activeIndex.map { isAlive(paths[$0], now) } ?? false
        switch machine.state {
        case .birth, .terminated:
            return
        case .attached:
            guard let ai = activeIndex, activeAlive else {
                beginRecovery(.probeTimeout, now, &out)
                return
            }
            if let v = volatility(paths[ai], now) {
                volatileSinceMs = now
                transition(.volatile, v, now, &out)
                return
            }
            if policy.preemptToPreferred, let best = ranked(nowMs: now).first, best.priority < paths[ai].priority,
               isStable(best, now), mayPolicySwitch(now) {
                troubleSinceMs = now
                startReattach(to: best.id, reason: .betterPath, now, &out)
            }
        case .volatile:
            guard let ai = activeIndex, activeAlive else {
                beginRecovery(.probeTimeout, now, &out)
                return
            }
            if volatility(paths[ai], now) == nil, isStable(paths[ai], now) {
                volatileSinceMs = nil
                transition(.attached, .stabilityRestored, now, &out)
                return
            }
            // Leaving a volatile path is still a preference: the candidate must be stable.
            if let better = ranked(nowMs: now, excluding: active).first(where: { volatility($0, now) == nil && isStable($0, now) }),
               mayPolicySwitch(now) {
                troubleSinceMs = volatileSinceMs ?? now
                startReattach(to: better.id, reason: .betterPath, now, &out)
                return
            }
            if let since = volatileSinceMs, now >= since + policy.maxRecoveryWindowMs {
                transition(.degraded, .recoveryWindowExceeded, now, &out)
            }
        case .recovering:
            if let p = pendingPath, now < pendingSentMs + max(policy.probeIntervalMs, 100) {
                // waiting for REATTACH_ACK
                _ = p
            } else if let best = ranked(nowMs: now, excluding: activeAlive ? nil : active).first {
                guard mayFailureSwitch(now) else {
                    pendingPath = nil
                    transition(.degraded, .switchRateLimited, now, &out)
                    return
                }
                pendingPath = best.id
                pendingSentMs = now
                out.append(.sendReattach(path: best.id, reason: recoveryReason ?? .probeTimeout, bindingVersion: bindingVersion))
            } else {
                pendingPath = nil
            }
            if let since = troubleSinceMs, now >= since + policy.maxRecoveryWindowMs, machine.state == .recovering {
                pendingPath = nil
                transition(.degraded, .recoveryWindowExceeded, now, &out)
            }
        case .degraded:
            if let ai = activeIndex, activeAlive, volatility(paths[ai], now) == nil, isStable(paths[ai], now) {
                transition(.attached, .stabilityRestored, now, &out)
                troubleSinceMs = nil
                volatileSinceMs = nil
                return
            }
            let activeBad = !activeAlive || (activeIndex.map { volatility(paths[$0], now) != nil } ?? true)
            if activeBad, now >= degradedRetryMs,
               let best = ranked(nowMs: now, excluding: active).first(where: { volatility($0, now) == nil }),
               mayFailureSwitch(now) {
                degradedRetryMs = now + max(policy.switchCooldownMs, policy.probeIntervalMs)
                if troubleSinceMs == nil { troubleSinceMs = now }
                recoveryReason = .candidateAvailable
                transition(.recovering, .candidateAvailable, now, &out)
                pendingPath = best.id
                pendingSentMs = now
                out.append(.sendReattach(path: best.id, reason: .candidateAvailable, bindingVersion: bindingVersion))
            }
        }
    }

    /// Failure-driven: into RECOVERING at once and REATTACH on the best other candidate.
    private mutating func beginRecovery(_ reason: ReasonCode, _ now: UInt64, _ out: inout [OrchestratorAction]) {
        switch machine.state {
        case .attached, .volatile, .degraded:
            break
        case .birth, .recovering, .terminated:
            if machine.state == .recovering, pendingPath == active { pendingPath = nil }
            return
        }
        troubleSinceMs = troubleSinceMs ?? now
        if machine.state == .degraded && troubleSinceMs == nil { troubleSinceMs = now }
        recoveryReason = reason
        transition(.recovering, reason, now, &out)
        pendingPath = nil
        if let best = ranked(nowMs: now, excluding: active).first {
            guard mayFailureSwitch(now) else {
                transition(.degraded, .switchRateLimited, now, &out)
                return
            }
            pendingPath = best.id
            pendingSentMs = now
            out.append(.sendReattach(path: best.id, reason: reason, bindingVersion: bindingVersion))
        }
    }

    private mutating func startReattach(to id: UInt32, reason: ReasonCode, _ now: UInt64, _ out: inout [OrchestratorAction]) {
        recoveryReason = reason
        transition(.recovering, reason, now, &out)
        pendingPath = id
        pendingSentMs = now
        out.append(.sendReattach(path: id, reason: reason, bindingVersion: bindingVersion))
    }

    private mutating func switchesInLastMinute(_ now: UInt64) -> Int {
        switchTimes.removeAll { $0 + 60_000 <= now }
        return switchTimes.count
    }

    private mutating func mayFailureSwitch(_ now: UInt64) -> Bool {
        switchesInLastMinute(now) < policy.maxSwitchesPerMinute
    }

    private mutating func mayPolicySwitch(_ now: UInt64) -> Bool {
        guard mayFailureSwitch(now) else { return false }
        if let last = lastSwitchMs, now < last + policy.switchCooldownMs { return false }
        return true
    }

    private mutating func end(_ reason: ReasonCode, _ now: UInt64, _ out: inout [OrchestratorAction]) {
        transition(.terminated, reason, now, &out)
        pendingPath = nil
        out.append(.terminated(reason, restart: policy.restartOnTerminate))
    }

    private mutating func transition(_ to: SessionState, _ reason: ReasonCode, _ now: UInt64, _ out: inout [OrchestratorAction]) {
        switch machine.transition(to: to, reason: reason, now: now) {
        case .applied(let c): out.append(.stateChanged(c))
        case .rejected(let a): out.append(.audit(a))
        }
    }
}
