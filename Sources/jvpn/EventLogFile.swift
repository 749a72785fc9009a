import Glibc
import JVPNCore
import JVPNDaemon
import JVPNSystem

/// The event log of an interface, as `events` and `timeline` read it.
enum EventLogFile {
    /// The log the running daemon names (its `EventLog =`), or the default path when it is down.
    static func path(for name: String) -> String {
        if let reply = UnixControlClient.request(path: Daemon.controlPath(name), line: "eventlog", timeoutMs: 1000) {
            let p = reply.trimmingWhitespace
            if p.hasPrefix("/") { return p }
        }
        return defaultPath(for: name)
    }

    static func defaultPath(for name: String) -> String { "/var/log/jvpn/\(name).events.jsonl" }

    /// Every line of the file that parses as an event, in order (others are skipped).
    static func readEvents(_ path: String) throws -> [SessionEvent] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("no event log at \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var events: [SessionEvent] = []
        var pending: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw fail("cannot read \(path): \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            pending.append(contentsOf: chunk[0..<n])
            var start = 0
            while let nl = pending[start...].firstIndex(of: 10) {
                if let e = SessionEvent(jsonLine: String(decoding: pending[start..<nl], as: UTF8.self)) { events.append(e) }
                start = nl + 1
            }
            pending.removeFirst(start)
        }
        return events
    }
}
