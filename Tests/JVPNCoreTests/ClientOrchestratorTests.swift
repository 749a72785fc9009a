import XCTest
@testable import JVPNCore

final class ClientOrchestratorTests: XCTestCase {
    func testHandshakeAttachesAndActivates() {
        let s = OrchestratorSim(policy: rigPolicy())
        XCTAssertEqual(s.o.state, .attached)
        XCTAssertEqual(s.o.active, 0)
        XCTAssertTrue(s.log.contains(.activate(path: 0)))
    }

    func testLinkDownSwitchesAtOnceWithRecoveryTime() {
        var s = OrchestratorSim(policy: rigPolicy())
        s.run(ms: 2_000)
        s.link(0, up: false)
        XCTAssertEqual(s.o.state, .recovering)
        XCTAssertEqual(s.reasons(to: .recovering), [.linkDown])
        s.run(ms: 100)
        XCTAssertEqual(s.o.state, .attached)
        XCTAssertEqual(s.o.active, 16)
        XCTAssertEqual(s.switchesLogged.count, 1)
        let sw = s.switchesLogged[0]
        XCTAssertEqual(sw.0, 0); XCTAssertEqual(sw.1, 16); XCTAssertEqual(sw.2, .linkDown)
        XCTAssertEqual(sw.3, 8, "recovery = one RTT of the new path")
        XCTAssertEqual(s.o.bindingVersion, 2)
    }

    func testBlackholeIsCaughtByProbeTimeout() {
        var s = OrchestratorSim(policy: rigPolicy())
        s.run(ms: 2_000)
        s.blackholed.insert(0)
        s.run(ms: 600)
        XCTAssertEqual(s.reasons(to: .recovering), [.probeTimeout])
        XCTAssertEqual(s.o.active, 16)
        XCTAssertEqual(s.switchesLogged.first?.2, .probeTimeout)
        XCTAssertLessThanOrEqual(s.switchesLogged.first?.3 ?? 9999, 100)
    }

    func testLossMakesVolatileThenSwitchesToCleanPath() {
        var s = OrchestratorSim(policy: rigPolicy())
        s.run(ms: 2_000)
        s.dropEvery[0] = 3 // ~33 % loss
        s.run(ms: 3_000)
        XCTAssertEqual(s.reasons(to: .volatile).first, .lossThreshold)
        XCTAssertEqual(s.o.active, 16)
        XCTAssertEqual(s.switchesLogged.first?.2, .betterPath)
    }

    func testAnOutageIsNotLossOnceThePathComesBack() {
        var s = OrchestratorSim(policy: rigPolicy())
        s.run(ms: 2_000)
        s.blackholed.insert(0)
        s.run(ms: 600)
        XCTAssertEqual(s.o.active, 16)
        s.blackholed.remove(0)
        s.run(ms: 400)
        XCTAssertEqual(s.o.lossPct(of: 0, nowMs: s.now), 0, "the probes lost while it was dead are not loss")
        s.run(ms: 1_600)
        XCTAssertEqual(s.o.active, 0, "back once stable for StableWindowMs")
        XCTAssertEqual(s.switchesLogged.map(\.2), [.probeTimeout, .betterPath])
    }

    func testPreemptsBackToPreferredOnceStable() {
        var s = OrchestratorSim(policy: rigPolicy())
        s.run(ms: 2_000)
        s.link(0, up: false)
        s.run(ms: 500)
        XCTAssertEqual(s.o.active, 16)
        s.link(0, up: true)
        s.run(ms: 500)
        XCTAssertEqual(s.o.active, 16, "not before StableWindowMs")
        s.run(ms: 1_500)
        XCTAssertEqual(s.o.active, 0)
        XCTAssertEqual(s.switchesLogged.last?.2, .betterPath)
        XCTAssertEqual(s.o.state, .attached)
    }

    /// A session that started on path 0 and failed over to 16 when 0's link went down.
    private func failedOverFromThePreferredUplink(pathIDs: [UInt32] = [0, 16]) -> OrchestratorSim {
        var s = OrchestratorSim(policy: rigPolicy(), pathIDs: pathIDs)
        s.run(ms: 1_000)
        s.link(0, up: false)
        s.run(ms: 500)
        XCTAssertEqual(s.o.active, 16)
        return s
    }

