import CMnl

#if canImport(Glibc)
import Glibc
#endif

/// A fact reported by the kernel's rtnetlink multicast groups.
public enum NetlinkEvent: Equatable, Sendable {
    /// RTM_NEWLINK: sent on any change of a link (flags, carrier, MTU...), not only up/down.
    case linkChanged(index: Int32, name: String, isUp: Bool, isRunning: Bool, hasCarrier: Bool)
    case linkRemoved(index: Int32, name: String)
    case addressAdded(index: Int32, address: NetlinkAddress, prefix: UInt8)
    case addressRemoved(index: Int32, address: NetlinkAddress, prefix: UInt8)
    case routeAdded(table: UInt32, destination: NetlinkAddress, prefix: UInt8, oif: Int32,
                    gateway: NetlinkAddress?)
    case routeRemoved(table: UInt32, destination: NetlinkAddress, prefix: UInt8, oif: Int32,
                      gateway: NetlinkAddress?)
    /// The kernel dropped notifications (receive buffer overrun): state must be re-read.
    case overflow
}

/// A non-blocking socket on the link, IPv4/IPv6 address and IPv4/IPv6 route groups. Poll
/// `fileDescriptor` for POLLIN (together with a shutdown eventfd), then `drain`.
public final class NetlinkMonitor: @unchecked Sendable {
    private let handle: OpaquePointer
    private let lock = Lock()
    private let sink = EventSink()
    public let fileDescriptor: Int32

    public init() throws {
        var h: OpaquePointer?
        let rc = cmnl_monitor_open(&h)
        guard rc == 0, let h else { throw NetlinkError(.monitorOpen, errno: rc < 0 ? -rc : EIO) }
        handle = h
        fileDescriptor = cmnl_fd(h)
    }

    deinit { cmnl_close(handle) }

    /// Reads every pending notification without blocking and hands each to `handler`, in
    /// kernel order. Handlers run after the reads, outside the C callback.
    public func drain(_ handler: (NetlinkEvent) -> Void) throws {
        lock.lock()
        sink.events.removeAll(keepingCapacity: true)
        var failure: Int32 = 0
        let ctx = Unmanaged.passUnretained(sink).toOpaque()
        // Bounded: a flood larger than this is left for the next poll wakeup.
        for _ in 0..<1024 {
            let rc = cmnl_monitor_read(handle, netlinkMonitorCallback, ctx)
            if rc >= 0 { continue }
            if rc == -EAGAIN || rc == -EWOULDBLOCK { break }
            if rc == -ENOBUFS {
                sink.events.append(.overflow)
                continue
            }
            failure = -rc
            break
        }
        let events = sink.events
        sink.events.removeAll(keepingCapacity: true)
        lock.unlock()
        for e in events { handler(e) }
        if failure != 0 { throw NetlinkError(.monitorRead, errno: failure) }
    }

    /// Blocks up to `timeoutMs` (-1 = forever) until notifications are pending.
    public func wait(timeoutMs: Int32) throws -> Bool {
        var p = pollfd(fd: fileDescriptor, events: Int16(POLLIN), revents: 0)
        while true {
            let rc = poll(&p, 1, timeoutMs)
            if rc >= 0 { return rc > 0 }
            if errno != EINTR { throw NetlinkError(.monitorWait, errno: errno) }
        }
    }
}

private final class EventSink {
    var events: [NetlinkEvent] = []
}

private func netlinkMonitorCallback(_ ev: UnsafePointer<cmnl_event>?, _ ctx: UnsafeMutableRawPointer?) {
    guard let ev, let ctx else { return }
    let sink = Unmanaged<EventSink>.fromOpaque(ctx).takeUnretainedValue()
    let e = ev.pointee
    switch Int(e.kind) {
    case Int(CMNL_EV_LINK.rawValue):
        sink.events.append(.linkChanged(index: e.ifindex, name: netlinkName(e.name),
                                        isUp: e.flags & netlinkIffUp != 0,
                                        isRunning: e.flags & netlinkIffRunning != 0,
                                        hasCarrier: e.flags & netlinkIffLowerUp != 0))
    case Int(CMNL_EV_LINK_DEL.rawValue):
        sink.events.append(.linkRemoved(index: e.ifindex, name: netlinkName(e.name)))
    case Int(CMNL_EV_ADDR_ADD.rawValue), Int(CMNL_EV_ADDR_DEL.rawValue):
        guard let a = NetlinkAddress.fromTuple(family: e.family, e.addr) else { return }
        if e.kind == Int32(CMNL_EV_ADDR_ADD.rawValue) {
            sink.events.append(.addressAdded(index: e.ifindex, address: a, prefix: e.prefixlen))
        } else {
            sink.events.append(.addressRemoved(index: e.ifindex, address: a, prefix: e.prefixlen))
        }
    case Int(CMNL_EV_ROUTE_ADD.rawValue), Int(CMNL_EV_ROUTE_DEL.rawValue):
        guard let d = NetlinkAddress.fromTuple(family: e.family, e.addr) else { return }
        let gw = e.has_gateway != 0 ? NetlinkAddress.fromTuple(family: e.family, e.gateway) : nil
        if e.kind == Int32(CMNL_EV_ROUTE_ADD.rawValue) {
            sink.events.append(.routeAdded(table: e.table, destination: d, prefix: e.prefixlen,
                                           oif: e.ifindex, gateway: gw))
        } else {
            sink.events.append(.routeRemoved(table: e.table, destination: d, prefix: e.prefixlen,
                                             oif: e.ifindex, gateway: gw))
        }
    default:
        return
    }
}
