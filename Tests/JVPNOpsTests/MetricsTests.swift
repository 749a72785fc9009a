import Foundation
import Glibc
import JVPNCore
import XCTest
@testable import JVPNOps

/// Parses Prometheus text format into `series -> value` (series written as the line has it).
func parseExposition(_ text: String) -> [String: Double] {
    var out: [String: Double] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        guard let sp = line.lastIndex(of: " ") else { continue }
        let key = String(line[..<sp])
        let v = String(line[line.index(after: sp)...])
        out[key] = Double(v) ?? (v.lowercased() == "nan" ? Double.nan : nil)
    }
    return out
}

final class MetricsTests: XCTestCase {
    let peer = "Z0mdbhrp/GSnxyExvnG8bm3YFG54qSX8nMwhcB2/UVI="

    func testSessionStateGauges() {
        let m = JVPNMetrics(interface: "jvpn0")
        m.setSessionState(session: "9f3c", peer: peer, state: .birth)
        m.setSessionState(session: "9f3c", peer: peer, state: .attached)
        let text = m.render()
        let s = parseExposition(text)
        for st in SessionState.allCases {
            XCTAssertEqual(s[#"jvpn_session_state{interface="jvpn0",session="9f3c",peer="\#(peer)",state="\#(st.rawValue)"}"#],
                           st == .attached ? 1 : 0, "\(st)\n\(text)")
        }
        XCTAssertEqual(s[#"jvpn_sessions{interface="jvpn0",state="ATTACHED"}"#], 1)
        XCTAssertEqual(s[#"jvpn_sessions{interface="jvpn0",state="BIRTH"}"#], 0)
        XCTAssertTrue(text.contains("# TYPE jvpn_session_state gauge"))
        XCTAssertTrue(text.contains("# HELP jvpn_session_state "))
    }

    func testTerminatedSessionIsRemovedAndCounted() {
        let m = JVPNMetrics()
        m.setSessionState(session: "aa", peer: peer, state: .attached)
        m.setTraffic(session: "aa", txBytes: 10, rxBytes: 20, txPackets: 1, rxPackets: 2)
        m.setSessionState(session: "bb", peer: peer, state: .recovering)
        m.setSessionState(session: "aa", peer: peer, state: .terminated)
        // A timer tick that races the termination must not bring the series back.
        m.setTraffic(session: "aa", txBytes: 30, rxBytes: 40, txPackets: 3, rxPackets: 4)
        m.setSessionState(session: "aa", peer: peer, state: .attached)
        let text = m.render()
        XCTAssertFalse(text.contains(#"session="aa""#), text)
        let s = parseExposition(text)
        XCTAssertEqual(s["jvpn_sessions_terminated_total"], 1)
        XCTAssertEqual(s[#"jvpn_sessions{state="RECOVERING"}"#], 1)
        XCTAssertEqual(s[#"jvpn_sessions{state="ATTACHED"}"#], 0)
        XCTAssertEqual(s[#"jvpn_session_state{session="bb",peer="\#(peer)",state="RECOVERING"}"#], 1)
    }

    func testSwitchesRejectsAndRecoveryHistogram() {
        let m = JVPNMetrics()
        var s = parseExposition(m.render())
        // Pre-created at zero so alerts see them before the first occurrence.
        XCTAssertEqual(s[#"jvpn_switches_total{reason="LINK_DOWN"}"#], 0)
        XCTAssertEqual(s[#"jvpn_rejects_total{reason="REPLAY_DETECTED"}"#], 0)
        m.recordSwitch(reason: .linkDown, recoveryMs: 42)
        m.recordSwitch(reason: .linkDown, recoveryMs: 700)
        m.recordSwitch(reason: .betterPath, recoveryMs: 8)
        m.recordReject(reason: .replayDetected)
        m.recordReject(reason: .invalidProof)
        m.recordReject(reason: .invalidProof)
        let text = m.render()
        s = parseExposition(text)
        XCTAssertEqual(s[#"jvpn_switches_total{reason="LINK_DOWN"}"#], 2, text)
        XCTAssertEqual(s[#"jvpn_switches_total{reason="BETTER_PATH"}"#], 1)
        XCTAssertEqual(s[#"jvpn_rejects_total{reason="INVALID_PROOF"}"#], 2)
        XCTAssertEqual(s[#"jvpn_rejects_total{reason="REPLAY_DETECTED"}"#], 1)
        XCTAssertTrue(text.contains("# TYPE jvpn_recovery_latency_ms histogram"), text)
        XCTAssertEqual(s[#"jvpn_recovery_latency_ms_bucket{le="10.0"}"#], 1, text)
        XCTAssertEqual(s[#"jvpn_recovery_latency_ms_bucket{le="50.0"}"#], 2)
        XCTAssertEqual(s[#"jvpn_recovery_latency_ms_bucket{le="1000.0"}"#], 3)
        XCTAssertEqual(s[#"jvpn_recovery_latency_ms_bucket{le="+Inf"}"#], 3)
        XCTAssertEqual(s["jvpn_recovery_latency_ms_count"], 3)
        XCTAssertEqual(s["jvpn_recovery_latency_ms_sum"], 750)
    }

    func testTrafficCountersFollowRunningTotals() {
        let m = JVPNMetrics()
        m.setSessionState(session: "aa", peer: peer, state: .attached)
        m.setTraffic(session: "aa", txBytes: 1000, rxBytes: 2000, txPackets: 10, rxPackets: 20)
        m.setTraffic(session: "aa", txBytes: 1500, rxBytes: 2000, txPackets: 15, rxPackets: 20)
        var s = parseExposition(m.render())
        XCTAssertEqual(s[#"jvpn_tx_bytes_total{session="aa"}"#], 1500)
        XCTAssertEqual(s[#"jvpn_rx_bytes_total{session="aa"}"#], 2000)
        XCTAssertEqual(s[#"jvpn_tx_packets_total{session="aa"}"#], 15)
        XCTAssertEqual(s[#"jvpn_rx_packets_total{session="aa"}"#], 20)
        // A total that goes backwards is a counter reset.
        m.setTraffic(session: "aa", txBytes: 100, rxBytes: 2000, txPackets: 1, rxPackets: 20)
        s = parseExposition(m.render())
        XCTAssertEqual(s[#"jvpn_tx_bytes_total{session="aa"}"#], 100)
    }

    func testPathGaugesAndStatus() {
        let m = JVPNMetrics()
        let p1 = "up0/10.201.0.2:40001->10.203.0.1:51820"
        let p2 = "up1/10.202.0.2:40002->10.203.0.1:51820"
        let p3 = "up0/tcp/10.201.0.2:40003->10.203.0.1:51820"
        m.setPath(path: p1, uplink: "up0", transport: "udp", rttMs: 1.5, lossPct: 0, jitterMs: 0.25, status: "active", mtuBytes: 1280)
        m.setPath(path: p2, uplink: "up1", transport: "udp", rttMs: 30, lossPct: 10, jitterMs: 4, status: "standby")
        m.setPath(path: p2, uplink: "up1", transport: "udp", rttMs: .nan, lossPct: 100, jitterMs: 0, status: "dead")
        m.setPath(path: p3, uplink: "up0", transport: "tcp", rttMs: 2.5, lossPct: 0, jitterMs: 0.5, status: "standby")
        var text = m.render()
        var s = parseExposition(text)
        XCTAssertEqual(s[#"jvpn_path_rtt_ms{path="\#(p1)",uplink="up0",transport="udp"}"#], 1.5, text)
        XCTAssertEqual(s[#"jvpn_path_jitter_ms{path="\#(p1)",uplink="up0",transport="udp"}"#], 0.25)
        XCTAssertEqual(s[#"jvpn_path_mtu_bytes{path="\#(p1)",uplink="up0",transport="udp"}"#], 1280)
        XCTAssertEqual(s[#"jvpn_path_mtu_bytes{path="\#(p2)",uplink="up1",transport="udp"}"#], 0, "not measured yet")
        XCTAssertEqual(s[#"jvpn_path_loss_pct{path="\#(p2)",uplink="up1",transport="udp"}"#], 100)
        XCTAssertEqual(s[#"jvpn_path_rtt_ms{path="\#(p2)",uplink="up1",transport="udp"}"#]?.isNaN, true)
        XCTAssertEqual(s[#"jvpn_path_status{path="\#(p1)",uplink="up0",transport="udp",status="active"}"#], 1)
        XCTAssertEqual(s[#"jvpn_path_status{path="\#(p2)",uplink="up1",transport="udp",status="dead"}"#], 1)
        XCTAssertEqual(s[#"jvpn_path_status{path="\#(p2)",uplink="up1",transport="udp",status="standby"}"#], 0)
        XCTAssertEqual(s[#"jvpn_path_rtt_ms{path="\#(p3)",uplink="up0",transport="tcp"}"#], 2.5)
        XCTAssertEqual(s[#"jvpn_path_status{path="\#(p3)",uplink="up0",transport="tcp",status="standby"}"#], 1)
        m.retainPaths([p1])
        text = m.render()
        XCTAssertFalse(text.contains(p2), text)
        XCTAssertFalse(text.contains(p3), text)
        m.removePath(path: p1)
        s = parseExposition(m.render())
        XCTAssertNil(s[#"jvpn_path_rtt_ms{path="\#(p1)",uplink="up0",transport="udp"}"#])
    }

    func testTelemetryLossCounters() {
        let m = JVPNMetrics()
        m.setEventsDropped(0)
        m.setEventsDropped(3)
        m.setEventsDropped(7)
        m.setSyslogFailures(2)
        m.setSecurityEventsSuppressed(40)
        m.setSecurityEventsSuppressed(95)
        let s = parseExposition(m.render())
        XCTAssertEqual(s["jvpn_events_dropped_total"], 7)
        XCTAssertEqual(s["jvpn_syslog_failures_total"], 2)
        XCTAssertEqual(s["jvpn_security_events_suppressed_total"], 95)
    }

    func testPathMtuCountersFollowTheTotals() {
        let m = JVPNMetrics()
        XCTAssertEqual(JVPNMetrics.mtuTotalKeys.count, 7)
        m.setMtuTotals([1, 2, 3, 4, 5, 6, 7])
        m.setMtuTotals([1, 20, 3, 4, 50, 6, 70])
        let s = parseExposition(m.render())
        XCTAssertEqual(s["jvpn_mtu_mss_clamped_total"], 1)
        XCTAssertEqual(s["jvpn_mtu_resegmented_total"], 20)
        XCTAssertEqual(s["jvpn_mtu_fragmented_total"], 3)
        XCTAssertEqual(s["jvpn_mtu_dropped_too_big_total"], 4)
        XCTAssertEqual(s["jvpn_mtu_too_big_sent_total"], 50)
        XCTAssertEqual(s["jvpn_mtu_black_holes_total"], 6)
        XCTAssertEqual(s["jvpn_mtu_probes_total"], 70)
    }

    /// The daemon calls from several threads (timer, event emitter, control socket).
    func testConcurrentUpdatesAndRenders() {
        let m = JVPNMetrics()
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            for j in 0..<200 {
                let id = "s\(i)-\(j % 10)"
                m.setSessionState(session: id, peer: peer, state: j % 3 == 0 ? .recovering : .attached)
                m.setTraffic(session: id, txBytes: UInt64(j), rxBytes: UInt64(j), txPackets: 1, rxPackets: 1)
                m.recordSwitch(reason: .linkDown, recoveryMs: Double(j))
                if j % 50 == 0 { _ = m.render() }
                if j % 7 == 0 { m.setSessionState(session: id, peer: peer, state: .terminated) }
            }
        }
        let s = parseExposition(m.render())
        XCTAssertEqual(s[#"jvpn_switches_total{reason="LINK_DOWN"}"#], 1600)
        XCTAssertEqual(s["jvpn_recovery_latency_ms_count"], 1600)
    }
}
