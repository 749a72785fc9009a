import JVPNSystem
import Glibc

/// Sends each event to syslog as one RFC 5424 message whose MSG is the event's JSON line, verbatim:
///
///     <PRI>1 2025-01-31T12:00:00.123Z HOSTNAME jvpn PROCID EVENT - {"ts":...}
///
/// Targets: `udp://IP:PORT` (RFC 5426, one message per datagram) and `unix:/dev/log` (SOCK_DGRAM).
/// Sending never blocks and never throws: a full queue, a missing socket or an unreachable collector
/// costs that one message, which is counted in `failures`. The socket is unconnected (`sendto` each
/// time) so a restarted syslog daemon that recreates /dev/log is picked up without a reconnect, and an
/// ICMP port-unreachable for one message cannot fail the next one.
public final class SyslogSink: @unchecked Sendable {
    /// RFC 5424 facilities. The default is `daemon`: jvpn is a system daemon, and Debian's rsyslog
    /// routes daemon.* to /var/log/daemon.log out of the box. Pick a `local*` facility when the SIEM
    /// routes by facility.
    public enum Facility: Int, Sendable, CaseIterable {
        case kern = 0, user = 1, daemon = 3, auth = 4, authpriv = 10
        case local0 = 16, local1 = 17, local2 = 18, local3 = 19, local4 = 20, local5 = 21, local6 = 22, local7 = 23
    }

    /// RFC 5424 severities (only those jvpn uses).
    public enum Severity: Int, Sendable {
        case warning = 4, notice = 5, informational = 6
    }

    public let target: String
    public let facility: Facility
    private let fd: Int32
    private let address: OpsSocketAddress
    private let header: String  // "HOSTNAME jvpn PROCID", fixed for the process
    private let lock = Lock()
    private var failureCount: UInt64 = 0
    private var sentCount: UInt64 = 0

    /// Messages that could not be handed to the kernel (queue full, no receiver, ...).
    public var failures: UInt64 { lock.lock(); defer { lock.unlock() }; return failureCount }
    /// Messages handed to the kernel. UDP gives no delivery guarantee beyond that.
    public var sent: UInt64 { lock.lock(); defer { lock.unlock() }; return sentCount }

    /// Parses `udp://IP:PORT`, `udp://[IPv6]:PORT`, `unix:/PATH` (also `unix:///PATH`) and opens a
    /// datagram socket. The receiver does not need to exist yet: a syslog daemon that starts later
    /// still gets every message sent after it is up.
    public init(target: String, facility: Facility = .daemon, appName: String = "jvpn", hostname: String? = nil) throws {
        self.target = target
        self.facility = facility
        let parsed: Result<OpsSocketAddress, AddressParseFailure>
        if target.hasPrefix("udp://") {
            parsed = OpsSocketAddress.parseIP(String(target.dropFirst("udp://".count)), allowPortZero: false)
        } else if target.hasPrefix("unix:") {
            var path = String(target.dropFirst("unix:".count))
            if path.hasPrefix("//") { path.removeFirst(2) }
            parsed = OpsSocketAddress.parseUnix(path)
        } else {
            parsed = .failure(AddressParseFailure("unknown scheme"))
        }
        switch parsed {
        case .success(let a): address = a
        case .failure(let f): throw OpsError.badSyslogTarget(target: target, why: f.why)
        }
        let s = socket(address.family, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw OpsError.socket(operation: "socket", errno: errno) }
        fd = s
        let host = SyslogSink.headerField(hostname ?? SyslogSink.systemHostname(), maxLength: 255)
        let app = SyslogSink.headerField(appName, maxLength: 48)
        header = "\(host) \(app) \(getpid())"
    }

    deinit { close(fd) }

    /// Severity by event kind: a security reject is a warning, an audit record a notice, the rest
    /// (state changes, switches) information.
    public static func severity(forEvent eventName: String) -> Severity {
        switch eventName {
        case "SECURITY_EVENT": return .warning
        case "AUDIT_EVENT": return .notice
        default: return .informational
        }
    }

    /// The full RFC 5424 message for one event, at wall-clock time `now` (seconds, nanoseconds).
    public func format(jsonLine: String, eventName: String, now: timespec? = nil) -> String {
        let pri = facility.rawValue * 8 + SyslogSink.severity(forEvent: eventName).rawValue
        var body = Substring(jsonLine)
        while body.last == "\n" || body.last == "\r" { body = body.dropLast() }
        let msgid = SyslogSink.headerField(eventName, maxLength: 32)
        return "<\(pri)>1 \(SyslogSink.timestamp(now ?? SyslogSink.wallClock())) \(header) \(msgid) - \(body)"
    }

    /// Hands one event to the kernel without waiting. Called per event, never per packet.
    public func send(jsonLine: String, eventName: String) {
        var message = format(jsonLine: jsonLine, eventName: eventName)
        let rc = message.withUTF8 { bytes in
            address.withSockaddr { sa, len in
                sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), sa, len)
            }
        }
        lock.lock()
        if rc < 0 { failureCount &+= 1 } else { sentCount &+= 1 }
        lock.unlock()
    }

    // MARK: - formatting helpers

    /// RFC 5424 header fields are PRINTUSASCII (33...126) with a length limit; "-" means nil.
    static func headerField(_ s: String, maxLength: Int) -> String {
        let cleaned = String(String.UnicodeScalarView(s.unicodeScalars.filter { $0.value >= 33 && $0.value <= 126 }.prefix(maxLength)))
        return cleaned.isEmpty ? "-" : cleaned
    }

    static func systemHostname() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        guard gethostname(&buf, buf.count - 1) == 0 else { return "-" }
        return String(cString: buf)
    }

    static func wallClock() -> timespec {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return ts
    }

    /// RFC 3339 UTC with milliseconds, the same shape as the event log's `ts`. gmtime_r, not a
    /// DateFormatter, so that concurrent senders share no formatter state.
    static func timestamp(_ ts: timespec) -> String {
        var secs = ts.tv_sec
        var tmv = tm()
        gmtime_r(&secs, &tmv)
        let ms = Int(ts.tv_nsec / 1_000_000)
        func pad(_ v: Int, _ width: Int) -> String {
            let s = String(v)
            return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
        }
        return "\(pad(Int(tmv.tm_year) + 1900, 4))-\(pad(Int(tmv.tm_mon) + 1, 2))-\(pad(Int(tmv.tm_mday), 2))T"
            + "\(pad(Int(tmv.tm_hour), 2)):\(pad(Int(tmv.tm_min), 2)):\(pad(Int(tmv.tm_sec), 2)).\(pad(ms, 3))Z"
    }
}
