import XCTest
@testable import JVPNCore

/// Back to the preferred gateway of a cluster (the first `Endpoint`), by the uplinks' policy:
/// `PreemptToPreferred`, `StableWindowMs`, the switch budget, reason BETTER_PATH. Driven with
/// ClientResumeTests' driver: paths 0 and 16 lead to gateway 0, 1 and 17 to gateway 1.
final class GatewayPreemptionTests: XCTestCase {
    typealias Driver = ClientResumeTests.Driver

    var policy: PolicyConfig {
        var p = PolicyConfig()
        p.probeIntervalMs = 100
        p.standbyProbeIntervalMs = 1000
        p.deadAfterMs = 500
        p.stableWindowMs = 3000
        p.switchCooldownMs = 1000
        return p
    }

    /// Gateway 0 fails, the session resumes on gateway 1 (answered at once) and is confirmed there.
    /// Returns the time of the confirmation.
    func failOver(_ d: inout Driver) -> UInt64? {
        d.run(ms: 3000)
        d.alive.remove(0)
        d.run(ms: 700)
        guard let (_, p1) = d.resumes.last, Driver.gateway(of: p1) == 1 else { XCTFail("no resume onto gateway 1"); return nil }
        d.perform(d.o.handshakeCompleted(path: p1, nowMs: d.now))
        guard let (_, _, n1) = d.reattaches.last else { XCTFail("no REATTACH after the resume"); return nil }
        d.perform(d.o.reattachAcked(nonce: n1, bindingVersion: 1 << 32 | 1, nowMs: d.now))
        XCTAssertEqual(d.o.activeGateway, 1)
        XCTAssertEqual(d.o.state, .attached)
        return d.now
    }

    func preemptions(_ d: Driver, since t: UInt64) -> [(UInt64, UInt32)] {
        d.sent { if case .sendResume(let p, let r) = $0, r == .betterPath { return p }; return nil }.filter { $0.0 > t }
    }

    func testReturnsToThePreferredGatewayOnceStable() {
        var d = Driver(policy: policy)
        guard let confirmed = failOver(&d) else { return }
        d.alive = [0, 1]
        d.run(ms: policy.stableWindowMs - 100)
        XCTAssertEqual(preemptions(d, since: confirmed).count, 0, "not before the session is stable on gateway 1")
        d.run(ms: 500)
        guard let (at, path) = preemptions(d, since: confirmed).first else { return XCTFail("no preemption: \(d.log.suffix(8))") }
        XCTAssertEqual(path, 0, "gateway 0 on the preferred uplink")
        XCTAssertGreaterThanOrEqual(at - confirmed, policy.stableWindowMs)
        XCTAssertEqual(d.o.state, .attached, "a preemption in flight changes nothing")
        XCTAssertEqual(d.o.activeGateway, 1)

        // Gateway 0 answers: it owns the session now; the client follows with a REATTACH there.
        let states = d.sent { if case .stateChanged(let c) = $0 { return c }; return nil }.count
        d.perform(d.o.handshakeCompleted(path: 0, nowMs: d.now))
        let change = d.sent { if case .stateChanged(let c) = $0 { return c }; return nil }.dropFirst(states).first?.1
        XCTAssertEqual(change?.to, .recovering)
        XCTAssertEqual(change?.reason, .betterPath)
        XCTAssertEqual(d.o.activeGateway, 0)
        guard let (_, rpath, nonce) = d.reattaches.last, rpath == 0 else { return XCTFail("no REATTACH on path 0") }
        d.perform(d.o.reattachAcked(nonce: nonce, bindingVersion: 2 << 32 | 1, nowMs: d.now + 1))
        XCTAssertEqual(d.o.state, .attached)
        XCTAssertEqual(d.o.active, 0)
        let last = d.sent { if case .switched(let f, let t, let r, _) = $0 { return (f, t, r) }; return nil }.last?.1
        XCTAssertEqual(last?.0, 1)
        XCTAssertEqual(last?.1, 0)
        XCTAssertEqual(last?.2, .betterPath)
        // On the preferred gateway: nothing more to preempt.
        let sentBefore = d.resumes.count
        d.run(ms: 10_000)
        XCTAssertEqual(d.resumes.count, sentBefore)
        XCTAssertEqual(d.o.state, .attached)
    }

