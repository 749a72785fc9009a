@testable import JVPNCore

/// One seeded run: the pure client and gateway cores over a simulated network that drops,
/// duplicates, reorders and delays every message kind, breaks single directions, flaps links,
/// rebinds NATs and lets an on-path attacker replay client frames from a third-party address.
/// After `healAtMs` one uplink works both ways (the others may stay broken); the run then checks
/// that both sides converge within the bound. A failing seed reproduces exactly.
struct Simulation {
    struct Outcome: CustomStringConvertible {
        var seed: UInt64
        var failures: [String] = []
        var convergedAtMs: UInt64?
        var healAtMs: UInt64 = 0
        var boundMs: UInt64 = 0
        var switches = 0
        var sessions = 1
        var description: String {
            "seed \(seed): " + (failures.isEmpty ? "ok (converged \(convergedAtMs.map { "\($0 - healAtMs) ms" } ?? "?") after heal)"
                                                 : failures.joined(separator: "; "))
        }
    }

    /// The issue's named failures, scripted, and the random schedules.
    enum Scenario: Equatable {
        case random
        /// Active uplink goes down; everything back on the other is lost for 2 s (the lost ACK).
        case ackLost
        /// Uplink 0's return direction is broken from the start.
        case oneWayAtStart
        /// 15 % loss each way on both uplinks while uplink 0 flaps, then the loss stops.
        case lossyFlaps
    }

    let seed: UInt64
    let scenario: Scenario
    var policy: PolicyConfig
    var net: SimNetwork
    var client: SimClient
    var gateway: SimGateway
    var now: UInt64 = 0
    let healAtMs: UInt64
    let goodUplink: Int
    let spoofPct: Int
    var rng: SeededRandom
    var trace: [String] = []
    let tracing: Bool

    init(seed: UInt64, scenario: Scenario = .random, tracing: Bool = false) {
        self.seed = seed
        self.scenario = scenario
        self.tracing = tracing
        var r = SeededRandom(seed: seed)
        var p = PolicyConfig()
        if r.next() % 4 == 0 && scenario == .random {
            p.maxSwitchesPerMinute = 1000 // defaults otherwise: probes 200 ms, dead after 1 s
        } else {
            p.probeIntervalMs = 50
            p.standbyProbeIntervalMs = 200
            p.deadAfterMs = 300
            p.stableWindowMs = 1000
            p.switchCooldownMs = 200
            p.maxSwitchesPerMinute = 1000
        }
        policy = p
        let uplinks = scenario == .random ? 2 + Int(r.next() % 2) : 2
        net = SimNetwork(uplinks: uplinks, seed: r.next())
        client = SimClient(policy: p, uplinks: uplinks, seed: r.next(), rekeyEveryMs: 2000 + r.next() % 4000, now: 0)
        gateway = SimGateway(policy: p, seed: r.next())
        switch scenario {
        case .random:
            healAtMs = 1000 + r.next() % 8000
            goodUplink = Int(r.next() % UInt64(uplinks))
            spoofPct = r.next() % 3 == 0 ? 5 : 0
        case .ackLost:
            healAtMs = 4000
            goodUplink = 1
            spoofPct = 0
        case .oneWayAtStart:
            healAtMs = 0
            goodUplink = 1
            spoofPct = 0
            net.uplinks[0].down.broken = true
        case .lossyFlaps:
            healAtMs = 7000
            goodUplink = 0
            spoofPct = 0
            for u in 0..<2 {
                net.uplinks[u].up.dropPct = 15
                net.uplinks[u].down.dropPct = 15
            }
        }
        rng = r
        client.tracing = tracing
    }

    /// Bound after the heal: notice a dead active path, validate and REATTACH on the good one
    /// (probes on standbys every StandbyProbeIntervalMs), with the issue's max(5 probes, 1 s) for
    /// the exchange itself; a client still without a session retries its handshake every second on
    /// each uplink in turn.
    var boundMs: UInt64 {
        let exchange = max(policy.probeIntervalMs * 5, 1000)
        let handshakeRotation = UInt64(net.uplinks.count) * 1000
        return policy.deadAfterMs + policy.standbyProbeIntervalMs + exchange + handshakeRotation
    }

