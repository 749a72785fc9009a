import XCTest
@testable import JVPNCore

/// `jvpn reload`: what a new config changes in a running one, and what it may not change.
final class ReloadPlanTests: XCTestCase {
    static let gwKey = "mJRD+957aeUHfZhByy1oHPZROvBzIhaeJQh24BFx7HA="
    static let otherKey = "YPHIdNR5rHMxQVcT/Bktjb33JyltVWwoWCXpe7U5wW8="
    static let a = "de9NlGy3twRo0mq8LZVY+eGJuzZknn8VltlPjzHhhXc="
    static let b = "SXFFOJEIAsJebGDywsTxOGMX3Urlo+dVxAYo0sdONik="
    static let c = "5j7N67n0RBcEgN5V9FR/FMJfnsbkz+f644JBzm+ZPiU="

    func gateway(interface: String = "", peers: [(String, String)], policy: String = "") -> String {
        var t = "[Interface]\nPrivateKey = \(Self.gwKey)\nAddress = 10.77.0.1/24\nListenPort = 51820\n\(interface)\n"
        for (key, allowed) in peers { t += "\n[Peer]\nPublicKey = \(key)\nAllowedIPs = \(allowed)\n" }
        if !policy.isEmpty { t += "\n[Policy]\n\(policy)\n" }
        return t
    }

    func client(uplinks: String? = "up0, up1", endpoints: String = "10.203.0.1:51820", allowed: String = "10.77.0.0/24",
                gatewayKey: String = ReloadPlanTests.b, policy: String = "") -> String {
        var t = "[Interface]\nPrivateKey = \(Self.otherKey)\nAddress = 10.77.0.2/32\n"
        if let uplinks { t += "Uplinks = \(uplinks)\n" }
        t += "\n[Peer]\nPublicKey = \(gatewayKey)\nEndpoint = \(endpoints)\nAllowedIPs = \(allowed)\n"
        if !policy.isEmpty { t += "\n[Policy]\n\(policy)\n" }
        return t
    }

    func config(_ text: String, file: String = "/etc/jvpn/jvpn0.conf") throws -> JVPNConfig {
        try JVPNConfig(parsing: text, file: file)
    }

    func plan(_ old: String, _ new: String) throws -> ReloadPlan {
        try ReloadPlan.make(running: config(old), new: config(new)).get()
    }

    func refusals(_ old: String, _ new: String, line: UInt = #line) throws -> [String] {
        switch ReloadPlan.make(running: try config(old), new: try config(new)) {
        case .success(let p):
            XCTFail("expected a refusal, got \(p.summary)", line: line)
            return []
        case .failure(let e):
            return e.diagnostics.map(\.description)
        }
    }

    func testTheSameConfigChangesNothing() throws {
        let g = gateway(peers: [(Self.a, "10.77.0.2/32")])
        let p = try plan(g, g + "\n# a comment moves nothing\n")
        XCTAssertTrue(p.isEmpty)
        XCTAssertEqual(p.summary, "no change")
    }

    func testGatewayPeersAddedRemovedChangedAndUntouched() throws {
        let old = gateway(peers: [(Self.a, "10.77.0.2/32"), (Self.b, "10.77.0.3/32, 192.168.50.0/24")])
        // a keeps its AllowedIPs (only moved down), b loses 192.168.50.0/24 to the new peer c and gains 10.99.0.0/16.
        let new = gateway(peers: [(Self.c, "10.77.0.4/32, 192.168.50.0/24"), (Self.b, "10.77.0.3/32, 10.99.0.0/16"),
                                  (Self.a, "10.77.0.2/32")])
        let p = try plan(old, new)
        let n = try config(new)
        XCTAssertEqual(p.peers, [
            .changed(n.peers[1], allowedAdded: [IPPrefix("10.99.0.0/16")!], allowedRemoved: [IPPrefix("192.168.50.0/24")!]),
            .added(n.peers[0]),
        ], "a is untouched: not in the plan at all")
        // 192.168.50.0/24 moves from b to c: its kernel route stays.
        XCTAssertEqual(p.routesAdded, [IPPrefix("10.77.0.4/32")!, IPPrefix("10.99.0.0/16")!])
        XCTAssertEqual(p.routesRemoved, [])
        XCTAssertEqual(p.summary, "peers +1 -0 ~1, routes +2 -0")

        let removed = try plan(old, gateway(peers: [(Self.a, "10.77.0.2/32")]))
        XCTAssertEqual(removed.peers, [.removed(publicKey: Self.b)])
        XCTAssertEqual(removed.routesRemoved, [IPPrefix("10.77.0.3/32")!, IPPrefix("192.168.50.0/24")!])
    }