    /// The preferred gateway stays dead: a resume towards it once per StableWindowMs, never answered,
    /// and the session on gateway 1 never leaves ATTACHED.
    func testUnansweredPreemptionCostsNothing() {
        var d = Driver(policy: policy)
        guard let confirmed = failOver(&d) else { return }
        let states = d.sent { if case .stateChanged(let c) = $0 { return c }; return nil }.count
        d.run(ms: 20_000)
        let tries = preemptions(d, since: confirmed)
        XCTAssertGreaterThanOrEqual(tries.count, 4)
        XCTAssertLessThanOrEqual(tries.count, 7, "at most one per StableWindowMs")
        for (a, b) in zip(tries, tries.dropFirst()) { XCTAssertGreaterThanOrEqual(b.0 - a.0, policy.stableWindowMs) }
        XCTAssertTrue(tries.allSatisfy { Driver.gateway(of: $0.1) == 0 })
        XCTAssertEqual(d.sent { if case .stateChanged(let c) = $0 { return c }; return nil }.count, states, "no state change")
        XCTAssertEqual(d.o.state, .attached)
        XCTAssertEqual(d.o.active, 1)
    }

    func testNoPreemptionWithoutPreemptToPreferred() {
        var p = policy
        p.preemptToPreferred = false
        var d = Driver(policy: p)
        guard let confirmed = failOver(&d) else { return }
        d.alive = [0, 1]
        d.run(ms: 15_000)
        XCTAssertEqual(preemptions(d, since: confirmed).count, 0)
        XCTAssertEqual(d.o.activeGateway, 1)
    }

    /// Keys in use come first: a rekey replaces a preemption in flight, and the handshake that
    /// completes then is the rekey (the session stays on gateway 1).
    func testRekeyReplacesAPreemptionInFlight() {
        var d = Driver(policy: policy)
        guard let confirmed = failOver(&d) else { return }
        d.run(ms: policy.stableWindowMs + 200)
        XCTAssertEqual(preemptions(d, since: confirmed).count, 1)
        let rekey = d.o.keysNeedRenewing(nowMs: d.now)
        XCTAssertEqual(rekey, [.sendInitiation(path: 1)])
        d.perform(rekey)
        d.perform(d.o.handshakeCompleted(path: 1, nowMs: d.now + 2))
        XCTAssertEqual(d.o.state, .attached)
        XCTAssertEqual(d.o.activeGateway, 1)
        XCTAssertEqual(d.o.active, 1)
    }

    /// Gateway 1 fails while a preemption towards gateway 0 is in flight: the preemption becomes
    /// the recovery's resume, and gateway 0's answer completes the recovery (PROBE_TIMEOUT).
    func testPreemptionInFlightBecomesTheRecoverysResume() {
        var d = Driver(policy: policy)
        guard let confirmed = failOver(&d) else { return }
        d.alive = [0, 1]
        d.run(ms: policy.stableWindowMs + 200)
        guard let (_, p0) = preemptions(d, since: confirmed).first else { return XCTFail("no preemption") }
        d.alive = [0]
        d.run(ms: 700)
        XCTAssertEqual(d.o.state, .recovering)
        XCTAssertTrue(d.o.wantsConnection(path: 17), "a recovery's resume: connections to every gateway")
        d.perform(d.o.handshakeCompleted(path: p0, nowMs: d.now))
        guard let (_, rpath, nonce) = d.reattaches.last, rpath == p0 else { return XCTFail("no REATTACH on \(p0)") }
        d.perform(d.o.reattachAcked(nonce: nonce, bindingVersion: 2 << 32 | 1, nowMs: d.now + 1))
        XCTAssertEqual(d.o.activeGateway, 0)
        let last = d.sent { if case .switched(_, _, let r, _) = $0 { return r }; return nil }.last?.1
        XCTAssertEqual(last, .probeTimeout)
    }
}
