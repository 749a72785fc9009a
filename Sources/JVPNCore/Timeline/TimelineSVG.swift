/// Draws a `TimelineModel` as one self-contained SVG document: no script, no external reference
/// (fonts are generic families, every style is inline), so it opens the same in a browser, an
/// image viewer or a ticket attachment.
///
/// From top to bottom, on one time axis: a row of state bands per session; the switch lane (one
/// mark per TRANSPORT_SWITCH with its reason and `recovery_ms`, a dashed guide through every lane);
/// the security lane (SECURITY_EVENT diamonds, AUDIT_EVENT dots); per-path RTT and loss lines from
/// the daemon's probe history; the path legend. Marks closer than `binPx` are drawn as one with a
/// count, labels only where they fit, and every mark and band carries a `<title>` tooltip.
///
/// Elements carry `class` and `data-*` attributes (`band`, `switch`, `alert`, `rtt`, `loss`) that
/// the tests read back.
public enum TimelineSVG {
    public static let width = 1200.0
    static let left = 170.0
    static let right = 30.0
    static var plotWidth: Double { width - left - right }
    /// Marks closer than this (pixels) are drawn as one.
    public static let binPx = 6.0
    /// Above this many switch marks no guide lines are drawn through the other lanes.
    public static let maxGuides = 60
    /// Width of one column of the RTT and loss lines (pixels).
    static let columnPx = 2.0

    public static func stateColor(_ s: SessionState) -> String {
        switch s {
        case .birth: return "#9e9e9e"
        case .attached: return "#2e9e44"
        case .volatile: return "#f2c230"
        case .recovering: return "#f08a24"
        case .degraded: return "#d93025"
        case .terminated: return "#37474f"
        }
    }

    public static let pathColors = ["#1f77b4", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#393b79"]
    static let switchColor = "#283593"
    static let securityColor = "#c62828"
    static let auditColor = "#6d4c41"

    /// The picture wrapped in a minimal HTML page (still no script, no external reference).
    public static func html(_ m: TimelineModel) -> String {
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>jvpn timeline \(SVGText.escape(m.interface))</title></head>\n"
            + "<body style=\"margin:0;background:#ffffff\">\n" + render(m) + "</body></html>\n"
    }

    public static func render(_ m: TimelineModel) -> String {
        var d = Drawing(m)
        return d.draw()
    }
}

/// One rendering: the layout (computed first, so guide lines know how far down to go) and the output.
private struct Drawing {
    let m: TimelineModel
    let span: Double
    var out = ""

    // Layout, top to bottom.
    let rowsTop = 84.0
    let rowHeight = 20.0
    let rowGap = 4.0
    let rowsBottom: Double
    let switchTop: Double
    let alertTop: Double
    let chartsShown: Bool
    let rttTop: Double
    let lossTop: Double
    let plotBottom: Double
    let height: Double
    static let switchLaneHeight = 56.0
    static let alertLaneHeight = 32.0
    static let rttHeight = 150.0
    static let lossHeight = 80.0

    init(_ m: TimelineModel) {
        self.m = m
        span = Double(m.endMs - m.startMs)
        rowsBottom = rowsTop + Double(max(1, m.rows.count)) * (rowHeight + rowGap)
        switchTop = rowsBottom + 4
        alertTop = switchTop + Drawing.switchLaneHeight
        chartsShown = m.hasHistory && m.paths.contains { !$0.samples.isEmpty }
        rttTop = alertTop + Drawing.alertLaneHeight + 16
        lossTop = rttTop + Drawing.rttHeight + 18
        plotBottom = chartsShown ? lossTop + Drawing.lossHeight : alertTop + Drawing.alertLaneHeight
        let legendRows = chartsShown ? m.paths.count : 0
        let notes = Drawing.notes(m).count
        height = plotBottom + 40 + Double(legendRows) * 16 + Double(notes) * 16 + 8
    }

