import XCTest
@testable import JVPNCore

/// RTT-based failure detection in the deterministic simulation (`RttSim`): a blackhole under
/// traffic is left within three PTOs plus one standby RTT at any RTT; jitter without loss and
/// one-way traffic never cause a switch.
final class SuspicionSimulationTests: XCTestCase {
    /// Two paths with the given RTT and jitter (each direction: RTT/2 +- jitterPct of it); the
    /// standby is a little slower.
    private func links(rttUs: UInt64, jitterPct: UInt64) -> [UInt32: RttSim.Link] {
        func link(_ rtt: UInt64) -> RttSim.Link {
            let oneWay = rtt / 2, j = oneWay * jitterPct / 100
            return RttSim.Link(oneWayUs: (oneWay - j)...(oneWay + j))
        }
        return [0: link(rttUs), 16: link(rttUs + rttUs / 5)]
    }

    func testBlackholeUnderTrafficIsLeftWithinThreePTOsAndAStandbyRTT() {
        for (rttUs, seed) in [(UInt64(100), UInt64(1)), (20_000, 2), (100_000, 3), (300_000, 4)] {
            var policy = PolicyConfig()
            // DeadAfterMs must sit above a few RTTs for the path to be usable at all; the
            // suspicion must act well before it.
            policy.deadAfterMs = max(1000, rttUs / 1000 * 10)
            for rep in 0..<5 {
                var sim = RttSim(policy: policy, links: links(rttUs: rttUs, jitterPct: 20), traffic: .echo(everyUs: 1000),
                                 seed: seed * 100 + UInt64(rep))
                sim.run(ms: 5_000 + UInt64(rep) * 37)
                XCTAssertEqual(sim.o.active, 0)
                XCTAssertEqual(sim.o.state, .attached)
                let pto = try! XCTUnwrap(sim.o.probeTimeoutMs(of: 0))
                XCTAssertEqual(sim.o.suspicion.openingThresholdMs(ptoMs: pto), pto, "no false alarm before the fault (RTT \(rttUs) µs)")
                let standbyRttMs = sim.links[16]!.rttMs
                let t0 = sim.nowUs
                sim.links[0]!.blackholed = true
                sim.run(ms: policy.deadAfterMs * 3)
                let after = sim.switches.filter { $0.us >= t0 }
                XCTAssertEqual(after.count, 1, "RTT \(rttUs) µs: one switch")
                guard let s = after.first else { continue }
                XCTAssertEqual(s.to, 16)
                XCTAssertEqual(s.reason, .probeTimeout)
                XCTAssertEqual(sim.presumedDead.filter { $0 >= t0 }.count, 1, "detected by suspicion, not by DeadAfterMs")
                let tookMs = Double(s.us - t0) / 1000
                // Slack: the application's packet interval, the sampling interval and the ms clock.
                let boundMs = 3 * pto + standbyRttMs * 1.25 + 1 + Double(max(1, UInt64(pto / 10))) + 2
                XCTAssertLessThanOrEqual(tookMs, boundMs, "RTT \(rttUs) µs: switched after \(tookMs) ms, PTO \(pto) ms")
                XCTAssertLessThan(tookMs, Double(policy.deadAfterMs), "RTT \(rttUs) µs: faster than DeadAfterMs")
                print("blackhole RTT \(rttUs) µs rep \(rep): switched after \(tookMs) ms (PTO \(pto) ms, bound \(boundMs) ms)")
            }
        }
    }

