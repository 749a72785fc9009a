import XCTest
@testable import JVPNCore

/// Path MTU end to end in the simulation: the real orchestrator and the real gateway core over a
/// seeded network whose uplinks silently drop datagrams above a size (ICMP filtered), with loss.
/// The client finds each path's size in both directions, the gateway learns it before it binds
/// the path, and a size that stops passing after a switch is found within a few rounds.
final class MtuSimulationTests: XCTestCase {
    struct Run {
        var net: SimNetwork
        var client: SimClient
        var gateway: SimGateway
        var now: UInt64 = 0
        var nextTick: UInt64 = 0
        var nextData: UInt64 = 0

        init(seed: UInt64, lossPct: Int) {
            var p = PolicyConfig()
            p.probeIntervalMs = 50
            p.standbyProbeIntervalMs = 200
            p.deadAfterMs = 300
            p.stableWindowMs = 1000
            p.switchCooldownMs = 200
            p.maxSwitchesPerMinute = 1000
            net = SimNetwork(uplinks: 2, seed: seed)
            for u in 0..<2 {
                net.uplinks[u].up.dropPct = lossPct
                net.uplinks[u].down.dropPct = lossPct
            }
            client = SimClient(policy: p, uplinks: 2, seed: seed &* 31, rekeyEveryMs: 1_000_000, now: 0)
            gateway = SimGateway(policy: p, seed: seed &* 17)
            client.start(now: 0, net: &net)
        }

        /// Runs until `end` or until `stop` holds (checked every millisecond); true if it held.
        @discardableResult
        mutating func run(until end: UInt64, stop: (Run) -> Bool = { _ in false }) -> Bool {
            while now < end {
                now += 1
                for p in net.due(now) {
                    if p.toGateway { gateway.receive(p, now: now, net: &net) } else { client.receive(p, now: now, net: &net) }
                }
                if now >= nextTick {
                    client.tick(now: now, net: &net)
                    gateway.tick(now: now, net: &net)
                    nextTick = now + 10
                }
                if now >= nextData {
                    client.sendData(now: now, net: &net)
                    gateway.sendData(now: now, net: &net)
                    nextData = now + 20
                }
                if stop(self) { return true }
            }
            return false
        }

        mutating func linkDown(_ u: Int) {
            net.uplinks[u].linkUp = false
            client.link(u, up: false, now: now, net: &net)
        }

        func clientMtu(_ uplink: Int) -> Int? { client.orchestrator.mtu(of: UInt32(uplink + 1))?.inUse }
        func reported(_ uplink: Int) -> Int? { gateway.session?.pathMtus.maxDatagram(towards: net.uplinks[uplink].address) }
    }

    func testEachPathsSizeIsFoundAndTheGatewayKnowsItBeforeTheSwitch() {
        for seed in UInt64(1)...20 {
            var r = Run(seed: seed, lossPct: 10)
            r.net.uplinks[1].up.maxDatagram = 1252 // 1280-byte IPv4 packets
            r.net.uplinks[1].down.maxDatagram = 1252
            XCTAssertTrue(r.run(until: 10_000) { $0.clientMtu(1) == 1280 && $0.reported(1) == 1252 && $0.clientMtu(0) == 1500 },
                          "seed \(seed): found and reported")
            r.linkDown(0)
            XCTAssertTrue(r.run(until: r.now + 3_000) { $0.gateway.session?.bound == $0.net.uplinks[1].address }, "seed \(seed): switched")
            XCTAssertEqual(r.gateway.session?.boundMaxDatagram, 1252, "seed \(seed): the first packet after the bind already fits")
        }
    }

    func testOneDirectionAloneLimitsThePath() {
        var r = Run(seed: 5, lossPct: 0)
        r.net.uplinks[1].down.maxDatagram = 1372 // only the gateway's padded replies die
        XCTAssertTrue(r.run(until: 5_000) { $0.clientMtu(1) == 1400 && $0.reported(1) == 1372 })
    }

    func testABlackHoleAfterASwitchIsFoundWithinAFewRounds() {
        var worst: UInt64 = 0
        for seed in UInt64(1)...20 {
            var r = Run(seed: seed, lossPct: 5)
            XCTAssertTrue(r.run(until: 10_000) { $0.clientMtu(1) == 1500 && $0.reported(1) == 1472 }, "seed \(seed)")
            r.run(until: r.now + 500)
            // The standby path starts dropping large datagrams (small probes still pass), then the
            // active one goes down.
            r.net.uplinks[1].up.maxDatagram = 1252
            r.net.uplinks[1].down.maxDatagram = 1252
            r.linkDown(0)
            let t0 = r.now
            let found = r.run(until: t0 + 3_000) {
                $0.clientMtu(1).map { $0 <= 1280 } == true && $0.gateway.session?.boundMaxDatagram == 1252
                    && $0.gateway.session?.bound == $0.net.uplinks[1].address
            }
            XCTAssertTrue(found, "seed \(seed): black hole not found")
            worst = max(worst, r.now - t0)
            XCTAssertTrue(r.run(until: r.now + 3_000) { $0.clientMtu(1) == 1280 }, "seed \(seed): searched again below")
        }
        // Three rounds of at least 50 ms, a round lost to the 5 % now and then, and the report.
        XCTAssertLessThanOrEqual(worst, 600, "worst \(worst) ms from the switch")
        print("black hole found at most \(worst) ms after the switch (20 seeds, 5 % loss)")
    }
}
