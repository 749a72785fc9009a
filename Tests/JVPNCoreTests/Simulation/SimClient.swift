@testable import JVPNCore

/// The client side of the simulation: the real `ClientOrchestrator`, performing its actions as
/// ClientHost does, with keys modelled as epochs and real replay windows.
struct SimClient {
    var orchestrator: ClientOrchestrator
    let policy: PolicyConfig
    let uplinks: Int
    /// Each uplink has a TCP path as well (ranked below every UDP path).
    let tcp: Bool
    var session: SessionID
    var sessionSerial: UInt64 = 1
    /// The handshake in flight (its id), and the epoch of the current and previous keys.
    var pendingHandshake: UInt64?
    var handshakeSerial: UInt64 = 0
    var current: UInt64?
    var previous: UInt64?
    var windows: [UInt64: ReplayWindow] = [:]
    var sendCounters: [UInt64: UInt64] = [:]
    var active: UInt32?
    var lastDataMs: UInt64?
    /// The data plane's packet counters, as the host samples them for suspicion.
    var dataSent: UInt64 = 0
    var dataReceived: UInt64 = 0
    var wallNs: UInt64 = 1_700_000_000_000_000_000
    var sessionsStarted = 1
    var lastRekeyMs: UInt64 = 0
    let rekeyEveryMs: UInt64
    /// What the client did, for a replayed seed's trace.
    var journal: [String] = []
    var tracing = false

    init(policy: PolicyConfig, uplinks: Int, tcp: Bool = false, seed: UInt64, rekeyEveryMs: UInt64, now: UInt64) {
        self.policy = policy
        self.uplinks = uplinks
        self.tcp = tcp
        self.rekeyEveryMs = rekeyEveryMs
        session = SimClient.sessionID(seed, 1)
        orchestrator = ClientOrchestrator(policy: policy, paths: SimClient.paths(uplinks: uplinks, tcp: tcp), noncePrefix: seed, nowMs: now)
    }

    /// UDP path of uplink u: id u + 1; TCP path: id 101 + u, one transport rank below.
    static func paths(uplinks: Int, tcp: Bool) -> [PathCandidate] {
        (0..<uplinks).map { PathCandidate(id: UInt32($0 + 1), priority: $0) }
            + (tcp ? (0..<uplinks).map { PathCandidate(id: UInt32($0 + 101), priority: $0, transportRank: 1, isStream: true) } : [])
    }

    static func isTCP(_ path: UInt32) -> Bool { path > 100 }

    static func sessionID(_ seed: UInt64, _ serial: UInt64) -> SessionID {
        var r = SeededRandom(seed: seed &+ serial)
        let x = r.next()
        return try! SessionID(bytes: withUnsafeBytes(of: x) { Array($0) })
    }

    static func uplink(of path: UInt32) -> Int { isTCP(path) ? Int(path) - 101 : Int(path) - 1 }

    /// Where the gateway sees the path now (a TCP path: its uplink's current connection).
    static func address(of path: UInt32, _ net: SimNetwork) -> String {
        isTCP(path) ? net.tcpAddress(uplink(of: path)) : net.uplinks[uplink(of: path)].address
    }

    private static func send(_ payload: SimPayload, path: UInt32, now: UInt64, net: inout SimNetwork) {
        net.clientSend(payload, uplink: uplink(of: path), tcp: isTCP(path), now: now)
    }

    mutating func start(now: UInt64, net: inout SimNetwork) {
        perform(orchestrator.tick(nowMs: now), now: now, net: &net)
    }

    mutating func tick(now: UInt64, net: inout SimNetwork) {
        if current != nil, elapsedMs(now, since: lastRekeyMs) >= rekeyEveryMs {
            lastRekeyMs = now
            perform(orchestrator.keysNeedRenewing(nowMs: now), now: now, net: &net)
        }
        orchestrator.dataCounted(sentPackets: dataSent, receivedPackets: dataReceived, nowMs: now)
        perform(orchestrator.tick(nowMs: now), now: now, net: &net)
    }

    mutating func link(_ uplink: Int, up: Bool, now: UInt64, net: inout SimNetwork) {
        perform(orchestrator.linkChanged(uplinkPriority: uplink, up: up, nowMs: now), now: now, net: &net)
    }

    /// Uplink `uplink`'s TCP connection was reset (`up` false) or a new one is established.
    mutating func stream(_ uplink: Int, up: Bool, now: UInt64, net: inout SimNetwork) {
        guard tcp else { return }
        perform(orchestrator.transportChanged(path: UInt32(uplink + 101), up: up, nowMs: now), now: now, net: &net)
    }

    /// Data on the active path, as the data plane would send it.
    mutating func sendData(now: UInt64, net: inout SimNetwork) {
        guard let a = active, let kp = current, orchestrator.state != .birth, orchestrator.state != .terminated else { return }
        SimClient.send(.frame(epoch: kp, counter: counter(kp), control: nil), path: a, now: now, net: &net)
        dataSent += 1
    }

