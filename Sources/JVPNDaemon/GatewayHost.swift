import JVPNCore
import JVPNSystem

/// The gateway: one UDP socket, many peers, one session per peer, each bound to exactly one path
/// that only an authenticated REATTACH (compare-and-swap on binding_version) can move.
final class GatewayHost: SessionHost, PumpController {
    private var byKey: [PublicKey: PeerRuntime] = [:]
    /// Owner, binding and binding_version of every session: the pure table decides REATTACHes.
    private var table: SessionTable<PublicKey, SocketAddress>
    private var securityEventBucket = TokenBucket(capacity: 50, refillPerSecond: 10, nowMs: 0)

    override init(config: JVPNConfig, privateKey: PrivateKey, events: EventEmitter) throws {
        table = SessionTable(maxSwitchesPerMinute: config.policy.maxSwitchesPerMinute, nowMs: Clock.monotonicMilliseconds())
        try super.init(config: config, privateKey: privateKey, events: events)
        for p in peers { byKey[p.publicKey] = p }
    }

    override func sendPath(for p: PeerRuntime) -> (Int, SocketAddress)? {
        guard let b = p.bound else { return nil }
        return (p.boundSocket, b)
    }

    func handleHandshake(_ bytes: UnsafeRawBufferPointer, from: SocketAddress, socketIndex: Int) {
        guard bytes.count > 0, bytes[0] == MessageType.initiation.rawValue else { return }
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            // Unknown or unauthorised keys fail here and get nothing back.
            guard let received = try? Handshake.consumeInitiation(bytes, local: privateKey, isAuthorized: { self.byKey[$0] != nil }),
                  let p = byKey[received.peer] else { return }
            guard replayGuard.accept(peer: received.peer, timestamp: received.timestamp) else {
                p.counters.rejectedReplay.add(1, ordering: .relaxed)
                if securityEventBucket.take(nowMs: nowMs) { securityEvent(p, reason: .replayDetected, remote: from) }
                return
            }
            let index = freshIndex()
            guard let (message, keypair) = try? received.makeResponse(localIndex: index, now: Clock.monotonicNanoseconds()) else {
                usedIndexes.remove(index)
                return
            }
            if p.session == received.sessionID && p.state != .terminated {
                // Rekey of the live session: new keys, same session id, same binding.
                install(keypair, in: p.keyRing, nowNs: Clock.monotonicNanoseconds())
            } else {
                if p.session != nil && p.state != .terminated {
                    audit(p, check: "session_owner", pass: true, detail: "peer opened session \(received.sessionID.hex); previous session ends")
                    transition(p, to: .terminated, reason: .peerClosed, nowMs: nowMs)
                }
                releaseIndexes(of: p.keyRing)
                p.keyRing = KeyRing()
                install(keypair, in: p.keyRing, nowNs: Clock.monotonicNanoseconds())
                _ = table.open(received.sessionID, owner: p.publicKey, path: from, nowMs: nowMs)
                p.session = received.sessionID
                p.machine = SessionStateMachine(nowMs: nowMs)
                p.sessionStartedMs = nowMs
                p.bound = from
                p.boundSocket = socketIndex
                p.bindingVersion = 1
                p.switches = 0
                p.lastSwitch = nil
                transition(p, to: .attached, reason: .handshakeOK, nowMs: nowMs)
            }
            p.lastAuthenticatedMs = nowMs
            republish()
            sendRaw(message, socket: socketIndex, to: from)
        }
    }

    func confirmKeypair(peerIndex: Int, keypair: Keypair) {
        lock.withLock {
            let p = peers[peerIndex]
            let previous = p.keyRing.previous
            if p.keyRing.receivedAuthenticated(on: keypair, now: Clock.monotonicNanoseconds()) {
                if let previous, p.keyRing.previous !== previous { usedIndexes.remove(previous.localIndex) }
                republish()
            }
        }
    }

    func observedUnboundSource(peerIndex: Int, from: SocketAddress, socketIndex: Int) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            let p = peers[peerIndex]
            p.lastAuthenticatedMs = nowMs
            // NAT rebinding: tell the client (rate-limited); only its REATTACH may move the session.
            guard elapsedMs(nowMs, since: p.lastHintMs) >= 1000 else { return }
            p.lastHintMs = nowMs
            if let hint = NATHint(address: from.addressBytes, port: from.port) {
                sendControl(.natHint(hint), peer: p, socket: socketIndex, to: from)
            }
        }
    }

    func rejectedControl(peerIndex: Int, reason: ReasonCode, from: SocketAddress, socketIndex: Int) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            let p = peers[peerIndex]
            guard securityEventBucket.take(nowMs: nowMs) else { return }
            securityEvent(p, reason: reason, remote: from)
        }
    }

    func handleControl(_ plaintext: UnsafeRawBufferPointer, peerIndex: Int, keypair: Keypair, from: SocketAddress, socketIndex: Int) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            let p = peers[peerIndex]
            guard let message = try? ControlMessage.decode(plaintext) else { return }
            if from == p.bound { p.lastAuthenticatedMs = nowMs }
            switch message {
            case .probe(let seq, let sentAt, let pathID):
                // Probes may use any path: answer where it came from.
                sendControl(.probeReply(seq: seq, sentAtNs: sentAt, pathID: pathID), peer: p, keypair: keypair, socket: socketIndex, to: from)
            case .reattachRequest(let sid, let version, let pathID, let nonce, let reason):
                handleReattach(p, sessionID: sid, version: version, pathID: pathID, nonce: nonce, reason: reason,
                               keypair: keypair, from: from, socketIndex: socketIndex, nowMs: nowMs)
            case .close(let reason):
                if p.state != .terminated {
                    audit(p, check: "peer_close", pass: true, detail: "peer closed with \(reason.rawValue)")
                    transition(p, to: .terminated, reason: .peerClosed, nowMs: nowMs)
                    if let sid = p.session { table.terminate(sid) }
                    republish()
                }
            case .probeReply, .reattachAck, .reject, .natHint:
                break
            }
        }
    }

    /// DESIGN's order: session exists and lives -> proof (AEAD, done by the pump) -> freshness
    /// (replay window, done by the pump) -> binding_version CAS -> rate limit. Then bind.
    private func handleReattach(_ p: PeerRuntime, sessionID: SessionID, version: UInt64, pathID: UInt32, nonce: ControlNonce,
                                reason: ReasonCode, keypair: Keypair, from: SocketAddress, socketIndex: Int, nowMs: UInt64) {
        func reject(_ r: ReasonCode) {
            switch r {
            case .staleVersion: p.counters.rejectedStaleVersion.add(1, ordering: .relaxed)
            case .rateLimited: p.counters.rejectedRateLimited.add(1, ordering: .relaxed)
            default: break
            }
            securityEvent(p, reason: r, remote: from)
            sendControl(.reject(reason: r, nonce: nonce), peer: p, keypair: keypair, socket: socketIndex, to: from)
        }
        // Proof and freshness were checked by the pump before this message was decoded.
        guard table.entry(sessionID)?.owner == p.publicKey, p.session == sessionID, p.state != .terminated else {
            return reject(.unknownSession)
        }
        switch table.validateReattach(sessionID, proofValid: true, fresh: true, expectedVersion: version, newPath: from, nowMs: nowMs) {
        case .failure(let r): return reject(r.reason)
        case .success(let newVersion): p.bindingVersion = newVersion
        }
        let old = p.bound
        // The gateway cannot see when the client lost its path: its recovery time is the gap since
        // the last authenticated packet on the old binding (probes arrive every ProbeIntervalMs).
        let recoveryMs = elapsedMs(nowMs, since: p.lastAuthenticatedMs)
        p.bound = from
        p.boundSocket = socketIndex
        p.lastAuthenticatedMs = nowMs
        if p.state != .recovering { transition(p, to: .recovering, reason: reason, nowMs: nowMs) }
        transition(p, to: .attached, reason: .reattachOK, nowMs: nowMs)
        recordSwitch(p, from: old?.description ?? "", to: from.description, reason: reason, recoveryMs: recoveryMs)
        republish()
        sendControl(.reattachAck(sessionID: sessionID, bindingVersion: p.bindingVersion, nonce: nonce), peer: p, keypair: keypair, socket: socketIndex, to: from)
    }

    /// Timers: key expiry, TTLs.
    func tick(nowMs: UInt64) {
        lock.withLock {
            var changed = false
            for p in peers where p.session != nil && p.state != .terminated {
                for dropped in p.keyRing.expire(now: nowMs * 1_000_000) {
                    usedIndexes.remove(dropped.localIndex)
                    changed = true
                }
                if elapsedMs(nowMs, since: p.lastAuthenticatedMs) > config.policy.transportLossTtlMs {
                    transition(p, to: .terminated, reason: .transportLossTTLExpired, nowMs: nowMs)
                    changed = true
                } else if elapsedMs(nowMs, since: p.sessionStartedMs) > config.policy.sessionTtlMs {
                    transition(p, to: .terminated, reason: .sessionTTLExpired, nowMs: nowMs)
                    changed = true
                }
                if p.state == .terminated, let sid = p.session { table.terminate(sid) }
            }
            if changed { republish() }
        }
    }

    func shutdown(reason: ReasonCode) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            for p in peers where p.session != nil && p.state != .terminated {
                if let b = p.bound { sendControl(.close(reason: reason), peer: p, socket: p.boundSocket, to: b) }
                transition(p, to: .terminated, reason: reason, nowMs: nowMs)
                if let sid = p.session { table.terminate(sid) }
            }
            republish()
        }
    }
}
