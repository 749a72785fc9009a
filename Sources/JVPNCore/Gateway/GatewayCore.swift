/// What the daemon must do for the gateway core, in order.
public enum GatewayAction<Address: Hashable & Sendable>: Equatable, Sendable {
    /// Seal `message` with the peer's current session keys and send it to `to`. A probe reply is
    /// padded to `paddedTo` bytes (the probe's size), so a path's MTU can be probed both ways.
    case send(peer: Int, ControlMessage, to: Address, paddedTo: Int)
    /// The data plane's view of this peer changed (its destination, or the path MTU towards it, or
    /// it has none now): republish.
    case bindingChanged(peer: Int)
    /// The pending handshake of `session` was confirmed: its keys become the session's keys.
    case sessionOpened(peer: Int, SessionID)
    /// The unconfirmed handshake of `session` expired or was replaced: drop its keys.
    case pendingDropped(peer: Int, SessionID)
    case stateChanged(peer: Int, SessionID, StateChange)
    case switched(peer: Int, SessionID, from: Address?, to: Address, reason: ReasonCode, recoveryMs: UInt64)
    case security(peer: Int, SessionID?, ReasonCode, remote: Address)
    case audit(peer: Int, SessionID?, AuditRecord)
    // Cluster only (a core without `ClusterOwnership` never emits these):
    /// Send this request to the cluster store; its answer comes back through `storeAnswered`.
    case store(StoreRequest)
    /// The store recorded the initiation held for `session` (`InitiationDecision.awaitStore`):
    /// answer it now, exactly as `respondNewSession`, or with `rekey` as `respondRekey` (a resume
    /// of the session live here, answered once the store confirmed it is still this node's).
    case respondHeld(peer: Int, SessionID, rekey: Bool)
    /// The initiation held for `session` is refused: forget it (nothing is sent).
    case dropHeld(peer: Int, SessionID)
    /// The session changed owner (OWNERSHIP_CHANGE on this node).
    case ownershipChanged(peer: Int, SessionID, OwnershipChange<Address>)
    /// A resumed session arrived here from `fromNode` and is bound at `to` (TRANSPORT_SWITCH).
    case arrived(peer: Int, SessionID, fromNode: String, to: Address, reason: ReasonCode)
    /// This node no longer serves the session (another owns it, or this node lost the store): drop
    /// its keys and withdraw its addresses from the LAN.
    case released(peer: Int, SessionID)
}

/// One ownership change as the event log tells it.
public struct OwnershipChange<Address: Hashable & Sendable>: Equatable, Sendable {
    public var fromNode: String
    /// Empty when this node let the session go without knowing who has it (lost the store).
    public var toNode: String
    public var bindingVersion: UInt64
    public var reason: ReasonCode
    /// Where the releasing node had the session bound (its TRANSPORT_SWITCH's from_path).
    public var boundAt: Address?
}

/// How the daemon answers an authenticated initiation.
public enum InitiationDecision: Equatable, Sendable {
    /// Respond; the new keys rekey the live session (they become its unconfirmed `next`).
    case respondRekey
    /// Respond; the keys belong to a new session that opens only when the client confirms them.
    case respondNewSession
    /// Answer nothing.
    case drop(ReasonCode)
    /// Cluster: hold the initiation until the store has recorded it (`respondHeld`) or refused it
    /// (`dropHeld`); a newer initiation of the same peer for the same session replaces the held one.
    case awaitStore
}

/// Counters of what the core refused without an event per packet.
public struct GatewayCoreCounters: Equatable, Sendable {
    public var controlRateLimited: UInt64 = 0
    public var amplificationLimited: UInt64 = 0
    public var staleInitiations: UInt64 = 0
    public var futureInitiations: UInt64 = 0
}

/// The gateway's decisions, sans I/O: handshake acceptance, session confirmation and binding,
/// REATTACH validation (DESIGN's order, then path validation), idempotent answers, rate limits,
/// anti-amplification and TTLs. Facts in (authenticated messages with where they came from, time),
/// actions out. The daemon does the crypto and the sockets; this owns every session's state.
/// Peers are numbered as in the configuration. Deterministic for a given seed.
public struct GatewayCore<Address: Hashable & Sendable>: Equatable, Sendable {
    public static var initialBindingVersion: UInt64 { 1 }

