import JVPNCore
import JVPNSystem

/// One candidate transport: an uplink's socket towards one gateway endpoint.
struct ClientPath {
    let id: UInt32
    let uplink: String
    let uplinkIndex: Int
    let socketIndex: Int
    let remote: SocketAddress
    var localAddress: String
    var localPort: UInt16

    /// Contract spelling: UPLINK/LOCAL_IP:PORT->REMOTE_IP:PORT
    var name: String { "\(uplink)/\(localAddress):\(localPort)->\(remote.description)" }
}

/// The client: one peer (its gateway), several candidate paths, exactly one active. The decisions
/// are the pure `ClientOrchestrator`'s; this class performs its actions (probes, REATTACH, the
/// data-plane switch) and feeds it facts (netlink, probe replies, acks, time).
final class ClientHost: SessionHost, PumpController {
    var paths: [ClientPath] = []
    var active: Int?
    var orchestrator: ClientOrchestrator?
    private var pending: (handshake: InitiatorHandshake, path: Int, sentMs: UInt64, rekey: Bool)?
    private var birthMs: UInt64 = 0
    private var lastInitiationMs: UInt64 = 0
    private var attempts = 0
    /// The gateway's latest cookie (from a cookie reply under load) and the path it is bound to.
    private var cookie: (value: MAC16, receivedMs: UInt64, path: Int)?
    /// Nonce of the REATTACH in flight per path: the ACK must echo it.
    private var reattachNonces: [UInt32: ControlNonce] = [:]
    static let handshakeRetryMs: UInt64 = 1000
    var handshakeTimeoutMs: UInt64 { min(config.policy.transportLossTtlMs, 90_000) }

    var peer: PeerRuntime { peers[0] }

    override func sendPath(for p: PeerRuntime) -> (Int, SocketAddress)? {
        guard let a = active, p.state == .attached || p.state == .volatile || p.state == .degraded || p.state == .recovering else { return nil }
        return (paths[a].socketIndex, paths[a].remote)
    }

    private func pathIndex(_ id: UInt32) -> Int? { paths.firstIndex { $0.id == id } }

    /// Opens a new session (new id, BIRTH). The TUN interface, addresses and routes are untouched.
    func startSession(nowMs: UInt64) {
        let p = peer
        releaseIndexes(of: p.keyRing)
        p.session = SessionID.random()
        p.machine = SessionStateMachine(nowMs: nowMs)
        p.sessionStartedMs = nowMs
        p.switches = 0
        p.lastSwitch = nil
        p.bindingVersion = 0
        birthMs = nowMs
        attempts = 0
        active = nil
        pending = nil
        reattachNonces = [:]
        var candidates = paths.map { PathCandidate(id: $0.id, priority: $0.uplinkIndex) }
        for i in candidates.indices where sockets[paths[i].socketIndex] == nil { candidates[i].linkUp = false }
        orchestrator = ClientOrchestrator(policy: config.policy, paths: candidates, nowMs: nowMs)
        republish()
        sendInitiation(rekey: false, nowMs: nowMs)
    }

    /// Handshakes go on the best usable path (rotating on retries); rekeys on the active one;
    /// the answer to a cookie reply on `path`, the one the cookie is bound to.
    private func sendInitiation(rekey: Bool, nowMs: UInt64, path: Int? = nil) {
        guard !paths.isEmpty, let sid = peer.session else { return }
        var pathIdx: Int
        if let path {
            pathIdx = path
        } else if rekey, let a = active {
            pathIdx = a
        } else {
            let usable = paths.indices.filter { sockets[paths[$0].socketIndex] != nil && (orchestrator?.status(of: paths[$0].id, nowMs: nowMs) ?? "standby") != "dead" }
            let choice = usable.isEmpty ? Array(paths.indices) : usable
            pathIdx = choice[attempts % choice.count]
        }
        if let old = pending { usedIndexes.remove(old.handshake.localIndex) }
        let index = freshIndex()
        let mac2Cookie = cookie.flatMap { c in c.path == pathIdx && elapsedMs(nowMs, since: c.receivedMs) < Cookie.lifetimeMs ? c.value : nil }
        guard let (message, state) = try? Handshake.makeInitiation(
            local: privateKey, remote: peer.publicKey, sessionID: sid, localIndex: index,
            timestamp: Timestamp12(unixNanoseconds: Clock.wallNanoseconds()), cookie: mac2Cookie) else {
            usedIndexes.remove(index)
            return
        }
        pending = (state, pathIdx, nowMs, rekey)
        lastInitiationMs = nowMs
        attempts += 1
        let pth = paths[pathIdx]
        sendRaw(message, socket: pth.socketIndex, to: pth.remote)
    }