    private mutating func log(_ s: String) {
        if tracing { trace.append("\(now): \(s)") }
    }

    /// The scripted scenarios' faults, at their times; returns when the next change is due.
    private mutating func scriptedFaults() -> UInt64 {
        switch scenario {
        case .random, .oneWayAtStart:
            return UInt64.max
        case .ackLost:
            if now < 2000 { return 2000 }
            log("uplink 0 link down; uplink 1 loses everything towards the client for 2 s")
            net.uplinks[0].linkUp = false
            client.link(0, up: false, now: now, net: &net)
            net.uplinks[1].down.broken = true
            return UInt64.max
        case .lossyFlaps:
            if now < 1000 { return 1000 }
            let up = !net.uplinks[0].linkUp
            net.uplinks[0].linkUp = up
            log("uplink 0 link \(up ? "up" : "down") (15 % loss both ways on both uplinks)")
            client.link(0, up: up, now: now, net: &net)
            return now + 1000
        }
    }

    /// Random faults until the heal.
    private mutating func changeFaults() {
        let u = Int(rng.next() % UInt64(net.uplinks.count))
        switch rng.next() % 10 {
        case 0:
            let up = !net.uplinks[u].linkUp
            net.uplinks[u].linkUp = up
            log("uplink \(u) link \(up ? "up" : "down")")
            client.link(u, up: up, now: now, net: &net)
        case 1:
            net.uplinks[u].address = "c\(u):\(2 + rng.next() % 1000)"
            log("uplink \(u) NAT rebinds to \(net.uplinks[u].address)")
        default:
            var d = SimDirection()
            d.broken = rng.next() % 5 == 0
            d.dropPct = Int(rng.next() % 60)
            d.duplicatePct = Int(rng.next() % 20)
            d.delayMs = 1...(1 + rng.next() % 80)
            if rng.next() % 2 == 0 { net.uplinks[u].up = d } else { net.uplinks[u].down = d }
            log("uplink \(u) faults up=\(net.uplinks[u].up) down=\(net.uplinks[u].down)")
        }
    }

    private mutating func heal() {
        let g = goodUplink
        if scenario == .lossyFlaps {
            for u in net.uplinks.indices {
                net.uplinks[u].up = SimDirection()
                net.uplinks[u].down = SimDirection()
            }
        }
        net.uplinks[g].up = SimDirection(delayMs: 1...5)
        net.uplinks[g].down = SimDirection(delayMs: 1...5)
        if !net.uplinks[g].linkUp {
            net.uplinks[g].linkUp = true
            client.link(g, up: true, now: now, net: &net)
        }
        log("heal: uplink \(g) works both ways")
    }

    private mutating func deliver() {
        for p in net.due(now) {
            if p.toGateway {
                if spoofPct > 0, p.payload.isControl, net.chance(spoofPct) {
                    // An on-path attacker replays the frame from an address it chose, possibly first.
                    net.injectAtGateway(p.payload, from: "x\(rng.next() % 4):666", uplink: p.uplink, now: now)
                }
                gateway.receive(p, now: now, net: &net)
            } else {
                client.receive(p, now: now, net: &net)
            }
        }
    }

