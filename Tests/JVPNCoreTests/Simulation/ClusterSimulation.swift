@testable import JVPNCore

/// One seeded run of a gateway cluster: the real `ClientOrchestrator` (two uplinks, a path to each
/// of `gateways` gateways per uplink) and one real clustered `GatewayCore` per gateway, over the CAS
/// store model with request latency, watch delays and leases. Gateways crash (losing everything)
/// and restart, lose the store for a while, and the uplinks drop, duplicate and delay packets; after
/// `healAtMs` everything works again. Checked after every step: a gateway forwards data only while
/// its lease holds and its view of the store names it owner, the store's owner changes only
/// through a claim, and the client's binding_version never goes back within a session. Checked at
/// the end: the client converged onto the record's owner, with data flowing both ways, on the
/// preferred path (the first uplink to the first gateway: PreemptToPreferred brings it back).
struct ClusterSimulation {
    struct Gateway {
        let name: String
        var core: GatewayCore<String>?
        /// Session keys as epochs (current, next, previous) and the new session's, as SimGateway.
        var current: UInt64?, next: UInt64?, previous: UInt64?, pending: UInt64?
        var held: (handshake: UInt64, from: String)?
        var windows: [UInt64: ReplayWindow] = [:]
        var storeReachable = true
        var watchCursor = 0
        var lastDataMs: UInt64?
    }

    struct Packet {
        var payload: SimPayload
        var uplink: Int
        var gateway: Int
        var toGateway: Bool
        var resume: ReasonCode?
    }

    let seed: UInt64
    var policy: PolicyConfig
    var rng: SeededRandom
    var now: UInt64 = 0
    var store = SimStore()
    var gws: [Gateway]
    var client: ClientOrchestrator
    var session: SessionID
    var sessionSerial: UInt64 = 1
    var keys: (current: UInt64?, gateway: Int?) = (nil, nil)
    var pendingHandshake: (serial: UInt64, gateway: Int)?
    var handshakeSerial: UInt64 = 0
    var clientWindows: [UInt64: ReplayWindow] = [:]
    var counters: [UInt64: UInt64] = [:]
    var epochs: UInt64 = 1_000_000
    var active: UInt32?
    var clientLastDataMs: UInt64?
    var queue: [(at: UInt64, seq: UInt64, packet: Packet)] = []
    var seqNo: UInt64 = 0
    var storeQueue: [(at: UInt64, gateway: Int, request: StoreRequest, reachable: Bool)] = []
    var dropPct = [0, 0]
    var linkUp = [true, true]
    let healAtMs: UInt64
    let leaseTtlMs: UInt64 = 2000
    var failures: [String] = []
    /// Since when more than one gateway considers itself the serving owner of the session.
    var dualActiveSinceMs: UInt64?
    var lastVersion: (SessionID, UInt64)?
    var sessionsStarted = 1
    var ownerChanges = 0
    /// Resume initiations sent to move the session back to a preferred gateway.
    var preemptions = 0
    var trace: [String] = []
    var tracing = false

    init(seed: UInt64, gateways: Int = 3, tracing: Bool = false) {
        self.seed = seed
        self.tracing = tracing
        var r = SeededRandom(seed: seed)
        var p = PolicyConfig()
        p.probeIntervalMs = 50
        p.standbyProbeIntervalMs = 200
        p.deadAfterMs = 300
        p.maxSwitchesPerMinute = 1000
        p.stableWindowMs = 1000
        p.transportLossTtlMs = 30_000
        policy = p
        gws = (0..<gateways).map { Gateway(name: "gw\($0)") }
        session = ClusterSimulation.sid(seed, 1)
        client = ClientOrchestrator(policy: p, paths: ClusterSimulation.paths(gateways), noncePrefix: seed, nowMs: 0)
        healAtMs = 3000 + r.next() % 6000
        rng = r
        for g in gws.indices { gws[g].core = freshCore(g) }
    }