    struct PendingHandshake: Equatable, Sendable {
        var session: SessionID
        var respondedTo: Address
        var atMs: UInt64
        /// A resume taken over from another node: its name and the client's reason.
        var resumedFrom: (node: String, reason: ReasonCode)?
        /// Cluster: a resume of the session live on this node, which rekeys it once recorded.
        var rekeysLiveSession = false

        static func == (a: PendingHandshake, b: PendingHandshake) -> Bool {
            a.session == b.session && a.respondedTo == b.respondedTo && a.atMs == b.atMs
                && a.resumedFrom?.node == b.resumedFrom?.node && a.resumedFrom?.reason == b.resumedFrom?.reason
                && a.rekeysLiveSession == b.rekeysLiveSession
        }
    }

    struct Peer: Equatable, Sendable {
        var newestTimestamp: Timestamp12?
        var session: GatewaySession<Address>?
        var pending: PendingHandshake?
        /// Removed from the config (reload): nothing opens a session for it again. Its number is
        /// never reused, so a fact about the old peer can never reach a new one.
        var removed = false
        /// Cluster: the initiation held while the store records it.
        var awaiting: PendingHandshake?
    }

    public private(set) var policy: PolicyConfig
    var peers: GatewayPeerTable<Address>
    var random: SeededRandom
    private var controlGlobal: TokenBucket
    public internal(set) var securityLimiter: SecurityEventLimiter
    public internal(set) var counters = GatewayCoreCounters()
    var latestMs: UInt64 = 0
    /// Session ownership in a cluster store; nil for a standalone gateway (nothing below changes).
    public internal(set) var cluster: ClusterOwnership?

    public init(policy: PolicyConfig, peerCount: Int, seed: UInt64, nowMs: UInt64, cluster: ClusterOwnership? = nil) {
        self.policy = policy
        self.cluster = cluster
        peers = GatewayPeerTable(count: peerCount, policy: policy)
        random = SeededRandom(seed: seed)
        controlGlobal = TokenBucket(capacity: GatewayLimits.controlGlobalBurst, refillPerSecond: GatewayLimits.controlGlobalPerSecond,
                                    nowMs: nowMs)
        securityLimiter = SecurityEventLimiter(nowMs: nowMs)
        latestMs = nowMs
    }

    /// Facts may carry clock readings from other threads, slightly older than one already seen.
    mutating func clock(_ now: UInt64) -> UInt64 {
        latestMs = max(latestMs, now)
        return latestMs
    }

    public func session(ofPeer peer: Int) -> GatewaySession<Address>? {
        peer >= 0 && peer < peers.count ? peers[peer].session : nil
    }

    public func pendingSession(ofPeer peer: Int) -> SessionID? {
        peer >= 0 && peer < peers.count ? peers[peer].pending?.session : nil
    }

    public var peerCount: Int { peers.count }

    // MARK: reload

    /// A changed `[Policy]`: TTLs apply from the next tick, `MaxSwitchesPerMinute` to live sessions
    /// at once (their last minute's switches still count).
    public mutating func setPolicy(_ new: PolicyConfig) {
        policy = new
        peers.setTtls(new)
        for i in peers.indices where peers[i].session != nil {
            peers[i].session!.switchBudget.setLimit(new.maxSwitchesPerMinute)
        }
    }

    /// A peer added to the config: its number (the next one; numbers are never reused).
    /// `publicKey` (base64) names it in a cluster's records.
    public mutating func addPeer(publicKey: String = "") -> Int {
        peers.append(Peer())
        cluster?.peerKeys.append(publicKey)
        return peers.count - 1
    }

