import XCTest
@testable import JVPNCore

/// Making inner packets fit a smaller path: MSS clamping, the ICMP "too big" errors, the plan for a
/// packet, re-segmentation and IPv4 fragmentation, with every checksum verified.
final class PathFitTests: XCTestCase {
    // MARK: packet builders

    static let v4a: [UInt8] = [10, 77, 0, 2], v4b: [UInt8] = [10, 77, 0, 1]
    static let v6a: [UInt8] = [0xfd, 0x77] + [UInt8](repeating: 0, count: 13) + [2]
    static let v6b: [UInt8] = [0xfd, 0x77] + [UInt8](repeating: 0, count: 13) + [1]

    func ipv4(proto: UInt8, payload: [UInt8], df: Bool = true, fragment: UInt16 = 0, options: [UInt8] = []) -> [UInt8] {
        let ihl = 20 + options.count
        let total = ihl + payload.count
        let field = (df ? 0x4000 : 0) | fragment
        var p: [UInt8] = [UInt8(0x40 | ihl / 4), 0, UInt8(total >> 8), UInt8(total & 0xff), 0xab, 0xcd,
                          UInt8(field >> 8), UInt8(field & 0xff), 64, proto, 0, 0] + PathFitTests.v4a + PathFitTests.v4b + options + payload
        let c = p.withUnsafeBytes { Checksum.finish(Checksum.sum($0.baseAddress!, ihl)) }
        p[10] = UInt8(c >> 8)
        p[11] = UInt8(c & 0xff)
        return p
    }

    func ipv6(next: UInt8, payload: [UInt8]) -> [UInt8] {
        [0x60, 0, 0, 0, UInt8(payload.count >> 8), UInt8(payload.count & 0xff), next, 64] + PathFitTests.v6a + PathFitTests.v6b + payload
    }

    /// A TCP header (flags, options) and payload, checksummed inside the given IP builder's packet.
    func tcp(v6: Bool, flags: UInt8, options: [UInt8] = [], payload: Int = 0) -> [UInt8] {
        let doff = 20 + options.count
        let seg: [UInt8] = [0x9c, 0x40, 0x13, 0x89, 0, 0, 0x10, 0, 0, 0, 0, 1, UInt8(doff / 4) << 4, flags, 0xff, 0xff, 0, 0, 0, 0]
            + options + (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        var p = v6 ? ipv6(next: 6, payload: seg) : ipv4(proto: 6, payload: seg)
        p.withUnsafeMutableBytes { b in
            let seg = TCPSegment(b.baseAddress!, length: b.count)!
            let l4 = seg.totalLength - seg.ipHeaderLength
            b.storeBytes(of: UInt16(0), toByteOffset: seg.ipHeaderLength + 16, as: UInt16.self)
            let sum = Checksum.sum(b.baseAddress! + seg.ipHeaderLength, l4,
                                   initial: Checksum.pseudoHeader(ip: b.baseAddress!, isV6: seg.isV6, proto: 6, l4Length: l4))
            b.storeBytes(of: Checksum.finish(sum).bigEndian, toByteOffset: seg.ipHeaderLength + 16, as: UInt16.self)
        }
        return p
    }

    func udp(v6: Bool, payload: Int, df: Bool = true) -> [UInt8] {
        let body: [UInt8] = [0x30, 0x39, 0x00, 0x35, UInt8((payload + 8) >> 8), UInt8((payload + 8) & 0xff), 0, 0]
            + (0..<payload).map { UInt8(truncatingIfNeeded: $0) }
        return v6 ? ipv6(next: 17, payload: body) : ipv4(proto: 17, payload: body, df: df)
    }

    func tcpChecksumIsValid(_ p: [UInt8]) -> Bool {
        p.withUnsafeBytes { b in
            let v6 = b[0] >> 4 == 6
            let ip = v6 ? 40 : Int(b[0] & 0x0f) * 4
            let l4 = b.count - ip
            return Checksum.fold(Checksum.sum(b.baseAddress! + ip, l4,
                                              initial: Checksum.pseudoHeader(ip: b.baseAddress!, isV6: v6, proto: 6, l4Length: l4))) == 0xffff
        }
    }

    func ipv4HeaderIsValid(_ p: [UInt8]) -> Bool {
        p.withUnsafeBytes { Checksum.fold(Checksum.sum($0.baseAddress!, Int($0[0] & 0x0f) * 4)) == 0xffff }
    }

    func mssOption(_ p: [UInt8]) -> Int? {
        let ip = p[0] >> 4 == 6 ? 40 : Int(p[0] & 0x0f) * 4
        let doff = Int(p[ip + 12] >> 4) * 4
        var i = 20
        while i < doff {
            let kind = p[ip + i]
            if kind == 0 { return nil }
            if kind == 1 { i += 1; continue }
            if kind == 2 { return Int(p[ip + i + 2]) << 8 | Int(p[ip + i + 3]) }
            i += Int(p[ip + i + 1])
        }
        return nil
    }

    func clamp(_ p: inout [UInt8], _ maxPacket: Int) -> Bool {
        p.withUnsafeMutableBytes { MssClamp.apply($0.baseAddress!, length: $0.count, maxPacket: maxPacket) }
    }

    // Linux's SYN options: MSS, SACK permitted, timestamps, NOP, window scale.
    let linuxSynOptions: [UInt8] = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]

