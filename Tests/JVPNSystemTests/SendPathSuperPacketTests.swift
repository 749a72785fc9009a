import Foundation
import Glibc
import JVPNCore
@testable import JVPNDaemon
import JVPNSystem
import XCTest

/// A TSO super-packet that needs more segments than a batch holds (a tunnel MTU of 1000: 68
/// segments of 960 bytes) leaves whole, in order: the kernel hands a real pump on a real TUN with
/// offload a 64 KiB TCP packet (injected with a packet socket and a virtio_net_hdr, as the TCP
/// stack's own would come), and every segment arrives sealed at the peer's address.
final class SendPathSuperPacketTests: XCTestCase {
    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("needs root (network namespace, TUN, packet socket)") }
        try Sodium.initialize()
    }

    static let mss = 960
    static let segments = 68

    func testSuperPacketOfMoreSegmentsThanABatchLeavesWhole() throws {
        try SendPathFixture.inNamespace { try self.superPacket() }
    }

    /// IPv4 + TCP, `segments` x `mss` of payload byte i % 251, seq 1000, ACK|PSH.
    private func superPacketBytes() -> [UInt8] {
        let payload = Self.segments * Self.mss
        var p = [UInt8](repeating: 0, count: 40 + payload)
        let total = UInt16(p.count)
        p[0] = 0x45; p[2] = UInt8(total >> 8); p[3] = UInt8(total & 0xff); p[6] = 0x40; p[8] = 64; p[9] = 6
        p[12...15] = [10, 99, 0, 1]; p[16...19] = [10, 99, 0, 2]
        p[20] = 0x30; p[21] = 0x39; p[22] = 0x00; p[23] = 0x50 // ports 12345 -> 80
        p[24...27] = [0, 0, 0x03, 0xe8] // seq 1000
        p[32] = 0x50; p[33] = 0x18; p[34] = 0xff; p[35] = 0xff // header 20 bytes, ACK|PSH, window
        var sum: UInt32 = 0
        for i in stride(from: 0, to: 20, by: 2) { sum += UInt32(p[i]) << 8 | UInt32(p[i + 1]) }
        while sum > 0xffff { sum = (sum & 0xffff) + (sum >> 16) }
        let ipSum = ~UInt16(sum)
        p[10] = UInt8(ipSum >> 8); p[11] = UInt8(ipSum & 0xff)
        for i in 0..<payload { p[40 + i] = UInt8(i % 251) }
        return p
    }

    private func superPacket() throws {
        let peer = try FrameCollector()
        let transport = try UDPSocket(family: AF_INET)
        let tun = try TunDevice(name: "jvsend1", options: [.nonBlocking, .vnetHeader])
        try tun.enableTCPOffload()
        try tun.setMTU(1000)
        try tun.setUp(true)
        let (_, pump) = try SendPathFixture.pump(tun: tun, mtu: 1000, vnet: true, SendPathFixture.keypair(7), transport, peer.address)
        try peer.start()
        try pump.start()

        // A packet socket with virtio_net_hdr sends into the TUN's transmit path, which keeps a
        // GSO packet whole for the reader (the TUN has TSO).
        let fd = socket(AF_PACKET, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(UInt16(0x0800 /* ETH_P_IP */).bigEndian))
        XCTAssertGreaterThanOrEqual(fd, 0, "packet socket: errno \(errno)")
        defer { close(fd) }
        var on: Int32 = 1
        XCTAssertEqual(setsockopt(fd, 263 /* SOL_PACKET */, 15 /* PACKET_VNET_HDR */, &on, socklen_t(MemoryLayout<Int32>.size)), 0,
                       "PACKET_VNET_HDR: errno \(errno)")
        var h = VirtioNetHeader()
        h.flags = VirtioNetHeader.needsChecksum
        h.gsoType = VirtioNetHeader.gsoTCPv4
        h.headerLength = 40
        h.gsoSize = UInt16(Self.mss)
        h.checksumStart = 20
        h.checksumOffset = 16
        let packet = superPacketBytes()
        var message = [UInt8](repeating: 0, count: VirtioNetHeader.size + packet.count)
        message.withUnsafeMutableBytes { h.write(to: $0.baseAddress!) }
        message.replaceSubrange(VirtioNetHeader.size..., with: packet)
        // struct sockaddr_ll: family, protocol (network order), ifindex, hatype, pkttype, halen, addr[8]
        var link = [UInt8](repeating: 0, count: 20)
        link.withUnsafeMutableBytes { l in
            l.storeBytes(of: UInt16(AF_PACKET), toByteOffset: 0, as: UInt16.self)
            l.storeBytes(of: UInt16(0x0800 /* ETH_P_IP */).bigEndian, toByteOffset: 2, as: UInt16.self)
            l.storeBytes(of: Int32(if_nametoindex(tun.name)), toByteOffset: 4, as: Int32.self)
        }
        let sent = message.withUnsafeBytes { m in
            link.withUnsafeBytes { l in
                sendto(fd, m.baseAddress, m.count, 0, l.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(l.count))
            }
        }
        XCTAssertEqual(sent, message.count, "send the super-packet: errno \(errno)")
        for _ in 0..<100 where peer.lock.withLock({ peer.frames.count }) < Self.segments { usleep(10_000) }
        usleep(50_000)
        pump.requestStop()
        pump.waitStopped(deadlineMs: Clock.monotonicMilliseconds() + 2000)
        let frames = peer.finish().sorted { $0.counter < $1.counter }

        print("super-packet of \(Self.segments) segments: \(frames.count) frames at the peer; malformed drops \(pump.droppedMalformed.load(ordering: .relaxed))")
        XCTAssertEqual(pump.droppedMalformed.load(ordering: .relaxed), 0)
        XCTAssertEqual(frames.count, Self.segments, "every segment of the super-packet")
        let opener = SendPathFixture.receiverKeypair(7)
        var payload: [UInt8] = []
        for (i, f) in frames.enumerated() {
            var b = f.bytes
            let inner: [UInt8]? = b.withUnsafeMutableBytes { raw in
                guard let hd = Frame.peekHeader(raw.baseAddress!, length: raw.count),
                      let n = Frame.open(header: hd, key: opener, buffer: raw.baseAddress!, length: raw.count) else { return nil }
                return Array(UnsafeRawBufferPointer(start: raw.baseAddress! + Frame.headerLength, count: n))
            }
            guard let inner, inner.count >= 40 else { return XCTFail("frame \(i) does not open") }
            XCTAssertLessThanOrEqual(inner.count, 1000, "segment \(i) fits the MTU")
            let seq = UInt32(inner[24]) << 24 | UInt32(inner[25]) << 16 | UInt32(inner[26]) << 8 | UInt32(inner[27])
            XCTAssertEqual(seq, 1000 + UInt32(i * Self.mss), "segment \(i) in order")
            payload += inner[40...]
        }
        XCTAssertEqual(payload.count, packet.count - 40)
        XCTAssertTrue(payload == Array(packet[40...]), "the payload, whole and in order")
    }
}
