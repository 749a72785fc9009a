/// The IP header work TCP and UDP offload share: which packets merging may touch, and the header of
/// a packet glued into or cut from a super-packet.
public enum PlainIPHeader {
    /// The IP header length and family of a packet carrying `proto` that merging may touch: IPv4
    /// with no options and not a fragment (DF may be set), IPv6 with no extension header, and its
    /// length field agreeing with `length`. The caller checks the transport header fits.
    @inlinable
    public static func parse(_ p: UnsafeRawPointer, _ length: Int, proto: UInt8) -> (length: Int, isV6: Bool)? {
        guard length >= 20 else { return nil }
        switch p.load(as: UInt8.self) >> 4 {
        case 4:
            guard p.load(as: UInt8.self) == 0x45, p.load(fromByteOffset: 9, as: UInt8.self) == proto,
                  Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self))) == length,
                  UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 6, as: UInt16.self)) & 0x3fff == 0 else { return nil }
            return (20, false)
        case 6:
            guard length >= 40, p.load(fromByteOffset: 6, as: UInt8.self) == proto,
                  Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt16.self))) + 40 == length else { return nil }
            return (40, true)
        default:
            return nil
        }
    }

    /// Whether the IP header of `b` is the one the kernel's split of a super-packet starting with
    /// `a`'s would give the next packet: IPv6 the same version, class, flow label, next header, hop
    /// limit and addresses; IPv4 the same TOS, flags and offset, TTL, protocol and addresses, and
    /// the next id, or any id when `anyIDWithDF` and DF is set (no host looks at an atomic
    /// datagram's id). Lengths and the IPv4 header checksum may differ.
    @inlinable
    public static func continues(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, isV6: Bool, anyIDWithDF: Bool) -> Bool {
        if isV6 {
            return a.loadUnaligned(as: UInt32.self) == b.loadUnaligned(as: UInt32.self) && Coalescer.memcmpEqual(a + 6, b + 6, 34)
        }
        let idA = UInt16(bigEndian: a.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        let idB = UInt16(bigEndian: b.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        let df = a.load(fromByteOffset: 6, as: UInt8.self) & 0x40 != 0
        return a.load(fromByteOffset: 1, as: UInt8.self) == b.load(fromByteOffset: 1, as: UInt8.self)
            && Coalescer.memcmpEqual(a + 6, b + 6, 4) && Coalescer.memcmpEqual(a + 12, b + 12, 8)
            && (idB == idA &+ 1 || (anyIDWithDF && df))
    }

    /// Sets the length fields of the IP header at `p` for a packet of `totalLength` bytes; on IPv4
    /// also the id when given, then the header checksum.
    @inlinable
    public static func rewrite(_ p: UnsafeMutableRawPointer, totalLength: Int, headerLength: Int, isV6: Bool, id: UInt16? = nil) {
        if isV6 {
            p.storeBytes(of: UInt16(totalLength - 40).bigEndian, toByteOffset: 4, as: UInt16.self)
            return
        }
        p.storeBytes(of: UInt16(totalLength).bigEndian, toByteOffset: 2, as: UInt16.self)
        if let id { p.storeBytes(of: id.bigEndian, toByteOffset: 4, as: UInt16.self) }
        p.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
        p.storeBytes(of: Checksum.finish(Checksum.sum(p, headerLength)).bigEndian, toByteOffset: 10, as: UInt16.self)
    }

    /// Whether the TCP or UDP checksum of the packet (IP header of `headerLength`) is right. A
    /// merged super-packet leaves with its checksum to be computed afresh by the kernel, which
    /// then trusts it: a packet damaged before it was sealed would be delivered as sound, where
    /// written alone the kernel checks it and drops it. So only sound packets are merged.
    @inlinable
    public static func transportChecksumValid(_ p: UnsafeRawPointer, length: Int, headerLength: Int, isV6: Bool, proto: UInt8) -> Bool {
        let l4 = length - headerLength
        let s = Checksum.sum(p + headerLength, l4, initial: Checksum.pseudoHeader(ip: p, isV6: isV6, proto: proto, l4Length: l4))
        return Checksum.fold(s) == 0xffff
    }
}
