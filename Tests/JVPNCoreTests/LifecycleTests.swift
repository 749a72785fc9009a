import XCTest
@testable import JVPNCore

final class LifecycleTests: XCTestCase {
    func testEveryPairFollowsTheContractTable() {
        let allowed: Set<String> = [
            "BIRTH>ATTACHED", "ATTACHED>VOLATILE", "VOLATILE>ATTACHED",
            "ATTACHED>RECOVERING", "VOLATILE>RECOVERING", "DEGRADED>RECOVERING",
            "RECOVERING>ATTACHED", "RECOVERING>DEGRADED", "VOLATILE>DEGRADED", "DEGRADED>ATTACHED",
            "BIRTH>TERMINATED", "ATTACHED>TERMINATED", "VOLATILE>TERMINATED", "RECOVERING>TERMINATED", "DEGRADED>TERMINATED",
        ]
        for from in SessionState.allCases {
            for to in SessionState.allCases {
                XCTAssertEqual(SessionStateMachine.isAllowed(from: from, to: to), allowed.contains("\(from.rawValue)>\(to.rawValue)"),
                               "\(from) -> \(to)")
            }
        }
    }

    func testRejectedTransitionIsAuditedAndChangesNothing() {
        var m = SessionStateMachine()
        guard case .applied(let c) = m.transition(to: .attached, reason: .handshakeOK, now: 5) else { return XCTFail() }
        XCTAssertEqual(c.stateVersion, 1)
        guard case .rejected(let audit) = m.transition(to: .birth, reason: .handshakeOK, now: 6) else { return XCTFail() }
        XCTAssertEqual(audit.check, "transition")
        XCTAssertEqual(audit.result, "fail")
        XCTAssertEqual(m.state, .attached)
        XCTAssertEqual(m.stateVersion, 1)
        _ = m.transition(to: .terminated, reason: .operatorRequest, now: 7)
        guard case .rejected = m.transition(to: .attached, reason: .stabilityRestored, now: 8) else { return XCTFail("TERMINATED is final") }
        XCTAssertEqual(m.stateVersion, 2)
    }

    func testEventJSONRoundTripAndEscaping() {
        var e = SessionEvent(timestampMs: 1_795_000_000_123, kind: .audit, side: "server", session: "9f3c", peer: "k+/=")
        e.check = "transition"
        e.result = "fail"
        e.detail = "quote \" backslash \\ newline \n tab \t ctl \u{01} é"
        let line = e.jsonLine()
        XCTAssertFalse(line.contains("\n"))
        let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
        XCTAssertEqual(obj?["detail"] as? String, e.detail)
        XCTAssertEqual(obj?["event"] as? String, "AUDIT_EVENT")
        XCTAssertEqual(SessionEvent(jsonLine: line), e)

        var s = SessionEvent(timestampMs: 0, kind: .transportSwitch, side: "client", session: "ab", peer: "p")
        s.fromPath = "up0/10.201.0.2:4000->10.203.0.1:51820"
        s.toPath = "up1/10.202.0.2:4001->10.203.0.1:51820"
        s.reason = "LINK_DOWN"
        s.recoveryMs = 41
        XCTAssertEqual(SessionEvent(jsonLine: s.jsonLine()), s)
        XCTAssertNil(SessionEvent(jsonLine: "{\"ts\":\"garbage\",\"event\":\"STATE_CHANGE\"}"))
        XCTAssertNil(SessionEvent(jsonLine: "not json"))
    }

    func testRFC3339() {
        XCTAssertEqual(SessionEvent.rfc3339(0), "1970-01-01T00:00:00.000Z")
        XCTAssertEqual(SessionEvent.rfc3339(951_782_400_007), "2000-02-29T00:00:00.007Z")
        XCTAssertEqual(SessionEvent.rfc3339(1_795_394_096_789), "2026-11-23T00:34:56.789Z")
        for ms: UInt64 in [0, 1, 951_782_400_007, 1_795_394_096_789, 4_102_444_800_000] {
            XCTAssertEqual(SessionEvent.parseRFC3339(SessionEvent.rfc3339(ms)), ms)
        }
        XCTAssertNil(SessionEvent.parseRFC3339("2026-13-01T00:00:00Z"))
    }

    func testTokenBucket() {
        var b = TokenBucket(capacity: 2, refillPerSecond: 1, nowMs: 1000)
        XCTAssertTrue(b.take(nowMs: 1000))
        XCTAssertTrue(b.take(nowMs: 1000))
        XCTAssertFalse(b.take(nowMs: 1000))
        XCTAssertFalse(b.take(nowMs: 1500))
        XCTAssertTrue(b.take(nowMs: 2000))
        XCTAssertTrue(b.take(nowMs: 60_000))
        XCTAssertTrue(b.take(nowMs: 60_000))
        XCTAssertFalse(b.take(nowMs: 60_000), "capacity caps the refill")
    }
}
