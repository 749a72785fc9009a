import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import JVPNCore

/// An SVG read back as a tree: the tests check what was drawn against the events it was drawn from.
final class SVGNode {
    let name: String
    let attributes: [String: String]
    var children: [SVGNode] = []
    var text = ""
    weak var parent: SVGNode?

    init(name: String, attributes: [String: String]) {
        self.name = name
        self.attributes = attributes
    }

    func all(_ name: String, cls: String? = nil) -> [SVGNode] {
        var out: [SVGNode] = []
        func visit(_ n: SVGNode) {
            if n.name == name && (cls == nil || n.attributes["class"] == cls) { out.append(n) }
            n.children.forEach(visit)
        }
        visit(self)
        return out
    }

    var title: String { children.first { $0.name == "title" }?.text ?? "" }
    func double(_ key: String) -> Double { Double(attributes[key] ?? "") ?? .nan }

    static func parse(_ text: String) throws -> SVGNode {
        final class Builder: NSObject, XMLParserDelegate {
            var root: SVGNode?
            var current: SVGNode?
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                        attributes: [String: String]) {
                let n = SVGNode(name: name, attributes: attributes)
                n.parent = current
                current?.children.append(n)
                if root == nil { root = n }
                current = n
            }
            func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
                current = current?.parent
            }
            func parser(_ parser: XMLParser, foundCharacters string: String) { current?.text += string }
        }
        let parser = XMLParser(data: Data(text.utf8))
        let b = Builder()
        parser.delegate = b
        guard parser.parse(), let root = b.root else {
            throw NSError(domain: "svg", code: 1, userInfo: [NSLocalizedDescriptionKey: "not well-formed XML: \(String(describing: parser.parserError))"])
        }
        return root
    }
}

final class TimelineTests: XCTestCase {
    let t0: UInt64 = 1_795_000_000_000   // 2026-11-18T11:06:40Z, a fixed wall-clock origin
    let sid = "9f3c2a1b4d5e6f70"

    func ev(_ kind: SessionEvent.Kind, _ atMs: UInt64, session: String? = nil, _ fill: (inout SessionEvent) -> Void = { _ in }) -> SessionEvent {
        var e = SessionEvent(timestampMs: atMs, kind: kind, side: "client", session: session ?? sid, peer: "Z0mdPEER=")
        fill(&e)
        return e
    }

    func change(_ atMs: UInt64, _ from: SessionState, _ to: SessionState, _ reason: ReasonCode, v: UInt64 = 1, session: String? = nil) -> SessionEvent {
        ev(.stateChange, atMs, session: session) { $0.from = from.rawValue; $0.to = to.rawValue; $0.reason = reason.rawValue; $0.stateVersion = v }
    }

    func switchEvent(_ atMs: UInt64, _ reason: ReasonCode, recoveryMs: UInt64, session: String? = nil) -> SessionEvent {
        ev(.transportSwitch, atMs, session: session) {
            $0.fromPath = "up0/10.201.0.2:40001->10.203.0.1:51820"
            $0.toPath = "up1/10.202.0.2:40002->10.203.0.1:51820"
            $0.reason = reason.rawValue
            $0.recoveryMs = recoveryMs
        }
    }

    func security(_ atMs: UInt64, _ reason: ReasonCode) -> SessionEvent {
        ev(.security, atMs) { $0.reason = reason.rawValue; $0.remote = "192.0.2.66:4444" }
    }

    /// A failover: ATTACHED -> RECOVERING, the switch, RECOVERING -> ATTACHED.
    func failover(_ atMs: UInt64, _ reason: ReasonCode, recoveryMs: UInt64, session: String? = nil) -> [SessionEvent] {
        [change(atMs, .attached, .recovering, reason, session: session),
         switchEvent(atMs + recoveryMs, reason, recoveryMs: recoveryMs, session: session),
         change(atMs + recoveryMs, .recovering, .attached, .reattachOK, session: session)]
    }

    func render(_ input: TimelineInput) throws -> (String, SVGNode) {
        let svg = TimelineSVG.render(try TimelineModel.build(input))
        return (svg, try SVGNode.parse(svg))
    }

