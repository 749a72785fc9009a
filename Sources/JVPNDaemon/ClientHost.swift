import Foundation
import JVPNCore
import JVPNSystem

/// One candidate transport: an uplink's socket towards one gateway endpoint.
struct ClientPath {
    let id: UInt32
    let uplink: String
    let socketIndex: Int
    let remote: SocketAddress
    var localAddress: String
    var localPort: UInt16

    /// Contract spelling: UPLINK/LOCAL_IP:PORT->REMOTE_IP:PORT
    var name: String { "\(uplink)/\(localAddress):\(localPort)->\(remote.description)" }
}

/// The client: one peer (its gateway), several candidate paths, exactly one active.
final class ClientHost: SessionHost, PumpController {
    var paths: [ClientPath] = []
    var active: Int?
    private var pending: (handshake: InitiatorHandshake, path: Int, sentMs: UInt64, rekey: Bool)?
    private var birthMs: UInt64 = 0
    private var lastInitiationMs: UInt64 = 0
    private var attempts = 0
    private var probeSeq: UInt32 = 0
    private var lastProbeMs: UInt64 = 0
    private var lastRtt: [UInt32: Double] = [:]
    static let handshakeRetryMs: UInt64 = 1000
    var handshakeTimeoutMs: UInt64 { min(config.policy.transportLossTtlMs, 90_000) }

    var peer: PeerRuntime { peers[0] }

    override func sendPath(for p: PeerRuntime) -> (Int, SocketAddress)? {
        guard let a = active, p.state == .attached || p.state == .volatile || p.state == .degraded else { return nil }
        return (paths[a].socketIndex, paths[a].remote)
    }

    /// Opens a new session (new id, BIRTH). The TUN interface, addresses and routes are untouched.
    func startSession(nowMs: UInt64) {
        let p = peer
        releaseIndexes(of: p.keyRing)
        p.keyRing = KeyRing()
        p.session = SessionID.random()
        p.machine = SessionStateMachine()
        p.sessionStartedMs = nowMs
        p.switches = 0
        p.lastSwitch = nil
        birthMs = nowMs
        attempts = 0
        active = nil
        pending = nil
        republish()
        sendInitiation(path: 0, rekey: false, nowMs: nowMs)
    }

    private func sendInitiation(path: Int, rekey: Bool, nowMs: UInt64) {
        guard !paths.isEmpty, let sid = peer.session else { return }
        let pathIndex = path % paths.count
        if let old = pending { usedIndexes.remove(old.handshake.localIndex) }
        let index = freshIndex()
        guard let (message, state) = try? Handshake.makeInitiation(
            local: privateKey, remote: peer.publicKey, sessionID: sid, localIndex: index,
            timestamp: Timestamp12(unixNanoseconds: Clock.wallNanoseconds())) else {
            usedIndexes.remove(index)
            return
        }
        pending = (state, pathIndex, nowMs, rekey)
        lastInitiationMs = nowMs
        attempts += 1
        let pth = paths[pathIndex]
        sendRaw(message, socket: pth.socketIndex, to: pth.remote)
    }