    static func notes(_ m: TimelineModel) -> [String] {
        var n: [String] = []
        if m.omittedSessions > 0 {
            n.append("\(m.omittedSessions) more session\(m.omittedSessions == 1 ? "" : "s") in this window not shown (the \(TimelineModel.maxRows) most recently active are); pick one with --session ID")
        }
        if !m.hasHistory {
            n.append("no RTT or loss lines: the daemon is not running, this picture is drawn from the event log alone")
        } else if !m.paths.contains(where: { !$0.samples.isEmpty }) {
            n.append(m.role == "server" ? "no RTT or loss lines: a gateway answers probes but does not measure paths; draw the client's timeline"
                                        : "no RTT or loss lines: no probe in this window")
        }
        return n
    }

    func x(_ ms: UInt64) -> Double {
        let t = Double(ms < m.startMs ? 0 : ms - m.startMs)
        return TimelineSVG.left + min(t, span) / span * TimelineSVG.plotWidth
    }

    mutating func put(_ s: String) { out += s; out += "\n" }

    mutating func text(_ x: Double, _ y: Double, _ s: String, cls: String, anchor: String = "start", extra: String = "") {
        put("<text class=\"\(cls)\" x=\"\(SVGText.number(x))\" y=\"\(SVGText.number(y))\" text-anchor=\"\(anchor)\"\(extra)>\(SVGText.escape(s))</text>")
    }

    mutating func draw() -> String {
        let w = TimelineSVG.width
        put("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(SVGText.number(w))\" height=\"\(SVGText.number(height))\" viewBox=\"0 0 \(SVGText.number(w)) \(SVGText.number(height))\" font-family=\"DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif\" font-size=\"12\">")
        put("<style>.t{font-size:18px;font-weight:bold;fill:#212121}.s{font-size:12px;fill:#424242}.l{font-size:11px;fill:#424242}"
            + ".m{font-size:11px;fill:#212121;font-family:DejaVu Sans Mono,Liberation Mono,monospace}.k{font-size:10px;fill:#212121}"
            + ".n{font-size:11px;fill:#616161;font-style:italic}</style>")
        put("<rect x=\"0\" y=\"0\" width=\"\(SVGText.number(w))\" height=\"\(SVGText.number(height))\" fill=\"#ffffff\"/>")
        header()
        timeGrid()
        bands()
        switches()
        alerts()
        if chartsShown { charts() }
        footer()
        put("</svg>")
        return out
    }

    // MARK: header and legend

    mutating func header() {
        let role = m.role.isEmpty ? "" : " (\(m.role))"
        text(16, 26, "jvpn timeline: \(m.interface)\(role)", cls: "t")
        let security = m.alerts.filter { $0.kind == .security }.count
        let audit = m.alerts.count - security
        let sub = "\(SessionEvent.rfc3339(m.startMs)) to \(SessionEvent.rfc3339(m.endMs)) (\(SVGText.duration(m.endMs - m.startMs)))"
            + "  ·  \(m.rows.count + m.omittedSessions) session\(m.rows.count + m.omittedSessions == 1 ? "" : "s")"
            + "  ·  \(m.switches.count) switch\(m.switches.count == 1 ? "" : "es")"
            + "  ·  \(security) security event\(security == 1 ? "" : "s")  ·  \(audit) audit event\(audit == 1 ? "" : "s")"
        text(16, 46, sub, cls: "s")
        var lx = 16.0
        for s in SessionState.allCases {
            put("<rect x=\"\(SVGText.number(lx))\" y=\"58\" width=\"12\" height=\"12\" fill=\"\(TimelineSVG.stateColor(s))\"/>")
            text(lx + 16, 68, s.rawValue, cls: "l")
            lx += 28 + Double(s.rawValue.count) * 7
        }
        lx += 12
        put("<path d=\"M\(SVGText.number(lx)) 59 L\(SVGText.number(lx + 10)) 59 L\(SVGText.number(lx + 5)) 69 Z\" fill=\"\(TimelineSVG.switchColor)\"/>")
        text(lx + 14, 68, "TRANSPORT_SWITCH (reason, recovery_ms)", cls: "l")
        lx += 14 + 38 * 6.6 + 16
        put("<path d=\"\(diamond(lx + 5, 64, 5))\" fill=\"\(TimelineSVG.securityColor)\"/>")
        text(lx + 14, 68, "SECURITY_EVENT", cls: "l")
        lx += 14 + 14 * 7 + 16
        put("<circle cx=\"\(SVGText.number(lx + 5))\" cy=\"64\" r=\"4\" fill=\"\(TimelineSVG.auditColor)\"/>")
        text(lx + 14, 68, "AUDIT_EVENT", cls: "l")
    }

