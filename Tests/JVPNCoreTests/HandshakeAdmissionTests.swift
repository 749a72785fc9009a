import XCTest
@testable import JVPNCore

final class HandshakeAdmissionTests: XCTestCase {
    let client = PrivateKey.generate()
    let server = PrivateKey.generate()
    let source = HandshakeSource(address: .v4(0x0a00_0002), port: 5555)
    let loaded = HandshakeAdmission.loadThreshold

    private func gateway() -> HandshakeAdmission {
        HandshakeAdmission(role: .gateway, localPublicKey: server.publicKey, nowMs: 0)
    }

    private func initiation(cookie: MAC16? = nil) throws -> [UInt8] {
        try Handshake.makeInitiation(local: client, remote: server.publicKey, sessionID: .random(), localIndex: 1,
                                     timestamp: Timestamp12(unixNanoseconds: 1), cookie: cookie).message
    }

    private func admit(_ a: inout HandshakeAdmission, _ m: [UInt8], from s: HandshakeSource? = nil, depth: Int = 0,
                       nowMs: UInt64 = 10) -> AdmissionDecision {
        m.withUnsafeBytes { a.admit($0, source: s ?? source, queueDepth: depth, nowMs: nowMs) }
    }

    func testJunkAndShortMessagesAreMalformedUnderAndNotUnderLoad() {
        var a = gateway()
        for depth in [0, loaded] {
            XCTAssertEqual(admit(&a, [1], depth: depth), .drop(.malformed), "1-byte type 1")
            XCTAssertEqual(admit(&a, [], depth: depth), .drop(.malformed))
            XCTAssertEqual(admit(&a, [1, 0, 0, 0] + [UInt8](repeating: 0, count: 100), depth: depth), .drop(.malformed))
            XCTAssertEqual(admit(&a, [UInt8](repeating: 1, count: 160), depth: depth), .drop(.malformed), "reserved bytes")
            XCTAssertEqual(admit(&a, [7, 0, 0, 0], depth: depth), .drop(.malformed), "unknown type")
            // A gateway never takes responses or cookie replies.
            XCTAssertEqual(admit(&a, [2, 0, 0, 0] + [UInt8](repeating: 0, count: 88), depth: depth), .drop(.malformed))
            XCTAssertEqual(admit(&a, [3, 0, 0, 0] + [UInt8](repeating: 0, count: 60), depth: depth), .drop(.malformed))
        }
    }

    func testRightSizeWithoutMac1IsBadMac1() throws {
        var a = gateway()
        var junk = [UInt8](repeating: 0xab, count: 160)
        junk[0] = 1; junk[1] = 0; junk[2] = 0; junk[3] = 0
        XCTAssertEqual(admit(&a, junk), .drop(.badMac1))
        XCTAssertEqual(admit(&a, junk, depth: loaded), .drop(.badMac1), "mac1 before the cookie: no reply to strangers")
        // An initiation for another gateway.
        let other = try Handshake.makeInitiation(local: client, remote: PrivateKey.generate().publicKey, sessionID: .random(),
                                                 localIndex: 1, timestamp: Timestamp12(unixNanoseconds: 1)).message
        XCTAssertEqual(admit(&a, other), .drop(.badMac1))
    }

    func testNotUnderLoadValidMac1IsEnqueued() throws {
        var a = gateway()
        XCTAssertEqual(admit(&a, try initiation(), depth: loaded - 1), .enqueue)
        // A full queue is load: without a cookie the answer is a cookie reply, not work.
        XCTAssertEqual(admit(&a, try initiation(), depth: HandshakeAdmission.queueCapacity), .sendCookie)
    }