    /// Where a switch mark points: the apex of its triangle ("Mx1 y Lx2 y Lx y Z").
    func markX(_ g: SVGNode) -> Double {
        let d = g.all("path")[0].attributes["d"]!
        return Double(d.split(separator: "L")[2].split(separator: " ")[0]) ?? .nan
    }

    func assertSelfContained(_ svg: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertFalse(svg.contains("<script"), "no script", file: file, line: line)
        XCTAssertFalse(svg.contains("href"), "no link or external reference", file: file, line: line)
        XCTAssertFalse(svg.contains("url("), "no url() reference", file: file, line: line)
        XCTAssertFalse(svg.contains("@import"), "no imported style", file: file, line: line)
        XCTAssertFalse(svg.contains("<image"), "no external image", file: file, line: line)
        XCTAssertFalse(svg.contains("<foreignObject"), file: file, line: line)
        // The only URI in the document is the SVG namespace name.
        XCTAssertEqual(svg.components(separatedBy: "http").count - 1, 1, file: file, line: line)
    }

    // MARK: structure against the events

    func testBandsSwitchesAndMarksMatchTheEvents() throws {
        var events = [change(t0, .birth, .attached, .handshakeOK)]
        events += failover(t0 + 60_000, .linkDown, recoveryMs: 41)
        events.append(change(t0 + 200_000, .attached, .volatile, .lossThreshold))
        events.append(change(t0 + 230_000, .volatile, .attached, .stabilityRestored))
        events += failover(t0 + 400_000, .probeTimeout, recoveryMs: 1180)
        events.append(security(t0 + 300_000, .replayDetected))
        events.append(security(t0 + 500_000, .invalidProof))
        events.append(ev(.audit, t0 + 399_000) { $0.check = "path_suspicion"; $0.result = "fail"; $0.detail = "up0 silent" })
        events.sort { $0.timestampMs < $1.timestampMs }
        let (svg, root) = try render(TimelineInput(interface: "jvpn0", role: "client", events: events, takenAtMs: t0 + 600_000))
        assertSelfContained(svg)
        XCTAssertEqual(root.name, "svg")

        // One band per state the session was in, in order, coloured by state.
        let bands = root.all("rect", cls: "band")
        XCTAssertEqual(bands.map { $0.attributes["data-state"]! },
                       ["BIRTH", "ATTACHED", "RECOVERING", "ATTACHED", "VOLATILE", "ATTACHED", "RECOVERING", "ATTACHED"])
        for b in bands {
            XCTAssertEqual(b.attributes["fill"], TimelineSVG.stateColor(SessionState(rawValue: b.attributes["data-state"]!)!))
        }
        XCTAssertEqual(root.all("g", cls: "session").map { $0.attributes["data-session"] }, [sid])
        // Bands follow each other left to right and the last one reaches the end of the window.
        // Bands follow each other without overlap: the 41 ms RECOVERING (under a pixel) keeps its
        // 2-pixel sliver and the ATTACHED band after it starts where the sliver ends.
        for (a, b) in zip(bands, bands.dropFirst()) {
            XCTAssertGreaterThanOrEqual(b.double("x"), a.double("x") + a.double("width") - 0.11)
        }
        XCTAssertEqual(bands[2].double("width"), 2, accuracy: 0.11)
        let volatile = bands[4]
        XCTAssertEqual(volatile.double("width"), 30.0 / 600.0 * 1000, accuracy: 0.2)   // 30 s of 600 s on 1000 px
        XCTAssertTrue(volatile.title.contains("VOLATILE (LOSS_THRESHOLD)"))
        XCTAssertEqual(bands.last!.double("x") + bands.last!.double("width"), 1170, accuracy: 0.2)

        // Each TRANSPORT_SWITCH marked once with its reason and recovery_ms, label and tooltip.
        let switches = root.all("g", cls: "switch")
        XCTAssertEqual(switches.count, 2)
        XCTAssertEqual(switches.map { $0.attributes["data-count"] }, ["1", "1"])
        XCTAssertEqual(switches.map { $0.attributes["data-recovery-max"] }, ["41", "1180"])
        XCTAssertTrue(switches[0].title.contains("LINK_DOWN, recovery_ms 41"))
        XCTAssertTrue(switches[0].title.contains("up0/10.201.0.2:40001->10.203.0.1:51820 -> up1/"))
        XCTAssertEqual(switches.map { $0.all("text").first?.text }, ["LINK_DOWN 41 ms", "PROBE_TIMEOUT 1180 ms"])
        // At its time: 60.041 s of 600 s.
        XCTAssertEqual(markX(switches[0]), 170 + 60.041 / 600 * 1000, accuracy: 0.1)
        XCTAssertEqual(switches[0].all("line")[0].double("x1"), markX(switches[0]), "a guide line through the lanes")

        let alerts = root.all("g", cls: "alert")
        XCTAssertEqual(alerts.filter { $0.attributes["data-kind"] == "SECURITY_EVENT" }.count, 2)
        XCTAssertEqual(alerts.filter { $0.attributes["data-kind"] == "AUDIT_EVENT" }.count, 1)
        XCTAssertTrue(alerts.contains { $0.title.contains("REPLAY_DETECTED from 192.0.2.66:4444") })
        XCTAssertTrue(svg.contains("2 switches"))
    }

