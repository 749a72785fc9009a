import ArgumentParser
import Foundation
import Glibc
import JVPNCore
import JVPNDaemon
import JVPNSystem

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "status", abstract: "Show running interfaces and their sessions.")
    @Argument(help: "Interface name (default: every running interface)") var name: String?
    @Flag(help: "Print the contract's JSON") var json = false

    func run() throws {
        var names: [String] = []
        if let name {
            names = [name]
        } else {
            let files = (try? FileManager.default.contentsOfDirectory(atPath: Daemon.runDirectory)) ?? []
            names = files.filter { $0.hasSuffix(".sock") }.map { String($0.dropLast(5)) }.sorted()
        }
        var objects: [[String: Any]] = []
        var raws: [String] = []
        for n in names {
            guard let reply = UnixControlClient.request(path: Daemon.controlPath(n), line: "status"),
                  let obj = try? JSONSerialization.jsonObject(with: Data(reply.utf8)) as? [String: Any] else { continue }
            objects.append(obj)
            raws.append(reply.trimmingCharacters(in: .whitespacesAndNewlines))
        }
        if objects.isEmpty {
            throw fail(name.map { "\($0) is not running" } ?? "no jvpn interface is running")
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
    static func human(_ o: [String: Any], color: Bool) -> String {
        func paint(_ s: String, _ code: String) -> String { color ? "\u{1B}[\(code)m\(s)\u{1B}[0m" : s }
        func stateColor(_ s: String) -> String {
            switch s {
            case "ATTACHED": return paint(s, "32")
            case "VOLATILE", "RECOVERING": return paint(s, "33")
            case "DEGRADED", "TERMINATED": return paint(s, "31")
            default: return s
            }
        }
        var out = "interface: \(paint(o["interface"] as? String ?? "?", "1"))  role: \(o["role"] ?? "?")  listen_port: \(o["listen_port"] ?? 0)\n"
        out += "  public key: \(o["public_key"] ?? "")\n"
        for s in o["sessions"] as? [[String: Any]] ?? [] {
            let state = s["state"] as? String ?? "?"
            out += "  session \(s["session"] ?? "")  \(stateColor(state)) (v\(s["state_version"] ?? 0))  peer \(s["peer"] ?? "")\n"
            out += "    active path: \(s["active_path"] as? String ?? "-")   switches: \(s["switches"] ?? 0)\n"
            if let ls = s["last_switch"] as? [String: Any] {
                out += "    last switch: \(ls["from_path"] ?? "") -> \(ls["to_path"] ?? "")  \(ls["reason"] ?? "")  \(ls["recovery_ms"] ?? 0) ms  at \(ls["ts"] ?? "")\n"
            }
            for p in s["paths"] as? [[String: Any]] ?? [] {
                let st = p["status"] as? String ?? ""
                let mark = st == "active" ? paint("*", "32") : (st == "dead" ? paint("x", "31") : " ")
                out += String(format: "    %@ %-48@ %-8@ rtt %7.2f ms  loss %5.1f %%  jitter %6.2f ms\n",
                              mark, (p["path"] as? String ?? "") as NSString, st as NSString,
                              (p["rtt_ms"] as? Double) ?? 0, (p["loss_pct"] as? Double) ?? 0, (p["jitter_ms"] as? Double) ?? 0)
            }
            out += "    transfer: \(s["rx_bytes"] ?? 0) B received (\(s["rx_packets"] ?? 0) pkts), \(s["tx_bytes"] ?? 0) B sent (\(s["tx_packets"] ?? 0) pkts)\n"
            if let r = s["rejected"] as? [String: Any] {
                out += "    rejected: replay \(r["replay"] ?? 0), auth \(r["auth"] ?? 0), stale_version \(r["stale_version"] ?? 0), rate_limited \(r["rate_limited"] ?? 0)   events dropped: \(s["events_dropped"] ?? 0)\n"
            }
        }
        return out
    }
}

struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "Print the session timeline (the event log).")
    @Argument(help: "Interface name") var name: String
    @Flag(help: "Keep printing new events as they are written") var follow = false
    @Flag(help: "Print the raw JSON lines") var json = false
    @Option(help: "Only events at or after this RFC 3339 time (e.g. 2026-11-22T10:00:00Z)") var since: String?
    @Option(help: "Only events of this session id (hex)") var session: String?

    func run() throws {
        var path = "/var/log/jvpn/\(name).events.jsonl"
        if let reply = UnixControlClient.request(path: Daemon.controlPath(name), line: "eventlog", timeoutMs: 1000) {
            let p = reply.trimmingCharacters(in: .whitespacesAndNewlines)
            if p.hasPrefix("/") { path = p }
        }
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw fail("no event log for \(name) at \(path)")
        }
        var pending = Data()
        func emit(_ data: Data) {
            pending.append(data)
            while let nl = pending.firstIndex(of: 10) {
                let line = String(decoding: pending[pending.startIndex..<nl], as: UTF8.self)
                pending.removeSubrange(pending.startIndex...nl)
                guard !line.isEmpty else { continue }
                guard let event = SessionEvent(jsonLine: line) else {
                    if json { print(line) }
                    continue
                }
                if let session, event.session != session { continue }
                if let since, SessionEvent.rfc3339(event.timestampMs) < since { continue }
                print(json ? line : event.humanLine())
            }
            fflush(stdout)
        }
        emit(handle.readDataToEndOfFile())
        guard follow else { return }
        while true {
            let d = handle.readDataToEndOfFile()
            if !d.isEmpty { emit(d) } else { usleep(200_000) }
        }
    }
}
