import XCTest
@testable import JVPNCore

/// The gateway's decisions, fact by fact. Addresses are plain strings here.
final class GatewayCoreTests: XCTestCase {
    typealias Core = GatewayCore<String>
    typealias Action = GatewayAction<String>
    let sid = try! SessionID(bytes: [1, 2, 3, 4, 5, 6, 7, 8])
    let sid2 = try! SessionID(bytes: [9, 9, 9, 9, 9, 9, 9, 9])
    let wall: UInt64 = 1_700_000_000_000_000_000
    var policy: PolicyConfig {
        var p = PolicyConfig()
        p.maxSwitchesPerMinute = 3
        return p
    }

    private func ts(_ offsetNs: UInt64) -> Timestamp12 { Timestamp12(unixNanoseconds: wall + offsetNs) }

    private func sends(_ actions: [Action]) -> [(ControlMessage, String)] {
        actions.compactMap { if case .send(_, let m, let to, _) = $0 { return (m, to) } else { return nil } }
    }

    /// A core with peer 0's session `sid` confirmed from address "A" at t=0.
    private func attached(at address: String = "A") -> Core {
        var core = Core(policy: policy, peerCount: 2, seed: 1, nowMs: 0)
        let (d, _) = core.initiation(peer: 0, session: sid, timestamp: ts(0), wallNs: wall, from: address, nowMs: 0)
        XCTAssertEqual(d, .respondNewSession)
        let a = core.confirmed(peer: 0, session: sid, from: address, bytes: 49, nowMs: 1)
        XCTAssertTrue(a.contains(.sessionOpened(peer: 0, sid)))
        XCTAssertEqual(core.session(ofPeer: 0)?.bound, address)
        XCTAssertEqual(core.session(ofPeer: 0)?.bindingVersion, 1)
        XCTAssertEqual(core.session(ofPeer: 0)?.state, .attached)
        return core
    }

    /// Validates `address` for the session by answering the challenge a probe from it triggers.
    private func validate(_ core: inout Core, _ address: String, nowMs: UInt64) {
        let a = core.control(peer: 0, .probe(seq: 1, sentAtNs: 0, pathID: 2), from: address, bytes: 49, nowMs: nowMs)
        guard let (challenge, to) = sends(a).first(where: { if case .pathChallenge = $0.0 { return true }; return false }),
              case .pathChallenge(let data) = challenge else { return XCTFail("no challenge to \(address)") }
        XCTAssertEqual(to, address)
        _ = core.control(peer: 0, .pathResponse(data: data), from: address, bytes: 41, nowMs: nowMs + 1)
        XCTAssertTrue(core.session(ofPeer: 0)!.isValidated(address, nowMs: nowMs + 1))
    }

    private func reattach(_ core: inout Core, from: String, version: UInt64, nonce: ControlNonce, nowMs: UInt64) -> [Action] {
        core.control(peer: 0, .reattachRequest(sessionID: sid, bindingVersion: version, pathID: 2, nonce: nonce, reason: .linkDown),
                     from: from, bytes: 70, nowMs: nowMs)
    }

    func testBindingFollowsTheConfirmedHandshakeNotTheFirstInitiation() {
        var core = Core(policy: policy, peerCount: 1, seed: 1, nowMs: 0)
        // The first initiation came over A, whose return direction is broken: its response is lost.
        XCTAssertEqual(core.initiation(peer: 0, session: sid, timestamp: ts(0), wallNs: wall, from: "A", nowMs: 0).0, .respondNewSession)
        XCTAssertNil(core.session(ofPeer: 0), "an initiation alone opens nothing")
        // The retry over B is answered there and the client confirms from B.
        XCTAssertEqual(core.initiation(peer: 0, session: sid, timestamp: ts(1_000_000_000), wallNs: wall, from: "B", nowMs: 1000).0,
                       .respondNewSession)
        _ = core.confirmed(peer: 0, session: sid, from: "B", bytes: 49, nowMs: 1001)
        XCTAssertEqual(core.session(ofPeer: 0)?.bound, "B")
    }

