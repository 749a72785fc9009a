/// What the data plane does with an inner packet (as read from the TUN, with its virtio header)
/// when the active path carries at most `maxPacket` bytes of inner packet per frame. Pure.
public enum PathFit {
    public enum Plan: Equatable, Sendable {
        case fits
        /// TCP: cut into segments that fit, with this header (TSO at the path's size). A TSO
        /// super-packet gets a smaller segment size; a single segment that is too big becomes one.
        case resegment(VirtioNetHeader)
        /// IPv4 without DF: fragmented, as a router would.
        case fragment
        /// Too big and may not be split (DF set, IPv6, not TCP, a UDP burst of datagrams each too
        /// big): dropped.
        case tooBig
    }

    /// Decides for the packet at `p` (`length` bytes, described by `h`).
    public static func plan(_ p: UnsafeRawPointer, length: Int, header h: VirtioNetHeader, maxPacket: Int) -> Plan {
        let isTSO = h.gsoType == VirtioNetHeader.gsoTCPv4 || h.gsoType == VirtioNetHeader.gsoTCPv6
        if isTSO {
            // Malformed super-packets are the segmenter's to refuse.
            guard let seg = TCPSegment(p, length: length) else { return .fits }
            if seg.headerLength + Int(h.gsoSize) <= maxPacket { return .fits }
            guard maxPacket > seg.headerLength else { return .tooBig }
            var smaller = h
            smaller.gsoSize = UInt16(maxPacket - seg.headerLength)
            return .resegment(smaller)
        }
        if h.gsoType == VirtioNetHeader.gsoUDPL4 {
            // A UDP_SEGMENT burst: datagrams keep their boundaries, so it fits when each of its
            // datagrams does, and is too big otherwise. Malformed ones are the segmenter's to refuse.
            guard length >= 20 else { return .fits }
            let ipLen = p.load(as: UInt8.self) >> 4 == 6 ? 40 : Int(p.load(as: UInt8.self) & 0x0f) * 4
            return ipLen + 8 + Int(h.gsoSize) <= maxPacket ? .fits : .tooBig
        }
        guard length > maxPacket else { return .fits }
        guard h.gsoType == VirtioNetHeader.gsoNone else { return .tooBig }
        if let seg = TCPSegment(p, length: length), maxPacket > seg.headerLength {
            var tso = VirtioNetHeader()
            tso.gsoType = seg.isV6 ? VirtioNetHeader.gsoTCPv6 : VirtioNetHeader.gsoTCPv4
            tso.gsoSize = UInt16(maxPacket - seg.headerLength)
            tso.headerLength = UInt16(seg.headerLength)
            return .resegment(tso)
        }
        if p.load(as: UInt8.self) >> 4 == 4, !dontFragment(p) { return .fragment }
        return .tooBig
    }

    /// An IPv4 packet with DF set, or any IPv6 packet: the sender must be told when it is too big.
    public static func senderMustShrink(_ p: UnsafeRawPointer, length: Int) -> Bool {
        guard length >= 20 else { return false }
        switch p.load(as: UInt8.self) >> 4 {
        case 4: return dontFragment(p)
        case 6: return true
        default: return false
        }
    }

    @inlinable
    static func dontFragment(_ p: UnsafeRawPointer) -> Bool {
        UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 6, as: UInt16.self)) & 0x4000 != 0
    }
}
