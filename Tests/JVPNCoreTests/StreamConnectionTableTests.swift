import XCTest
@testable import JVPNCore

final class StreamConnectionTableTests: XCTestCase {
    private func limits(unauthenticated: Int = 4, perSource: Int = 2, perPeer: Int = 2) -> StreamConnectionTable.Limits {
        var l = StreamConnectionTable.Limits()
        l.maxUnauthenticated = unauthenticated
        l.perSourceUnauthenticated = perSource
        l.perPeer = perPeer
        return l
    }

    private func admitted(_ d: StreamConnectionTable.AcceptDecision, file: StaticString = #filePath, line: UInt = #line) -> StreamConnectionTable.ID? {
        guard case .admit(let id, _) = d else { XCTFail("refused: \(d)", file: file, line: line); return nil }
        return id
    }

    func testPerSourceLimitRefusesOnlyThatSource() throws {
        var t = StreamConnectionTable(peerCount: 1, limits: limits())
        let a: IPAddress = .v4(0x0a00_0001), b: IPAddress = .v4(0x0a00_0002)
        XCTAssertNotNil(admitted(t.accept(source: a, nowMs: 0)))
        XCTAssertNotNil(admitted(t.accept(source: a, nowMs: 1)))
        XCTAssertEqual(t.accept(source: a, nowMs: 2), .refuse(.sourceLimit))
        XCTAssertNotNil(admitted(t.accept(source: b, nowMs: 3)), "another source is not affected")
        XCTAssertEqual(t.counters.refusedSourceLimit, 1)
        // IPv6 counts by /64: two addresses of one prefix share the limit.
        let v6a: IPAddress = .v6(0x2001_0db8_0000_0001, 1), v6b: IPAddress = .v6(0x2001_0db8_0000_0001, 2)
        var u = StreamConnectionTable(peerCount: 1, limits: limits())
        XCTAssertNotNil(admitted(u.accept(source: v6a, nowMs: 0)))
        XCTAssertNotNil(admitted(u.accept(source: v6b, nowMs: 0)))
        XCTAssertEqual(u.accept(source: .v6(0x2001_0db8_0000_0001, 3), nowMs: 0), .refuse(.sourceLimit))
    }

    func testAFullTableEvictsTheOldestUnauthenticatedAndNeverAnAuthenticatedOne() throws {
        var t = StreamConnectionTable(peerCount: 2, limits: limits(unauthenticated: 3, perSource: 10))
        let src: IPAddress = .v4(0x0a00_0001)
        let first = try XCTUnwrap(admitted(t.accept(source: src, nowMs: 0)))
        _ = t.authenticated(first, peer: 0, nowMs: 5)
        var opened: [StreamConnectionTable.ID] = []
        for i in 1...3 { opened.append(try XCTUnwrap(admitted(t.accept(source: src, nowMs: UInt64(i))))) }
        XCTAssertEqual(t.unauthenticated, 3)
        guard case .admit(let fresh, let evicting) = t.accept(source: src, nowMs: 10) else { return XCTFail() }
        XCTAssertEqual(evicting, opened[0], "the oldest unauthenticated goes")
        XCTAssertFalse(t.isOpen(opened[0]))
        XCTAssertTrue(t.isOpen(first), "the authenticated one stays")
        XCTAssertTrue(t.isOpen(fresh))
        XCTAssertEqual(t.unauthenticated, 3)
        XCTAssertEqual(t.counters.evicted, 1)
        // A flood of 10,000 more never grows the table.
        for i in 0..<10_000 { _ = t.accept(source: .v4(UInt32(0x0b00_0000 + i)), nowMs: 20 + UInt64(i)) }
        XCTAssertEqual(t.unauthenticated, 3)
        XCTAssertTrue(t.isOpen(first))
        XCTAssertEqual(t.capacity, 3 + 2 * 2)
    }

    func testSlotsAreReusedWithANewGeneration() throws {
        var t = StreamConnectionTable(peerCount: 0, limits: limits(unauthenticated: 1, perSource: 5))
        let a = try XCTUnwrap(admitted(t.accept(source: .v4(1), nowMs: 0)))
        t.closed(a)
        let b = try XCTUnwrap(admitted(t.accept(source: .v4(1), nowMs: 1)))
        XCTAssertEqual(a.slot, b.slot)
        XCTAssertNotEqual(a, b)
        XCTAssertFalse(t.isOpen(a))
        t.closed(a) // a stale id changes nothing
        XCTAssertTrue(t.isOpen(b))
        XCTAssertEqual(t.authenticated(a, peer: 0, nowMs: 2), [])
        XCTAssertNil(t.peer(of: b))
    }