    static func paths(_ gateways: Int) -> [PathCandidate] {
        (0..<2).flatMap { u in (0..<gateways).map { g in PathCandidate(id: UInt32(u * 16 + g), priority: u, gateway: g) } }
    }

    static func sid(_ seed: UInt64, _ serial: UInt64) -> SessionID {
        var r = SeededRandom(seed: seed ^ 0x5eed &+ serial)
        let x = r.next()
        return try! SessionID(bytes: withUnsafeBytes(of: x) { Array($0) })
    }

    func freshCore(_ g: Int) -> GatewayCore<String> {
        var c = GatewayCore<String>(policy: policy, peerCount: 1, seed: seed &+ UInt64(g), nowMs: now,
                                    cluster: ClusterOwnership(node: gws[g].name, peerKeys: ["client"], leaseTtlMs: leaseTtlMs))
        c.leaseRenewed(sentMs: now, nowMs: now)
        return c
    }

    mutating func log(_ s: String) { if tracing { trace.append("\(now): \(s)") } }
    mutating func chance(_ pct: Int) -> Bool { pct > 0 && Int(rng.next() % 100) < pct }

    // MARK: network

    mutating func send(_ p: Packet) {
        guard linkUp[p.uplink], !chance(dropPct[p.uplink]) else { return }
        for _ in 0..<(chance(2) ? 2 : 1) {
            seqNo += 1
            queue.append((now + 1 + rng.next() % 4, seqNo, p))
        }
    }

    mutating func epoch() -> UInt64 { epochs += 1; return epochs }
    mutating func counter(_ e: UInt64) -> UInt64 { let c = counters[e, default: 0]; counters[e] = c + 1; return c }
    static func address(_ uplink: Int) -> String { "c\(uplink)" }

    mutating func controlFrame(_ m: ControlMessage, epoch e: UInt64, paddedTo: Int = 0) -> SimPayload {
        var buf = [UInt8](repeating: 0, count: max(m.encodedLength, paddedTo))
        let n = buf.withUnsafeMutableBytes { m.encode(into: $0.baseAddress!, capacity: $0.count, paddedTo: paddedTo) }
        return .frame(epoch: e, counter: counter(e), control: Array(buf[0..<n]))
    }

    // MARK: client

    mutating func clientPerform(_ actions: [OrchestratorAction]) {
        for a in actions {
            switch a {
            case .sendInitiation(let path), .sendResume(let path, _):
                handshakeSerial += 1
                let g = Int(path % 16), u = Int(path / 16)
                pendingHandshake = (handshakeSerial, g)
                var resume: ReasonCode?
                if case .sendResume(_, let r) = a { resume = r }
                if resume == .betterPath { preemptions += 1 }
                log("client \(resume == nil ? "initiation" : "resume") on uplink \(u) to \(gws[g].name)")
                let ts = Timestamp12(unixNanoseconds: 1_700_000_000_000_000_000 + now * 1_000_000 + handshakeSerial)
                send(Packet(payload: .initiation(session: session, timestamp: ts, handshake: handshakeSerial), uplink: u, gateway: g,
                            toGateway: true, resume: resume))
            case .sendProbe(let path, let seq):
                clientControl(.probe(seq: seq, sentAtNs: now * 1_000_000, pathID: path), path: path)
            case .sendReattach(let path, let reason, let version, let nonce):
                clientControl(.reattachRequest(sessionID: session, bindingVersion: version, pathID: path, nonce: nonce, reason: reason),
                              path: path)
            case .sendPathResponse(let path, let data):
                clientControl(.pathResponse(data: data), path: path)
            case .sendMtuProbe(let path, let seq, let size):
                clientControl(.probe(seq: seq, sentAtNs: now * 1_000_000, pathID: path), path: path, paddedTo: size.map { $0 - 28 - 32 } ?? 0)
            case .sendPathMtu(let path, let size):
                clientControl(.pathMtu(pathID: path, maxDatagram: UInt16(size)), path: path)
            case .activate(let path):
                active = path
            case .stateChanged(let c):
                log("client \(c.from.rawValue) -> \(c.to.rawValue) \(c.reason.rawValue)")
            case .switched(let from, let to, let reason, let ms):
                log("client switch \(String(describing: from)) -> \(to) \(reason.rawValue) \(ms) ms")
            case .audit, .presumedDead, .pathMtuChanged:
                break
            case .terminated(_, let restart):
                active = nil
                if restart {
                    sessionSerial += 1
                    sessionsStarted += 1
                    session = ClusterSimulation.sid(seed, sessionSerial)
                    keys = (nil, nil)
                    pendingHandshake = nil
                    client = ClientOrchestrator(policy: policy, paths: ClusterSimulation.paths(gws.count), noncePrefix: seed &+ sessionSerial,
                                                nowMs: now)
                    clientDo { [now] in $0.tick(nowMs: now) }
                }
            }
        }
        if let v = Optional(client.bindingVersion), v > 0 {
            if let (s, last) = lastVersion, s == session, v < last { failures.append("\(now): client binding_version went back \(last) -> \(v)") }
            lastVersion = (session, v)
        }
    }