    /// A peer removed from the config: its pending handshake is dropped, its live session ends
    /// with `reason` (the client is told on its bound path), and nothing opens a session for it again.
    public mutating func removePeer(_ peer: Int, reason: ReasonCode, nowMs: UInt64) -> [GatewayAction<Address>] {
        let now = clock(nowMs)
        var out: [GatewayAction<Address>] = []
        guard peer >= 0 && peer < peers.count, !peers[peer].removed else { return out }
        peers[peer].removed = true
        if let p = peers[peer].pending {
            peers[peer].pending = nil
            out.append(.pendingDropped(peer: peer, p.session))
        }
        if var s = peers[peer].session, s.isLive {
            if let b = s.bound { out.append(.send(peer: peer, .close(reason: reason), to: b, paddedTo: 0)) }
            end(&s, peer, reason, now, &out)
            peers[peer].session = s
        }
        return out
    }

    // MARK: handshake

    /// An initiation that the handshake crypto authenticated as `peer`'s, from `from`. `resume`: the
    /// client asks to continue `session` (InitiationFlags), with its reason for moving.
    public mutating func initiation(peer: Int, session sid: SessionID, timestamp: Timestamp12, wallNs: UInt64,
                                    from: Address, nowMs: UInt64, resume: ReasonCode? = nil) -> (InitiationDecision, [GatewayAction<Address>]) {
        let now = clock(nowMs)
        var out: [GatewayAction<Address>] = []
        guard peer >= 0 && peer < peers.count, !peers[peer].removed else { return (.drop(.unknownSession), out) }
        // Replays and reordered old initiations never reset anything (strictly newer only).
        if let newest = peers[peer].newestTimestamp, timestamp <= newest {
            counters.staleInitiations += 1
            securityEvent(peer, .replayDetected, from, now, &out)
            return (.drop(.replayDetected), out)
        }
        let wallSeconds = Timestamp12(unixNanoseconds: wallNs + GatewayLimits.maxFutureTimestampNs)
        guard timestamp <= wallSeconds else {
            // Accepting it would lock the peer out until its clock caught up with this one.
            counters.futureInitiations += 1
            securityEvent(peer, .replayDetected, from, now, &out)
            return (.drop(.replayDetected), out)
        }
        // A session id belongs to the peer that created it: no other key may claim it.
        if let owner = peers.owner(of: sid), owner != peer {
            out.append(.audit(peer: peer, sid, AuditRecord(check: "session_owner", result: "fail",
                                                           detail: "session \(sid.hex) belongs to peer #\(owner)")))
            securityEvent(peer, .ownershipConflict, from, now, &out)
            return (.drop(.ownershipConflict), out)
        }
        if cluster != nil, resume != nil, let s = peers[peer].session, s.id == sid, s.isLive {
            // A resume of the session served here: the client may have been on another node since,
            // and this node's copy of the record may be stale (cut off from the store while its
            // lease holds), so only a compare-and-swap on the record can keep the session here.
            return clusterInitiation(peer: peer, session: sid, timestamp: timestamp, wallNs: wallNs, from: from, now: now,
                                     resume: resume, &out)
        }
        if let s = peers[peer].session, s.id == sid {
            peers[peer].newestTimestamp = timestamp
            // TERMINATED is final for a session id: its client learns it from the answers to its
            // frames and starts a new session.
            return s.isLive ? (.respondRekey, out) : (.drop(.unknownSession), out)
        }
        if cluster != nil {
            return clusterInitiation(peer: peer, session: sid, timestamp: timestamp, wallNs: wallNs, from: from, now: now,
                                     resume: resume, &out)
        }
        peers[peer].newestTimestamp = timestamp
        if resume != nil {
            // A standalone gateway has nothing to resume that it does not hold.
            out.append(.audit(peer: peer, sid, AuditRecord(check: "ownership", result: "fail",
                                                           detail: "resume of session \(sid.hex), which this gateway does not hold")))
            return (.drop(.unknownSession), out)
        }
        if let old = peers[peer].pending, old.session != sid {
            out.append(.pendingDropped(peer: peer, old.session))
        }
        // The live session, if any, stays until the client confirms the new one.
        peers[peer].pending = PendingHandshake(session: sid, respondedTo: from, atMs: now)
        return (.respondNewSession, out)
    }

