import JVPNCore
import JVPNSystem
import Synchronization

/// Where the packet workers and the handshake worker reach the control plane (the host), set once
/// the host exists.
final class ControllerLink: @unchecked Sendable {
    weak var controller: (any PumpController)?
}

/// The data plane: N packet workers (`PacketPump`), each with its own TUN queue and its own share
/// of the transport sockets, and the one handshake worker they share. The kernel keeps a flow on
/// one worker each way: a TUN queue is chosen per flow (and follows the queue the flow's packets
/// were last written on), a UDP socket of a `SO_REUSEPORT` set per remote address and port. So a
/// session's packets keep their order, and sessions from many addresses spread over the workers.
final class DataPlane: @unchecked Sendable {
    let workers: [PacketPump]
    let handshakes: HandshakeWorker
    let link: ControllerLink

    /// `queues`: one TUN queue per worker.
    init(queues: [TunDevice], mtu: Int, snapshot: SnapshotCell, vnet: Bool, uso: Bool, admission: HandshakeAdmission,
         connections: TcpConnections) throws {
        let gateway = admission.role == .gateway
        let admission = SharedAdmission(admission)
        let link = ControllerLink()
        self.link = link
        let handshakes = HandshakeWorker(snapshot: snapshot,
                                         replyCapacity: gateway ? HandshakeWorker.gatewayReplyCapacity : 1,
                                         factCapacity: gateway ? ControlFactRing.gatewayCapacity : 1,
                                         applyFacts: { next in link.controller?.apply(next) }) { message, source in
            link.controller?.handleHandshake(message, from: source)
        }
        self.handshakes = handshakes
        workers = try queues.enumerated().map { i, tun in
            try PacketPump(tun: tun, worker: i, of: queues.count, mtu: mtu, snapshot: snapshot, vnet: vnet, uso: uso,
                           admission: admission, handshakes: handshakes, link: link, connections: connections)
        }
    }

    /// Worker 0: the one that serves the TCP transport (listeners, connections, their counters).
    var streams: PacketPump { workers[0] }

    func start() throws {
        try handshakes.start()
        for w in workers { try w.start() }
    }

    /// Tells the receive threads to pick up a changed socket or connection set now.
    func socketsChanged() {
        for w in workers { w.socketsChanged() }
    }

    func shutdown() {
        for w in workers { w.requestStop() }
        let deadline = Clock.monotonicMilliseconds() + 2000
        for w in workers { w.waitStopped(deadlineMs: deadline) }
        handshakes.shutdown()
    }

    private func total(_ counter: (PacketPump) -> UInt64) -> JSONValue {
        JSONValue(workers.reduce(0) { $0 &+ counter($1) })
    }

    /// Status JSON's "data_plane": packets the packet threads dropped before any peer's counters,
    /// summed over the workers, and what each worker carried: the datagrams its sockets gave it, the
    /// packets it sealed and delivered (`traffic`: every peer's counters).
    func status(traffic: [PerWorkerCounters]) -> JSONValue {
        let perWorker: [JSONValue] = workers.indices.map { w in
            func sum(_ counter: Int) -> JSONValue {
                JSONValue(traffic.reduce(0) { $0 &+ ($1.workers > w ? $1.value(counter, worker: w) : 0) })
            }
            return ["datagrams_received": JSONValue(workers[w].datagramsReceived.load(ordering: .relaxed)),
                    "tx_packets": sum(PeerCounters.Traffic.txPackets), "rx_packets": sum(PeerCounters.Traffic.rxPackets)]
        }
        return ["workers": .array(perWorker),
                "dropped": ["no_route": total { $0.droppedNoRoute.load(ordering: .relaxed) },
                            "no_key": total { $0.droppedNoKey.load(ordering: .relaxed) },
                            "unknown_index": total { $0.droppedUnknownIndex.load(ordering: .relaxed) },
                            "control_queue_full": JSONValue(handshakes.facts.droppedFull.load(ordering: .relaxed)),
                            "tun_write": total { $0.droppedTunWrite.load(ordering: .relaxed) },
                            "tun_malformed": total { $0.droppedTunMalformed.load(ordering: .relaxed) },
                            "seal_failed": total { $0.droppedSealFailed.load(ordering: .relaxed) }]]
    }

    /// Status JSON's "handshakes": what the receive threads turned away and what the worker sent.
    func handshakeStatus() -> JSONValue {
        ["queue_depth": JSONValue(handshakes.depth),
         "cookie_replies_sent": JSONValue(handshakes.cookieRepliesSent.load(ordering: .relaxed)),
         "dropped": ["malformed": total { $0.droppedMalformed.load(ordering: .relaxed) },
                     "bad_mac1": total { $0.droppedHandshakeBadMac1.load(ordering: .relaxed) },
                     "cookie_rate_limited": total { $0.droppedHandshakeCookieLimited.load(ordering: .relaxed) },
                     "source_rate_limited": total { $0.droppedHandshakeSourceLimited.load(ordering: .relaxed) },
                     "queue_full": total { $0.droppedHandshakeQueueFull.load(ordering: .relaxed) },
                     "cookie_queue_full": total { $0.droppedCookieReplyQueueFull.load(ordering: .relaxed) }]]
    }
}
