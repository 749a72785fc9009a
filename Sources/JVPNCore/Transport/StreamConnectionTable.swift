/// The gateway's TCP connections, as admission sees them: which are unauthenticated (nothing on
/// them has passed a proof yet) and from which source, which belong to which peer, and when each
/// was opened and last heard. Everything is bounded: at most `maxUnauthenticated` unauthenticated
/// connections in total (a new one evicts the oldest), at most `perSourceUnauthenticated` from one
/// source (IPv4 address, IPv6 /64; beyond that a new one is refused), at most `perPeer`
/// authenticated ones per peer (the oldest goes); an unauthenticated connection lives at most
/// `unauthenticatedTimeoutMs`, an authenticated one at most `idleTimeoutMs` without a frame. Slots
/// are allocated once at init. Pure: facts and a clock in, connections to close out.
public struct StreamConnectionTable: Equatable, Sendable {
    public struct Limits: Equatable, Sendable {
        public var maxUnauthenticated = 256
        public var perSourceUnauthenticated = 8
        /// A client keeps one connection per TCP path (uplink x TCP endpoint): room for 4 x 2.
        public var perPeer = 8
        /// Long enough for a handshake and its confirming frame (one round trip and a worker turn).
        public var unauthenticatedTimeoutMs: UInt64 = 5000
        /// As long as a validated address is remembered without traffic (docs/PROTOCOL.md 5.4).
        public var idleTimeoutMs: UInt64 = 60_000

        public init() {}
    }

    /// One connection, never reused: a slot and that slot's generation.
    public struct ID: Hashable, Sendable, CustomStringConvertible {
        public let slot: Int
        public let generation: UInt32
        public var description: String { "\(slot).\(generation)" }
    }

    /// Why a connection is refused or closed (each is a counter).
    public enum CloseReason: Equatable, Sendable {
        /// Its source already has `perSourceUnauthenticated` unauthenticated connections.
        case sourceLimit
        /// The oldest unauthenticated connection, making room for a new one.
        case evicted
        /// Unauthenticated for `unauthenticatedTimeoutMs`.
        case unauthenticatedTimeout
        /// Authenticated but silent for `idleTimeoutMs`.
        case idle
        /// Its peer authenticated a newer connection beyond `perPeer`.
        case peerLimit
        /// No slot is free (only when the daemon names a peer the table was not sized for).
        case full
    }

    public enum AcceptDecision: Equatable, Sendable {
        /// Keep it as `id`; close `evicting` first if set.
        case admit(ID, evicting: ID?)
        case refuse(CloseReason)
    }

    public struct Counters: Equatable, Sendable {
        public var accepted: UInt64 = 0
        public var refusedSourceLimit: UInt64 = 0
        public var evicted: UInt64 = 0
        public var unauthenticatedTimeouts: UInt64 = 0
        public var idleTimeouts: UInt64 = 0
        public var peerLimitCloses: UInt64 = 0
        public var authenticated: UInt64 = 0

        public init() {}
    }

    struct Slot: Equatable, Sendable {
        var generation: UInt32 = 0
        var inUse = false
        var source = SourceRateLimiter.Key(prefix: 0, isV6: false)
        var openedMs: UInt64 = 0
        var lastHeardMs: UInt64 = 0
        var peer: Int?
    }

    public let limits: Limits
    private var slots: [Slot]
    /// Peers the slots are sized for.
    public private(set) var peerCount: Int
    public private(set) var counters = Counters()
    public private(set) var unauthenticated = 0
    public private(set) var authenticatedCount = 0

    public init(peerCount: Int, limits: Limits = Limits()) {
        self.limits = limits
        self.peerCount = max(0, peerCount)
        slots = Array(repeating: Slot(), count: limits.maxUnauthenticated + self.peerCount * limits.perPeer)
    }

    /// Peers were added (a configuration reload): room for their connections. Never shrinks.
    public mutating func grow(toPeers n: Int) {
        guard n > peerCount else { return }
        slots += Array(repeating: Slot(), count: (n - peerCount) * limits.perPeer)
        peerCount = n
    }

    public var capacity: Int { slots.count }

    private func live(_ id: ID) -> Bool {
        id.slot >= 0 && id.slot < slots.count && slots[id.slot].inUse && slots[id.slot].generation == id.generation
    }

