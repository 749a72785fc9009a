@testable import JVPNCore

/// The real `GatewayCore` with one session, bound to a path at start, as the orchestrator's
/// counterpart: path ids stand for the client addresses the gateway sees.
struct GatewayModel {
    static let session = try! SessionID(bytes: [7, 7, 7, 7, 7, 7, 7, 7])
    var core: GatewayCore<UInt32>

    init(bound: UInt32, policy: PolicyConfig, nowMs: UInt64) {
        core = GatewayCore(policy: policy, peerCount: 1, seed: 1, nowMs: nowMs)
        _ = core.initiation(peer: 0, session: GatewayModel.session, timestamp: Timestamp12(unixNanoseconds: 1_700_000_000_000_000_000),
                            wallNs: 1_700_000_000_000_000_000, from: bound, nowMs: nowMs)
        _ = core.confirmed(peer: 0, session: GatewayModel.session, from: bound, bytes: 49, nowMs: nowMs)
    }

    var bound: UInt32? { core.session(ofPeer: 0)?.bound }
    var version: UInt64 { core.session(ofPeer: 0)?.bindingVersion ?? 0 }
    /// Switches the gateway applied.
    var applied: Int { core.session(ofPeer: 0)?.switches ?? 0 }

    /// What the gateway sends back for a control message from `path`, and where.
    mutating func receive(_ m: ControlMessage, from path: UInt32, nowMs: UInt64) -> [(ControlMessage, UInt32)] {
        core.control(peer: 0, m, from: path, bytes: 32 + m.encodedLength, nowMs: nowMs).compactMap {
            if case .send(_, let reply, let to, _) = $0 { return (reply, to) }
            return nil
        }
    }
}

/// Drives the orchestrator with a simulated network and a fake clock: each path delivers probes and
/// REATTACHes (the gateway answers after `rtt`) unless it is down or blackholed; a lossy path drops
/// every n-th probe; `lossPct` drops any message in either direction (seeded).
struct OrchestratorSim {
    enum Arrival {
        case probeReply(seq: UInt32)
        case answer(ControlMessage)
    }

    var o: ClientOrchestrator
    var gateway: GatewayModel
    var now: UInt64 = 1_000
    var rtt: [UInt32: UInt64] = [0: 5, 16: 8, 32: 11, 1: 6, 17: 9]
    var down: Set<UInt32> = []
    var blackholed: Set<UInt32> = []
    var dropEvery: [UInt32: Int] = [:]
    /// The largest IP packet a path carries both ways (absent: any); larger MTU probes die on it.
    var pathMtu: [UInt32: Int] = [:]
    /// The gateway's PATH_MTU receipts are lost on their way to the client.
    var dropReceipts = false
    var sentCount: [UInt32: Int] = [:]
    /// The next this many REATTACH answers (ACK or reject) are lost on their way to the client.
    var dropAnswers = 0
    /// Every REATTACH_ACK sent to these paths is lost on its way to the client.
    var acksLostTo: Set<UInt32> = []
    var lossPct: UInt64 = 0
    var rng: SeededRandom
    var inflight: [(at: UInt64, path: UInt32, arrival: Arrival)] = []
    var log: [OrchestratorAction] = []

    /// Path `id` is on uplink `id / 16`; `transportRanks` gives the rank of paths of a less preferred
    /// transport kind (TCP, a stream), 0 for the others (UDP).
    init(policy: PolicyConfig, pathIDs: [UInt32] = [0, 16], transportRanks: [UInt32: Int] = [:], seed: UInt64 = 1) {
        o = ClientOrchestrator(policy: policy,
                               paths: pathIDs.map { PathCandidate(id: $0, priority: Int($0 / 16), transportRank: transportRanks[$0] ?? 0,
                                                                   isStream: transportRanks[$0] != nil) },
                               noncePrefix: 0xC11E_4700, nowMs: 1_000)
        gateway = GatewayModel(bound: pathIDs[0], policy: policy, nowMs: 1_000)
        rng = SeededRandom(seed: seed)
        apply(o.handshakeCompleted(path: pathIDs[0], nowMs: now))
    }

    func delivers(_ p: UInt32) -> Bool { !down.contains(p) && !blackholed.contains(p) }

    mutating func lost() -> Bool { lossPct > 0 && rng.next() % 100 < lossPct }

