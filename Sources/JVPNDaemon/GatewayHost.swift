import JVPNCore
import JVPNSystem

/// The gateway: one UDP socket and its TCP listeners, many peers, one session per peer. A session is
/// bound to a `TransportAddress`: a UDP source address, or one TCP connection. Every decision (handshake
/// acceptance, confirmation, binding, REATTACH, path validation, limits, TTLs) is the pure
/// `GatewayCore`'s, which owns each session's state; this class does the crypto and the sockets,
/// keeps the keys, and performs the core's actions.
final class GatewayHost: SessionHost, PumpController, @unchecked Sendable {
    private var byKey: [PublicKey: PeerRuntime] = [:]
    private var core: GatewayCore<TransportAddress>
    /// Keys of a new session per peer, until the client confirms them (the core names the session).
    private var pendingKeypairs: [Int: Keypair] = [:]
    /// Cluster: initiations waiting for the store to record them, per peer (the newest only).
    private var heldInitiations: [Int: (initiation: ReceivedInitiation, path: TransportAddress)] = [:]
    /// Cluster: where store requests go, and the LAN side of ownership. nil for a standalone gateway.
    var cluster: ClusterLink?

    override init(config: JVPNConfig, privateKey: PrivateKey, events: EventEmitter, workers: Int = 1) throws {
        let clusterState = try config.cluster.map { c in
            ClusterOwnership(node: c.nodeId, peerKeys: try config.peers.map { try PublicKey(base64: $0.publicKey).base64 },
                             leaseTtlMs: UInt64(c.leaseTtlS) * 1000)
        }
        core = GatewayCore(policy: config.policy, peerCount: config.peers.count, seed: UInt64.random(in: 0...UInt64.max),
                           nowMs: Clock.monotonicMilliseconds(), cluster: clusterState)
        try super.init(config: config, privateKey: privateKey, events: events, workers: workers)
        for p in peers { byKey[p.publicKey] = p }
    }

    override func sendPath(for p: PeerRuntime) -> TransportAddress? {
        guard let s = core.session(ofPeer: p.index), s.isLive else { return nil }
        return s.bound
    }

    /// What the client reported for the bound path (PATH_MTU), nil before its report.
    override func innerPacketLimit(for p: PeerRuntime) -> Int? {
        core.session(ofPeer: p.index)?.boundMaxDatagram.map { $0 - Frame.overhead }
    }

    override func receiveState(of p: PeerRuntime) -> PeerReceiveState {
        let s = core.session(ofPeer: p.index)
        return PeerReceiveState(hasSession: s != nil, isEnded: s?.isLive == false, checksBoundSource: true,
                                boundSource: s?.bound,
                                pendingKeypair: pendingKeypairs[p.index])
    }

    /// Status of one peer's session, nil when it has none (or it ended over an hour ago).
    func sessionStatus(_ p: PeerRuntime, nowMs: UInt64) -> GatewaySession<TransportAddress>? {
        guard let s = core.session(ofPeer: p.index) else { return nil }
        if !s.isLive && elapsedMs(nowMs, since: s.machine.enteredAtMs) > 3_600_000 { return nil }
        return s
    }

    var securityEventsSuppressed: UInt64 { lock.withLock { core.securityLimiter.suppressedTotal } }

    // MARK: facts from the packet threads