    /// Runs one orchestrator call and performs its actions (one access to `client` at a time).
    mutating func clientDo(_ call: (inout ClientOrchestrator) -> [OrchestratorAction]) {
        var o = client
        let a = call(&o)
        client = o
        clientPerform(a)
    }

    mutating func gatewayDo(_ g: Int, _ core: inout GatewayCore<String>, _ call: (inout GatewayCore<String>) -> [GatewayAction<String>]) {
        let a = call(&core)
        gatewayPerform(g, &core, a)
    }

    mutating func clientControl(_ m: ControlMessage, path: UInt32, paddedTo: Int = 0) {
        guard let e = keys.current else { return }
        let f = controlFrame(m, epoch: e, paddedTo: paddedTo)
        send(Packet(payload: f, uplink: Int(path / 16), gateway: Int(path % 16), toGateway: true))
    }

    mutating func clientReceive(_ p: Packet) {
        let path = UInt32(p.uplink * 16 + p.gateway)
        switch p.payload {
        case .initiation:
            return
        case .response(let h, let e):
            guard let pend = pendingHandshake, pend.serial == h else { return }
            pendingHandshake = nil
            keys = (e, pend.gateway)
            log("client handshake answered by \(gws[pend.gateway].name) on uplink \(p.uplink)")
            clientDo { [now] in $0.handshakeCompleted(path: path, nowMs: now) }
        case .frame(let e, let c, let control):
            guard e == keys.current, clientWindows[e, default: ReplayWindow()].update(c) else { return }
            guard let control else {
                clientLastDataMs = now
                return
            }
            guard let m = try? control.withUnsafeBytes({ try ControlMessage.decode($0) }) else { return }
            switch m {
            case .probeReply(let seq, _, let pathID): clientDo { [now] in $0.probeReplied(path: pathID, seq: seq, nowMs: now) }
            case .reattachAck(let s, let v, let n):
                log("client REATTACH_ACK from \(gws[p.gateway].name) binding_version \(v)")
                if s == session { clientDo { [now] in $0.reattachAcked(nonce: n, bindingVersion: v, nowMs: now) } }
            case .reject(let r, let n, let v): clientDo { [now] in $0.reattachRejected(reason: r, nonce: n, bindingVersion: v, nowMs: now) }
            case .pathChallenge(let d): clientDo { [now] in $0.pathChallenged(path: path, data: d, nowMs: now) }
            case .natHint: if path == active { clientDo { [now] in $0.natRebindHinted(nowMs: now) } }
            case .close: clientDo { [now] in $0.closedByPeer(nowMs: now) }
            case .pathMtuAck(let pathID, let size): client.pathMtuReceipted(path: pathID, maxDatagram: Int(size), nowMs: now)
            case .probe, .reattachRequest, .pathResponse, .pathMtu: return
            }
        }
    }

    // MARK: gateways

