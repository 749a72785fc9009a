import ArgumentParser
import Glibc
import JVPNCore
import JVPNDaemon
import JVPNSystem

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show running interfaces and their sessions.",
        discussion: """
            Exit 1 when the interface (or, without NAME, every interface) is not running.

            Examples:
              jvpn status                          (every running interface)
              jvpn status jvpn0 --json             (the contract's JSON)
              jvpn status jvpn0 --json --history   (with each path's probe history, the last hour)
            """)
    @Argument(help: "Interface name (default: every running interface)") var name: String?
    @Flag(help: "Print the contract's JSON") var json = false
    @Flag(help: "With --json: add each client path's probe_history (one row per second, the last hour)") var history = false

    func validate() throws {
        if history && !json { throw ValidationError("--history goes with --json") }
    }

    func run() throws {
        var names: [String] = []
        if let name {
            names = [name]
        } else {
            names = FileIO.list(Daemon.runDirectory).filter { $0.hasSuffix(".sock") }.map { String($0.dropLast(5)) }.sorted()
        }
        var objects: [JSONValue] = []
        var raws: [String] = []
        for n in names {
            guard let reply = UnixControlClient.request(path: Daemon.controlPath(n), line: history ? "status history" : "status"),
                  let obj = try? JSONValue.parse(reply), obj.objectValue != nil else { continue }
            objects.append(obj)
            raws.append(reply.trimmingWhitespace)
        }
        if objects.isEmpty {
            if let name {
                throw fail("\(name) is not running; start it with `sudo jvpn up /etc/jvpn/\(name).conf` (or `sudo systemctl start jvpn@\(name)`)")
            }
            throw fail("no jvpn interface is running; start one with `sudo jvpn up /etc/jvpn/NAME.conf` (or `sudo systemctl start jvpn@NAME`)")
        }
        if json {
            print(name != nil ? raws[0] : "[" + raws.joined(separator: ",") + "]")
            return
        }
        let color = isatty(1) != 0
        for obj in objects { print(StatusFormatter.human(obj, color: color)) }
    }
}

enum StatusFormatter {
    /// A status field as text: strings bare, numbers as written, absent or null as `dflt`.
    static func show(_ v: JSONValue?, _ dflt: String = "") -> String {
        switch v {
        case .string(let s)?: return s
        case .null?, nil: return dflt
        case let other?: return other.text
        }
    }

