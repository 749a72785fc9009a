import XCTest
@testable import JVPNCore

/// Deterministic simulation of a gateway cluster (ClusterSimulation). `JVPN_CLUSTER_SIM_SEEDS=N`
/// runs N random schedules (default 100: ~13 s of the CI's unit tests in a debug build; longer runs
/// are recorded in BENCHMARKS.md), `JVPN_CLUSTER_SIM_SEED=S` replays one with a trace.
final class ClusterSimulationTests: XCTestCase {
    private func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

    func testRandomScheduleConverges() {
        let count = UInt64(environment("JVPN_CLUSTER_SIM_SEEDS").flatMap { UInt64($0) } ?? 100)
        var failed = 0, claims = 0, sessions = 0, preemptions = 0
        for seed in 1...count {
            var sim = ClusterSimulation(seed: seed, gateways: seed % 2 == 0 ? 2 : 3)
            let failures = sim.run()
            claims += sim.ownerChanges
            sessions += sim.sessionsStarted
            preemptions += sim.preemptions
            if !failures.isEmpty {
                failed += 1
                if failed <= 5 { XCTFail("seed \(seed): \(failures.prefix(3).joined(separator: "; ")) — replay with JVPN_CLUSTER_SIM_SEED=\(seed)") }
            }
        }
        print("cluster simulation: \(count) schedules, \(failed) failed; \(claims) ownership changes, \(preemptions) preemptions, \(sessions) sessions started")
    }

    func testReplayOneSeed() throws {
        guard let s = environment("JVPN_CLUSTER_SIM_SEED").flatMap({ UInt64($0) }) else {
            throw XCTSkip("set JVPN_CLUSTER_SIM_SEED to replay a schedule")
        }
        var sim = ClusterSimulation(seed: s, gateways: s % 2 == 0 ? 2 : 3, tracing: true)
        let failures = sim.run()
        print(sim.trace.joined(separator: "\n"))
        XCTAssertEqual(failures, [])
    }
}