    /// The first frame authenticated on the pending session's keys arrived from `from`: the client
    /// holds the keys, so it received the response; the session opens and binds where it is.
    public mutating func confirmed(peer: Int, session sid: SessionID, from: Address, bytes: Int,
                                   nowMs: UInt64) -> [GatewayAction<Address>] {
        let now = clock(nowMs)
        var out: [GatewayAction<Address>] = []
        guard peer >= 0 && peer < peers.count, let pending = peers[peer].pending, pending.session == sid else { return out }
        peers[peer].pending = nil
        if var old = peers[peer].session, old.isLive {
            out.append(.audit(peer: peer, old.id, AuditRecord(check: "session_owner", result: "pass",
                                                               detail: "peer confirmed session \(sid.hex); previous session ends")))
            end(&old, peer, .peerClosed, now, &out)
            peers[peer].session = old
        }
        var s = GatewaySession<Address>(id: sid, policy: policy, nowMs: now,
                                        bindingVersion: cluster?.records[sid]?.record.bindingVersion ?? GatewayCore.initialBindingVersion)
        transition(&s, peer, .attached, .handshakeOK, now, &out)
        if from == pending.respondedTo {
            // The response went there and the client answered with its keys: validated.
            s.validation.markValidated(from, nowMs: now)
            s.bound = from
        } else {
            s.heard(from, bytes: bytes, nowMs: now)
            challengeIfDue(&s, peer, from, now, &out)
        }
        if let moved = pending.resumedFrom, let b = s.bound {
            out.append(.arrived(peer: peer, sid, fromNode: moved.node, to: b, reason: moved.reason))
        }
        peers[peer].session = s
        out.insert(.sessionOpened(peer: peer, sid), at: 0)
        out.append(.bindingChanged(peer: peer))
        return out
    }

    // MARK: authenticated frames

    /// An authenticated, fresh control message on `peer`'s session keys, from `from`, `bytes` long
    /// (the whole datagram, for the amplification allowance).
    public mutating func control(peer: Int, _ message: ControlMessage, from: Address, bytes: Int,
                                 nowMs: UInt64) -> [GatewayAction<Address>] {
        let now = clock(nowMs)
        var out: [GatewayAction<Address>] = []
        guard peer >= 0 && peer < peers.count, var s = peers[peer].session else { return out }
        var global = controlGlobal
        guard s.controlBucket.take(nowMs: now), global.take(nowMs: now) else {
            counters.controlRateLimited += 1
            peers[peer].session = s
            return out
        }
        controlGlobal = global
        defer { peers[peer].session = s }
        s.heard(from, bytes: bytes, nowMs: now)
        guard s.isLive else {
            answerEnded(&s, peer, message, from, now, &out)
            return out
        }
        if from == s.bound { s.lastAuthenticatedMs = now }
        switch message {
        case .probe(let seq, let sentAt, let pathID):
            // Probes may use any path: answer where it came from, as large as it was.
            send(&s, peer, .probeReply(seq: seq, sentAtNs: sentAt, pathID: pathID), to: from, paddedTo: bytes - 32, now, &out)
            challengeIfDue(&s, peer, from, now, &out)
        case .reattachRequest(let sid, let version, _, let nonce, let reason):
            reattach(&s, peer, sid, version, nonce, reason, from, now, &out)
        case .pathResponse(let data):
            guard s.validation.responded(from, data: data, nowMs: now) else { return out }
            if s.bound == nil {
                // The handshake was confirmed from an address its response did not go to: now that
                // the client proved it receives there, the session binds there (version unchanged).
                s.bound = from
                s.lastAuthenticatedMs = now
                out.append(.bindingChanged(peer: peer))
            } else if let p = s.pendingReattach, p.address == from {
                s.pendingReattach = nil
                if p.version == s.bindingVersion {
                    bind(&s, peer, from, nonce: p.nonce, reason: p.reason, now, &out)
                } else {
                    reject(&s, peer, .staleVersion, p.nonce, to: from, now, &out)
                }
            }
        case .close(let reason):
            out.append(.audit(peer: peer, s.id, AuditRecord(check: "peer_close", result: "pass",
                                                             detail: "peer closed with \(reason.rawValue)")))
            end(&s, peer, .peerClosed, now, &out)
        case .pathMtu(let pathID, let size):
            // The client measured what the path from `from` carries both ways: kept by address (a
            // later REATTACH there fits at once), applied now if it is the bound one, and receipted
            // every time (the client repeats the report until the receipt arrives).
            if s.pathMtus.record(from, maxDatagram: Int(size), bound: s.bound, nowMs: now), from == s.bound {
                out.append(.bindingChanged(peer: peer))
            }
            send(&s, peer, .pathMtuAck(pathID: pathID, maxDatagram: size), to: from, paddedTo: 0, now, &out)
        case .probeReply, .reattachAck, .reject, .natHint, .pathChallenge, .pathMtuAck:
            break // the client's messages only
        }
        return out
    }

