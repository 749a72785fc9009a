import XCTest
@testable import JVPNCore

final class StreamConnectorTests: XCTestCase {
    func testConnectsWhenWantedAndClosesWhenNot() {
        var c = StreamConnector()
        XCTAssertNil(c.tick(wanted: false, nowMs: 0))
        XCTAssertEqual(c.tick(wanted: true, nowMs: 10), .connect)
        XCTAssertNil(c.tick(wanted: true, nowMs: 20), "one attempt at a time")
        c.connected(nowMs: 30)
        XCTAssertTrue(c.isConnected)
        XCTAssertNil(c.tick(wanted: true, nowMs: 40))
        XCTAssertEqual(c.tick(wanted: false, nowMs: 50), .close)
        XCTAssertEqual(c.state, .idle)
        XCTAssertEqual(c.tick(wanted: true, nowMs: 60), .connect, "wanted again: at once")
    }

    func testFailuresBackOffExponentiallyUpToTheCap() {
        var c = StreamConnector()
        var now: UInt64 = 0
        var delays: [UInt64] = []
        XCTAssertEqual(c.tick(wanted: true, nowMs: now), .connect)
        for _ in 0..<8 {
            c.failed(nowMs: now)
            guard case .waiting(let until) = c.state else { return XCTFail("\(c.state)") }
            delays.append(until - now)
            XCTAssertNil(c.tick(wanted: true, nowMs: until - 1))
            now = until
            XCTAssertEqual(c.tick(wanted: true, nowMs: now), .connect)
        }
        XCTAssertEqual(delays, [1000, 2000, 4000, 8000, 16000, 16000, 16000, 16000])
    }

    func testAConnectThatHangsIsGivenUp() {
        var c = StreamConnector()
        XCTAssertEqual(c.tick(wanted: true, nowMs: 0), .connect)
        XCTAssertNil(c.tick(wanted: true, nowMs: StreamConnector.connectTimeoutMs - 1))
        XCTAssertEqual(c.tick(wanted: true, nowMs: StreamConnector.connectTimeoutMs), .close)
        XCTAssertEqual(c.state, .waiting(untilMs: StreamConnector.connectTimeoutMs + 1000))
    }

    func testALongLivedConnectionResetsTheBackoff() {
        var c = StreamConnector()
        _ = c.tick(wanted: true, nowMs: 0)
        c.failed(nowMs: 0)
        _ = c.tick(wanted: true, nowMs: 1000)
        c.failed(nowMs: 1000)
        XCTAssertEqual(c.failures, 2)
        _ = c.tick(wanted: true, nowMs: 3000)
        c.connected(nowMs: 3000)
        c.failed(nowMs: 3000 + StreamConnector.stableAfterMs)
        XCTAssertEqual(c.state, .waiting(untilMs: 3000 + StreamConnector.stableAfterMs + 1000), "back to the first delay")
        // Unwanted while waiting: idle, and no action.
        XCTAssertNil(c.tick(wanted: false, nowMs: 3000 + StreamConnector.stableAfterMs))
        XCTAssertEqual(c.state, .idle)
    }
}