    /// Whether both sides agree right now, and if not, why.
    func disagreement() -> String? {
        guard let s = gateway.session else { return "gateway has no session" }
        guard s.id == client.session else { return "session ids differ" }
        guard s.isLive, client.orchestrator.state != .terminated else { return "session ended" }
        // DEGRADED is a policy verdict on a path that still works (lossy, no stable alternative
        // yet); what must hold is agreement and traffic. RECOVERING must not last.
        guard client.orchestrator.state != .recovering, client.orchestrator.state != .birth else {
            return "client is \(client.orchestrator.state.rawValue)"
        }
        guard let a = client.active else { return "client has no active path" }
        guard s.bound == net.uplinks[SimClient.uplink(of: a)].address else {
            return "client on uplink \(SimClient.uplink(of: a)) (\(net.uplinks[SimClient.uplink(of: a)].address)), gateway bound to \(s.bound ?? "nothing")"
        }
        guard client.orchestrator.bindingVersion == s.bindingVersion else {
            return "binding_version client \(client.orchestrator.bindingVersion) gateway \(s.bindingVersion)"
        }
        guard let c = client.lastDataMs, elapsedMs(now, since: c) <= 200 else { return "no data reaches the client" }
        guard let g = gateway.lastDataMs, elapsedMs(now, since: g) <= 200 else { return "no data reaches the gateway" }
        if let last = gateway.rejectsSent.last, elapsedMs(now, since: last.at) < 500 { return "gateway still rejects (\(last.reason.rawValue))" }
        return nil
    }

    mutating func run() -> Outcome {
        var outcome = Outcome(seed: seed)
        outcome.healAtMs = healAtMs
        let bound = boundMs
        outcome.boundMs = bound
        let end = healAtMs + bound + 1000
        var nextFault = scenario == .random ? rng.next() % 500 : 0
        var healed = false
        var checkedBound = false
        client.start(now: now, net: &net)
        var nextTick: UInt64 = 10
        var nextGatewayTick: UInt64 = 10
        var nextData: UInt64 = 20
        // After `end` the run goes on (at most 500 ms) only until both sides agree again: a switch
        // the client chose (a preemption) may be in flight at that instant.
        var settling = false
        while now <= end || (settling && now <= end + 500) {
            if now > end && !settling { settling = true }
            if settling && disagreement() == nil { break }
            var t = min(nextTick, nextGatewayTick, nextData, settling ? end + 501 : end + 1)
            if !healed { t = min(t, nextFault, healAtMs) }
            if let d = net.nextDelivery { t = min(t, d) }
            now = max(now, t)
            if now > end && !settling { settling = true; continue }
            deliver()
            if !healed && now >= healAtMs {
                healed = true
                heal()
            } else if !healed && now >= nextFault {
                if scenario == .random {
                    changeFaults()
                    nextFault = now + 100 + rng.next() % 900
                } else {
                    nextFault = scriptedFaults()
                }
            }
            if now >= nextTick {
                client.tick(now: now, net: &net)
                nextTick = now + 10
            }
            if now >= nextGatewayTick {
                gateway.tick(now: now, net: &net)
                nextGatewayTick = now + 10
            }
            if now >= nextData {
                client.sendData(now: now, net: &net)
                gateway.sendData(now: now, net: &net)
                nextData = now + 20
            }
            if healed, outcome.convergedAtMs == nil, now >= healAtMs + 200, disagreement() == nil { outcome.convergedAtMs = now }
            if healed, !checkedBound, now >= healAtMs + bound {
                checkedBound = true
                if outcome.convergedAtMs == nil, let why = disagreement() {
                    outcome.failures.append("not converged \(bound) ms after heal: \(why)")
                }
            }
        }
        if let why = disagreement() { outcome.failures.append("diverged again by \(now): \(why)") }
        checkInvariants(&outcome)
        outcome.switches = gateway.session?.switches ?? 0
        outcome.sessions = client.sessionsStarted
        return outcome
    }

    private func checkInvariants(_ outcome: inout Outcome) {
        // binding_version never goes back within a session.
        var last: [SessionID: UInt64] = [:]
        for (sid, v) in gateway.versions {
            if v < last[sid, default: 0] { outcome.failures.append("binding_version went back \(last[sid]!) -> \(v)"); break }
            last[sid] = v
        }
        // Nothing sent to an address that never proved itself beyond 3x what came from it.
        for (address, sent) in net.gatewaySent where address.hasPrefix("x") {
            let received = net.gatewayReceived[address, default: 0]
            if sent > received * 3 { outcome.failures.append("amplification to \(address): sent \(sent) for \(received)") }
        }
    }
}
