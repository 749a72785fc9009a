/// One path's probe history in wall-clock time (status JSON `probe_history`, see README).
public struct TimelinePathSeries: Equatable, Sendable {
    public struct Sample: Equatable, Sendable {
        /// Wall-clock (Unix) milliseconds at the start of the sample's second.
        public var startMs: UInt64
        public var sent: Int
        public var answered: Int
        public var rttMeanMs: Double?

        public init(startMs: UInt64, sent: Int, answered: Int, rttMeanMs: Double?) {
            self.startMs = startMs
            self.sent = sent
            self.answered = answered
            self.rttMeanMs = rttMeanMs
        }
    }

    public var path: String
    public var samples: [Sample]

    public init(path: String, samples: [Sample]) {
        self.path = path
        self.samples = samples
    }
}

/// What `jvpn timeline` draws from: the event log, the daemon's probe history, and the choices.
public struct TimelineInput: Sendable {
    public var interface: String
    /// "client" or "server"; empty when unknown (daemon down).
    public var role: String
    /// The whole event log in order: states before `sinceMs` are needed to know where it starts.
    public var events: [SessionEvent]
    public var paths: [TimelinePathSeries]
    /// Only this session (hex id).
    public var session: String?
    public var sinceMs: UInt64?
    /// When the daemon's status (and history) was taken, i.e. "now" for a running daemon; nil
    /// when it is down and the picture ends at the last event.
    public var takenAtMs: UInt64?

    public init(interface: String, role: String, events: [SessionEvent], paths: [TimelinePathSeries] = [],
                session: String? = nil, sinceMs: UInt64? = nil, takenAtMs: UInt64? = nil) {
        self.interface = interface
        self.role = role
        self.events = events
        self.paths = paths
        self.session = session
        self.sinceMs = sinceMs
        self.takenAtMs = takenAtMs
    }
}

public enum TimelineError: Error, Equatable, CustomStringConvertible {
    case unknownSession(String)
    case nothingToDraw

    public var description: String {
        switch self {
        case .unknownSession(let s): return "the event log has no event of session \(s)"
        case .nothingToDraw: return "nothing to draw: no session event and no probe history in that window"
        }
    }
}

/// The picture's content, decided before any drawing: which sessions, the state bands over the
/// window, the marks, the path series. Pure; `TimelineSVG` lays it out.
public struct TimelineModel: Equatable, Sendable {
    /// A session in one state from `startMs` to `endMs` (clipped to the window).
    public struct Band: Equatable, Sendable {
        public var state: SessionState
        public var startMs: UInt64
        public var endMs: UInt64
        /// The reason it entered this state ("" for the state it was in when first seen).
        public var reason: String
    }

    public struct SessionRow: Equatable, Sendable {
        public var session: String
        public var bands: [Band]
    }

    /// Probes of the last seconds before `takenAtMs` may still be answered: their loss is not known.
    public static let lossSettleMs: UInt64 = 2000
    /// At most this many session rows (the most recently active); the others are counted.
    public static let maxRows = 8

    public var interface: String
    public var role: String
    public var startMs: UInt64
    public var endMs: UInt64
    public var rows: [SessionRow]
    /// Sessions in the window that did not get a row.
    public var omittedSessions: Int
    /// TRANSPORT_SWITCH events in the window, oldest first.
    public var switches: [SessionEvent]
    /// SECURITY_EVENT and AUDIT_EVENT events in the window, oldest first.
    public var alerts: [SessionEvent]
    /// Probe history inside the window; a sample whose loss is not settled has `sent == answered`.
    public var paths: [TimelinePathSeries]
    /// The daemon's history was available (false: drawn from the event log alone).
    public var hasHistory: Bool