    /// An initiation, on the worker. The public-key work (authenticating it, building the response)
    /// runs outside the host lock, which is taken only to decide and to install the keys: the
    /// worker's own queued control facts, the tick and status never wait for a Diffie-Hellman.
    func handleHandshake(_ bytes: UnsafeRawBufferPointer, from path: TransportAddress) {
        guard bytes.count > 0, bytes[0] == MessageType.initiation.rawValue else { return }
        // Unknown or unauthorised keys fail here and get nothing back.
        guard let received = try? Handshake.consumeInitiation(bytes, local: privateKey,
                                                             isAuthorized: { key in self.lock.withLock { self.byKey[key] != nil } })
        else { return }
        let nowMs = Clock.monotonicMilliseconds()
        let answer: (peer: PeerRuntime, rekey: Bool, index: UInt32)? = lock.withLock {
            guard let p = byKey[received.peer] else { return nil }
            let (decision, actions) = core.initiation(peer: p.index, session: received.sessionID, timestamp: received.timestamp,
                                                      wallNs: Clock.wallNanoseconds(), from: path, nowMs: nowMs,
                                                      resume: InitiationFlags(word: received.flags).resume)
            if case .drop(let why) = decision, why == .replayDetected { p.counters.rejectedReplay.add(1, ordering: .relaxed) }
            // Held before the actions run: the store's answer may come back at any time after them.
            if decision == .awaitStore { heldInitiations[p.index] = (received, path) }
            perform(actions, nowMs: nowMs)
            switch decision {
            case .drop, .awaitStore:
                return nil
            case .respondRekey, .respondNewSession:
                return (p, decision == .respondRekey, freshIndex())
            }
        }
        guard let answer else { return }
        let response = try? received.makeResponse(localIndex: answer.index, now: Clock.monotonicNanoseconds())
        lock.withLock {
            // Only the worker decides on initiations, but a tick, a reload or the store may have
            // moved the peer on meanwhile: keys for a session that is no longer there are dropped.
            guard let (message, keypair) = response, !answer.peer.removed,
                  answer.rekey ? core.session(ofPeer: answer.peer.index).map({ $0.id == received.sessionID && $0.isLive }) ?? false
                               : core.pendingSession(ofPeer: answer.peer.index) == received.sessionID
            else {
                usedIndexes.remove(answer.index)
                return
            }
            install(message, keypair, peer: answer.peer, rekey: answer.rekey, to: path)
        }
    }

    /// Answers an initiation: its keys rekey the live session or wait as the new session's until
    /// the client confirms them. Called under `lock` (a held initiation the store has recorded).
    private func respond(_ received: ReceivedInitiation, peer p: PeerRuntime, rekey: Bool, to path: TransportAddress) {
        let index = freshIndex()
        guard let (message, keypair) = try? received.makeResponse(localIndex: index, now: Clock.monotonicNanoseconds()) else {
            usedIndexes.remove(index)
            return
        }
        install(message, keypair, peer: p, rekey: rekey, to: path)
    }

    /// The response's keys go where they belong and reach the data plane before the response
    /// leaves, so the client's first frame on them is known. Called under `lock`.
    private func install(_ response: [UInt8], _ keypair: Keypair, peer p: PeerRuntime, rekey: Bool, to path: TransportAddress) {
        if rekey {
            install(keypair, in: p.keyRing, nowNs: Clock.monotonicNanoseconds())
        } else {
            if let old = pendingKeypairs[p.index] { usedIndexes.remove(old.localIndex) }
            pendingKeypairs[p.index] = keypair
        }
        republish(peers: CollectionOfOne(p.index))
        publishCollected()
        sendRaw(response, to: path)
    }

    // The receive thread queues these for the worker: the data plane never waits for the host lock.
    var queuesControlFacts: Bool { true }

    /// Facts from the receive thread, on the worker: one hold of the lock for the whole batch.
    func apply(_ next: () -> ControlFact?) {
        lock.withLock { publishingOnce {
            while let fact = next() {
                let nowMs = Clock.monotonicMilliseconds()
                switch fact {
                case .control(let peer, let message, let keypair, let from, let bytes):
                    if pendingKeypairs[peer] === keypair || peers[peer].keyRing.next === keypair {
                        // Keys not confirmed yet (their confirmation found the queue full): this
                        // frame confirms them, as any frame on them does.
                        confirm(peer: peer, keypair: keypair, from: from, bytes: bytes, nowMs: nowMs)
                    } else if peers[peer].keyRing.lookup(localIndex: keypair.localIndex) !== keypair {
                        continue // keys the peer no longer holds: a late frame, meant for a session gone
                    }
                    guard let message else {
                        peers[peer].counters.droppedMalformedControl.add(1, ordering: .relaxed)
                        continue
                    }
                    perform(core.control(peer: peer, message, from: from, bytes: bytes, nowMs: nowMs), nowMs: nowMs)
                case .confirm(let peer, let keypair, let from, let bytes):
                    confirm(peer: peer, keypair: keypair, from: from, bytes: bytes, nowMs: nowMs)
                case .refused(let peer, let reason, let from):
                    perform(core.controlRefused(peer: peer, reason: reason, from: from, nowMs: nowMs), nowMs: nowMs)
                case .unboundSource(let peer, let from, let bytes):
                    let hint = NATHint(address: from.address.addressBytes, port: from.address.port)
                    perform(core.dataFromUnbound(peer: peer, from: from, bytes: bytes, natHint: hint, nowMs: nowMs), nowMs: nowMs)
                case .connectionClosed(let id):
                    // A session bound to it stays bound (its client moves it with a REATTACH, over
                    // another path or a new connection); the data plane stops sending to it.
                    let bound = peers.filter { p in core.session(ofPeer: p.index)?.bound?.via == .tcp(connection: id) }.map(\.index)
                    if !bound.isEmpty { republish(peers: bound) }
                }
            }
        } }
    }

