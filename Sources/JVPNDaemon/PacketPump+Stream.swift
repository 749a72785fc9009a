import JVPNCore
import JVPNSystem

/// What the TCP transport did, for status JSON (`tcp`). The receive thread updates it on
/// connection events (never per frame).
final class StreamCounters: @unchecked Sendable {
    struct Values {
        var table = StreamConnectionTable.Counters()
        /// Connections closed for breaking the framing (docs/PROTOCOL.md 10.1).
        var violations: UInt64 = 0
        /// Connections the other end closed or reset.
        var closedByPeer: UInt64 = 0
        /// Times a listener was set aside for a moment because accepting failed for want of
        /// descriptors or memory (the waiting connection stays queued in the kernel).
        var acceptPaused: UInt64 = 0
        var open = 0
        var unauthenticated = 0
    }

    private let lock = Lock()
    private var values = Values()

    func update(_ body: (inout Values) -> Void) { lock.withLock { body(&values) } }

    var current: Values { lock.withLock { values } }
}

/// The receive thread's side of the TCP transport: accepting on the gateway's listeners (through
/// the admission table), reading each connection into its buffer and handing every whole frame to
/// `receiveOne`, exactly as a datagram's; closing connections that break the framing, that the
/// table gives up on, or that the other end closed.
extension PacketPump {
    /// Connections the control plane opened or closed since the last look.
    func adoptStreamChanges() {
        guard let (added, closing) = connections.takeChanges() else { return }
        for c in added {
            watchedStreams[c.id] = c
            epoll.add(c.socket.fileDescriptor, tag: WatchTag.stream | c.id)
        }
        for c in closing { endStream(c, notify: false) }
        publishStreamCounts()
    }

    /// Up to 64 waiting connections of `listener`, each through the admission table.
    func acceptStreams(_ listener: TcpListener) {
        guard streamTable != nil else { return }
        streamTable!.grow(toPeers: streamPeerCount.load(ordering: .relaxed))
        let nowMs = Clock.monotonicMilliseconds()
        for _ in 0..<64 {
            switch listener.accept() {
            case .none:
                publishStreamCounts()
                return
            case .exhausted:
                // The connection stays in the backlog and the listener stays readable: watching it
                // now would spin. It is watched again at the next expiry tick.
                epoll.remove(listener.fileDescriptor)
                pausedListeners.append(listener)
                streamCounters.update { $0.acceptPaused += 1 }
                publishStreamCounts()
                return
            case .failed:
                continue // that one connection is gone (reset before it was accepted)
            case .connection(let socket, let peer):
                switch streamTable!.accept(source: HandshakeSource(socketAddress: peer).address, nowMs: nowMs) {
                case .refuse:
                    continue // the socket closes as it goes out of scope
                case .admit(let id, let evicting):
                    if let e = evicting, let old = streamsBySlot[e.slot], old.tableID == e { endStream(old, notify: true) }
                    let c = TcpConnection(id: connections.nextID(), socket: socket, remote: peer, authenticated: false)
                    c.tableID = id
                    streamsBySlot[id.slot] = c
                    connections.insert(c, watchedByCaller: true)
                    watchedStreams[c.id] = c
                    epoll.add(socket.fileDescriptor, tag: WatchTag.stream | c.id)
                }
            }
        }
        publishStreamCounts()
    }

    /// Reads a ready connection (a bounded number of rounds) and passes on its whole frames.
    func serviceStream(_ c: TcpConnection, snap: inout DataPlaneSnapshot, generation: inout UInt64) {
        var rounds = 0
        while rounds < 16 {
            rounds += 1
            let room = c.capacity - c.filled
            switch c.socket.read(into: c.buffer + c.filled, capacity: room) {
            case .wouldBlock:
                return
            case .closed:
                // Not the other end's doing when this side closed it (the EOF of our own shutdown).
                if !c.closed { streamCounters.update { $0.closedByPeer += 1 } }
                endStream(c, notify: true)
                return
            case .bytes(let n):
                c.filled += n
                guard parseStream(c, snap: &snap, generation: &generation) else { return }
                // A full read on an authenticated connection: bulk traffic, read more at a time.
                if n == room && c.authenticated { c.grow() }
                if n < room { return }
            }
        }
    }

