@testable import JVPNCore

/// The gateway's REATTACH rules (spec/exchanges.md, Gateway part) as far as the client can tell:
/// idempotent retry, already bound, compare-and-swap on the version, switch rate.
struct GatewayModel {
    enum Answer: Equatable {
        case ack(version: UInt64, nonce: ControlNonce)
        case reject(ReasonCode, nonce: ControlNonce, version: UInt64)
    }

    var bound: UInt32
    var version: UInt64 = 1
    var maxSwitchesPerMinute: Int
    var lastApplied: (nonce: ControlNonce, version: UInt64)?
    var switchTimes: [UInt64] = []
    var applied = 0

    mutating func reattach(path: UInt32, version v: UInt64, nonce: ControlNonce, nowMs: UInt64) -> Answer {
        if let last = lastApplied, last.nonce == nonce, path == bound { return .ack(version: last.version, nonce: nonce) }
        if path == bound { return .ack(version: version, nonce: nonce) }
        if v != version { return .reject(.staleVersion, nonce: nonce, version: version) }
        switchTimes.removeAll { $0 + 60_000 <= nowMs }
        if switchTimes.count >= maxSwitchesPerMinute { return .reject(.rateLimited, nonce: nonce, version: version) }
        switchTimes.append(nowMs)
        bound = path
        version += 1
        applied += 1
        lastApplied = (nonce, version)
        return .ack(version: version, nonce: nonce)
    }
}

/// Drives the orchestrator with a simulated network and a fake clock: each path delivers probes and
/// REATTACHes (the gateway answers after `rtt`) unless it is down or blackholed; a lossy path drops
/// every n-th probe; `lossPct` drops any message in either direction (seeded).
struct OrchestratorSim {
    enum Arrival {
        case probeReply(seq: UInt32)
        case answer(GatewayModel.Answer)
    }

    var o: ClientOrchestrator
    var gateway: GatewayModel
    var now: UInt64 = 1_000
    var rtt: [UInt32: UInt64] = [0: 5, 16: 8, 32: 11]
    var down: Set<UInt32> = []
    var blackholed: Set<UInt32> = []
    var dropEvery: [UInt32: Int] = [:]
    var sentCount: [UInt32: Int] = [:]
    /// The next this many REATTACH answers (ACK or reject) are lost on their way to the client.
    var dropAnswers = 0
    var lossPct: UInt64 = 0
    var rng: SeededRandom
    var inflight: [(at: UInt64, path: UInt32, arrival: Arrival)] = []
    var log: [OrchestratorAction] = []

    init(policy: PolicyConfig, pathIDs: [UInt32] = [0, 16], seed: UInt64 = 1) {
        o = ClientOrchestrator(policy: policy, paths: pathIDs.map { PathCandidate(id: $0, priority: Int($0 / 16)) },
                               noncePrefix: 0xC11E_4700, nowMs: 1_000)
        gateway = GatewayModel(bound: pathIDs[0], maxSwitchesPerMinute: policy.maxSwitchesPerMinute)
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
                }
            case .sendReattach(let p, _, let v, let nonce):
                guard delivers(p), !lost() else { continue }
                let answer = gateway.reattach(path: p, version: v, nonce: nonce, nowMs: now)
                if dropAnswers > 0 {
                    dropAnswers -= 1
                } else if !lost() {
                    inflight.append((now + rtt[p]!, p, .answer(answer)))
                }
            case .sendInitiation, .sendPathResponse, .activate, .stateChanged, .audit, .switched, .terminated:
                break
            }
        }
    }

    mutating func deliver(_ arrival: Arrival, on path: UInt32) {
        switch arrival {
        case .probeReply(let seq):
            apply(o.probeReplied(path: path, seq: seq, nowMs: now))
        case .answer(.ack(let version, let nonce)):
            apply(o.reattachAcked(nonce: nonce, bindingVersion: version, nowMs: now))
        case .answer(.reject(let reason, let nonce, let version)):
            apply(o.reattachRejected(reason: reason, nonce: nonce, bindingVersion: version, nowMs: now))
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
