import Glibc

/// The sd_notify protocol without libsystemd: one datagram of `KEY=VALUE` lines to the unix socket
/// named by `$NOTIFY_SOCKET` (a path, or an abstract name written `@name`). Without the variable
/// (not started by systemd, or not Type=notify) every call is a no-op returning false.
public enum SystemdNotify {
    /// `READY=1` with a status line: the unit leaves "activating" and `systemctl start` returns.
    @discardableResult
    public static func ready(status: String) -> Bool {
        send("READY=1\nSTATUS=\(oneLine(status))")
    }

    /// `STOPPING=1`: a clean shutdown has begun (SIGTERM, `jvpn down`).
    @discardableResult
    public static func stopping() -> Bool {
        send("STOPPING=1\nSTATUS=stopping")
    }

    /// `STATUS=...`: the line `systemctl status` shows, e.g. "session 9f3c ATTACHED via wan0".
    @discardableResult
    public static func status(_ text: String) -> Bool {
        send("STATUS=\(oneLine(text))")
    }

    /// Sends `message` as is; true when the datagram was handed to the kernel.
    @discardableResult
    public static func send(_ message: String) -> Bool {
        guard let raw = getenv("NOTIFY_SOCKET") else { return false }
        let path = String(cString: raw)
        guard case .success(let address) = OpsSocketAddress.parseUnix(path) else { return false }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var msg = message
        let rc = msg.withUTF8 { bytes in
            address.withSockaddr { sa, len in
                sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL), sa, len)
            }
        }
        return rc == message.utf8.count
    }

    /// A newline would start a new assignment: a status text must not be able to send READY=1.
    static func oneLine(_ s: String) -> String {
        String(s.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