    func testAnHourWithHundredsOfEventsIsAggregatedAndStaysReadable() throws {
        var rng = SeededRandom(seed: 7)
        var events = [change(t0, .birth, .attached, .handshakeOK)]
        let reasons: [ReasonCode] = [.linkDown, .probeTimeout, .betterPath, .addressLost]
        var at = t0 + 5_000
        var expectedSwitches = 0
        while at < t0 + 3_590_000 {
            events += failover(at, reasons[Int(rng.next() % 4)], recoveryMs: 5 + rng.next() % 900)
            expectedSwitches += 1
            at += 1_000 + rng.next() % 15_000
        }
        for _ in 0..<300 {
            events.append(security(t0 + 1_000 + rng.next() % 3_590_000, .replayDetected))
        }
        events.sort { $0.timestampMs < $1.timestampMs }
        XCTAssertGreaterThan(expectedSwitches, 300)
        let (svg, root) = try render(TimelineInput(interface: "jvpn0", role: "client", events: events, takenAtMs: t0 + 3_600_000))
        assertSelfContained(svg)

        // Every switch is accounted for, in fewer marks than pixels allow.
        let switches = root.all("g", cls: "switch")
        XCTAssertEqual(switches.reduce(0) { $0 + Int($1.attributes["data-count"]!)! }, expectedSwitches)
        XCTAssertLessThanOrEqual(switches.count, Int(1000 / TimelineSVG.binPx) + 1)
        XCTAssertLessThan(switches.count, expectedSwitches)
        // Marks are at least a bin apart.
        let xs = switches.map(markX)
        XCTAssertTrue(switches.allSatisfy { $0.all("line").isEmpty }, "no guide lines through the bands under hundreds of marks")
        for (a, b) in zip(xs, xs.dropFirst()) { XCTAssertGreaterThanOrEqual(b - a, TimelineSVG.binPx - 0.11) }
        // Labels do not overlap within a row (width estimate as drawn: 6.2 px a character).
        var rows: [Double: [(Double, Double)]] = [:]
        for s in switches {
            for t in s.all("text") {
                let half = Double(t.text.count) * 3.1
                rows[t.double("y"), default: []].append((t.double("x") - half, t.double("x") + half))
            }
        }
        XCTAssertFalse(rows.isEmpty)
        for (_, spans) in rows {
            for (a, b) in zip(spans, spans.dropFirst()) { XCTAssertLessThan(a.1, b.0) }
        }
        let security = root.all("g", cls: "alert").filter { $0.attributes["data-kind"] == "SECURITY_EVENT" }
        XCTAssertEqual(security.reduce(0) { $0 + Int($1.attributes["data-count"]!)! }, 300)
        // Every state change is still a band (hundreds), and the document stays small.
        XCTAssertEqual(root.all("rect", cls: "band").count, 1 + 2 * expectedSwitches + 1)
        XCTAssertLessThan(svg.utf8.count, 1_500_000)
    }

