import CUDP
import Glibc

/// The gateway's TCP listener for the TCP transport: `[::]:port` dual-stack (or `0.0.0.0:port`),
/// non-blocking, `SO_REUSEADDR` so a restarted gateway binds at once.
public final class TcpListener: @unchecked Sendable {
    public let fileDescriptor: Int32
    public let port: UInt16

    public init(port: UInt16, family: Int32 = AF_INET6, backlog: Int32 = 1024) throws {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket(tcp)", errno: errno) }
        fileDescriptor = fd
        self.port = port
        do {
            var one: Int32 = 1, zero: Int32 = 0
            guard setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                throw SystemError("setsockopt SO_REUSEADDR", errno: errno)
            }
            if family == AF_INET6 {
                guard setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &zero, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                    throw SystemError("setsockopt IPV6_V6ONLY", errno: errno)
                }
            }
            var addr = SocketAddress(addressBytes: [UInt8](repeating: 0, count: family == AF_INET6 ? 16 : 4), port: port)!
            let rc = withUnsafePointer(to: &addr.storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, addr.length) }
            }
            guard rc == 0 else { throw SystemError("bind tcp port \(port)", errno: errno) }
            guard listen(fd, backlog) == 0 else { throw SystemError("listen tcp port \(port)", errno: errno) }
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fileDescriptor) }

    public enum Accepted {
        case connection(TcpSocket, SocketAddress)
        /// Nothing waiting.
        case none
        /// This connection failed before it was taken (it reset already); try the next.
        case failed(Int32)
        /// No descriptor or memory to take it: it stays queued, and the listener stays readable.
        case exhausted(Int32)
    }

    /// Takes one waiting connection without blocking.
    public func accept() -> Accepted {
        var peer = SocketAddress()
        var len = UInt32(MemoryLayout<sockaddr_in6>.size)
        let fd = withUnsafeMutablePointer(to: &peer.storage) { ctcp_accept(fileDescriptor, $0, &len) }
        guard fd >= 0 else {
            let e = -fd
            if e == EAGAIN || e == EWOULDBLOCK { return .none }
            return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM ? .exhausted(e) : .failed(e)
        }
        peer.length = socklen_t(len)
        return .connection(TcpSocket(descriptor: fd), peer.unmapped)
    }
}

/// One TCP connection of the TCP transport. Non-blocking, `TCP_NODELAY` (frames leave at once),
/// `TCP_NOTSENT_LOWAT` (the socket takes at most that many bytes not yet sent: beyond, a write
/// fails with EAGAIN and the caller drops rather than queues) and `TCP_USER_TIMEOUT` (a connection
/// whose data goes unacknowledged that long ends, so a path behind a middlebox that forgot it is
/// opened again instead of retransmitting for minutes). Closed when the object goes away, so a
/// descriptor is never reused while another thread still holds this socket.
public final class TcpSocket: @unchecked Sendable {
    public let fileDescriptor: Int32
    /// Unsent bytes a connection may hold: enough to keep a fast path busy between two send
    /// batches, small enough that a stalled path sheds load instead of building a queue.
    public static let notSentLowWater: Int32 = 128 * 1024
    public static let userTimeoutMs: Int32 = 10_000

    init(descriptor: Int32) {
        fileDescriptor = descriptor
        _ = ctcp_configure(descriptor, TcpSocket.notSentLowWater, TcpSocket.userTimeoutMs)
    }