    func handleHandshake(_ bytes: UnsafeRawBufferPointer, from: SocketAddress, socketIndex: Int) {
        guard bytes.count > 0, bytes[0] == MessageType.response.rawValue else { return }
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            guard let pend = pending,
                  let keypair = try? pend.handshake.consumeResponse(bytes, now: Clock.monotonicNanoseconds()) else { return }
            pending = nil
            let p = peer
            install(keypair, in: p.keyRing, nowNs: Clock.monotonicNanoseconds())
            p.lastAuthenticatedMs = nowMs
            if p.state == .birth {
                active = pend.path
                transition(p, to: .attached, reason: .handshakeOK, nowMs: nowMs)
            }
            republish()
            // Confirms the new keys to the responder at once, and measures the path.
            sendProbe(path: active ?? pend.path, nowMs: nowMs)
        }
    }

    private func sendProbe(path: Int, nowMs: UInt64) {
        probeSeq &+= 1
        let pth = paths[path]
        sendControl(.probe(seq: probeSeq, sentAtNs: Clock.monotonicNanoseconds(), pathID: pth.id), peer: peer,
                    socket: pth.socketIndex, to: pth.remote)
        lastProbeMs = nowMs
    }

    func confirmKeypair(peerIndex: Int, keypair: Keypair) {}

    func observedUnboundSource(peerIndex: Int, from: SocketAddress, socketIndex: Int) {}

    func rejectedControl(peerIndex: Int, reason: ReasonCode, from: SocketAddress, socketIndex: Int) {}

    func handleControl(_ plaintext: UnsafeRawBufferPointer, peerIndex: Int, keypair: Keypair, from: SocketAddress, socketIndex: Int) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            guard let message = try? ControlMessage.decode(plaintext) else { return }
            let p = peer
            p.lastAuthenticatedMs = nowMs
            switch message {
            case .probeReply(_, let sentAt, let pathID):
                let rtt = Double(Clock.monotonicNanoseconds() &- sentAt) / 1e6
                lastRtt[pathID] = rtt
            case .close:
                if p.state != .terminated {
                    transition(p, to: .terminated, reason: .peerClosed, nowMs: nowMs)
                    republish()
                    if config.policy.restartOnTerminate { startSession(nowMs: nowMs) }
                }
            case .probe, .reattachRequest, .reattachAck, .reject, .natHint:
                break
            }
        }
    }

    func tick(nowMs: UInt64) {
        lock.withLock {
            let p = peer
            if p.session == nil || p.state == .terminated {
                if config.policy.restartOnTerminate || p.session == nil { startSession(nowMs: nowMs) }
                return
            }
            if p.state == .birth {
                if nowMs - birthMs > handshakeTimeoutMs {
                    transition(p, to: .terminated, reason: .handshakeTimeout, nowMs: nowMs)
                    republish()
                    if config.policy.restartOnTerminate { startSession(nowMs: nowMs) }
                } else if nowMs - lastInitiationMs >= ClientHost.handshakeRetryMs {
                    sendInitiation(path: attempts, rekey: false, nowMs: nowMs)
                }
                return
            }
            let nowNs = nowMs * 1_000_000
            var changed = false
            for dropped in p.keyRing.expire(now: nowNs) { usedIndexes.remove(dropped.localIndex); changed = true }
            if p.keyRing.needsRekey(now: nowNs), let a = active,
               pending == nil || nowMs - lastInitiationMs >= 5000 {
                sendInitiation(path: a, rekey: true, nowMs: nowMs)
            }
            if let a = active, nowMs - lastProbeMs >= config.policy.probeIntervalMs { sendProbe(path: a, nowMs: nowMs) }
            if nowMs - p.sessionStartedMs > config.policy.sessionTtlMs {
                transition(p, to: .terminated, reason: .sessionTTLExpired, nowMs: nowMs)
                changed = true
            } else if nowMs - p.lastAuthenticatedMs > config.policy.transportLossTtlMs {
                transition(p, to: .terminated, reason: .transportLossTTLExpired, nowMs: nowMs)
                changed = true
            }
            if changed { republish() }
        }
    }

    func shutdown(reason: ReasonCode) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            let p = peer
            if p.session != nil && p.state != .terminated {
                if let a = active { sendControl(.close(reason: reason), peer: p, socket: paths[a].socketIndex, to: paths[a].remote) }
                transition(p, to: .terminated, reason: reason, nowMs: nowMs)
            }
            active = nil
            republish()
        }
    }

    /// Uplink facts from netlink. Sockets and path names follow the uplink set.
    func apply(_ facts: [UplinkSet.UplinkFact], uplinks: UplinkSet) {
        lock.withLock {
            sockets = uplinks.sockets
            paths = uplinks.paths
            republish()
        }
    }

    func pathStatus() -> [[String: Any]] {
        paths.enumerated().map { (i, pth) in
            ["path": pth.name, "uplink": pth.uplink, "status": i == active ? "active" : "standby",
             "rtt_ms": lastRtt[pth.id] ?? 0.0, "loss_pct": 0.0, "jitter_ms": 0.0] as [String: Any]
        }
    }
}
