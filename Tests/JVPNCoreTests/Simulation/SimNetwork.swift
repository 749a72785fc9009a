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

    /// Client sends on `uplink`.
    mutating func clientSend(_ payload: SimPayload, uplink: Int, now: UInt64) {
        guard uplink < uplinks.count, uplinks[uplink].linkUp else { return }
        enqueue(SimPacket(payload: payload, uplink: uplink, toGateway: true, clientAddress: uplinks[uplink].address),
                uplinks[uplink].up, now)
    }

    /// Gateway sends to `address`; it reaches the client only if some uplink has that address now.
    mutating func gatewaySend(_ payload: SimPayload, to address: String, now: UInt64) {
        gatewaySent[address, default: 0] += payload.size
        guard let u = uplinks.firstIndex(where: { $0.address == address }), uplinks[u].linkUp else { return }
        enqueue(SimPacket(payload: payload, uplink: u, toGateway: false, clientAddress: address), uplinks[u].down, now)
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

    /// Removes and returns the packets due at or before `now`, in time order.
    mutating func due(_ now: UInt64) -> [SimPacket] {
        let ready = queue.filter { $0.at <= now }.sorted { ($0.at, $0.seq) < ($1.at, $1.seq) }
        queue.removeAll { $0.at <= now }
        return ready.map(\.packet)
    }
}
