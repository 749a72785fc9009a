import ArgumentParser
import Glibc
import JVPNCore
import JVPNDaemon
import JVPNSystem

struct Timeline: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "timeline",
        abstract: "Draw the session timeline as a self-contained SVG (or HTML) picture.",
        discussion: """
            State bands per session, every TRANSPORT_SWITCH with its reason and recovery_ms, \
            SECURITY_EVENT and AUDIT_EVENT marks, and, while the daemon runs, each path's RTT and \
            loss from its probe history (the last hour). From the event log alone when the \
            interface is down (no RTT or loss lines then). No script and no external reference \
            in the output.

            Examples:
              jvpn timeline jvpn0 -o jvpn0.svg
              jvpn timeline jvpn0 --since 2026-11-22T10:00:00Z -o last-hour.html
              jvpn timeline jvpn0 --session 9f3c2a1b4d5e6f70 -o session.svg
              jvpn timeline gw1 --event-log ./gw1.events.jsonl -o gw1.svg   (a copied log)
            """)
    @Argument(help: "Interface name") var name: String
    @Option(name: .shortAndLong, help: "Output: FILE.svg, FILE.html (the SVG in a page), or - for SVG on stdout")
    var output: String
    @Option(help: "Only this session id (hex)") var session: String?
    @Option(help: "Start at this RFC 3339 time (e.g. 2026-11-22T10:00:00Z); default: the first event")
    var since: String?
    @Option(name: .customLong("event-log"), help: "Read this event log instead of the interface's (e.g. a copy from another machine)")
    var eventLog: String?

    func validate() throws {
        if let since, SessionEvent.parseRFC3339(since) == nil {
            throw ValidationError("--since: '\(since)' is not an RFC 3339 UTC time such as 2026-11-22T10:00:00Z")
        }
        guard output == "-" || output.hasSuffix(".svg") || output.hasSuffix(".html") || output.hasSuffix(".htm") else {
            throw ValidationError("-o: '\(output)' must end in .svg or .html (or be - for SVG on stdout)")
        }
    }

    func run() throws {
        // The daemon's status with the probe history, when it runs; taken before the log is read,
        // so every event up to that moment is in the log.
        let takenAt = Clock.wallMilliseconds()
        let status = UnixControlClient.request(path: Daemon.controlPath(name), line: "status history", timeoutMs: 3000)
            .flatMap { try? JSONValue.parse($0) }.flatMap { $0.objectValue != nil ? $0 : nil }
        let logPath = eventLog ?? status?["event_log"]?.stringValue ?? EventLogFile.defaultPath(for: name)
        let events = try EventLogFile.readEvents(logPath)
        let input = TimelineInput(interface: name, role: status?["role"]?.stringValue ?? roleOf(events),
                                  events: events, paths: status.map(Timeline.paths) ?? [], session: session,
                                  sinceMs: since.flatMap(SessionEvent.parseRFC3339), takenAtMs: status == nil ? nil : takenAt)
        let model: TimelineModel
        do { model = try TimelineModel.build(input) } catch let e as TimelineError {
            if case .unknownSession = e { throw fail("\(e) (\(logPath))", Exit.badInput) }
            throw fail("\(name): \(e) (\(logPath))")
        }
        let document = output.hasSuffix(".svg") || output == "-" ? TimelineSVG.render(model) : TimelineSVG.html(model)
        if output == "-" {
            guard FileIO.write(document, to: 1) else { throw fail("cannot write to stdout") }
            return
        }
        let fd = open(output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("cannot write \(output): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard FileIO.write(document, to: fd) else { throw fail("cannot write \(output): \(String(cString: strerror(errno)))") }
        let sessions = model.rows.count + model.omittedSessions
        print("jvpn: wrote \(output): \(sessions) session\(sessions == 1 ? "" : "s"), \(model.switches.count) switch\(model.switches.count == 1 ? "" : "es"), "
              + "\(model.alerts.count) security/audit events, \(model.paths.count) paths\(model.hasHistory ? "" : " (event log only: \(name) is not running)")")
    }

    private func roleOf(_ events: [SessionEvent]) -> String {
        switch events.last?.side {
        case "client"?: return "client"
        case "server"?: return "server"
        default: return ""
        }
    }

    /// Each distinct path of the status with its `probe_history` rows
    /// `[start_unix_ms, sent, answered, rtt_mean_ms|null, rtt_max_ms|null]`.
    static func paths(_ status: JSONValue) -> [TimelinePathSeries] {
        var out: [TimelinePathSeries] = []
        for s in status["sessions"]?.arrayValue ?? [] {
            for p in s["paths"]?.arrayValue ?? [] {
                guard let name = p["path"]?.stringValue, !out.contains(where: { $0.path == name }) else { continue }
                let samples = (p["probe_history"]?.arrayValue ?? []).compactMap { row -> TimelinePathSeries.Sample? in
                    guard let r = row.arrayValue, r.count >= 4, let t = r[0].intValue, t >= 0,
                          let sent = r[1].intValue, let answered = r[2].intValue else { return nil }
                    return TimelinePathSeries.Sample(startMs: UInt64(t), sent: Int(sent), answered: Int(answered), rttMeanMs: r[3].doubleValue)
                }
                out.append(TimelinePathSeries(path: name, samples: samples))
            }
        }
        return out
    }
}