    func testUnderLoadNoCookieGetsCookieReplyThenCookieIsEnqueued() throws {
        var a = gateway()
        let msg = try initiation()
        XCTAssertEqual(admit(&a, msg, depth: loaded), .sendCookie)
        var reply = [UInt8](repeating: 0, count: 64)
        let n = msg.withUnsafeBytes { m in reply.withUnsafeMutableBytes { a.writeCookieReply(to: m, source: source, into: $0.baseAddress!) } }
        XCTAssertEqual(n, 64)
        let cookie = try reply.withUnsafeBytes { try Cookie.openReply($0, responder: server.publicKey, receiverIndex: 1,
                                                                      mac1: MAC16(bytes: Array(msg[128..<144]))!) }
        let withCookie = try initiation(cookie: cookie)
        XCTAssertEqual(admit(&a, withCookie, depth: loaded), .enqueue)
        // The same cookie from another port or address is not valid: a cookie reply again.
        XCTAssertEqual(admit(&a, withCookie, from: HandshakeSource(address: source.address, port: 5556), depth: loaded), .sendCookie)
        XCTAssertEqual(admit(&a, withCookie, from: HandshakeSource(address: .v4(0x0a00_0003), port: 5555), depth: loaded), .sendCookie)
        // A full queue still drops.
        XCTAssertEqual(admit(&a, withCookie, depth: HandshakeAdmission.queueCapacity), .drop(.queueFull))
    }

    func testInitiationOverTCPNeedsNoCookieUnderLoadButKeepsTheSourceLimit() throws {
        var a = gateway()
        let msg = try initiation()
        func overTCP(_ depth: Int, _ nowMs: UInt64) -> AdmissionDecision {
            msg.withUnsafeBytes { a.admit($0, source: source, queueDepth: depth, nowMs: nowMs, sourceProven: true) }
        }
        XCTAssertEqual(admit(&a, msg, depth: loaded), .sendCookie, "over UDP: the cookie round trip")
        XCTAssertEqual(overTCP(loaded, 10), .enqueue, "over TCP the connection proved the source")
        var decisions: [AdmissionDecision] = []
        for _ in 0..<20 { decisions.append(overTCP(loaded, 10)) }
        XCTAssertTrue(decisions.contains(.drop(.sourceRateLimited)), "the per-source bucket still applies under load")
        XCTAssertEqual(overTCP(HandshakeAdmission.queueCapacity, 5000), .drop(.queueFull))
    }

    func testLoadIsHeldForASecond() throws {
        var a = gateway()
        let msg = try initiation()
        XCTAssertEqual(admit(&a, msg, depth: loaded, nowMs: 1000), .sendCookie)
        XCTAssertEqual(admit(&a, msg, depth: 0, nowMs: 1999), .sendCookie, "still under load")
        XCTAssertEqual(admit(&a, msg, depth: 0, nowMs: 2000), .enqueue)
    }

    func testCookieRepliesAreGloballyLimited() throws {
        var a = gateway()
        let msg = try initiation()
        var sent = 0
        for i in 0..<(Int(HandshakeAdmission.cookieReplyBurst) + 10) {
            let s = HandshakeSource(address: .v4(UInt32(0x0b00_0000 + i)), port: 1)
            if admit(&a, msg, from: s, depth: loaded, nowMs: 10) == .sendCookie { sent += 1 }
        }
        XCTAssertEqual(sent, Int(HandshakeAdmission.cookieReplyBurst))
        XCTAssertEqual(admit(&a, msg, depth: loaded, nowMs: 10), .drop(.cookieRateLimited))
        XCTAssertEqual(admit(&a, msg, depth: loaded, nowMs: 11), .sendCookie, "refills over time")
    }

