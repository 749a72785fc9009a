import XCTest
@testable import JVPNCore

/// The client's part of the REATTACH, PATH_CHALLENGE and handshake exchanges (spec/exchanges.md),
/// driven fact by fact, and the "never wedged" scenarios through the simulation.
final class ClientReattachTests: XCTestCase {
    private let paths = [PathCandidate(id: 0, priority: 0), PathCandidate(id: 16, priority: 1), PathCandidate(id: 32, priority: 2)]

    /// Attached on path 0 at t=1000, every path answered a probe.
    private func attached(_ policy: PolicyConfig = rigPolicy()) -> ClientOrchestrator {
        var o = ClientOrchestrator(policy: policy, paths: paths, noncePrefix: 0xAB, nowMs: 1_000)
        _ = o.handshakeCompleted(path: 0, nowMs: 1_000)
        for a in o.tick(nowMs: 1_000) {
            if case .sendProbe(let p, let seq) = a { _ = o.probeReplied(path: p, seq: seq, nowMs: 1_005) }
        }
        return o
    }

    /// A tick on a network where every path that is up answers its probes at once.
    private func tickAnswered(_ o: inout ClientOrchestrator, _ t: UInt64) -> [OrchestratorAction] {
        let out = o.tick(nowMs: t)
        for a in out {
            if case .sendProbe(let p, let seq) = a, o.paths.first(where: { $0.id == p })?.linkUp == true {
                _ = o.probeReplied(path: p, seq: seq, nowMs: t)
            }
        }
        return out
    }

    private func reattaches(_ actions: [OrchestratorAction]) -> [(path: UInt32, version: UInt64, nonce: ControlNonce)] {
        actions.compactMap { if case .sendReattach(let p, _, let v, let n) = $0 { return (p, v, n) }; return nil }
    }

    private func initiations(_ actions: [OrchestratorAction]) -> [UInt32] {
        actions.compactMap { if case .sendInitiation(let p) = $0 { return p }; return nil }
    }

    // MARK: REATTACH

    func testAckLostRetryRepeatsTheSameAttempt() {
        var o = attached()
        let first = reattaches(o.linkChanged(uplinkPriority: 0, up: false, nowMs: 1_010))
        XCTAssertEqual(first.count, 1)
        XCTAssertEqual(first[0].path, 16)
        XCTAssertEqual(first[0].version, 1)
        XCTAssertTrue(reattaches(o.tick(nowMs: 1_010 + o.reattachRetryMs - 1)).isEmpty, "not before the retry interval")
        let retry = reattaches(o.tick(nowMs: 1_010 + o.reattachRetryMs))
        XCTAssertEqual(retry.count, 1)
        XCTAssertEqual(retry[0].nonce, first[0].nonce, "a retry is the same attempt: same nonce")
        XCTAssertEqual(retry[0].version, first[0].version)
        XCTAssertEqual(retry[0].path, 16)
        let done = o.reattachAcked(nonce: first[0].nonce, bindingVersion: 2, nowMs: 1_130)
        XCTAssertTrue(done.contains(.activate(path: 16)))
        XCTAssertEqual(o.state, .attached)
        XCTAssertEqual(o.active, 16)
        XCTAssertEqual(o.bindingVersion, 2)
        XCTAssertTrue(o.bindingSettled)
    }

    func testStaleVersionRejectResyncsWithANewNonceAtOnce() {
        var o = attached()
        let first = reattaches(o.linkChanged(uplinkPriority: 0, up: false, nowMs: 1_010))[0]
        let next = reattaches(o.reattachRejected(reason: .staleVersion, nonce: first.nonce, bindingVersion: 5, nowMs: 1_020))
        XCTAssertEqual(next.count, 1, "a new attempt at once")
        XCTAssertEqual(next[0].version, 5)
        XCTAssertNotEqual(next[0].nonce, first.nonce)
        XCTAssertEqual(next[0].path, 16)
        _ = o.reattachAcked(nonce: next[0].nonce, bindingVersion: 6, nowMs: 1_030)
        XCTAssertEqual(o.state, .attached)
        XCTAssertEqual(o.bindingVersion, 6)
    }