    /// The preferred path answers probes but every answer to a REATTACH there is lost (the gateway
    /// applies the move; its ACKs never arrive). The move is given up after its bound, the session
    /// confirms the path it is on (moving the gateway's binding back), and further tries wait a
    /// doubling backoff instead of retrying from RECOVERING for seconds.
    func testUnansweredMoveByPreferenceIsGivenUpAndTheWorkingPathConfirmed() {
        var s = failedOverFromThePreferredUplink()
        s.acksLostTo = [0]
        s.link(0, up: true)
        s.run(ms: 1_500)
        guard let startedAt = s.movesByPreference.first else { return XCTFail("no move by preference") }
        s.run(ms: startedAt + s.o.preferenceMoveGiveUpMs(to: 0) + 200 - s.now)
        XCTAssertTrue(s.gaveUpMove(to: 0))
        XCTAssertEqual(s.o.state, .attached)
        XCTAssertEqual(s.o.active, 16)
        XCTAssertTrue(s.o.bindingSettled)
        XCTAssertEqual(s.gateway.bound, 16, "the binding the unanswered move made is moved back")
        XCTAssertEqual(s.o.bindingVersion, s.gateway.version)
        XCTAssertEqual(s.switchesLogged.count, 1, "giving up is not a switch on the client")
        s.run(ms: 20_000)
        let moves = s.movesByPreference
        XCTAssertGreaterThanOrEqual(moves.count, 2, "tried again")
        XCTAssertLessThanOrEqual(moves.count, 4, "after backoffs of 2, 4 and 8 s")
        for (a, b) in zip(moves, moves.dropFirst()) {
            XCTAssertGreaterThanOrEqual(b - a, 1_000 + ClientOrchestrator.refusedMoveBackoffMs)
        }
        XCTAssertTrue(s.o.state == .attached || s.o.state == .recovering)
        s.acksLostTo = []
        s.run(ms: 40_000)
        XCTAssertEqual(s.o.active, 0, "moved once the answers came")
        XCTAssertEqual(s.o.bindingVersion, s.gateway.version)
    }

    /// The gateway's binding moved on without the client knowing (two moves whose ACKs it never
    /// saw): its move by preference is answered STALE_VERSION, and the resync's ACKs are lost. The
    /// resync is still a move by preference, given up within the bound counted from the move's
    /// start, not retried until MaxRecoveryWindowMs.
    func testAMoveByPreferenceResyncedAfterStaleVersionIsStillGivenUp() {
        var s = failedOverFromThePreferredUplink()
        let v = s.gateway.version
        let nonce = { (n: UInt64) in ControlNonce(prefix: 0xBAD, counter: n) }
        _ = s.gateway.receive(.reattachRequest(sessionID: GatewayModel.session, bindingVersion: v, pathID: 0, nonce: nonce(1), reason: .linkDown),
                              from: 0, nowMs: s.now)
        _ = s.gateway.receive(.reattachRequest(sessionID: GatewayModel.session, bindingVersion: v + 1, pathID: 16, nonce: nonce(2),
                                               reason: .linkDown), from: 16, nowMs: s.now)
        XCTAssertEqual(s.gateway.version, v + 2)
        s.acksLostTo = [0]
        s.link(0, up: true)
        s.run(ms: 1_500)
        guard let startedAt = s.movesByPreference.first else { return XCTFail("no move by preference") }
        XCTAssertGreaterThanOrEqual(s.reattachesSent.filter { $0.path == 0 }.map(\.nonce).count, 2, "resynced with a new nonce")
        s.run(ms: startedAt + s.o.preferenceMoveGiveUpMs(to: 0) + 200 - s.now)
        XCTAssertTrue(s.gaveUpMove(to: 0))
        XCTAssertEqual(s.o.state, .attached)
        XCTAssertEqual(s.o.active, 16)
        XCTAssertEqual(s.gateway.bound, 16)
        XCTAssertEqual(s.o.bindingVersion, s.gateway.version)
    }

    /// Moves by preference whose ACKs are always lost, for a minute: each one given up costs the
    /// gateway two switches (the move and the move back), which the client counts too, and such
    /// moves never take the minute's last switch, so a failover in that minute is still granted.
    func testUnansweredMovesByPreferenceLeaveTheGatewaysBudgetAFailover() {
        var s = failedOverFromThePreferredUplink(pathIDs: [0, 16, 32])
        s.acksLostTo = [0]
        s.link(0, up: true)
        s.run(ms: 40_000)
        XCTAssertGreaterThanOrEqual(s.gateway.applied, 5, "the gateway applied unanswered moves")
        XCTAssertLessThan(s.gateway.applied, s.o.policy.maxSwitchesPerMinute, "the last switch of the minute is left")
        XCTAssertEqual(s.o.active, 16)
        // Between two tries (not while one is in flight), both the preferred uplink and the one in
        // use fail: the session must move to the third.
        var waited = 0
        while s.o.attempt != nil || s.o.state != .attached, waited < 10_000 {
            s.run(ms: 10)
            waited += 10
        }
        XCTAssertNil(s.o.attempt)
        s.link(0, up: false)
        s.link(16, up: false)
        s.run(ms: 1_000)
        XCTAssertEqual(s.o.active, 32, "the failover is granted")
        XCTAssertEqual(s.gateway.bound, 32)
        XCTAssertEqual(s.o.state, .attached)
    }