    func testPathLinesFollowTheProbeHistory() throws {
        // Two paths probed every second for an hour; up0 blackholed (nothing answered) for 2 minutes.
        var up0: [TimelinePathSeries.Sample] = []
        var up1: [TimelinePathSeries.Sample] = []
        for s in 0..<3600 {
            let start = t0 + UInt64(s) * 1000
            let dark = (1800..<1920).contains(s)
            up0.append(.init(startMs: start, sent: 5, answered: dark ? 0 : 5, rttMeanMs: dark ? nil : 20 + Double(s % 10)))
            up1.append(.init(startMs: start, sent: 1, answered: 1, rttMeanMs: 60))
        }
        let events = [change(t0, .birth, .attached, .handshakeOK)] + failover(t0 + 1_801_000, .probeTimeout, recoveryMs: 900)
        let input = TimelineInput(interface: "jvpn0", role: "client", events: events,
                                  paths: [TimelinePathSeries(path: "up0/a->b", samples: up0), TimelinePathSeries(path: "up1/c->b", samples: up1)],
                                  takenAtMs: t0 + 3_600_000)
        let (svg, root) = try render(input)
        assertSelfContained(svg)
        for cls in ["rtt", "loss"] {
            let groups = root.all("g", cls: cls)
            XCTAssertEqual(groups.map { $0.attributes["data-path"] }, ["up0/a->b", "up1/c->b"])
            for g in groups {
                let points = g.all("polyline").flatMap { ($0.attributes["points"] ?? "").split(separator: " ") }
                XCTAssertLessThanOrEqual(points.count, 500, "one point per 2-pixel column at most")
                XCTAssertGreaterThan(points.count, 400)
            }
        }
        // The blackout breaks up0's RTT line in two and lifts its loss line to 100 % (the chart's top).
        let rtt0 = root.all("g", cls: "rtt")[0].all("polyline")
        XCTAssertEqual(rtt0.count, 2)
        let gapStart = rtt0[0].attributes["points"]!.split(separator: " ").last!.split(separator: ",")[0]
        XCTAssertEqual(Double(gapStart)!, 170 + 1800.0 / 3600 * 1000, accuracy: 2.5)
        let lossYs = root.all("g", cls: "loss")[0].all("polyline").flatMap { $0.attributes["points"]!.split(separator: " ") }
            .map { Double($0.split(separator: ",")[1])! }
        let top = lossYs.min()!, bottom = lossYs.max()!
        XCTAssertEqual(bottom - top, 80, accuracy: 0.1, "0 % to 100 % spans the loss chart")
        XCTAssertEqual(root.all("g", cls: "loss")[1].all("polyline").flatMap { $0.attributes["points"]!.split(separator: " ") }
            .map { Double($0.split(separator: ",")[1])! }.allSatisfy { $0 == bottom }, true, "up1 never lost a probe")
        // RTT scale: the largest column mean is 60 ms -> a 100 ms scale, up1 at 60 % of the chart height.
        XCTAssertTrue(root.all("text").contains { $0.text == "100" })
        XCTAssertTrue(svg.contains("(3600 probes in view)"))
    }

    func testSecondsWhoseRepliesAreStillDueShowNoLoss() throws {
        let samples = (0..<10).map { s in TimelinePathSeries.Sample(startMs: t0 + UInt64(s) * 1000, sent: 5, answered: s >= 8 ? 0 : 5, rttMeanMs: s >= 8 ? nil : 10) }
        let m = try TimelineModel.build(TimelineInput(interface: "x", role: "client", events: [change(t0, .birth, .attached, .handshakeOK)],
                                                      paths: [TimelinePathSeries(path: "p", samples: samples)], takenAtMs: t0 + 10_500))
        // Seconds 8 and 9 end within 2 s of the snapshot: their probes are not counted as lost.
        XCTAssertEqual(m.paths[0].samples.map(\.sent), [5, 5, 5, 5, 5, 5, 5, 5, 0, 0])
    }

    // MARK: window and selection

