@testable import JVPNCore

/// One seeded run: the pure client and gateway cores over a simulated network that drops,
/// duplicates, reorders and delays every message kind, breaks single directions, flaps links,
/// rebinds NATs and lets an on-path attacker replay client frames from a third-party address. A
/// quarter of the random runs (and the TCP scenarios) give every uplink a TCP path as well, whose
/// connection resets (a new connection, a new address for the gateway) and stalls (a TCP path makes
/// a run about 1.8x as long: a quarter keeps the CI's unit tests within their budget).
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
        /// The same with TCP paths: uplink 1's TCP connection still answers for 150 ms (so it is
        /// alive when the REATTACH moves onto it), then everything the gateway sends on it is held,
        /// and from 450 ms what the client writes too (its window is spent), both until the
        /// backed-off retransmissions 2.5 s after the heal. Nothing written to it meanwhile may
        /// reach the gateway as a stale REATTACH after the session converged.
        case ackLostOverTcp
        /// Uplink 0's return direction is broken from the start.
        case oneWayAtStart
        /// 15 % loss each way on both uplinks while uplink 0 flaps, then the loss stops.
        case lossyFlaps
        /// The same for twice as long, with a gateway whose `MaxSwitchesPerMinute` (2) is far below
        /// the client's (30), as an operator may set it: the flaps spend the gateway's budget, and
        /// a move the client wants (back to the preferred uplink, off a lossy one) is refused
        /// RATE_LIMITED while the path it is on works. That refusal must cost the session nothing.
        /// UDP only: a TCP path that reconnects has a new address, which the gateway binds only
        /// within its budget (the session waits for it, by the gateway's policy).
        case lossyFlapsGatewayBudgetSpent
        /// UDP blocked both ways on every uplink from the start (TCP works): attach over TCP; at
        /// the heal UDP passes on one uplink, and the session must be back on UDP soon after.
        case udpBlocked
        /// UDP blocked throughout; the TCP connections reset and stall at random until the heal.
        case tcpFaults
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
    let tcp: Bool
    /// From then on the session must be on a UDP path (UDP came back at the heal).
    var requireUDPFromMs: UInt64?
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
        var gatewayPolicy = p
        if scenario == .lossyFlapsGatewayBudgetSpent {
            policy.maxSwitchesPerMinute = 30
            gatewayPolicy.maxSwitchesPerMinute = 2
        }
        let uplinks = scenario == .random ? 2 + Int(r.next() % 2) : 2
        net = SimNetwork(uplinks: uplinks, seed: r.next())
        switch scenario {
        case .random: tcp = r.next() % 4 == 0
        case .ackLost, .oneWayAtStart, .lossyFlaps, .lossyFlapsGatewayBudgetSpent: tcp = false
        case .udpBlocked, .tcpFaults, .ackLostOverTcp: tcp = true
        }
        client = SimClient(policy: policy, uplinks: uplinks, tcp: tcp, seed: r.next(), rekeyEveryMs: 2000 + r.next() % 4000, now: 0)
        gateway = SimGateway(policy: gatewayPolicy, seed: r.next())
        switch scenario {
        case .random:
            healAtMs = 1000 + r.next() % 8000
            goodUplink = Int(r.next() % UInt64(uplinks))
            spoofPct = r.next() % 3 == 0 ? 5 : 0
        case .ackLost, .ackLostOverTcp:
            healAtMs = 4000
            goodUplink = 1
            spoofPct = 0
        case .oneWayAtStart:
            healAtMs = 0
            goodUplink = 1
            spoofPct = 0
            net.uplinks[0].down.broken = true
        case .lossyFlaps, .lossyFlapsGatewayBudgetSpent:
            healAtMs = scenario == .lossyFlaps ? 7000 : 13000
            goodUplink = 0
            spoofPct = 0
            for u in 0..<2 {
                net.uplinks[u].up.dropPct = 15
                net.uplinks[u].down.dropPct = 15
            }
        case .udpBlocked, .tcpFaults:
            healAtMs = scenario == .udpBlocked ? 6000 : 7000
            goodUplink = Int(r.next() % 2)
            spoofPct = 0
            for u in 0..<2 {
                net.uplinks[u].up.broken = true
                net.uplinks[u].down.broken = true
            }
        }
        rng = r
        client.tracing = tracing
    }

    /// Bound after the heal: notice a dead active path, validate and REATTACH on the good one
    /// (probes on standbys every StandbyProbeIntervalMs), with the issue's max(5 probes, 1 s) for
    /// the exchange itself; a client still without a session retries its handshake every second on
    /// each uplink in turn.
    /// With TCP paths: the rotation covers them too, after the 2 s of UDP alone, and a connection
    /// broken at the heal comes back within 1.5 s.
    var boundMs: UInt64 {
        let exchange = max(policy.probeIntervalMs * 5, 1000)
        let paths = UInt64(net.uplinks.count) * (tcp ? 2 : 1)
        let handshakeRotation = paths * 1000 + (tcp ? ClientOrchestrator.transportFallbackMs + Simulation.maxReconnectMs : 0)
        return policy.deadAfterMs + policy.standbyProbeIntervalMs + exchange + handshakeRotation
    }

    /// A reset TCP connection is back after 200 ms to this.
    static let maxReconnectMs: UInt64 = 1500

    /// After UDP comes back: noticed by a standby probe, stable for StableWindowMs, moved to once
    /// the cooldown allows, one exchange.
    var udpReturnBoundMs: UInt64 {
        policy.standbyProbeIntervalMs * 2 + policy.stableWindowMs + policy.switchCooldownMs + max(policy.probeIntervalMs * 5, 1000)
    }

    private mutating func log(_ s: String) {
        if tracing { trace.append("\(now): \(s)") }
    }

    /// The scripted scenarios' faults, at their times; returns when the next change is due.
    private mutating func scriptedFaults() -> UInt64 {
        switch scenario {
        case .random, .oneWayAtStart, .udpBlocked:
            return UInt64.max
        case .tcpFaults:
            tcpFault(Int(rng.next() % 2))
            return now + 100 + rng.next() % 800
        case .ackLost, .ackLostOverTcp:
            if now < 2000 { return 2000 }
            if now < 2150 {
                log("uplink 0 link down; uplink 1 loses everything towards the client for 2 s")
                setLink(0, up: false)
                net.uplinks[1].down.broken = true
                return scenario == .ackLostOverTcp ? 2150 : UInt64.max
            }
            if now < 2450 {
                net.uplinks[1].tcp.returnStalledUntilMs = healAtMs + 2500
                log("uplink 1's TCP connection holds what the gateway sends until \(healAtMs + 2500)")
                return 2450
            }
            net.uplinks[1].tcp.stalledUntilMs = healAtMs + 2500
            log("uplink 1's TCP connection holds what the client writes until \(healAtMs + 2500)")
            return UInt64.max
        case .lossyFlaps, .lossyFlapsGatewayBudgetSpent:
            if now < 1000 { return 1000 }
            log("15 % loss both ways on both uplinks")
            setLink(0, up: !net.uplinks[0].linkUp)
            return now + 1000
        }
    }

    /// A TCP connection resets (the client hears of it, a new one follows) or stalls silently.
    private mutating func tcpFault(_ u: Int) {
        guard net.uplinks[u].tcp.connected else { return }
        if rng.next() % 2 == 0 {
            let back = now + 200 + rng.next() % (Simulation.maxReconnectMs - 200)
            log("uplink \(u) TCP connection \(net.tcpAddress(u)) resets; a new one at \(back)")
            net.resetStream(u, reconnectAtMs: back)
            client.stream(u, up: false, now: now, net: &net)
        } else {
            net.uplinks[u].tcp.stalledUntilMs = now + 100 + rng.next() % 1400
            log("uplink \(u) TCP connection stalls until \(net.uplinks[u].tcp.stalledUntilMs)")
        }
    }

    /// A link change: the uplink's TCP connection breaks with its link and comes back after it.
    private mutating func setLink(_ u: Int, up: Bool) {
        net.uplinks[u].linkUp = up
        log("uplink \(u) link \(up ? "up" : "down")")
        client.link(u, up: up, now: now, net: &net)
        if !up && tcp && net.uplinks[u].tcp.connected {
            net.resetStream(u, reconnectAtMs: now + 200 + rng.next() % (Simulation.maxReconnectMs - 200))
            client.stream(u, up: false, now: now, net: &net)
        }
    }

    /// Connections due to come back (on a working link) come back.
    private mutating func reconnectStreams() {
        for u in net.uplinks.indices where tcp && !net.uplinks[u].tcp.connected && net.uplinks[u].linkUp {
            guard let at = net.uplinks[u].tcp.reconnectAtMs, now >= at else { continue }
            net.reconnectStream(u)
            log("uplink \(u) new TCP connection \(net.tcpAddress(u))")
            client.stream(u, up: true, now: now, net: &net)
        }
    }

    /// Random faults until the heal.
    private mutating func changeFaults() {
        let u = Int(rng.next() % UInt64(net.uplinks.count))
        switch rng.next() % (tcp ? 12 : 10) {
        case 0:
            setLink(u, up: !net.uplinks[u].linkUp)
        case 10, 11:
            tcpFault(u)
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
        if scenario == .lossyFlaps || scenario == .lossyFlapsGatewayBudgetSpent {
            for u in net.uplinks.indices {
                net.uplinks[u].up = SimDirection()
                net.uplinks[u].down = SimDirection()
            }
        }
        // A connection that backed off its retransmissions resumes only after the heal.
        if scenario != .ackLostOverTcp {
            for u in net.uplinks.indices { net.uplinks[u].tcp.stalledUntilMs = 0 }
        }
        if scenario != .tcpFaults {
            net.uplinks[g].up = SimDirection(delayMs: 1...5)
            net.uplinks[g].down = SimDirection(delayMs: 1...5)
        }
        if scenario == .udpBlocked { requireUDPFromMs = now + udpReturnBoundMs }
        if !net.uplinks[g].linkUp { setLink(g, up: true) }
        log("heal: uplink \(g) works both ways\(scenario == .tcpFaults ? " over TCP (UDP stays blocked)" : "")")
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
        guard s.bound == SimClient.address(of: a, net) else {
            return "client on path \(a) (\(SimClient.address(of: a, net))), gateway bound to \(s.bound ?? "nothing")"
        }
        if let from = requireUDPFromMs, now >= from, SimClient.isTCP(a) { return "still on TCP \(now - from + udpReturnBoundMs) ms after UDP came back" }
        guard client.orchestrator.bindingVersion == s.bindingVersion else {
            return "binding_version client \(client.orchestrator.bindingVersion) gateway \(s.bindingVersion)"
        }
        guard let c = client.lastDataMs, elapsedMs(now, since: c) <= 200 else { return "no data reaches the client" }
        guard let g = gateway.lastDataMs, elapsedMs(now, since: g) <= 200 else { return "no data reaches the gateway" }
        // A reject storm (STALE_VERSION after a lost ACK) is a disagreement even while data flows. A
        // RATE_LIMITED one is not: with everything above agreeing, it refused a move the client
        // asked for by preference, and the working binding stays (the client backs off).
        if let last = gateway.rejectsSent.last, last.reason != .rateLimited, elapsedMs(now, since: last.at) < 500 {
            return "gateway still rejects (\(last.reason.rawValue))"
        }
        return nil
    }

    mutating func run() -> Outcome {
        var outcome = Outcome(seed: seed)
        outcome.healAtMs = healAtMs
        let bound = boundMs
        outcome.boundMs = bound
        let end = healAtMs + max(bound, scenario == .udpBlocked ? udpReturnBoundMs + 500 : 0) + 1000
        var nextFault = scenario == .random ? rng.next() % 500 : 0
        var healed = false
        var checkedBound = false
        client.start(now: now, net: &net)
        var nextTick: UInt64 = 10
        var nextGatewayTick: UInt64 = 10
        var nextData: UInt64 = 20
        // After `end` the run goes on only until both sides agree again: a switch the client chose
        // (a preemption) may be in flight at that instant. It completes, or the client gives it up
        // and confirms the path it is on, within the give-up time and one more exchange.
        var settle: UInt64 = 0
        var settling = false
        func settleMs(_ c: SimClient) -> UInt64 { c.orchestrator.preferenceMoveGiveUpMs(to: c.orchestrator.attempt?.path) + 500 }
        while now <= end || (settling && now <= end + settle) {
            if now > end && !settling { settling = true; settle = settleMs(client) }
            if settling && disagreement() == nil { break }
            var t = min(nextTick, nextGatewayTick, nextData, settling ? end + settle + 1 : end + 1)
            if !healed { t = min(t, nextFault, healAtMs) }
            if let d = net.nextDelivery { t = min(t, d) }
            for u in net.uplinks.indices { if let r = net.uplinks[u].tcp.reconnectAtMs, r > now { t = min(t, r) } }
            now = max(now, t)
            if now > end && !settling { settling = true; settle = settleMs(client); continue }
            deliver()
            reconnectStreams()
            if !healed && now >= healAtMs {
                healed = true
                if scenario == .udpBlocked, let why = disagreement() {
                    outcome.failures.append("not attached over TCP while UDP was blocked: \(why)")
                }
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
        if scenario == .ackLostOverTcp, let c = outcome.convergedAtMs,
           let late = gateway.rejectsSent.first(where: { $0.at > c && $0.reason == .staleVersion }) {
            outcome.failures.append("STALE_VERSION reject at \(late.at), after converging at \(c)")
        }
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
