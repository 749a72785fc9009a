import Glibc
import JVPNCore
import JVPNSystem

/// What client and gateway share: peers, the lock, the snapshot, events, sending control frames.
class SessionHost: @unchecked Sendable {
    /// The running config; a reload replaces it (under `lock`).
    var config: JVPNConfig
    let privateKey: PrivateKey
    let lock = Lock()
    let snapshot = SnapshotCell()
    let events: EventEmitter
    var peers: [PeerRuntime] = []
    var dataPlane: DataPlane!
    /// Transport sockets by index (client: one per uplink, nil while the uplink is absent).
    var sockets: [UDPSocket?] = []
    /// The TCP connections (client: one per TCP path; gateway: those it accepted).
    let connections = TcpConnections()
    var rng = SystemRandomNumberGenerator()
    /// Receiver indexes in use, so a fresh one never collides.
    var usedIndexes = Set<UInt32>()
    /// Room for a control frame padded to the largest probe (a path-MTU probe of a 9000-byte link).
    static let controlBufferSize = 9216
    let controlBuffer = UnsafeMutableRawPointer.allocate(byteCount: SessionHost.controlBufferSize, alignment: 16)
    var replayGuard = InitiationReplayGuard()
    /// The AllowedIPs table of the published snapshot (built by `republish()`, patched by a
    /// reload's `republish(peers:routesRemoved:routesAdded:)`), shared by the snapshots published since.
    private var routes = AllowedIPsTable<Int>()
    /// Each peer's part of the published snapshot, by peer index, as last computed.
    private var views: [PeerDataView] = []
    /// Inside `publishingOnce`: the peers whose changes wait for the one publication at its end.
    private var collected: Set<Int>?

    /// The data plane's packet workers (fixed while the daemon runs).
    let workers: Int

    init(config: JVPNConfig, privateKey: PrivateKey, events: EventEmitter, workers: Int = 1) throws {
        self.config = config
        self.privateKey = privateKey
        self.events = events
        self.workers = workers
        for (i, p) in config.peers.enumerated() {
            let key = try PublicKey(base64: p.publicKey)
            peers.append(PeerRuntime(index: i, config: p, publicKey: key, workers: workers))
        }
    }

    deinit { controlBuffer.deallocate() }

    func freshIndex() -> UInt32 {
        while true {
            let i = UInt32.random(in: 1...UInt32.max, using: &rng)
            if !usedIndexes.contains(i) { usedIndexes.insert(i); return i }
        }
    }

    func releaseIndexes(of ring: KeyRing) {
        for kp in ring.clear() { usedIndexes.remove(kp.localIndex) }
    }

    /// Installs fresh keys and frees the receiver indexes of whatever they push out of the ring.
    func install(_ keypair: Keypair, in ring: KeyRing, nowNs: UInt64) {
        let before = [ring.current, ring.previous, ring.next].compactMap { $0 }
        ring.install(keypair, now: nowNs)
        let after = [ring.current, ring.previous, ring.next].compactMap { $0 }
        for kp in before where !after.contains(where: { $0 === kp }) { usedIndexes.remove(kp.localIndex) }
    }

    /// Path the data plane sends on for a peer, nil = do not send.
    func sendPath(for peer: PeerRuntime) -> TransportAddress? { nil }

    /// The transport that reaches `address` and the destination in its own form; nil when the
    /// socket or connection is gone.
    func transport(for address: TransportAddress) -> (transport: any FrameTransport, destination: SocketAddress)? {
        switch address.via {
        case .udp(let index):
            guard index >= 0, index < sockets.count, let s = sockets[index] else { return nil }
            return (s, s.destination(for: address.address))
        case .tcp(let id):
            guard let c = connections.connection(id), !c.closed else { return nil }
            return (c, address.address)
        }
    }

    /// The largest inner packet a frame on the peer's path carries, nil when not known.
    func innerPacketLimit(for peer: PeerRuntime) -> Int? { nil }

    /// What the receive side must know of a peer's session (the client's default; the gateway's
    /// comes from its core).
    func receiveState(of p: PeerRuntime) -> PeerReceiveState {
        PeerReceiveState(hasSession: p.state != .terminated, isEnded: false, checksBoundSource: false, boundSource: nil,
                         pendingKeypair: nil)
    }

    // MARK: data-plane publication
    //
    // A published `DataPlaneSnapshot` has two parts that change at different rates:
    //   - the AllowedIPs table, which depends only on the peers and their AllowedIPs (start, reload);
    //   - each peer's `PeerDataView` (its send route and receiver entries), which a handshake, a
    //     confirmation, a key expiry or a binding change alters for that one peer.
    // `republish()` rebuilds both for every peer (start, socket set, the client's changes).
    // `republish(peers:)` recomputes the views of the named peers only and patches them into copies
    // of the published send slots and receiver map; the table object is shared, not rebuilt.
    // A gateway's reload gives it the routes it removed and added as well: it patches a copy of
    // the table with them and appends the added peers' send slots. The packet threads
    // are untouched by this: they still load one immutable snapshot per round.
    // The copies share storage with the published ones: a patch copies the 64-peer chunk of each
    // changed peer's send slot, the shard of each receiver index it adds or removes (about
    // entries / 64) and the shard of each prefix it routes anew (about prefixes / 64), not the
    // whole array, map and table.