    /// A frame authenticated on keys not yet confirmed: the pending session's (it opens) or a
    /// rekey's (they become current). Called under `lock`; a repeat finds nothing left to confirm.
    private func confirm(peer peerIndex: Int, keypair: Keypair, from: TransportAddress, bytes: Int, nowMs: UInt64) {
        let p = peers[peerIndex]
        if pendingKeypairs[peerIndex] === keypair, let sid = core.pendingSession(ofPeer: peerIndex) {
            perform(core.confirmed(peer: peerIndex, session: sid, from: from, bytes: bytes, nowMs: nowMs), nowMs: nowMs)
            return
        }
        let previous = p.keyRing.previous
        if p.keyRing.receivedAuthenticated(on: keypair, now: Clock.monotonicNanoseconds()) {
            if let previous, p.keyRing.previous !== previous { usedIndexes.remove(previous.localIndex) }
            republish(peers: CollectionOfOne(peerIndex))
        }
    }

    // MARK: time and operator

    /// Timers: key expiry, TTLs, pending handshakes and REATTACHes.
    func tick(nowMs: UInt64) {
        lock.withLock {
            var changed: [Int] = []
            let nowNs = nowMs * 1_000_000
            for p in peers where p.keyRing.mayExpire(now: nowNs) {
                for dropped in p.keyRing.expire(now: nowNs) {
                    usedIndexes.remove(dropped.localIndex)
                    if changed.last != p.index { changed.append(p.index) }
                }
            }
            perform(core.tick(nowMs: nowMs), nowMs: nowMs)
            if !changed.isEmpty { republish(peers: changed) }
        }
    }

