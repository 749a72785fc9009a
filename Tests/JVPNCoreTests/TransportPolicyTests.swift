import XCTest
@testable import JVPNCore

/// UDP and TCP paths side by side (ids 0 and 16: UDP on uplinks 0 and 1; 1 and 17: TCP on them):
/// UDP ranks first, the session moves to TCP only when no UDP path works, and back once one has
/// been stable for StableWindowMs.
final class TransportPolicyTests: XCTestCase {
    /// `pathMtu`: the largest IP packet each path carries, from the start.
    private func sim(_ ids: [UInt32] = [0, 1], policy: PolicyConfig = rigPolicy(), pathMtu: [UInt32: Int] = [:]) -> OrchestratorSim {
        var s = OrchestratorSim(policy: policy, pathIDs: ids, transportRanks: [1: 1, 17: 1])
        s.pathMtu = pathMtu
        s.run(ms: 2_000)
        return s
    }

    func testEveryUdpPathRanksAboveEveryTcpPath() {
        let s = sim([0, 16, 1, 17])
        XCTAssertEqual(s.o.ranked(nowMs: s.now).map(\.id), [0, 16, 1, 17])
    }

    func testUdpBlockedMovesToTcpAndBackAfterTheStableWindow() {
        var s = sim()
        XCTAssertEqual(s.o.active, 0)
        s.blackholed.insert(0)
        s.run(ms: 600)
        XCTAssertEqual(s.o.active, 1, "UDP dead, TCP answers: onto TCP")
        XCTAssertEqual(s.switchesLogged.map(\.2), [.probeTimeout])
        XCTAssertEqual(s.o.state, .attached)
        s.blackholed.remove(0)
        s.run(ms: 900)
        XCTAssertEqual(s.o.active, 1, "not before StableWindowMs")
        s.run(ms: 1_500)
        XCTAssertEqual(s.o.active, 0, "back to UDP")
        XCTAssertEqual(s.switchesLogged.map(\.2), [.probeTimeout, .betterPath])
        XCTAssertEqual(s.gateway.bound, 0)
    }

    func testBackToUdpEvenWithoutPreemptToPreferred() {
        var policy = rigPolicy()
        policy.preemptToPreferred = false
        var s = sim([0, 1], policy: policy)
        s.blackholed.insert(0)
        s.run(ms: 600)
        XCTAssertEqual(s.o.active, 1)
        s.blackholed.remove(0)
        s.run(ms: 2_500)
        XCTAssertEqual(s.o.active, 0, "TCP is a fallback, not a preference")
    }

    func testALossyPreferredUplinkDoesNotHoldTheSessionOnTcp() {
        var s = sim([0, 16, 1, 17])
        s.blackholed.formUnion([0, 16])
        s.run(ms: 800)
        XCTAssertEqual(s.o.active, 1)
        s.blackholed.subtract([0, 16])
        s.dropEvery[0] = 2 // up0's UDP path is back but loses every other probe: never stable
        s.run(ms: 6_000)
        XCTAssertEqual(s.o.active, 16, "back to UDP on the stable uplink, not held on TCP by the lossy preferred one")
        XCTAssertEqual(s.switchesLogged.map(\.2), [.probeTimeout, .betterPath])
    }

    func testAnotherUdpPathIsTakenBeforeTcp() {
        var s = sim([0, 16, 1, 17])
        s.blackholed.insert(0)
        s.run(ms: 600)
        XCTAssertEqual(s.o.active, 16)
    }

    func testUdpBlockedOnEveryUplinkGoesStraightToTcp() {
        var s = sim([0, 16, 1, 17])
        s.blackholed.formUnion([0, 16])
        s.run(ms: 800)
        XCTAssertEqual(s.o.active, 1)
        XCTAssertEqual(s.switchesLogged.map(\.1), [1], "one switch, to TCP")
        XCTAssertEqual(Set(s.reattachesSent.map(\.path)), [1], "no REATTACH on the other UDP path, silent as well")
    }

    func testALossyUdpPathIsNoReasonToGoToTcp() {
        var s = sim()
        s.dropEvery[0] = 3
        s.run(ms: 5_000)
        XCTAssertTrue(s.reasons(to: .volatile).contains(.lossThreshold))
        XCTAssertEqual(s.o.active, 0, "volatile, but a policy move never goes to a less preferred kind")
        XCTAssertTrue(s.switchesLogged.isEmpty)
    }

