import JVPNCore
import JVPNSystem

/// fitToPath and clampMss: while the peer's active path carries less than the tunnel MTU (its
/// `PeerSendRoute.maxInnerPacket`), inner packets are made to fit it, as a router at the tunnel's
/// entry would: SYN and SYN-ACK MSS options are lowered (both directions), TCP that is too big
/// (TSO super-packets, single segments) is cut to the path's size, IPv4 without DF is fragmented,
/// and the rest is dropped; the sender of a too-big packet with DF (or IPv6) gets an ICMP
/// fragmentation-needed / packet-too-big written into the TUN, at most `tooBigPerSecond` (shared
/// out among the workers), so that its flows shrink at once. Nothing here allocates; the ICMP buffer
/// and its budget belong to the send thread.
extension PacketPump {
    static let tooBigPerSecond = 100.0
    static let tooBigBurst: UInt64 = 50

    enum Fit {
        case send(VirtioNetHeader)
        case fragment
        case drop
    }

    /// fitToPath -> segment or fragment -> sealInPlace.
    func queueFitted(_ batch: DatagramBatch, _ pkt: UnsafeRawPointer, _ len: Int, _ h: VirtioNetHeader, _ route: PeerSendRoute,
                     _ batchTransport: inout (any FrameTransport)?) {
        switch fitToPath(pkt, len, h, route) {
        case .send(let fitted):
            queueSegments(batch, pkt, len, fitted, route, &batchTransport)
        case .fragment:
            // Each fragment carries a piece of the L4 checksum's coverage: finish it first if the
            // kernel left it partial (the packet sits in the send thread's own read buffer).
            do {
                try Segmenter.completeChecksum(UnsafeMutableRawPointer(mutating: pkt), length: len, header: h)
            } catch {
                droppedTunMalformed.add(1, ordering: .relaxed)
                return
            }
            queueFragments(batch, pkt, len, route, &batchTransport)
        case .drop:
            break
        }
    }

    private func fitToPath(_ pkt: UnsafeRawPointer, _ len: Int, _ h: VirtioNetHeader, _ route: PeerSendRoute) -> Fit {
        switch PathFit.plan(pkt, length: len, header: h, maxPacket: route.maxInnerPacket) {
        case .fits:
            return .send(h)
        case .resegment(let smaller):
            route.counters.resegmented.add(1, ordering: .relaxed)
            tellSenderTooBig(pkt, len, route)
            return .send(smaller)
        case .fragment:
            return .fragment
        case .tooBig:
            route.counters.droppedTooBig.add(1, ordering: .relaxed)
            tellSenderTooBig(pkt, len, route)
            return .drop
        }
    }

    /// The ICMP error into the TUN, as if from the host the packet was for.
    private func tellSenderTooBig(_ pkt: UnsafeRawPointer, _ len: Int, _ route: PeerSendRoute) {
        guard PathFit.senderMustShrink(pkt, length: len), tooBigBudget.take(nowMs: Clock.monotonicMilliseconds()) else { return }
        let n = PacketTooBig.write(into: tooBigBuffer + VirtioNetHeader.size, capacity: PacketTooBig.ipv6Limit, original: pkt,
                                   length: len, mtu: route.maxInnerPacket)
        guard n > 0 else { return }
        let written: Bool
        if vnet {
            tooBigBuffer.initializeMemory(as: UInt8.self, repeating: 0, count: VirtioNetHeader.size)
            written = tun.write(tooBigBuffer, length: n + VirtioNetHeader.size)
        } else {
            written = tun.write(tooBigBuffer + VirtioNetHeader.size, length: n)
        }
        if written {
            route.counters.tooBigSent.add(1, ordering: .relaxed)
        } else {
            droppedTunWrite.add(1, ordering: .relaxed)
        }
    }

    /// IPv4 fragments straight into batch slots, each sealed.
    private func queueFragments(_ batch: DatagramBatch, _ pkt: UnsafeRawPointer, _ len: Int, _ route: PeerSendRoute,
                                _ batchTransport: inout (any FrameTransport)?) {
        if batchTransport !== route.transport || batch.capacity - batch.count < 48 {
            if batch.count > 0, let t = batchTransport { flush(batch, on: t) }
            batch.count = 0
        }
        batchTransport = route.transport
        let base = batch.count
        var keysExhausted = false, sealFailed = false
        do {
            let produced = try IPv4Fragmenter.fragment(pkt, length: len, maxPacket: route.maxInnerPacket, maxFragments: batch.capacity - base,
                                            destination: { batch.payload(base + $0) + Frame.headerLength },
                                            emit: { i, l in
                                                guard let counter = route.keypair.nextCounter() else { keysExhausted = true; return }
                                                if !self.sealAndQueue(batch, index: base + i, length: l, route: route, counter: counter) {
                                                    sealFailed = true
                                                }
                                            })
            if keysExhausted || sealFailed || batch.count != base + produced { // mid-way: drop it all
                if keysExhausted { droppedNoKey.add(1, ordering: .relaxed) }
                batch.count = base
                return
            }
            route.counters.fragmented.add(1, ordering: .relaxed)
        } catch {
            droppedTunMalformed.add(1, ordering: .relaxed)
            batch.count = base
        }
    }

    /// clampMss on one packet about to be sealed or written to the TUN.
    @inline(__always)
    func clampMss(_ p: UnsafeMutableRawPointer, _ len: Int, _ maxPacket: Int, _ counters: PeerCounters) {
        if MssClamp.apply(p, length: len, maxPacket: maxPacket) { counters.mssClamped.add(1, ordering: .relaxed) }
    }
}