    func testConfirmationFromAnotherAddressWaitsForValidation() {
        var core = Core(policy: policy, peerCount: 1, seed: 1, nowMs: 0)
        _ = core.initiation(peer: 0, session: sid, timestamp: ts(0), wallNs: wall, from: "A", nowMs: 0)
        let a = core.confirmed(peer: 0, session: sid, from: "C", bytes: 49, nowMs: 1)
        XCTAssertNil(core.session(ofPeer: 0)?.bound, "C never received anything from us")
        guard case .pathChallenge(let data)? = sends(a).first?.0, sends(a).first?.1 == "C" else { return XCTFail("no challenge") }
        XCTAssertTrue(core.control(peer: 0, .pathResponse(data: data), from: "C", bytes: 41, nowMs: 2).contains(.bindingChanged(peer: 0)))
        XCTAssertEqual(core.session(ofPeer: 0)?.bound, "C", "bound once proven, without a REATTACH")
        XCTAssertEqual(core.session(ofPeer: 0)?.bindingVersion, 1)
    }

    func testReplayedAndFarFutureInitiationsAreRefused() {
        var core = attached()
        XCTAssertEqual(core.initiation(peer: 0, session: sid2, timestamp: ts(0), wallNs: wall, from: "X", nowMs: 5).0, .drop(.replayDetected))
        let future = ts(GatewayLimits.maxFutureTimestampNs + 1_000_000_000)
        XCTAssertEqual(core.initiation(peer: 0, session: sid2, timestamp: future, wallNs: wall, from: "X", nowMs: 5).0, .drop(.replayDetected))
        XCTAssertEqual(core.counters.staleInitiations, 1)
        XCTAssertEqual(core.counters.futureInitiations, 1)
        XCTAssertEqual(core.session(ofPeer: 0)?.state, .attached, "nothing unconfirmed touches the live session")
    }

    func testANewSessionEndsTheOldOneOnlyWhenConfirmed() {
        var core = attached()
        XCTAssertEqual(core.initiation(peer: 0, session: sid2, timestamp: ts(10), wallNs: wall, from: "A", nowMs: 10).0, .respondNewSession)
        XCTAssertEqual(core.session(ofPeer: 0)?.id, sid)
        XCTAssertEqual(core.session(ofPeer: 0)?.state, .attached, "message 1 alone never tears a session down")
        let a = core.confirmed(peer: 0, session: sid2, from: "A", bytes: 49, nowMs: 11)
        XCTAssertTrue(a.contains { if case .stateChanged(0, self.sid, let c) = $0 { return c.to == .terminated && c.reason == .peerClosed }; return false })
        XCTAssertEqual(core.session(ofPeer: 0)?.id, sid2)
        // A rekey of the live session is answered and changes nothing.
        XCTAssertEqual(core.initiation(peer: 0, session: sid2, timestamp: ts(20), wallNs: wall, from: "A", nowMs: 20).0, .respondRekey)
    }

    func testASessionIdBelongsToItsPeer() {
        var core = attached()
        let (d, a) = core.initiation(peer: 1, session: sid, timestamp: ts(5), wallNs: wall, from: "M", nowMs: 5)
        XCTAssertEqual(d, .drop(.ownershipConflict))
        XCTAssertTrue(a.contains { if case .security(1, _, .ownershipConflict, _) = $0 { return true }; return false })
        XCTAssertEqual(core.session(ofPeer: 0)?.bound, "A")
        XCTAssertNil(core.session(ofPeer: 1))
    }

    func testATerminatedSessionIdIsNeverReopened() {
        var core = attached()
        _ = core.tick(nowMs: policy.transportLossTtlMs + 10)
        let (d, _) = core.initiation(peer: 0, session: sid, timestamp: ts(5), wallNs: wall, from: "A", nowMs: policy.transportLossTtlMs + 20)
        XCTAssertEqual(d, .drop(.unknownSession))
        XCTAssertEqual(core.initiation(peer: 0, session: sid2, timestamp: ts(6), wallNs: wall, from: "A",
                                       nowMs: policy.transportLossTtlMs + 30).0, .respondNewSession)
    }

