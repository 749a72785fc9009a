import JVPNCore
import JVPNSystem
import Synchronization

/// Counters the data plane bumps without locks; status reads them.
final class PeerCounters: @unchecked Sendable {
    /// Bytes and packets through the tunnel, per packet worker (each writes its own line).
    let traffic: PerWorkerCounters
    enum Traffic {
        static let txBytes = 0, txPackets = 1, rxBytes = 2, rxPackets = 3
    }
    var txBytes: UInt64 { traffic.total(Traffic.txBytes) }
    var txPackets: UInt64 { traffic.total(Traffic.txPackets) }
    var rxBytes: UInt64 { traffic.total(Traffic.rxBytes) }
    var rxPackets: UInt64 { traffic.total(Traffic.rxPackets) }

    init(workers: Int) { traffic = PerWorkerCounters(workers: workers) }

    /// Worker `worker` sent one packet of `bytes` to the peer.
    @inline(__always)
    func countSent(worker: Int, bytes: Int) {
        traffic.add(Traffic.txBytes, worker: worker, UInt64(bytes))
        traffic.add(Traffic.txPackets, worker: worker, 1)
    }

    /// Worker `worker` delivered one packet of `bytes` from the peer.
    @inline(__always)
    func countReceived(worker: Int, bytes: Int) {
        traffic.add(Traffic.rxBytes, worker: worker, UInt64(bytes))
        traffic.add(Traffic.rxPackets, worker: worker, 1)
    }

    let rejectedReplay = Atomic<UInt64>(0)
    let rejectedAuth = Atomic<UInt64>(0)
    let rejectedStaleVersion = Atomic<UInt64>(0)
    let rejectedRateLimited = Atomic<UInt64>(0)
    let droppedInnerSource = Atomic<UInt64>(0)
    /// When the receive thread last told the control plane about data from an unbound address.
    let lastUnboundReportMs = Atomic<UInt64>(0)
    /// When the receive thread last told the control plane about a refused control frame.
    let lastRefusedReportMs = Atomic<UInt64>(0)
    /// Authenticated control frames that did not decode (a buggy or hostile peer).
    let droppedMalformedControl = Atomic<UInt64>(0)
    // Fitting inner packets to a path smaller than the tunnel MTU (both packet threads).
    /// TCP SYN and SYN-ACK segments whose MSS option was lowered.
    let mssClamped = Atomic<UInt64>(0)
    /// Too-big TCP packets (TSO super-packets or single segments) cut to the path's size.
    let resegmented = Atomic<UInt64>(0)
    /// IPv4 packets without DF fragmented to the path's size.
    let fragmented = Atomic<UInt64>(0)
    /// Too-big packets that could not be split (DF, IPv6, not TCP): dropped.
    let droppedTooBig = Atomic<UInt64>(0)
    /// ICMP fragmentation-needed / ICMPv6 packet-too-big errors written into the TUN.
    let tooBigSent = Atomic<UInt64>(0)
}

/// What the data plane needs to send to one peer, fixed for one snapshot generation.
struct PeerSendRoute {
    let keypair: Keypair
    /// A UDP socket or a TCP connection.
    let transport: any FrameTransport
    /// The datagrams' destination in the socket's own form (unused on a stream).
    let destination: SocketAddress
    let counters: PeerCounters
    /// The largest inner packet one frame on the path carries, when that is less than the tunnel
    /// MTU; `Int.max` when the path carries whatever the TUN gives (or its size is not known yet).
    let maxInnerPacket: Int

    /// Packets must be fitted to the path (MSS clamp, too-big handling).
    var fitsToPath: Bool { maxInnerPacket != Int.max }
}

/// A receiver index resolved to its peer and keys.
struct ReceiverEntry {
    let peerIndex: Int
    let keypair: Keypair
    let counters: PeerCounters
    /// Responder-side keys not yet confirmed by the initiator: first use promotes them.
    let isUnconfirmed: Bool
    /// Keys of a session that has ended: control frames still reach the control plane (so the
    /// client learns that it ended), data is dropped.
    let isEnded: Bool
    /// Gateway: authenticated data from anywhere but `boundSource` is reported (it never moves the
    /// session). A client has no bound source: probes may use any path.
    let checksBoundSource: Bool
    /// In the receiving socket's own form (a UDP address may be v4-mapped), as frames arrive.
    let boundSource: TransportAddress?
    /// The peer's `PeerSendRoute.maxInnerPacket`: SYNs from the far side are clamped to it too.
    let maxInnerPacket: Int
}

/// One peer's part of a `DataPlaneSnapshot`, kept by the host so that a change to one peer
/// republishes that peer alone.
struct PeerDataView {
    var send: PeerSendRoute?
    var receivers: [(index: UInt32, entry: ReceiverEntry)]
}

/// A peer's session as the receive side needs it (built by the host under its lock).
struct PeerReceiveState {
    /// The peer has session keys the data plane should recognise.
    var hasSession: Bool
    var isEnded: Bool
    var checksBoundSource: Bool
    /// The gateway's bound path for the session (nil on a client: probes may use any path).
    var boundSource: TransportAddress?
    /// Keys of a new session still waiting for the client's confirmation (gateway).
    var pendingKeypair: Keypair?
}

/// An immutable view of routing and keys for the packet threads. The control plane builds a new
/// one whenever something changes and bumps the generation; packet threads check the generation
/// once per batch (an atomic load), so no lock is taken per packet.
final class DataPlaneSnapshot: @unchecked Sendable {
    let routes: AllowedIPsTable<Int>
    /// By peer index.
    let send: ChunkedSlots<PeerSendRoute>
    /// By receiver index (our side's index of a keypair).
    let receivers: ShardedIndexMap<ReceiverEntry>
    /// Transport sockets by index; nil where an uplink is absent (hot-plug fills it later).
    let sockets: [UDPSocket?]

    init(routes: AllowedIPsTable<Int>, send: ChunkedSlots<PeerSendRoute>, receivers: ShardedIndexMap<ReceiverEntry>, sockets: [UDPSocket?]) {
        self.routes = routes
        self.send = send
        self.receivers = receivers
        self.sockets = sockets
    }

    static let empty = DataPlaneSnapshot(routes: AllowedIPsTable<Int>(), send: ChunkedSlots(), receivers: ShardedIndexMap(), sockets: [])
}

/// Published snapshot holder.
final class SnapshotCell: @unchecked Sendable {
    private let lock = Lock()
    private var current = DataPlaneSnapshot.empty
    let generation = Atomic<UInt64>(0)

    func publish(_ s: DataPlaneSnapshot) {
        lock.withLock {
            // A thread that sees the new generation then loads (under this lock) gets `s` or newer.
            current = s
            generation.store(generation.load(ordering: .relaxed) &+ 1, ordering: .releasing)
        }
    }

    func load() -> DataPlaneSnapshot { lock.withLock { current } }

}
