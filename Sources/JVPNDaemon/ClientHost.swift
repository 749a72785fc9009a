import Glibc
import JVPNCore
import JVPNSystem
import Synchronization

/// One candidate path: an uplink towards one gateway endpoint over one transport kind. A UDP path
/// sends on its uplink's socket; a TCP path has a connection of its own, opened, kept and opened
/// again by its `StreamConnector`.
struct ClientPath {
    let id: UInt32
    let uplink: String
    /// The uplink's index, which is also its UDP socket's index.
    let uplinkIndex: Int
    let kind: TransportKind
    /// Rank of `kind` in the peer's `Transport` list (0 = preferred).
    let transportRank: Int
    let remote: SocketAddress
    /// Index of the endpoint in its kind's list (`[Peer] Endpoint` or `TcpEndpoint`): the n-th of each
    /// names the same gateway (gateways of a cluster do not share keys).
    let gateway: Int
    var localAddress: String
    var localPort: UInt16
    /// TCP: the connection, nil while there is none.
    var connection: TcpConnection?
    var connector = StreamConnector()

    init(id: UInt32, uplink: String, uplinkIndex: Int, kind: TransportKind, transportRank: Int, remote: SocketAddress,
         gateway: Int, localAddress: String, localPort: UInt16) {
        self.id = id
        self.uplink = uplink
        self.uplinkIndex = uplinkIndex
        self.kind = kind
        self.transportRank = transportRank
        self.remote = remote
        self.gateway = gateway
        self.localAddress = localAddress
        self.localPort = localPort
    }

    /// Path ids: uplink * 16 + endpoint for UDP, that plus `tcpIDBase` for TCP.
    static let tcpIDBase: UInt32 = 0x8000

    /// Contract spelling: UPLINK/LOCAL_IP:PORT->REMOTE_IP:PORT, UPLINK/tcp/LOCAL_IP:PORT->REMOTE_IP:PORT
    var name: String {
        switch kind {
        case .udp: return "\(uplink)/\(localAddress):\(localPort)->\(remote.description)"
        case .tcp: return "\(uplink)/tcp/\(localAddress):\(localPort)->\(remote.description)"
        }
    }

    /// Where its frames go and come from; nil for a TCP path without a connection.
    var address: TransportAddress? {
        switch kind {
        case .udp: return TransportAddress(via: .udp(socket: uplinkIndex), address: remote)
        case .tcp: return connection?.address
        }
    }
}

/// The client: one peer (its gateway), several candidate paths, exactly one active. The decisions
/// are the pure `ClientOrchestrator`'s (including when and where to handshake, and REATTACH nonces);
/// this class performs its actions (initiations, probes, REATTACH, PATH_RESPONSE, the data-plane
/// switch) and feeds it facts (netlink, handshake responses, control messages, key age, time).
final class ClientHost: SessionHost, PumpController, @unchecked Sendable {
    var paths: [ClientPath] = []
    /// Each uplink's device MTU (by uplink index): where its paths' MTU search stops.
    var uplinkMtus: [Int] = []
    var active: Int?
    var orchestrator: ClientOrchestrator?
    /// The initiation sent last (its Noise state, the index of the path it went on, whether it is a
    /// resume): only the newest one can complete.
    private var pending: (handshake: InitiatorHandshake, path: Int, resume: ReasonCode?)?
    /// The gateway's latest cookie (from a cookie reply under load) and the path it is bound to.
    private var cookie: (value: MAC16, receivedMs: UInt64, path: Int)?
    /// Per path id: what its probes measured, second by second over the last hour (the timeline's
    /// RTT and loss lines; status JSON `probe_history`). Kept across sessions: it describes the path.
    private var probeHistory: [UInt32: ProbeHistory] = [:]

    /// The mark the uplinks' sockets carry, for the TCP connections too (full tunnel).
    var fwMark: UInt32?

    var peer: PeerRuntime { peers[0] }

    override func sendPath(for p: PeerRuntime) -> TransportAddress? {
        guard let a = active, p.state == .attached || p.state == .volatile || p.state == .degraded || p.state == .recovering else { return nil }
        return paths[a].address
    }

    private func pathIndex(_ id: UInt32) -> Int? { paths.firstIndex { $0.id == id } }

