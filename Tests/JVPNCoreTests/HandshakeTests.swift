import XCTest
@testable import JVPNCore

final class HandshakeTests: XCTestCase {
    let client = PrivateKey.generate()
    let server = PrivateKey.generate()
    let ts = Timestamp12(unixNanoseconds: 1_700_000_000_000_000_000)

    private func initiate(sid: SessionID = SessionID.random(), ts: Timestamp12? = nil, to remote: PublicKey? = nil,
                          index: UInt32 = 7) throws -> ([UInt8], InitiatorHandshake) {
        let r = try Handshake.makeInitiation(local: client, remote: remote ?? server.publicKey, sessionID: sid,
                                             localIndex: index, timestamp: ts ?? self.ts)
        return (r.message, r.state)
    }

    private func consume(_ msg: [UInt8], authorized: Set<PublicKey>? = nil) throws -> ReceivedInitiation {
        let allowed = authorized ?? [client.publicKey]
        return try msg.withUnsafeBytes { (b: UnsafeRawBufferPointer) throws(HandshakeError) in
            try Handshake.consumeInitiation(b, local: server, isAuthorized: { allowed.contains($0) })
        }
    }

    private func expectError(_ expected: HandshakeError, _ body: () throws -> Void, line: UInt = #line) {
        XCTAssertThrowsError(try body(), line: line) { XCTAssertEqual($0 as? HandshakeError, expected, line: line) }
    }

    func testSuccessfulHandshakeKeysMatch() throws {
        let sid = SessionID.random()
        let (msg, ini) = try initiate(sid: sid)
        XCTAssertEqual(msg.count, Handshake.initiationLength)
        XCTAssertEqual(msg[0], 1)

        let rx = try consume(msg)
        XCTAssertEqual(rx.peer, client.publicKey)
        XCTAssertEqual(rx.sessionID, sid)
        XCTAssertEqual(rx.timestamp, ts)
        XCTAssertEqual(rx.initiatorIndex, 7)
        XCTAssertEqual(rx.flags, 0)

        let (resp, serverKP) = try rx.makeResponse(localIndex: 99, now: 1000)
        XCTAssertEqual(resp.count, Handshake.responseLength)
        XCTAssertEqual(resp.withUnsafeBytes { Handshake.receiverIndex(ofResponse: $0) }, 7)
        let clientKP = try resp.withUnsafeBytes { try ini.consumeResponse($0, now: 2000) }

        XCTAssertEqual(clientKP.sendKeyBytes, serverKP.receiveKeyBytes)
        XCTAssertEqual(clientKP.receiveKeyBytes, serverKP.sendKeyBytes)
        XCTAssertNotEqual(clientKP.sendKeyBytes, clientKP.receiveKeyBytes)
        XCTAssertEqual(clientKP.localIndex, 7)
        XCTAssertEqual(clientKP.remoteIndex, 99)
        XCTAssertEqual(serverKP.localIndex, 99)
        XCTAssertEqual(serverKP.remoteIndex, 7)
        XCTAssertTrue(clientKP.isInitiator)
        XCTAssertFalse(serverKP.isInitiator)
        XCTAssertEqual(clientKP.createdAt, 2000)
        XCTAssertEqual(serverKP.createdAt, 1000)

        // Each state produces keys once.
        expectError(.alreadyConsumed) { _ = try resp.withUnsafeBytes { try ini.consumeResponse($0, now: 0) } }
        expectError(.alreadyConsumed) { _ = try rx.makeResponse(localIndex: 1, now: 0) }
    }

    func testFreshEphemeralsGiveFreshKeys() throws {
        let (m1, _) = try initiate()
        let (m2, _) = try initiate()
        XCTAssertNotEqual(m1, m2)
        let (_, k1) = try consume(m1).makeResponse(localIndex: 1, now: 0)
        let (_, k2) = try consume(m2).makeResponse(localIndex: 1, now: 0)
        XCTAssertNotEqual(k1.sendKeyBytes, k2.sendKeyBytes)
    }

    func testWrongResponderKeyIsRejected() throws {
        let other = PrivateKey.generate().publicKey
        let (msg, _) = try initiate(to: other)
        // mac1 is keyed by the responder's public key: the server does no DH for it.
        expectError(.badMAC) { _ = try consume(msg) }
    }

    func testUnauthorizedInitiatorGetsUnknownPeer() throws {
        let (msg, _) = try initiate()
        expectError(.unknownPeer) { _ = try consume(msg, authorized: [PrivateKey.generate().publicKey]) }
        expectError(.unknownPeer) { _ = try consume(msg, authorized: []) }
    }

    func testReplayedInitiationRejectedByGuard() throws {
        var guardian = InitiationReplayGuard()
        let (msg, _) = try initiate(ts: Timestamp12(unixNanoseconds: 5_000_000_000))
        let first = try consume(msg)
        XCTAssertTrue(guardian.accept(peer: first.peer, timestamp: first.timestamp))
        // The same bytes again still authenticate, but the guard refuses them.
        let replay = try consume(msg)
        XCTAssertFalse(guardian.accept(peer: replay.peer, timestamp: replay.timestamp))
        // An older one too.
        let (old, _) = try initiate(ts: Timestamp12(unixNanoseconds: 4_999_999_999))
        XCTAssertFalse(guardian.accept(peer: client.publicKey, timestamp: try consume(old).timestamp))
        // A newer one is fine; other peers are independent.
        let (newer, _) = try initiate(ts: Timestamp12(unixNanoseconds: 5_000_000_001))
        XCTAssertTrue(guardian.accept(peer: client.publicKey, timestamp: try consume(newer).timestamp))
        XCTAssertTrue(guardian.accept(peer: server.publicKey, timestamp: Timestamp12(unixNanoseconds: 1)))
        XCTAssertEqual(guardian.newestTimestamp(for: client.publicKey), Timestamp12(unixNanoseconds: 5_000_000_001))
    }

