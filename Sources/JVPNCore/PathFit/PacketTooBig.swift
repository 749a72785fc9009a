/// The ICMP error a router sends back when a packet does not fit the next hop: ICMPv4
/// "fragmentation needed and DF set" (type 3, code 4, with the next-hop MTU, RFC 1191) or ICMPv6
/// "packet too big" (type 2, RFC 4443). jvpn writes it into the TUN when an inner packet is larger
/// than the active path carries, so that its sender learns the size at once. Pure: it writes into
/// the caller's buffer.
public enum PacketTooBig {
    /// RFC 1812 4.3.2.3: an ICMPv4 error is at most 576 bytes, the quoted packet included.
    public static let ipv4Limit = 576
    /// RFC 4443 2.4 (c): an ICMPv6 error is at most the IPv6 minimum MTU.
    public static let ipv6Limit = 1280
    public static let hopLimit: UInt8 = 64

    /// Writes the error about `original` (`length` bytes) that announces `mtu`, and returns its
    /// length; 0 when no error may be sent about that packet (RFC 1122 3.2.2, RFC 4443 2.4): it is
    /// itself an ICMP error, a fragment other than the first, comes from an unspecified, multicast or
    /// broadcast source or goes to a multicast or broadcast destination, or its header is
    /// incomplete; also 0 when `capacity` is too small. The error comes from the original's
    /// destination (the host the tunnel could not reach with that size) and goes to its source. An
    /// ICMPv6 error never announces less than 1280 (RFC 8200 5).
    public static func write(into out: UnsafeMutableRawPointer, capacity: Int, original p: UnsafeRawPointer, length: Int,
                             mtu: Int) -> Int {
        guard length >= 20 else { return 0 }
        switch p.load(as: UInt8.self) >> 4 {
        case 4: return writeV4(out, capacity, p, length, mtu)
        case 6: return writeV6(out, capacity, p, length, mtu)
        default: return 0
        }
    }

    private static func writeV4(_ out: UnsafeMutableRawPointer, _ capacity: Int, _ p: UnsafeRawPointer, _ length: Int, _ mtu: Int) -> Int {
        let ihl = Int(p.load(as: UInt8.self) & 0x0f) * 4
        guard ihl >= 20, ihl <= length else { return 0 }
        let fragment = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        guard fragment & 0x1fff == 0 else { return 0 }
        let src = p.load(fromByteOffset: 12, as: UInt8.self), dst = p.load(fromByteOffset: 16, as: UInt8.self)
        func isAllOnes(_ at: Int) -> Bool { p.loadUnaligned(fromByteOffset: at, as: UInt32.self) == .max }
        func isZero(_ at: Int) -> Bool { p.loadUnaligned(fromByteOffset: at, as: UInt32.self) == 0 }
        guard !isZero(12), src & 0xf0 != 0xe0, !isAllOnes(12), dst & 0xf0 != 0xe0, !isAllOnes(16) else { return 0 }
        if p.load(fromByteOffset: 9, as: UInt8.self) == 1 {
            guard length > ihl else { return 0 }
            switch p.load(fromByteOffset: ihl, as: UInt8.self) {
            case 3, 4, 5, 11, 12: return 0 // destination unreachable, source quench, redirect, time exceeded, parameter problem
            default: break
            }
        }
        let quoted = min(length, ipv4Limit - 28)
        let total = 28 + quoted
        guard capacity >= total else { return 0 }
        out.storeBytes(of: UInt8(0x45), as: UInt8.self)
        out.storeBytes(of: UInt8(0xc0), toByteOffset: 1, as: UInt8.self) // internetwork control, as the kernel's own errors
        out.storeBytes(of: UInt16(total).bigEndian, toByteOffset: 2, as: UInt16.self)
        out.storeBytes(of: UInt32(0), toByteOffset: 4, as: UInt32.self) // id 0, no flags, offset 0
        out.storeBytes(of: hopLimit, toByteOffset: 8, as: UInt8.self)
        out.storeBytes(of: UInt8(1), toByteOffset: 9, as: UInt8.self)
        out.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
        (out + 12).copyMemory(from: p + 16, byteCount: 4)
        (out + 16).copyMemory(from: p + 12, byteCount: 4)
        out.storeBytes(of: Checksum.finish(Checksum.sum(out, 20)).bigEndian, toByteOffset: 10, as: UInt16.self)
        let icmp = out + 20
        icmp.storeBytes(of: UInt8(3), as: UInt8.self)
        icmp.storeBytes(of: UInt8(4), toByteOffset: 1, as: UInt8.self)
        icmp.storeBytes(of: UInt32(0), toByteOffset: 2, as: UInt32.self) // checksum and the unused field
        icmp.storeBytes(of: UInt16(clamping: max(mtu, 68)).bigEndian, toByteOffset: 6, as: UInt16.self)
        (icmp + 8).copyMemory(from: p, byteCount: quoted)
        icmp.storeBytes(of: Checksum.finish(Checksum.sum(icmp, 8 + quoted)).bigEndian, toByteOffset: 2, as: UInt16.self)
        return total
    }

    private static func writeV6(_ out: UnsafeMutableRawPointer, _ capacity: Int, _ p: UnsafeRawPointer, _ length: Int, _ mtu: Int) -> Int {
        guard length >= 40 else { return 0 }
        let srcHigh = p.loadUnaligned(fromByteOffset: 8, as: UInt64.self), srcLow = p.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
        guard srcHigh != 0 || srcLow != 0, p.load(fromByteOffset: 8, as: UInt8.self) != 0xff,
              p.load(fromByteOffset: 24, as: UInt8.self) != 0xff else { return 0 }
        switch p.load(fromByteOffset: 6, as: UInt8.self) {
        case 58:
            guard length > 40 else { return 0 }
            if p.load(fromByteOffset: 40, as: UInt8.self) < 128 { return 0 } // an ICMPv6 error
        case 44:
            guard length >= 48 else { return 0 }
            if UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 42, as: UInt16.self)) & 0xfff8 != 0 { return 0 }
        default:
            break
        }
        let quoted = min(length, ipv6Limit - 48)
        let total = 48 + quoted
        guard capacity >= total else { return 0 }
        out.storeBytes(of: UInt32(0x6000_0000).bigEndian, as: UInt32.self)
        out.storeBytes(of: UInt16(8 + quoted).bigEndian, toByteOffset: 4, as: UInt16.self)
        out.storeBytes(of: UInt8(58), toByteOffset: 6, as: UInt8.self)
        out.storeBytes(of: hopLimit, toByteOffset: 7, as: UInt8.self)
        (out + 8).copyMemory(from: p + 24, byteCount: 16)
        (out + 24).copyMemory(from: p + 8, byteCount: 16)
        let icmp = out + 40
        icmp.storeBytes(of: UInt8(2), as: UInt8.self)
        icmp.storeBytes(of: UInt8(0), toByteOffset: 1, as: UInt8.self)
        icmp.storeBytes(of: UInt16(0), toByteOffset: 2, as: UInt16.self)
        icmp.storeBytes(of: UInt32(max(mtu, 1280)).bigEndian, toByteOffset: 4, as: UInt32.self)
        (icmp + 8).copyMemory(from: p, byteCount: quoted)
        let s = Checksum.sum(icmp, 8 + quoted, initial: Checksum.pseudoHeader(ip: out, isV6: true, proto: 58, l4Length: 8 + quoted))
        icmp.storeBytes(of: Checksum.finish(s).bigEndian, toByteOffset: 2, as: UInt16.self)
        return total
    }
}
