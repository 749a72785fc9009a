/// GRO for the way into the TUN: consecutive TCP segments of one flow (as a TSO burst arrives,
/// same headers and options, back-to-back sequence numbers) are merged into one super-packet
/// described by a `VirtioNetHeader`, so the kernel takes 64 KiB per write instead of one packet.
/// Pure; writes into a caller buffer; no allocation.
public enum Coalescer {
    public struct Segment {
        public let ipLength: Int
        public let headerLength: Int
        public let payloadLength: Int
        public let seq: UInt32
        public let flags: UInt8
        public let isV6: Bool

        @inlinable
        public init(ipLength: Int, headerLength: Int, payloadLength: Int, seq: UInt32, flags: UInt8, isV6: Bool) {
            self.ipLength = ipLength
            self.headerLength = headerLength
            self.payloadLength = payloadLength
            self.seq = seq
            self.flags = flags
            self.isV6 = isV6
        }
    }

    /// Parses a plain TCP segment that may take part in coalescing (no IPv4 options or fragments,
    /// IPv6 without extension headers, only ACK or PSH|ACK set, non-empty payload). Its checksum is
    /// looked at by `group`, only once a merge is certain.
    @inlinable
    public static func parse(_ p: UnsafeRawPointer, _ length: Int) -> Segment? {
        guard let (ipLen, isV6) = PlainIPHeader.parse(p, length, proto: 6), length >= ipLen + 20 else { return nil }
        let tcpLen = Int(p.load(fromByteOffset: ipLen + 12, as: UInt8.self) >> 4) * 4
        let flags = p.load(fromByteOffset: ipLen + 13, as: UInt8.self)
        guard tcpLen >= 20, ipLen + tcpLen < length, flags == 0x10 || flags == 0x18 else { return nil }
        return Segment(ipLength: ipLen, headerLength: ipLen + tcpLen, payloadLength: length - ipLen - tcpLen,
                       seq: UInt32(bigEndian: p.loadUnaligned(fromByteOffset: ipLen + 4, as: UInt32.self)), flags: flags, isV6: isV6)
    }

    /// How many of the packets `0..<count` (`pointer(i)`, `length(i)`), from the first on, make one
    /// super-packet of at most 65,535 bytes; their parses are stored in `parsed[0...]`. 0 when the
    /// first cannot be merged (not a candidate, or, once something follows it, a wrong checksum);
    /// 1 when nothing follows it. Every merged segment's checksum must be right (see
    /// `PlainIPHeader.transportChecksumValid`); a lone one's is left to the kernel, so a segment's
    /// checksum is summed once at most.
    @inlinable
    public static func group(count: Int, pointer: (Int) -> UnsafeRawPointer, length: (Int) -> Int,
                             parsed: UnsafeMutablePointer<Segment>) -> Int {
        guard count > 0, let first = parse(pointer(0), length(0)) else { return 0 }
        parsed[0] = first
        var total = first.headerLength + first.payloadLength
        var n = 1
        while n < count, parsed[n - 1].flags == 0x10, let s = parse(pointer(n), length(n)), total + s.payloadLength <= 65535,
              follows(first: first, parsed[n - 1], pointer(n - 1), s, pointer(n)), checksumValid(pointer(n), length(n), s) {
            parsed[n] = s
            total += s.payloadLength
            n += 1
        }
        if n > 1 && !checksumValid(pointer(0), length(0), first) { return 0 }
        return n
    }

    @inlinable
    static func checksumValid(_ p: UnsafeRawPointer, _ length: Int, _ s: Segment) -> Bool {
        PlainIPHeader.transportChecksumValid(p, length: length, headerLength: s.ipLength, isV6: s.isV6, proto: 6)
    }