    func testPolicyDifferencesAreNamed() throws {
        let old = gateway(peers: [(Self.a, "10.77.0.2/32")], policy: "DeadAfterMs = 1000")
        let p = try plan(old, gateway(peers: [(Self.a, "10.77.0.2/32")], policy: "DeadAfterMs = 600\nLossVolatilePct = 2.5\nPreemptToPreferred = false"))
        XCTAssertEqual(p.policy, ["DeadAfterMs 1000 -> 600", "LossVolatilePct 5 -> 2.5", "PreemptToPreferred true -> false"])
        XCTAssertTrue(p.peers.isEmpty)
        XCTAssertEqual(p.summary, "policy: DeadAfterMs 1000 -> 600, LossVolatilePct 5 -> 2.5, PreemptToPreferred true -> false")
    }

    func testWhatNeedsARestartIsRefusedAtItsLine() throws {
        let old = gateway(peers: [(Self.a, "10.77.0.2/32")])
        // Line 3 is Address, 4 ListenPort, 5 the extra interface line.
        let new = gateway(interface: "MTU = 1380", peers: [(Self.a, "10.77.0.2/32")])
            .replacingOccurrences(of: "10.77.0.1/24", with: "10.78.0.1/24")
            .replacingOccurrences(of: "ListenPort = 51820", with: "ListenPort = 51821")
        let r = try refusals(old, new)
        XCTAssertEqual(r.count, 3)
        XCTAssertTrue(r[0].hasPrefix("/etc/jvpn/jvpn0.conf:3: Address (10.77.0.1/24 -> 10.78.0.1/24) cannot change while jvpn0 runs"), r[0])
        XCTAssertTrue(r[1].hasPrefix("/etc/jvpn/jvpn0.conf:4: ListenPort cannot change"), r[1])
        XCTAssertTrue(r[2].hasPrefix("/etc/jvpn/jvpn0.conf:5: MTU (1420 -> 1380) cannot change"), r[2])
        XCTAssertTrue(r[0].hasSuffix("apply it with `jvpn down jvpn0` and `jvpn up /etc/jvpn/jvpn0.conf`"))

        let key = try refusals(old, old.replacingOccurrences(of: Self.gwKey, with: Self.otherKey))
        XCTAssertEqual(key.count, 1)
        XCTAssertTrue(key[0].hasPrefix("/etc/jvpn/jvpn0.conf:2: the private key cannot change while jvpn0 runs"), key[0])
        let full = try refusals(old, gateway(peers: [(Self.a, "10.77.0.2/32, 0.0.0.0/0")]))
        XCTAssertTrue(full[0].contains(":9: full tunnel"), full[0])
        let renamed = try refusals(old, gateway(interface: "Name = jvpn1", peers: [(Self.a, "10.77.0.2/32")]))
        XCTAssertTrue(renamed[0].contains(":5: Name (jvpn0 -> jvpn1)"), renamed[0])
        XCTAssertTrue(try refusals(old, gateway(interface: "EventLog = /tmp/x.jsonl", peers: [(Self.a, "10.77.0.2/32")]))[0]
            .contains(":5: EventLog cannot change"))
    }

    func testWorkersChangeIsRefusedAtItsLine() throws {
        let peers = [(Self.a, "10.77.0.2/32")]
        let auto = gateway(peers: peers)
        let two = gateway(interface: "Workers = 2", peers: peers)
        // Line 1 is [Interface], 5 the extra interface line.
        XCTAssertEqual(try refusals(auto, two), [
            "/etc/jvpn/jvpn0.conf:5: Workers (auto -> 2) cannot change while jvpn0 runs; apply it with `jvpn down jvpn0` and `jvpn up /etc/jvpn/jvpn0.conf`",
        ])
        XCTAssertEqual(try refusals(two, gateway(interface: "Workers = 4", peers: peers)), [
            "/etc/jvpn/jvpn0.conf:5: Workers (2 -> 4) cannot change while jvpn0 runs; apply it with `jvpn down jvpn0` and `jvpn up /etc/jvpn/jvpn0.conf`",
        ])
        XCTAssertEqual(try refusals(two, auto), [
            "/etc/jvpn/jvpn0.conf:1: Workers (2 -> auto) cannot change while jvpn0 runs; apply it with `jvpn down jvpn0` and `jvpn up /etc/jvpn/jvpn0.conf`",
        ], "removed: the section's line")
        XCTAssertTrue(try plan(auto, gateway(interface: "Workers = auto", peers: peers)).isEmpty, "auto written out is auto")
        XCTAssertTrue(try plan(two, two + "\n# same count\n").isEmpty)
    }