    /// Builds and publishes the data-plane view for every peer. Called under `lock` after a change
    /// of the peer set, their AllowedIPs, or the socket set (and by the client after any change).
    func republish() {
        var table = AllowedIPsTable<Int>()
        var send = ChunkedSlots<PeerSendRoute>()
        var receivers = ShardedIndexMap<ReceiverEntry>()
        views.removeAll(keepingCapacity: true)
        for p in peers {
            if !p.removed {
                for prefix in p.config.allowedIPs { table.insert(prefix, value: p.index) }
            }
            let v = dataView(of: p)
            views.append(v)
            send.append(v.send)
            for r in v.receivers { receivers.set(r.entry, for: r.index) }
        }
        routes = table
        snapshot.publish(DataPlaneSnapshot(routes: table, send: send, receivers: receivers, sockets: sockets))
        dataPlane?.socketsChanged()
    }

    /// Publishes a change confined to `changed` peers (their keys, receiver indexes, binding or
    /// path size), recomputing only their views; a gateway's reload also gives the routes it
    /// removes (each leaves a copy of the published table only if it still routes to its peer) and
    /// adds, and the peers it appended to `peers` (they must be among `changed`: they get send
    /// slots). Called under `lock`. Falls back to `republish()` when the published views do not
    /// match the peer set.
    func republish(peers changed: some Collection<Int>, routesRemoved: [(prefix: IPPrefix, value: Int)] = [],
                   routesAdded: [(prefix: IPPrefix, value: Int)] = []) {
        if collected != nil, routesRemoved.isEmpty, routesAdded.isEmpty {
            collected!.formUnion(changed)
            return
        }
        let changed = Set(changed)
        let published = snapshot.load()
        guard views.count == published.send.count, views.count <= peers.count,
              changed.isSuperset(of: views.count..<peers.count) else { republish(); return }
        var table = routes
        table.reroute(removing: routesRemoved, adding: routesAdded)
        var send = published.send
        var receivers = published.receivers
        // All removals before any insertion: an index freed by one changed peer may already be
        // another changed peer's.
        for i in changed where i < views.count {
            for r in views[i].receivers where receivers[r.index]?.peerIndex == i { receivers.remove(r.index) }
        }
        // In index order: added peers' slots are appended.
        for i in changed.sorted() {
            let v = dataView(of: peers[i])
            if i < views.count {
                views[i] = v
                send[i] = v.send
            } else {
                views.append(v)
                send.append(v.send)
            }
            for r in v.receivers { receivers.set(r.entry, for: r.index) }
        }
        routes = table
        snapshot.publish(DataPlaneSnapshot(routes: table, send: send, receivers: receivers, sockets: sockets))
        dataPlane?.socketsChanged()
    }

    /// Runs `body` (under `lock`) with every `republish(peers:)` in it collected into one
    /// publication at its end: a batch of control facts costs one patch of the send slots and the
    /// receiver map, not one per fact.
    func publishingOnce(_ body: () -> Void) {
        guard collected == nil else { return body() } // inside another: its end publishes
        collected = []
        body()
        let changed = collected ?? []
        collected = nil
        if !changed.isEmpty { republish(peers: changed) }
    }

    /// Publishes what `publishingOnce` collected so far: before sending something whose answer
    /// needs the data plane to know the change already (a handshake response's keys).
    func publishCollected() {
        guard let changed = collected, !changed.isEmpty else { return }
        collected = nil
        republish(peers: changed)
        collected = []
    }

