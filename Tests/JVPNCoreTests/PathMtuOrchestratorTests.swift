import XCTest
@testable import JVPNCore

/// The MTU search inside the orchestrator: every working path is searched, the gateway is told
/// (and told again until it receipts), padded probes never count as a path's loss, a path below
/// the floor is ranked after the others, and a black hole on the new path after a switch is found
/// within a few rounds.
final class PathMtuOrchestratorTests: XCTestCase {
    func mtuChanges(_ s: OrchestratorSim) -> [(UInt32, Int?, Int?, Bool)] {
        s.log.compactMap { if case .pathMtuChanged(let p, let f, let t, let b) = $0 { return (p, f, t, b) }; return nil }
    }

    func reports(_ s: OrchestratorSim, after i: Int = 0) -> [(UInt32, Int)] {
        s.log[i...].compactMap { if case .sendPathMtu(let p, let d) = $0 { return (p, d) }; return nil }
    }

    func testEveryPathIsSearchedAndReportedUntilReceipted() {
        var s = OrchestratorSim(policy: rigPolicy())
        s.pathMtu[16] = 1400
        s.run(ms: 2_000)
        XCTAssertEqual(s.o.mtu(of: 0)?.inUse, 1500)
        XCTAssertEqual(s.o.mtu(of: 16)?.inUse, 1400)
        XCTAssertTrue(mtuChanges(s).contains { $0.0 == 16 && $0.1 == nil && $0.2 == 1400 && !$0.3 })
        XCTAssertEqual(Set(reports(s).map(\.0)), [0, 16])
        XCTAssertTrue(reports(s).contains { $0 == (16, 1372) }, "the datagram: 1400 - 28")
        XCTAssertEqual(s.gateway.core.session(ofPeer: 0)?.pathMtus.maxDatagram(towards: 16), 1372)
        XCTAssertEqual(s.gateway.core.session(ofPeer: 0)?.boundMaxDatagram, 1472)
        let mark = s.log.count
        s.run(ms: 1_000)
        XCTAssertTrue(reports(s, after: mark).isEmpty, "receipted: not sent again")
        XCTAssertEqual(s.o.lossPct(of: 16, nowMs: s.now), 0, "the probes that were too big are not loss")
        XCTAssertEqual(s.o.state, .attached)
    }

    func testAReportIsRepeatedUntilReceiptedAndSentAgainAfterASwitch() {
        var s = OrchestratorSim(policy: rigPolicy())
        s.dropReceipts = true
        s.run(ms: 1_000)
        var mark = s.log.count
        s.run(ms: 1_000)
        let repeats = reports(s, after: mark).filter { $0.0 == 0 }.count
        XCTAssertEqual(repeats, 10, "every max(ProbeIntervalMs, 100 ms) while unreceipted")
        s.dropReceipts = false
        s.run(ms: 200)
        mark = s.log.count
        s.run(ms: 1_000)
        XCTAssertTrue(reports(s, after: mark).isEmpty)
        s.link(0, up: false)
        mark = s.log.count
        s.run(ms: 100)
        XCTAssertEqual(s.o.active, 16)
        XCTAssertEqual(reports(s, after: mark).map(\.0), [16], "the new binding's report goes again (the gateway may see a new address)")
    }

    func testAPathBelowTheFloorIsLeftForOneAboveIt() {
        var s = OrchestratorSim(policy: rigPolicy())
        s.pathMtu[0] = 1280 // the preferred uplink carries 1280 - 60 = 1220 inner bytes: below 1280
        s.run(ms: 3_000)
        XCTAssertEqual(s.o.mtu(of: 0)?.inUse, 1280)
        XCTAssertTrue(s.o.mtu(of: 0)?.isBelowFloor ?? false)
        XCTAssertEqual(s.o.ranked(nowMs: s.now).map(\.id), [16, 0])
        XCTAssertEqual(s.o.active, 16, "moved once the other path was stable")
        XCTAssertEqual(s.switchesLogged.first?.2, .betterPath)
        // It is still used when nothing else works: a switch like any other.
        s.link(16, up: false)
        s.run(ms: 200)
        XCTAssertEqual(s.o.active, 0)
        XCTAssertEqual(s.switchesLogged.last?.2, .linkDown)
    }

    func testABlackHoleOnTheNewPathIsFoundWithinAFewRoundsAfterTheSwitch() {
        var s = OrchestratorSim(policy: rigPolicy())
        s.run(ms: 2_000)
        XCTAssertEqual(s.o.mtu(of: 16)?.inUse, 1500)
        s.pathMtu[16] = 1280 // small probes still pass, large ones die
        s.link(0, up: false)
        let switched = s.now
        var found: UInt64?
        for _ in 0..<100 {
            s.run(ms: 5)
            if found == nil, mtuChanges(s).contains(where: { $0.0 == 16 && $0.3 }) { found = s.now }
        }
        XCTAssertEqual(s.o.active, 16)
        XCTAssertNotNil(found)
        XCTAssertLessThanOrEqual((found ?? .max) - switched, 3 * 50 + 3 * 10 + 20, "three rounds of 50 ms after the switch")
        XCTAssertEqual(s.o.mtu(of: 16)?.inUse, 1280)
        XCTAssertEqual(s.gateway.core.session(ofPeer: 0)?.boundMaxDatagram, 1252, "the gateway was told")
        XCTAssertEqual(s.o.state, .attached, "the only path left: kept, fitted")
    }

    func testLargeProbesDyingIsNeitherLossNorSilence() {
        var s = OrchestratorSim(policy: rigPolicy())
        s.pathMtu[0] = 600
        s.pathMtu[16] = 600
        s.run(ms: 5_000)
        XCTAssertEqual(s.o.state, .attached)
        XCTAssertTrue(s.reasons(to: .volatile).isEmpty)
        XCTAssertEqual(s.o.lossPct(of: 0, nowMs: s.now), 0)
        XCTAssertEqual(s.o.mtu(of: 0)?.inUse, 600)
        XCTAssertEqual(s.o.active, 0, "both below the floor: the uplink order decides")
    }
}
