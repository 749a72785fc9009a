import CTun
import Glibc

/// A layer-3 TUN interface (IFF_TUN|IFF_NO_PI). Closing the last fd removes the interface.
public final class TunDevice: @unchecked Sendable {
    public let name: String
    public let fileDescriptor: Int32

    public struct Options: OptionSet, Sendable {
        public let rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        public static let vnetHeader = Options(rawValue: Int32(CTUN_OPT_VNET_HDR))
        public static let multiQueue = Options(rawValue: Int32(CTUN_OPT_MULTI_QUEUE))
        public static let nonBlocking = Options(rawValue: Int32(CTUN_OPT_NONBLOCK))
    }

    public init(name: String, options: Options = [.nonBlocking]) throws {
        var out = [CChar](repeating: 0, count: 16)
        let fd = ctun_open(name, options.rawValue, &out, out.count)
        guard fd >= 0 else { throw SystemError("open tun \(name)", negativeErrno: fd) }
        self.fileDescriptor = fd
        self.name = String(cString: out)
    }

    deinit { close(fileDescriptor) }

    public func setMTU(_ mtu: Int) throws {
        let rc = ctun_set_mtu(name, Int32(mtu))
        guard rc == 0 else { throw SystemError("set mtu \(name)", negativeErrno: rc) }
    }

    /// Asks the kernel for checksum offload and TSO super-packets (needs `.vnetHeader`).
    public func enableTCPOffload() throws {
        try setOffload(UInt32(CTUN_F_CSUM) | UInt32(CTUN_F_TSO4) | UInt32(CTUN_F_TSO6))
    }

    /// TSO as `enableTCPOffload` plus USO (UDP_L4 super-packets both ways; Linux >= 6.2). Throws
    /// when the kernel refuses (EINVAL before 6.2); the flags in force are then unchanged.
    public func enableTCPAndUDPOffload() throws {
        try setOffload(UInt32(CTUN_F_CSUM) | UInt32(CTUN_F_TSO4) | UInt32(CTUN_F_TSO6) | UInt32(CTUN_F_USO4) | UInt32(CTUN_F_USO6))
    }

    private func setOffload(_ flags: UInt32) throws {
        let rc = ctun_set_offload(fileDescriptor, flags)
        guard rc == 0 else { throw SystemError("TUNSETOFFLOAD \(name)", negativeErrno: rc) }
    }

    public func setUp(_ up: Bool) throws {
        let rc = ctun_set_up(name, up ? 1 : 0)
        guard rc == 0 else { throw SystemError("set link \(name) \(up ? "up" : "down")", negativeErrno: rc) }
    }

    /// Reads one packet; returns its length, 0 when nothing is pending (non-blocking), or throws.
    @inline(__always)
    public func read(into buffer: UnsafeMutableRawPointer, capacity: Int) throws -> Int {
        let n = Glibc.read(fileDescriptor, buffer, capacity)
        if n >= 0 { return n }
        let e = errno
        if e == EAGAIN || e == EINTR { return 0 }
        throw SystemError("read \(name)", errno: e)
    }

    /// Writes one packet. Errors the kernel gives for a single bad packet (EINVAL) are returned
    /// as false so the caller counts them instead of stopping.
    @inline(__always)
    @discardableResult
    public func write(_ buffer: UnsafeRawPointer, length: Int) -> Bool {
        Glibc.write(fileDescriptor, buffer, length) == length
    }

    /// Writes one packet gathered from `count` pieces (`length` bytes in all), as `write` does.
    @inline(__always)
    @discardableResult
    public func write(pieces: UnsafePointer<iovec>, count: Int, length: Int) -> Bool {
        Glibc.writev(fileDescriptor, pieces, Int32(count)) == length
    }
}
