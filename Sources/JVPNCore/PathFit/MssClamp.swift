/// Lowers the MSS option of TCP SYN and SYN-ACK segments so that a connection's segments fit the
/// path (what routers call MSS clamping). The MSS a host announces is what its peer sends it, so
/// clamping the SYNs of both directions bounds the segments of both. Pure, in place, no allocation.
public enum MssClamp {
    /// The MSS that keeps TCP segments within IP packets of `maxPacket` bytes: minus the fixed IP
    /// and TCP headers (RFC 6691; options are the sender's to account for).
    @inlinable
    public static func mss(maxPacket: Int, isV6: Bool) -> Int { maxPacket - (isV6 ? 40 : 20) - 20 }

    /// If `p` is an IPv4 or IPv6 TCP segment with SYN set whose MSS option announces more than
    /// `mss(maxPacket:isV6:)`, lowers the option to that and updates the TCP checksum for the change
    /// alone, so a segment that arrived damaged stays damaged and the kernel drops it. True if changed.
    public static func apply(_ p: UnsafeMutableRawPointer, length: Int, maxPacket: Int) -> Bool {
        guard let seg = TCPSegment(p, length: length) else { return false }
        let tcp = p + seg.ipHeaderLength
        guard tcp.load(fromByteOffset: 13, as: UInt8.self) & 0x02 != 0 else { return false }
        let limit = mss(maxPacket: maxPacket, isV6: seg.isV6)
        guard limit > 0 else { return false }
        var i = 20
        while i < seg.tcpHeaderLength {
            let kind = tcp.load(fromByteOffset: i, as: UInt8.self)
            if kind == 0 { return false }
            if kind == 1 {
                i += 1
                continue
            }
            guard i + 1 < seg.tcpHeaderLength else { return false }
            let len = Int(tcp.load(fromByteOffset: i + 1, as: UInt8.self))
            guard len >= 2, i + len <= seg.tcpHeaderLength else { return false }
            if kind == 2 && len == 4 {
                let announced = Int(UInt16(bigEndian: tcp.loadUnaligned(fromByteOffset: i + 2, as: UInt16.self)))
                guard announced > limit else { return false }
                tcp.storeBytes(of: UInt16(limit).bigEndian, toByteOffset: i + 2, as: UInt16.self)
                updateChecksum(tcp, valueAt: i + 2, from: UInt16(announced), to: UInt16(limit))
                return true
            }
            i += len
        }
        return false
    }

    /// HC' = ~(~HC + ~m + m') (RFC 1624, eqn. 3) for a 16-bit field of the TCP header at `offset`
    /// that changed from `old` to `new`. At an odd offset the field straddles two of the sum's
    /// 16-bit words, and its bytes weigh as the byte-swapped value.
    @inlinable
    static func updateChecksum(_ tcp: UnsafeMutableRawPointer, valueAt offset: Int, from old: UInt16, to new: UInt16) {
        let odd = offset & 1 == 1
        let m = odd ? old.byteSwapped : old, m2 = odd ? new.byteSwapped : new
        let hc = UInt16(bigEndian: tcp.loadUnaligned(fromByteOffset: 16, as: UInt16.self))
        let sum = UInt64(~hc) &+ UInt64(~m) &+ UInt64(m2)
        tcp.storeBytes(of: Checksum.finish(sum).bigEndian, toByteOffset: 16, as: UInt16.self)
    }
}

/// The headers of an unfragmented TCP segment (IPv4, or IPv6 without extension headers), as far as
/// the path-fit code needs them. Nil for anything else or anything that does not add up.
public struct TCPSegment: Equatable, Sendable {
    public let isV6: Bool
    public let ipHeaderLength: Int
    public let tcpHeaderLength: Int
    /// The length the IP header claims (at most the buffer's).
    public let totalLength: Int

    @inlinable
    public var headerLength: Int { ipHeaderLength + tcpHeaderLength }

    public init?(_ p: UnsafeRawPointer, length: Int) {
        guard length >= 40 else { return nil }
        let b0 = p.load(as: UInt8.self)
        switch b0 >> 4 {
        case 4:
            let ihl = Int(b0 & 0x0f) * 4
            let fragment = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
            guard ihl >= 20, p.load(fromByteOffset: 9, as: UInt8.self) == 6, fragment & 0x3fff == 0 else { return nil }
            isV6 = false
            ipHeaderLength = ihl
            totalLength = Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
        case 6:
            guard length >= 60, p.load(fromByteOffset: 6, as: UInt8.self) == 6 else { return nil }
            isV6 = true
            ipHeaderLength = 40
            totalLength = 40 + Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt16.self)))
        default:
            return nil
        }
        guard totalLength <= length, totalLength >= ipHeaderLength + 20 else { return nil }
        let doff = Int(p.load(fromByteOffset: ipHeaderLength + 12, as: UInt8.self) >> 4) * 4
        guard doff >= 20, ipHeaderLength + doff <= totalLength else { return nil }
        tcpHeaderLength = doff
    }
}
