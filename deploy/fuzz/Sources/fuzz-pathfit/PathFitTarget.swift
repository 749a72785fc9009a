import FuzzSupport
import JVPNCore

// Fitting inner packets to a smaller path: the MSS clamp (which also sees packets from the peer),
// the plan, re-segmentation, IPv4 fragmentation and the ICMP "too big" builder, on any bytes.
// Input: byte 0 picks the path's largest inner packet (300 + 5 x b), byte 1 the virtio header
// (low 3 bits: GSO type none / TCPv4 / TCPv6, the rest scaled to a segment size), the rest is
// the packet. Properties: a clamped SYN's TCP checksum is valid exactly when it was before; whatever
// leaves cut or fragmented fits the path and has valid IPv4 header checksums; an ICMP error fits
// its limit and checksums to zero.

private let capacity = 2048
private let slots = UnsafeMutableRawPointer.allocate(byteCount: 64 * capacity, alignment: 16)
private let icmp = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 16)

private func ipv4HeaderValid(_ p: UnsafeRawPointer) -> Bool {
    Checksum.fold(Checksum.sum(p, Int(p.load(as: UInt8.self) & 0x0f) * 4)) == 0xffff
}

/// Whether the TCP checksum of the segment at `p` is right; nil if it is not a TCP segment.
private func tcpChecksumValid(_ p: UnsafeRawPointer, _ length: Int) -> Bool? {
    guard let seg = TCPSegment(p, length: length) else { return nil }
    let l4 = seg.totalLength - seg.ipHeaderLength
    let sum = Checksum.sum(p + seg.ipHeaderLength, l4, initial: Checksum.pseudoHeader(ip: p, isV6: seg.isV6, proto: 6, l4Length: l4))
    return Checksum.fold(sum) == 0xffff
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>,
                           _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    writeSeedsIfAsked {
        let synOptions: [UInt8] = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]
        let v4: [UInt8] = [0x45, 0, 0, 60, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 77, 0, 2, 10, 77, 0, 1]
        let tcpSyn: [UInt8] = [0x9c, 0x40, 0x13, 0x89, 0, 0, 0, 1, 0, 0, 0, 0, 0xa0, 0x02, 0xff, 0xff, 0, 0, 0, 0] + synOptions
        var bigUDP: [UInt8] = [0x45, 0, 0x05, 0x78, 0, 1, 0, 0, 64, 17, 0, 0, 10, 77, 0, 2, 10, 77, 0, 1]
        bigUDP += [UInt8](repeating: 0x5a, count: 1400 - 20)
        let v6TCP: [UInt8] = [0x60, 0, 0, 0, 0x05, 0x00, 6, 64] + [UInt8](repeating: 0xfd, count: 32)
            + [0x9c, 0x40, 0x13, 0x89, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x10, 0xff, 0xff, 0, 0, 0, 0] + [UInt8](repeating: 1, count: 1260)
        return [[184, 0] + v4 + tcpSyn, [184, 0] + bigUDP, [200, 2] + v6TCP, [184, 0xf9] + v4 + tcpSyn]
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard size >= 2, let data else { return 0 }
    let maxPacket = 300 + 5 * Int(data[0])
    var h = VirtioNetHeader()
    h.gsoType = [VirtioNetHeader.gsoNone, VirtioNetHeader.gsoTCPv4, VirtioNetHeader.gsoTCPv6][Int(data[1] & 7) % 3]
    h.gsoSize = UInt16(data[1] >> 3) * 48
    withMutableCopy(data + 2, size - 2) { input in
        guard let p = input.baseAddress else { return }
        let len = input.count
        let soundBefore = tcpChecksumValid(p, len)
        if MssClamp.apply(p, length: len, maxPacket: maxPacket) {
            guard let sound = tcpChecksumValid(p, len) else { fuzzFailure("clamped something that is not a TCP segment") }
            guard sound == soundBefore else {
                fuzzFailure(sound ? "the clamp made a damaged SYN's checksum valid" : "clamped SYN with a bad TCP checksum")
            }
        }
        let n = PacketTooBig.write(into: icmp, capacity: 2048, original: p, length: len, mtu: maxPacket)
        if n > 0 {
            let v6 = icmp.load(as: UInt8.self) >> 4 == 6
            guard n <= (v6 ? PacketTooBig.ipv6Limit : PacketTooBig.ipv4Limit) else { fuzzFailure("ICMP error of \(n) bytes") }
            let ok = v6 ? Checksum.fold(Checksum.sum(icmp + 40, n - 40, initial: Checksum.pseudoHeader(ip: icmp, isV6: true, proto: 58, l4Length: n - 40))) == 0xffff
                        : ipv4HeaderValid(icmp) && Checksum.fold(Checksum.sum(icmp + 20, n - 20)) == 0xffff
            guard ok else { fuzzFailure("ICMP error with a bad checksum") }
        }
        switch PathFit.plan(p, length: len, header: h, maxPacket: maxPacket) {
        case .fits, .tooBig:
            break
        case .resegment(let smaller):
            var first = 0
            while true {
                guard let produced = try? Segmenter.segment(p, length: len, header: smaller, firstSegment: first, maxSegments: 64,
                                                            capacity: capacity, destination: { slots + $0 * capacity },
                                                            emit: { i, l in
                                                                if l > maxPacket { fuzzFailure("a segment of \(l) bytes for a path of \(maxPacket)") }
                                                                if (slots + i * capacity).load(as: UInt8.self) >> 4 == 4 && !ipv4HeaderValid(slots + i * capacity) {
                                                                    fuzzFailure("segment with a bad IPv4 header checksum")
                                                                }
                                                            }) else { break }
                first += produced
                if produced < 64 { break }
            }
        case .fragment:
            _ = try? IPv4Fragmenter.fragment(p, length: len, maxPacket: maxPacket, maxFragments: 64, destination: { slots + $0 * capacity },
                                             emit: { i, l in
                                                 if l > maxPacket { fuzzFailure("a fragment of \(l) bytes for a path of \(maxPacket)") }
                                                 if !ipv4HeaderValid(slots + i * capacity) { fuzzFailure("fragment with a bad header checksum") }
                                             })
        }
    }
    return 0
}