    func testTheActiveTcpConnectionLostIsLinkDownAndANewOneCarriesOn() {
        var s = sim()
        s.blackholed.insert(0)
        s.run(ms: 600)
        XCTAssertEqual(s.o.active, 1)
        s.down.insert(1)
        s.apply(s.o.transportChanged(path: 1, up: false, nowMs: s.now))
        XCTAssertEqual(s.o.state, .recovering)
        XCTAssertEqual(s.reasons(to: .recovering).last, .linkDown)
        XCTAssertEqual(s.o.status(of: 1, nowMs: s.now), "active")
        s.run(ms: 1_000)
        s.down.remove(1)
        s.apply(s.o.transportChanged(path: 1, up: true, nowMs: s.now))
        s.run(ms: 6_000)
        XCTAssertEqual(s.o.active, 1)
        XCTAssertEqual(s.o.state, .attached)
    }

    // MARK: REATTACH on a stream

    /// Attached on UDP path 0 (uplink 0) with TCP path 17 (uplink 1) answering; uplink 0 goes down
    /// at t=1010: the REATTACH goes on the TCP path.
    private func reattachingOnTcp() -> (ClientOrchestrator, ControlNonce) {
        var o = ClientOrchestrator(policy: rigPolicy(), paths: [PathCandidate(id: 0, priority: 0),
                                                                PathCandidate(id: 17, priority: 1, transportRank: 1, isStream: true)],
                                   noncePrefix: 0xAB, nowMs: 1_000)
        _ = o.handshakeCompleted(path: 0, nowMs: 1_000)
        for case .sendProbe(let p, let seq) in o.tick(nowMs: 1_000) { _ = o.probeReplied(path: p, seq: seq, nowMs: 1_005) }
        let first = o.linkChanged(uplinkPriority: 0, up: false, nowMs: 1_010).compactMap {
            if case .sendReattach(let p, _, _, let n) = $0 { return (p, n) }; return nil
        }
        XCTAssertEqual(first.map(\.0), [17])
        return (o, first[0].1)
    }

    private func reattaches(_ actions: [OrchestratorAction]) -> [UInt32] {
        actions.compactMap { if case .sendReattach(let p, _, _, _) = $0 { return p }; return nil }
    }

    func testAReattachIsNotRepeatedOnAStreamThatHasNotDeliveredTheFirstCopy() {
        var (o, _) = reattachingOnTcp()
        var sent: [UInt32] = []
        // The connection is starved (nothing comes back): TCP itself retransmits the copy it has;
        // another copy behind it would reach the gateway late, after the binding moved on.
        for t in stride(from: UInt64(1_020), through: 1_250, by: 10) { sent += reattaches(o.tick(nowMs: t)) }
        XCTAssertEqual(sent, [], "no second copy on the same connection")
        XCTAssertEqual(o.state, .recovering)
        XCTAssertEqual(o.attempt?.path, 17)
    }

    func testAReattachIsRepeatedOnAStreamOnceAProbeWrittenAfterItIsAnswered() {
        var (o, nonce) = reattachingOnTcp()
        var sent: [UInt32] = []
        // The connection flows again: a probe written after the REATTACH is answered, but the
        // answer to the REATTACH (ahead of it on the connection) never came: it was lost above TCP.
        for t in stride(from: UInt64(1_020), through: 1_200, by: 10) {
            for a in o.tick(nowMs: t) {
                if case .sendReattach(let p, _, _, let n) = a {
                    sent.append(p)
                    XCTAssertEqual(n, nonce, "the same attempt")
                }
                if case .sendProbe(17, let seq) = a { _ = o.probeReplied(path: 17, seq: seq, nowMs: t + 5) }
            }
        }
        XCTAssertFalse(sent.isEmpty, "repeated on the connection that is shown to deliver")
        XCTAssertEqual(Set(sent), [17])
    }

    func testAReattachOnAStreamWhoseConnectionBreaksGoesOnTheNewConnection() {
        var (o, nonce) = reattachingOnTcp()
        XCTAssertEqual(reattaches(o.tick(nowMs: 1_200)), [])
        _ = o.transportChanged(path: 17, up: false, nowMs: 1_210)
        XCTAssertNil(o.attempt, "the copy went with the connection")
        let again = o.transportChanged(path: 17, up: true, nowMs: 1_400)
        for case .sendProbe(let p, let seq) in again { _ = o.probeReplied(path: p, seq: seq, nowMs: 1_405) }
        var sent: [(UInt32, ControlNonce)] = []
        for t in stride(from: UInt64(1_410), through: 1_600, by: 10) {
            for a in o.tick(nowMs: t) {
                if case .sendReattach(let p, _, _, let n) = a { sent.append((p, n)) }
                if case .sendProbe(let p, let seq) = a { _ = o.probeReplied(path: p, seq: seq, nowMs: t + 5) }
            }
        }
        XCTAssertEqual(sent.first?.0, 17, "a REATTACH on the new connection")
        XCTAssertNotEqual(sent.first?.1, nonce, "a new attempt")
    }