    func diamond(_ cx: Double, _ cy: Double, _ r: Double) -> String {
        "M\(SVGText.number(cx)) \(SVGText.number(cy - r)) L\(SVGText.number(cx + r)) \(SVGText.number(cy)) L\(SVGText.number(cx)) \(SVGText.number(cy + r)) L\(SVGText.number(cx - r)) \(SVGText.number(cy)) Z"
    }

    // MARK: time grid

    mutating func timeGrid() {
        let ticks = TimeAxis.ticks(startMs: m.startMs, endMs: m.endMs, maxTicks: Int(TimelineSVG.plotWidth / 90))
        put("<g class=\"time-axis\">")
        for t in ticks {
            let tx = SVGText.number(x(t))
            put("<line x1=\"\(tx)\" y1=\"\(SVGText.number(rowsTop - 4))\" x2=\"\(tx)\" y2=\"\(SVGText.number(plotBottom + 4))\" stroke=\"#e0e0e0\" stroke-width=\"1\"/>")
            text(x(t), plotBottom + 18, SVGText.clock(t), cls: "l", anchor: "middle")
        }
        put("<line x1=\"\(SVGText.number(TimelineSVG.left))\" y1=\"\(SVGText.number(plotBottom + 4))\" x2=\"\(SVGText.number(TimelineSVG.left + TimelineSVG.plotWidth))\" y2=\"\(SVGText.number(plotBottom + 4))\" stroke=\"#9e9e9e\" stroke-width=\"1\"/>")
        text(TimelineSVG.left + TimelineSVG.plotWidth, plotBottom + 32, "UTC", cls: "l", anchor: "end")
        put("</g>")
    }

    // MARK: state bands

    mutating func bands() {
        if m.rows.isEmpty {
            text(TimelineSVG.left + 4, rowsTop + 14, "no session state in this window", cls: "n")
        }
        for (r, row) in m.rows.enumerated() {
            let y = rowsTop + Double(r) * (rowHeight + rowGap)
            text(TimelineSVG.left - 8, y + 14, String(row.session.prefix(16)), cls: "m", anchor: "end")
            put("<g class=\"session\" data-session=\"\(SVGText.escape(row.session))\" shape-rendering=\"crispEdges\">")
            // A state held for less than a pixel (a 1 ms RECOVERING) still gets its sliver, and the
            // next band starts after it instead of covering it.
            var drawnUntil = TimelineSVG.left
            for b in row.bands {
                let minWidth = b.state == .terminated ? 3.0 : 2.0
                var x1 = max(x(b.startMs), drawnUntil)
                let wd = max(x(b.endMs) - x1, minWidth)
                x1 = min(x1, TimelineSVG.left + TimelineSVG.plotWidth - wd)
                drawnUntil = x1 + wd
                let why = b.reason.isEmpty ? "" : " (\(b.reason))"
                let tip = "\(b.state.rawValue)\(why) from \(SessionEvent.rfc3339(b.startMs))"
                    + (b.state == .terminated ? "" : " for \(SVGText.duration(b.endMs - b.startMs))")
                put("<rect class=\"band\" data-state=\"\(b.state.rawValue)\" x=\"\(SVGText.number(x1))\" y=\"\(SVGText.number(y))\" width=\"\(SVGText.number(wd))\" height=\"\(SVGText.number(rowHeight))\" fill=\"\(TimelineSVG.stateColor(b.state))\"><title>\(SVGText.escape(tip))</title></rect>")
            }
            put("</g>")
        }
    }

    // MARK: switches