    func testUnauthenticatedTimeoutIsFromOpeningAndIdleIsFromTheLastFrame() throws {
        var t = StreamConnectionTable(peerCount: 1, limits: limits(perSource: 5))
        let silent = try XCTUnwrap(admitted(t.accept(source: .v4(1), nowMs: 0)))
        let chatty = try XCTUnwrap(admitted(t.accept(source: .v4(1), nowMs: 0)))
        let good = try XCTUnwrap(admitted(t.accept(source: .v4(1), nowMs: 0)))
        _ = t.authenticated(good, peer: 0, nowMs: 100)
        // Junk frames on an unauthenticated connection do not keep it.
        for ms in stride(from: 0, to: 5000, by: 500) { t.heard(chatty, nowMs: UInt64(ms)) }
        XCTAssertTrue(t.expire(nowMs: 4999).isEmpty)
        let expired = t.expire(nowMs: 5000)
        XCTAssertEqual(Set(expired.map(\.0)), [silent, chatty])
        XCTAssertTrue(expired.allSatisfy { $0.1 == .unauthenticatedTimeout })
        XCTAssertTrue(t.isOpen(good))
        t.heard(good, nowMs: 30_000)
        XCTAssertTrue(t.expire(nowMs: 89_999).isEmpty)
        XCTAssertEqual(t.expire(nowMs: 90_000).map(\.1), [.idle])
        XCTAssertEqual(t.counters.unauthenticatedTimeouts, 2)
        XCTAssertEqual(t.counters.idleTimeouts, 1)
        XCTAssertEqual(t.unauthenticated + t.authenticatedCount, 0)
    }

    func testAPeerKeepsItsNewestConnections() throws {
        var t = StreamConnectionTable(peerCount: 2, limits: limits(perSource: 10))
        var ids: [StreamConnectionTable.ID] = []
        for i in 0..<3 {
            let id = try XCTUnwrap(admitted(t.accept(source: .v4(1), nowMs: UInt64(i))))
            ids.append(id)
        }
        XCTAssertEqual(t.authenticated(ids[0], peer: 0, nowMs: 10), [])
        XCTAssertEqual(t.authenticated(ids[1], peer: 0, nowMs: 20), [])
        XCTAssertEqual(t.authenticated(ids[1], peer: 0, nowMs: 25), [], "again: nothing changes")
        XCTAssertEqual(t.authenticated(ids[2], peer: 0, nowMs: 30), [ids[0]], "beyond perPeer the least recently heard goes")
        XCTAssertEqual(t.peer(of: ids[2]), 0)
        XCTAssertEqual(t.authenticatedCount, 2)
        XCTAssertEqual(t.counters.peerLimitCloses, 1)
        // Another peer's connections do not count.
        let other = try XCTUnwrap(admitted(t.accept(source: .v4(1), nowMs: 40)))
        XCTAssertEqual(t.authenticated(other, peer: 1, nowMs: 41), [])
    }

    func testPeersAddedByAReloadGetRoom() throws {
        var t = StreamConnectionTable(peerCount: 1, limits: limits(unauthenticated: 1, perSource: 10))
        XCTAssertEqual(t.capacity, 1 + 2)
        t.grow(toPeers: 3)
        XCTAssertEqual(t.capacity, 1 + 3 * 2)
        t.grow(toPeers: 2)
        XCTAssertEqual(t.capacity, 1 + 3 * 2, "never shrinks")
        // Every peer can hold perPeer authenticated connections while one unauthenticated waits.
        for peer in 0..<3 {
            for k in 0..<2 {
                let id = try XCTUnwrap(admitted(t.accept(source: .v4(UInt32(peer)), nowMs: UInt64(peer * 10 + k))))
                XCTAssertEqual(t.authenticated(id, peer: peer, nowMs: UInt64(peer * 10 + k)), [])
            }
        }
        XCTAssertNotNil(admitted(t.accept(source: .v4(9), nowMs: 100)))
        XCTAssertEqual(t.authenticatedCount, 6)
    }
}