    // MARK: path MTU

    func testATcpPathIsNeitherSearchedNorReportedNorFitted() {
        var s = sim([0, 16, 1, 17], pathMtu: [1: 1280]) // would be found if it were searched
        XCTAssertEqual(s.o.mtu(of: 0)?.inUse, 1500, "the UDP paths are searched")
        let onTcp: (OrchestratorAction) -> Bool = {
            switch $0 {
            case .sendMtuProbe(let p, _, _), .sendPathMtu(let p, _): return p == 1 || p == 17
            default: return false
            }
        }
        s.blackholed.formUnion([0, 16])
        s.run(ms: 3_000)
        XCTAssertEqual(s.o.active, 1)
        XCTAssertFalse(s.log.contains(where: onTcp), "no MTU probe and no PATH_MTU on a TCP path, active or not")
        XCTAssertNil(s.o.mtu(of: 1)?.inUse, "nothing to fit to: the stream carries any frame whole")
        XCTAssertNil(s.gateway.core.session(ofPeer: 0)?.boundMaxDatagram, "the gateway fits nothing towards a TCP binding")
        XCTAssertEqual(s.gateway.bound, 1)
    }

    func testAUdpPathBelowTheFloorStillRanksAboveTcp() {
        var s = sim([0, 1], pathMtu: [0: 1280]) // 1220 inner bytes: below IPv6's minimum
        s.run(ms: 3_000)
        XCTAssertTrue(s.o.mtu(of: 0)?.isBelowFloor ?? false)
        XCTAssertEqual(s.o.ranked(nowMs: s.now).map(\.id), [0, 1], "the transport order first, the floor within a kind")
        XCTAssertEqual(s.o.active, 0, "a small UDP path is fitted to, not left for TCP")
        XCTAssertTrue(s.switchesLogged.isEmpty)
    }

    func testBelowTheFloorTheSessionMovesToAUdpPathAboveIt() {
        var s = sim([0, 16, 1, 17], pathMtu: [0: 1280])
        s.run(ms: 5_000)
        XCTAssertEqual(s.o.active, 16, "off the small path, to the other UDP one")
        XCTAssertEqual(s.switchesLogged.map(\.2), [.betterPath])
    }

    // MARK: handshakes

    private func birth(ranks: [UInt32: Int], tcpUp: Bool = true) -> ClientOrchestrator {
        var paths = [0, 16, 1, 17].map { PathCandidate(id: UInt32($0), priority: $0 / 16, transportRank: ranks[UInt32($0)] ?? 0) }
        for i in paths.indices where paths[i].transportRank > 0 { paths[i].transportUp = tcpUp }
        return ClientOrchestrator(policy: rigPolicy(), paths: paths, noncePrefix: 1, nowMs: 0)
    }

    private func initiations(_ actions: [OrchestratorAction]) -> [UInt32] {
        actions.compactMap { if case .sendInitiation(let p) = $0 { return p }; return nil }
    }

    func testHandshakeTriesUdpAloneForTwoSecondsThenTcpAtOnce() {
        var o = birth(ranks: [1: 1, 17: 1])
        var sent: [(UInt64, UInt32)] = []
        for t in stride(from: UInt64(0), through: 4_000, by: 10) {
            for p in initiations(o.tick(nowMs: t)) { sent.append((t, p)) }
        }
        XCTAssertEqual(sent.map(\.0), [0, 1000, 2000, 3000, 4000])
        XCTAssertEqual(sent.map(\.1), [0, 16, 1, 17, 0], "UDP on each uplink, then TCP at 2 s, then all in turn")
        XCTAssertEqual(ClientOrchestrator.transportFallbackMs, 2000)
    }

    func testTcpPreferredTriesTcpFirst() {
        var o = birth(ranks: [0: 1, 16: 1])
        XCTAssertEqual(initiations(o.tick(nowMs: 0)), [1])
    }

    func testATcpConnectionThatComesUpAfterTheFallbackGetsAnInitiationAtOnce() {
        var o = birth(ranks: [1: 1, 17: 1], tcpUp: false)
        var sent: [UInt32] = []
        for t in stride(from: UInt64(0), through: 2_400, by: 10) { sent += initiations(o.tick(nowMs: t)) }
        XCTAssertEqual(sent, [0, 16, 0], "no TCP connection yet: UDP only")
        XCTAssertEqual(initiations(o.transportChanged(path: 17, up: true, nowMs: 2_450)), [17])
        XCTAssertEqual(initiations(o.transportChanged(path: 1, up: true, nowMs: 2_460)), [], "the kind was tried; the retry timer rules")
        let next = initiations(o.tick(nowMs: 3_450))
        XCTAssertEqual(next.count, 1)
    }
}