    mutating func apply(_ actions: [OrchestratorAction]) {
        log += actions
        for a in actions {
            switch a {
            case .sendProbe(let p, let seq):
                sentCount[p, default: 0] += 1
                let n = dropEvery[p] ?? 0
                if delivers(p) && !(n > 0 && sentCount[p]! % n == 0) && !lost() && !lost() {
                    inflight.append((now + rtt[p]!, p, .probeReply(seq: seq)))
                    // The gateway sees it too: a probe from an unvalidated path draws its challenge.
                    send(.probe(seq: seq, sentAtNs: 0, pathID: p), on: p)
                }
            case .sendReattach(let p, let reason, let v, let nonce):
                guard delivers(p), !lost() else { continue }
                send(.reattachRequest(sessionID: GatewayModel.session, bindingVersion: v, pathID: p, nonce: nonce, reason: reason), on: p)
            case .sendPathResponse(let p, let data):
                guard delivers(p), !lost() else { continue }
                send(.pathResponse(data: data), on: p)
            case .sendMtuProbe(let p, let seq, let size):
                if delivers(p) && (size ?? 0) <= pathMtu[p, default: .max] && !lost() && !lost() {
                    inflight.append((now + rtt[p]!, p, .probeReply(seq: seq)))
                }
            case .sendPathMtu(let p, let size):
                guard delivers(p), !lost() else { continue }
                send(.pathMtu(pathID: p, maxDatagram: UInt16(size)), on: p)
            case .sendInitiation, .sendResume, .activate, .stateChanged, .audit, .switched, .presumedDead, .terminated, .pathMtuChanged:
                break
            }
        }
    }

    /// A control message reaches the gateway; its answers travel back (REATTACH answers may be lost).
    mutating func send(_ m: ControlMessage, on p: UInt32) {
        for (reply, to) in gateway.receive(m, from: p, nowMs: now) {
            let isAnswer: Bool
            switch reply {
            case .reattachAck, .reject: isAnswer = true
            case .probeReply: continue // the probe's own loss pattern above decides its reply
            case .pathMtuAck where dropReceipts: continue
            case .probe, .reattachRequest, .close, .natHint, .pathChallenge, .pathResponse, .pathMtu, .pathMtuAck: isAnswer = false
            }
            if case .reattachAck = reply, acksLostTo.contains(to) {
                continue
            } else if isAnswer && dropAnswers > 0 {
                dropAnswers -= 1
            } else if !lost() {
                inflight.append((now + rtt[to]!, to, .answer(reply)))
            }
        }
    }

    mutating func deliver(_ arrival: Arrival, on path: UInt32) {
        switch arrival {
        case .probeReply(let seq):
            apply(o.probeReplied(path: path, seq: seq, nowMs: now))
        case .answer(.reattachAck(_, let version, let nonce)):
            apply(o.reattachAcked(nonce: nonce, bindingVersion: version, nowMs: now))
        case .answer(.reject(let reason, let nonce, let version)):
            apply(o.reattachRejected(reason: reason, nonce: nonce, bindingVersion: version, nowMs: now))
        case .answer(.pathChallenge(let data)):
            apply(o.pathChallenged(path: path, data: data, nowMs: now))
        case .answer(.pathMtuAck(let p, let size)):
            o.pathMtuReceipted(path: p, maxDatagram: Int(size), nowMs: now)
        case .answer(.probe), .answer(.probeReply), .answer(.reattachRequest), .answer(.close), .answer(.natHint),
             .answer(.pathResponse), .answer(.pathMtu):
            break
        }
    }

    mutating func run(ms: UInt64) {
        let end = now + ms
        while now < end {
            now += 1
            let due = inflight.filter { $0.at <= now }
            inflight.removeAll { $0.at <= now }
            for d in due where delivers(d.path) { deliver(d.arrival, on: d.path) }
            if now % 10 == 0 { apply(o.tick(nowMs: now)) }
        }
    }

    mutating func link(_ p: UInt32, up: Bool) {
        if up { down.remove(p) } else { down.insert(p) }
        apply(o.linkChanged(uplinkPriority: Int(p / 16), up: up, nowMs: now))
    }

    var switchesLogged: [(UInt32?, UInt32, ReasonCode, UInt64)] {
        log.compactMap { if case .switched(let f, let t, let r, let ms) = $0 { return (f, t, r, ms) }; return nil }
    }

    /// When each move by preference (RECOVERING for BETTER_PATH) began.
    var movesByPreference: [UInt64] {
        log.compactMap { if case .stateChanged(let c) = $0, c.reason == .betterPath { return c.atMs }; return nil }
    }

    /// Whether a move by preference to `path` was given up unanswered.
    func gaveUpMove(to path: UInt32) -> Bool {
        log.contains { if case .audit(let r) = $0 { return r.detail.hasPrefix("no answer to REATTACH on path \(path) ") }; return false }
    }

    func reasons(to state: SessionState) -> [ReasonCode] {
        log.compactMap { if case .stateChanged(let c) = $0, c.to == state { return c.reason }; return nil }
    }

    var reattachesSent: [(path: UInt32, version: UInt64, nonce: ControlNonce)] {
        log.compactMap { if case .sendReattach(let p, _, let v, let n) = $0 { return (p, v, n) }; return nil }
    }
}

func rigPolicy() -> PolicyConfig {
    var p = PolicyConfig()
    p.probeIntervalMs = 50
    p.standbyProbeIntervalMs = 200
    p.deadAfterMs = 300
    p.stableWindowMs = 1000
    p.switchCooldownMs = 500
    p.maxSwitchesPerMinute = 10
    p.transportLossTtlMs = 5000
    return p
}
