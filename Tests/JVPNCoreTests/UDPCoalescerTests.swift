import XCTest
@testable import JVPNCore

final class UDPCoalescerTests: XCTestCase {
    /// A UDP datagram as a Linux sender puts it on the wire: correct lengths and checksums.
    private func datagram(payload: Int, v6: Bool, id: UInt16 = 0x1234, tos: UInt8 = 0, ttl: UInt8 = 64,
                          df: Bool = true, sport: UInt16 = 40000, dport: UInt16 = 5201, dst: UInt8 = 1,
                          flow: UInt8 = 0, fill: UInt8 = 0) -> [UInt8] {
        var p: [UInt8]
        let l4 = 8 + payload
        if v6 {
            p = [0x60 | tos >> 4, tos << 4, 0, flow, UInt8(l4 >> 8), UInt8(l4 & 0xff), 17, ttl]
            p += [0xfd, 0x77] + [UInt8](repeating: 0, count: 13) + [2] + [0xfd, 0x77] + [UInt8](repeating: 0, count: 13) + [dst]
        } else {
            let total = 20 + l4
            p = [0x45, tos, UInt8(total >> 8), UInt8(total & 0xff), UInt8(id >> 8), UInt8(id & 0xff), df ? 0x40 : 0, 0, ttl, 17, 0, 0,
                 10, 77, 0, 2, 10, 77, 0, dst]
            let c = p.withUnsafeBytes { Checksum.finish(Checksum.sum($0.baseAddress!, 20)) }
            p[10] = UInt8(c >> 8)
            p[11] = UInt8(c & 0xff)
        }
        let ipLen = p.count
        p += [UInt8(sport >> 8), UInt8(sport & 0xff), UInt8(dport >> 8), UInt8(dport & 0xff), UInt8(l4 >> 8), UInt8(l4 & 0xff), 0, 0]
        p += (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ Int(fill)) }
        let c = p.withUnsafeBytes { b -> UInt16 in
            let s = Checksum.sum(b.baseAddress! + ipLen, l4, initial: Checksum.pseudoHeader(ip: b.baseAddress!, isV6: v6, proto: 17, l4Length: l4))
            let c = Checksum.finish(s)
            return c == 0 ? 0xffff : c
        }
        p[ipLen + 6] = UInt8(c >> 8)
        p[ipLen + 7] = UInt8(c & 0xff)
        return p
    }

    /// A flow's burst: consecutive IPv4 ids, same everything else.
    private func burst(_ sizes: [Int], v6: Bool) -> [[UInt8]] {
        sizes.enumerated().map { i, n in datagram(payload: n, v6: v6, id: 0xfffe &+ UInt16(i), fill: UInt8(i)) }
    }

    /// The group the coalescer makes from the front of `packets` and, for 2 or more, the
    /// super-packet (virtio header included).
    private func coalesce(_ packets: [[UInt8]]) -> (count: Int, superPacket: [UInt8]) {
        let buffers = packets.map { p -> UnsafeMutableRawPointer in
            let b = UnsafeMutableRawPointer.allocate(byteCount: max(p.count, 1), alignment: 16)
            b.copyMemory(from: p, byteCount: p.count)
            return b
        }
        defer { buffers.forEach { $0.deallocate() } }
        let parsed = UnsafeMutablePointer<UDPCoalescer.Datagram>.allocate(capacity: max(packets.count, 1))
        defer { parsed.deallocate() }
        let n = UDPCoalescer.group(count: packets.count, pointer: { UnsafeRawPointer(buffers[$0]) }, length: { packets[$0].count },
                                   parsed: parsed)
        guard n >= 2 else { return (n, []) }
        let out = UnsafeMutableRawPointer.allocate(byteCount: 70000, alignment: 16)
        defer { out.deallocate() }
        // The merged headers, then each datagram's payload where it lies: what the TUN write gathers.
        let size = UDPCoalescer.mergedHeaders(into: out, count: n, pointer: { UnsafeRawPointer(buffers[$0]) }, datagram: { parsed[$0] })
        var gathered = size.headerBytes
        for i in 0..<n {
            (out + gathered).copyMemory(from: buffers[i] + parsed[i].headerLength, byteCount: parsed[i].payloadLength)
            gathered += parsed[i].payloadLength
        }
        XCTAssertEqual(size.headerBytes, VirtioNetHeader.size + parsed[0].headerLength)
        XCTAssertEqual(gathered, size.totalBytes)
        return (n, Array(UnsafeRawBufferPointer(start: out, count: gathered)))
    }

    private func segment(_ superPacket: [UInt8]) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        let bufs = UnsafeMutableRawPointer.allocate(byteCount: 64 * 2048, alignment: 16)
        defer { bufs.deallocate() }
        try superPacket.withUnsafeBytes { raw in
            let h = VirtioNetHeader(raw.baseAddress!)
            var first = 0
            while true {
                let n = try Segmenter.segment(raw.baseAddress! + VirtioNetHeader.size, length: raw.count - VirtioNetHeader.size, header: h,
                                              firstSegment: first, maxSegments: 16, capacity: 2048, destination: { bufs + $0 * 2048 },
                                              emit: { i, len in out.append(Array(UnsafeRawBufferPointer(start: bufs + i * 2048, count: len))) })
                first += n
                if n < 16 { break }
            }
        }
        return out
    }

    // MARK: merge rules

    func testEqualDatagramsAndAShorterLastMergeAndRoundTripByteForByte() throws {
        for v6 in [false, true] {
            let packets = burst([64, 64, 64, 64, 17], v6: v6)
            let (n, sp) = coalesce(packets)
            XCTAssertEqual(n, 5)
            XCTAssertEqual(try segment(sp), packets, "v6 \(v6)")
        }
    }

    func testAShorterDatagramClosesTheGroup() {
        for v6 in [false, true] {
            XCTAssertEqual(coalesce(burst([64, 64, 30, 30], v6: v6)).count, 3, "v6 \(v6)")
            XCTAssertEqual(coalesce(burst([64, 30, 64], v6: v6)).count, 2, "v6 \(v6)")
        }
    }

    func testALargerDatagramStartsANewGroup() {
        for v6 in [false, true] {
            XCTAssertEqual(coalesce(burst([64, 64, 65], v6: v6)).count, 2)
            XCTAssertEqual(coalesce(burst([64, 65, 65], v6: v6)).count, 1, "nothing follows the first")
            XCTAssertEqual(coalesce(Array(burst([64, 65, 65], v6: v6).dropFirst())).count, 2)
        }
    }

    func testEveryIPv4FieldThatMustMatchSplitsTheGroup() {
        let a = datagram(payload: 64, v6: false, id: 7)
        let variants: [(String, [UInt8])] = [
            ("TOS", datagram(payload: 64, v6: false, id: 8, tos: 4)),
            ("TTL", datagram(payload: 64, v6: false, id: 8, ttl: 63)),
            ("DF", datagram(payload: 64, v6: false, id: 8, df: false)),
            ("destination", datagram(payload: 64, v6: false, id: 8, dst: 9)),
            ("source port", datagram(payload: 64, v6: false, id: 8, sport: 40001)),
            ("destination port", datagram(payload: 64, v6: false, id: 8, dport: 5202)),
            ("id not next", datagram(payload: 64, v6: false, id: 9)),
            ("id repeated", datagram(payload: 64, v6: false, id: 7)),
        ]
        XCTAssertEqual(coalesce([a, datagram(payload: 64, v6: false, id: 8)]).count, 2, "the control pair merges")
        for (name, b) in variants { XCTAssertEqual(coalesce([a, b]).count, 1, name) }
        var source = datagram(payload: 64, v6: false, id: 8)
        source[15] = 3
        XCTAssertEqual(coalesce([a, source]).count, 1, "source address")
        XCTAssertEqual(coalesce([datagram(payload: 64, v6: false, id: 0xffff), datagram(payload: 64, v6: false, id: 0)]).count, 2,
                       "the id wraps")
    }

    func testEveryIPv6FieldThatMustMatchSplitsTheGroup() {
        let a = datagram(payload: 64, v6: true)
        let variants: [(String, [UInt8])] = [
            ("traffic class", datagram(payload: 64, v6: true, tos: 4)),
            ("flow label", datagram(payload: 64, v6: true, flow: 5)),
            ("hop limit", datagram(payload: 64, v6: true, ttl: 63)),
            ("destination", datagram(payload: 64, v6: true, dst: 9)),
            ("source port", datagram(payload: 64, v6: true, sport: 40001)),
            ("destination port", datagram(payload: 64, v6: true, dport: 5202)),
        ]
        XCTAssertEqual(coalesce([a, datagram(payload: 64, v6: true)]).count, 2, "the control pair merges")
        for (name, b) in variants { XCTAssertEqual(coalesce([a, b]).count, 1, name) }
        var source = datagram(payload: 64, v6: true)
        source[23] = 3
        XCTAssertEqual(coalesce([a, source]).count, 1, "source address")
        XCTAssertEqual(coalesce([datagram(payload: 64, v6: false, id: 0), datagram(payload: 64, v6: true)]).count, 1, "families")
    }

    func testWhatCannotMergeIsLeftAlone() {
        var options = datagram(payload: 64, v6: false)
        options[0] = 0x46
        var fragment = datagram(payload: 64, v6: false)
        fragment[6] |= 0x20 // MF
        var offset = datagram(payload: 64, v6: false)
        offset[7] = 1
        var noChecksum = datagram(payload: 64, v6: false)
        noChecksum[26] = 0
        noChecksum[27] = 0
        var badUDPLength = datagram(payload: 64, v6: false)
        badUDPLength[25] &+= 1
        var extensionHeader = datagram(payload: 64, v6: true)
        extensionHeader[6] = 0 // hop-by-hop
        var tcp = datagram(payload: 64, v6: false)
        tcp[9] = 6
        let truncated = Array(datagram(payload: 64, v6: false).dropLast())
        for (name, p) in [("options", options), ("MF", fragment), ("offset", offset), ("no checksum", noChecksum),
                          ("UDP length", badUDPLength), ("extension header", extensionHeader), ("TCP", tcp),
                          ("truncated", truncated), ("empty payload", datagram(payload: 0, v6: false)),
                          ("empty v6 payload", datagram(payload: 0, v6: true))] {
            XCTAssertNil(p.withUnsafeBytes { UDPCoalescer.parse($0.baseAddress!, $0.count) }, name)
            XCTAssertEqual(coalesce([p, datagram(payload: 64, v6: p[0] >> 4 == 6, id: 0x1235)]).count, 0, name)
        }
        var noChecksumNext = datagram(payload: 64, v6: false, id: 2)
        noChecksumNext[26] = 0
        noChecksumNext[27] = 0
        XCTAssertEqual(coalesce([datagram(payload: 64, v6: false, id: 1), noChecksumNext]).count, 1, "nor can it follow")
        // A datagram damaged before it was sealed (one payload bit): the kernel would trust a
        // merged one's checksum, so it is written alone and the kernel drops it.
        for v6 in [false, true] {
            var damaged = datagram(payload: 64, v6: v6, id: 2)
            damaged[damaged.count - 5] ^= 0x10
            XCTAssertEqual(coalesce([damaged, datagram(payload: 64, v6: v6, id: 3)]).count, 0, "damaged first, v6 \(v6)")
            XCTAssertEqual(coalesce([datagram(payload: 64, v6: v6, id: 1), damaged]).count, 1, "damaged second, v6 \(v6)")
        }
        XCTAssertEqual(coalesce([]).count, 0)
    }

    func testGroupsAreBoundedBySegmentsAndLength() throws {
        for v6 in [false, true] {
            let small = burst([Int](repeating: 16, count: 100), v6: v6)
            let (n, sp) = coalesce(small)
            XCTAssertEqual(n, UDPCoalescer.maxSegments)
            XCTAssertEqual(try segment(sp), Array(small[0..<n]))
            let big = burst([Int](repeating: 1400, count: 60), v6: v6)
            let (m, bp) = coalesce(big)
            let ip = v6 ? 40 : 20
            XCTAssertEqual(m, (65535 - ip - 8) / 1400, "v6 \(v6)")
            XCTAssertLessThanOrEqual(bp.count - VirtioNetHeader.size, 65535)
            XCTAssertEqual(try segment(bp), Array(big[0..<m]))
        }
    }

    // MARK: the super-packet

    func testSuperPacketHeadersAndPartialChecksum() {
        for v6 in [false, true] {
            let packets = burst([100, 100, 40], v6: v6)
            let (n, sp) = coalesce(packets)
            XCTAssertEqual(n, 3)
            let h = sp.withUnsafeBytes { VirtioNetHeader($0.baseAddress!) }
            let ip = v6 ? 40 : 20
            var expected = VirtioNetHeader()
            expected.flags = VirtioNetHeader.needsChecksum
            expected.gsoType = VirtioNetHeader.gsoUDPL4
            expected.headerLength = UInt16(ip + 8)
            expected.gsoSize = 100
            expected.checksumStart = UInt16(ip)
            expected.checksumOffset = 6
            XCTAssertEqual(h, expected)
            let pkt = Array(sp[VirtioNetHeader.size...])
            XCTAssertEqual(pkt.count, ip + 8 + 240)
            let l4 = 8 + 240
            if v6 {
                XCTAssertEqual(Int(pkt[4]) << 8 | Int(pkt[5]), l4, "IPv6 payload length")
            } else {
                XCTAssertEqual(Int(pkt[2]) << 8 | Int(pkt[3]), pkt.count, "IPv4 total length")
                XCTAssertEqual(Array(pkt[4...5]), Array(packets[0][4...5]), "the first datagram's id")
                XCTAssertEqual(pkt.withUnsafeBytes { Checksum.fold(Checksum.sum($0.baseAddress!, 20)) }, 0xffff, "IPv4 header checksum")
            }
            XCTAssertEqual(Int(pkt[ip + 4]) << 8 | Int(pkt[ip + 5]), l4, "UDP length")
            XCTAssertEqual(Array(pkt[ip..<(ip + 4)]), Array(packets[0][ip..<(ip + 4)]), "ports")
            // The field holds the folded pseudo-header sum: adding the UDP header and payload
            // (with that field in place) gives the full checksum, as the kernel computes it.
            let partial = UInt16(pkt[ip + 6]) << 8 | UInt16(pkt[ip + 7])
            let pseudo = pkt.withUnsafeBytes { Checksum.fold(Checksum.pseudoHeader(ip: $0.baseAddress!, isV6: v6, proto: 17, l4Length: l4)) }
            XCTAssertEqual(partial, pseudo)
            XCTAssertNotEqual(partial, 0)
            let complete = pkt.withUnsafeBytes { Checksum.fold(Checksum.sum($0.baseAddress! + ip, l4)) }
            var whole = pkt
            whole[ip + 6] = 0
            whole[ip + 7] = 0
            let reference = whole.withUnsafeBytes {
                Checksum.fold(Checksum.sum($0.baseAddress! + ip, l4, initial: Checksum.pseudoHeader(ip: $0.baseAddress!, isV6: v6, proto: 17, l4Length: l4)))
            }
            XCTAssertEqual(complete, reference, "partial + data = the sum over pseudo-header and datagram")
            XCTAssertEqual(Array(pkt[(ip + 8)...]), packets.flatMap { $0[(ip + 8)...] }, "payloads in order")
        }
    }

    // MARK: the send side: a local UDP_SEGMENT burst read from the TUN

    func testSegmenterSplitsAUDPSuperPacketWithItsOwnLengthsIdsAndChecksums() throws {
        for v6 in [false, true] {
            let ip = v6 ? 40 : 20
            // As the kernel hands it over: one header, the UDP length and checksum of the whole.
            var sp = datagram(payload: 2500, v6: v6, id: 0xffff)
            var h = VirtioNetHeader()
            h.flags = VirtioNetHeader.needsChecksum
            h.gsoType = VirtioNetHeader.gsoUDPL4
            h.gsoSize = 1000
            h.headerLength = UInt16(ip + 8)
            h.checksumStart = UInt16(ip)
            h.checksumOffset = 6
            sp[ip + 6] = 0x12 // garbage: the segmenter computes it
            let bytes = [UInt8](repeating: 0, count: VirtioNetHeader.size) + sp
            var withHeader = bytes
            withHeader.withUnsafeMutableBytes { h.write(to: $0.baseAddress!) }
            let segs = try segment(withHeader)
            XCTAssertEqual(segs.map(\.count), [ip + 1008, ip + 1008, ip + 508])
            for (i, s) in segs.enumerated() {
                let payload = Array(sp[(ip + 8 + i * 1000)..<(ip + 8 + min(2500, (i + 1) * 1000))])
                let expected = datagram(payload: payload.count, v6: v6, id: 0xffff &+ UInt16(i))
                XCTAssertEqual(Array(s[..<(ip + 6)]), Array(expected[..<(ip + 6)]), "headers of \(i)")
                XCTAssertEqual(Array(s[(ip + 8)...]), payload)
                let l4 = s.count - ip
                let sum = s.withUnsafeBytes {
                    Checksum.fold(Checksum.sum($0.baseAddress! + ip, l4, initial: Checksum.pseudoHeader(ip: $0.baseAddress!, isV6: v6, proto: 17, l4Length: l4)))
                }
                XCTAssertEqual(sum, 0xffff, "UDP checksum of \(i)")
            }
        }
    }

    func testSegmenterRejectsAMalformedUDPSuperPacket() {
        var h = VirtioNetHeader()
        h.gsoType = VirtioNetHeader.gsoUDPL4
        h.gsoSize = 0
        let p = datagram(payload: 100, v6: false)
        XCTAssertThrowsError(try p.withUnsafeBytes { raw in
            try Segmenter.segment(raw.baseAddress!, length: raw.count, header: h, maxSegments: 4, capacity: 2048,
                                  destination: { _ in UnsafeMutableRawPointer(mutating: raw.baseAddress!) }, emit: { _, _ in })
        })
        h.gsoSize = 50
        var tcp = p
        tcp[9] = 6
        XCTAssertThrowsError(try tcp.withUnsafeBytes { raw in
            try Segmenter.segment(raw.baseAddress!, length: raw.count, header: h, maxSegments: 4, capacity: 2048,
                                  destination: { _ in UnsafeMutableRawPointer(mutating: raw.baseAddress!) }, emit: { _, _ in })
        })
    }
}
