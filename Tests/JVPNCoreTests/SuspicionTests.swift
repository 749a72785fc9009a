import XCTest
@testable import JVPNCore

/// The pieces of RTT-based detection fact by fact: the RTT estimator, the suspicion's timers and
/// budget, and the orchestrator's use of them.
final class SuspicionTests: XCTestCase {
    func testRttEstimatorFollowsTheRfcFormulas() {
        var r = RttEstimator()
        XCTAssertNil(r.probeTimeoutMs(granularityMs: 2, replyDelayMs: 1), "no sample, no timeout")
        r.add(sampleMs: 100)
        XCTAssertEqual(r.smoothedMs, 100)
        XCTAssertEqual(r.variationMs, 50)
        r.add(sampleMs: 60)
        XCTAssertEqual(r.variationMs, 0.75 * 50 + 0.25 * 40)
        XCTAssertEqual(r.smoothedMs, 0.875 * 100 + 0.125 * 60)
        XCTAssertEqual(r.probeTimeoutMs(granularityMs: 2, replyDelayMs: 1)!, 95 + 4 * 47.5 + 1)
        var tiny = RttEstimator()
        for _ in 0..<50 { tiny.add(sampleMs: 0.1) }
        XCTAssertEqual(tiny.probeTimeoutMs(granularityMs: 2, replyDelayMs: 1)!, 3.1, accuracy: 0.01, "granularity floors the variation")
    }

    /// A suspicion with a 10 ms PTO whose counters have a baseline at t=1000.
    private func watching() -> ActivePathSuspicion {
        var s = ActivePathSuspicion(nowMs: 1_000)
        s.observe(sentPackets: 0, receivedPackets: 0, nowMs: 1_000)
        return s
    }

    func testNoTrafficNoSuspicionAndAnswersKeepItQuiet() {
        var s = watching()
        XCTAssertEqual(s.step(nowMs: 5_000, ptoMs: 10, standbys: 1), .nothing, "idle")
        s.observe(sentPackets: 5, receivedPackets: 0, nowMs: 5_001)
        XCTAssertEqual(s.unansweredSinceMs, 5_001)
        s.observe(sentPackets: 9, receivedPackets: 3, nowMs: 5_005)
        XCTAssertEqual(s.unansweredSinceMs, 5_005, "an answer ends the interval; data sent in the same sample starts the next")
        XCTAssertEqual(s.step(nowMs: 5_014, ptoMs: 10, standbys: 1), .nothing)
        XCTAssertEqual(s.step(nowMs: 5_014, ptoMs: nil, standbys: 1), .nothing, "no RTT sample: nothing to be late against")
        XCTAssertEqual(s.step(nowMs: 5_015, ptoMs: 10, standbys: 1), .opened)
        XCTAssertEqual(s.counters.raised, 1)
        XCTAssertEqual(s.counters.probes, 2, "the active path and the standby")
    }

    func testEpisodeProbesEachPTOAndConfirmsAfterTwoUnansweredForTwoPTOs() {
        var s = watching()
        s.observe(sentPackets: 1, receivedPackets: 0, nowMs: 1_000)
        XCTAssertEqual(s.step(nowMs: 1_010, ptoMs: 10, standbys: 0), .opened)
        XCTAssertEqual(s.nextDeadlineMs(ptoMs: 10), 1_020)
        XCTAssertEqual(s.step(nowMs: 1_019, ptoMs: 10, standbys: 0), .nothing)
        XCTAssertFalse(s.silentLongEnough(nowMs: 1_019, ptoMs: 10))
        XCTAssertEqual(s.step(nowMs: 1_020, ptoMs: 10, standbys: 0), .probeAgain)
        XCTAssertFalse(s.silentLongEnough(nowMs: 1_029, ptoMs: 10))
        XCTAssertEqual(s.nextDeadlineMs(ptoMs: 10), 1_030)
        XCTAssertTrue(s.silentLongEnough(nowMs: 1_030, ptoMs: 10))
        XCTAssertEqual(s.step(nowMs: 1_030, ptoMs: 10, standbys: 0), .probeAgain)
        XCTAssertEqual(s.step(nowMs: 1_100, ptoMs: 10, standbys: 0), .nothing, "at most three probes per episode")
        s.confirm()
        XCTAssertNil(s.episode)
        XCTAssertEqual(s.counters.confirmed, 1)
        XCTAssertEqual(s.counters.probes, 3)
    }