    func testAnUnconfirmedHandshakeExpires() {
        var core = attached()
        _ = core.initiation(peer: 0, session: sid2, timestamp: ts(10), wallNs: wall, from: "A", nowMs: 10)
        let a = core.tick(nowMs: 10 + GatewayLimits.pendingLifetimeMs + 1)
        XCTAssertTrue(a.contains(.pendingDropped(peer: 0, sid2)))
        XCTAssertTrue(core.confirmed(peer: 0, session: sid2, from: "A", bytes: 49, nowMs: 6000).isEmpty)
    }

    func testLostAckRetryGetsTheSameAnswer() {
        var core = attached()
        validate(&core, "B", nowMs: 10)
        let n = ControlNonce.random()
        let first = sends(reattach(&core, from: "B", version: 1, nonce: n, nowMs: 20))
        guard case .reattachAck(_, 2, n)? = first.first?.0 else { return XCTFail("no ACK: \(first)") }
        // The ACK was lost: the same request again gets the same ACK, nothing moves twice.
        let again = reattach(&core, from: "B", version: 1, nonce: n, nowMs: 40)
        XCTAssertEqual(sends(again).map(\.0), [.reattachAck(sessionID: sid, bindingVersion: 2, nonce: n)])
        XCTAssertFalse(again.contains { if case .switched = $0 { true } else { false } })
        XCTAssertEqual(core.session(ofPeer: 0)?.bindingVersion, 2)
        // A new request for the path already bound, with an old version, learns the current one.
        let m = ControlNonce.random()
        XCTAssertEqual(sends(reattach(&core, from: "B", version: 1, nonce: m, nowMs: 60)).map(\.0),
                       [.reattachAck(sessionID: sid, bindingVersion: 2, nonce: m)])
    }

    func testStaleVersionRejectCarriesTheCurrentVersion() {
        var core = attached()
        validate(&core, "B", nowMs: 10)
        validate(&core, "C", nowMs: 10)
        _ = reattach(&core, from: "B", version: 1, nonce: .random(), nowMs: 20)
        let n = ControlNonce.random()
        let r = sends(reattach(&core, from: "C", version: 1, nonce: n, nowMs: 30))
        XCTAssertEqual(r.map(\.0), [.reject(reason: .staleVersion, nonce: n, bindingVersion: 2)])
        XCTAssertEqual(r.first?.1, "C")
        // Resynced, the client's next request moves the binding.
        _ = reattach(&core, from: "C", version: 2, nonce: .random(), nowMs: 40)
        XCTAssertEqual(core.session(ofPeer: 0)?.bound, "C")
        XCTAssertEqual(core.session(ofPeer: 0)?.bindingVersion, 3)
    }

    func testUnvalidatedAddressIsChallengedBeforeBinding() {
        var core = attached()
        let n = ControlNonce.random()
        let first = sends(reattach(&core, from: "B", version: 1, nonce: n, nowMs: 10))
        guard case .pathChallenge(let data)? = first.first?.0, first.count == 1, first.first?.1 == "B" else {
            return XCTFail("expected only a challenge, got \(first)")
        }
        XCTAssertEqual(core.session(ofPeer: 0)?.bound, "A", "nothing moves before B is proven")
        // A response that does not echo the challenge proves nothing.
        _ = core.control(peer: 0, .pathResponse(data: data &+ 1), from: "B", bytes: 41, nowMs: 11)
        XCTAssertEqual(core.session(ofPeer: 0)?.bound, "A")
        // Nor does the right data from somewhere else.
        _ = core.control(peer: 0, .pathResponse(data: data), from: "Z", bytes: 41, nowMs: 11)
        XCTAssertEqual(core.session(ofPeer: 0)?.bound, "A")
        let done = sends(core.control(peer: 0, .pathResponse(data: data), from: "B", bytes: 41, nowMs: 12))
        XCTAssertEqual(done.map(\.0), [.reattachAck(sessionID: sid, bindingVersion: 2, nonce: n)])
        XCTAssertEqual(core.session(ofPeer: 0)?.bound, "B")
    }