    /// The peer an authenticated connection belongs to.
    public func peer(of id: ID) -> Int? { live(id) ? slots[id.slot].peer : nil }

    public func isOpen(_ id: ID) -> Bool { live(id) }

    /// A connection from `source` was just accepted.
    public mutating func accept(source: IPAddress, nowMs: UInt64) -> AcceptDecision {
        let key = SourceRateLimiter.Key(source)
        var fromSource = 0
        var oldest: Int?
        for i in slots.indices where slots[i].inUse && slots[i].peer == nil {
            if slots[i].source == key { fromSource += 1 }
            if oldest.map({ slots[i].openedMs < slots[$0].openedMs }) ?? true { oldest = i }
        }
        guard fromSource < limits.perSourceUnauthenticated else {
            counters.refusedSourceLimit += 1
            return .refuse(.sourceLimit)
        }
        var evicting: ID?
        if unauthenticated >= limits.maxUnauthenticated, let o = oldest {
            evicting = ID(slot: o, generation: slots[o].generation)
            release(o)
            counters.evicted += 1
        }
        // A free slot exists: unauthenticated ones are below their bound, authenticated ones below
        // perPeer for every peer, and the slots are the sum of both bounds.
        guard let free = slots.firstIndex(where: { !$0.inUse }) else { return .refuse(.full) }
        slots[free].generation &+= 1
        slots[free].inUse = true
        slots[free].source = key
        slots[free].openedMs = nowMs
        slots[free].lastHeardMs = nowMs
        slots[free].peer = nil
        unauthenticated += 1
        counters.accepted += 1
        return .admit(ID(slot: free, generation: slots[free].generation), evicting: evicting)
    }

    /// A whole frame arrived on `id` (authenticated or not: the idle clock of an authenticated
    /// connection; an unauthenticated one is not kept alive by frames that prove nothing).
    public mutating func heard(_ id: ID, nowMs: UInt64) {
        guard live(id) else { return }
        slots[id.slot].lastHeardMs = max(slots[id.slot].lastHeardMs, nowMs)
    }

    /// A frame on `id` passed its proof as `peer`'s. Returns the connections to close: that peer's
    /// oldest beyond `perPeer`.
    public mutating func authenticated(_ id: ID, peer: Int, nowMs: UInt64) -> [ID] {
        guard live(id) else { return [] }
        heard(id, nowMs: nowMs)
        if slots[id.slot].peer == peer { return [] }
        if slots[id.slot].peer == nil {
            unauthenticated -= 1
            authenticatedCount += 1
            counters.authenticated += 1
        }
        slots[id.slot].peer = peer
        var closing: [ID] = []
        while true {
            let mine = slots.indices.filter { slots[$0].inUse && slots[$0].peer == peer }
            guard mine.count > limits.perPeer,
                  let oldest = mine.filter({ $0 != id.slot }).min(by: { slots[$0].lastHeardMs < slots[$1].lastHeardMs }) else { break }
            closing.append(ID(slot: oldest, generation: slots[oldest].generation))
            release(oldest)
            counters.peerLimitCloses += 1
        }
        return closing
    }

    /// The daemon closed `id` (end of stream, an error, a framing violation).
    public mutating func closed(_ id: ID) {
        guard live(id) else { return }
        release(id.slot)
    }

    /// Connections past their bound, released here; the daemon closes them.
    public mutating func expire(nowMs: UInt64) -> [(ID, CloseReason)] {
        var out: [(ID, CloseReason)] = []
        for i in slots.indices where slots[i].inUse {
            let s = slots[i]
            if s.peer == nil, elapsedMs(nowMs, since: s.openedMs) >= limits.unauthenticatedTimeoutMs {
                out.append((ID(slot: i, generation: s.generation), .unauthenticatedTimeout))
                counters.unauthenticatedTimeouts += 1
                release(i)
            } else if s.peer != nil, elapsedMs(nowMs, since: s.lastHeardMs) >= limits.idleTimeoutMs {
                out.append((ID(slot: i, generation: s.generation), .idle))
                counters.idleTimeouts += 1
                release(i)
            }
        }
        return out
    }

    private mutating func release(_ i: Int) {
        if slots[i].peer == nil { unauthenticated -= 1 } else { authenticatedCount -= 1 }
        slots[i].inUse = false
        slots[i].peer = nil
    }
}