    func testFalseAlarmsBackOffAndTheBackoffDecays() {
        var s = watching()
        s.observe(sentPackets: 1, receivedPackets: 0, nowMs: 1_000)
        XCTAssertEqual(s.step(nowMs: 1_010, ptoMs: 10, standbys: 0), .opened)
        s.heard(nowMs: 1_012)
        XCTAssertEqual(s.counters.cleared, 1)
        XCTAssertNil(s.episode)
        XCTAssertEqual(s.openingThresholdMs(ptoMs: 10), 20, "one false alarm doubles the silence needed")
        s.observe(sentPackets: 2, receivedPackets: 0, nowMs: 1_100)
        XCTAssertEqual(s.step(nowMs: 1_119, ptoMs: 10, standbys: 0), .nothing)
        XCTAssertEqual(s.step(nowMs: 1_120, ptoMs: 10, standbys: 0), .opened)
        s.heard(nowMs: 1_121)
        XCTAssertEqual(s.openingThresholdMs(ptoMs: 10), 40)
        _ = s.step(nowMs: 1_121 + ActivePathSuspicion.backoffDecayMs, ptoMs: 10, standbys: 0)
        XCTAssertEqual(s.openingThresholdMs(ptoMs: 10), 20, "a quiet second forgets one level")
    }

    func testSuspicionProbesAreBoundedPerSecond() {
        var s = watching()
        var sent: UInt64 = 0, received: UInt64 = 0
        var opened = 0
        // A pathological pattern: data unanswered for a PTO, then answered, 1000 times a second.
        for t in stride(from: UInt64(1_001), to: 2_001, by: 1) {
            if t % 2 == 1 { sent += 1 } else { received += 1 }
            s.observe(sentPackets: sent, receivedPackets: received, nowMs: t)
            if s.step(nowMs: t, ptoMs: 0.5, standbys: 0) == .opened { opened += 1 }
        }
        XCTAssertLessThanOrEqual(s.counters.probes, Int(ActivePathSuspicion.probesPerSecond) * 2)
        XCTAssertLessThanOrEqual(opened, Int(ActivePathSuspicion.probesPerSecond) * 2)
    }

    // MARK: in the orchestrator

    /// Attached on path 0 with one 2 ms RTT sample on each path: PTO = 2 + 4 x 1 + 1 = 7 ms.
    private func attached() -> ClientOrchestrator {
        var o = ClientOrchestrator(policy: PolicyConfig(), paths: [PathCandidate(id: 0, priority: 0), PathCandidate(id: 16, priority: 1)],
                                   noncePrefix: 1, nowMs: 1_000)
        o.dataCounted(sentPackets: 0, receivedPackets: 0, nowMs: 1_000)
        for a in o.handshakeCompleted(path: 0, nowMs: 1_000) + o.tick(nowMs: 1_000) {
            if case .sendProbe(let p, let seq) = a { _ = o.probeReplied(path: p, seq: seq, nowMs: 1_002, measuredRttMs: 2) }
        }
        return o
    }

    private func probes(_ actions: [OrchestratorAction]) -> [UInt32] {
        actions.compactMap { if case .sendProbe(let p, _) = $0 { return p }; return nil }
    }