    func handleHandshake(_ bytes: UnsafeRawBufferPointer, from: SocketAddress, socketIndex: Int) {
        guard bytes.count > 0 else { return }
        let nowMs = Clock.monotonicMilliseconds()
        if bytes[0] == MessageType.cookieReply.rawValue {
            lock.withLock {
                // Opens only as the answer to the pending initiation (its index, its mac1 as AD).
                guard let pend = pending,
                      let value = try? Cookie.openReply(bytes, responder: peer.publicKey, receiverIndex: pend.handshake.localIndex,
                                                        mac1: pend.handshake.mac1) else { return }
                cookie = (value, nowMs, pend.path)
                // Resend at once with mac2. The new initiation replaces the pending one, so a
                // cookie reply (sealed to the old mac1) triggers at most one resend.
                sendInitiation(rekey: pend.rekey, nowMs: nowMs, path: pend.path)
            }
            return
        }
        guard bytes[0] == MessageType.response.rawValue else { return }
        lock.withLock {
            guard let pend = pending,
                  let keypair = try? pend.handshake.consumeResponse(bytes, now: Clock.monotonicNanoseconds()) else { return }
            pending = nil
            let p = peer
            install(keypair, in: p.keyRing, nowNs: Clock.monotonicNanoseconds())
            p.lastAuthenticatedMs = nowMs
            if p.state == .birth, var o = orchestrator {
                let actions = o.handshakeCompleted(path: paths[pend.path].id, nowMs: nowMs)
                orchestrator = o
                perform(actions, nowMs: nowMs)
            }
            republish()
            // A probe right away confirms the new keys to the responder and measures the path.
            sendProbeNow(pathIndex: active ?? pend.path, nowMs: nowMs)
        }
    }

    private func sendProbeNow(pathIndex i: Int, nowMs: UInt64) {
        guard var o = orchestrator else { return }
        let actions = o.probeNow(path: paths[i].id, nowMs: nowMs)
        orchestrator = o
        perform(actions, nowMs: nowMs)
    }

    func confirmKeypair(peerIndex: Int, keypair: Keypair) {}

    func observedUnboundSource(peerIndex: Int, from: SocketAddress, socketIndex: Int) {}

    func rejectedControl(peerIndex: Int, reason: ReasonCode, from: SocketAddress, socketIndex: Int) {}

