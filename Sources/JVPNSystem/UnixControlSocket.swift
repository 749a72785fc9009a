import CUDP
import Glibc

/// The daemon's control socket: a SOCK_STREAM unix socket at /run/jvpn/NAME.sock, mode 0600.
/// One request line in, one response out, then close. Served from the daemon's main loop, so
/// nothing here ever waits on a client (see `RequestConnections` for the bounds).
public final class UnixControlListener: @unchecked Sendable {
    /// A request line is a command word; a reply (status JSON) is written as the client reads it.
    public static let limits = RequestConnections.Limits(maxConnections: 8, maxRequestBytes: 1024, deadlineMs: 1000)

    public let path: String
    public let fileDescriptor: Int32
    private let connections: RequestConnections

    public init(path: String) throws {
        self.path = path
        let dir = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !dir.isEmpty { mkdir(dir, 0o755) }
        // A stale socket from a crashed daemon would block bind; a live one is detected by connect.
        if UnixControlClient.request(path: path, line: "ping", timeoutMs: 500) != nil {
            throw SystemError("control socket \(path) is in use by a running daemon", errno: EADDRINUSE)
        }
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket(AF_UNIX)", errno: errno) }
        var addr = sockaddr_un()
        guard UnixControlListener.fill(&addr, path) else { close(fd); throw SystemError("control socket path too long", errno: ENAMETOOLONG) }
        let old = umask(0o077)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        umask(old)
        guard rc == 0 else { let e = errno; close(fd); throw SystemError("bind \(path)", errno: e) }
        chmod(path, 0o600)
        guard listen(fd, 16) == 0 else { let e = errno; close(fd); throw SystemError("listen \(path)", errno: e) }
        fileDescriptor = fd
        connections = RequestConnections(listenFd: fd, limits: UnixControlListener.limits) { bytes in
            bytes.firstIndex(of: 10).map { $0 + 1 }
        }
    }

    deinit {
        close(fileDescriptor)
    }

    public func removeSocketFile() { unlink(path) }

    static func fill(_ addr: inout sockaddr_un, _ path: String) -> Bool {
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        return true
    }

    /// Serves every connection as far as possible without waiting: each complete request line
    /// (whitespace trimmed) is answered with `handler`'s output.
    public func serve(nowMs: UInt64, _ handler: (String) -> String) {
        connections.service(nowMs: nowMs) { request in
            switch request {
            case .complete(let line):
                return Array(handler(String(decoding: line, as: UTF8.self).trimmingWhitespace).utf8)
            case .tooLarge:
                return Array("error: request too long\n".utf8)
            }
        }
    }

    /// Connections accepted and not yet finished.
    public var openConnections: Int { connections.openConnections }
}

public enum UnixControlClient {
    /// Sends one line, returns the whole reply, or nil when no daemon answers.
    public static func request(path: String, line: String, timeoutMs: Int = 5000) -> String? {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeoutMs / 1000, tv_usec: (timeoutMs % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_un()
        guard UnixControlListener.fill(&addr, path) else { return nil }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard rc == 0 else { return nil }
        let out = Array((line + "\n").utf8)
        guard out.withUnsafeBytes({ send(fd, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }) == out.count else { return nil }
        var reply = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while reply.count < 16 << 20 {
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, $0.count, 0) }
            if n <= 0 { break }
            reply.append(contentsOf: buf[0..<n])
        }
        return String(decoding: reply, as: UTF8.self)
    }
}