    /// An on-path attacker replays the client's frames from addresses of its own while a REATTACH
    /// waits for its address to be validated: however many there are, the challenge sent there
    /// stays the one its answer must echo, and the move completes.
    func testAReattachWaitingForValidationKeepsItsChallengeUnderReplaysFromManyAddresses() {
        var core = attached()
        let n = ControlNonce.random()
        guard case .pathChallenge(let data)? = sends(reattach(&core, from: "B", version: 1, nonce: n, nowMs: 10)).first?.0 else {
            return XCTFail("no challenge to B")
        }
        for i in 0..<PathValidation<String>.unvalidatedCapacity * 3 {
            _ = core.control(peer: 0, .probe(seq: UInt32(i), sentAtNs: 0, pathID: 2), from: "X\(i)", bytes: 49, nowMs: 20 + UInt64(i))
        }
        let done = sends(core.control(peer: 0, .pathResponse(data: data), from: "B", bytes: 41, nowMs: 100))
        XCTAssertEqual(done.map(\.0), [.reattachAck(sessionID: sid, bindingVersion: 2, nonce: n)])
        XCTAssertEqual(core.session(ofPeer: 0)?.bound, "B")
    }

    /// The client gave up a move still waiting for its address's validation and confirmed the
    /// bound path with a new REATTACH: the address answering its challenge later must not move the
    /// session there.
    func testAMoveGivenUpWhileItsAddressWasUnvalidatedIsNeverApplied() {
        var core = attached()
        guard case .pathChallenge(let data)? = sends(reattach(&core, from: "B", version: 1, nonce: .random(), nowMs: 10)).first?.0 else {
            return XCTFail("no challenge to B")
        }
        let confirm = ControlNonce.random()
        XCTAssertEqual(sends(reattach(&core, from: "A", version: 1, nonce: confirm, nowMs: 1_010)).map(\.0),
                       [.reattachAck(sessionID: sid, bindingVersion: 1, nonce: confirm)])
        let late = core.control(peer: 0, .pathResponse(data: data), from: "B", bytes: 41, nowMs: 1_020)
        XCTAssertTrue(sends(late).isEmpty, "nothing sent for the given-up move: \(sends(late))")
        XCTAssertEqual(core.session(ofPeer: 0)?.bound, "A")
        XCTAssertEqual(core.session(ofPeer: 0)?.bindingVersion, 1)
        XCTAssertTrue(core.session(ofPeer: 0)!.isValidated("B", nowMs: 1_020), "B is validated all the same")
    }

    /// A client with three uplinks and both transports has six addresses that all answer probes:
    /// each stays validated, so a REATTACH to any of them moves the session at once.
    func testEveryPathOfAClientWithSixStaysValidated() {
        var core = attached()
        let addresses = ["A", "B", "C", "D", "E", "F"]
        for (i, a) in addresses.dropFirst().enumerated() { validate(&core, a, nowMs: 10 + UInt64(i) * 10) }
        for round in 0..<5 {
            for (i, a) in addresses.enumerated() {
                _ = core.control(peer: 0, .probe(seq: UInt32(round * 10 + i), sentAtNs: 0, pathID: 2), from: a, bytes: 49,
                                 nowMs: 100 + UInt64(round * 10 + i))
            }
        }
        XCTAssertTrue(addresses.allSatisfy { core.session(ofPeer: 0)!.isValidated($0, nowMs: 200) })
        let n = ControlNonce.random()
        XCTAssertEqual(sends(reattach(&core, from: "F", version: 1, nonce: n, nowMs: 200)).map(\.0),
                       [.reattachAck(sessionID: sid, bindingVersion: 2, nonce: n)])
    }

    func testAmplificationIsBoundedForUnvalidatedAddresses() {
        var core = attached()
        var sent = 0
        var received = 0
        // Pad probes to 1200 bytes from an address that never answers a challenge.
        for i in 0..<50 {
            let bytes = 32 + 17
            received += bytes
            let a = core.control(peer: 0, .probe(seq: UInt32(i), sentAtNs: 0, pathID: 9), from: "V", bytes: bytes, nowMs: 100 + UInt64(i) * 300)
            for case .send(_, let m, "V", let pad) in a { sent += max(m.encodedLength, pad) + 32 }
        }
        XCTAssertLessThanOrEqual(sent, received * 3)
        XCTAssertGreaterThan(sent, 0)
        // A REATTACH can never point the session there.
        _ = reattach(&core, from: "V", version: 1, nonce: .random(), nowMs: 20_000)
        XCTAssertEqual(core.session(ofPeer: 0)?.bound, "A")
        // Oversized replies beyond the allowance are not sent at all.
        let big = core.control(peer: 0, .probe(seq: 99, sentAtNs: 0, pathID: 9), from: "W", bytes: 32 + 17, nowMs: 20_001)
        XCTAssertTrue(sends(big).allSatisfy { $0.1 != "W" || max($0.0.encodedLength, 17) + 32 <= 3 * 49 })
    }