    /// Authenticated data from an address other than the bound one (a late packet from before a
    /// switch, or a NAT's new mapping). Never moves the session: at most a hint, at most 1/s.
    public mutating func dataFromUnbound(peer: Int, from: Address, bytes: Int, natHint: NATHint?,
                                         nowMs: UInt64) -> [GatewayAction<Address>] {
        let now = clock(nowMs)
        var out: [GatewayAction<Address>] = []
        guard peer >= 0 && peer < peers.count, var s = peers[peer].session, s.isLive else { return out }
        defer { peers[peer].session = s }
        s.heard(from, bytes: bytes, nowMs: now)
        guard let natHint, s.lastHintMs.map({ elapsedMs(now, since: $0) >= GatewayLimits.hintIntervalMs }) ?? true else { return out }
        s.lastHintMs = now
        send(&s, peer, .natHint(natHint), to: from, paddedTo: 0, now, &out)
        return out
    }

    /// A control frame on `peer`'s keys failed its proof or its freshness check. Counted by the
    /// daemon; reported only through the security-event limiter.
    public mutating func controlRefused(peer: Int, reason: ReasonCode, from: Address, nowMs: UInt64) -> [GatewayAction<Address>] {
        let now = clock(nowMs)
        var out: [GatewayAction<Address>] = []
        guard peer >= 0 && peer < peers.count else { return out }
        securityEvent(peer, reason, from, now, &out)
        return out
    }

    // MARK: time and operator

    public mutating func tick(nowMs: UInt64) -> [GatewayAction<Address>] {
        let now = clock(nowMs)
        var out: [GatewayAction<Address>] = []
        // Only the peers whose timers may be due: a tick costs nothing per idle session.
        for peer in peers.indices where peers.wakeMs[peer] <= now {
            if let p = peers[peer].pending, elapsedMs(now, since: p.atMs) > GatewayLimits.pendingLifetimeMs {
                peers[peer].pending = nil
                out.append(.pendingDropped(peer: peer, p.session))
                forgetUnconfirmed(p.session, &out)
            }
            guard var s = peers[peer].session, s.isLive else { continue }
            if let r = s.pendingReattach, elapsedMs(now, since: r.atMs) > GatewayLimits.pendingLifetimeMs {
                s.pendingReattach = nil
            }
            if elapsedMs(now, since: s.lastAuthenticatedMs) > policy.transportLossTtlMs {
                end(&s, peer, .transportLossTTLExpired, now, &out)
            } else if elapsedMs(now, since: s.startedMs) > policy.sessionTtlMs {
                end(&s, peer, .sessionTTLExpired, now, &out)
            }
            peers[peer].session = s
        }
        clusterTick(now, &out)
        return out
    }

    /// Ends every live session with `reason`, telling each client on its bound path.
    /// In a cluster the sessions are not ended: this node lets them go (their records stay) and each
    /// client resumes on another gateway.
    public mutating func shutdown(reason: ReasonCode, nowMs: UInt64) -> [GatewayAction<Address>] {
        let now = clock(nowMs)
        var out: [GatewayAction<Address>] = []
        if cluster != nil {
            releaseAll(reason: reason, now, &out)
            return out
        }
        for peer in peers.indices {
            guard var s = peers[peer].session, s.isLive else { continue }
            if let b = s.bound { out.append(.send(peer: peer, .close(reason: reason), to: b, paddedTo: 0)) }
            end(&s, peer, reason, now, &out)
            peers[peer].session = s
        }
        return out
    }

