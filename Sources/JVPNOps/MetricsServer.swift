import JVPNSystem
import Glibc

/// A minimal HTTP/1.1 server for Prometheus scrapes: `GET /metrics` (and HEAD) answers the
/// metrics in text format 0.0.4, any other path 404, any other method 405. One thread multiplexes
/// up to `maxConnections` connections with non-blocking I/O, `Connection: close`: a client that
/// stalls holds one slot until it is cut off `ioTimeoutMs` after its accept, and delays nobody
/// else's scrape; requests are capped at `maxRequestBytes`. The daemon's main loop is never involved.
public final class MetricsServer: @unchecked Sendable {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public let listenAddress: String
    /// The bound port (useful with port 0 in tests).
    public let port: UInt16
    private let metrics: JVPNMetrics
    private let ioTimeoutMs: Int
    private let limits: RequestConnections.Limits
    private let listenFd: Int32
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let lock = Lock()
    private var started = false
    private var stopped = false
    private var served: UInt64 = 0
    private let finished = Semaphore()

    /// Scrapes answered with 200.
    public var requestsServed: UInt64 { lock.lock(); defer { lock.unlock() }; return served }

    /// Binds and listens at once, so that a taken port or a bad address fails `jvpn up` rather
    /// than surfacing later. `listen` is `IPv4:PORT` or `[IPv6]:PORT`.
    public init(listen: String, metrics: JVPNMetrics, maxRequestBytes: Int = 8192, ioTimeoutMs: Int = 2000,
                maxConnections: Int = 8) throws {
        listenAddress = listen
        self.metrics = metrics
        self.ioTimeoutMs = max(10, ioTimeoutMs)
        limits = RequestConnections.Limits(maxConnections: maxConnections, maxRequestBytes: max(256, maxRequestBytes),
                                           deadlineMs: UInt64(self.ioTimeoutMs))
        let address: OpsSocketAddress
        switch OpsSocketAddress.parseIP(listen, allowPortZero: true) {
        case .success(let a): address = a
        case .failure(let f): throw OpsError.badListenAddress(address: listen, why: f.why)
        }
        let fd = socket(address.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw OpsError.socket(operation: "socket", errno: errno) }
        var one: Int32 = 1
        // A restarted daemon must be able to rebind while old connections sit in TIME_WAIT.
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let rc = address.withSockaddr { bind(fd, $0, $1) }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw OpsError.socket(operation: "bind \(listen)", errno: e)
        }
        guard Glibc.listen(fd, 16) == 0 else {
            let e = errno
            close(fd)
            throw OpsError.socket(operation: "listen \(listen)", errno: e)
        }
        var bound = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &bound) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        let boundFamily = Int32(bound.ss_family)
        port = withUnsafePointer(to: &bound) { p -> UInt16 in
            if boundFamily == AF_INET6 {
                return p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
            }
            return p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
        var pipeFds: [Int32] = [-1, -1]
        guard pipe(&pipeFds) == 0 else {
            let e = errno
            close(fd)
            throw OpsError.socket(operation: "pipe", errno: e)
        }
        for p in pipeFds {
            _ = fcntl(p, F_SETFL, fcntl(p, F_GETFL) | O_NONBLOCK)
            _ = fcntl(p, F_SETFD, FD_CLOEXEC)
        }
        listenFd = fd
        wakeRead = pipeFds[0]
        wakeWrite = pipeFds[1]
    }

    deinit {
        stop()
        close(wakeRead)
        close(wakeWrite)
    }

    /// Starts the server thread. Calling it twice has no effect.
    public func start() throws {
        lock.lock()
        let already = started || stopped
        started = true
        lock.unlock()
        if already { return }
        do {
            try DetachedThread.start(name: "jvpn-metrics") { [self] in
                self.serve()
                self.finished.signal()
            }
        } catch {
            lock.withLock { stopped = true }
            throw error
        }
    }

    /// Stops accepting, waits (bounded by the I/O timeout) for the thread to end and releases the
    /// port, so that a restarted daemon can bind it again at once.
    public func stop() {
        lock.lock()
        let wasRunning = started && !stopped
        let wasStopped = stopped
        stopped = true
        lock.unlock()
        if wasStopped { return }
        if wasRunning {
            var b: UInt8 = 1
            _ = write(wakeWrite, &b, 1)
            finished.wait(timeoutMs: ioTimeoutMs * 3 + 1000)
        }
        close(listenFd)
    }

    private var isStopped: Bool { lock.lock(); defer { lock.unlock() }; return stopped }

    private func serve() {
        let connections = RequestConnections(listenFd: listenFd, limits: limits) { bytes in
            MetricsServer.headerEnd(bytes, count: bytes.count).map { $0 + 4 }
        }
        while !isStopped {
            var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)] + connections.pollDescriptors
            let timeout = connections.millisecondsUntilNextDeadline(nowMs: MetricsServer.nowMs()).map { min($0, 1000) } ?? 1000
            let n = poll(&fds, nfds_t(fds.count), Int32(timeout))
            if n < 0 && errno != EINTR { usleep(10_000); continue }
            if fds[0].revents != 0 { break }
            connections.service(nowMs: MetricsServer.nowMs()) { respond(to: $0) }
        }
    }

    private func respond(to request: RequestConnections.Request) -> [UInt8] {
        switch request {
        case .tooLarge:
            return MetricsServer.response(431, "Request Header Fields Too Large", body: "request too large\n", head: false)
        case .complete(let bytes):
            switch MetricsServer.parse(Array(bytes.dropLast(4))) {
            case .malformed:
                return MetricsServer.response(400, "Bad Request", body: "bad request\n", head: false)
            case .request(let method, let target):
                let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
                if path != "/metrics" {
                    return MetricsServer.response(404, "Not Found", body: "not found; metrics are at /metrics\n", head: method == "HEAD")
                }
                if method != "GET" && method != "HEAD" {
                    return MetricsServer.response(405, "Method Not Allowed", body: "only GET\n", head: false, extra: "Allow: GET, HEAD\r\n")
                }
                lock.lock(); served &+= 1; lock.unlock()
                return MetricsServer.response(200, "OK", body: metrics.render(), head: method == "HEAD",
                                              contentType: MetricsServer.contentType)
            }
        }
    }

    private enum Head {
        case request(method: String, target: String)
        case malformed
    }

    static func headerEnd(_ b: [UInt8], count: Int) -> Int? {
        guard count >= 4 else { return nil }
        for i in 0...(count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 {
            return i
        }
        return nil
    }

    private static func parse(_ head: [UInt8]) -> Head {
        guard let text = String(validating: head, as: UTF8.self) else { return .malformed }
        let firstLine = text.split(separator: "\r\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let parts = firstLine.split(separator: " ", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[2].hasPrefix("HTTP/1."), !parts[0].isEmpty, parts[1].hasPrefix("/") else {
            return .malformed
        }
        return .request(method: String(parts[0]), target: String(parts[1]))
    }

    private static func response(_ code: Int, _ reason: String, body: String, head: Bool,
                                 contentType: String = "text/plain; charset=utf-8", extra: String = "") -> [UInt8] {
        let bodyBytes = Array(body.utf8)
        var out = Array(("HTTP/1.1 \(code) \(reason)\r\nContent-Type: \(contentType)\r\n"
            + "Content-Length: \(bodyBytes.count)\r\nConnection: close\r\n\(extra)\r\n").utf8)
        if !head { out += bodyBytes }
        return out
    }

    private static func nowMs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1000 + UInt64(ts.tv_nsec / 1_000_000)
    }
}