    public static func build(_ input: TimelineInput) throws -> TimelineModel {
        let selected = input.events.filter { e in input.session.map { e.session == $0 } ?? true }
        if let s = input.session, selected.isEmpty { throw TimelineError.unknownSession(s) }

        let history = input.takenAtMs != nil
        let lastSampleEnd = input.paths.compactMap { $0.samples.last.map { $0.startMs + 1000 } }.max()
        let firstSample = input.paths.compactMap { $0.samples.first?.startMs }.min()
        guard let start = input.sinceMs ?? [selected.first?.timestampMs, firstSample].compactMap({ $0 }).min() else {
            throw TimelineError.nothingToDraw
        }
        var end = input.takenAtMs ?? [selected.last?.timestampMs, lastSampleEnd].compactMap { $0 }.max() ?? start
        if end <= start { end = start + 1000 }

        // Bands per session, from its whole history, then clipped to the window.
        var order: [String] = []
        var changes: [String: [SessionEvent]] = [:]
        var lastSeen: [String: UInt64] = [:]
        for e in selected where !e.session.isEmpty {
            if changes[e.session] == nil { order.append(e.session); changes[e.session] = [] }
            if e.kind == .stateChange { changes[e.session]!.append(e) }
            lastSeen[e.session] = e.timestampMs
        }
        var rows: [SessionRow] = []
        for s in order {
            let bands = clip(sessionBands(changes[s]!, firstSeenMs: selected.first { $0.session == s }!.timestampMs, endMs: end),
                             start, end)
            if !bands.isEmpty { rows.append(SessionRow(session: s, bands: bands)) }
        }
        let shown = rows.count
        if rows.count > maxRows {
            let keep = Set(rows.sorted { (lastSeen[$0.session]!, $0.session) > (lastSeen[$1.session]!, $1.session) }
                .prefix(maxRows).map(\.session))
            rows = rows.filter { keep.contains($0.session) }
        }

        let inWindow = selected.filter { $0.timestampMs >= start && $0.timestampMs <= end }
        let switches = inWindow.filter { $0.kind == .transportSwitch }
        let alerts = inWindow.filter { $0.kind == .security || $0.kind == .audit }

        var paths: [TimelinePathSeries] = []
        for p in input.paths {
            var samples: [TimelinePathSeries.Sample] = []
            for var s in p.samples where s.startMs + 1000 > start && s.startMs < end {
                if let taken = input.takenAtMs, s.startMs + 1000 + lossSettleMs > taken { s.sent = s.answered }
                samples.append(s)
            }
            paths.append(TimelinePathSeries(path: p.path, samples: samples))
        }
        if rows.isEmpty && switches.isEmpty && alerts.isEmpty && paths.allSatisfy({ $0.samples.isEmpty }) {
            throw TimelineError.nothingToDraw
        }
        return TimelineModel(interface: input.interface, role: input.role, startMs: start, endMs: end, rows: rows,
                             omittedSessions: shown - rows.count, switches: switches, alerts: alerts, paths: paths,
                             hasHistory: history)
    }

    /// A session's states from its STATE_CHANGE events: BIRTH from the first time it is seen, each
    /// change closes one band and opens the next; TERMINATED ends the row, any other last state
    /// lasts until `endMs`.
    static func sessionBands(_ changes: [SessionEvent], firstSeenMs: UInt64, endMs: UInt64) -> [Band] {
        var bands: [Band] = []
        let first = changes.first.flatMap { $0.from.flatMap(SessionState.init(rawValue:)) } ?? .birth
        var current = Band(state: first, startMs: min(firstSeenMs, changes.first?.timestampMs ?? firstSeenMs), endMs: 0, reason: "")
        for c in changes {
            guard let to = c.to.flatMap(SessionState.init(rawValue:)) else { continue }
            current.endMs = max(c.timestampMs, current.startMs)
            bands.append(current)
            current = Band(state: to, startMs: current.endMs, endMs: 0, reason: c.reason ?? "")
        }
        if current.state == .terminated {
            current.endMs = current.startMs
        } else {
            current.endMs = max(endMs, current.startMs)
        }
        bands.append(current)
        return bands
    }

    /// Bands inside [start, end], cut at its edges. A zero-length band (a state entered and left
    /// in the same millisecond, or TERMINATED) is kept when it lies inside.
    static func clip(_ bands: [Band], _ start: UInt64, _ end: UInt64) -> [Band] {
        bands.compactMap { b in
            guard b.endMs >= start, b.startMs <= end else { return nil }
            if b.endMs == start && b.startMs < start { return nil }
            var c = b
            c.startMs = max(b.startMs, start)
            c.endMs = min(b.endMs, end)
            return c
        }
    }
}