    // MARK: REATTACH

    /// DESIGN's order (existence, proof, freshness, compare-and-swap, rate limit; proof and freshness
    /// were checked before the message was decoded), with the answers that make retries converge:
    /// the same request gets the same answer, a request for the path already bound is acknowledged,
    /// a stale version is told the current one. Only a validated address is bound.
    private mutating func reattach(_ s: inout GatewaySession<Address>, _ peer: Int, _ sid: SessionID, _ version: UInt64,
                                   _ nonce: ControlNonce, _ reason: ReasonCode, _ from: Address, _ now: UInt64,
                                   _ out: inout [GatewayAction<Address>]) {
        guard sid == s.id else { return reject(&s, peer, .unknownSession, nonce, to: from, now, &out) }
        if from == s.bound {
            // A retry whose ACK was lost, or a client that is already where it asks to be: the
            // binding is what it wants, so it learns the current version. A move it asked for
            // earlier and still waiting for its address's validation is one it has given up: it
            // must not be applied when that address answers later.
            if let p = s.pendingReattach, p.nonce != nonce { s.pendingReattach = nil }
            let v = s.lastApplied?.nonce == nonce ? s.lastApplied!.version : s.bindingVersion
            send(&s, peer, .reattachAck(sessionID: s.id, bindingVersion: v, nonce: nonce), to: from, paddedTo: 0, now, &out)
            return
        }
        guard version == s.bindingVersion else { return reject(&s, peer, .staleVersion, nonce, to: from, now, &out) }
        guard s.switchBudget.allows(nowMs: now) else { return reject(&s, peer, .rateLimited, nonce, to: from, now, &out) }
        guard s.validation.isValidated(from, nowMs: now) else {
            s.pendingReattach = GatewaySession.PendingReattach(nonce: nonce, version: version, reason: reason, address: from, atMs: now)
            challengeIfDue(&s, peer, from, now, &out)
            return
        }
        bind(&s, peer, from, nonce: nonce, reason: reason, now, &out)
    }

    private mutating func bind(_ s: inout GatewaySession<Address>, _ peer: Int, _ to: Address, nonce: ControlNonce,
                               reason: ReasonCode, _ now: UInt64, _ out: inout [GatewayAction<Address>]) {
        let old = s.bound
        // The gateway cannot see when the client lost its path: its recovery time is the gap since
        // the last authenticated packet on the old binding.
        let recoveryMs = elapsedMs(now, since: s.lastAuthenticatedMs)
        s.switchBudget.record(nowMs: now)
        s.bound = to
        s.bindingVersion += 1
        s.lastApplied = GatewaySession.AppliedReattach(nonce: nonce, version: s.bindingVersion)
        s.lastAuthenticatedMs = now
        s.switches += 1
        if s.state != .recovering { transition(&s, peer, .recovering, reason, now, &out) }
        transition(&s, peer, .attached, .reattachOK, now, &out)
        out.append(.switched(peer: peer, s.id, from: old, to: to, reason: reason, recoveryMs: recoveryMs))
        out.append(.bindingChanged(peer: peer))
        send(&s, peer, .reattachAck(sessionID: s.id, bindingVersion: s.bindingVersion, nonce: nonce), to: to, paddedTo: 0, now, &out)
    }

    private mutating func reject(_ s: inout GatewaySession<Address>, _ peer: Int, _ reason: ReasonCode, _ nonce: ControlNonce,
                                 to: Address, _ now: UInt64, _ out: inout [GatewayAction<Address>]) {
        sessionSecurityEvent(&s, peer, reason, to, now, &out)
        send(&s, peer, .reject(reason: reason, nonce: nonce, bindingVersion: s.bindingVersion), to: to, paddedTo: 0, now, &out)
    }

