/// GRO for UDP on the way into the TUN (USO, Linux >= 6.2): consecutive datagrams of one flow
/// (same addresses, ports and IP header fields, equal payload sizes but for a shorter last one)
/// are merged into one super-packet with a `VirtioNetHeader` of type UDP_L4, which the kernel
/// splits back into the original datagrams. One write per burst instead of one per datagram.
/// Pure; writes into a caller buffer; no allocation.
///
/// What is merged is exactly what the kernel's segmentation gives back byte for byte: IPv4
/// without options or fragmentation and with consecutive IP ids (the kernel numbers the segments
/// id, id+1, ...), IPv6 without extension headers, a non-zero UDP checksum (the kernel writes one
/// into every segment; a datagram sent without one stays alone). The checksum must also be right:
/// the kernel trusts a merged datagram's (it computes it), so a damaged one stays alone, where
/// the kernel checks it and drops it.
public enum UDPCoalescer {
    /// Datagrams per super-packet at most: the kernel refuses a UDP_L4 super-packet of more than
    /// UDP_MAX_SEGMENTS gso_size-sized segments (64 on the kernels that brought USO to the TUN).
    public static let maxSegments = 64
    /// IP total length of a super-packet at most (the IPv4 total length and UDP length fields).
    public static let maxSuperPacketLength = 65535

    public struct Datagram: Equatable {
        /// IP header length: 20 (IPv4) or 40 (IPv6).
        public let ipLength: Int
        public let payloadLength: Int
        public let isV6: Bool

        @inlinable
        public init(ipLength: Int, payloadLength: Int, isV6: Bool) {
            self.ipLength = ipLength
            self.payloadLength = payloadLength
            self.isV6 = isV6
        }

        /// IP and UDP headers.
        @inlinable
        public var headerLength: Int { ipLength + 8 }
    }

    /// Parses a UDP datagram that may take part in coalescing (see the type's comment; the IP and
    /// UDP lengths agree with `length`, the payload is not empty, there is a checksum; whether it
    /// is right, `group` looks at only once a merge is certain).
    @inlinable
    public static func parse(_ p: UnsafeRawPointer, _ length: Int) -> Datagram? {
        guard let (ipLen, isV6) = PlainIPHeader.parse(p, length, proto: 17), length >= ipLen + 9,
              Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: ipLen + 4, as: UInt16.self))) == length - ipLen,
              p.loadUnaligned(fromByteOffset: ipLen + 6, as: UInt16.self) != 0 else { return nil }
        return Datagram(ipLength: ipLen, payloadLength: length - ipLen - 8, isV6: isV6)
    }

    /// Can `b` directly follow `a` (and `first`, whose payload size is the segment size) in one
    /// super-packet? A datagram shorter than `first` ends its group: it can follow, nothing can
    /// follow it.
    @inlinable
    public static func follows(first: Datagram, _ a: Datagram, _ pa: UnsafeRawPointer, _ b: Datagram, _ pb: UnsafeRawPointer) -> Bool {
        guard a.isV6 == b.isV6, a.payloadLength == first.payloadLength, b.payloadLength <= first.payloadLength else { return false }
        // Byte for byte what the split gives back: the ids run on, DF or not.
        guard PlainIPHeader.continues(pa, pb, isV6: a.isV6, anyIDWithDF: false) else { return false }
        // source and destination ports
        return Coalescer.memcmpEqual(pa + a.ipLength, pb + b.ipLength, 4)
    }

    /// How many of the packets `0..<count` (`pointer(i)`, `length(i)`), from the first on, make one
    /// super-packet, within `maxSegments` and `maxSuperPacketLength`; their parses are stored in
    /// `parsed[0...]`. 0 when the first cannot be merged (not a candidate, or, once something
    /// follows it, a wrong checksum); 1 when nothing follows it. A datagram's checksum is summed
    /// once at most, and a lone one's not at all (the kernel checks it).
    @inlinable
    public static func group(count: Int, pointer: (Int) -> UnsafeRawPointer, length: (Int) -> Int,
                             parsed: UnsafeMutablePointer<Datagram>) -> Int {
        guard count > 0, let first = parse(pointer(0), length(0)) else { return 0 }
        parsed[0] = first
        var total = first.headerLength + first.payloadLength
        var n = 1
        while n < count && n < maxSegments, let d = parse(pointer(n), length(n)),
              total + d.payloadLength <= maxSuperPacketLength,
              follows(first: first, parsed[n - 1], pointer(n - 1), d, pointer(n)), checksumValid(pointer(n), length(n), d) {
            parsed[n] = d
            total += d.payloadLength
            n += 1
        }
        if n > 1 && !checksumValid(pointer(0), length(0), first) { return 0 }
        return n
    }

    @inlinable
    static func checksumValid(_ p: UnsafeRawPointer, _ length: Int, _ d: Datagram) -> Bool {
        PlainIPHeader.transportChecksumValid(p, length: length, headerLength: d.ipLength, isV6: d.isV6, proto: 17)
    }

    /// Writes `VirtioNetHeader` and the merged packet's headers to `out` from `count` >= 2
    /// datagrams (pointer, parsed) in order, each following the one before; the payloads go behind
    /// them where they lie, as with `Coalescer.mergedHeaders`. Returns the bytes written to `out`
    /// and the merged packet's length, virtio header included.
    @inlinable
    public static func mergedHeaders(into out: UnsafeMutableRawPointer, count: Int, pointer: (Int) -> UnsafeRawPointer,
                                     datagram: (Int) -> Datagram) -> (headerBytes: Int, totalBytes: Int) {
        let first = datagram(0)
        let pkt = out + VirtioNetHeader.size
        let hdrLen = first.headerLength
        pkt.copyMemory(from: pointer(0), byteCount: hdrLen)
        var off = hdrLen
        for i in 0..<count { off += datagram(i).payloadLength }
        let ipLen = first.ipLength
        PlainIPHeader.rewrite(pkt, totalLength: off, headerLength: ipLen, isV6: first.isV6)
        let l4 = off - ipLen
        pkt.storeBytes(of: UInt16(l4).bigEndian, toByteOffset: ipLen + 4, as: UInt16.self)
        // NEEDS_CSUM: the field holds the pseudo-header sum over the whole UDP length; the kernel
        // replaces that length by each segment's and adds the rest.
        let pseudo = Checksum.fold(Checksum.pseudoHeader(ip: pkt, isV6: first.isV6, proto: 17, l4Length: l4))
        pkt.storeBytes(of: pseudo.bigEndian, toByteOffset: ipLen + 6, as: UInt16.self)
        var h = VirtioNetHeader()
        h.flags = VirtioNetHeader.needsChecksum
        h.gsoType = VirtioNetHeader.gsoUDPL4
        h.headerLength = UInt16(hdrLen)
        h.gsoSize = UInt16(first.payloadLength)
        h.checksumStart = UInt16(ipLen)
        h.checksumOffset = 6
        h.write(to: out)
        return (VirtioNetHeader.size + hdrLen, VirtioNetHeader.size + off)
    }
}
