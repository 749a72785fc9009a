import XCTest
@testable import JVPNCore

final class SegmenterTests: XCTestCase {
    /// An IPv4/TCP super-packet as the kernel hands it over with TSO: one header, a long payload.
    private func superPacket(payload: Int, v6: Bool, flags: UInt8 = 0x18) -> [UInt8] {
        var p: [UInt8]
        if v6 {
            p = [0x60, 0, 0, 0] + [UInt8((payload + 20) >> 8), UInt8((payload + 20) & 0xff), 6, 64]
            p += [0xfd, 0x77] + [UInt8](repeating: 0, count: 13) + [2] + [0xfd, 0x77] + [UInt8](repeating: 0, count: 13) + [1]
        } else {
            let total = 20 + 20 + payload
            p = [0x45, 0, UInt8(total >> 8 & 0xff), UInt8(total & 0xff), 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 77, 0, 2, 10, 77, 0, 1]
        }
        p += [0x9c, 0x40, 0x13, 0x89, 0x00, 0x00, 0x10, 0x00, 0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]
        p += (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        return p
    }

    private func verify(_ seg: [UInt8], v6: Bool) {
        let ipLen = v6 ? 40 : 20
        seg.withUnsafeBytes { b in
            let p = b.baseAddress!
            if !v6 { XCTAssertEqual(Checksum.fold(Checksum.sum(p, 20)), 0xffff, "IPv4 header checksum") }
            let l4 = seg.count - ipLen
            let s = Checksum.sum(p + ipLen, l4, initial: Checksum.pseudoHeader(ip: p, isV6: v6, proto: 6, l4Length: l4))
            XCTAssertEqual(Checksum.fold(s), 0xffff, "TCP checksum")
        }
    }

    private func run(_ packet: [UInt8], _ h: VirtioNetHeader) throws -> [[UInt8]] {
        var out = [[UInt8]](repeating: [], count: 64)
        let bufs = UnsafeMutableRawPointer.allocate(byteCount: 64 * 2048, alignment: 16)
        defer { bufs.deallocate() }
        let n = try packet.withUnsafeBytes { raw in
            try Segmenter.segment(raw.baseAddress!, length: raw.count, header: h, maxSegments: 64, capacity: 2048,
                                  destination: { bufs + $0 * 2048 },
                                  emit: { i, len in out[i] = Array(UnsafeRawBufferPointer(start: bufs + i * 2048, count: len)) })
        }
        return Array(out[0..<n])
    }

    func testTCPv4SuperPacketIsSplitWithFixedHeaders() throws {
        let pkt = superPacket(payload: 3500, v6: false, flags: 0x19) // PSH|ACK|FIN
        var h = VirtioNetHeader()
        h.flags = VirtioNetHeader.needsChecksum
        h.gsoType = VirtioNetHeader.gsoTCPv4
        h.gsoSize = 1000
        h.headerLength = 40
        let segs = try run(pkt, h)
        XCTAssertEqual(segs.map(\.count), [1040, 1040, 1040, 540])
        var payload: [UInt8] = []
        for (i, s) in segs.enumerated() {
            verify(s, v6: false)
            XCTAssertEqual(Int(s[2]) << 8 | Int(s[3]), s.count)
            XCTAssertEqual(Int(s[4]) << 8 | Int(s[5]), 0x1234 + i, "IP id increments")
            let seq = UInt32(s[24]) << 24 | UInt32(s[25]) << 16 | UInt32(s[26]) << 8 | UInt32(s[27])
            XCTAssertEqual(seq, 0x1000 + UInt32(i * 1000))
            XCTAssertEqual(s[33] & 0x09 != 0, i == 3, "FIN/PSH only on the last")
            payload += s[40...]
        }
        XCTAssertEqual(payload, Array(pkt[40...]))
    }

    func testTCPv6SuperPacket() throws {
        let pkt = superPacket(payload: 2500, v6: true)
        var h = VirtioNetHeader()
        h.gsoType = VirtioNetHeader.gsoTCPv6
        h.gsoSize = 1200
        let segs = try run(pkt, h)
        XCTAssertEqual(segs.count, 3)
        for s in segs {
            verify(s, v6: true)
            XCTAssertEqual(Int(s[4]) << 8 | Int(s[5]), s.count - 40)
        }
    }

    func testPartialChecksumCompletedWithoutGSO() throws {
        var pkt = superPacket(payload: 100, v6: false)
        // What the kernel leaves: the pseudo-header sum, not complemented, in the checksum field.
        let partial = pkt.withUnsafeBytes { Checksum.fold(Checksum.pseudoHeader(ip: $0.baseAddress!, isV6: false, proto: 6, l4Length: 120)) }
        pkt[36] = UInt8(partial >> 8); pkt[37] = UInt8(partial & 0xff)
        pkt.withUnsafeMutableBytes { b in
            b.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
            let c = Checksum.finish(Checksum.sum(b.baseAddress!, 20))
            b.storeBytes(of: c.bigEndian, toByteOffset: 10, as: UInt16.self)
        }
        var h = VirtioNetHeader()
        h.flags = VirtioNetHeader.needsChecksum
        h.checksumStart = 20
        h.checksumOffset = 16
        let segs = try run(pkt, h)
        XCTAssertEqual(segs.count, 1)
        verify(segs[0], v6: false)
    }

    func testMalformedInputIsRejectedNotCrashing() throws {
        var h = VirtioNetHeader()
        h.gsoType = VirtioNetHeader.gsoTCPv4
        h.gsoSize = 100
        XCTAssertThrowsError(try run([0x45, 0, 0], h))
        XCTAssertThrowsError(try run(Array(superPacket(payload: 10, v6: false)[0..<30]), h))
        h.gsoSize = 1 // 3500 segments: a call fills the batch, the caller goes on from there
        XCTAssertEqual(try run(superPacket(payload: 3500, v6: false), h).count, 64)
        var g = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let junk = (0..<Int.random(in: 0..<200, using: &g)).map { _ in UInt8.random(in: 0...255, using: &g) }
            var hh = VirtioNetHeader()
            hh.gsoType = [0, 1, 4, 3][Int.random(in: 0..<4, using: &g)]
            hh.gsoSize = UInt16.random(in: 0...1500, using: &g)
            hh.flags = UInt8.random(in: 0...1, using: &g)
            hh.checksumStart = UInt16.random(in: 0...300, using: &g)
            hh.checksumOffset = UInt16.random(in: 0...40, using: &g)
            _ = try? run(junk, hh)
        }
    }