    func handleControl(_ plaintext: UnsafeRawBufferPointer, peerIndex: Int, keypair: Keypair, from: SocketAddress, socketIndex: Int) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            guard let message = try? ControlMessage.decode(plaintext), var o = orchestrator else { return }
            let p = peer
            p.lastAuthenticatedMs = nowMs
            var actions: [OrchestratorAction] = []
            switch message {
            case .probeReply(let seq, let sentAt, let pathID):
                let nowNs = Clock.monotonicNanoseconds()
                let rtt = nowNs >= sentAt && nowNs - sentAt < 60_000_000_000 ? Double(nowNs - sentAt) / 1e6 : nil
                actions = o.probeReplied(path: pathID, seq: seq, nowMs: nowMs, measuredRttMs: rtt)
            case .reattachAck(let sid, let version, let nonce):
                guard sid == p.session, let (pathID, _) = reattachNonces.first(where: { $0.value == nonce }) else { break }
                reattachNonces = [:]
                actions = o.reattachAcked(path: pathID, bindingVersion: version, nowMs: nowMs)
            case .reject(let reason, let nonce):
                guard reattachNonces.values.contains(nonce) else { break }
                reattachNonces = [:]
                actions = o.reattachRejected(reason, nowMs: nowMs)
            case .natHint(let hint):
                // The gateway saw our authenticated traffic from an address it has not bound. If
                // that address is one of our own paths, it was a late packet from before a switch;
                // only an address we do not own (a NAT's new mapping) calls for a re-bind.
                let observed = IPAddress(networkBytes: hint.address)?.unmapped.description
                if !paths.contains(where: { $0.localAddress == observed && $0.localPort == hint.port }) {
                    actions = o.natRebindHinted(nowMs: nowMs)
                }
            case .close(let reason):
                if p.state != .terminated {
                    audit(p, check: "peer_close", pass: true, detail: "gateway closed the session with \(reason.rawValue)")
                    actions = o.terminate(.peerClosed, nowMs: nowMs) + [.terminated(.peerClosed, restart: config.policy.restartOnTerminate)]
                }
            case .probe, .reattachRequest:
                break
            }
            orchestrator = o
            perform(actions, nowMs: nowMs)
        }
    }

    /// Performs the orchestrator's actions in order. Called under `lock`.
    private func perform(_ actions: [OrchestratorAction], nowMs: UInt64) {
        let p = peer
        var changed = false
        for action in actions {
            switch action {
            case .sendProbe(let id, let seq):
                guard let i = pathIndex(id) else { continue }
                sendControl(.probe(seq: seq, sentAtNs: Clock.monotonicNanoseconds(), pathID: id), peer: p,
                            socket: paths[i].socketIndex, to: paths[i].remote)
            case .sendReattach(let id, let reason, let version):
                guard let i = pathIndex(id), let sid = p.session else { continue }
                let nonce = ControlNonce.random()
                reattachNonces[id] = nonce
                sendControl(.reattachRequest(sessionID: sid, bindingVersion: version, pathID: id, nonce: nonce, reason: reason),
                            peer: p, socket: paths[i].socketIndex, to: paths[i].remote)
            case .activate(let id):
                active = pathIndex(id)
                changed = true
            case .stateChanged(let c):
                p.machine = orchestrator?.machine ?? p.machine
                emitStateChange(p, c)
                changed = true
            case .audit(let a):
                emitAudit(p, a)
            case .switched(let from, let to, let reason, let recoveryMs):
                p.bindingVersion = orchestrator?.bindingVersion ?? p.bindingVersion
                recordSwitch(p, from: from.flatMap { pathIndex($0) }.map { paths[$0].name } ?? "",
                             to: pathIndex(to).map { paths[$0].name } ?? "", reason: reason, recoveryMs: recoveryMs)
            case .terminated(_, let restart):
                active = nil
                changed = true
                republish()
                if restart { startSession(nowMs: nowMs) }
            }
        }
        p.machine = orchestrator?.machine ?? p.machine
        p.bindingVersion = orchestrator?.bindingVersion ?? p.bindingVersion
        if changed { republish() }
    }

    /// Uplink facts from netlink. Sockets and path names follow the uplink set.
    func apply(_ facts: [UplinkSet.UplinkFact], uplinks: UplinkSet) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            sockets = uplinks.sockets
            for (i, p) in uplinks.paths.enumerated() where i < paths.count {
                paths[i].localAddress = p.localAddress
                paths[i].localPort = p.localPort
            }
            republish()
            guard var o = orchestrator else { return }
            var actions: [OrchestratorAction] = []
            for fact in facts {
                switch fact {
                case .linkDown(let u): actions += o.linkChanged(uplinkPriority: u, up: false, nowMs: nowMs)
                case .linkUp(let u), .socketCreated(let u): actions += o.linkChanged(uplinkPriority: u, up: sockets[u] != nil, nowMs: nowMs)
                case .addressLost(let u): actions += o.addressChanged(uplinkPriority: u, present: false, nowMs: nowMs)
                case .addressAdded(let u): actions += o.addressChanged(uplinkPriority: u, present: true, nowMs: nowMs)
                }
            }
            orchestrator = o
            perform(actions, nowMs: nowMs)
        }
    }

    func tick(nowMs: UInt64) {
        lock.withLock {
            let p = peer
            if p.session == nil {
                startSession(nowMs: nowMs)
                return
            }
            if p.state == .terminated { return }
            if p.state == .birth {
                if elapsedMs(nowMs, since: birthMs) > handshakeTimeoutMs, var o = orchestrator {
                    let actions = o.terminate(.handshakeTimeout, nowMs: nowMs)
                    orchestrator = o
                    perform(actions + [.terminated(.handshakeTimeout, restart: config.policy.restartOnTerminate)], nowMs: nowMs)
                    return
                } else if elapsedMs(nowMs, since: lastInitiationMs) >= ClientHost.handshakeRetryMs {
                    sendInitiation(rekey: false, nowMs: nowMs)
                }
            }
            let nowNs = nowMs * 1_000_000
            var changed = false
            for dropped in p.keyRing.expire(now: nowNs) { usedIndexes.remove(dropped.localIndex); changed = true }
            if p.state != .birth, p.keyRing.needsRekey(now: nowNs) || p.keyRing.current == nil,
               pending == nil || elapsedMs(nowMs, since: lastInitiationMs) >= 5000 {
                sendInitiation(rekey: true, nowMs: nowMs)
            }
            if var o = orchestrator {
                let actions = o.tick(nowMs: nowMs)
                orchestrator = o
                perform(actions, nowMs: nowMs)
            }
            if changed { republish() }
        }
    }

    func shutdown(reason: ReasonCode) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            let p = peer
            if p.session != nil && p.state != .terminated, var o = orchestrator {
                if let a = active { sendControl(.close(reason: reason), peer: p, socket: paths[a].socketIndex, to: paths[a].remote) }
                let actions = o.terminate(reason, nowMs: nowMs)
                orchestrator = o
                perform(actions, nowMs: nowMs)
            }
            active = nil
            republish()
        }
    }

    func pathStatus() -> [JSONValue] {
        let now = Clock.monotonicMilliseconds()
        return paths.map { pth in
            let q = orchestrator?.quality(of: pth.id)
            return ["path": .string(pth.name), "uplink": .string(pth.uplink),
                    "status": .string(orchestrator?.status(of: pth.id, nowMs: now) ?? "standby"),
                    "rtt_ms": .double((q?.rttMs ?? 0).rounded3),
                    "loss_pct": .double((orchestrator?.lossPct(of: pth.id, nowMs: now) ?? 0).rounded3),
                    "jitter_ms": .double((q?.jitterMs ?? 0).rounded3)]
        }
    }
}

extension Double {
    var rounded3: Double { (self * 1000).rounded() / 1000 }
}