    func testSilentActivePathIsLeftOnceTheStandbyAnswers() {
        var o = attached()
        XCTAssertEqual(o.probeTimeoutMs(of: 0)!, 7, accuracy: 0.001)
        o.dataCounted(sentPackets: 10, receivedPackets: 0, nowMs: 1_010)
        XCTAssertEqual(o.tickIntervalMs(nowMs: 1_010), 1)
        XCTAssertTrue(probes(o.tick(nowMs: 1_016)).isEmpty, "not before one PTO")
        let opened = o.tick(nowMs: 1_017)
        XCTAssertEqual(probes(opened).sorted(), [0, 16], "the suspect and the standby, at once")
        XCTAssertTrue(o.isSuspect(0))
        XCTAssertEqual(o.tickIntervalMs(nowMs: 1_017), 1)
        XCTAssertEqual(probes(o.tick(nowMs: 1_024)), [0])
        // The standby answers; the active path stays silent.
        for a in opened { if case .sendProbe(16, let seq) = a { _ = o.probeReplied(path: 16, seq: seq, nowMs: 1_021, measuredRttMs: 4) } }
        XCTAssertFalse(o.tick(nowMs: 1_030).contains { if case .presumedDead = $0 { return true }; return false })
        let out = o.tick(nowMs: 1_031)
        XCTAssertTrue(out.contains { if case .presumedDead(0, 14, 3, _, 16) = $0 { return true }; return false }, "\(out)")
        XCTAssertTrue(out.contains { if case .sendReattach(16, .probeTimeout, _, _) = $0 { return true }; return false })
        XCTAssertEqual(o.state, .recovering)
        XCTAssertEqual(o.status(of: 0, nowMs: 1_031), "active", "still active until the ACK")
        XCTAssertEqual(o.suspicion.counters.confirmed, 1)
    }

    func testAnsweredSuspicionIsAFalseAlarmWithoutEvents() {
        var o = attached()
        o.dataCounted(sentPackets: 10, receivedPackets: 0, nowMs: 1_010)
        let opened = o.tick(nowMs: 1_017)
        XCTAssertTrue(o.isSuspect(0))
        for a in opened { if case .sendProbe(0, let seq) = a { _ = o.probeReplied(path: 0, seq: seq, nowMs: 1_016, measuredRttMs: 1) } }
        XCTAssertFalse(o.isSuspect(0))
        let later = o.tick(nowMs: 1_100)
        XCTAssertFalse(later.contains { if case .stateChanged = $0 { return true }; if case .presumedDead = $0 { return true }; return false })
        XCTAssertEqual(o.state, .attached)
        XCTAssertEqual(o.suspicion.counters.cleared, 1)
    }

    func testPresumedDeadPathRevivesOnlyOnAnAnswerToANewerProbe() {
        var o = attached()
        // A regular probe on the active path at 1200, left unanswered for now.
        let regular = o.tick(nowMs: 1_200).compactMap { a -> UInt32? in if case .sendProbe(0, let seq) = a { return seq }; return nil }
        XCTAssertEqual(regular.count, 1)
        o.dataCounted(sentPackets: 10, receivedPackets: 0, nowMs: 1_201)
        for a in o.tick(nowMs: 1_208) {
            if case .sendProbe(16, let seq) = a { _ = o.probeReplied(path: 16, seq: seq, nowMs: 1_209, measuredRttMs: 1) }
        }
        _ = o.tick(nowMs: 1_215)
        _ = o.tick(nowMs: 1_222)
        XCTAssertEqual(o.paths[0].presumedDeadSinceMs, 1_208)
        _ = o.probeReplied(path: 0, seq: regular[0], nowMs: 1_223)
        XCTAssertEqual(o.paths[0].presumedDeadSinceMs, 1_208, "a late answer to a probe sent before the episode proves nothing new")
        let later = o.tick(nowMs: 1_500).compactMap { a -> UInt32? in if case .sendProbe(0, let seq) = a { return seq }; return nil }
        XCTAssertEqual(later.count, 1)
        _ = o.probeReplied(path: 0, seq: later[0], nowMs: 1_501)
        XCTAssertNil(o.paths[0].presumedDeadSinceMs, "an answer to a probe sent since revives it")
    }
}