    mutating func gatewayReceive(_ g: Int, _ p: Packet) {
        guard var core = gws[g].core else { return }
        defer { if gws[g].core != nil { gws[g].core = core } }
        let from = ClusterSimulation.address(p.uplink)
        switch p.payload {
        case .initiation(let sid, let ts, let h):
            let (d, a) = core.initiation(peer: 0, session: sid, timestamp: ts, wallNs: 1_700_000_000_000_000_000 + now * 1_000_000,
                                         from: from, nowMs: now, resume: p.resume)
            switch d {
            case .respondNewSession:
                gws[g].pending = epoch()
                send(Packet(payload: .response(handshake: h, epoch: gws[g].pending!), uplink: p.uplink, gateway: g, toGateway: false))
            case .respondRekey:
                gws[g].next = epoch()
                send(Packet(payload: .response(handshake: h, epoch: gws[g].next!), uplink: p.uplink, gateway: g, toGateway: false))
            case .awaitStore:
                gws[g].held = (h, from)
            case .drop:
                break
            }
            gatewayPerform(g, &core, a)
        case .response:
            return
        case .frame(let e, let c, let control):
            let gw = gws[g]
            guard e == gw.current || e == gw.next || e == gw.previous || e == gw.pending,
                  gws[g].windows[e, default: ReplayWindow()].update(c) else { return }
            if e == gw.pending, let sid = core.pendingSession(ofPeer: 0) {
                gatewayDo(g, &core) { [now] in $0.confirmed(peer: 0, session: sid, from: from, bytes: p.payload.size, nowMs: now) }
            } else if e == gw.next {
                gws[g].previous = gws[g].current
                gws[g].current = e
                gws[g].next = nil
            }
            if let control {
                guard let m = try? control.withUnsafeBytes({ try ControlMessage.decode($0) }) else { return }
                gatewayDo(g, &core) { [now] in $0.control(peer: 0, m, from: from, bytes: p.payload.size, nowMs: now) }
            } else if let s = core.session(ofPeer: 0), s.isLive {
                // Data from the client: forwarded to the LAN. Only the owner may do that.
                let cached = core.cluster?.records[s.id]?.record.owner
                if !(core.cluster?.isServing(nowMs: now) ?? false) || cached != gw.name {
                    failures.append("\(now): \(gw.name) forwards data for \(s.id.hex) without owning it (lease \(core.cluster?.isServing(nowMs: now) ?? false), owner \(cached ?? "-"))")
                }
                gws[g].lastDataMs = now
            }
        }
    }

    mutating func gatewayPerform(_ g: Int, _ core: inout GatewayCore<String>, _ actions: [GatewayAction<String>]) {
        for a in actions {
            switch a {
            case .send(_, let m, let to, let padded):
                guard let e = gws[g].current, let u = (0..<2).first(where: { ClusterSimulation.address($0) == to }) else { continue }
                send(Packet(payload: controlFrame(m, epoch: e, paddedTo: padded), uplink: u, gateway: g, toGateway: false))
            case .sessionOpened:
                gws[g].current = gws[g].pending
                gws[g].pending = nil
                gws[g].previous = nil
                gws[g].next = nil
            case .pendingDropped:
                gws[g].pending = nil
            case .store(let r):
                storeQueue.append((now + 1 + rng.next() % 4, g, r, gws[g].storeReachable))
            case .respondHeld(_, _, let rekey):
                guard let h = gws[g].held, let u = (0..<2).first(where: { ClusterSimulation.address($0) == h.from }) else { continue }
                gws[g].held = nil
                let e = epoch()
                if rekey { gws[g].next = e } else { gws[g].pending = e }
                send(Packet(payload: .response(handshake: h.handshake, epoch: e), uplink: u, gateway: g, toGateway: false))
            case .dropHeld:
                gws[g].held = nil
            case .released:
                log("\(gws[g].name) released the session")
                gws[g].current = nil
                gws[g].next = nil
                gws[g].previous = nil
                gws[g].pending = nil
            case .ownershipChanged(_, _, let c):
                log("\(gws[g].name) OWNERSHIP_CHANGE \(c.fromNode) -> \(c.toNode) \(c.reason.rawValue)")
            case .bindingChanged, .stateChanged, .switched, .security, .audit, .arrived:
                break
            }
        }
    }

