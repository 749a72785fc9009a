import CUDP
import Glibc

/// An eventfd used to wake threads blocked in poll() (shutdown, "snapshot changed").
public final class EventFD: @unchecked Sendable {
    public let fileDescriptor: Int32

    public init() throws {
        let fd = cudp_eventfd()
        guard fd >= 0 else { throw SystemError("eventfd", negativeErrno: fd) }
        fileDescriptor = fd
    }

    deinit { close(fileDescriptor) }

    public func signal() {
        var one: UInt64 = 1
        _ = write(fileDescriptor, &one, 8)
    }

    public func drain() {
        var v: UInt64 = 0
        _ = read(fileDescriptor, &v, 8)
    }
}

/// poll() over a fixed set of descriptors, allocated once.
public final class Poller: @unchecked Sendable {
    private let fds: UnsafeMutablePointer<pollfd>
    public let count: Int

    public init(_ descriptors: [Int32]) {
        count = descriptors.count
        fds = .allocate(capacity: max(count, 1))
        for (i, d) in descriptors.enumerated() { fds[i] = pollfd(fd: d, events: Int16(POLLIN), revents: 0) }
    }

    deinit { fds.deallocate() }

    /// Waits up to `timeoutMs` (-1 = forever). Returns the number of ready descriptors.
    @discardableResult
    public func wait(timeoutMs: Int32) -> Int {
        let n = poll(fds, nfds_t(count), timeoutMs)
        return n < 0 ? 0 : Int(n)
    }

    @inline(__always)
    public func isReadable(_ i: Int) -> Bool { fds[i].revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 }
}