    /// A client still using the keys of an ended session learns that it ended (at most 1/s), so it
    /// starts a new one at once instead of waiting for its own timeouts.
    private mutating func answerEnded(_ s: inout GatewaySession<Address>, _ peer: Int, _ message: ControlMessage, _ from: Address,
                                      _ now: UInt64, _ out: inout [GatewayAction<Address>]) {
        guard s.lastCloseMs.map({ elapsedMs(now, since: $0) >= GatewayLimits.hintIntervalMs }) ?? true else { return }
        switch message {
        case .reattachRequest(_, _, _, let nonce, _):
            s.lastCloseMs = now
            send(&s, peer, .reject(reason: .unknownSession, nonce: nonce, bindingVersion: s.bindingVersion), to: from, paddedTo: 0, now, &out)
        case .probe:
            s.lastCloseMs = now
            send(&s, peer, .close(reason: s.endReason ?? .peerClosed), to: from, paddedTo: 0, now, &out)
        case .probeReply, .reattachAck, .reject, .close, .natHint, .pathChallenge, .pathResponse, .pathMtu, .pathMtuAck:
            break
        }
    }

    // MARK: helpers

    private mutating func challengeIfDue(_ s: inout GatewaySession<Address>, _ peer: Int, _ a: Address, _ now: UInt64,
                                         _ out: inout [GatewayAction<Address>]) {
        var rng = random
        guard let data = s.validation.challengeDue(a, nowMs: now, fresh: { rng.next() }) else { return }
        random = rng
        send(&s, peer, .pathChallenge(data: data), to: a, paddedTo: 0, now, &out)
    }

    /// Every send to an address goes through the amplification allowance.
    private mutating func send(_ s: inout GatewaySession<Address>, _ peer: Int, _ m: ControlMessage, to: Address, paddedTo: Int,
                               _ now: UInt64, _ out: inout [GatewayAction<Address>]) {
        let size = max(m.encodedLength, paddedTo) + 32
        guard s.validation.maySend(to, bytes: size, nowMs: now) else {
            counters.amplificationLimited += 1
            return
        }
        out.append(.send(peer: peer, m, to: to, paddedTo: paddedTo))
    }

    private mutating func end(_ s: inout GatewaySession<Address>, _ peer: Int, _ reason: ReasonCode, _ now: UInt64,
                              _ out: inout [GatewayAction<Address>]) {
        transition(&s, peer, .terminated, reason, now, &out)
        s.endReason = reason
        s.pendingReattach = nil
        out.append(.bindingChanged(peer: peer))
        recordEnd(s.id, reason: reason, &out)
    }

    mutating func transition(_ s: inout GatewaySession<Address>, _ peer: Int, _ to: SessionState, _ reason: ReasonCode,
                                     _ now: UInt64, _ out: inout [GatewayAction<Address>]) {
        switch s.machine.transition(to: to, reason: reason, now: now) {
        case .applied(let c): out.append(.stateChanged(peer: peer, s.id, c))
        case .rejected(let a): out.append(.audit(peer: peer, s.id, a))
        }
    }

    private mutating func sessionSecurityEvent(_ s: inout GatewaySession<Address>, _ peer: Int, _ reason: ReasonCode, _ remote: Address,
                                               _ now: UInt64, _ out: inout [GatewayAction<Address>]) {
        var suppressed = s.securityEventsSuppressed
        var bucket = s.securityBucket
        let admitted = securityLimiter.admit(session: &bucket, suppressed: &suppressed, nowMs: now)
        s.securityBucket = bucket
        s.securityEventsSuppressed = suppressed
        if admitted { out.append(.security(peer: peer, s.id, reason, remote: remote)) }
    }

    mutating func securityEvent(_ peer: Int, _ reason: ReasonCode, _ remote: Address, _ now: UInt64,
                                        _ out: inout [GatewayAction<Address>]) {
        if var s = peers[peer].session {
            sessionSecurityEvent(&s, peer, reason, remote, now, &out)
            peers[peer].session = s
        } else {
            var bucket = SecurityEventLimiter.sessionBucket(nowMs: now)
            var ignored: UInt64 = 0
            if securityLimiter.admit(session: &bucket, suppressed: &ignored, nowMs: now) {
                out.append(.security(peer: peer, nil, reason, remote: remote))
            }
        }
    }
}