    func testFlapping5HzStaysWithinBudgetAndEndsAttached() {
        var s = OrchestratorSim(policy: rigPolicy())
        s.run(ms: 2_000)
        for i in 0..<100 { // 20 s at 5 Hz
            s.link(0, up: i % 2 == 1)
            s.run(ms: 100)
            s.link(0, up: i % 2 == 0)
            s.run(ms: 100)
        }
        s.link(0, up: true)
        s.run(ms: 3_000)
        XCTAssertLessThanOrEqual(s.switchesLogged.count, s.o.policy.maxSwitchesPerMinute)
        XCTAssertEqual(s.o.state, .attached)
    }

    func testBothDownPastTransportLossTtlTerminatesAndAsksForRestart() {
        var s = OrchestratorSim(policy: rigPolicy())
        s.run(ms: 1_000)
        s.link(0, up: false)
        s.link(16, up: false)
        s.run(ms: 4_000)
        XCTAssertNotEqual(s.o.state, .terminated)
        s.run(ms: 1_500)
        XCTAssertEqual(s.o.state, .terminated)
        XCTAssertTrue(s.log.contains(.terminated(.transportLossTTLExpired, restart: true)))
        XCTAssertEqual(s.reasons(to: .degraded).first, .recoveryWindowExceeded)
    }

    func testSwitchBudgetLeadsToDegraded() {
        var p = rigPolicy()
        p.maxSwitchesPerMinute = 2
        var s = OrchestratorSim(policy: p)
        s.run(ms: 1_000)
        for _ in 0..<3 {
            s.link(s.o.active ?? 0, up: false)
            s.run(ms: 200)
            s.link(0, up: true); s.link(16, up: true)
            s.run(ms: 200)
        }
        XCTAssertLessThanOrEqual(s.switchesLogged.count, 2)
        XCTAssertTrue(s.reasons(to: .degraded).contains(.switchRateLimited))
    }

    /// The gateway's own budget (1 a minute here) is below the client's: the move back to the
    /// preferred uplink is refused RATE_LIMITED. The session stays on the path that works, ATTACHED
    /// again at once, asks again only after a doubling backoff, and moves once the gateway's minute
    /// has passed.
    func testMoveRefusedByTheGatewaysBudgetKeepsTheWorkingPath() {
        var s = OrchestratorSim(policy: rigPolicy())
        var gatewayPolicy = rigPolicy()
        gatewayPolicy.maxSwitchesPerMinute = 1
        s.gateway = GatewayModel(bound: 0, policy: gatewayPolicy, nowMs: s.now)
        s.run(ms: 1_000)
        s.link(0, up: false)
        s.run(ms: 500)
        XCTAssertEqual(s.o.active, 16)
        s.link(0, up: true)
        s.run(ms: 1_600)
        XCTAssertEqual(s.reasons(to: .degraded), [.switchRateLimited], "the preemption was refused")
        XCTAssertEqual(s.o.state, .attached)
        XCTAssertEqual(s.reasons(to: .attached).last, .stabilityRestored)
        XCTAssertTrue(s.o.bindingSettled)
        let refusedAt = s.log.compactMap { a -> UInt64? in if case .stateChanged(let c) = a, c.to == .degraded { return c.atMs }; return nil }.last ?? 0
        let attempts = s.reattachesSent.count
        s.run(ms: refusedAt + 1_900 - s.now)
        XCTAssertEqual(s.reattachesSent.count, attempts, "no new attempt within the first backoff")
        XCTAssertEqual(s.o.state, .attached)
        s.run(ms: 58_000 - (s.now - refusedAt))
        XCTAssertEqual(s.o.active, 16)
        XCTAssertLessThanOrEqual(s.reasons(to: .degraded).count, 5, "backoffs of 2, 4, 8, 16 and 32 s: at most 5 refusals a minute")
        XCTAssertTrue(s.reasons(to: .degraded).allSatisfy { $0 == .switchRateLimited })
        s.run(ms: 40_000)
        XCTAssertEqual(s.o.active, 0, "moved once the gateway's minute passed")
        XCTAssertEqual(s.o.state, .attached)
        XCTAssertEqual(s.o.bindingVersion, s.gateway.version)
    }