    /// The orchestrator's view of a path: its uplink's priority, its transport kind's rank (a TCP
    /// path is usable once its connection is up, and is a stream: no MTU search), and an MTU search
    /// up to the uplink's MTU for the gateway address's IP version.
    private func candidate(_ pth: ClientPath) -> PathCandidate {
        var c = PathCandidate(id: pth.id, priority: pth.uplinkIndex, transportRank: pth.transportRank, isStream: pth.kind == .tcp,
                              gateway: pth.gateway)
        if pth.kind == .tcp { c.transportUp = pth.connector.isConnected }
        c.mtu = PathMtuSearch(uplinkMtu: pth.uplinkIndex < uplinkMtus.count ? uplinkMtus[pth.uplinkIndex] : UplinkSet.defaultMtu,
                              ipv6: pth.remote.unmapped.family == AF_INET6)
        return c
    }

    override func innerPacketLimit(for p: PeerRuntime) -> Int? {
        guard let a = active else { return nil }
        return orchestrator?.mtu(of: paths[a].id)?.innerCapacity
    }

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
        active = nil
        if let old = pending { usedIndexes.remove(old.handshake.localIndex) }
        pending = nil
        var candidates = paths.map(candidate)
        for i in candidates.indices where sockets[paths[i].uplinkIndex] == nil { candidates[i].linkUp = false }
        var o = ClientOrchestrator(policy: config.policy, paths: candidates,
                                   noncePrefix: UInt64.random(in: .min ... .max, using: &rng), nowMs: nowMs)
        let actions = o.tick(nowMs: nowMs)
        orchestrator = o
        republish()
        perform(actions, nowMs: nowMs)
    }

    /// Builds a fresh initiation and sends it on path `pathIdx`; it replaces any earlier one. With
    /// `resume`, it asks the gateway there to continue the session (InitiationFlags).
    private func sendInitiation(pathIndex pathIdx: Int, resume: ReasonCode? = nil) {
        guard let sid = peer.session else { return }
        if let old = pending { usedIndexes.remove(old.handshake.localIndex) }
        pending = nil
        let index = freshIndex()
        let nowMs = Clock.monotonicMilliseconds()
        let mac2Cookie = cookie.flatMap { c in c.path == pathIdx && elapsedMs(nowMs, since: c.receivedMs) < Cookie.lifetimeMs ? c.value : nil }
        guard let (message, state) = try? Handshake.makeInitiation(
            local: privateKey, remote: peer.publicKey, sessionID: sid, localIndex: index,
            timestamp: Timestamp12(unixNanoseconds: Clock.wallNanoseconds()), flags: InitiationFlags(resume: resume).word,
            cookie: mac2Cookie) else {
            usedIndexes.remove(index)
            return
        }
        pending = (state, pathIdx, resume)
        if let to = paths[pathIdx].address { sendRaw(message, to: to) }
    }

    func handleHandshake(_ bytes: UnsafeRawBufferPointer, from: TransportAddress) {
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
                sendInitiation(pathIndex: pend.path, resume: pend.resume)
            }
            return
        }
        guard bytes[0] == MessageType.response.rawValue else { return }
        lock.withLock {
            guard let pend = pending,
                  let keypair = try? pend.handshake.consumeResponse(bytes, now: Clock.monotonicNanoseconds()) else { return }
            pending = nil
            let p = peer
            // The keys of a resume are another gateway's: the old ones can never open anything again.
            if pend.resume != nil { releaseIndexes(of: p.keyRing) }
            install(keypair, in: p.keyRing, nowNs: Clock.monotonicNanoseconds())
            p.lastAuthenticatedMs = nowMs
            republish()
            // Attaches (first handshake) or notes the rekey; either way the orchestrator probes that
            // path at once, which confirms the new keys to the responder.
            if var o = orchestrator {
                let actions = o.handshakeCompleted(path: paths[pend.path].id, nowMs: nowMs)
                orchestrator = o
                perform(actions, nowMs: nowMs)
            }
        }
    }

    /// The receive thread's facts, at once, on the receive thread: a probe reply times its path.
    func apply(_ next: () -> ControlFact?) {
        while let fact = next() { applyOne(fact) }
    }

    private func applyOne(_ fact: ControlFact) {
        switch fact {
        case .control(_, let message, _, let from, _):
            handleControl(message, from: from)
        case .connectionClosed(let id):
            connectionClosed(id)
        case .confirm, .refused, .unboundSource:
            break // the client initiates (its keys are confirmed by the response) and binds nothing
        }
    }

    /// A TCP path's connection ended (the gateway closed or reset it, or it broke the framing): the
    /// path is down until its connector opens a new one.
    private func connectionClosed(_ id: UInt64) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            guard let i = paths.firstIndex(where: { $0.connection?.id == id }) else { return }
            let wasUp = paths[i].connector.isConnected
            paths[i].connection = nil
            paths[i].connector.failed(nowMs: nowMs)
            guard wasUp, var o = orchestrator else { return }
            let actions = o.transportChanged(path: paths[i].id, up: false, nowMs: nowMs)
            orchestrator = o
            perform(actions, nowMs: nowMs)
        }
    }

    private func handleControl(_ message: ControlMessage?, from: TransportAddress) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            guard let message else {
                peer.counters.droppedMalformedControl.add(1, ordering: .relaxed)
                return
            }
            guard var o = orchestrator else { return }
            let p = peer
            p.lastAuthenticatedMs = nowMs
            var actions: [OrchestratorAction] = []
            switch message {
            case .probeReply(let seq, let sentAt, let pathID):
                let nowNs = Clock.monotonicNanoseconds()
                let rtt = nowNs >= sentAt && nowNs - sentAt < 60_000_000_000 ? Double(nowNs - sentAt) / 1e6 : nil
                actions = o.probeReplied(path: pathID, seq: seq, nowMs: nowMs, measuredRttMs: rtt)
                // MTU probes are not in the history (nor in the path's loss): only regular probes are.
                if let rtt, !PathMtuSearch.isMtuProbe(seq: seq) {
                    probeHistory[pathID]?.probeAnswered(sentAtMs: sentAt / 1_000_000, rttMs: rtt)
                }
            case .reattachAck(let sid, let version, let nonce):
                guard sid == p.session else { break }
                actions = o.reattachAcked(nonce: nonce, bindingVersion: version, nowMs: nowMs)
            case .reject(let reason, let nonce, let version):
                actions = o.reattachRejected(reason: reason, nonce: nonce, bindingVersion: version, nowMs: nowMs)
            case .pathChallenge(let data):
                // The answer goes back exactly where the challenge came from: that is what it proves.
                guard let pth = paths.first(where: { $0.address == from }) else { break }
                actions = o.pathChallenged(path: pth.id, data: data, nowMs: nowMs)
            case .natHint:
                // The gateway saw our authenticated traffic from an address it has not bound and
                // answered to that address. On the active path's socket that means a NAT re-mapped
                // it, or the gateway's binding is elsewhere: re-bind. On another socket it was a late
                // packet sent there before a switch.
                if let a = active, paths[a].address?.via == from.via { actions = o.natRebindHinted(nowMs: nowMs) }
            case .close(let reason):
                if p.state != .terminated {
                    audit(p, check: "peer_close", pass: true, detail: "gateway closed the session with \(reason.rawValue)")
                    actions = o.closedByPeer(nowMs: nowMs)
                }
            case .pathMtuAck(let pathID, let size):
                o.pathMtuReceipted(path: pathID, maxDatagram: Int(size), nowMs: nowMs)
            case .probe, .reattachRequest, .pathResponse, .pathMtu:
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
                guard let i = pathIndex(id), let to = paths[i].address else { continue }
                let sentNs = Clock.monotonicNanoseconds()
                if sendControl(.probe(seq: seq, sentAtNs: sentNs, pathID: id), peer: p, to: to) {
                    probeHistory[id, default: ProbeHistory()].probeSent(atMs: sentNs / 1_000_000)
                }
            case .sendMtuProbe(let id, let seq, let size):
                guard let i = pathIndex(id), let to = paths[i].address else { continue }
                // Padded so that the IP packet carrying the frame is `size` bytes.
                let padded = size.map { $0 - (orchestrator?.mtu(of: id)?.outerHeaderBytes ?? 28) - Frame.overhead } ?? 0
                sendControl(.probe(seq: seq, sentAtNs: Clock.monotonicNanoseconds(), pathID: id), peer: p, to: to, paddedTo: padded)
            case .sendPathMtu(let id, let maxDatagram):
                guard let i = pathIndex(id), let to = paths[i].address else { continue }
                sendControl(.pathMtu(pathID: id, maxDatagram: UInt16(clamping: maxDatagram)), peer: p, to: to)
            case .pathMtuChanged(let id, let from, let to, let blackHole):
                guard let i = pathIndex(id) else { continue }
                // A size found, changed or lost to a black hole is in the timeline; a path that went
                // down and forgot its size is not news.
                if to != nil {
                    emitAudit(p, AuditRecord(check: "path_mtu", result: blackHole ? "fail" : "pass",
                                             detail: pathMtuDetail(paths[i].name, from: from, to: to, blackHole: blackHole,
                                                                   belowFloor: orchestrator?.mtu(of: id)?.isBelowFloor ?? false)))
                }
                if i == active { changed = true }
            case .sendInitiation(let id):
                guard let i = pathIndex(id) else { continue }
                sendInitiation(pathIndex: i)
            case .sendResume(let id, let reason):
                guard let i = pathIndex(id) else { continue }
                sendInitiation(pathIndex: i, resume: reason)
            case .sendReattach(let id, let reason, let version, let nonce):
                guard let i = pathIndex(id), let sid = p.session, let to = paths[i].address else { continue }
                sendControl(.reattachRequest(sessionID: sid, bindingVersion: version, pathID: id, nonce: nonce, reason: reason),
                            peer: p, to: to)
            case .sendPathResponse(let id, let data):
                guard let i = pathIndex(id), let to = paths[i].address else { continue }
                sendControl(.pathResponse(data: data), peer: p, to: to)
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
            case .presumedDead(let id, let silentMs, let probes, let ptoMs, let answering):
                let name = pathIndex(id).map { paths[$0].name } ?? ""
                let other = pathIndex(answering).map { paths[$0].name } ?? ""
                emitAudit(p, AuditRecord(check: "path_suspicion", result: "fail",
                                         detail: "\(name) silent under traffic: \(probes) suspicion probes unanswered for \(silentMs) ms (PTO \(ptoMs.rounded3) ms) while \(other) answered"))
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

    private func pathMtuDetail(_ name: String, from: Int?, to: Int?, blackHole: Bool, belowFloor: Bool) -> String {
        func text(_ m: Int?) -> String { m.map { "\($0)" } ?? "unknown" }
        var d = "\(name) path MTU \(text(from)) -> \(text(to))"
        if blackHole { d += ": \(text(from))-byte probes lost while small ones answered (black hole); searching below" }
        if belowFloor { d += "; below the floor (1280 inner bytes): ranked after the UDP paths above it (still above TCP paths)" }
        return d
    }

    /// Uplink facts from netlink. Sockets and path names follow the uplink set.
    func apply(_ facts: [UplinkSet.UplinkFact], uplinks: UplinkSet) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            sockets = uplinks.sockets
            uplinkMtus = uplinks.mtus
            for (i, p) in uplinks.paths.enumerated() where i < paths.count {
                paths[i].localAddress = p.localAddress
                if p.kind == .udp { paths[i].localPort = p.localPort } // a TCP path's port is its connection's
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
                case .mtuChanged(let u, let mtu): actions += o.uplinkMtuChanged(uplinkPriority: u, mtu: mtu, nowMs: nowMs)
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
            manageConnections(nowMs: nowMs)
            let nowNs = nowMs * 1_000_000
            var changed = false
            for dropped in p.keyRing.expire(now: nowNs) { usedIndexes.remove(dropped.localIndex); changed = true }
            if changed { republish() }
            guard var o = orchestrator else { return }
            var actions: [OrchestratorAction] = []
            if p.state != .birth, p.keyRing.needsRekey(now: nowNs) || p.keyRing.current == nil {
                actions += o.keysNeedRenewing(nowMs: nowMs)
            }
            o.dataCounted(sentPackets: p.counters.txPackets,
                          receivedPackets: p.counters.rxPackets, nowMs: nowMs)
            actions += o.tick(nowMs: nowMs)
            orchestrator = o
            perform(actions, nowMs: nowMs)
        }
    }

    /// Opens, completes and closes the TCP paths' connections as their connectors say: a connection
    /// is wanted while its uplink is there, up and addressed, and (a cluster) its gateway may hold
    /// the session (`ClientOrchestrator.wantsConnection`). Called under `lock`.
    private func manageConnections(nowMs: UInt64) {
        guard var o = orchestrator else { return }
        var actions: [OrchestratorAction] = []
        var changed = false
        for i in paths.indices where paths[i].kind == .tcp {
            if let c = paths[i].connection, case .connecting = paths[i].connector.state {
                switch c.socket.connectResult() {
                case .connected:
                    paths[i].connector.connected(nowMs: nowMs)
                    if let local = c.socket.localAddress {
                        paths[i].localAddress = local.addressString
                        paths[i].localPort = local.port
                    }
                    actions += o.transportChanged(path: paths[i].id, up: true, nowMs: nowMs)
                case .failed:
                    paths[i].connector.failed(nowMs: nowMs)
                    connections.requestClose(c)
                    paths[i].connection = nil
                    changed = true
                case .inProgress:
                    break
                }
            }
            let candidate = o.paths.first { $0.id == paths[i].id }
            let wanted = sockets[paths[i].uplinkIndex] != nil && candidate.map { $0.linkUp && $0.hasAddress } == true
                && o.wantsConnection(path: paths[i].id)
            let wasUp = paths[i].connector.isConnected
            switch paths[i].connector.tick(wanted: wanted, nowMs: nowMs) {
            case .connect?:
                let device = paths[i].uplink == UplinkSet.unboundName ? nil : paths[i].uplink
                guard let socket = try? TcpSocket.connect(to: paths[i].remote, device: device, mark: fwMark) else {
                    paths[i].connector.failed(nowMs: nowMs)
                    continue
                }
                let c = TcpConnection(id: connections.nextID(), socket: socket, remote: paths[i].remote, authenticated: true)
                connections.insert(c, watchedByCaller: false)
                paths[i].connection = c
                paths[i].localPort = 0
                changed = true
            case .close?:
                if let c = paths[i].connection { connections.requestClose(c) }
                paths[i].connection = nil
                changed = true
                if wasUp { actions += o.transportChanged(path: paths[i].id, up: false, nowMs: nowMs) }
            case nil:
                break
            }
        }
        orchestrator = o
        if changed { dataPlane?.socketsChanged() }
        perform(actions, nowMs: nowMs)
    }

    /// How soon the daemon should call `tick` again (faster while the active path's PTO is timed).
    func tickIntervalMs(nowMs: UInt64) -> UInt64 {
        lock.withLock { orchestrator?.tickIntervalMs(nowMs: nowMs) ?? 10 }
    }

    /// The suspicion counters of the session (status JSON `suspicion`).
    func suspicionStatus() -> JSONValue {
        let c = orchestrator?.suspicion.counters ?? SuspicionCounters()
        return ["raised": JSONValue(c.raised), "cleared": JSONValue(c.cleared), "confirmed": JSONValue(c.confirmed),
                "probes": JSONValue(c.probes)]
    }

    /// Applies a reload: the gateway peer's new AllowedIPs, the new policy for the running session
    /// (same id, same path, same keys), and candidate paths for appended uplinks and endpoints
    /// (probed as standbys from now on). `newPaths` are those `UplinkSet.extend` appended, in order.
    func applyReload(_ plan: ReloadPlan, config new: JVPNConfig, uplinks: UplinkSet, newPaths: [ClientPath],
                     facts: [UplinkSet.UplinkFact]) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            config = new
            let p = peer
            if let pc = new.peers.first { p.config = pc }
            sockets = uplinks.sockets
            uplinkMtus = uplinks.mtus
            paths += newPaths
            var actions: [OrchestratorAction] = []
            if var o = orchestrator {
                o.updatePolicy(new.policy)
                // A new TCP path has no connection yet: its connector opens one at the next tick.
                actions = o.addPaths(newPaths.map(candidate), nowMs: nowMs)
                for fact in facts {
                    if case .linkDown(let u) = fact { actions += o.linkChanged(uplinkPriority: u, up: false, nowMs: nowMs) }
                }
                orchestrator = o
            }
            for change in plan.peers {
                if case .changed(let pc, let added, let removed) = change {
                    audit(p, check: "config_reload", pass: true, detail: ReloadPlan.peerDetail(pc, added, removed))
                }
            }
            if !plan.policy.isEmpty {
                audit(p, check: "config_reload", pass: true, detail: "policy: " + plan.policy.joined(separator: ", "))
            }
            if !newPaths.isEmpty {
                audit(p, check: "config_reload", pass: true, detail: "paths added: " + newPaths.map(\.name).joined(separator: ", "))
            }
            republish()
            perform(actions, nowMs: nowMs)
        }
    }

    func shutdown(reason: ReasonCode) {
        let nowMs = Clock.monotonicMilliseconds()
        lock.withLock {
            let p = peer
            if p.session != nil && p.state != .terminated, var o = orchestrator {
                if let a = active, let to = paths[a].address { sendControl(.close(reason: reason), peer: p, to: to) }
                let actions = o.terminate(reason, nowMs: nowMs)
                orchestrator = o
                perform(actions, nowMs: nowMs)
            }
            active = nil
            for i in paths.indices {
                if let c = paths[i].connection { connections.requestClose(c) }
                paths[i].connection = nil
            }
            republish()
        }
    }

    /// The session's path-MTU counters (status JSON `mtu`): the data plane's and the searches'.
    func mtuStatus() -> JSONValue {
        var blackHoles = 0, probes = 0
        for pth in paths {
            guard let m = orchestrator?.mtu(of: pth.id) else { continue }
            blackHoles += m.blackHoles
            probes += m.probesSent
        }
        return PathFitCounters.json(peer.counters, blackHoles: blackHoles, probes: probes)
    }

    /// The paths as status JSON shows them; with `history`, each with its `probe_history`.
    func pathStatus(history: Bool = false) -> [JSONValue] {
        let now = Clock.monotonicMilliseconds()
        let wallOffsetMs = Int64(Clock.wallMilliseconds()) - Int64(now)
        return paths.map { pth in
            let q = orchestrator?.quality(of: pth.id)
            let m = orchestrator?.mtu(of: pth.id)
            var o: [String: JSONValue] = ["path": .string(pth.name), "uplink": .string(pth.uplink), "transport": .string(pth.kind.rawValue),
                    "status": .string(orchestrator?.status(of: pth.id, nowMs: now) ?? "standby"),
                    "rtt_ms": .double((q?.rttMs ?? 0).rounded3),
                    "loss_pct": .double((orchestrator?.lossPct(of: pth.id, nowMs: now) ?? 0).rounded3),
                    "jitter_ms": .double((q?.jitterMs ?? 0).rounded3),
                    "srtt_ms": .double((q?.rtt.smoothedMs ?? 0).rounded3),
                    "rttvar_ms": .double((q?.rtt.variationMs ?? 0).rounded3),
                    "pto_ms": .double((orchestrator?.probeTimeoutMs(of: pth.id) ?? 0).rounded3),
                    "suspect": .bool(orchestrator?.isSuspect(pth.id) ?? false),
                    "mtu": JSONValue(m?.inUse ?? 0),
                    // A TCP path is not searched: its stream carries any frame whole.
                    "mtu_search": .string(pth.kind == .tcp ? "none" : m?.phase.rawValue ?? PathMtuSearch.Phase.searching.rawValue)]
            if pth.kind == .tcp {
                // Frames the connection did not take (backed up): dropped, never queued.
                o["frames_dropped"] = JSONValue(pth.connection?.framesDropped.load(ordering: .relaxed) ?? 0)
            }
            if history {
                o["probe_history"] = .array((probeHistory[pth.id]?.buckets ?? []).map { b in
                    [JSONValue(Int64(b.second) * 1000 + wallOffsetMs), JSONValue(b.sent), JSONValue(b.answered),
                     b.rttMeanMs.map { .double($0.rounded3) } ?? .null, b.answered == 0 ? .null : .double(Double(b.rttMaxMs).rounded3)]
                })
            }
            return .object(o)
        }
    }
}

extension Double {
    var rounded3: Double { (self * 1000).rounded() / 1000 }
}
