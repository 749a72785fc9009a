/// Splits what the kernel hands a TUN with TSO/USO enabled (a TCP or UDP super-packet up to 64 KiB,
/// described by a `VirtioNetHeader`) into wire-size IP packets, each with correct IP and TCP headers and
/// checksums, written to caller-provided buffers. Pure; no allocation.
public enum Segmenter {
    public enum Failure: Error, Equatable { case malformed, unsupported }

    /// Segments `packet` into the buffers `destination(i)` (each with room for `capacity` bytes);
    /// calls `emit(i, length)` per segment. A packet without GSO is copied as one segment (its
    /// checksum completed if the header asks for it). At most `maxSegments` are produced per call,
    /// starting with segment `firstSegment` (numbered from 0 in `destination` and `emit`): the
    /// caller calls again from where it stopped until a call produces fewer than `maxSegments`.
    /// Returns the number produced.
    @inlinable
    public static func segment(_ packet: UnsafeRawPointer, length: Int, header h: VirtioNetHeader, firstSegment: Int = 0,
                               maxSegments: Int, capacity: Int, destination: (Int) -> UnsafeMutableRawPointer,
                               emit: (Int, Int) -> Void) throws(Failure) -> Int {
        guard length >= 20 else { throw .malformed }
        let version = packet.load(as: UInt8.self) >> 4
        guard version == 4 || version == 6 else { throw .malformed }
        let isV6 = version == 6
        if h.gsoType == VirtioNetHeader.gsoNone {
            guard firstSegment == 0 else { return 0 }
            guard length <= capacity else { throw .malformed }
            let d = destination(0)
            d.copyMemory(from: packet, byteCount: length)
            try completeChecksum(d, length: length, header: h)
            emit(0, length)
            return 1
        }
        if h.gsoType == VirtioNetHeader.gsoUDPL4 {
            return try segmentUDP(packet, length: length, isV6: isV6, gsoSize: Int(h.gsoSize), firstSegment: firstSegment,
                                  maxSegments: maxSegments, capacity: capacity, destination: destination, emit: emit)
        }
        guard h.gsoType == VirtioNetHeader.gsoTCPv4 || h.gsoType == VirtioNetHeader.gsoTCPv6 else { throw .unsupported }
        let ipLen = isV6 ? 40 : Int(packet.load(as: UInt8.self) & 0x0f) * 4
        guard ipLen >= 20 else { throw .malformed }
        guard (isV6 ? packet.load(fromByteOffset: 6, as: UInt8.self) : packet.load(fromByteOffset: 9, as: UInt8.self)) == 6,
              length >= ipLen + 20 else { throw .unsupported }
        let tcpLen = Int(packet.load(fromByteOffset: ipLen + 12, as: UInt8.self) >> 4) * 4
        let hdrLen = ipLen + tcpLen
        let mss = Int(h.gsoSize)
        guard tcpLen >= 20, hdrLen <= length, mss > 0 else { throw .malformed }
        let payload = length - hdrLen
        let count = max(1, (payload + mss - 1) / mss)
        guard hdrLen + min(mss, payload) <= capacity else { throw .malformed }
        let seq0 = UInt32(bigEndian: packet.loadUnaligned(fromByteOffset: ipLen + 4, as: UInt32.self))
        let id0 = isV6 ? 0 : UInt16(bigEndian: packet.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        let flags0 = packet.load(fromByteOffset: ipLen + 13, as: UInt8.self)
        let last = min(count, firstSegment + maxSegments)
        guard firstSegment < last else { return 0 }
        for i in firstSegment..<last {
            let off = i * mss
            let segPayload = min(mss, payload - off)
            let d = destination(i - firstSegment)
            let (total, payloadSum) = cut(packet, into: d, headerLength: hdrLen, ipLength: ipLen, isV6: isV6, firstID: id0, index: i,
                                          offset: off, size: segPayload)
            d.storeBytes(of: (seq0 &+ UInt32(off)).bigEndian, toByteOffset: ipLen + 4, as: UInt32.self)
            // FIN and PSH only on the last segment, CWR only on the first.
            var f = flags0
            if i != count - 1 { f &= ~(0x01 | 0x08) }
            if i != 0 { f &= ~0x80 }
            d.storeBytes(of: f, toByteOffset: ipLen + 13, as: UInt8.self)
            d.storeBytes(of: UInt16(0), toByteOffset: ipLen + 16, as: UInt16.self)
            let l4 = total - ipLen
            let s = Checksum.sum(d + ipLen, tcpLen, initial: Checksum.pseudoHeader(ip: d, isV6: isV6, proto: 6, l4Length: l4) &+ payloadSum)
            d.storeBytes(of: Checksum.finish(s).bigEndian, toByteOffset: ipLen + 16, as: UInt16.self)
            emit(i - firstSegment, total)
        }
        return last - firstSegment
    }

    /// Completes in place the checksum the kernel left partial in a packet without GSO (the header
    /// asks for it: NEEDS_CSUM, the pseudo-header sum in the field at csum_start + csum_offset),
    /// summing from csum_start to the end. Nothing to do when the header does not ask.
    @inlinable
    public static func completeChecksum(_ p: UnsafeMutableRawPointer, length: Int, header h: VirtioNetHeader) throws(Failure) {
        guard h.flags & VirtioNetHeader.needsChecksum != 0 else { return }
        let start = Int(h.checksumStart), field = start + Int(h.checksumOffset)
        guard length >= 20, start < length, field + 2 <= length else { throw .malformed }
        let partial = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: field, as: UInt16.self))
        p.storeBytes(of: UInt16(0), toByteOffset: field, as: UInt16.self)
        var c = Checksum.finish(Checksum.sum(p + start, length - start, initial: UInt64(partial)))
        if c == 0 && isUDP(UnsafeRawPointer(p), p.load(as: UInt8.self) >> 4 == 6) { c = 0xffff }
        p.storeBytes(of: c.bigEndian, toByteOffset: field, as: UInt16.self)
    }

    /// A UDP_L4 super-packet (a local sender's UDP_SEGMENT burst, on a TUN with USO): datagrams
    /// of `gsoSize` payload bytes, the last one possibly shorter, each with the super-packet's
    /// headers but its own lengths, IPv4 id (incremented as the kernel does) and checksums.
    @inlinable
    static func segmentUDP(_ packet: UnsafeRawPointer, length: Int, isV6: Bool, gsoSize: Int, firstSegment: Int,
                           maxSegments: Int, capacity: Int, destination: (Int) -> UnsafeMutableRawPointer,
                           emit: (Int, Int) -> Void) throws(Failure) -> Int {
        let ipLen = isV6 ? 40 : Int(packet.load(as: UInt8.self) & 0x0f) * 4
        guard ipLen >= 20, isUDP(packet, isV6), length >= ipLen + 8 else { throw .unsupported }
        let hdrLen = ipLen + 8
        let payload = length - hdrLen
        guard gsoSize > 0, payload > 0, hdrLen + min(gsoSize, payload) <= capacity else { throw .malformed }
        let count = (payload + gsoSize - 1) / gsoSize
        let id0 = isV6 ? 0 : UInt16(bigEndian: packet.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        let last = min(count, firstSegment + maxSegments)
        guard firstSegment < last else { return 0 }
        for i in firstSegment..<last {
            let off = i * gsoSize
            let segPayload = min(gsoSize, payload - off)
            let d = destination(i - firstSegment)
            let (total, payloadSum) = cut(packet, into: d, headerLength: hdrLen, ipLength: ipLen, isV6: isV6, firstID: id0, index: i,
                                          offset: off, size: segPayload)
            let l4 = total - ipLen
            d.storeBytes(of: UInt16(l4).bigEndian, toByteOffset: ipLen + 4, as: UInt16.self)
            d.storeBytes(of: UInt16(0), toByteOffset: ipLen + 6, as: UInt16.self)
            let s = Checksum.sum(d + ipLen, 8, initial: Checksum.pseudoHeader(ip: d, isV6: isV6, proto: 17, l4Length: l4) &+ payloadSum)
            var c = Checksum.finish(s)
            if c == 0 { c = 0xffff } // zero means "no checksum" in UDP
            d.storeBytes(of: c.bigEndian, toByteOffset: ipLen + 6, as: UInt16.self)
            emit(i - firstSegment, total)
        }
        return last - firstSegment
    }

    /// Segment `i` of a super-packet into `d`: its headers (`headerLength` bytes, of which the IP
    /// header is `ipLength`) and its `size` bytes of payload from `offset`, with the IP header's
    /// lengths, id (numbered on from `firstID`, as the kernel does) and checksum rewritten.
    /// Returns its length and its payload's `Checksum.sum` (taken as it is copied; the transport
    /// header ends on an even offset, so the caller adds the header's sum to it); the transport
    /// header is the caller's.
    @inlinable @inline(__always)
    static func cut(_ packet: UnsafeRawPointer, into d: UnsafeMutableRawPointer, headerLength hdrLen: Int, ipLength ipLen: Int,
                    isV6: Bool, firstID: UInt16, index i: Int, offset: Int, size: Int) -> (length: Int, payloadSum: UInt64) {
        d.copyMemory(from: packet, byteCount: hdrLen)
        let payloadSum = Checksum.copyAndSum(to: d + hdrLen, from: packet + hdrLen + offset, count: size)
        let total = hdrLen + size
        PlainIPHeader.rewrite(d, totalLength: total, headerLength: ipLen, isV6: isV6, id: firstID &+ UInt16(truncatingIfNeeded: i))
        return (total, payloadSum)
    }

    @inlinable
    static func isUDP(_ p: UnsafeRawPointer, _ isV6: Bool) -> Bool {
        (isV6 ? p.load(fromByteOffset: 6, as: UInt8.self) : p.load(fromByteOffset: 9, as: UInt8.self)) == 17
    }
}
