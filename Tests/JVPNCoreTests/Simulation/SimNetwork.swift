@testable import JVPNCore

/// What travels in the simulation. The control messages are the real encodings (sealed frames are
/// modelled by their key epoch and counter, checked against a real `ReplayWindow` on receipt); the
/// handshake is modelled by its outcome, since its crypto is tested on its own.
enum SimPayload: Equatable {
    case initiation(session: SessionID, timestamp: Timestamp12, handshake: UInt64)
    case response(handshake: UInt64, epoch: UInt64)
    /// A sealed frame: `control` holds the encoded control message, nil = a data packet.
    case frame(epoch: UInt64, counter: UInt64, control: [UInt8]?)

    /// Bytes on the wire, for the amplification bound.
    var size: Int {
        switch self {
        case .initiation: return 160
        case .response: return 92
        case .frame(_, _, let control): return 32 + (control?.count ?? 100)
        }
    }

    var isControl: Bool { if case .frame(_, _, let c) = self { return c != nil } else { return false } }
}

struct SimPacket {
    var payload: SimPayload
    /// The client's uplink the packet travels (both directions).
    var uplink: Int
    var toGateway: Bool
    /// Source address as the gateway sees it (client -> gateway), or the destination (gateway -> client).
    var clientAddress: String
    /// The uplink's TCP connection (its generation) the packet travels on; nil for a UDP datagram.
    var connection: Int? = nil
}

/// One uplink's TCP connection to the gateway, as the TCP transport behaves: in order, nothing lost
/// or duplicated while it lasts; a stall holds everything, and the sender drops what does not fit
/// its small unsent queue (it never builds a backlog); a reset loses everything in flight and the
/// client hears of it, and a reconnect is a new connection (a new address for the gateway).
struct SimStream: Equatable {
    /// What a stalled connection holds per direction before the sender drops.
    static let unsentCapacity = 16
    var generation = 1
    var connected = true
    var reconnectAtMs: UInt64?
    var stalledUntilMs: UInt64 = 0
    /// The gateway's direction alone is held (the client's ACKs to it get through, its own are
    /// lost: what it sends waits for its retransmission).
    var returnStalledUntilMs: UInt64 = 0
    var delayMs: ClosedRange<UInt64> = 1...3
    /// Latest delivery time per direction (to the gateway, to the client): order is kept.
    var lastDeliveryMs: [Bool: UInt64] = [:]
}

/// Faults of one direction of one uplink.
struct SimDirection: Equatable {
    var broken = false
    var dropPct = 0
    var duplicatePct = 0
    var delayMs: ClosedRange<UInt64> = 1...2
    /// Datagrams larger than this die silently (a path MTU with ICMP filtered).
    var maxDatagram = Int.max
}

/// A seeded, deterministic network between one client with several uplinks and one gateway. Each
/// uplink has its own faults per direction; random delays reorder packets.
struct SimNetwork {
    struct Uplink {
        var up = SimDirection()
        var down = SimDirection()
        /// The client's address on this uplink as the gateway sees it (a NAT may change it).
        var address: String
        var linkUp = true
        var tcp = SimStream()
    }

    var uplinks: [Uplink]
    var rng: SeededRandom
    private var queue: [(at: UInt64, seq: UInt64, packet: SimPacket)] = []
    private var seq: UInt64 = 0
    /// Bytes per address the gateway sent to and received from (for the amplification check).
    var gatewaySent: [String: Int] = [:]
    var gatewayReceived: [String: Int] = [:]

    init(uplinks: Int, seed: UInt64) {
        self.uplinks = (0..<uplinks).map { Uplink(address: "c\($0):1") }
        rng = SeededRandom(seed: seed)
    }

    mutating func chance(_ pct: Int) -> Bool { pct > 0 && Int(rng.next() % 100) < pct }

    mutating func random(_ r: ClosedRange<UInt64>) -> UInt64 { r.lowerBound + rng.next() % (r.upperBound - r.lowerBound + 1) }

    /// The gateway's view of uplink `u`'s current TCP connection: one address per connection.
    func tcpAddress(_ u: Int) -> String { "t\(u)#\(uplinks[u].tcp.generation)" }

