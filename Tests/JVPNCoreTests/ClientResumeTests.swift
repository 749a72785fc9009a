import XCTest
@testable import JVPNCore

/// The client moving its session to another gateway of a cluster (resume), driven fact by fact:
/// two uplinks (priorities 0, 1) to two gateways (endpoints 0, 1); paths 0 and 16 lead to gateway
/// 0, paths 1 and 17 to gateway 1. Gateways answer probes after 1 ms when `alive` says so and the
/// path leads to the gateway holding the session's keys.
final class ClientResumeTests: XCTestCase {
    struct Driver {
        var o: ClientOrchestrator
        var now: UInt64 = 0
        var log: [(UInt64, OrchestratorAction)] = []
        /// Which gateways answer; the gateway holding the keys is the orchestrator's.
        var alive: Set<Int> = [0, 1]
        /// Paths whose answers are lost.
        var blackholed: Set<UInt32> = []
        /// Probes due for an answer: (at, path, seq).
        var replies: [(UInt64, UInt32, UInt32)] = []
        /// PATH_MTU reports due for a receipt: (at, path, maxDatagram).
        var receipts: [(UInt64, UInt32, Int)] = []

        func answers(_ path: UInt32) -> Bool {
            alive.contains(Driver.gateway(of: path)) && Driver.gateway(of: path) == o.activeGateway && !blackholed.contains(path)
        }

        init(policy: PolicyConfig, gateways: Int = 2) {
            var paths: [PathCandidate] = []
            for u in 0..<2 { for g in 0..<gateways { paths.append(PathCandidate(id: UInt32(u * 16 + g), priority: u, gateway: g)) } }
            o = ClientOrchestrator(policy: policy, paths: paths, noncePrefix: 7, nowMs: 0)
            perform(o.tick(nowMs: 0))
            perform(o.handshakeCompleted(path: 0, nowMs: 1))
        }

        static func gateway(of path: UInt32) -> Int { Int(path % 16) }

        mutating func perform(_ actions: [OrchestratorAction]) {
            for a in actions {
                log.append((now, a))
                switch a {
                case .sendProbe(let path, let seq), .sendMtuProbe(let path, let seq, _):
                    if answers(path) { replies.append((now + 1, path, seq)) }
                case .sendPathMtu(let path, let size):
                    if answers(path) { receipts.append((now + 1, path, size)) }
                case .sendInitiation, .sendResume, .sendReattach, .sendPathResponse, .pathMtuChanged, .activate, .stateChanged, .audit,
                     .switched, .presumedDead, .terminated:
                    break
                }
            }
        }

        mutating func run(ms: UInt64) {
            let end = now + ms
            while now < end {
                now += 1
                let due = replies.filter { $0.0 <= now }
                replies.removeAll { $0.0 <= now }
                for r in due { perform(o.probeReplied(path: r.1, seq: r.2, nowMs: now)) }
                for r in receipts where r.0 <= now { o.pathMtuReceipted(path: r.1, maxDatagram: r.2, nowMs: now) }
                receipts.removeAll { $0.0 <= now }
                if now % 10 == 0 { perform(o.tick(nowMs: now)) }
            }
        }

        func sent<T>(_ pick: (OrchestratorAction) -> T?) -> [(UInt64, T)] { log.compactMap { e in pick(e.1).map { (e.0, $0) } } }
        var resumes: [(UInt64, UInt32)] { sent { if case .sendResume(let p, _) = $0 { return p }; return nil } }
        var reattaches: [(UInt64, UInt32, ControlNonce)] {
            log.compactMap { if case .sendReattach(let p, _, _, let n) = $0.1 { return ($0.0, p, n) }; return nil }
        }
    }

    var policy: PolicyConfig {
        var p = PolicyConfig()
        p.probeIntervalMs = 100
        p.standbyProbeIntervalMs = 1000
        p.deadAfterMs = 500
        return p
    }