    func testSinceStartsInTheStateTheSessionWasIn() throws {
        let events = [change(t0, .birth, .attached, .handshakeOK), change(t0 + 10_000, .attached, .volatile, .rttThreshold),
                      change(t0 + 50_000, .volatile, .attached, .stabilityRestored), switchEvent(t0 + 5_000, .linkDown, recoveryMs: 3)]
            .sorted { $0.timestampMs < $1.timestampMs }
        let m = try TimelineModel.build(TimelineInput(interface: "x", role: "client", events: events, sinceMs: t0 + 20_000, takenAtMs: t0 + 60_000))
        XCTAssertEqual(m.startMs, t0 + 20_000)
        XCTAssertEqual(m.rows[0].bands.map(\.state), [.volatile, .attached])
        XCTAssertEqual(m.rows[0].bands[0].startMs, t0 + 20_000)
        XCTAssertEqual(m.rows[0].bands[0].reason, "RTT_THRESHOLD")
        XCTAssertTrue(m.switches.isEmpty, "the switch before --since is not drawn")
    }

    func testDaemonDownEndsAtTheLastEventAndSaysSo() throws {
        let events = [change(t0, .birth, .attached, .handshakeOK), change(t0 + 30_000, .attached, .terminated, .operatorRequest)]
        let m = try TimelineModel.build(TimelineInput(interface: "x", role: "", events: events))
        XCTAssertEqual(m.endMs, t0 + 30_000)
        XCTAssertFalse(m.hasHistory)
        XCTAssertEqual(m.rows[0].bands.map(\.state), [.birth, .attached, .terminated])
        let (svg, root) = try render(TimelineInput(interface: "x", role: "", events: events))
        XCTAssertTrue(svg.contains("the daemon is not running"))
        XCTAssertTrue(root.all("g", cls: "rtt").isEmpty)
    }

    func testSessionFilterAndRestartedSessions() throws {
        let other = "00112233aabbccdd"
        let events = [change(t0, .birth, .attached, .handshakeOK, session: other),
                      change(t0 + 10_000, .attached, .terminated, .transportLossTTLExpired, session: other),
                      change(t0 + 10_500, .birth, .attached, .handshakeOK)]
        let both = try TimelineModel.build(TimelineInput(interface: "x", role: "client", events: events, takenAtMs: t0 + 20_000))
        XCTAssertEqual(both.rows.map(\.session), [other, sid])
        let one = try TimelineModel.build(TimelineInput(interface: "x", role: "client", events: events, session: sid, takenAtMs: t0 + 20_000))
        XCTAssertEqual(one.rows.map(\.session), [sid])
        XCTAssertEqual(one.startMs, t0 + 10_500)
        XCTAssertThrowsError(try TimelineModel.build(TimelineInput(interface: "x", role: "client", events: events, session: "feed")))
        { XCTAssertEqual($0 as? TimelineError, .unknownSession("feed")) }
        XCTAssertThrowsError(try TimelineModel.build(TimelineInput(interface: "x", role: "client", events: [])))
        { XCTAssertEqual($0 as? TimelineError, .nothingToDraw) }
    }

    func testAGatewayWithManySessionsShowsTheMostRecentAndCountsTheRest() throws {
        var events: [SessionEvent] = []
        for i in 0..<12 {
            let s = String(repeating: String(i, radix: 16), count: 16)
            events.append(change(t0 + UInt64(i) * 1000, .birth, .attached, .handshakeOK, session: s))
        }
        let (svg, root) = try render(TimelineInput(interface: "gw", role: "server", events: events, takenAtMs: t0 + 20_000))
        XCTAssertEqual(root.all("g", cls: "session").count, TimelineModel.maxRows)
        XCTAssertEqual(root.all("g", cls: "session").first?.attributes["data-session"], String(repeating: "4", count: 16))
        XCTAssertTrue(svg.contains("4 more sessions in this window not shown"))
        XCTAssertTrue(svg.contains("12 sessions"))
    }

    func testHTMLWrapsTheSameSVG() throws {
        let m = try TimelineModel.build(TimelineInput(interface: "a<b", role: "client", events: [change(t0, .birth, .attached, .handshakeOK)]))
        let html = TimelineSVG.html(m)
        XCTAssertTrue(html.hasPrefix("<!DOCTYPE html>"))
        XCTAssertTrue(html.contains(TimelineSVG.render(m)))
        XCTAssertTrue(html.contains("<title>jvpn timeline a&lt;b</title>"))
        XCTAssertFalse(html.contains("<script"))
    }