    func testHeavyJitterWithoutLossNeverSwitchesInTenMinutes() {
        // 100 ms +- 50 % each way, and the namespace test's 20 +- 10 ms each way (RTT 40 +- 20 ms).
        for (rttUs, seed) in [(UInt64(100_000), UInt64(11)), (40_000, 12)] {
            for traffic in [RttSim.Traffic.bursty(serverThinkMs: 200), .echo(everyUs: 2_000)] {
                var sim = RttSim(policy: PolicyConfig(), links: links(rttUs: rttUs, jitterPct: 50), traffic: traffic, seed: seed)
                sim.run(ms: 600_000)
                XCTAssertTrue(sim.switches.isEmpty, "RTT \(rttUs) µs, \(traffic): \(sim.switches.count) switches")
                XCTAssertTrue(sim.presumedDead.isEmpty, "RTT \(rttUs) µs, \(traffic)")
                XCTAssertEqual(sim.o.state, .attached)
                XCTAssertEqual(sim.stateChanges.filter { $0.to != .attached }.count, 0, "\(sim.stateChanges)")
                let c = sim.o.suspicion.counters
                XCTAssertLessThanOrEqual(c.probes, 600 * 10, "suspicion probes stay within the budget")
                print("jitter RTT \(rttUs) µs \(traffic): suspicion raised \(c.raised) cleared \(c.cleared) probes \(c.probes) in 600 s")
            }
        }
    }

    func testOneWayTrafficOnAHealthyPathNeverSwitchesAndProbesStayCheap() {
        for (rttUs, seed) in [(UInt64(100), UInt64(21)), (20_000, 22), (100_000, 23)] {
            var sim = RttSim(policy: PolicyConfig(), links: links(rttUs: rttUs, jitterPct: 10), traffic: .oneWay(everyUs: 1_000), seed: seed)
            sim.run(ms: 120_000)
            XCTAssertTrue(sim.switches.isEmpty, "RTT \(rttUs) µs: \(sim.switches.count) switches")
            XCTAssertEqual(sim.o.state, .attached)
            let c = sim.o.suspicion.counters
            XCTAssertEqual(c.confirmed, 0)
            // Backoff after each false alarm keeps it near one episode a second, far below the
            // bucket's 10 per second.
            XCTAssertLessThanOrEqual(c.probes, 120 * 3, "RTT \(rttUs) µs: \(c.probes) suspicion probes in 120 s")
            print("one-way RTT \(rttUs) µs: suspicion raised \(c.raised) cleared \(c.cleared) probes \(c.probes) in 120 s")
        }
    }

    func testIdleSessionKeepsDeadAfterMsAsItsBound() {
        var policy = PolicyConfig()
        policy.deadAfterMs = 1000
        var sim = RttSim(policy: policy, links: links(rttUs: 20_000, jitterPct: 10), traffic: .idle, seed: 31)
        sim.run(ms: 5_000)
        let t0 = sim.nowUs
        sim.links[0]!.blackholed = true
        sim.run(ms: 3_000)
        XCTAssertTrue(sim.presumedDead.isEmpty, "no traffic, nothing to be suspicious about")
        let s = try! XCTUnwrap(sim.switches.first { $0.us >= t0 })
        XCTAssertEqual(s.reason, .probeTimeout)
        XCTAssertGreaterThanOrEqual(Double(s.us - t0) / 1000, Double(policy.deadAfterMs) - Double(policy.probeIntervalMs))
    }

    func testSilenceWithoutAnAnsweringStandbyDoesNotSwitchEarly() {
        var policy = PolicyConfig()
        policy.deadAfterMs = 1000
        var sim = RttSim(policy: policy, links: links(rttUs: 20_000, jitterPct: 10), traffic: .echo(everyUs: 1_000), seed: 41)
        sim.run(ms: 5_000)
        let t0 = sim.nowUs
        // The gateway is gone: every path is silent, a switch would gain nothing.
        sim.links[0]!.blackholed = true
        sim.links[16]!.blackholed = true
        sim.run(ms: 900)
        XCTAssertTrue(sim.presumedDead.filter { $0 >= t0 }.isEmpty)
        XCTAssertEqual(sim.o.state, .attached, "still on the active path before DeadAfterMs")
        XCTAssertEqual(sim.o.suspicion.counters.raised, 1)
    }

    func testTheSameSeedGivesTheSameRun() {
        func run() -> [String] {
            var sim = RttSim(policy: PolicyConfig(), links: links(rttUs: 20_000, jitterPct: 30), traffic: .bursty(serverThinkMs: 100), seed: 51)
            sim.run(ms: 3_000)
            sim.links[0]!.blackholed = true
            sim.run(ms: 2_000)
            return sim.log.map { "\($0.us) \($0.action)" }
        }
        XCTAssertEqual(run(), run())
    }
}