    mutating func switches() {
        text(TimelineSVG.left - 8, switchTop + 14, "switches", cls: "l", anchor: "end")
        let pxPerMs = TimelineSVG.plotWidth / span
        let groups = TimelineBins.group(m.switches.map(\.timestampMs), pxPerMs: pxPerMs, binPx: TimelineSVG.binPx)
        // A dashed guide through the bands and charts helps with a few switches and hides them under many.
        let guides = groups.count <= TimelineSVG.maxGuides
        // Two rows of labels; a label goes in the first row where it does not overlap the last one.
        var labelEnd = [-Double.infinity, -Double.infinity]
        for g in groups {
            let members = g.map { m.switches[$0] }
            let gx = x(members[0].timestampMs)
            let maxRecovery = members.compactMap(\.recoveryMs).max() ?? 0
            let label: String
            var tip: String
            if members.count == 1 {
                let e = members[0]
                label = "\(e.reason ?? "?") \(e.recoveryMs ?? 0) ms"
                tip = "\(SessionEvent.rfc3339(e.timestampMs)) TRANSPORT_SWITCH \(e.reason ?? "?"), recovery_ms \(e.recoveryMs ?? 0)\n\(e.fromPath ?? "?") -> \(e.toPath ?? "?")"
            } else {
                var byReason: [String: Int] = [:]
                for e in members { byReason[e.reason ?? "?", default: 0] += 1 }
                let reasons = byReason.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.map { "\($0.key) x\($0.value)" }
                label = "\(members.count) switches, max \(maxRecovery) ms"
                tip = "\(members.count) TRANSPORT_SWITCH from \(SessionEvent.rfc3339(members[0].timestampMs)) to \(SessionEvent.rfc3339(members.last!.timestampMs)): "
                    + reasons.joined(separator: ", ") + "; recovery_ms max \(maxRecovery)"
                for e in members.prefix(10) {
                    tip += "\n\(SVGText.clock(e.timestampMs)) \(e.reason ?? "?") \(e.recoveryMs ?? 0) ms"
                }
                if members.count > 10 { tip += "\n... \(members.count - 10) more" }
            }
            let gxs = SVGText.number(gx)
            put("<g class=\"switch\" data-count=\"\(members.count)\" data-recovery-max=\"\(maxRecovery)\"><title>\(SVGText.escape(tip))</title>")
            if guides {
                put("<line x1=\"\(gxs)\" y1=\"\(SVGText.number(rowsTop - 2))\" x2=\"\(gxs)\" y2=\"\(SVGText.number(plotBottom))\" stroke=\"\(TimelineSVG.switchColor)\" stroke-width=\"1\" stroke-dasharray=\"3,3\" opacity=\"0.55\"/>")
            }
            let size = members.count == 1 ? 5.0 : 7.0
            put("<path d=\"M\(SVGText.number(gx - size)) \(SVGText.number(switchTop + 2)) L\(SVGText.number(gx + size)) \(SVGText.number(switchTop + 2)) L\(gxs) \(SVGText.number(switchTop + 4 + size * 1.6)) Z\" fill=\"\(TimelineSVG.switchColor)\"/>")
            let half = Double(label.count) * 3.1
            let lx = min(max(gx, TimelineSVG.left + half), TimelineSVG.left + TimelineSVG.plotWidth - half)
            if let row = labelEnd.indices.first(where: { lx - half > labelEnd[$0] + 6 }) {
                labelEnd[row] = lx + half
                text(lx, switchTop + 30 + Double(row) * 15, label, cls: "k", anchor: "middle")
            }
            put("</g>")
        }
    }

    // MARK: security and audit marks