    mutating func gatewayTick(_ g: Int) {
        guard var core = gws[g].core else { return }
        if gws[g].storeReachable, now % (leaseTtlMs / 3) < 10 { core.leaseRenewed(sentMs: now, nowMs: now) }
        // The watch: every change since the cursor, once it is `watchDelayMs` old.
        if gws[g].storeReachable {
            while gws[g].watchCursor < store.log.count {
                let c = store.log[gws[g].watchCursor]
                gatewayDo(g, &core) { [now] in $0.recordChanged(session: c.session, c.stored, revision: c.revision, nowMs: now) }
                gws[g].watchCursor += 1
            }
        }
        gatewayDo(g, &core) { [now] in $0.tick(nowMs: now) }
        if now % 1000 == 0 { gatewayDo(g, &core) { [now] in $0.maintenance(nowMs: now, wallMs: 1_700_000_000_000 + now) } }
        // Traffic from the LAN to the client, as the data plane forwards it.
        if let s = core.session(ofPeer: 0), s.isLive, let b = s.bound, let e = gws[g].current,
           let u = (0..<2).first(where: { ClusterSimulation.address($0) == b }), now % 20 == 0 {
            send(Packet(payload: .frame(epoch: e, counter: counter(e), control: nil), uplink: u, gateway: g, toGateway: false))
        }
        gws[g].core = core
    }

    mutating func serveStore() {
        let due = storeQueue.filter { $0.at <= now }
        storeQueue.removeAll { $0.at <= now }
        for item in due {
            guard var core = gws[item.gateway].core else { continue }
            let reachable = item.reachable && gws[item.gateway].storeReachable
            let result = reachable ? store.apply(item.request) : StoreResult.unreachable
            if case .succeeded = result, case .claim = item.request { ownerChanges += 1 }
            gatewayDo(item.gateway, &core) { [now] in $0.storeAnswered(session: item.request.session, result, nowMs: now) }
            gws[item.gateway].core = core
        }
    }

    // MARK: faults

    mutating func fault() {
        let g = Int(rng.next() % UInt64(gws.count))
        switch rng.next() % 6 {
        case 0:
            if gws[g].core != nil {
                log("\(gws[g].name) crashes")
                gws[g] = Gateway(name: gws[g].name, core: nil)
            } else {
                log("\(gws[g].name) restarts")
                gws[g].core = freshCore(g)
                gws[g].storeReachable = true
            }
        case 1:
            gws[g].storeReachable.toggle()
            log("\(gws[g].name) \(gws[g].storeReachable ? "reaches" : "loses") the store")
        case 2:
            let u = Int(rng.next() % 2)
            linkUp[u].toggle()
            log("uplink \(u) \(linkUp[u] ? "up" : "down")")
            clientDo { [now, linkUp] in $0.linkChanged(uplinkPriority: u, up: linkUp[u], nowMs: now) }
        default:
            let u = Int(rng.next() % 2)
            dropPct[u] = Int(rng.next() % 40)
            log("uplink \(u) drops \(dropPct[u]) %")
        }
    }

    mutating func heal() {
        log("heal")
        for g in gws.indices {
            if gws[g].core == nil { gws[g].core = freshCore(g) }
            gws[g].storeReachable = true
        }
        dropPct = [0, 0]
        for u in 0..<2 where !linkUp[u] {
            linkUp[u] = true
            clientDo { [now] in $0.linkChanged(uplinkPriority: u, up: true, nowMs: now) }
        }
    }