    /// Every whole frame in the buffer goes to `receiveOne`; false when the stream broke the
    /// framing (the connection is closed then, never the session).
    private func parseStream(_ c: TcpConnection, snap: inout DataPlaneSnapshot, generation: inout UInt64) -> Bool {
        var offset = 0
        var authenticatedPeer: Int?
        var needsRoom = false
        // Unauthenticated, a frame must fit the small buffer: a longer one is a violation at once.
        // From the first frame that authenticates on, full-size frames may follow in this read.
        var maxFrame = c.authenticated ? StreamFraming.maxFrame : c.capacity - StreamFraming.prefixLength
        parsing: while true {
            switch StreamFraming.next(c.buffer, offset: offset, count: c.filled, maxFrame: maxFrame) {
            case .frame(let start, let length):
                if let peer = receiveOne(c.buffer + start, length, roomBefore: start, from: c.address, snap: &snap,
                                         generation: &generation) {
                    authenticatedPeer = peer
                    maxFrame = StreamFraming.maxFrame
                }
                offset = start + length
            case .needMore(let total):
                needsRoom = total > c.capacity
                break parsing
            case .violation:
                finishReceiveBatch()
                streamCounters.update { $0.violations += 1 }
                // A frame before the violation may have bound a session here: its close is news.
                if authenticatedPeer != nil { c.authenticated = true }
                endStream(c, notify: true)
                return false
            }
        }
        // Opened packets waiting for the TUN point into the buffer: write them before it moves.
        finishReceiveBatch()
        c.consume(upTo: offset)
        if needsRoom { c.grow() }
        // Only a frame that proved itself keeps the connection alive: junk that merely frames well
        // (an unknown index) does not.
        guard let peer = authenticatedPeer, let id = c.tableID else { return true }
        let nowMs = Clock.monotonicMilliseconds()
        streamTable?.heard(id, nowMs: nowMs)
        if streamTable?.peer(of: id) != peer {
            c.authenticated = true
            for old in streamTable?.authenticated(id, peer: peer, nowMs: nowMs) ?? [] {
                if let o = streamsBySlot[old.slot], o.tableID == old { endStream(o, notify: true) }
            }
            publishStreamCounts()
        }
        return true
    }

    /// Listeners set aside after a failed accept, watched again (each expiry tick).
    func resumeListeners() {
        for l in pausedListeners {
            guard let i = listeners.firstIndex(where: { $0 === l }) else { continue }
            epoll.add(l.fileDescriptor, tag: WatchTag.listener | UInt64(i))
        }
        pausedListeners.removeAll()
    }

    /// Connections the admission table gives up on (unauthenticated too long, idle).
    func expireStreams(nowMs: UInt64) {
        guard let expired = streamTable?.expire(nowMs: nowMs), !expired.isEmpty else { return }
        for (id, _) in expired {
            if let c = streamsBySlot[id.slot], c.tableID == id { endStream(c, notify: true) }
        }
        publishStreamCounts()
    }

    /// Stops reading `c` and forgets it; the socket closes once nothing holds it any more. The
    /// control plane hears of it (`notify`) only for a connection that can carry a session: one
    /// this side opened, or an accepted one that authenticated; an unauthenticated one's close would
    /// only take room in the control-fact queue.
    func endStream(_ c: TcpConnection, notify: Bool) {
        guard watchedStreams.removeValue(forKey: c.id) != nil else { return }
        epoll.remove(c.socket.fileDescriptor)
        c.close()
        connections.remove(c.id)
        if let id = c.tableID {
            streamTable?.closed(id)
            if streamsBySlot[id.slot] === c { streamsBySlot[id.slot] = nil }
        }
        if notify, c.tableID == nil || c.authenticated, !report(.connectionClosed(c.id)) { closesToReport.append(c.id) }
    }

    private func publishStreamCounts() {
        let open = watchedStreams.count
        let table = streamTable
        streamCounters.update {
            $0.open = open
            if let table {
                $0.table = table.counters
                $0.unauthenticated = table.unauthenticated
            }
        }
    }
}