    // MARK: MSS clamp

    func testSynAndSynAckMssIsClampedWithAValidChecksum() {
        var syn = tcp(v6: false, flags: 0x02, options: linuxSynOptions)
        let before = syn
        XCTAssertEqual(mssOption(syn), 1460)
        XCTAssertTrue(clamp(&syn, 1220))
        XCTAssertEqual(mssOption(syn), 1180, "1220 - 20 - 20")
        XCTAssertTrue(tcpChecksumIsValid(syn))
        XCTAssertTrue(ipv4HeaderIsValid(syn))
        XCTAssertEqual(zip(before, syn).filter { $0 != $1 }.count, 4, "only the MSS and the checksum changed")
        var synAck6 = tcp(v6: true, flags: 0x12, options: linuxSynOptions)
        XCTAssertTrue(clamp(&synAck6, 1340))
        XCTAssertEqual(mssOption(synAck6), 1340 - 60)
        XCTAssertTrue(tcpChecksumIsValid(synAck6))
    }

    /// The clamp changes the checksum by what it changed and no more: a SYN damaged before it was
    /// sealed stays damaged (the kernel drops it) instead of being made to look sound.
    func testADamagedSynStaysDamagedAfterTheClamp() {
        for options in [linuxSynOptions, [1, 2, 4, 0x05, 0xb4, 0, 0, 0]] {
            var syn = tcp(v6: false, flags: 0x02, options: options, payload: 3)
            syn[syn.count - 1] ^= 0x20
            XCTAssertFalse(tcpChecksumIsValid(syn))
            XCTAssertTrue(clamp(&syn, 1000))
            XCTAssertEqual(mssOption(syn), 960)
            XCTAssertFalse(tcpChecksumIsValid(syn), "damage laundered (options \(options))")
            syn[syn.count - 1] ^= 0x20
            XCTAssertTrue(tcpChecksumIsValid(syn), "the update is exact: undoing the damage makes it valid")
        }
    }

    func testTheClampLeavesAloneWhatItNeedNotTouch() {
        var small = tcp(v6: false, flags: 0x02, options: [2, 4, 0x04, 0x00])
        XCTAssertFalse(clamp(&small, 1220), "1024 already fits")
        var ack = tcp(v6: false, flags: 0x10, options: [2, 4, 0x05, 0xb4], payload: 10)
        XCTAssertFalse(clamp(&ack, 1220), "not a SYN")
        var noMss = tcp(v6: false, flags: 0x02, options: [1, 1, 4, 2])
        XCTAssertFalse(clamp(&noMss, 1220))
        var truncated = tcp(v6: false, flags: 0x02, options: [1, 1, 8, 10])
        XCTAssertFalse(clamp(&truncated, 1220), "an option that runs past the header is not read")
        var datagram = udp(v6: false, payload: 100)
        XCTAssertFalse(clamp(&datagram, 100))
        var oddOffset = tcp(v6: false, flags: 0x02, options: [1, 2, 4, 0x05, 0xb4, 0, 0, 0])
        XCTAssertTrue(clamp(&oddOffset, 1000), "an MSS option at an odd offset")
        XCTAssertEqual(mssOption(oddOffset), 960)
        XCTAssertTrue(tcpChecksumIsValid(oddOffset))
    }