    func testStaleVersionNamingOurOwnVersionDoesNotSpin() {
        var o = attached()
        let first = reattaches(o.linkChanged(uplinkPriority: 0, up: false, nowMs: 1_010))[0]
        XCTAssertTrue(reattaches(o.reattachRejected(reason: .staleVersion, nonce: first.nonce, bindingVersion: 1, nowMs: 1_020)).isEmpty)
        XCTAssertEqual(reattaches(o.tick(nowMs: 1_020 + o.reattachRetryMs)).count, 1)
    }

    func testDuplicatedAndReorderedAnswersOfOlderAttemptsAreHarmless() {
        var o = attached()
        let first = reattaches(o.linkChanged(uplinkPriority: 0, up: false, nowMs: 1_010))[0]
        let second = reattaches(o.reattachRejected(reason: .staleVersion, nonce: first.nonce, bindingVersion: 5, nowMs: 1_020))[0]
        XCTAssertEqual(o.reattachRejected(reason: .staleVersion, nonce: first.nonce, bindingVersion: 5, nowMs: 1_021), [], "duplicate reject")
        XCTAssertEqual(o.reattachRejected(reason: .rateLimited, nonce: first.nonce, bindingVersion: 3, nowMs: 1_022), [], "late reject")
        XCTAssertEqual(o.attempt?.nonce, second.nonce, "the attempt in flight is untouched")
        XCTAssertEqual(o.bindingVersion, 5, "an older version never rolls back")
        XCTAssertEqual(o.reattachAcked(nonce: first.nonce, bindingVersion: 4, nowMs: 1_023), [], "an older ACK activates nothing")
        XCTAssertEqual(o.state, .recovering)
        _ = o.reattachAcked(nonce: second.nonce, bindingVersion: 6, nowMs: 1_030)
        XCTAssertEqual(o.reattachAcked(nonce: second.nonce, bindingVersion: 6, nowMs: 1_031), [], "duplicate ACK")
        XCTAssertEqual(o.switches, 1)
        XCTAssertEqual(o.state, .attached)
        XCTAssertTrue(o.bindingSettled)
        XCTAssertTrue(reattaches(o.tick(nowMs: 1_040)).isEmpty)
    }

    func testNewerVersionFromAnOlderAttemptMakesTheClientRebindItsPath() {
        var o = attached()
        let first = reattaches(o.linkChanged(uplinkPriority: 0, up: false, nowMs: 1_010))[0]
        let second = reattaches(o.reattachRejected(reason: .staleVersion, nonce: first.nonce, bindingVersion: 5, nowMs: 1_020))[0]
        _ = o.reattachAcked(nonce: second.nonce, bindingVersion: 6, nowMs: 1_030)
        // Authenticated news: the gateway's binding moved past the one we confirmed.
        XCTAssertEqual(o.reattachAcked(nonce: first.nonce, bindingVersion: 7, nowMs: 1_040), [])
        XCTAssertEqual(o.bindingVersion, 7)
        XCTAssertFalse(o.bindingSettled)
        let rebind = reattaches(o.tick(nowMs: 1_050))
        XCTAssertEqual(rebind.count, 1)
        XCTAssertEqual(rebind[0].path, 16)
        XCTAssertEqual(rebind[0].version, 7)
        _ = o.reattachAcked(nonce: rebind[0].nonce, bindingVersion: 8, nowMs: 1_060)
        XCTAssertEqual(o.state, .attached)
        XCTAssertTrue(o.bindingSettled)
        XCTAssertEqual(o.switches, 1, "re-binding the same path is not a switch")
    }

    func testRateLimitedBacksOffOneSecond() {
        var o = attached()
        let first = reattaches(o.linkChanged(uplinkPriority: 0, up: false, nowMs: 1_010))[0]
        _ = o.reattachRejected(reason: .rateLimited, nonce: first.nonce, bindingVersion: 1, nowMs: 1_020)
        var t: UInt64 = 1_030
        while t < 1_020 + ClientOrchestrator.rateLimitedBackoffMs {
            XCTAssertTrue(reattaches(tickAnswered(&o, t)).isEmpty, "no attempt during the backoff (t=\(t))")
            t += 10
        }
        let next = reattaches(tickAnswered(&o, 1_020 + ClientOrchestrator.rateLimitedBackoffMs))
        XCTAssertEqual(next.count, 1)
        XCTAssertNotEqual(next.first?.nonce, first.nonce)
    }