    func testGatewayLossResumesOnTheOtherGatewayAtDeadAfter() {
        var d = Driver(policy: policy)
        d.run(ms: 3000)
        XCTAssertEqual(d.o.state, .attached)
        XCTAssertEqual(d.o.activeGateway, 0)
        d.alive.remove(0)
        let lostAt = d.now
        d.run(ms: 1200)
        XCTAssertEqual(d.reattaches.count, 0, "no REATTACH to a path of the dead gateway")
        guard let (at, path) = d.resumes.first else { return XCTFail("no resume: \(d.log.suffix(10))") }
        XCTAssertEqual(path, 1, "the other gateway, preferred uplink first")
        XCTAssertLessThanOrEqual(at - lostAt, policy.deadAfterMs + policy.probeIntervalMs + 10, "resume at DeadAfterMs")
        XCTAssertEqual(d.o.state, .recovering)
        XCTAssertEqual(d.resumes.count, 2, "retried every \(ClientOrchestrator.resumeRetryMs) ms on the next candidate")
        XCTAssertEqual(d.resumes.last?.1, 17)

        // Gateway 1 answers the resume: the new keys are confirmed with a REATTACH on that path.
        d.perform(d.o.handshakeCompleted(path: 17, nowMs: d.now))
        XCTAssertEqual(d.o.activeGateway, 1)
        guard let (_, rpath, nonce) = d.reattaches.last else { return XCTFail("no REATTACH after the resume") }
        XCTAssertEqual(rpath, 17)
        let newVersion: UInt64 = 1 << 32 | 1
        d.perform(d.o.reattachAcked(nonce: nonce, bindingVersion: newVersion, nowMs: d.now + 1))
        XCTAssertEqual(d.o.state, .attached)
        XCTAssertEqual(d.o.active, 17)
        XCTAssertEqual(d.o.bindingVersion, newVersion)
        let switched = d.sent { if case .switched(let f, let t, let r, let ms) = $0 { return (f, t, r, ms) }; return nil }
        XCTAssertEqual(switched.count, 1)
        XCTAssertEqual(switched.first?.1.0, 0)
        XCTAssertEqual(switched.first?.1.1, 17)
        XCTAssertEqual(switched.first?.1.2, .probeTimeout)
        // Settled on gateway 1: both its paths answer, no further moves.
        d.run(ms: 3000)
        XCTAssertEqual(d.o.state, .attached)
        XCTAssertEqual(d.resumes.count, 2)
        XCTAssertEqual(d.o.status(of: 1, nowMs: d.now), "standby")
        XCTAssertEqual(d.o.status(of: 0, nowMs: d.now), "dead")
    }

    /// Gateway 0 fails, the session resumes on gateway 1, gateway 0 comes back (a fresh process:
    /// no PATH_MTU state), gateway 1 fails: back on gateway 0, every path to it reports its MTU
    /// again, the standby as well as the new active path.
    func testResumeReportsEveryKnownMtuToTheNewGateway() {
        var d = Driver(policy: policy)
        d.run(ms: 3000)
        func reports(since t: UInt64) -> Set<UInt32> {
            Set(d.sent { if case .sendPathMtu(let p, _) = $0 { return p }; return nil }.filter { $0.0 >= t }.map(\.1))
        }
        XCTAssertEqual(reports(since: 0), [0, 16], "both paths to gateway 0 measured and reported")
        d.alive.remove(0)
        d.run(ms: 700)
        guard let (_, p1) = d.resumes.last else { return XCTFail("no resume") }
        d.perform(d.o.handshakeCompleted(path: p1, nowMs: d.now))
        guard let (_, _, n1) = d.reattaches.last else { return XCTFail("no REATTACH after the resume") }
        d.perform(d.o.reattachAcked(nonce: n1, bindingVersion: 1 << 32 | 1, nowMs: d.now))
        d.run(ms: 3000)
        XCTAssertEqual(d.o.activeGateway, 1)
        XCTAssertEqual(d.o.state, .attached)

        d.alive = [0]
        let back = d.now
        d.run(ms: 700)
        guard let (_, p0) = d.resumes.last, Driver.gateway(of: p0) == 0 else { return XCTFail("no resume onto gateway 0") }
        d.perform(d.o.handshakeCompleted(path: p0, nowMs: d.now))
        guard let (_, _, n0) = d.reattaches.last else { return XCTFail("no REATTACH after the second resume") }
        d.perform(d.o.reattachAcked(nonce: n0, bindingVersion: 2 << 32 | 1, nowMs: d.now))
        d.run(ms: 3000)
        XCTAssertEqual(d.o.activeGateway, 0)
        XCTAssertEqual(reports(since: back), [0, 16], "the restarted gateway 0 learns both paths' MTU")
    }

