/// The gateway core's peers, numbered as in the configuration, with two indexes derived from them
/// on every write, so that nothing the core does per handshake or per tick has to look at every
/// peer: which peer holds a session id, and from when each peer may have a timer due.
///
/// The peers are the only source of truth: every change to one goes through the subscript's
/// `_modify`, which looks at the peer before and after and updates both indexes, so they can never
/// disagree with it.
struct GatewayPeerTable<Address: Hashable & Sendable>: Equatable, Sendable {
    typealias Peer = GatewayCore<Address>.Peer

    private var storage: [Peer] = []
    /// Which peer holds each session id (as its session, even ended, its pending handshake or the
    /// initiation held for the store). A session id is never held by two peers: the core refuses an
    /// initiation naming another peer's session.
    private var owners: [SessionID: Int] = [:]
    /// Per peer, a time at or before which none of its timers can be due (pending handshake,
    /// REATTACH waiting for validation, transport-loss and session TTLs); `UInt64.max` when it has
    /// none. Early is harmless (the tick looks and finds nothing to do), late never happens.
    private(set) var wakeMs: [UInt64] = []
    private var transportLossTtlMs: UInt64
    private var sessionTtlMs: UInt64

    init(count: Int, policy: PolicyConfig) {
        transportLossTtlMs = policy.transportLossTtlMs
        sessionTtlMs = policy.sessionTtlMs
        storage = Array(repeating: Peer(), count: count)
        wakeMs = Array(repeating: UInt64.max, count: count)
    }

    var count: Int { storage.count }
    var indices: Range<Int> { storage.indices }

    subscript(peer: Int) -> Peer {
        _read { yield storage[peer] }
        _modify {
            let before = Self.sessionIDs(storage[peer])
            defer { reindex(peer, before: before) }
            yield &storage[peer]
        }
    }

    mutating func append(_ peer: Peer) {
        storage.append(peer)
        wakeMs.append(UInt64.max)
        reindex(storage.count - 1, before: (nil, nil, nil))
    }

    /// The peer holding `session`, if any.
    func owner(of session: SessionID) -> Int? { owners[session] }

    /// New TTLs: every peer's wake-up time is computed again.
    mutating func setTtls(_ policy: PolicyConfig) {
        transportLossTtlMs = policy.transportLossTtlMs
        sessionTtlMs = policy.sessionTtlMs
        for i in storage.indices { wakeMs[i] = wake(storage[i]) }
    }

    private typealias SessionIDs = (session: SessionID?, pending: SessionID?, awaiting: SessionID?)

    private static func sessionIDs(_ p: Peer) -> SessionIDs { (p.session?.id, p.pending?.session, p.awaiting?.session) }

    private mutating func reindex(_ peer: Int, before: SessionIDs) {
        let after = Self.sessionIDs(storage[peer])
        if before != after {
            // What the peer still holds is put back by the second loop.
            for case let sid? in [before.session, before.pending, before.awaiting] where owners[sid] == peer { owners[sid] = nil }
            for case let sid? in [after.session, after.pending, after.awaiting] { owners[sid] = peer }
        }
        wakeMs[peer] = wake(storage[peer])
    }

    private func wake(_ p: Peer) -> UInt64 {
        var at = UInt64.max
        if let pending = p.pending { at = min(at, Self.after(pending.atMs, GatewayLimits.pendingLifetimeMs)) }
        if let s = p.session, s.isLive {
            if let r = s.pendingReattach { at = min(at, Self.after(r.atMs, GatewayLimits.pendingLifetimeMs)) }
            at = min(at, Self.after(s.lastAuthenticatedMs, transportLossTtlMs), Self.after(s.startedMs, sessionTtlMs))
        }
        return at
    }

    private static func after(_ t: UInt64, _ d: UInt64) -> UInt64 {
        let (sum, overflow) = t.addingReportingOverflow(d)
        return overflow ? UInt64.max : sum
    }

    static func == (a: GatewayPeerTable, b: GatewayPeerTable) -> Bool { a.storage == b.storage && a.wakeMs == b.wakeMs }
}