    func testUnknownSessionTerminatesAndRestartFollowsPolicy() {
        for restart in [true, false] {
            var policy = rigPolicy()
            policy.restartOnTerminate = restart
            var o = attached(policy)
            let first = reattaches(o.linkChanged(uplinkPriority: 0, up: false, nowMs: 1_010))[0]
            let out = o.reattachRejected(reason: .unknownSession, nonce: first.nonce, bindingVersion: 0, nowMs: 1_020)
            XCTAssertEqual(o.state, .terminated)
            XCTAssertTrue(out.contains(.terminated(.peerClosed, restart: restart)))
            XCTAssertTrue(out.contains { if case .stateChanged(let c) = $0 { return c.to == .terminated && c.reason == .peerClosed }; return false })
        }
    }

    func testAttemptOnAPathThatDiesMovesToTheNextCandidate() {
        var o = attached()
        let first = reattaches(o.linkChanged(uplinkPriority: 0, up: false, nowMs: 1_010))[0]
        XCTAssertEqual(first.path, 16)
        let next = reattaches(o.linkChanged(uplinkPriority: 1, up: false, nowMs: 1_020))
        XCTAssertEqual(next.map(\.path), [32])
        XCTAssertNotEqual(next[0].nonce, first.nonce)
        XCTAssertEqual(o.state, .recovering)
    }

    func testNatHintRebindsTheActivePathWithoutASwitch() {
        var o = attached()
        let rebind = reattaches(o.natRebindHinted(nowMs: 1_010))
        XCTAssertEqual(rebind.map(\.path), [0])
        XCTAssertEqual(o.state, .recovering)
        XCTAssertEqual(o.natRebindHinted(nowMs: 1_011), [], "one attempt at a time")
        let out = o.reattachAcked(nonce: rebind[0].nonce, bindingVersion: 2, nowMs: 1_020)
        XCTAssertEqual(o.state, .attached)
        XCTAssertFalse(out.contains { if case .switched = $0 { return true }; return false })
        XCTAssertEqual(o.bindingVersion, 2)
    }

    // MARK: PATH_CHALLENGE

    func testPathChallengeIsAnsweredOnThePathItCameOnWithinARate() {
        var o = attached()
        XCTAssertEqual(o.pathChallenged(path: 16, data: 0xFEED, nowMs: 2_000), [.sendPathResponse(path: 16, data: 0xFEED)])
        XCTAssertEqual(o.pathChallenged(path: 99, data: 1, nowMs: 2_000), [], "not one of our paths")
        var answered = 1
        for i in 0..<100 where !o.pathChallenged(path: 32, data: UInt64(i), nowMs: 2_000).isEmpty { answered += 1 }
        XCTAssertEqual(answered, Int(ClientOrchestrator.pathResponsesPerSecond))
        XCTAssertEqual(o.pathChallenged(path: 0, data: 7, nowMs: 2_100), [.sendPathResponse(path: 0, data: 7)], "the rate refills")
    }

    // MARK: handshake

    func testHandshakeRetriesRotateOverUsablePathsAndTimeOut() {
        var o = ClientOrchestrator(policy: rigPolicy(), paths: paths, noncePrefix: 1, nowMs: 0)
        XCTAssertEqual(initiations(o.tick(nowMs: 0)), [0])
        XCTAssertEqual(o.tick(nowMs: 999), [], "no probes and no initiation before the retry")
        XCTAssertEqual(initiations(o.tick(nowMs: 1_000)), [16])
        _ = o.linkChanged(uplinkPriority: 2, up: false, nowMs: 1_500)
        var sent: [UInt32] = []
        for t in stride(from: UInt64(2_000), to: 5_000, by: 10) { sent += initiations(o.tick(nowMs: t)) }
        XCTAssertEqual(sent, [0, 16, 0], "every second, over the usable paths only")
        let timeout = o.tick(nowMs: 5_000) // min(TransportLossTtlMs, 90 s)
        XCTAssertTrue(timeout.contains(.terminated(.handshakeTimeout, restart: true)))
        XCTAssertEqual(o.state, .terminated)
    }