    func testPerSourceLimitUnderLoad() throws {
        var a = gateway()
        let checker = a.cookies
        let msg = try initiation(cookie: checker.cookie(for: source))
        let burst = Int(HandshakeAdmission.loadedBurst)
        for i in 0..<burst { XCTAssertEqual(admit(&a, msg, depth: loaded), .enqueue, "burst \(i)") }
        XCTAssertEqual(admit(&a, msg, depth: loaded), .drop(.sourceRateLimited))
        // 20/s: one more after 50 ms.
        XCTAssertEqual(admit(&a, msg, depth: loaded, nowMs: 60), .enqueue)
        XCTAssertEqual(admit(&a, msg, depth: loaded, nowMs: 60), .drop(.sourceRateLimited))
        // Another source has its own bucket.
        let other = HandshakeSource(address: .v4(0x0a00_0009), port: 5555)
        XCTAssertEqual(admit(&a, try initiation(cookie: checker.cookie(for: other)), from: other, depth: loaded, nowMs: 60), .enqueue)
    }

    func testPerSourceLimitNotUnderLoadIsGenerous() throws {
        var a = gateway()
        let msg = try initiation()
        for _ in 0..<Int(HandshakeAdmission.idleBurst) { XCTAssertEqual(admit(&a, msg, depth: 0), .enqueue) }
        XCTAssertEqual(admit(&a, msg, depth: 0), .drop(.sourceRateLimited))
    }

    func testIPv6CountsBySlash64() {
        var l = SourceRateLimiter(capacity: 64)
        for i in 0..<3 { XCTAssertTrue(l.allow(.v6(0x2001_0db8_0000_0001, UInt64(i)), nowMs: 0, perSecond: 1, burst: 3)) }
        XCTAssertFalse(l.allow(.v6(0x2001_0db8_0000_0001, 99), nowMs: 0, perSecond: 1, burst: 3), "same /64")
        XCTAssertTrue(l.allow(.v6(0x2001_0db8_0000_0002, 0), nowMs: 0, perSecond: 1, burst: 3), "next /64")
        // An IPv4 address equal to a /64's value is a different source.
        XCTAssertTrue(l.allow(.v4(1), nowMs: 0, perSecond: 1, burst: 3))
        XCTAssertTrue(l.allow(.v6(1, 0), nowMs: 0, perSecond: 1, burst: 3))
    }

    func testSourceTableIsBoundedAndEvictsTheOldest() {
        var l = SourceRateLimiter(capacity: 256)
        XCTAssertEqual(l.capacity, 256)
        for i in 0..<10_000 { _ = l.allow(.v4(UInt32(i)), nowMs: UInt64(i), perSecond: 1, burst: 1) }
        XCTAssertLessThanOrEqual(l.trackedSources, 256)
        // A source seen long ago was evicted (or refilled): it passes again.
        XCTAssertTrue(l.allow(.v4(0), nowMs: 10_000, perSecond: 1, burst: 1))
        // A recent one is still tracked and limited.
        XCTAssertTrue(l.allow(.v4(7_000_000), nowMs: 10_000, perSecond: 0.001, burst: 1))
        XCTAssertFalse(l.allow(.v4(7_000_000), nowMs: 10_000, perSecond: 0.001, burst: 1))
    }

    func testClientTakesResponsesAndCookieRepliesOnly() {
        var a = HandshakeAdmission(role: .client, localPublicKey: client.publicKey, nowMs: 0)
        XCTAssertEqual(admit(&a, [2, 0, 0, 0] + [UInt8](repeating: 0, count: 88)), .enqueue)
        XCTAssertEqual(admit(&a, [3, 0, 0, 0] + [UInt8](repeating: 0, count: 60)), .enqueue)
        XCTAssertEqual(admit(&a, [2, 0, 0, 0] + [UInt8](repeating: 0, count: 72)), .drop(.malformed), "old size")
        XCTAssertEqual(admit(&a, [3]), .drop(.malformed))
        XCTAssertEqual(admit(&a, [1, 0, 0, 0] + [UInt8](repeating: 0, count: 156)), .drop(.malformed))
        XCTAssertEqual(admit(&a, [2, 0, 0, 0] + [UInt8](repeating: 0, count: 88), depth: HandshakeAdmission.queueCapacity),
                       .drop(.queueFull))
    }
}