    /// No dual-active: beyond the time a watch takes to deliver a change (one tick here), at most
    /// one gateway that reaches the store holds the session live while its lease holds and its
    /// store view names it. (A gateway cut off from the store serves on until its lease ends: the
    /// window the design accepts, bounded by the data-plane check in `gatewayReceive`.)
    mutating func checkSingleOwner() {
        let serving = gws.filter { gw in
            guard gw.storeReachable, let c = gw.core, let s = c.session(ofPeer: 0), s.isLive, let cl = c.cluster else { return false }
            return cl.isServing(nowMs: now) && cl.records[s.id]?.record.owner == gw.name
        }
        guard serving.count > 1 else {
            dualActiveSinceMs = nil
            return
        }
        let since = dualActiveSinceMs ?? now
        dualActiveSinceMs = since
        if now - since > 20 { failures.append("\(now): dual-active since \(since): \(serving.map(\.name))") }
    }

    /// Why the cluster has not converged yet (nil: it has).
    func disagreement() -> String? {
        guard client.state == .attached || client.state == .volatile || client.state == .degraded else { return "client is \(client.state.rawValue)" }
        guard let owner = store.records[session]?.record.owner, let g = gws.firstIndex(where: { $0.name == owner }) else {
            return "no record for the client's session"
        }
        guard let s = gws[g].core?.session(ofPeer: 0), s.id == session, s.isLive else { return "owner \(owner) does not serve it" }
        guard keys.gateway == g else { return "client keys are with gateway \(String(describing: keys.gateway)), owner is \(owner)" }
        guard let c = clientLastDataMs, now - c <= 100 else { return "no data reaches the client" }
        guard let d = gws[g].lastDataMs, now - d <= 100 else { return "no data reaches \(owner)" }
        return nil
    }

    mutating func run() -> [String] {
        clientDo { [now] in $0.tick(nowMs: now) }
        var nextFault: UInt64 = 500 + rng.next() % 1000
        var healed = false
        let bound: UInt64 = 8000
        let end = healAtMs + bound
        var converged: UInt64?
        // Once converged, one more second must keep agreeing; then the run stops.
        while now < min(end, (converged ?? end) + 1000) {
            // The next instant anything happens: a delivery, a store answer, a tick, data, a fault.
            var next = (now / 10 + 1) * 10
            next = min(next, now % 20 < 5 ? now - now % 20 + 5 : now - now % 20 + 25)
            if let q = queue.map(\.at).min() { next = min(next, max(q, now + 1)) }
            if let q = storeQueue.map(\.at).min() { next = min(next, max(q, now + 1)) }
            if !healed { next = min(next, max(nextFault, now + 1), max(healAtMs, now + 1)) }
            now = next
            let due = queue.filter { $0.at <= now }.sorted { ($0.at, $0.seq) < ($1.at, $1.seq) }
            queue.removeAll { $0.at <= now }
            for d in due { if d.packet.toGateway { gatewayReceive(d.packet.gateway, d.packet) } else { clientReceive(d.packet) } }
            serveStore()
            if !healed && now >= healAtMs { healed = true; heal() }
            if !healed && now >= nextFault { fault(); nextFault = now + 200 + rng.next() % 1500 }
            if now % 10 == 0 {
                clientDo { [now] in $0.tick(nowMs: now) }
                for g in gws.indices { gatewayTick(g) }
                checkSingleOwner()
            }
            if now % 20 == 5, let a = active, let e = keys.current, client.state != .birth, client.state != .terminated {
                send(Packet(payload: .frame(epoch: e, counter: counter(e), control: nil), uplink: Int(a / 16), gateway: Int(a % 16),
                            toGateway: true))
            }
            // Everything works after the heal: the session ends on the preferred path (the first
            // uplink to the first gateway), where no preference moves it any more.
            if healed, converged == nil, now >= healAtMs + 200, disagreement() == nil, active == 0 { converged = now }
        }
        if converged == nil {
            failures.append("not converged \(bound) ms after the heal: \(disagreement() ?? "on path \(active.map(String.init) ?? "?"), not the preferred one")")
        }
        if let why = disagreement() { failures.append("diverged at the end: \(why)") }
        failures += store.violations
        return failures
    }
}