    func shutdown(reason: ReasonCode) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock { perform(core.shutdown(reason: reason, nowMs: nowMs), nowMs: nowMs) }
    }

    /// Applies a reload: removed peers' sessions end with OPERATOR_REQUEST (their clients are told,
    /// and told again while they keep using the old keys), changed peers get their new AllowedIPs
    /// with their sessions untouched (same id, same keys, no packet lost), added peers may
    /// handshake at once; the new policy applies to every session. Each change is an AUDIT_EVENT
    /// (check `config_reload`).
    func applyReload(_ plan: ReloadPlan, config new: JVPNConfig) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            config = new
            core.setPolicy(new.policy)
            var changed = Set<Int>()
            var routesRemoved: [(prefix: IPPrefix, value: Int)] = []
            var routesAdded: [(prefix: IPPrefix, value: Int)] = []
            for change in plan.peers {
                switch change {
                case .removed(let key):
                    guard let pk = try? PublicKey(base64: key), let p = byKey.removeValue(forKey: pk) else { continue }
                    emitAudit(p, AuditRecord(check: "config_reload", result: "pass",
                                             detail: "peer removed from the config; its session ends (OPERATOR_REQUEST)"),
                              session: core.session(ofPeer: p.index)?.id)
                    p.removed = true
                    changed.insert(p.index)
                    routesRemoved += p.config.allowedIPs.map { ($0, p.index) }
                    perform(core.removePeer(p.index, reason: .operatorRequest, nowMs: nowMs), nowMs: nowMs)
                    if let kp = pendingKeypairs.removeValue(forKey: p.index) { usedIndexes.remove(kp.localIndex) }
                case .changed(let pc, let added, let removed):
                    guard let pk = try? PublicKey(base64: pc.publicKey), let p = byKey[pk] else { continue }
                    p.config = pc
                    routesRemoved += removed.map { ($0, p.index) }
                    routesAdded += added.map { ($0, p.index) }
                    emitAudit(p, AuditRecord(check: "config_reload", result: "pass", detail: ReloadPlan.peerDetail(pc, added, removed)),
                              session: core.session(ofPeer: p.index)?.id)
                case .added(let pc):
                    guard let pk = try? PublicKey(base64: pc.publicKey) else { continue }
                    let p = PeerRuntime(index: core.addPeer(publicKey: pk.base64), config: pc, publicKey: pk, workers: workers)
                    precondition(p.index == peers.count, "peer numbers of host and core diverged")
                    peers.append(p)
                    byKey[pk] = p
                    changed.insert(p.index)
                    routesAdded += pc.allowedIPs.map { ($0, p.index) }
                    emitAudit(p, AuditRecord(check: "config_reload", result: "pass",
                                             detail: "peer added, AllowedIPs \(pc.allowedIPs.map(\.description).joined(separator: ", "))"))
                }
            }
            if !plan.policy.isEmpty {
                auditInterface(check: "config_reload", pass: true, detail: "policy: " + plan.policy.joined(separator: ", "))
            }
            dataPlane?.streams.streamPeerCount.store(peers.count, ordering: .relaxed)
            republish(peers: changed, routesRemoved: routesRemoved, routesAdded: routesAdded)
        }
    }

    // MARK: facts from the cluster store (any thread)

    func storeAnswered(session: SessionID, _ result: StoreResult) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock { perform(core.storeAnswered(session: session, result, nowMs: nowMs), nowMs: nowMs) }
    }

    func recordChanged(session: SessionID, _ stored: StoredRecord?, revision: UInt64) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock { perform(core.recordChanged(session: session, stored, revision: revision, nowMs: nowMs), nowMs: nowMs) }
    }

    func leaseRenewed(sentMs: UInt64) {
        lock.withLock { core.leaseRenewed(sentMs: sentMs, nowMs: Clock.monotonicMilliseconds()) }
    }

    func leaseLost() {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock { perform(core.leaseLost(nowMs: nowMs), nowMs: nowMs) }
    }

    /// About once a second: ends not recorded yet, expired records.
    func clusterMaintenance() {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock { perform(core.maintenance(nowMs: nowMs, wallMs: Clock.wallMilliseconds()), nowMs: nowMs) }
    }

    /// What status shows of ownership (nil for a standalone gateway).
    var clusterState: ClusterOwnership? { lock.withLock { core.cluster } }

    /// Live sessions this node serves.
    var ownedSessions: Int { lock.withLock { peers.filter { core.session(ofPeer: $0.index)?.isLive == true }.count } }

    // MARK: actions

    /// Performs the core's actions in order. Called under `lock`. When one of them changed the data
    /// plane's view, republishes every peer the actions name (not only the view-changing ones:
    /// cheap, and safe should a state change alter what the receive side must know).
    private func perform(_ actions: [GatewayAction<TransportAddress>], nowMs: UInt64) {
        var changed = false
        var named = Set<Int>()
        for action in actions {
            if let peer = action.peer { named.insert(peer) }
            switch action {
            case .send(let peer, let message, let to, let paddedTo):
                countReject(message, peers[peer])
                sendControl(message, peer: peers[peer], to: to, paddedTo: paddedTo)
            case .bindingChanged:
                changed = true
            case .sessionOpened(let peer, _):
                let p = peers[peer]
                cluster?.announce(peer: peer, allowedIPs: p.config.allowedIPs)
                releaseIndexes(of: p.keyRing)
                p.keyRing = KeyRing()
                if let kp = pendingKeypairs.removeValue(forKey: peer) {
                    let nowNs = Clock.monotonicNanoseconds()
                    p.keyRing.install(kp, now: nowNs)
                    _ = p.keyRing.receivedAuthenticated(on: kp, now: nowNs)
                }
                p.lastSwitch = nil
                changed = true
            case .pendingDropped(let peer, _):
                if let kp = pendingKeypairs.removeValue(forKey: peer) { usedIndexes.remove(kp.localIndex) }
                changed = true
            case .stateChanged(let peer, let sid, let c):
                emitStateChange(peers[peer], c, session: sid)
                if c.to == .terminated { cluster?.withdraw(peer: peer, allowedIPs: peers[peer].config.allowedIPs) }
            case .switched(let peer, let sid, let from, let to, let reason, let recoveryMs):
                recordSwitch(peers[peer], session: sid, from: from?.description ?? "", to: to.description, reason: reason,
                             recoveryMs: recoveryMs)
            case .security(let peer, let sid, let reason, let remote):
                emitSecurity(peers[peer], reason: reason, remote: remote.address, session: sid)
            case .audit(let peer, let sid, let a):
                emitAudit(peers[peer], a, session: sid)
            case .store(let request):
                cluster?.submit(request)
            case .respondHeld(let peer, let sid, let rekey):
                guard let held = heldInitiations.removeValue(forKey: peer), held.initiation.sessionID == sid else { continue }
                respond(held.initiation, peer: peers[peer], rekey: rekey, to: held.path)
            case .dropHeld(let peer, let sid):
                if heldInitiations[peer]?.initiation.sessionID == sid { heldInitiations[peer] = nil }
            case .ownershipChanged(let peer, let sid, let change):
                emitOwnershipChange(peers[peer], session: sid, change)
            case .arrived(let peer, let sid, let node, let to, let reason):
                recordSwitch(peers[peer], session: sid, from: "node:\(node)", to: to.description, reason: reason, recoveryMs: 0)
            case .released(let peer, _):
                let p = peers[peer]
                releaseIndexes(of: p.keyRing)
                p.keyRing = KeyRing()
                if let kp = pendingKeypairs.removeValue(forKey: peer) { usedIndexes.remove(kp.localIndex) }
                cluster?.withdraw(peer: peer, allowedIPs: p.config.allowedIPs)
                changed = true
            }
        }
        if changed { republish(peers: named) }
    }

    /// OWNERSHIP_CHANGE; on the node that let the session go to a named node, also its
    /// TRANSPORT_SWITCH away from the client's address.
    private func emitOwnershipChange(_ p: PeerRuntime, session: SessionID, _ c: OwnershipChange<TransportAddress>) {
        var e = events.base(.ownershipChange, session: session, peer: p.publicKey)
        e.fromNode = c.fromNode
        e.toNode = c.toNode
        e.bindingVersion = c.bindingVersion
        e.reason = c.reason.rawValue
        events.emit(e)
        if let b = c.boundAt, !c.toNode.isEmpty {
            recordSwitch(p, session: session, from: b.description, to: "node:\(c.toNode)", reason: c.reason, recoveryMs: 0)
        }
    }

    /// The `rejected` counters of status and metrics count the rejects the gateway sends.
    private func countReject(_ message: ControlMessage, _ p: PeerRuntime) {
        guard case .reject(let reason, _, _) = message else { return }
        if reason == .staleVersion { p.counters.rejectedStaleVersion.add(1, ordering: .relaxed) }
        if reason == .rateLimited { p.counters.rejectedRateLimited.add(1, ordering: .relaxed) }
    }
}

extension GatewayAction {
    /// The peer the action is about, nil for a store request.
    fileprivate var peer: Int? {
        switch self {
        case .send(let peer, _, _, _), .bindingChanged(let peer), .sessionOpened(let peer, _), .pendingDropped(let peer, _),
             .stateChanged(let peer, _, _), .switched(let peer, _, _, _, _, _), .security(let peer, _, _, _),
             .audit(let peer, _, _), .respondHeld(let peer, _, _), .dropHeld(let peer, _), .ownershipChanged(let peer, _, _),
             .arrived(let peer, _, _, _, _), .released(let peer, _):
            return peer
        case .store:
            return nil
        }
    }
}