    /// TCP paths (ids 0x8000 + uplink * 16 + gateway) connect only towards the session's gateway,
    /// towards every gateway while a resume looks for a new one, and again only towards the new one.
    func testStreamPathsConnectOnlyTowardsTheSessionsGateway() {
        var paths: [PathCandidate] = []
        for u in 0..<2 { for g in 0..<2 {
            paths.append(PathCandidate(id: UInt32(u * 16 + g), priority: u, gateway: g))
            paths.append(PathCandidate(id: 0x8000 + UInt32(u * 16 + g), priority: u, transportRank: 1, isStream: true, gateway: g))
        } }
        var o = ClientOrchestrator(policy: policy, paths: paths, noncePrefix: 7, nowMs: 0)
        _ = o.tick(nowMs: 0)
        XCTAssertTrue(o.wantsConnection(path: 0x8001), "BIRTH: every gateway")
        _ = o.handshakeCompleted(path: 0, nowMs: 1)
        XCTAssertTrue(o.wantsConnection(path: 0x8000))
        XCTAssertTrue(o.wantsConnection(path: 0x8010))
        XCTAssertFalse(o.wantsConnection(path: 0x8001), "attached on gateway 0: no connection to gateway 1")
        XCTAssertFalse(o.wantsConnection(path: 0x8011))
        // Gateway 0 goes silent: a resume starts, connections to gateway 1 are wanted.
        var now: UInt64 = 1
        var resumed = false
        while now < 3000 && !resumed {
            now += 10
            resumed = o.tick(nowMs: now).contains { if case .sendResume = $0 { return true }; return false }
        }
        XCTAssertTrue(resumed, "no resume after gateway 0 fell silent")
        XCTAssertTrue(o.wantsConnection(path: 0x8011), "a resume in flight: every gateway")
        _ = o.handshakeCompleted(path: 1, nowMs: now + 1)
        XCTAssertEqual(o.activeGateway, 1)
        XCTAssertTrue(o.wantsConnection(path: 0x8011))
        XCTAssertFalse(o.wantsConnection(path: 0x8000), "on gateway 1: no connection to gateway 0")
    }

    func testUplinkLossStaysOnTheSameGateway() {
        var d = Driver(policy: policy)
        d.run(ms: 3000)
        d.perform(d.o.linkChanged(uplinkPriority: 0, up: false, nowMs: d.now))
        XCTAssertEqual(d.reattaches.last?.1, 16, "REATTACH to the other uplink of the same gateway")
        XCTAssertEqual(d.resumes.count, 0)
    }

    func testBlackholedUplinkStaysOnTheSameGateway() {
        var d = Driver(policy: policy)
        d.run(ms: 3000)
        // Only path 0 goes silent: the standby to the same gateway answers the check.
        d.blackholed.insert(0)
        d.run(ms: 1000)
        XCTAssertEqual(d.resumes.count, 0, "the gateway still answers on the other uplink")
        XCTAssertEqual(d.reattaches.last?.1, 16)
    }

    func testSingleGatewayNeverResumes() {
        var d = Driver(policy: policy, gateways: 1)
        d.run(ms: 2000)
        d.alive.remove(0)
        d.run(ms: 3000)
        XCTAssertEqual(d.resumes.count, 0)
        XCTAssertNotEqual(d.o.state, .attached)
    }
}
