import XCTest
@testable import JVPNCore

final class KeyRingTests: XCTestCase {
    let sec = RekeyPolicy.second
    let client = PrivateKey.generate()
    let server = PrivateKey.generate()
    var nextIndex: UInt32 = 100

    /// One full handshake: returns (client keypair, server keypair).
    private func handshake(now: UInt64) throws -> (Keypair, Keypair) {
        nextIndex += 2
        let (msg, ini) = try Handshake.makeInitiation(local: client, remote: server.publicKey, sessionID: .random(),
                                                      localIndex: nextIndex,
                                                      timestamp: Timestamp12(unixNanoseconds: now + 1))
        let rx = try msg.withUnsafeBytes { try Handshake.consumeInitiation($0, local: server, isAuthorized: { _ in true }) }
        let (resp, s) = try rx.makeResponse(localIndex: nextIndex + 1, now: now)
        let c = try resp.withUnsafeBytes { try ini.consumeResponse($0, now: now) }
        return (c, s)
    }

    private let buf = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 16)
    override func tearDown() { buf.deallocate() }

    /// Seal with `from`, then let the receiver find the key in `ring` and open it.
    private func deliver(_ from: Keypair, to ring: KeyRing) -> Keypair? {
        let n = Frame.seal(type: .data, receiverIndex: from.remoteIndex, counter: from.nextCounter()!, key: from,
                           buffer: buf, plaintextLength: 10)
        guard let h = Frame.peekHeader(buf, length: n), let kp = ring.snapshot().lookup(localIndex: h.receiverIndex),
              Frame.open(header: h, key: kp, buffer: buf, length: n) != nil, kp.replay.update(h.counter) else { return nil }
        return kp
    }

    func testInitiatorRotationKeepsPreviousThenExpires() throws {
        let clientRing = KeyRing()
        let serverRing = KeyRing()
        let (c1, s1) = try handshake(now: 0)
        clientRing.install(c1, now: 0)
        serverRing.install(s1, now: 0)
        XCTAssertNil(serverRing.current)
        XCTAssertTrue(serverRing.next === s1)
        XCTAssertNil(serverRing.sendingKeypair(now: 0), "responder may not send before confirmation")

        // First client frame confirms the server's next.
        let got = try XCTUnwrap(deliver(c1, to: serverRing))
        XCTAssertTrue(serverRing.receivedAuthenticated(on: got, now: 1))
        XCTAssertTrue(serverRing.current === s1)
        XCTAssertNil(serverRing.next)
        XCTAssertFalse(serverRing.receivedAuthenticated(on: got, now: 1))

        // Rekey at 120 s (client initiated).
        XCTAssertFalse(clientRing.needsRekey(now: 119 * sec))
        XCTAssertTrue(clientRing.needsRekey(now: 120 * sec))
        XCTAssertFalse(serverRing.needsRekey(now: 120 * sec), "only the initiator rekeys on time")

        let (c2, s2) = try handshake(now: 120 * sec)
        clientRing.install(c2, now: 120 * sec)
        serverRing.install(s2, now: 120 * sec)
        XCTAssertTrue(clientRing.current === c2)
        XCTAssertTrue(clientRing.previous === c1)
        XCTAssertTrue(clientRing.sendingKeypair(now: 120 * sec) === c2)
        XCTAssertFalse(clientRing.needsRekey(now: 121 * sec))

        // In flight: the server still sends on s1 (its current) and the client still opens it.
        XCTAssertTrue(deliver(s1, to: clientRing) === c1)
        // Server still sends with s1 until c2 is confirmed; then it promotes s2.
        XCTAssertTrue(serverRing.sendingKeypair(now: 120 * sec) === s1)
        let got2 = try XCTUnwrap(deliver(c2, to: serverRing))
        XCTAssertTrue(serverRing.receivedAuthenticated(on: got2, now: 121 * sec))
        XCTAssertTrue(serverRing.current === s2)
        XCTAssertTrue(serverRing.previous === s1)
        // Late packet on the old key still opens at the server.
        XCTAssertTrue(deliver(c1, to: serverRing) === s1)

        // keepPreviousFor (10 s) later, previous is gone on both sides.
        XCTAssertTrue(clientRing.expire(now: 129 * sec).isEmpty)
        XCTAssertEqual(clientRing.expire(now: 130 * sec).map { $0.localIndex }, [c1.localIndex])
        XCTAssertNil(clientRing.previous)
        XCTAssertNil(deliver(s1, to: clientRing))
        serverRing.expire(now: 131 * sec)
        XCTAssertNil(serverRing.previous)
        XCTAssertNil(deliver(c1, to: serverRing))
        XCTAssertTrue(deliver(c2, to: serverRing) === s2)
    }

    /// Old keys must not linger in memory after the ring drops them (forward secrecy, and no
    /// growth over a long session): 50 rekeys leave only the ring's own keypairs alive.
    func testDroppedKeypairsAreReleased() throws {
        let ring = KeyRing()
        var released: [() -> Bool] = []
        var now: UInt64 = 1_000 * sec
        for _ in 0..<50 {
            try installWatched(ring, now: now, into: &released)
            now += ring.policy.rekeyAfterTime
            ring.expire(now: now)
        }
        XCTAssertNotNil(ring.current)
        XCTAssertNil(ring.previous)   // expired: kept only `keepPreviousFor`
        XCTAssertEqual(released.dropLast().filter { !$0() }.count, 0, "dropped keypairs still referenced")
        XCTAssertFalse(released.last!())
        ring.clear()
        XCTAssertTrue(released.last!())
    }

    /// In its own frame so that no local keeps the keypair alive.
    private func installWatched(_ ring: KeyRing, now: UInt64, into released: inout [() -> Bool]) throws {
        let (c, _) = try handshake(now: now)
        weak let w = c
        released.append { w == nil }
        ring.install(c, now: now)
    }

    func testEverythingExpiresAfterRejectAfterTime() throws {
        let ring = KeyRing()
        let (c1, _) = try handshake(now: 0)
        ring.install(c1, now: 0)
        XCTAssertTrue(ring.sendingKeypair(now: 179 * sec) === c1)
        XCTAssertNil(ring.sendingKeypair(now: 180 * sec))
        XCTAssertEqual(ring.expire(now: 180 * sec).count, 1)
        XCTAssertNil(ring.current)
        XCTAssertFalse(ring.needsRekey(now: 500 * sec))
        // Responder's unconfirmed next also expires.
        let sring = KeyRing()
        let (_, s1) = try handshake(now: 0)
        sring.install(s1, now: 0)
        sring.expire(now: 180 * sec)
        XCTAssertNil(sring.next)
    }

    func testRekeyOnMessageCount() throws {
        var policy = RekeyPolicy()
        policy.rekeyAfterMessages = 10
        let ring = KeyRing(policy: policy)
        let (_, s1) = try handshake(now: 0)
        ring.install(s1, now: 0)
        _ = ring.receivedAuthenticated(on: s1, now: 0)
        for _ in 0..<9 { _ = s1.nextCounter() }
        XCTAssertFalse(ring.needsRekey(now: 0))
        _ = s1.nextCounter()
        XCTAssertTrue(ring.needsRekey(now: 0), "responder rekeys on message count too")
        s1.sendCounter.pointee.store(MessageLimits.rejectAfterMessages, ordering: .relaxed)
        XCTAssertNil(ring.sendingKeypair(now: 0))
    }

    func testResponderNewerNextReplacesUnconfirmed() throws {
        let ring = KeyRing()
        let (_, s1) = try handshake(now: 0)
        let (_, s2) = try handshake(now: 1)
        ring.install(s1, now: 0)
        ring.install(s2, now: 1)
        XCTAssertTrue(ring.next === s2)
        XCTAssertNil(ring.lookup(localIndex: s1.localIndex))
        XCTAssertTrue(ring.lookup(localIndex: s2.localIndex) === s2)
    }

    func testInitiatorInstallWithPendingNextKeepsNextAsPrevious() throws {
        // Both sides initiated at once: we answered theirs (next) and then got our own response.
        let ring = KeyRing()
        let (c0, _) = try handshake(now: 0)
        ring.install(c0, now: 0)
        let (_, asResponder) = try handshake(now: 1)
        ring.install(asResponder, now: 1)
        let (c1, _) = try handshake(now: 2)
        ring.install(c1, now: 2)
        XCTAssertTrue(ring.current === c1)
        XCTAssertTrue(ring.previous === asResponder)
        XCTAssertNil(ring.next)
    }

    func testSnapshotLookupAndClear() throws {
        let ring = KeyRing()
        let (c1, _) = try handshake(now: 0)
        let (c2, _) = try handshake(now: 1)
        ring.install(c1, now: 0)
        ring.install(c2, now: 1)
        let snap = ring.snapshot()
        XCTAssertTrue(snap.lookup(localIndex: c1.localIndex) === c1)
        XCTAssertTrue(snap.lookup(localIndex: c2.localIndex) === c2)
        XCTAssertNil(snap.lookup(localIndex: 0xdead))
        XCTAssertEqual(ring.clear().count, 2)
        XCTAssertNil(ring.current)
        // The snapshot taken before still holds valid keypairs.
        XCTAssertTrue(snap.current === c2)
    }

    /// The lock-free "may expire" answer a timer over many rings relies on: whenever `expire` would
    /// drop something, `mayExpire` said so (never late), over random installs, confirmations and
    /// expiries of both roles; and it is not always true.
    func testMayExpireIsNeverLate() throws {
        var rng = SeededRandom(seed: 7)
        var checks = 0, quiet = 0, drops = 0
        for _ in 0..<20 {
            let ring = KeyRing()
            var now: UInt64 = 0
            for _ in 0..<30 {
                now += (rng.next() % 40) * sec
                switch rng.next() % 4 {
                case 0:
                    let (c, s) = try handshake(now: now)
                    ring.install(rng.next() % 2 == 0 ? c : s, now: now)
                case 1:
                    if let n = ring.next { ring.receivedAuthenticated(on: n, now: now) }
                case 2:
                    if rng.next() % 8 == 0 { ring.clear() }
                default:
                    break
                }
                // Expire at a random later time: whatever it drops, mayExpire announced.
                now += [0, sec, 10 * sec, 11 * sec, 181 * sec][Int(rng.next() % 5)]
                let may = ring.mayExpire(now: now)
                let dropped = ring.expire(now: now)
                if !dropped.isEmpty {
                    XCTAssertTrue(may, "expire at \(now) dropped \(dropped.count) keys but mayExpire said no")
                    drops += 1
                }
                if !may { quiet += 1 }
                checks += 1
            }
        }
        XCTAssertEqual(checks, 600)
        XCTAssertGreaterThan(drops, 50)
        XCTAssertGreaterThan(quiet, 100, "mayExpire must not simply always be true")
    }
}