    func testSwitchBudgetIsExactlyMaxSwitchesPerMinute() {
        var core = attached()
        var t: UInt64 = 10
        for addr in ["B", "C", "D", "E"] { validate(&core, addr, nowMs: t); t += 10 }
        var switched = 0
        var rateLimited = 0
        for (i, addr) in ["B", "C", "D", "E", "B"].enumerated() {
            let version = core.session(ofPeer: 0)!.bindingVersion
            let a = sends(reattach(&core, from: addr, version: version, nonce: .random(), nowMs: t + UInt64(i) * 1000))
            if case .reattachAck? = a.first?.0 { switched += 1 }
            if case .reject(.rateLimited, _, _)? = a.first?.0 { rateLimited += 1 }
        }
        XCTAssertEqual(switched, 3, "MaxSwitchesPerMinute = 3")
        XCTAssertEqual(rateLimited, 2)
        // A minute after the first switch the budget is back.
        let version = core.session(ofPeer: 0)!.bindingVersion
        // (E is still validated: its refused REATTACH was authenticated traffic from it.)
        let later = sends(reattach(&core, from: "E", version: version, nonce: .random(), nowMs: t + 61_100))
        guard case .reattachAck? = later.first?.0 else { return XCTFail("budget did not refill: \(later)") }
    }

    func testSecurityEventsAreRateLimitedAndCounted() {
        var core = attached()
        var events = 0
        for i in 0..<1000 {
            let a = core.controlRefused(peer: 0, reason: .invalidProof, from: "F", nowMs: 100 + UInt64(i) * 2)
            events += a.count { if case .security = $0 { true } else { false } }
        }
        XCTAssertEqual(events, Int(SecurityEventLimiter.perSessionBurst) + 1, "burst plus one refill over the 2 s")
        XCTAssertEqual(core.session(ofPeer: 0)?.securityEventsSuppressed, UInt64(1000 - events))
        XCTAssertEqual(core.securityLimiter.suppressedTotal, UInt64(1000 - events))
    }

    func testAnEndedSessionTellsItsClient() {
        var core = attached()
        _ = core.tick(nowMs: policy.transportLossTtlMs + 10)
        XCTAssertEqual(core.session(ofPeer: 0)?.state, .terminated)
        let probe = sends(core.control(peer: 0, .probe(seq: 1, sentAtNs: 0, pathID: 1), from: "A", bytes: 49,
                                       nowMs: policy.transportLossTtlMs + 20))
        XCTAssertEqual(probe.map(\.0), [.close(reason: .transportLossTTLExpired)])
        let n = ControlNonce.random()
        let r = sends(reattach(&core, from: "A", version: 1, nonce: n, nowMs: policy.transportLossTtlMs + 2000))
        XCTAssertEqual(r.map(\.0), [.reject(reason: .unknownSession, nonce: n, bindingVersion: 1)])
    }

    func testProbeRepliesArePaddedToTheProbe() {
        var core = attached()
        let a = core.control(peer: 0, .probe(seq: 7, sentAtNs: 8, pathID: 1), from: "A", bytes: 32 + 1200, nowMs: 10)
        XCTAssertEqual(a, [.send(peer: 0, .probeReply(seq: 7, sentAtNs: 8, pathID: 1), to: "A", paddedTo: 1200)])
    }

    func testNatHintIsRateLimitedAndNeverMoves() {
        var core = attached()
        let hint = NATHint(address: [10, 0, 0, 9], port: 4000)!
        var hints = 0
        for i in 0..<30 {
            let a = core.dataFromUnbound(peer: 0, from: "N", bytes: 1400, natHint: hint, nowMs: 100 + UInt64(i) * 100)
            hints += sends(a).count
        }
        XCTAssertEqual(hints, 3, "one per second over 3 s")
        XCTAssertEqual(core.session(ofPeer: 0)?.bound, "A")
    }
}
