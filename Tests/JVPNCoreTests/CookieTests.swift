import XCTest
@testable import JVPNCore

final class CookieTests: XCTestCase {
    let client = PrivateKey.generate()
    let server = PrivateKey.generate()
    let source = HandshakeSource(address: .v4(0xcb00_7107), port: 40001)
    let ts = Timestamp12(unixNanoseconds: 1_700_000_000_000_000_000)

    private func initiation(cookie: MAC16? = nil, index: UInt32 = 7) throws -> ([UInt8], InitiatorHandshake) {
        let r = try Handshake.makeInitiation(local: client, remote: server.publicKey, sessionID: .random(),
                                             localIndex: index, timestamp: ts, cookie: cookie)
        return (r.message, r.state)
    }

    private func reply(_ checker: inout CookieChecker, to msg: [UInt8], from src: HandshakeSource) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Cookie.replyLength)
        let nonce = checker.nextNonce()
        msg.withUnsafeBytes { m in
            out.withUnsafeMutableBytes { checker.writeReply(to: m.baseAddress!, source: src, nonce: nonce, into: $0.baseAddress!) }
        }
        return out
    }

    func testReplyNoncesNeverRepeat() {
        var checker = CookieChecker(localPublicKey: server.publicKey, nowMs: 0)
        let a = checker.nextNonce(), b = checker.nextNonce()
        XCTAssertNotEqual(a, b)
        checker.rotateIfDue(nowMs: Cookie.lifetimeMs)
        XCTAssertNotEqual(checker.nextNonce(), a, "a new random prefix with each R")
    }

    private func open(_ r: [UInt8], responder: PublicKey? = nil, index: UInt32 = 7, mac1: MAC16) throws -> MAC16 {
        try r.withUnsafeBytes { (b: UnsafeRawBufferPointer) throws(HandshakeError) in
            try Cookie.openReply(b, responder: responder ?? server.publicKey, receiverIndex: index, mac1: mac1)
        }
    }

    private func mac2Valid(_ c: CookieChecker, _ msg: [UInt8], _ src: HandshakeSource) -> Bool {
        msg.withUnsafeBytes { c.isValidMac2($0.baseAddress!, source: src) }
    }

    func testMac2AbsentIsZeroAndInvalid() throws {
        let checker = CookieChecker(localPublicKey: server.publicKey, nowMs: 0)
        let (msg, _) = try initiation()
        XCTAssertEqual(msg.count, 160)
        XCTAssertEqual(Array(msg[144...]), [UInt8](repeating: 0, count: 16))
        XCTAssertFalse(mac2Valid(checker, msg, source))
    }

    func testMac2PresentValidOnlyForItsSource() throws {
        let checker = CookieChecker(localPublicKey: server.publicKey, nowMs: 0)
        let (msg, _) = try initiation(cookie: checker.cookie(for: source))
        XCTAssertTrue(mac2Valid(checker, msg, source))
        // Bound to the address and to the port.
        XCTAssertFalse(mac2Valid(checker, msg, HandshakeSource(address: .v4(0xcb00_7108), port: 40001)))
        XCTAssertFalse(mac2Valid(checker, msg, HandshakeSource(address: source.address, port: 40002)))
        // The handshake itself still goes through: mac2 is not part of the Noise transcript.
        XCTAssertNoThrow(try msg.withUnsafeBytes {
            try Handshake.consumeInitiation($0, local: server, isAuthorized: { $0 == self.client.publicKey })
        })
    }

    func testMac2WrongIsInvalid() throws {
        let checker = CookieChecker(localPublicKey: server.publicKey, nowMs: 0)
        var (msg, _) = try initiation(cookie: checker.cookie(for: source))
        msg[150] ^= 1
        XCTAssertFalse(mac2Valid(checker, msg, source))
        // Another gateway's cookie (another R) is no good either.
        let other = CookieChecker(localPublicKey: server.publicKey, nowMs: 0)
        let (msg2, _) = try initiation(cookie: other.cookie(for: source))
        XCTAssertFalse(mac2Valid(checker, msg2, source))
    }

    func testCookieBoundToAddressAndPort() {
        let c = CookieChecker(localPublicKey: server.publicKey, nowMs: 0, secret: [UInt8](repeating: 9, count: 32))
        let a = c.cookie(for: source)
        XCTAssertEqual(a, c.cookie(for: source))
        XCTAssertNotEqual(a, c.cookie(for: HandshakeSource(address: .v4(0xcb00_7106), port: 40001)))
        XCTAssertNotEqual(a, c.cookie(for: HandshakeSource(address: source.address, port: 40000)))
        XCTAssertNotEqual(c.cookie(for: HandshakeSource(address: .v6(0x2001_0db8_0000_0000, 1), port: 1)),
                          c.cookie(for: HandshakeSource(address: .v6(0x2001_0db8_0000_0000, 2), port: 1)))
    }

    func testRotationAfterLifetimeInvalidatesOldCookies() throws {
        var checker = CookieChecker(localPublicKey: server.publicKey, nowMs: 1000)
        let (msg, _) = try initiation(cookie: checker.cookie(for: source))
        checker.rotateIfDue(nowMs: 1000 + Cookie.lifetimeMs - 1)
        XCTAssertTrue(mac2Valid(checker, msg, source), "R lives 120 s")
        checker.rotateIfDue(nowMs: 1000 + Cookie.lifetimeMs)
        XCTAssertFalse(mac2Valid(checker, msg, source), "the previous R is not kept")
        let (fresh, _) = try initiation(cookie: checker.cookie(for: source))
        XCTAssertTrue(mac2Valid(checker, fresh, source))
    }

    func testCookieReplyRoundTrip() throws {
        var checker = CookieChecker(localPublicKey: server.publicKey, nowMs: 0)
        let (msg, ini) = try initiation(index: 0xdead_beef)
        let r = reply(&checker, to: msg, from: source)
        XCTAssertEqual(r.count, 64)
        XCTAssertEqual(Array(r[0..<8]), [3, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde])
        let cookie = try open(r, index: 0xdead_beef, mac1: ini.mac1)
        XCTAssertEqual(cookie, checker.cookie(for: source))
        // The initiator's next initiation with that cookie passes mac2.
        let (again, _) = try initiation(cookie: cookie)
        XCTAssertTrue(mac2Valid(checker, again, source))
        // mac1 recorded by the state is the one on the wire.
        XCTAssertEqual(ini.mac1.bytes, Array(msg[128..<144]))
    }

    func testCookieReplyTampered() throws {
        var checker = CookieChecker(localPublicKey: server.publicKey, nowMs: 0)
        let (msg, ini) = try initiation()
        let (other, otherIni) = try initiation()
        let r = reply(&checker, to: msg, from: source)
        func expect(_ e: HandshakeError, _ body: () throws -> MAC16, line: UInt = #line) {
            XCTAssertThrowsError(try body(), line: line) { XCTAssertEqual($0 as? HandshakeError, e, line: line) }
        }
        // Wrong AD: the mac1 of another initiation (same receiver index).
        expect(.decryptFailed) { try self.open(r, mac1: otherIni.mac1) }
        XCTAssertNotEqual(Array(other[128..<144]), Array(msg[128..<144]))
        // Wrong key: a reply sealed for another gateway's initiators.
        expect(.decryptFailed) { try self.open(r, responder: PrivateKey.generate().publicKey, mac1: ini.mac1) }
        // Wrong receiver.
        expect(.wrongReceiver) { try self.open(r, index: 8, mac1: ini.mac1) }
        // Any flipped bit after the header.
        for i in 8..<64 {
            var t = r
            t[i] ^= 0x10
            XCTAssertThrowsError(try open(t, mac1: ini.mac1), "byte \(i)")
        }
        expect(.wrongLength) { try self.open(Array(r.dropLast()), mac1: ini.mac1) }
        var t = r
        t[2] = 1
        expect(.wrongType) { try self.open(t, mac1: ini.mac1) }
    }
}