    mutating func receive(_ p: SimPacket, now: UInt64, net: inout SimNetwork) {
        let path = UInt32(p.uplink + (p.connection == nil ? 1 : 101))
        switch p.payload {
        case .initiation:
            return
        case .response(let handshake, let epoch):
            guard handshake == pendingHandshake else { return }
            pendingHandshake = nil
            previous = current
            current = epoch
            lastRekeyMs = now
            perform(orchestrator.handshakeCompleted(path: path, nowMs: now), now: now, net: &net)
        case .frame(let epoch, let counter, let control):
            guard epoch == current || epoch == previous else { return }
            guard windows[epoch, default: ReplayWindow()].update(counter) else { return }
            guard let control else {
                lastDataMs = now
                dataReceived += 1
                return
            }
            guard let m = try? control.withUnsafeBytes({ try ControlMessage.decode($0) }) else { return }
            var actions: [OrchestratorAction] = []
            switch m {
            case .probeReply(let seq, _, let pathID):
                actions = orchestrator.probeReplied(path: pathID, seq: seq, nowMs: now)
            case .reattachAck(let sid, let version, let nonce):
                guard sid == session else { return }
                actions = orchestrator.reattachAcked(nonce: nonce, bindingVersion: version, nowMs: now)
            case .reject(let reason, let nonce, let version):
                actions = orchestrator.reattachRejected(reason: reason, nonce: nonce, bindingVersion: version, nowMs: now)
            case .pathChallenge(let data):
                actions = orchestrator.pathChallenged(path: path, data: data, nowMs: now)
            case .natHint:
                // As ClientHost: only a hint on the active path's socket means our mapping changed;
                // one elsewhere answers late packets from before a switch.
                guard path == active else { return }
                actions = orchestrator.natRebindHinted(nowMs: now)
            case .close:
                actions = orchestrator.closedByPeer(nowMs: now)
            case .pathMtuAck(let pathID, let size):
                orchestrator.pathMtuReceipted(path: pathID, maxDatagram: Int(size), nowMs: now)
            case .probe, .reattachRequest, .pathResponse, .pathMtu:
                return
            }
            perform(actions, now: now, net: &net)
        }
    }

    private mutating func counter(_ epoch: UInt64) -> UInt64 {
        let c = sendCounters[epoch, default: 0]
        sendCounters[epoch] = c + 1
        return c
    }

    private mutating func sendControl(_ m: ControlMessage, path: UInt32, now: UInt64, net: inout SimNetwork, paddedTo: Int = 0) {
        guard let kp = current else { return }
        var buf = [UInt8](repeating: 0, count: max(m.encodedLength, paddedTo))
        let n = buf.withUnsafeMutableBytes { m.encode(into: $0.baseAddress!, capacity: $0.count, paddedTo: paddedTo) }
        SimClient.send(.frame(epoch: kp, counter: counter(kp), control: Array(buf[0..<n])), path: path, now: now, net: &net)
    }

    private mutating func perform(_ actions: [OrchestratorAction], now: UInt64, net: inout SimNetwork) {
        for a in actions {
            if tracing {
                switch a {
                case .sendProbe, .sendMtuProbe, .sendPathMtu: break
                case .sendInitiation, .sendResume, .sendReattach, .sendPathResponse, .activate, .stateChanged, .audit, .switched, .presumedDead,
                     .terminated, .pathMtuChanged:
                    journal.append("\(now): client \(a)")
                }
            }
            switch a {
            case .sendInitiation(let path), .sendResume(let path, _):
                handshakeSerial += 1
                pendingHandshake = handshakeSerial
                let ts = Timestamp12(unixNanoseconds: wallNs + now * 1_000_000 + handshakeSerial)
                SimClient.send(.initiation(session: session, timestamp: ts, handshake: handshakeSerial), path: path, now: now, net: &net)
            case .sendProbe(let path, let seq):
                sendControl(.probe(seq: seq, sentAtNs: now * 1_000_000, pathID: path), path: path, now: now, net: &net)
            case .sendReattach(let path, let reason, let version, let nonce):
                sendControl(.reattachRequest(sessionID: session, bindingVersion: version, pathID: path, nonce: nonce, reason: reason),
                            path: path, now: now, net: &net)
            case .sendPathResponse(let path, let data):
                sendControl(.pathResponse(data: data), path: path, now: now, net: &net)
            case .sendMtuProbe(let path, let seq, let size):
                sendControl(.probe(seq: seq, sentAtNs: now * 1_000_000, pathID: path), path: path, now: now, net: &net,
                            paddedTo: size.map { $0 - 28 - 32 } ?? 0)
            case .sendPathMtu(let path, let size):
                sendControl(.pathMtu(pathID: path, maxDatagram: UInt16(size)), path: path, now: now, net: &net)
            case .activate(let path):
                active = path
            case .stateChanged, .audit, .switched, .presumedDead, .pathMtuChanged:
                break
            case .terminated(_, let restart):
                active = nil
                guard restart else { continue }
                sessionSerial += 1
                sessionsStarted += 1
                session = SimClient.sessionID(UInt64(uplinks) &* 7919 &+ sessionSerial, sessionSerial)
                current = nil
                previous = nil
                pendingHandshake = nil
                orchestrator = ClientOrchestrator(policy: policy, paths: SimClient.paths(uplinks: uplinks, tcp: tcp),
                                                  noncePrefix: sessionSerial, nowMs: now)
                for u in net.uplinks.indices where !net.uplinks[u].linkUp {
                    perform(orchestrator.linkChanged(uplinkPriority: u, up: false, nowMs: now), now: now, net: &net)
                }
                for u in net.uplinks.indices where tcp && !net.uplinks[u].tcp.connected {
                    perform(orchestrator.transportChanged(path: UInt32(u + 101), up: false, nowMs: now), now: now, net: &net)
                }
                perform(orchestrator.tick(nowMs: now), now: now, net: &net)
            }
        }
    }
}