    func testHandshakeCompletionActivatesAndProbesThatPathFirst() {
        var o = ClientOrchestrator(policy: rigPolicy(), paths: paths, noncePrefix: 1, nowMs: 0)
        _ = o.tick(nowMs: 0)
        _ = o.tick(nowMs: 1_000)
        let out = o.handshakeCompleted(path: 16, nowMs: 1_010)
        XCTAssertEqual(o.state, .attached)
        XCTAssertEqual(o.active, 16)
        XCTAssertTrue(out.contains(.activate(path: 16)))
        XCTAssertEqual(out.compactMap { a -> UInt32? in if case .sendProbe(let p, _) = a { return p }; return nil }, [16])
        XCTAssertTrue(initiations(o.tick(nowMs: 5_000)).isEmpty, "no more initiations once attached")
    }

    func testRekeyGoesOnTheActivePathEveryFiveSecondsUntilDone() {
        var o = attached()
        var initiated: [UInt64: [UInt32]] = [:]
        for t in stride(from: UInt64(1_100), through: 6_100, by: 10) {
            _ = tickAnswered(&o, t)
            let sent = initiations(o.keysNeedRenewing(nowMs: t))
            if !sent.isEmpty { initiated[t] = sent }
        }
        XCTAssertEqual(initiated, [1_100: [0], 1_100 + ClientOrchestrator.rekeyRetryMs: [0]])
        let done = o.handshakeCompleted(path: 0, nowMs: 6_200)
        XCTAssertFalse(done.contains { if case .stateChanged = $0 { return true }; return false }, "a rekey changes no state")
        XCTAssertTrue(done.contains { if case .sendProbe(0, _) = $0 { return true }; return false }, "the new keys are confirmed at once")
        XCTAssertEqual(initiations(o.keysNeedRenewing(nowMs: 6_210)), [0], "a new rekey cycle is not held back")
    }

    func testRekeyAvoidsADeadActivePath() {
        var o = attached()
        _ = o.linkChanged(uplinkPriority: 0, up: false, nowMs: 1_010)
        XCTAssertEqual(initiations(o.keysNeedRenewing(nowMs: 1_020)), [16])
    }

    // MARK: never wedged (simulation)

    /// The issue: the REATTACH reaches the gateway, the ACK is lost; the retry with the same nonce
    /// gets the same ACK instead of STALE_VERSION forever.
    func testLostAckConverges() {
        var s = OrchestratorSim(policy: rigPolicy())
        s.run(ms: 2_000)
        s.dropAnswers = 1
        s.link(0, up: false)
        s.run(ms: 500)
        XCTAssertEqual(s.o.state, .attached)
        XCTAssertEqual(s.o.active, 16)
        XCTAssertEqual(s.gateway.bound, 16)
        XCTAssertEqual(s.o.bindingVersion, s.gateway.version)
        XCTAssertEqual(s.gateway.applied, 1)
        XCTAssertEqual(Set(s.reattachesSent.map(\.nonce)).count, 1, "one attempt, retried")
    }

    /// Every answer lost until the recovery window is over: DEGRADED does not believe the old path,
    /// it re-attaches (a new attempt is resynced by STALE_VERSION or answered as already bound).
    func testAllAnswersLostThenDegradedRecoversOnceAnswersFlow() {
        var s = OrchestratorSim(policy: rigPolicy())
        s.run(ms: 2_000)
        s.dropAnswers = 1_000
        s.link(0, up: false)
        s.run(ms: 6_000)
        XCTAssertTrue(s.reasons(to: .degraded).contains(.recoveryWindowExceeded))
        s.link(0, up: true)
        s.dropAnswers = 0
        s.run(ms: 6_000)
        XCTAssertEqual(s.o.state, .attached)
        XCTAssertEqual(s.o.active, s.gateway.bound)
        XCTAssertEqual(s.o.bindingVersion, s.gateway.version)
    }