    func testSameFactsSameActions() {
        func script() -> [OrchestratorAction] {
            var s = OrchestratorSim(policy: rigPolicy())
            s.run(ms: 1_000); s.link(0, up: false); s.run(ms: 700); s.link(0, up: true)
            s.blackholed.insert(16); s.run(ms: 2_000); s.dropEvery[0] = 4; s.run(ms: 2_000)
            return s.log
        }
        let a = script(), b = script()
        XCTAssertEqual(a, b)
        XCTAssertGreaterThan(a.count, 50)
    }

    func testRankingIsDeterministic() {
        var o = ClientOrchestrator(policy: rigPolicy(), paths: [PathCandidate(id: 33, priority: 2), PathCandidate(id: 16, priority: 1),
                                                                  PathCandidate(id: 17, priority: 1), PathCandidate(id: 0, priority: 0)],
                                   noncePrefix: 1, nowMs: 0)
        XCTAssertEqual(o.ranked(nowMs: 10).map(\.id), [0, 16, 17, 33])
        _ = o.linkChanged(uplinkPriority: 0, up: false, nowMs: 20)
        XCTAssertEqual(o.ranked(nowMs: 20).map(\.id), [16, 17, 33])
    }

    func testQualityWindow() {
        var q = PathQuality()
        for i in 0..<10 { q.sent(seq: UInt32(i), atMs: UInt64(i * 100)) }
        for i in 0..<10 where i % 2 == 0 { q.replied(seq: UInt32(i), atMs: UInt64(i * 100 + 10 + i)) }
        XCTAssertEqual(q.lossPct(nowMs: 5_000, lateAfterMs: 200), 4.0 / 9 * 100, accuracy: 0.01, "the last probe is silence, not loss")
        XCTAssertEqual(q.rttMs, (10 + 12 + 14 + 16 + 18) / 5)
        XCTAssertEqual(q.jitterMs, 2)
        XCTAssertNil(q.replied(seq: 0, atMs: 6_000), "duplicate reply is ignored")
        XCTAssertFalse(q.isSilent(nowMs: 5_000, deadAfterMs: 300))
        q.sent(seq: 100, atMs: 6_000)
        XCTAssertFalse(q.isSilent(nowMs: 6_299, deadAfterMs: 300))
        XCTAssertTrue(q.isSilent(nowMs: 6_300, deadAfterMs: 300))
    }

    func testAPathThatCameBackStartsAFreshWindow() {
        var q = PathQuality()
        for i in 0..<10 { q.sent(seq: UInt32(i), atMs: UInt64(i * 100)) }
        for i in 0..<6 { q.replied(seq: UInt32(i), atMs: UInt64(i * 100 + 10)) } // then an outage: 6..9 silent
        q.sent(seq: 10, atMs: 1_000)
        let back = q.replied(seq: 10, atMs: 1_010)
        q.cameBack(sentMs: back ?? 0)
        XCTAssertEqual(q.samples(nowMs: 5_000, lateAfterMs: 200), 1, "only the comeback's answer: nothing from before")
        XCTAssertEqual(q.lossPct(nowMs: 5_000, lateAfterMs: 200), 0, "the outage is not loss")
        q.sent(seq: 11, atMs: 1_100) // lost
        q.sent(seq: 12, atMs: 1_200)
        q.replied(seq: 12, atMs: 1_210)
        XCTAssertEqual(q.samples(nowMs: 5_000, lateAfterMs: 200), 3)
        XCTAssertEqual(q.lossPct(nowMs: 5_000, lateAfterMs: 200), 100.0 / 3, accuracy: 0.01,
                       "loss after the comeback is not diluted by the answers from before")
    }

    func testClockReadingsOutOfOrderNeverTrap() {
        var o = ClientOrchestrator(policy: rigPolicy(), paths: [PathCandidate(id: 0, priority: 0), PathCandidate(id: 16, priority: 1)],
                                   noncePrefix: 1, nowMs: 5_000)
        _ = o.handshakeCompleted(path: 0, nowMs: 5_000)
        _ = o.tick(nowMs: 6_000)
        _ = o.linkChanged(uplinkPriority: 0, up: false, nowMs: 6_100)
        // an ACK whose clock was read on another thread just before the link-down was processed
        _ = o.reattachAcked(nonce: o.attempt?.nonce ?? .zero, bindingVersion: 2, nowMs: 6_050)
        _ = o.probeReplied(path: 16, seq: 1, nowMs: 100)
        _ = o.tick(nowMs: 0)
        XCTAssertEqual(elapsedMs(5, since: 9), 0)
        XCTAssertEqual(elapsedMs(9, since: 5), 4)
    }
}
