import XCTest
@testable import JVPNCore

final class IPAddressTests: XCTestCase {
    func testIPv4Parse() {
        XCTAssertEqual(IPAddress("1.2.3.4"), .v4(0x0102_0304))
        XCTAssertEqual(IPAddress("0.0.0.0"), .v4(0))
        XCTAssertEqual(IPAddress("255.255.255.255"), .v4(.max))
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.04", "01.2.3.4", "1..2.3", ".1.2.3",
                    "1.2.3.", " 1.2.3.4", "1.2.3.4 ", "a.b.c.d", "1.2.3.4/32", "1234.1.1.1", "-1.2.3.4"] {
            XCTAssertNil(IPAddress(bad), bad)
        }
        XCTAssertEqual(IPAddress("10.0.0.0")?.family, .v4)
    }

    func testIPv6Parse() {
        XCTAssertEqual(IPAddress("::"), .v6(0, 0))
        XCTAssertEqual(IPAddress("::1"), .v6(0, 1))
        XCTAssertEqual(IPAddress("1::"), .v6(0x0001_0000_0000_0000, 0))
        XCTAssertEqual(IPAddress("2001:db8::1"), .v6(0x2001_0db8_0000_0000, 1))
        XCTAssertEqual(IPAddress("2001:DB8:0:0:0:0:0:1"), .v6(0x2001_0db8_0000_0000, 1))
        XCTAssertEqual(IPAddress("1:2:3:4:5:6:7:8"), .v6(0x0001_0002_0003_0004, 0x0005_0006_0007_0008))
        XCTAssertEqual(IPAddress("1::2:3:4:5:6:7"), .v6(0x0001_0000_0002_0003, 0x0004_0005_0006_0007))
        XCTAssertEqual(IPAddress("1:2:3:4:5:6:7::"), .v6(0x0001_0002_0003_0004, 0x0005_0006_0007_0000))
        XCTAssertEqual(IPAddress("::ffff:1.2.3.4"), .v6(0, 0x0000_ffff_0102_0304))
        XCTAssertEqual(IPAddress("64:ff9b::192.0.2.33"), .v6(0x0064_ff9b_0000_0000, 0x0000_0000_c000_0221))
        XCTAssertEqual(IPAddress("1:2:3:4:5:6:1.2.3.4"), .v6(0x0001_0002_0003_0004, 0x0005_0006_0102_0304))
        for bad in [":", ":::", "1:::2", "1::2::3", ":1::2", "1::2:", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9",
                    "1:2:3:4:5:6:7:8::", "::1:2:3:4:5:6:7:8", "12345::", "g::1", "fe80::1%eth0",
                    "::1.2.3", "::1.2.3.4:5", "1:2:3:4:5:6:7:1.2.3.4", "[::1]", "::256.0.0.1"] {
            XCTAssertNil(IPAddress(bad), bad)
        }
    }

    func testIPv6FormatRFC5952() {
        let cases: [(String, String)] = [
            ("::", "::"),
            ("::1", "::1"),
            ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
            ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),  // single zero group not compressed
            ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),  // tie: first run
            ("2001:0:0:1:0:0:0:1", "2001:0:0:1::1"),  // longest run wins
            ("1::", "1::"),
            ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
            ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
            ("::ffff:102:304", "::ffff:1.2.3.4"),
            ("fe80::abcd:ef01", "fe80::abcd:ef01"),
            ("0:0:0:0:0:0:0:0", "::"),
        ]
        for (input, want) in cases {
            XCTAssertEqual(IPAddress(input)?.description, want, input)
            // Round trip through the canonical text.
            XCTAssertEqual(IPAddress(want), IPAddress(input), want)
        }
        XCTAssertEqual(IPAddress.v4(0x0a00_0001).description, "10.0.0.1")
    }

    func testBytes() {
        let a = IPAddress("1.2.3.4")!
        XCTAssertEqual(a.bytes, [1, 2, 3, 4])
        let b = IPAddress("2001:db8::ff")!
        XCTAssertEqual(b.bytes, [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff])
        XCTAssertEqual(IPAddress(networkBytes: b.bytes), b)
        XCTAssertEqual(IPAddress(networkBytes: a.bytes), a)
        XCTAssertNil(IPAddress(networkBytes: [1, 2, 3]))
        a.withBytes { XCTAssertEqual($0.count, 4) }
        b.withBytes { XCTAssertEqual($0.count, 16) }
        XCTAssertTrue(IPAddress("::ffff:10.0.0.1")!.isV4Mapped)
        XCTAssertEqual(IPAddress("::ffff:10.0.0.1")!.unmapped, IPAddress("10.0.0.1"))
        XCTAssertLessThan(IPAddress("9.9.9.9")!, IPAddress("::")!)
    }

    func testPrefix() {
        let p = IPPrefix("10.77.0.2/24")!
        XCTAssertEqual(p.description, "10.77.0.2/24")
        XCTAssertEqual(p.network.description, "10.77.0.0/24")
        XCTAssertFalse(p.isNetwork)
        XCTAssertTrue(p.network.isNetwork)
        XCTAssertTrue(p.contains(IPAddress("10.77.0.255")!))
        XCTAssertFalse(p.contains(IPAddress("10.77.1.0")!))
        XCTAssertFalse(p.contains(IPAddress("::ffff:10.77.0.1")!))
        XCTAssertEqual(IPPrefix("10.1.2.3"), IPPrefix("10.1.2.3/32"))
        XCTAssertEqual(IPPrefix("fd00::1")?.length, 128)
        XCTAssertTrue(IPPrefix("0.0.0.0/0")!.contains(IPAddress("8.8.8.8")!))
        XCTAssertTrue(IPPrefix("0.0.0.0/0")!.isDefaultRoute)
        XCTAssertTrue(IPPrefix("::/0")!.contains(IPAddress("2001:db8::1")!))
        XCTAssertFalse(IPPrefix("::/0")!.contains(IPAddress("1.1.1.1")!))
        let v6 = IPPrefix("2001:db8:abcd:12::/63")!
        XCTAssertTrue(v6.contains(IPAddress("2001:db8:abcd:13::1")!))
        XCTAssertFalse(v6.contains(IPAddress("2001:db8:abcd:14::1")!))
        XCTAssertEqual(IPPrefix("2001:db8::1/65")!.network.description, "2001:db8::/65")
        XCTAssertEqual(IPPrefix("2001:db8::8000:0:0:1/65")!.network.description, "2001:db8:0:0:8000::/65")
        XCTAssertTrue(IPPrefix("10.0.0.0/8")!.contains(IPPrefix("10.1.0.0/16")!))
        XCTAssertFalse(IPPrefix("10.1.0.0/16")!.contains(IPPrefix("10.0.0.0/8")!))
        XCTAssertTrue(IPPrefix("1.2.3.4/32")!.isHost)
        for bad in ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/a", "/24", "10.0.0.0/0024",
                    "10.0.0.0/24/1", "host/24"] {
            XCTAssertNil(IPPrefix(bad), bad)
        }
    }

    func testEndpoint() {
        XCTAssertEqual(try Endpoint.parse("1.2.3.4:51820").get(), Endpoint(address: .v4(0x0102_0304), port: 51820))
        let v6 = try? Endpoint.parse("[2001:db8::1]:443").get()
        XCTAssertEqual(v6?.address, IPAddress("2001:db8::1"))
        XCTAssertEqual(v6?.port, 443)
        XCTAssertEqual(v6?.description, "[2001:db8::1]:443")
        XCTAssertEqual(try Endpoint.parse("10.0.0.1:1").get().description, "10.0.0.1:1")
        let cases: [(String, Endpoint.ParseError)] = [
            ("", .empty),
            ("1.2.3.4", .missingPort("1.2.3.4")),
            ("1.2.3.4:", .missingPort("1.2.3.4:")),
            ("1.2.3.4:0", .badPort("1.2.3.4:0")),
            ("1.2.3.4:65536", .badPort("1.2.3.4:65536")),
            ("1.2.3.4:http", .badPort("1.2.3.4:http")),
            ("vpn.example.com:51820", .hostname("vpn.example.com:51820")),
            ("vpn.example.com", .hostname("vpn.example.com")),
            ("2001:db8::1:51820", .unbracketedIPv6("2001:db8::1:51820")),
            ("[2001:db8::1]", .missingPort("[2001:db8::1]")),
            ("[1.2.3.4]:5", .badAddress("[1.2.3.4]:5")),
            ("[2001:db8::1:5", .badAddress("[2001:db8::1:5")),
            ("300.1.1.1:5", .badAddress("300.1.1.1:5")),
        ]
        for (input, want) in cases {
            switch Endpoint.parse(input) {
            case .success(let e): XCTFail("\(input) parsed as \(e)")
            case .failure(let err): XCTAssertEqual(err, want, input)
            }
        }
        XCTAssertTrue(Endpoint.ParseError.hostname("x:1").description.contains("host names are not supported"))
    }
}