    func testClientAppendsEndpointsAndUplinksAndRefusesTheRest() throws {
        let old = client()
        let p = try plan(old, client(uplinks: "up0, up1, wwan0", endpoints: "10.203.0.1:51820, 10.204.0.1:51820",
                                     allowed: "10.77.0.0/24, 10.99.0.0/16", policy: "ProbeIntervalMs = 50"))
        XCTAssertEqual(p.uplinksAdded, ["wwan0"])
        XCTAssertEqual(p.endpointsAdded.map(\.description), ["10.204.0.1:51820"])
        XCTAssertEqual(p.routesAdded, [IPPrefix("10.99.0.0/16")!])
        XCTAssertEqual(p.policy, ["ProbeIntervalMs 200 -> 50"])
        guard case .changed(_, let added, let removed)? = p.peers.first, p.peers.count == 1 else { return XCTFail("\(p.peers)") }
        XCTAssertEqual(added, [IPPrefix("10.99.0.0/16")!])
        XCTAssertEqual(removed, [])
        XCTAssertEqual(p.tcpEndpointsAdded.map(\.description), ["10.204.0.1:51820"], "without TcpEndpoint, each Endpoint over TCP too")
        XCTAssertEqual(p.summary, "peers +0 -0 ~1, policy: ProbeIntervalMs 200 -> 50, uplinks +wwan0, endpoints +10.204.0.1:51820, "
                       + "tcp endpoints +10.204.0.1:51820, routes +1 -0")

        // Line 4 is Uplinks, 8 Endpoint, 7 the gateway's PublicKey.
        XCTAssertTrue(try refusals(old, client(uplinks: "up1, up0"))[0].contains(":4: removing or reordering Uplinks"))
        XCTAssertTrue(try refusals(old, client(uplinks: nil))[0].contains(":1: removing or reordering Uplinks"), "no Uplinks line: the [Interface] line")
        XCTAssertTrue(try refusals(old, client(endpoints: "10.204.0.1:51820"))[0].contains(":8: removing or reordering Endpoint"))
        XCTAssertTrue(try refusals(old, client(gatewayKey: Self.c))[0].contains(":7: the gateway's PublicKey cannot change"))
        XCTAssertTrue(try refusals(old, gateway(peers: [(Self.a, "10.77.0.2/32")]))
            .contains { $0.contains("the role (client -> server)") })
    }

    func testTransportKeys() throws {
        let old = client(endpoints: "10.203.0.1:51820\nTcpEndpoint = 10.203.0.1:443")
        let p = try plan(old, client(endpoints: "10.203.0.1:51820\nTcpEndpoint = 10.203.0.1:443, 10.204.0.1:443"))
        XCTAssertEqual(p.tcpEndpointsAdded.map(\.description), ["10.204.0.1:443"])
        XCTAssertEqual(p.endpointsAdded, [])
        XCTAssertFalse(p.isEmpty)
        // Line 9 is TcpEndpoint, 10 Transport.
        XCTAssertTrue(try refusals(old, client(endpoints: "10.203.0.1:51820\nTcpEndpoint = 10.204.0.1:443"))[0]
            .contains(":9: removing or reordering TcpEndpoint"))
        XCTAssertTrue(try refusals(old, client(endpoints: "10.203.0.1:51820\nTcpEndpoint = 10.203.0.1:443\nTransport = tcp, udp"))[0]
            .contains(":10: Transport (udp, tcp -> tcp, udp) cannot change"))
        let gw = gateway(peers: [(Self.a, "10.77.0.2/32")])
        XCTAssertTrue(try plan(gw, gateway(interface: "TcpListen = 51820", peers: [(Self.a, "10.77.0.2/32")])).isEmpty,
                      "the default written out is no change")
        XCTAssertTrue(try refusals(gw, gateway(interface: "TcpListen = 51820, 443", peers: [(Self.a, "10.77.0.2/32")]))[0]
            .contains(":5: TcpListen cannot change"))
    }

    func testEveryProblemIsReportedAtOnce() throws {
        let old = client()
        let new = client(uplinks: "up1", endpoints: "10.209.0.1:51820", gatewayKey: Self.c)
        XCTAssertEqual(try refusals(old, new).count, 3)
    }
}

