import XCTest
@testable import JVPNCore

final class PacketTests: XCTestCase {
    func testIPv4Header() {
        let p = PacketFixtures.ipv4(src: [192, 168, 1, 2], dst: [8, 8, 4, 4], payload: 12)
        p.withUnsafeBytes { b in
            let base = b.baseAddress!
            XCTAssertEqual(IPPacket.version(base, length: b.count), 4)
            XCTAssertTrue(IPPacket.isValid(base, length: b.count))
            XCTAssertEqual(IPPacket.source(base, length: b.count), IPAddress("192.168.1.2"))
            XCTAssertEqual(IPPacket.destination(base, length: b.count), IPAddress("8.8.4.4"))
            XCTAssertEqual(IPPacket.claimedLength(base, length: b.count), 32)
            XCTAssertEqual(IPPacket.header(base, length: b.count),
                           IPPacket.Header(version: 4, source: IPAddress("192.168.1.2")!,
                                           destination: IPAddress("8.8.4.4")!, claimedLength: 32))
        }
    }

    func testIPv4WithOptionsAndPadding() {
        var p = PacketFixtures.ipv4(src: [1, 1, 1, 1], dst: [2, 2, 2, 2], payload: 4, ihl: 6)
        let claimed = p.count
        p += [0, 0, 0, 0]  // AEAD padding after the IP packet
        p.withUnsafeBytes { b in
            XCTAssertEqual(IPPacket.claimedLength(b.baseAddress!, length: b.count), claimed)
            // IHL says 24 bytes of header: 23 bytes is truncated.
            XCTAssertFalse(IPPacket.isValid(b.baseAddress!, length: 23))
            XCTAssertTrue(IPPacket.isValid(b.baseAddress!, length: 24))
        }
    }

    func testIPv6Header() {
        let src = IPAddress("2001:db8::1")!
        let dst = IPAddress("fd00::2")!
        let p = PacketFixtures.ipv6(src: src.bytes, dst: dst.bytes, payload: 20)
        p.withUnsafeBytes { b in
            let base = b.baseAddress!
            XCTAssertEqual(IPPacket.version(base, length: b.count), 6)
            XCTAssertEqual(IPPacket.source(base, length: b.count), src)
            XCTAssertEqual(IPPacket.destination(base, length: b.count), dst)
            XCTAssertEqual(IPPacket.claimedLength(base, length: b.count), 60)
            XCTAssertNil(IPPacket.claimedLength(base, length: 59), "claims more than the buffer")
        }
    }

    func testTruncatedAndGarbage() {
        let v4 = PacketFixtures.ipv4(src: [1, 2, 3, 4], dst: [5, 6, 7, 8])
        v4.withUnsafeBytes { b in
            for n in 0..<20 {
                XCTAssertNil(IPPacket.version(b.baseAddress!, length: n), "\(n)")
                XCTAssertNil(IPPacket.source(b.baseAddress!, length: n))
                XCTAssertNil(IPPacket.destination(b.baseAddress!, length: n))
                XCTAssertNil(IPPacket.header(b.baseAddress!, length: n))
            }
        }
        let v6 = PacketFixtures.ipv6(src: [UInt8](repeating: 1, count: 16), dst: [UInt8](repeating: 2, count: 16))
        v6.withUnsafeBytes { b in
            XCTAssertNil(IPPacket.destination(b.baseAddress!, length: 39))
            XCTAssertNotNil(IPPacket.destination(b.baseAddress!, length: 40))
        }
        var bad = v4
        bad[0] = 0x45 & 0x0f | 0x50  // version 5
        bad.withUnsafeBytes { XCTAssertNil(IPPacket.version($0.baseAddress!, length: $0.count)) }
        bad[0] = 0x44  // IHL 4 (< 5) is malformed
        bad.withUnsafeBytes { XCTAssertNil(IPPacket.version($0.baseAddress!, length: $0.count)) }
        var shortTotal = v4
        shortTotal[2] = 0
        shortTotal[3] = 10  // total length below the header
        shortTotal.withUnsafeBytes {
            XCTAssertNil(IPPacket.claimedLength($0.baseAddress!, length: $0.count))
        }
    }

    func testUnalignedRead() {
        var buf = [UInt8](repeating: 0, count: 3)
        buf += PacketFixtures.ipv4(src: [9, 8, 7, 6], dst: [1, 2, 3, 4])
        buf.withUnsafeBytes { b in
            XCTAssertEqual(IPPacket.source(b.baseAddress! + 3, length: b.count - 3), IPAddress("9.8.7.6"))
        }
    }
}