    /// Starts a non-blocking connect to `remote`, from `device` and with `mark` when given (the
    /// uplink's, as its UDP socket has). Completion is read with `connectResult()`.
    public static func connect(to remote: SocketAddress, device: String?, mark: UInt32?) throws -> TcpSocket {
        let fd = socket(remote.family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket(tcp)", errno: errno) }
        let s = TcpSocket(descriptor: fd)
        if let device {
            let rc = device.withCString { setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0) + 1)) }
            guard rc == 0 else { throw SystemError("bind to device \(device)", errno: errno) }
        }
        if let mark {
            var v = Int32(bitPattern: mark)
            guard setsockopt(fd, SOL_SOCKET, SO_MARK, &v, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
                throw SystemError("setsockopt SO_MARK", errno: errno)
            }
        }
        var dst = remote
        let rc = withUnsafePointer(to: &dst.storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, dst.length) }
        }
        guard rc == 0 || errno == EINPROGRESS else { throw SystemError("connect \(remote)", errno: errno) }
        return s
    }

    deinit { close(fileDescriptor) }

    public enum ConnectResult: Equatable {
        case connected
        case inProgress
        case failed(Int32)
    }

    public func connectResult() -> ConnectResult {
        let rc = ctcp_connect_result(fileDescriptor)
        return rc == 0 ? .connected : rc == 1 ? .inProgress : .failed(-rc)
    }

    /// The local address the connection uses (after connect).
    public var localAddress: SocketAddress? {
        var a = SocketAddress()
        var len = socklen_t(MemoryLayout<sockaddr_in6>.size)
        let rc = withUnsafeMutablePointer(to: &a.storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fileDescriptor, $0, &len) }
        }
        guard rc == 0 else { return nil }
        a.length = len
        return a.unmapped
    }

    public enum ReadResult: Equatable {
        case bytes(Int)
        case wouldBlock
        /// End of stream (errno 0) or an error: the connection is over.
        case closed(Int32)
    }

    public func read(into buffer: UnsafeMutableRawPointer, capacity: Int) -> ReadResult {
        while true {
            let n = recv(fileDescriptor, buffer, capacity, Int32(MSG_DONTWAIT))
            if n > 0 { return .bytes(n) }
            if n == 0 { return .closed(0) }
            let e = errno
            if e == EINTR { continue }
            return e == EAGAIN || e == EWOULDBLOCK ? .wouldBlock : .closed(e)
        }
    }

    /// One non-blocking gathered write: bytes written, or -errno (EAGAIN: nothing taken).
    public func send(_ iov: UnsafePointer<iovec>, count: Int) -> Int {
        Int(ctcp_send(fileDescriptor, iov, Int32(count)))
    }

    /// Ends both directions now; the peer sees the end of the stream, a reader here sees it too.
    public func shutdown() { _ = Glibc.shutdown(fileDescriptor, Int32(SHUT_RDWR)) }
}

/// An epoll set whose members carry a 64-bit tag, for the receive thread: many TCP connections
/// cost nothing per wait, unlike poll().
public final class EpollSet: @unchecked Sendable {
    public let fileDescriptor: Int32
    public static let maxEvents = 64
    private let tags = UnsafeMutablePointer<UInt64>.allocate(capacity: EpollSet.maxEvents)
    private let events = UnsafeMutablePointer<UInt32>.allocate(capacity: EpollSet.maxEvents)
    public private(set) var readyCount = 0

    public init() throws {
        let fd = ctcp_epoll_create()
        guard fd >= 0 else { throw SystemError("epoll_create1", negativeErrno: fd) }
        fileDescriptor = fd
    }

    deinit {
        close(fileDescriptor)
        tags.deallocate()
        events.deallocate()
    }

    @discardableResult
    public func add(_ fd: Int32, tag: UInt64) -> Bool { ctcp_epoll_add(fileDescriptor, fd, tag) == 0 }

    public func remove(_ fd: Int32) { _ = ctcp_epoll_del(fileDescriptor, fd) }

    /// Waits up to `timeoutMs`; the ready members are then `tag(i)` for i in 0..<readyCount.
    @discardableResult
    public func wait(timeoutMs: Int32) -> Int {
        let n = ctcp_epoll_wait(fileDescriptor, tags, events, Int32(EpollSet.maxEvents), timeoutMs)
        readyCount = n < 0 ? 0 : Int(n)
        return readyCount
    }

    @inline(__always)
    public func tag(_ i: Int) -> UInt64 { tags[i] }
}