    /// The REATTACH to 16 was applied but its ACK lost, then 16 died too; when the old path 0 comes
    /// back, the gateway has moved: the client must REATTACH there, not assume its old binding.
    func testOldPathBackAfterALostAckIsReattachedNotAssumed() {
        var p = rigPolicy()
        p.transportLossTtlMs = 20_000
        var s = OrchestratorSim(policy: p)
        s.run(ms: 2_000)
        s.dropAnswers = 1
        s.link(0, up: false)
        s.link(16, up: false)
        XCTAssertEqual(s.gateway.bound, 16)
        s.run(ms: 6_000)
        XCTAssertEqual(s.o.state, .degraded)
        s.link(0, up: true)
        s.run(ms: 3_000)
        XCTAssertFalse(s.reasons(to: .attached).contains(.stabilityRestored),
                       "only a REATTACH_OK may attach once the binding is unknown")
        XCTAssertEqual(s.o.state, .attached)
        XCTAssertEqual(s.o.active, 0)
        XCTAssertEqual(s.gateway.bound, 0)
        XCTAssertEqual(s.o.bindingVersion, s.gateway.version)
    }

    func testDegradedRecoversWhenAPathComesBack() {
        var p = rigPolicy()
        p.transportLossTtlMs = 20_000
        var s = OrchestratorSim(policy: p)
        s.run(ms: 1_000)
        s.link(0, up: false)
        s.link(16, up: false)
        s.run(ms: 5_500)
        XCTAssertEqual(s.o.state, .degraded)
        XCTAssertEqual(s.o.active, 0)
        s.link(16, up: true)
        s.run(ms: 500)
        XCTAssertEqual(s.o.state, .attached)
        XCTAssertEqual(s.o.active, 16)
        XCTAssertEqual(s.gateway.bound, 16)
    }

    /// The switch budget runs out while the active uplink is down: DEGRADED naming the dead path,
    /// but only until the budget refills; then the working path is attached.
    func testExhaustedSwitchBudgetDoesNotWedgeForever() {
        var p = rigPolicy()
        p.maxSwitchesPerMinute = 2
        p.transportLossTtlMs = 120_000
        var s = OrchestratorSim(policy: p)
        s.run(ms: 1_000)
        for _ in 0..<2 {
            s.link(s.o.active ?? 0, up: false)
            s.run(ms: 300)
            s.link(0, up: true); s.link(16, up: true)
            s.run(ms: 300)
        }
        XCTAssertEqual(s.o.switches, 2)
        let stuckOn = s.o.active ?? 0
        s.link(stuckOn, up: false)
        s.run(ms: 1_000)
        XCTAssertEqual(s.o.state, .degraded)
        XCTAssertEqual(s.o.active, stuckOn, "the budget is really enforced")
        s.run(ms: 60_000)
        XCTAssertEqual(s.o.state, .attached)
        XCTAssertNotEqual(s.o.active, stuckOn)
        XCTAssertEqual(s.o.active, s.gateway.bound)
    }

    /// 15 % loss of every message in both directions while the preferred uplink flaps; once the
    /// flapping stops the client is ATTACHED where the gateway bound it, at the gateway's version.
    func testLossyFlappingConvergesForManySeeds() {
        for seed in UInt64(1)...30 {
            var s = OrchestratorSim(policy: rigPolicy(), seed: seed)
            s.lossPct = 15
            s.run(ms: 1_000)
            for i in 0..<40 {
                s.link(0, up: i % 2 == 1)
                s.run(ms: 150 + (seed * 37 + UInt64(i) * 11) % 300)
            }
            s.link(0, up: true)
            s.run(ms: 10_000)
            s.lossPct = 0
            s.run(ms: 10_000)
            XCTAssertEqual(s.o.state, .attached, "seed \(seed)")
            XCTAssertEqual(s.o.active, s.gateway.bound, "seed \(seed)")
            XCTAssertEqual(s.o.bindingVersion, s.gateway.version, "seed \(seed)")
        }
    }
}