    func testTCPSuperPacketWithAShortIPv4HeaderIsRejected() throws {
        var p = superPacket(payload: 3000, v6: false)
        p[0] = 0x44 // IHL 4: 16 bytes, shorter than any IPv4 header
        p[16 + 12] = 0x50 // where a 16-byte header's TCP data offset would be: a plausible 20
        var h = VirtioNetHeader()
        h.gsoType = VirtioNetHeader.gsoTCPv4
        h.gsoSize = 1000
        XCTAssertThrowsError(try run(p, h)) { XCTAssertEqual($0 as? Segmenter.Failure, .malformed) }
    }
}

final class CoalescerTests: XCTestCase {
    private func roundTrip(v6: Bool, payload: Int, mss: Int) throws {
        var pkt: [UInt8]
        if v6 {
            pkt = [0x60, 0, 0, 0, UInt8((payload + 32) >> 8), UInt8((payload + 32) & 0xff), 6, 64]
            pkt += [0xfd, 0x77] + [UInt8](repeating: 0, count: 13) + [2] + [0xfd, 0x77] + [UInt8](repeating: 0, count: 13) + [1]
        } else {
            let total = 20 + 32 + payload
            pkt = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 9, 0x40, 0, 64, 6, 0, 0, 10, 77, 0, 2, 10, 77, 0, 1]
        }
        // TCP with a 12-byte timestamp option block, PSH|ACK
        pkt += [0x9c, 0x40, 0x13, 0x89, 0, 0, 0x20, 0, 0, 0, 0, 7, 0x80, 0x18, 1, 0, 0, 0, 0, 0, 1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6]
        pkt += (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 1) }
        var h = VirtioNetHeader()
        h.gsoType = v6 ? VirtioNetHeader.gsoTCPv6 : VirtioNetHeader.gsoTCPv4
        h.gsoSize = UInt16(mss)
        let slots = UnsafeMutableRawPointer.allocate(byteCount: 64 * 2048, alignment: 16)
        defer { slots.deallocate() }
        var lens = [Int](repeating: 0, count: 64)
        let n = try pkt.withUnsafeBytes {
            try Segmenter.segment($0.baseAddress!, length: $0.count, header: h, maxSegments: 64, capacity: 2048,
                                  destination: { slots + $0 * 2048 }, emit: { lens[$0] = $1 })
        }
        let segs = (0..<n).map { Coalescer.parse(slots + $0 * 2048, lens[$0])! }
        // Each segment's own checksum (its payload summed as it was copied, an odd tail included).
        for i in 0..<n {
            XCTAssertTrue(PlainIPHeader.transportChecksumValid(slots + i * 2048, length: lens[i], headerLength: v6 ? 40 : 20,
                                                               isV6: v6, proto: 6), "checksum of segment \(i)")
        }
        for i in 1..<n {
            XCTAssertTrue(Coalescer.follows(first: segs[0], segs[i - 1], slots + (i - 1) * 2048, segs[i], slots + i * 2048), "segment \(i)")
        }
        XCTAssertFalse(Coalescer.follows(first: segs[0], segs[1], slots + 2048, segs[0], slots), "out of order")
        let out = UnsafeMutableRawPointer.allocate(byteCount: 70_000, alignment: 16)
        defer { out.deallocate() }
        // The merged headers, then each segment's payload where it lies: what the TUN write gathers.
        let size = Coalescer.mergedHeaders(into: out, count: n, pointer: { UnsafeRawPointer(slots + $0 * 2048) }, segment: { segs[$0] })
        var gathered = size.headerBytes
        for (i, s) in segs.enumerated() {
            (out + gathered).copyMemory(from: slots + i * 2048 + s.headerLength, byteCount: s.payloadLength)
            gathered += s.payloadLength
        }
        XCTAssertEqual(size.headerBytes, VirtioNetHeader.size + (v6 ? 40 : 20) + 32)
        XCTAssertEqual(size.totalBytes, pkt.count + VirtioNetHeader.size)
        XCTAssertEqual(gathered, size.totalBytes)
        let vh = VirtioNetHeader(out)
        XCTAssertEqual(Int(vh.gsoSize), mss)
        XCTAssertEqual(vh.gsoType, h.gsoType)
        XCTAssertEqual(vh.flags, VirtioNetHeader.needsChecksum)
        let merged = Array(UnsafeRawBufferPointer(start: out + VirtioNetHeader.size, count: pkt.count))
        let ipLen = v6 ? 40 : 20
        XCTAssertEqual(Array(merged[(ipLen + 32)...]), Array(pkt[(ipLen + 32)...]), "payload")
        XCTAssertEqual(merged[ipLen + 13], 0x18, "PSH from the last segment")
        if !v6 { XCTAssertEqual(merged.withUnsafeBytes { Checksum.fold(Checksum.sum($0.baseAddress!, 20)) }, 0xffff) }
        // Completing the checksum as the kernel would gives a valid segment.
        var full = merged
        full.withUnsafeMutableBytes { b in
            let c = Checksum.finish(Checksum.sum(b.baseAddress! + ipLen, b.count - ipLen))
            b.storeBytes(of: c.bigEndian, toByteOffset: ipLen + 16, as: UInt16.self)
            let v = Checksum.sum(b.baseAddress! + ipLen, b.count - ipLen,
                                 initial: Checksum.pseudoHeader(ip: b.baseAddress!, isV6: v6, proto: 6, l4Length: b.count - ipLen))
            XCTAssertEqual(Checksum.fold(v), 0xffff)
        }
    }

    func testSegmentsCoalesceBackIntoTheSuperPacket() throws {
        try roundTrip(v6: false, payload: 20_000, mss: 1388)
        try roundTrip(v6: true, payload: 9_000, mss: 1368)
        try roundTrip(v6: false, payload: 1388 * 5, mss: 1388)
        try roundTrip(v6: false, payload: 10_001, mss: 1367) // odd MSS and odd last segment
        try roundTrip(v6: true, payload: 4_101, mss: 1001)
    }

    /// Two plain ACK segments in sequence (IPv4, 100 bytes each), with the given ids and DF, and
    /// the second's urgent pointer.
    private func pair(ids: (UInt16, UInt16), df: (Bool, Bool), urgent: UInt16 = 0, secondByte12: UInt8 = 0x50) -> ([UInt8], [UInt8]) {
        func one(_ id: UInt16, _ df: Bool, seq: UInt8, urgent: UInt16, byte12: UInt8) -> [UInt8] {
            var p: [UInt8] = [0x45, 0, 0, 140, UInt8(id >> 8), UInt8(id & 0xff), df ? 0x40 : 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]
            p += [0, 1, 0, 2, 0, 0, 0, seq, 0, 0, 0, 0, byte12, 0x10, 1, 0, 0, 0, UInt8(urgent >> 8), UInt8(urgent & 0xff)]
            p += [UInt8](repeating: seq, count: 100)
            let c = p.withUnsafeBytes { b in
                Checksum.finish(Checksum.sum(b.baseAddress! + 20, 120, initial: Checksum.pseudoHeader(ip: b.baseAddress!, isV6: false, proto: 6, l4Length: 120)))
            }
            p[36] = UInt8(c >> 8)
            p[37] = UInt8(c & 0xff)
            return p
        }
        return (one(ids.0, df.0, seq: 0, urgent: 0, byte12: 0x50), one(ids.1, df.1, seq: 100, urgent: urgent, byte12: secondByte12))
    }

    private func merges(_ p: ([UInt8], [UInt8])) -> Bool {
        p.0.withUnsafeBytes { a in
            p.1.withUnsafeBytes { b in
                let sa = Coalescer.parse(a.baseAddress!, a.count)!, sb = Coalescer.parse(b.baseAddress!, b.count)!
                return Coalescer.follows(first: sa, sa, a.baseAddress!, sb, b.baseAddress!)
            }
        }
    }

    /// Merged segments come back from the kernel's split with the first's DF and urgent pointer,
    /// and ids numbered on from the first's: only segments that already look so are merged (with
    /// DF the id is free: no host looks at an atomic datagram's id).
    func testSegmentsMergeOnlyWhenTheSplitGivesThemBack() {
        XCTAssertTrue(merges(pair(ids: (7, 8), df: (false, false))))
        XCTAssertFalse(merges(pair(ids: (7, 100), df: (false, false))), "ids out of sequence without DF")
        XCTAssertTrue(merges(pair(ids: (7, 8), df: (true, true))))
        XCTAssertTrue(merges(pair(ids: (0, 0), df: (true, true))), "fixed ids with DF")
        XCTAssertFalse(merges(pair(ids: (7, 8), df: (true, false))), "DF on one only")
        XCTAssertFalse(merges(pair(ids: (7, 8), df: (true, true), urgent: 5)), "urgent pointers differ")
        // The merge keeps the first's header: a later segment's AE bit (AccECN feedback) or a
        // reserved bit would be lost.
        XCTAssertFalse(merges(pair(ids: (7, 8), df: (true, true), secondByte12: 0x51)), "AE bits differ")
        XCTAssertFalse(merges(pair(ids: (7, 8), df: (true, true), secondByte12: 0x52)), "reserved bits differ")
    }

    /// How many of `packets`, from the first, `Coalescer.group` merges.
    private func grouped(_ packets: [[UInt8]]) -> Int {
        let buffers = packets.map { p -> UnsafeMutableRawPointer in
            let b = UnsafeMutableRawPointer.allocate(byteCount: p.count, alignment: 16)
            p.withUnsafeBytes { b.copyMemory(from: $0.baseAddress!, byteCount: p.count) }
            return b
        }
        defer { buffers.forEach { $0.deallocate() } }
        let parsed = UnsafeMutablePointer<Coalescer.Segment>.allocate(capacity: packets.count)
        defer { parsed.deallocate() }
        return Coalescer.group(count: packets.count, pointer: { UnsafeRawPointer(buffers[$0]) }, length: { packets[$0].count },
                               parsed: parsed)
    }

    /// A segment damaged before it was sealed is not merged, first or following: the kernel would
    /// compute a merged super-packet's checksum afresh and deliver the damage; written alone, it
    /// is dropped.
    func testADamagedSegmentIsNotACandidate() {
        var (sound, damaged) = pair(ids: (7, 8), df: (true, true))
        XCTAssertEqual(grouped([sound, damaged]), 2, "the control pair merges")
        damaged[100] ^= 0x04
        XCTAssertEqual(grouped([sound, damaged]), 1, "damaged second")
        let second = pair(ids: (7, 8), df: (true, true))
        var damagedFirst = second.0
        let next = second.1
        damagedFirst[60] ^= 0x04
        XCTAssertEqual(grouped([damagedFirst, next]), 0, "damaged first")
        sound[37] ^= 0x01 // the checksum field itself
        XCTAssertEqual(grouped([sound, next]), 0, "checksum field damaged")
    }

    func testOnlyPlainACKSegmentsAreCandidates() {
        var syn: [UInt8] = [0x45, 0, 0, 60, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]
        syn += [0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 1, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 20)
        XCTAssertNil(syn.withUnsafeBytes { Coalescer.parse($0.baseAddress!, $0.count) })
        XCTAssertNil([UInt8](repeating: 0x45, count: 10).withUnsafeBytes { Coalescer.parse($0.baseAddress!, $0.count) })
    }
}
