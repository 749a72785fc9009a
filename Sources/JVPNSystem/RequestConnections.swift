import CUDP
import Glibc

/// The accepted connections of a one-request-one-reply stream server (the control socket, the
/// /metrics endpoint), served without ever waiting on a client: every read and write is
/// non-blocking, each connection must be done within `deadlineMs` of its accept, a request is at
/// most `maxRequestBytes`, and at most `maxConnections` are open (the oldest is closed to make
/// room). A silent, slow or stuck client costs one descriptor until its deadline, never the
/// caller's time: the caller may be the daemon's main loop, which drives probes.
public final class RequestConnections {
    public struct Limits: Sendable {
        public var maxConnections: Int
        public var maxRequestBytes: Int
        public var deadlineMs: UInt64

        public init(maxConnections: Int, maxRequestBytes: Int, deadlineMs: UInt64) {
            self.maxConnections = max(1, maxConnections)
            self.maxRequestBytes = max(1, maxRequestBytes)
            self.deadlineMs = deadlineMs
        }
    }

    public enum Request {
        /// The request's bytes, up to where `requestLength` said it ends.
        case complete([UInt8])
        /// `maxRequestBytes` arrived without the end of a request.
        case tooLarge
    }

    private struct Connection {
        let fd: Int32
        let deadlineMs: UInt64
        var inbox: [UInt8] = []
        /// nil until the request is complete; then the reply still to send.
        var reply: [UInt8]?
        var sent = 0
    }

    public let limits: Limits
    private let listenFd: Int32
    private let requestLength: ([UInt8]) -> Int?
    private var connections: [Connection] = []

    /// `listenFd` must be non-blocking. `requestLength` says how long the request at the start of
    /// the bytes received so far is, or nil while it is incomplete.
    public init(listenFd: Int32, limits: Limits, requestLength: @escaping ([UInt8]) -> Int?) {
        self.listenFd = listenFd
        self.limits = limits
        self.requestLength = requestLength
    }

    deinit {
        for c in connections { close(c.fd) }
    }

    public var openConnections: Int { connections.count }

    /// What a caller that wants to sleep until there is work should poll: the listener, then each
    /// connection for reading (request pending) or writing (reply pending).
    public var pollDescriptors: [pollfd] {
        [pollfd(fd: listenFd, events: Int16(POLLIN), revents: 0)]
            + connections.map { pollfd(fd: $0.fd, events: Int16($0.reply == nil ? POLLIN : POLLOUT), revents: 0) }
    }

    /// Milliseconds until the earliest connection deadline; nil without connections.
    public func millisecondsUntilNextDeadline(nowMs: UInt64) -> Int? {
        connections.map(\.deadlineMs).min().map { $0 > nowMs ? Int($0 - nowMs) : 0 }
    }

    /// Does all the work possible now without waiting: closes connections past their deadline,
    /// accepts new ones (at most `maxConnections` per call), reads requests, answers complete
    /// ones with `respond`, writes replies, and closes the connections that are done.
    public func service(nowMs: UInt64, respond: (Request) -> [UInt8]) {
        connections.removeAll { c in
            guard nowMs >= c.deadlineMs else { return false }
            close(c.fd)
            return true
        }
        acceptPending(nowMs: nowMs)
        var i = 0
        while i < connections.count {
            if advance(&connections[i], respond: respond) {
                i += 1
            } else {
                finish(connections[i].fd)
                connections.remove(at: i)
            }
        }
    }

    private func acceptPending(nowMs: UInt64) {
        for _ in 0..<limits.maxConnections {
            let fd = cudp_accept_nonblocking(listenFd)
            guard fd >= 0 else { return }
            if connections.count >= limits.maxConnections {
                // Full: the oldest connection is the one most likely stuck.
                close(connections.removeFirst().fd)
            }
            connections.append(Connection(fd: fd, deadlineMs: nowMs + limits.deadlineMs))
        }
    }

    /// Reads and writes what the socket allows now; false when the connection is finished.
    private func advance(_ c: inout Connection, respond: (Request) -> [UInt8]) -> Bool {
        if c.reply == nil {
            switch read(&c) {
            case .gone: return false
            case .incomplete: return true
            case .received(let request): c.reply = respond(request)
            }
        }
        return write(&c)
    }

    private enum ReadOutcome {
        case received(Request)
        case incomplete
        case gone
    }

    private func read(_ c: inout Connection) -> ReadOutcome {
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let length = requestLength(c.inbox) { return .received(.complete(Array(c.inbox.prefix(length)))) }
            if c.inbox.count >= limits.maxRequestBytes { return .received(.tooLarge) }
            let want = min(chunk.count, limits.maxRequestBytes - c.inbox.count)
            let n = chunk.withUnsafeMutableBytes { recv(c.fd, $0.baseAddress!, want, Int32(MSG_DONTWAIT)) }
            if n > 0 { c.inbox += chunk[0..<n]; continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return .incomplete }
            if n < 0 && errno == EINTR { continue }
            return .gone
        }
    }

    /// Sends what fits now; false when the reply is all sent or the client is gone.
    private func write(_ c: inout Connection) -> Bool {
        guard let reply = c.reply else { return true }
        while c.sent < reply.count {
            let n = reply.withUnsafeBytes { raw in
                send(c.fd, raw.baseAddress! + c.sent, raw.count - c.sent, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if n > 0 { c.sent += n; continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return true }
            if n < 0 && errno == EINTR { continue }
            return false
        }
        return false
    }

    /// Half-closes before closing, so the client reads the whole reply and then end-of-file.
    private func finish(_ fd: Int32) {
        shutdown(fd, Int32(SHUT_WR))
        close(fd)
    }
}