    /// `d` with `decimals` digits after the point, right-aligned in `width` (printf's %W.Df).
    static func fixed(_ d: Double, _ decimals: Int, width: Int) -> String {
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(d) * scale).rounded()
        var out: String
        if !scaled.isFinite || scaled >= 9.0e18 {
            out = String(d)
        } else {
            let n = Int64(scaled)
            let ip = n / Int64(scale), fp = n % Int64(scale)
            out = String(ip)
            if decimals > 0 {
                let f = String(fp)
                out += "." + String(repeating: "0", count: decimals - f.count) + f
            }
            if d < 0 && n != 0 { out = "-" + out }
        }
        return out.count >= width ? out : String(repeating: " ", count: width - out.count) + out
    }

    static func left(_ s: String, _ width: Int) -> String {
        s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
    }

    static func human(_ o: JSONValue, color: Bool) -> String {
        func paint(_ s: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }
        func stateColor(_ s: String) -> String {
            switch s {
            case "ATTACHED": return paint(s, "32")
            case "VOLATILE", "RECOVERING": return paint(s, "33")
            case "DEGRADED", "TERMINATED": return paint(s, "31")
            default: return s
            }
        }
        var out = "interface: \(paint(show(o["interface"], "?"), "1"))  role: \(show(o["role"], "?"))  listen_port: \(show(o["listen_port"], "0"))\n"
        out += "  public key: \(show(o["public_key"]))\n"
        if let t = o["tcp"], let ports = t["listen_ports"]?.arrayValue, !ports.isEmpty {
            out += "  tcp: listening on \(ports.map { show($0) }.joined(separator: ", ")), \(show(t["open"], "0")) connections open "
            out += "(\(show(t["unauthenticated"], "0")) unauthenticated); refused \(show(t["refused_source_limit"], "0")), "
            out += "evicted \(show(t["evicted"], "0")), timed out \(show(t["unauthenticated_timeouts"], "0")), framing violations \(show(t["framing_violations"], "0"))\n"
        }
        if let c = o["cluster"], c.objectValue != nil {
            let members = (c["members"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ", ")
            out += "  cluster: node \(show(c["node"]))  etcd \(show(c["etcd"]))  serving \(show(c["serving"]))  owned sessions \(show(c["owned_sessions"], "0"))  members [\(members)]\n"
        }
        for s in o["sessions"]?.arrayValue ?? [] {
            out += "  session \(show(s["session"]))  \(stateColor(show(s["state"], "?"))) (v\(show(s["state_version"], "0")))  peer \(show(s["peer"]))\n"
            out += "    active path: \(show(s["active_path"], "-"))   switches: \(show(s["switches"], "0"))\n"
            if let ls = s["last_switch"], ls.objectValue != nil {
                out += "    last switch: \(show(ls["from_path"])) -> \(show(ls["to_path"]))  \(show(ls["reason"]))  \(show(ls["recovery_ms"], "0")) ms  at \(show(ls["ts"]))\n"
            }
            for p in s["paths"]?.arrayValue ?? [] {
                let st = show(p["status"])
                let mark = st == "active" ? paint("*", "32") : (st == "dead" ? paint("x", "31") : " ")
                out += "    \(mark) \(left(show(p["path"]), 48)) \(left(st, 8)) rtt \(fixed(p["rtt_ms"]?.doubleValue ?? 0, 2, width: 7)) ms"
                out += "  loss \(fixed(p["loss_pct"]?.doubleValue ?? 0, 1, width: 5)) %  jitter \(fixed(p["jitter_ms"]?.doubleValue ?? 0, 2, width: 6)) ms"
                // "?" while a UDP path's MTU is being searched; "-" on a TCP path, which has none.
                let mtu = p["mtu"]?.intValue ?? 0
                out += "  mtu \(mtu > 0 ? String(mtu) : p["transport"]?.stringValue == "tcp" ? "-" : "?")\n"
            }
            out += "    transfer: \(show(s["rx_bytes"], "0")) B received (\(show(s["rx_packets"], "0")) pkts), \(show(s["tx_bytes"], "0")) B sent (\(show(s["tx_packets"], "0")) pkts)\n"
            if let r = s["rejected"], r.objectValue != nil {
                out += "    rejected: replay \(show(r["replay"], "0")), auth \(show(r["auth"], "0")), stale_version \(show(r["stale_version"], "0")), rate_limited \(show(r["rate_limited"], "0"))   events dropped: \(show(s["events_dropped"], "0"))\n"
            }
        }
        return out
    }
}

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events", abstract: "Print the session timeline (the event log).",
        discussion: """
            --follow keeps printing new events while the daemon runs and ends when it stops.

            Examples:
              jvpn events jvpn0
              jvpn events jvpn0 --follow
              jvpn events jvpn0 --json --since 2026-11-22T10:00:00Z | jq -c 'select(.event=="TRANSPORT_SWITCH")'
              jvpn events jvpn0 --session 9f3c2a1b4d5e6f70
            """)
    @Argument(help: "Interface name") var name: String
    @Flag(help: "Keep printing new events as they are written") var follow = false
    @Flag(help: "Print the raw JSON lines") var json = false
    @Option(help: "Only events at or after this RFC 3339 time (e.g. 2026-11-22T10:00:00Z)") var since: String?
    @Option(help: "Only events of this session id (hex)") var session: String?

    func run() throws {
        let path = EventLogFile.path(for: name)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw fail("no event log for \(name) at \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var pending: [UInt8] = []
        func emit() {
            var start = 0
            while let nl = pending[start...].firstIndex(of: 10) {
                let line = String(decoding: pending[start..<nl], as: UTF8.self)
                start = nl + 1
                guard !line.isEmpty else { continue }
                guard let event = SessionEvent(jsonLine: line) else {
                    if json { print(line) }
                    continue
                }
                if let session, event.session != session { continue }
                if let since, SessionEvent.rfc3339(event.timestampMs) < since { continue }
                print(json ? line : event.humanLine())
            }
            pending.removeFirst(start)
            fflush(stdout)
        }
        var chunk = [UInt8](repeating: 0, count: 65536)
        var watch = follow ? DaemonWatch(name: name) : nil
        let runningAtStart = watch?.running ?? false
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw fail("cannot read \(path): \(String(cString: strerror(errno)))") }
            if n > 0 {
                pending.append(contentsOf: chunk[0..<n])
                emit()
                continue
            }
            // End of file: done, or wait for the daemon to append more while it runs. Once it has
            // stopped, this end of file is after its last event.
            guard follow, var w = watch else { return }
            guard w.running else {
                FileIO.writeStderr(runningAtStart ? "jvpn: \(name) stopped; no more events\n"
                                                  : "jvpn: \(name) is not running; nothing to follow\n")
                return
            }
            usleep(200_000)
            w.check()
            watch = w
        }
    }
}

/// Whether an interface's daemon still runs, checked about once a second. It removes its control
/// socket only after flushing its event log, so once the socket is gone the log is complete; a
/// socket that stops answering (a daemon killed hard) counts as gone after 3 silent checks.
struct DaemonWatch {
    let socket: String
    private(set) var running: Bool
    private var lastCheckMs: UInt64
    private var silentChecks = 0

    init(name: String) {
        socket = Daemon.controlPath(name)
        running = UnixControlClient.request(path: socket, line: "ping", timeoutMs: 500) != nil
        lastCheckMs = Clock.monotonicMilliseconds()
    }

    mutating func check() {
        let now = Clock.monotonicMilliseconds()
        guard running, elapsedMs(now, since: lastCheckMs) >= 1000 else { return }
        lastCheckMs = now
        if access(socket, F_OK) != 0 {
            running = false
        } else if UnixControlClient.request(path: socket, line: "ping", timeoutMs: 300) != nil {
            silentChecks = 0
        } else {
            silentChecks += 1
            running = silentChecks < 3
        }
    }
}