    mutating func alerts() {
        let pxPerMs = TimelineSVG.plotWidth / span
        for (kind, y, name) in [(SessionEvent.Kind.security, alertTop + 9, "security"), (.audit, alertTop + 24, "audit")] {
            text(TimelineSVG.left - 8, y + 4, name, cls: "l", anchor: "end")
            let events = m.alerts.filter { $0.kind == kind }
            let groups = TimelineBins.group(events.map(\.timestampMs), pxPerMs: pxPerMs, binPx: TimelineSVG.binPx)
            let xs = groups.map { x(events[$0[0]].timestampMs) }
            for (gi, g) in groups.enumerated() {
                let members = g.map { events[$0] }
                let gx = xs[gi]
                var tip = members.count == 1 ? "" : "\(members.count) \(kind.rawValue) from \(SessionEvent.rfc3339(members[0].timestampMs)) to \(SessionEvent.rfc3339(members.last!.timestampMs))"
                for e in members.prefix(10) {
                    if !tip.isEmpty { tip += "\n" }
                    if kind == .security {
                        tip += "\(SessionEvent.rfc3339(e.timestampMs)) SECURITY_EVENT \(e.reason ?? "?") from \(e.remote ?? "?")"
                    } else {
                        tip += "\(SessionEvent.rfc3339(e.timestampMs)) AUDIT_EVENT \(e.check ?? "?") \(e.result ?? "?"): \(e.detail ?? "")"
                    }
                }
                if members.count > 10 { tip += "\n... \(members.count - 10) more" }
                put("<g class=\"alert\" data-kind=\"\(kind.rawValue)\" data-count=\"\(members.count)\"><title>\(SVGText.escape(tip))</title>")
                if kind == .security {
                    put("<path d=\"\(diamond(gx, y, members.count == 1 ? 5 : 6.5))\" fill=\"\(TimelineSVG.securityColor)\"/>")
                } else {
                    put("<circle cx=\"\(SVGText.number(gx))\" cy=\"\(SVGText.number(y))\" r=\"\(members.count == 1 ? "4" : "5")\" fill=\"\(TimelineSVG.auditColor)\"/>")
                }
                // The count goes right of the mark when it fits before the next mark.
                let countWidth = Double(String(members.count).count + 1) * 6.2
                if members.count > 1 && (gi + 1 == xs.count || xs[gi + 1] - 7 > gx + 8 + countWidth) {
                    text(gx + 8, y + 4, "x\(members.count)", cls: "k")
                }
                put("</g>")
            }
        }
    }

    // MARK: RTT and loss

    /// One path's samples folded into pixel columns: probes sent, answered, RTT sum.
    struct Column {
        var sent = 0
        var answered = 0
        var rttSum = 0.0
        var rttCount = 0
        var seen = false
    }

    func columns(_ p: TimelinePathSeries) -> [Column] {
        let n = Int(TimelineSVG.plotWidth / TimelineSVG.columnPx)
        var cols = [Column](repeating: Column(), count: n)
        for s in p.samples {
            let mid = Double(s.startMs + 500) - Double(m.startMs)
            let c = min(max(Int(mid / span * Double(n)), 0), n - 1)
            cols[c].seen = true
            cols[c].sent += s.sent
            cols[c].answered += s.answered
            if let r = s.rttMeanMs, s.answered > 0 {
                cols[c].rttSum += r * Double(s.answered)
                cols[c].rttCount += s.answered
            }
        }
        return cols
    }

    /// Runs of consecutive points; a run breaks where no sample fell for longer than `gapCols`.
    static func runs(_ points: [(col: Int, value: Double?)], gapCols: Int) -> [[(Int, Double)]] {
        var runs: [[(Int, Double)]] = []
        var current: [(Int, Double)] = []
        var lastCol = Int.min / 2
        for p in points {
            if p.col - lastCol > gapCols || p.value == nil {
                if !current.isEmpty { runs.append(current) }
                current = []
            }
            if let v = p.value { current.append((p.col, v)) }
            lastCol = p.col
        }
        if !current.isEmpty { runs.append(current) }
        return runs
    }