    /// Client sends on `uplink`, over its TCP connection when `tcp`.
    mutating func clientSend(_ payload: SimPayload, uplink: Int, tcp: Bool = false, now: UInt64) {
        guard uplink < uplinks.count, uplinks[uplink].linkUp else { return }
        if tcp {
            guard uplinks[uplink].tcp.connected else { return }
            enqueueStream(SimPacket(payload: payload, uplink: uplink, toGateway: true, clientAddress: tcpAddress(uplink),
                                    connection: uplinks[uplink].tcp.generation), now)
            return
        }
        enqueue(SimPacket(payload: payload, uplink: uplink, toGateway: true, clientAddress: uplinks[uplink].address),
                uplinks[uplink].up, now)
    }

    /// Gateway sends to `address`; it reaches the client only if some uplink has that address now
    /// (a TCP connection's only while that connection lasts).
    mutating func gatewaySend(_ payload: SimPayload, to address: String, now: UInt64) {
        gatewaySent[address, default: 0] += payload.size
        if let u = uplinks.indices.first(where: { tcpAddress($0) == address }) {
            guard uplinks[u].linkUp, uplinks[u].tcp.connected else { return }
            enqueueStream(SimPacket(payload: payload, uplink: u, toGateway: false, clientAddress: address,
                                    connection: uplinks[u].tcp.generation), now)
            return
        }
        guard let u = uplinks.firstIndex(where: { $0.address == address }), uplinks[u].linkUp else { return }
        enqueue(SimPacket(payload: payload, uplink: u, toGateway: false, clientAddress: address), uplinks[u].down, now)
    }

    /// In order on the connection; held while it stalls, and dropped by the sender when its small
    /// unsent queue is full.
    private mutating func enqueueStream(_ p: SimPacket, _ now: UInt64) {
        var s = uplinks[p.uplink].tcp
        let stalledUntil = p.toGateway ? s.stalledUntilMs : max(s.stalledUntilMs, s.returnStalledUntilMs)
        if now < stalledUntil {
            let held = queue.filter { $0.packet.connection == p.connection && $0.packet.uplink == p.uplink
                && $0.packet.toGateway == p.toGateway && $0.at >= stalledUntil }.count
            guard held < SimStream.unsentCapacity else { return }
        }
        let at = max(now + random(s.delayMs), stalledUntil, s.lastDeliveryMs[p.toGateway] ?? 0)
        s.lastDeliveryMs[p.toGateway] = at
        uplinks[p.uplink].tcp = s
        seq += 1
        queue.append((at, seq, p))
    }

    /// The connection of uplink `u` breaks: what is in flight is lost; it comes back as a new
    /// connection at `reconnectAtMs`.
    mutating func resetStream(_ u: Int, reconnectAtMs: UInt64) {
        uplinks[u].tcp.connected = false
        uplinks[u].tcp.reconnectAtMs = reconnectAtMs
        uplinks[u].tcp.stalledUntilMs = 0
        uplinks[u].tcp.returnStalledUntilMs = 0
    }

    /// A new connection on uplink `u` (a new address for the gateway).
    mutating func reconnectStream(_ u: Int) {
        uplinks[u].tcp.generation += 1
        uplinks[u].tcp.connected = true
        uplinks[u].tcp.reconnectAtMs = nil
        uplinks[u].tcp.lastDeliveryMs = [:]
    }

    /// Lets a packet arrive at the gateway from an address no client has (an on-path attacker that
    /// rewrote a source address): it is delivered, but answers to it reach nobody.
    mutating func injectAtGateway(_ payload: SimPayload, from address: String, uplink: Int, now: UInt64) {
        enqueue(SimPacket(payload: payload, uplink: uplink, toGateway: true, clientAddress: address), SimDirection(), now)
    }

    private mutating func enqueue(_ p: SimPacket, _ d: SimDirection, _ now: UInt64) {
        guard !d.broken, p.payload.size <= d.maxDatagram, !chance(d.dropPct) else { return }
        let copies = chance(d.duplicatePct) ? 2 : 1
        for _ in 0..<copies {
            seq += 1
            queue.append((now + random(d.delayMs), seq, p))
        }
    }

    var nextDelivery: UInt64? { queue.map(\.at).min() }

    /// Removes and returns the packets due at or before `now`, in time order; those of a TCP
    /// connection that is gone are lost.
    mutating func due(_ now: UInt64) -> [SimPacket] {
        let ready = queue.filter { $0.at <= now }.sorted { ($0.at, $0.seq) < ($1.at, $1.seq) }
        queue.removeAll { $0.at <= now }
        return ready.map(\.packet).filter { p in
            p.connection.map { $0 == uplinks[p.uplink].tcp.generation && uplinks[p.uplink].tcp.connected } ?? true
        }
    }
}