    /// What the packet threads need of one peer now: its send route (nil = do not send) and the
    /// receiver indexes its keys answer to.
    private func dataView(of p: PeerRuntime) -> PeerDataView {
        let rs = receiveState(of: p)
        let limit = innerPacketLimit(for: p).flatMap { $0 < config.interface.mtu ? $0 : nil } ?? Int.max
        var view = PeerDataView(send: nil, receivers: [])
        // A peer whose send transport is gone (its TCP connection closed) gets no send route, but
        // keeps its receiver entries: its REATTACH over another path or a new connection, and the
        // confirmation of new keys, must still be recognised.
        if rs.hasSession, !rs.isEnded, let kp = p.keyRing.current, let path = sendPath(for: p),
           let (transport, destination) = transport(for: path) {
            view.send = PeerSendRoute(keypair: kp, transport: transport, destination: destination, counters: p.counters,
                                      maxInnerPacket: limit)
        }
        if let kp = rs.pendingKeypair {
            view.receivers.append((kp.localIndex, ReceiverEntry(peerIndex: p.index, keypair: kp, counters: p.counters, isUnconfirmed: true,
                                                                isEnded: false, checksBoundSource: false, boundSource: nil,
                                                                maxInnerPacket: limit)))
        }
        guard rs.hasSession else { return view }
        // In the receiving socket's own form (v4-mapped on a dual-stack socket): compared per packet.
        let boundSource = rs.boundSource.flatMap { b in transport(for: b).map { TransportAddress(via: b.via, address: $0.destination) } }
        for (kp, unconfirmed) in [(p.keyRing.current, false), (p.keyRing.previous, false), (p.keyRing.next, true)] {
            guard let kp else { continue }
            view.receivers.append((kp.localIndex, ReceiverEntry(peerIndex: p.index, keypair: kp, counters: p.counters,
                                                                isUnconfirmed: unconfirmed, isEnded: rs.isEnded,
                                                                checksBoundSource: rs.checksBoundSource, boundSource: boundSource,
                                                                maxInnerPacket: limit)))
        }
        return view
    }

    // MARK: events

    // The gateway names the session (its core owns it); the client's is the peer's current one.

    func emitStateChange(_ p: PeerRuntime, _ c: StateChange, session: SessionID? = nil) {
        var e = events.base(.stateChange, session: session ?? p.session, peer: p.publicKey)
        e.from = c.from.rawValue
        e.to = c.to.rawValue
        e.reason = c.reason.rawValue
        e.stateVersion = c.stateVersion
        events.emit(e)
    }

    func emitAudit(_ p: PeerRuntime, _ a: AuditRecord, session: SessionID? = nil) {
        var e = events.base(.audit, session: session ?? p.session, peer: p.publicKey)
        e.check = a.check
        e.result = a.result
        e.detail = a.detail
        events.emit(e)
    }

    /// TRANSPORT_SWITCH event, the switch count and status's `last_switch`, always together.
    func recordSwitch(_ p: PeerRuntime, session: SessionID? = nil, from: String, to: String, reason: ReasonCode, recoveryMs: UInt64) {
        var e = events.base(.transportSwitch, session: session ?? p.session, peer: p.publicKey)
        e.fromPath = from
        e.toPath = to
        e.reason = reason.rawValue
        e.recoveryMs = recoveryMs
        events.emit(e)
        p.switches += 1
        p.lastSwitch = ["from_path": .string(from), "to_path": .string(to), "reason": .string(reason.rawValue),
                        "recovery_ms": JSONValue(recoveryMs), "ts": .string(SessionEvent.rfc3339(e.timestampMs))]
    }

    func emitSecurity(_ p: PeerRuntime, reason: ReasonCode, remote: SocketAddress, session: SessionID? = nil) {
        var e = events.base(.security, session: session ?? p.session, peer: p.publicKey)
        e.reason = reason.rawValue
        e.remote = remote.description
        events.emit(e)
    }

    func audit(_ p: PeerRuntime, check: String, pass: Bool, detail: String) {
        emitAudit(p, AuditRecord(check: check, result: pass ? "pass" : "fail", detail: detail))
    }

    /// An AUDIT_EVENT about the interface rather than one peer (session and peer empty).
    func auditInterface(check: String, pass: Bool, detail: String) {
        var e = SessionEvent(timestampMs: Clock.wallMilliseconds(), kind: .audit, side: events.side, session: "", peer: "")
        e.check = check
        e.result = pass ? "pass" : "fail"
        e.detail = detail
        events.emit(e)
    }

    // MARK: control frames

    /// Seals a control message with the peer's current keys and sends it to `to`.
    @discardableResult
    func sendControl(_ message: ControlMessage, peer p: PeerRuntime, keypair: Keypair? = nil, to: TransportAddress,
                     paddedTo: Int = 0) -> Bool {
        guard let kp = keypair ?? p.keyRing.current, let counter = kp.nextCounter() else { return false }
        let n = message.encode(into: controlBuffer + Frame.headerLength, capacity: SessionHost.controlBufferSize - Frame.overhead, paddedTo: paddedTo)
        guard n > 0 else { return false }
        let total = Frame.seal(type: .control, receiverIndex: kp.remoteIndex, counter: counter, key: kp,
                               buffer: controlBuffer, plaintextLength: n)
        guard total > 0, let (t, destination) = transport(for: to) else { return false }
        return t.sendOne(controlBuffer, length: total, to: destination)
    }

    func sendRaw(_ bytes: [UInt8], to: TransportAddress) {
        guard let (t, destination) = transport(for: to) else { return }
        bytes.withUnsafeBytes { _ = t.sendOne($0.baseAddress!, length: $0.count, to: destination) }
    }
}
