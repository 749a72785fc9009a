import XCTest
@testable import JVPNCore

final class SessionTableTests: XCTestCase {
    private let sid = SessionID.random()

    private func table() -> SessionTable<String, String> {
        var t = SessionTable<String, String>(maxSwitchesPerMinute: 3, nowMs: 0)
        XCTAssertNil(t.open(sid, owner: "alice", path: "A", nowMs: 0))
        return t
    }

    func testValidationOrderAndNoChangeOnReject() {
        var t = table()
        let other = SessionID.random()
        XCTAssertEqual(t.validateReattach(other, proofValid: true, fresh: true, expectedVersion: 1, newPath: "B", nowMs: 1), .failure(.init(.unknownSession)))
        // proof is checked before freshness and version
        XCTAssertEqual(t.validateReattach(sid, proofValid: false, fresh: false, expectedVersion: 9, newPath: "B", nowMs: 1), .failure(.init(.invalidProof)))
        XCTAssertEqual(t.validateReattach(sid, proofValid: true, fresh: false, expectedVersion: 9, newPath: "B", nowMs: 1), .failure(.init(.replayDetected)))
        XCTAssertEqual(t.validateReattach(sid, proofValid: true, fresh: true, expectedVersion: 9, newPath: "B", nowMs: 1), .failure(.init(.staleVersion)))
        XCTAssertEqual(t.entry(sid)?.path, "A")
        XCTAssertEqual(t.entry(sid)?.bindingVersion, 1)
        XCTAssertEqual(t.validateReattach(sid, proofValid: true, fresh: true, expectedVersion: 1, newPath: "B", nowMs: 1), .success(2))
        XCTAssertEqual(t.entry(sid)?.path, "B")
    }

    func testTwoRacingRequestsExactlyOneWins() {
        var t = table()
        let a = t.validateReattach(sid, proofValid: true, fresh: true, expectedVersion: 1, newPath: "B", nowMs: 5)
        let b = t.validateReattach(sid, proofValid: true, fresh: true, expectedVersion: 1, newPath: "C", nowMs: 5)
        XCTAssertEqual(a, .success(2))
        XCTAssertEqual(b, .failure(.init(.staleVersion)))
        XCTAssertEqual(t.entry(sid)?.path, "B")
    }

    func testRateLimitAndTermination() {
        var t = table()
        var version: UInt64 = 1
        var results: [Result<UInt64, ReattachRejection>] = []
        for i in 0..<8 {
            let r = t.validateReattach(sid, proofValid: true, fresh: true, expectedVersion: version, newPath: "P\(i)", nowMs: 10)
            if case .success(let v) = r { version = v }
            results.append(r)
        }
        XCTAssertEqual(results.filter { if case .success = $0 { return true }; return false }.count, 5, "3/min + burst of 2")
        XCTAssertEqual(results.last, .failure(.init(.rateLimited)))
        t.terminate(sid)
        XCTAssertEqual(t.validateReattach(sid, proofValid: true, fresh: true, expectedVersion: version, newPath: "Z", nowMs: 999_999),
                       .failure(.init(.unknownSession)))
    }

    func testSingleOwnerANewSessionEndsThePreviousOne() {
        var t = table()
        let second = SessionID.random()
        XCTAssertEqual(t.open(second, owner: "alice", path: "B", nowMs: 1), sid)
        XCTAssertNil(t.entry(sid), "the previous session is gone")
        XCTAssertEqual(t.session(ownedBy: "alice"), second)
        XCTAssertEqual(t.entry(second)?.bindingVersion, 1)
    }
}