    mutating func charts() {
        let n = Int(TimelineSVG.plotWidth / TimelineSVG.columnPx)
        let colMs = span / Double(n)
        // A path probed at least every 2 s (standby) is continuous; longer silence breaks the line.
        let gapCols = max(1, Int((2500.0 / colMs).rounded(.up)))
        let allColumns = m.paths.map(columns)
        var rttMax = 0.0
        for cols in allColumns {
            for c in cols where c.rttCount > 0 { rttMax = max(rttMax, c.rttSum / Double(c.rttCount)) }
        }
        let rttScale = TimeAxis.niceCeiling(rttMax)
        chartFrame(top: rttTop, height: Drawing.rttHeight, title: "RTT (ms)",
                   labels: [(0, "0"), (0.5, SVGText.measure(rttScale / 2)), (1, SVGText.measure(rttScale))])
        chartFrame(top: lossTop, height: Drawing.lossHeight, title: "loss (%)", labels: [(0, "0"), (0.5, "50"), (1, "100")])
        let rttBase = rttTop + Drawing.rttHeight, lossBase = lossTop + Drawing.lossHeight
        for (i, p) in m.paths.enumerated() {
            let color = TimelineSVG.pathColors[i % TimelineSVG.pathColors.count]
            let cols = allColumns[i]
            var rtt: [(col: Int, value: Double?)] = []
            var loss: [(col: Int, value: Double?)] = []
            for (c, col) in cols.enumerated() where col.seen {
                rtt.append((c, col.rttCount > 0 ? col.rttSum / Double(col.rttCount) : nil))
                loss.append((c, col.sent > 0 ? Double(col.sent - col.answered) * 100 / Double(col.sent) : 0))
            }
            series("rtt", p.path, color, Drawing.runs(rtt, gapCols: gapCols)) { rttBase - min($0 / rttScale, 1) * Drawing.rttHeight }
            series("loss", p.path, color, Drawing.runs(loss, gapCols: gapCols)) { lossBase - min($0 / 100, 1) * Drawing.lossHeight }
        }
    }

    mutating func series(_ cls: String, _ path: String, _ color: String, _ runs: [[(Int, Double)]], _ y: (Double) -> Double) {
        put("<g class=\"\(cls)\" data-path=\"\(SVGText.escape(path))\" stroke=\"\(color)\" fill=\"none\" stroke-width=\"1.6\" stroke-linejoin=\"round\">")
        for run in runs {
            let pts = run.map { (SVGText.number(TimelineSVG.left + (Double($0.0) + 0.5) * TimelineSVG.columnPx), SVGText.number(y($0.1))) }
            if pts.count == 1 {
                put("<circle cx=\"\(pts[0].0)\" cy=\"\(pts[0].1)\" r=\"1.6\" fill=\"\(color)\"/>")
            } else {
                put("<polyline points=\"\(pts.map { "\($0.0),\($0.1)" }.joined(separator: " "))\"/>")
            }
        }
        put("</g>")
    }

    mutating func chartFrame(top: Double, height: Double, title: String, labels: [(Double, String)]) {
        let l = SVGText.number(TimelineSVG.left), r = SVGText.number(TimelineSVG.left + TimelineSVG.plotWidth)
        text(16, top + height / 2 + 4, title, cls: "l")
        for (f, label) in labels {
            let y = top + height - f * height
            put("<line x1=\"\(l)\" y1=\"\(SVGText.number(y))\" x2=\"\(r)\" y2=\"\(SVGText.number(y))\" stroke=\"\(f == 0 ? "#9e9e9e" : "#eeeeee")\" stroke-width=\"1\"/>")
            text(TimelineSVG.left - 8, y + 4, label, cls: "l", anchor: "end")
        }
    }

    // MARK: legend and notes

    mutating func footer() {
        var y = plotBottom + 44
        if chartsShown {
            for (i, p) in m.paths.enumerated() {
                let color = TimelineSVG.pathColors[i % TimelineSVG.pathColors.count]
                put("<line x1=\"\(SVGText.number(TimelineSVG.left))\" y1=\"\(SVGText.number(y - 4))\" x2=\"\(SVGText.number(TimelineSVG.left + 24))\" y2=\"\(SVGText.number(y - 4))\" stroke=\"\(color)\" stroke-width=\"3\"/>")
                let probes = p.samples.reduce(0) { $0 + $1.sent }
                text(TimelineSVG.left + 32, y, "\(p.path)  (\(probes) probes in view)", cls: "m")
                y += 16
            }
        }
        for note in Drawing.notes(m) {
            text(16, y, note, cls: "n")
            y += 16
        }
    }
}