    // MARK: too big

    func tooBig(_ original: [UInt8], mtu: Int, capacity: Int = 2048) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: capacity)
        let n = out.withUnsafeMutableBytes { o in
            original.withUnsafeBytes { PacketTooBig.write(into: o.baseAddress!, capacity: capacity, original: $0.baseAddress!, length: $0.count, mtu: mtu) }
        }
        return Array(out[0..<n])
    }

    func testFragmentationNeededForIPv4() {
        let original = udp(v6: false, payload: 1372)
        let e = tooBig(original, mtu: 1220)
        XCTAssertEqual(e.count, 576, "at most 576 bytes (RFC 1812)")
        XCTAssertTrue(ipv4HeaderIsValid(e))
        XCTAssertEqual(Array(e[12..<16]), PathFitTests.v4b, "from the original's destination")
        XCTAssertEqual(Array(e[16..<20]), PathFitTests.v4a, "to its source")
        XCTAssertEqual(e[9], 1)
        XCTAssertEqual(Int(e[2]) << 8 | Int(e[3]), 576)
        XCTAssertEqual(e[6] & 0x40, 0, "no DF on the error")
        XCTAssertEqual(Array(e[20..<22]), [3, 4], "destination unreachable, fragmentation needed")
        XCTAssertEqual(Int(e[26]) << 8 | Int(e[27]), 1220, "next-hop MTU")
        XCTAssertEqual(e.withUnsafeBytes { Checksum.fold(Checksum.sum($0.baseAddress! + 20, $0.count - 20)) }, 0xffff, "ICMP checksum")
        XCTAssertEqual(Array(e[28...]), Array(original[0..<548]), "as much of the original as fits")
        let short = tooBig(tcp(v6: false, flags: 0x10, payload: 4), mtu: 1000)
        XCTAssertEqual(short.count, 28 + 44, "a short original is quoted whole")
    }

    func testPacketTooBigForIPv6() {
        let original = tcp(v6: true, flags: 0x10, payload: 1400)
        let e = tooBig(original, mtu: 1340)
        XCTAssertEqual(e.count, 1280, "at most the IPv6 minimum MTU")
        XCTAssertEqual(e[0] >> 4, 6)
        XCTAssertEqual(Int(e[4]) << 8 | Int(e[5]), 1240)
        XCTAssertEqual(e[6], 58)
        XCTAssertEqual(Array(e[8..<24]), PathFitTests.v6b)
        XCTAssertEqual(Array(e[24..<40]), PathFitTests.v6a)
        XCTAssertEqual(Array(e[40..<42]), [2, 0])
        XCTAssertEqual(Array(e[44..<48]), [0, 0, 0x05, 0x3c], "MTU 1340")
        let sum = e.withUnsafeBytes {
            Checksum.fold(Checksum.sum($0.baseAddress! + 40, $0.count - 40,
                                       initial: Checksum.pseudoHeader(ip: $0.baseAddress!, isV6: true, proto: 58, l4Length: $0.count - 40)))
        }
        XCTAssertEqual(sum, 0xffff, "ICMPv6 checksum with the pseudo-header")
        XCTAssertEqual(Array(e[48...]), Array(original[0..<1232]))
        let floor = tooBig(original, mtu: 1200)
        XCTAssertEqual(Array(floor[44..<48]), [0, 0, 0x05, 0x00], "never below 1280")
    }

    func testNoErrorAboutErrorsFragmentsOrGroups() {
        let unreachable = ipv4(proto: 1, payload: [3, 1, 0, 0, 0, 0, 0, 0] + [UInt8](repeating: 0, count: 1400))
        XCTAssertTrue(tooBig(unreachable, mtu: 1000).isEmpty, "an ICMP error")
        let echo = ipv4(proto: 1, payload: [8, 0, 0, 0, 0, 1, 0, 1] + [UInt8](repeating: 0, count: 1400))
        XCTAssertFalse(tooBig(echo, mtu: 1000).isEmpty, "a ping is answered")
        let later = ipv4(proto: 17, payload: [UInt8](repeating: 0, count: 1400), df: false, fragment: 185)
        XCTAssertTrue(tooBig(later, mtu: 1000).isEmpty, "not the first fragment")
        var multicast = udp(v6: false, payload: 1400)
        multicast[16] = 239
        XCTAssertTrue(tooBig(multicast, mtu: 1000).isEmpty)
        let error6 = ipv6(next: 58, payload: [1, 4, 0, 0] + [UInt8](repeating: 0, count: 1400))
        XCTAssertTrue(tooBig(error6, mtu: 1280).isEmpty, "an ICMPv6 error")
        let echo6 = ipv6(next: 58, payload: [128, 0, 0, 0] + [UInt8](repeating: 0, count: 1400))
        XCTAssertFalse(tooBig(echo6, mtu: 1280).isEmpty)
        var unspecified = udp(v6: true, payload: 1400)
        for i in 8..<24 { unspecified[i] = 0 }
        XCTAssertTrue(tooBig(unspecified, mtu: 1280).isEmpty)
        XCTAssertTrue(tooBig(udp(v6: false, payload: 1400), mtu: 1000, capacity: 100).isEmpty, "no room")
        XCTAssertTrue(tooBig([0x45, 0, 0], mtu: 1000).isEmpty)
    }

    // MARK: plan, re-segmentation, fragmentation

    func plan(_ p: [UInt8], _ h: VirtioNetHeader = VirtioNetHeader(), max: Int) -> PathFit.Plan {
        p.withUnsafeBytes { PathFit.plan($0.baseAddress!, length: $0.count, header: h, maxPacket: max) }
    }

    func testThePlanForEachKindOfPacket() {
        var tso = VirtioNetHeader()
        tso.gsoType = VirtioNetHeader.gsoTCPv4
        tso.gsoSize = 1380
        let superPacket = tcp(v6: false, flags: 0x18, payload: 20_000)
        XCTAssertEqual(plan(superPacket, tso, max: 1420), .fits)
        guard case .resegment(let smaller) = plan(superPacket, tso, max: 1220) else { return XCTFail("TSO at a smaller size") }
        XCTAssertEqual(smaller.gsoSize, 1180)
        XCTAssertEqual(plan(tcp(v6: false, flags: 0x10, payload: 1000), max: 1220), .fits)
        guard case .resegment(let one) = plan(tcp(v6: true, flags: 0x10, payload: 1360), max: 1220) else { return XCTFail() }
        XCTAssertEqual(one.gsoType, VirtioNetHeader.gsoTCPv6)
        XCTAssertEqual(one.gsoSize, 1160)
        XCTAssertEqual(plan(udp(v6: false, payload: 1400), max: 1220), .tooBig, "DF")
        XCTAssertEqual(plan(udp(v6: false, payload: 1400, df: false), max: 1220), .fragment)
        XCTAssertEqual(plan(udp(v6: true, payload: 1400), max: 1220), .tooBig, "IPv6 is never fragmented on the way")
        XCTAssertTrue(udp(v6: true, payload: 1).withUnsafeBytes { PathFit.senderMustShrink($0.baseAddress!, length: $0.count) })
        XCTAssertFalse(udp(v6: false, payload: 1, df: false).withUnsafeBytes { PathFit.senderMustShrink($0.baseAddress!, length: $0.count) })
    }

    func testAUDPBurstFitsWhenEachDatagramDoes() {
        for v6 in [false, true] {
            var uso = VirtioNetHeader()
            uso.gsoType = VirtioNetHeader.gsoUDPL4
            uso.gsoSize = 1000
            let burst = udp(v6: v6, payload: 5000)
            let header = v6 ? 48 : 28
            XCTAssertEqual(plan(burst, uso, max: header + 1000), .fits, "v6 \(v6)")
            XCTAssertEqual(plan(burst, uso, max: header + 999), .tooBig, "datagrams are never cut: v6 \(v6)")
            XCTAssertEqual(plan(udp(v6: v6, payload: 1400, df: false), uso, max: header + 999), .tooBig, "nor fragmented as a burst")
        }
    }

    /// Segments `p` with `h` in chunks of `chunk` segments (as the pump does when a batch fills).
    func segments(_ p: [UInt8], _ h: VirtioNetHeader, chunk: Int) throws -> [[UInt8]] {
        let slots = UnsafeMutableRawPointer.allocate(byteCount: chunk * 2048, alignment: 16)
        defer { slots.deallocate() }
        var out: [[UInt8]] = []
        var first = 0
        while true {
            let n = try p.withUnsafeBytes {
                try Segmenter.segment($0.baseAddress!, length: $0.count, header: h, firstSegment: first, maxSegments: chunk, capacity: 2048,
                                      destination: { slots + $0 * 2048 },
                                      emit: { out.append(Array(UnsafeRawBufferPointer(start: slots + $0 * 2048, count: $1))) })
            }
            first += n
            if n < chunk { return out }
        }
    }

    func testATooBigTCPSegmentIsResegmentedIntoValidSegments() throws {
        for v6 in [false, true] {
            let big = tcp(v6: v6, flags: 0x19, payload: 5000) // FIN|PSH|ACK
            guard case .resegment(let h) = plan(big, max: 576) else { return XCTFail() }
            let segs = try segments(big, h, chunk: 4)
            let ip = v6 ? 40 : 20
            XCTAssertEqual(segs.count, (5000 + Int(h.gsoSize) - 1) / Int(h.gsoSize), "chunks of 4 make the whole")
            var payload: [UInt8] = []
            for (i, s) in segs.enumerated() {
                XCTAssertLessThanOrEqual(s.count, 576)
                XCTAssertTrue(tcpChecksumIsValid(s), "segment \(i)")
                if !v6 { XCTAssertTrue(ipv4HeaderIsValid(s)) }
                XCTAssertEqual(s[ip + 13] & 0x01 != 0, i == segs.count - 1, "FIN on the last segment only")
                payload += s[(ip + 20)...]
            }
            XCTAssertEqual(payload, Array(big[(ip + 20)...]))
        }
    }

    func fragments(_ p: [UInt8], max: Int) throws -> [[UInt8]] {
        let slots = UnsafeMutableRawPointer.allocate(byteCount: 16 * 2048, alignment: 16)
        defer { slots.deallocate() }
        var out: [[UInt8]] = []
        _ = try p.withUnsafeBytes {
            try IPv4Fragmenter.fragment($0.baseAddress!, length: $0.count, maxPacket: max, maxFragments: 16, destination: { slots + $0 * 2048 },
                                        emit: { out.append(Array(UnsafeRawBufferPointer(start: slots + $0 * 2048, count: $1))) })
        }
        return out
    }

    func testIPv4WithoutDFIsFragmentedAsARouterWould() throws {
        // A copied option (type 0x83, 7 bytes) and one that is not (record route, 0x07, 11 bytes).
        let options: [UInt8] = [0x83, 7, 4, 10, 0, 0, 9, 0x07, 11, 4] + [UInt8](repeating: 0, count: 8) + [0, 0]
        let body = (0..<1400).map { UInt8(truncatingIfNeeded: $0 &* 5) }
        let original = ipv4(proto: 17, payload: body, df: false, options: options)
        let frags = try fragments(original, max: 576)
        XCTAssertEqual(frags.count, 3)
        var reassembled = [UInt8](repeating: 0, count: body.count)
        for (i, f) in frags.enumerated() {
            XCTAssertLessThanOrEqual(f.count, 576)
            XCTAssertTrue(ipv4HeaderIsValid(f), "fragment \(i)")
            let ihl = Int(f[0] & 0x0f) * 4
            XCTAssertEqual(ihl, i == 0 ? 40 : 28, "the first keeps every option, the others the copied one")
            if i > 0 { XCTAssertEqual(Array(f[20..<27]), Array(options[0..<7])) }
            XCTAssertEqual(Int(f[2]) << 8 | Int(f[3]), f.count)
            let field = Int(f[6]) << 8 | Int(f[7])
            XCTAssertEqual(field & 0x2000 != 0, i < 2, "MF on all but the last")
            let offset = (field & 0x1fff) * 8
            if i < 2 { XCTAssertEqual((f.count - ihl) % 8, 0) }
            reassembled.replaceSubrange(offset..<(offset + f.count - ihl), with: f[ihl...])
        }
        XCTAssertEqual(reassembled, body)
        // A fragment fragmented again continues the original's offsets and keeps its MF.
        let middle = ipv4(proto: 17, payload: Array(body[0..<1000]), df: false, fragment: 0x2000 | 100)
        let again = try fragments(middle, max: 600)
        XCTAssertEqual(again.map { (Int($0[6]) << 8 | Int($0[7])) & 0x1fff }, [100, 100 + 72])
        XCTAssertTrue(again.allSatisfy { $0[6] & 0x20 != 0 }, "the last keeps the original's MF")
        XCTAssertThrowsError(try fragments(udp(v6: false, payload: 1400, df: true), max: 576), "DF is never fragmented")
        // A fragment whose data would end past offset 65,535 has no place in any datagram.
        let late = ipv4(proto: 17, payload: Array(body[0..<1000]), df: false, fragment: 0x2000 | 0x1f90)
        XCTAssertThrowsError(try fragments(late, max: 600)) { XCTAssertEqual($0 as? Segmenter.Failure, .malformed) }
    }

    /// A datagram the kernel handed over with its UDP checksum left partial (checksum offload) is
    /// finished before it is cut: the reassembled datagram's checksum is valid.
    func testAPartialChecksumIsFinishedBeforeFragmenting() throws {
        var p = udp(v6: false, payload: 1400, df: false)
        // What the kernel leaves: the pseudo-header sum, not complemented, in the UDP checksum field.
        let pseudo = p.withUnsafeBytes { Checksum.fold(Checksum.pseudoHeader(ip: $0.baseAddress!, isV6: false, proto: 17, l4Length: 1408)) }
        p[26] = UInt8(pseudo >> 8)
        p[27] = UInt8(pseudo & 0xff)
        var h = VirtioNetHeader()
        h.flags = VirtioNetHeader.needsChecksum
        h.checksumStart = 20
        h.checksumOffset = 6
        try p.withUnsafeMutableBytes { try Segmenter.completeChecksum($0.baseAddress!, length: $0.count, header: h) }
        var datagram = [UInt8](repeating: 0, count: 1408)
        for f in try fragments(p, max: 576) {
            let offset = ((Int(f[6]) << 8 | Int(f[7])) & 0x1fff) * 8
            datagram.replaceSubrange(offset..<(offset + f.count - 20), with: f[20...])
        }
        let valid = p.withUnsafeBytes { ip in
            datagram.withUnsafeBytes { d in
                Checksum.fold(Checksum.sum(d.baseAddress!, d.count,
                                           initial: Checksum.pseudoHeader(ip: ip.baseAddress!, isV6: false, proto: 17, l4Length: 1408)))
            }
        }
        XCTAssertEqual(valid, 0xffff, "the reassembled datagram's UDP checksum")
        XCTAssertEqual(Array(datagram[8...]), (0..<1400).map { UInt8(truncatingIfNeeded: $0) })
        // A header pointing past the packet is an error, not a read out of bounds.
        h.checksumStart = 1500
        XCTAssertThrowsError(try p.withUnsafeMutableBytes { try Segmenter.completeChecksum($0.baseAddress!, length: $0.count, header: h) })
    }
}