    func testTimestampOrderingAndEncoding() {
        let a = Timestamp12(unixNanoseconds: 1_999_999_999)
        let b = Timestamp12(unixNanoseconds: 2_000_000_000)
        XCTAssertLessThan(a, b)
        XCTAssertEqual(a.seconds, 0x4000_0000_0000_000a + 1)
        XCTAssertEqual(a.nanoseconds, 999_999_999)
        XCTAssertEqual(HexCodec.encode(b.bytes), "400000000000000c00000000")
        // Byte order equals time order.
        XCTAssertTrue(a.bytes.lexicographicallyPrecedes(b.bytes))
    }

    func testTamperedInitiationRejected() throws {
        let (msg, _) = try initiate()
        for i in 0..<Handshake.iMac2 {
            var t = msg
            t[i] ^= 0x01
            XCTAssertThrowsError(try consume(t), "byte \(i)")
        }
        // mac2 is outside the Noise transcript: the admission checks it, under load only.
        var m2 = msg
        m2[Handshake.iMac2 + 5] ^= 0x01
        XCTAssertNoThrow(try consume(m2))
        // Header and size.
        expectError(.wrongLength) { _ = try consume(Array(msg.dropLast())) }
        expectError(.wrongLength) { _ = try consume(msg + [0]) }
        expectError(.wrongLength) { _ = try consume([]) }
        var t = msg
        t[1] = 1
        expectError(.wrongType) { _ = try consume(t) }
    }

    func testTamperedMac1OnlyIsBadMAC() throws {
        let (msg, _) = try initiate()
        var t = msg
        t[Handshake.iMac1] ^= 0x80
        expectError(.badMAC) { _ = try consume(t) }
        // A body bit flipped (static field) with a recomputed mac1 gets through mac1 and fails AEAD.
        var u = msg
        u[Handshake.iStatic + 3] ^= 0x01
        u.withUnsafeMutableBytes { p in
            Handshake.computeMac1(p.baseAddress!, macOffset: Handshake.iMac1, receiver: server.publicKey,
                                  into: p.baseAddress! + Handshake.iMac1)
        }
        expectError(.decryptFailed) { _ = try consume(u) }
    }

    func testTamperedResponseRejectedAndStateSurvives() throws {
        let (msg, ini) = try initiate()
        let (resp, serverKP) = try consume(msg).makeResponse(localIndex: 42, now: 0)
        // The response's mac2 (76..<92) is ignored in this version.
        for i in 0..<(Handshake.rMac1 + 16) {
            var t = resp
            t[i] ^= 0x04
            XCTAssertThrowsError(try t.withUnsafeBytes { try ini.consumeResponse($0, now: 0) }, "byte \(i)")
        }
        XCTAssertEqual(Array(resp[(Handshake.rMac1 + 16)...]), [UInt8](repeating: 0, count: 16))
        expectError(.wrongLength) { _ = try Array(resp.dropLast()).withUnsafeBytes { try ini.consumeResponse($0, now: 0) } }
        var wrongIndex = resp
        wrongIndex[Handshake.rReceiver] ^= 0xff
        expectError(.wrongReceiver) { _ = try wrongIndex.withUnsafeBytes { try ini.consumeResponse($0, now: 0) } }
        // Forged responses did not spoil the state: the real one still completes.
        let kp = try resp.withUnsafeBytes { try ini.consumeResponse($0, now: 0) }
        XCTAssertEqual(kp.sendKeyBytes, serverKP.receiveKeyBytes)
    }

    func testResponseFromImpostorRejected() throws {
        // Someone who knows the client's public key but not the server's private key.
        let (msg, ini) = try initiate()
        let impostor = PrivateKey.generate()
        let forgedRx = try msg.withUnsafeBytes { (b: UnsafeRawBufferPointer) throws(HandshakeError) -> ReceivedInitiation? in
            // The impostor can't even pass mac1 (keyed to the real server key).
            do { return try Handshake.consumeInitiation(b, local: impostor, isAuthorized: { _ in true }) } catch { return nil }
        }
        XCTAssertNil(forgedRx)
        _ = ini
    }

    func testGarbageNeverCrashes() {
        var rng = SeededRandom(seed: 42)
        for _ in 0..<2000 {
            let len = Int(rng.next() % 200)
            var buf = [UInt8](repeating: 0, count: len)
            for i in 0..<len { buf[i] = UInt8(truncatingIfNeeded: rng.next()) }
            if len > 0 { buf[0] = UInt8(rng.next() % 3) }
            _ = try? consume(buf)
        }
    }

    func testLowOrderEphemeralRejected() throws {
        // An all-zero ephemeral (a low-order point) must be refused, not used.
        var (msg, _) = try initiate()
        for i in Handshake.iEphemeral..<(Handshake.iEphemeral + 32) { msg[i] = 0 }
        msg.withUnsafeMutableBytes { p in
            Handshake.computeMac1(p.baseAddress!, macOffset: Handshake.iMac1, receiver: server.publicKey,
                                  into: p.baseAddress! + Handshake.iMac1)
        }
        expectError(.badKey) { _ = try consume(msg) }
    }
}