    /// Can `b` directly follow `a` (and `first`, whose payload size is the MSS) in one super-packet?
    @inlinable
    public static func follows(first: Segment, _ a: Segment, _ pa: UnsafeRawPointer, _ b: Segment, _ pb: UnsafeRawPointer) -> Bool {
        guard a.flags == 0x10, a.isV6 == b.isV6, a.headerLength == b.headerLength,
              a.payloadLength == first.payloadLength, b.payloadLength <= first.payloadLength,
              b.seq == a.seq &+ UInt32(a.payloadLength) else { return false }
        // TCP stacks may send DF segments with any ids (Linux numbers them on, others do not).
        guard PlainIPHeader.continues(pa, pb, isV6: a.isV6, anyIDWithDF: true) else { return false }
        let t = a.ipLength
        // ports, ack number, the byte of header length and the AE and reserved bits (the merge keeps
        // the first's), window, urgent pointer and every option byte must match (Linux GRO
        // requires the same, the urgent pointer aside, which the split copies from the first)
        return memcmpEqual(pa + t, pb + t, 4) && memcmpEqual(pa + t + 8, pb + t + 8, 5)
            && memcmpEqual(pa + t + 14, pb + t + 14, 2) && memcmpEqual(pa + t + 18, pb + t + 18, 2)
            && memcmpEqual(pa + t + 20, pb + t + 20, a.headerLength - t - 20)
    }

    @usableFromInline
    static func memcmpEqual(_ a: UnsafeRawPointer, _ b: UnsafeRawPointer, _ n: Int) -> Bool {
        var i = 0
        while i + 4 <= n {
            if a.loadUnaligned(fromByteOffset: i, as: UInt32.self) != b.loadUnaligned(fromByteOffset: i, as: UInt32.self) { return false }
            i += 4
        }
        while i < n {
            if a.load(fromByteOffset: i, as: UInt8.self) != b.load(fromByteOffset: i, as: UInt8.self) { return false }
            i += 1
        }
        return true
    }

    /// Writes `VirtioNetHeader` and the merged packet's headers (the first segment's, rewritten for
    /// the whole) to `out`, from segments (pointer, parsed) in order. The merged payload is each
    /// segment's payload in turn (`payloadLength` bytes after its `headerLength`), which the caller
    /// puts behind the headers where they lie (one gathering write), not copied together. Returns
    /// the bytes written to `out` and the merged packet's length, virtio header included.
    @inlinable
    public static func mergedHeaders(into out: UnsafeMutableRawPointer, count: Int, pointer: (Int) -> UnsafeRawPointer,
                                     segment: (Int) -> Segment) -> (headerBytes: Int, totalBytes: Int) {
        let first = segment(0)
        let pkt = out + VirtioNetHeader.size
        pkt.copyMemory(from: pointer(0), byteCount: first.headerLength)
        var off = first.headerLength
        var lastFlags = first.flags
        for i in 0..<count {
            let s = segment(i)
            off += s.payloadLength
            lastFlags = s.flags
        }
        let ipLen = first.ipLength
        PlainIPHeader.rewrite(pkt, totalLength: off, headerLength: ipLen, isV6: first.isV6)
        pkt.storeBytes(of: lastFlags, toByteOffset: ipLen + 13, as: UInt8.self)
        // NEEDS_CSUM: the field holds the pseudo-header sum; the kernel adds the rest.
        let pseudo = Checksum.fold(Checksum.pseudoHeader(ip: pkt, isV6: first.isV6, proto: 6, l4Length: off - ipLen))
        pkt.storeBytes(of: pseudo.bigEndian, toByteOffset: ipLen + 16, as: UInt16.self)
        var h = VirtioNetHeader()
        h.flags = VirtioNetHeader.needsChecksum
        h.gsoType = first.isV6 ? VirtioNetHeader.gsoTCPv6 : VirtioNetHeader.gsoTCPv4
        h.headerLength = UInt16(first.headerLength)
        h.gsoSize = UInt16(first.payloadLength)
        h.checksumStart = UInt16(ipLen)
        h.checksumOffset = 16
        h.write(to: out)
        return (VirtioNetHeader.size + first.headerLength, VirtioNetHeader.size + off)
    }
}