/// The cores' side of a reload.
final class ReloadCoreTests: XCTestCase {
    let sid = try! SessionID(bytes: [1, 2, 3, 4, 5, 6, 7, 8])
    let wall: UInt64 = 1_700_000_000_000_000_000

    func testGatewayRemovesAPeerWithItsReasonAndNeverReopensIt() {
        var core = GatewayCore<String>(policy: PolicyConfig(), peerCount: 2, seed: 1, nowMs: 0)
        _ = core.initiation(peer: 1, session: sid, timestamp: Timestamp12(unixNanoseconds: wall), wallNs: wall, from: "A", nowMs: 0)
        _ = core.confirmed(peer: 1, session: sid, from: "A", bytes: 49, nowMs: 1)
        XCTAssertEqual(core.session(ofPeer: 1)?.state, .attached)

        let out = core.removePeer(1, reason: .operatorRequest, nowMs: 10)
        XCTAssertEqual(out.first, .send(peer: 1, .close(reason: .operatorRequest), to: "A", paddedTo: 0), "the client is told first")
        XCTAssertTrue(out.contains { if case .stateChanged(1, self.sid, let c) = $0 { return c.to == .terminated && c.reason == .operatorRequest }; return false })
        XCTAssertEqual(core.session(ofPeer: 1)?.state, .terminated)
        XCTAssertEqual(core.removePeer(1, reason: .operatorRequest, nowMs: 11), [], "removing twice does nothing")
        let later = Timestamp12(unixNanoseconds: wall + 5_000_000_000)
        XCTAssertEqual(core.initiation(peer: 1, session: try! SessionID(bytes: [7, 7, 7, 7, 7, 7, 7, 7]), timestamp: later, wallNs: wall,
                                       from: "A", nowMs: 20).0, .drop(.unknownSession))
        // Its probes get the close again (at most once a second), telling a client that missed it.
        let again = core.control(peer: 1, .probe(seq: 1, sentAtNs: 0, pathID: 0), from: "A", bytes: 49, nowMs: 1500)
        XCTAssertEqual(again, [.send(peer: 1, .close(reason: .operatorRequest), to: "A", paddedTo: 0)])

        XCTAssertEqual(core.addPeer(), 2, "a new peer gets a new number")
        XCTAssertEqual(core.peerCount, 3)
        XCTAssertEqual(core.removePeer(0, reason: .operatorRequest, nowMs: 30), [], "a peer without a session: nothing to end")
    }

    func testGatewayPolicyReachesLiveSessions() {
        var core = GatewayCore<String>(policy: PolicyConfig(), peerCount: 1, seed: 1, nowMs: 0)
        _ = core.initiation(peer: 0, session: sid, timestamp: Timestamp12(unixNanoseconds: wall), wallNs: wall, from: "A", nowMs: 0)
        _ = core.confirmed(peer: 0, session: sid, from: "A", bytes: 49, nowMs: 1)
        var p = PolicyConfig()
        p.maxSwitchesPerMinute = 2
        p.transportLossTtlMs = 5000
        core.setPolicy(p)
        XCTAssertEqual(core.policy, p)
        XCTAssertEqual(core.session(ofPeer: 0)?.switchBudgetLimit, 2)
        // The new TransportLossTtlMs ends the silent session at its new bound.
        XCTAssertTrue(core.tick(nowMs: 4000).isEmpty)
        XCTAssertTrue(core.tick(nowMs: 5100).contains { if case .stateChanged(0, _, let c) = $0 { return c.reason == .transportLossTTLExpired }; return false })
    }

    func testOrchestratorTakesNewPathsAndPolicy() {
        var o = ClientOrchestrator(policy: PolicyConfig(), paths: [PathCandidate(id: 0, priority: 0)], noncePrefix: 1, nowMs: 0)
        _ = o.tick(nowMs: 0)
        var p = PolicyConfig()
        p.deadAfterMs = 400
        o.updatePolicy(p)
        XCTAssertEqual(o.policy.deadAfterMs, 400)
        _ = o.addPaths([PathCandidate(id: 16, priority: 1), PathCandidate(id: 0, priority: 5)], nowMs: 10)
        XCTAssertEqual(o.paths.map(\.id), [0, 16], "a known id is not added twice")
        XCTAssertEqual(o.paths.map(\.priority), [0, 1])
        // The new path is probed as a standby once the session is attached.
        _ = o.handshakeCompleted(path: 0, nowMs: 20)
        let actions = (0..<30).flatMap { o.tick(nowMs: 30 + UInt64($0) * 100) }
        XCTAssertTrue(actions.contains { if case .sendProbe(16, _) = $0 { return true }; return false })
    }
}