    func testTextFromTheLogIsEscaped() throws {
        let hostile = ev(.audit, t0 + 1) { $0.check = "x"; $0.result = "fail"; $0.detail = "</title><script>alert(1)</script>&\u{1}" }
        let (svg, root) = try render(TimelineInput(interface: "x", role: "client", events: [change(t0, .birth, .attached, .handshakeOK), hostile]))
        XCTAssertFalse(svg.contains("<script"))
        XCTAssertTrue(root.all("g", cls: "alert")[0].title.contains("</title><script>alert(1)</script>&"))
    }

    // MARK: pieces

    func testProbeHistoryBucketsPerSecondBoundedAndExact() {
        var h = ProbeHistory(capacity: 10)
        XCTAssertTrue(h.buckets.isEmpty)
        h.probeSent(atMs: 5_100)
        h.probeSent(atMs: 5_900)
        h.probeAnswered(sentAtMs: 5_100, rttMs: 4)
        h.probeAnswered(sentAtMs: 5_900, rttMs: 8)
        h.probeAnswered(sentAtMs: 5_900, rttMs: 8)          // a third answer for two probes: ignored
        h.probeSent(atMs: 7_000)
        XCTAssertEqual(h.buckets, [ProbeHistory.Bucket(second: 5, sent: 2, answered: 2, rttSumMs: 12, rttMaxMs: 8),
                                   ProbeHistory.Bucket(second: 7, sent: 1)])
        XCTAssertEqual(h.buckets[0].rttMeanMs, 6)
        XCTAssertNil(h.buckets[1].rttMeanMs)
        // At second 17 the ring holds seconds 8...17: 5 and 7 have left it, a late answer for 7 is ignored.
        h.probeSent(atMs: 17_000)
        h.probeAnswered(sentAtMs: 7_000, rttMs: 9000)
        XCTAssertEqual(h.buckets, [ProbeHistory.Bucket(second: 17, sent: 1)])
        for s in 0..<100 as Range<UInt64> { h.probeSent(atMs: 20_000 + s * 500) }
        XCTAssertEqual(h.buckets.count, 10)
        XCTAssertEqual(h.buckets.map(\.second), Array(60...69))
        XCTAssertTrue(h.buckets.allSatisfy { $0.sent == 2 })
    }

    func testBinsTicksAndText() {
        XCTAssertEqual(TimelineBins.group([0, 1, 5, 100, 104, 300], pxPerMs: 1, binPx: 6), [[0, 1, 2], [3, 4], [5]])
        XCTAssertEqual(TimelineBins.group([], pxPerMs: 1, binPx: 6), [])
        XCTAssertEqual(TimeAxis.ticks(startMs: 500, endMs: 10_500, maxTicks: 11), (1...10).map { UInt64($0) * 1000 })
        XCTAssertEqual(TimeAxis.ticks(startMs: 0, endMs: 3_600_000, maxTicks: 11), (0...6).map { UInt64($0) * 600_000 })
        XCTAssertEqual([0.3, 1, 7, 12, 51, 100, 101].map(TimeAxis.niceCeiling), [0.5, 1, 10, 20, 100, 100, 200])
        XCTAssertEqual(SVGText.escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;")
        XCTAssertEqual([0, 1.25, -3.04, 12.96].map(SVGText.number), ["0", "1.3", "-3", "13"])
        XCTAssertEqual([0.123, 2.5, 5, 4.05, 41.4].map(SVGText.measure), ["0.12", "2.5", "5", "4.05", "41"])
        XCTAssertEqual(SVGText.duration(45_000), "45 s")
        XCTAssertEqual(SVGText.duration(725_000), "12 min 5 s")
        XCTAssertEqual(SVGText.duration(3_720_000), "1 h 02 min")
        XCTAssertEqual(SVGText.clock(t0), "11:06:40")
        XCTAssertEqual(SVGText.clock(t0 + 3_723_000), "12:08:43")
    }
}
