import XCTest
@testable import JVPNCore

/// Deterministic simulation of the control plane under faults. `JVPN_SIM_SEEDS=N` runs N random
/// schedules (default 1200, what CI runs; deploy/bench/simulation.sh runs thousands more) from seed
/// `JVPN_SIM_FIRST_SEED` (default 1); `JVPN_SIM_SEED=S` replays one with a trace.
/// `JVPN_SIM_SCENARIO=budget` makes both use the spent-gateway-budget scenario.
final class ConvergenceSimulationTests: XCTestCase {
    private func environment(_ name: String) -> String? {
        guard let v = getenv(name) else { return nil }
        return String(cString: v)
    }

    private func report(_ outcomes: [Simulation.Outcome], _ label: String) {
        let converged = outcomes.compactMap { o in o.convergedAtMs.map { $0 - o.healAtMs } }.sorted()
        let failed = outcomes.filter { !$0.failures.isEmpty }
        let median = converged.isEmpty ? 0 : converged[converged.count / 2]
        let p99 = converged.isEmpty ? 0 : converged[min(converged.count - 1, converged.count * 99 / 100)]
        print("simulation \(label): \(outcomes.count) schedules, \(failed.count) failed; converged after heal: median \(median) ms, "
              + "p99 \(p99) ms, max \(converged.last ?? 0) ms; switches \(outcomes.map(\.switches).reduce(0, +)), "
              + "sessions started \(outcomes.map(\.sessions).reduce(0, +))")
        for o in failed.prefix(10) { XCTFail("\(label) \(o) — replay with JVPN_SIM_SEED=\(o.seed)") }
    }

    func testRandomSchedulesConverge() {
        let count = UInt64(environment("JVPN_SIM_SEEDS").flatMap { UInt64($0) } ?? 1200)
        let first = UInt64(environment("JVPN_SIM_FIRST_SEED").flatMap { UInt64($0) } ?? 1)
        let scenario = chosenScenario()
        var outcomes: [Simulation.Outcome] = []
        for seed in first..<(first + count) {
            var sim = Simulation(seed: seed, scenario: scenario)
            outcomes.append(sim.run())
        }
        report(outcomes, "\(scenario)")
    }

    /// `JVPN_SIM_SCENARIO=budget` runs or replays `lossyFlapsGatewayBudgetSpent` instead of the
    /// random schedules.
    private func chosenScenario() -> Simulation.Scenario {
        environment("JVPN_SIM_SCENARIO") == "budget" ? .lossyFlapsGatewayBudgetSpent : .random
    }

    func testReplayOneSeed() throws {
        guard let s = environment("JVPN_SIM_SEED").flatMap({ UInt64($0) }) else { throw XCTSkip("set JVPN_SIM_SEED to replay a schedule") }
        var sim = Simulation(seed: s, scenario: chosenScenario(), tracing: true)
        let o = sim.run()
        print((sim.trace + sim.client.journal).sorted { (Int($0.prefix { $0 != ":" }) ?? 0) < (Int($1.prefix { $0 != ":" }) ?? 0) }
            .joined(separator: "\n"))
        print("gateway: \(String(describing: sim.gateway.session))")
        XCTAssertTrue(o.failures.isEmpty, "\(o)")
    }

    private func scenario(_ scenario: Simulation.Scenario, seeds: ClosedRange<UInt64> = 1...200) {
        var outcomes: [Simulation.Outcome] = []
        for seed in seeds {
            var sim = Simulation(seed: seed, scenario: scenario)
            outcomes.append(sim.run())
        }
        report(outcomes, "\(scenario)")
    }

    func testLostAckAfterASwitchConverges() { scenario(.ackLost) }

    func testLostAckWithTcpPathsLeavesNoStaleReattachBehind() { scenario(.ackLostOverTcp, seeds: 1...100) }

    func testOneWayBrokenUplinkAtStartConverges() { scenario(.oneWayAtStart) }

    func testLossyFlapsConverge() { scenario(.lossyFlaps) }

    func testMoveRefusedBySpentGatewayBudgetCostsNothing() { scenario(.lossyFlapsGatewayBudgetSpent, seeds: 1...100) }

    func testUdpBlockedAttachesOverTcpAndReturnsToUdp() { scenario(.udpBlocked, seeds: 1...100) }

    func testTcpResetsAndStallsConverge() { scenario(.tcpFaults, seeds: 1...100) }
}
