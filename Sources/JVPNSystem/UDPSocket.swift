import CUDP
import Glibc

/// A UDP socket for the encrypted transport, optionally bound to one uplink device and marked so
/// that full-tunnel policy routing never sends it into the tunnel.
public final class UDPSocket: @unchecked Sendable {
    public let fileDescriptor: Int32
    public let family: Int32
    public private(set) var localPort: UInt16 = 0

    /// Binds `[::]:port` (dual-stack) or `0.0.0.0:port`, or `localAddress` when given.
    /// `reusePort`: one of several sockets on the same port (SO_REUSEPORT); the kernel gives each
    /// remote address and port to one of them, always the same one while the set stays the same.
    public init(family: Int32 = AF_INET6, localAddress: SocketAddress? = nil, port: UInt16 = 0,
                device: String? = nil, mark: UInt32? = nil, reusePort: Bool = false) throws {
        let fam = localAddress?.family ?? family
        let fd = socket(fam, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SystemError("socket", errno: errno) }
        self.fileDescriptor = fd
        self.family = fam
        do {
            if fam == AF_INET6 { try setOption(Int32(IPPROTO_IPV6), IPV6_V6ONLY, 0, "IPV6_V6ONLY") }
            if let device {
                let rc = device.withCString { setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, $0, socklen_t(strlen($0) + 1)) }
                guard rc == 0 else { throw SystemError("bind to device \(device)", errno: errno) }
            }
            if let mark { try setOption(SOL_SOCKET, SO_MARK, Int32(bitPattern: mark), "SO_MARK") }
            if reusePort { try setOption(SOL_SOCKET, SO_REUSEPORT, 1, "SO_REUSEPORT") }
            // DF on every datagram: a path smaller than a frame drops it rather than the kernel
            // fragmenting it behind our back; the client's probes find each path's size.
            let rcDF = cudp_set_pmtu_probe(fd, fam == AF_INET6 ? 1 : 0)
            guard rcDF == 0 else { throw SystemError("setsockopt IP_MTU_DISCOVER", negativeErrno: rcDF) }
            // Large buffers absorb bursts while a thread is descheduled (measured 2026-11-22: 4 MB vs
            // the 208 KB default, 2.94 vs 2.68 Gbit/s; ping under load 1.6 vs 1.3 ms).
            try? setOption(SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20, "SO_RCVBUFFORCE")
            try? setOption(SOL_SOCKET, SO_SNDBUFFORCE, 4 << 20, "SO_SNDBUFFORCE")
            var addr: SocketAddress
            if let localAddress {
                addr = localAddress
                addr.storage.sin6_port = port.bigEndian
            } else if fam == AF_INET6 {
                addr = SocketAddress(addressBytes: [UInt8](repeating: 0, count: 16), port: port)!
            } else {
                addr = SocketAddress(addressBytes: [0, 0, 0, 0], port: port)!
            }
            let rc = withUnsafePointer(to: &addr.storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, addr.length) }
            }
            guard rc == 0 else { throw SystemError("bind udp port \(port)", errno: errno) }
            var bound = sockaddr_in6()
            var len = socklen_t(MemoryLayout<sockaddr_in6>.size)
            _ = withUnsafeMutablePointer(to: &bound) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
            }
            localPort = UInt16(bigEndian: bound.sin6_port)
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fileDescriptor) }

    /// The path MTU discovery mode at the IPv4 (and, on an IPv6 socket, IPv6) level: both are
    /// IP_PMTUDISC_PROBE (3) once the socket is set up.
    public var pathMtuDiscoveryModes: (ipv4: Int32, ipv6: Int32?) {
        (cudp_get_pmtu_discover(fileDescriptor, 0), family == AF_INET6 ? cudp_get_pmtu_discover(fileDescriptor, 1) : nil)
    }

    /// UDP_GRO: the kernel may hand over several same-size datagrams of one flow in one read.
    @discardableResult
    public func enableGRO() -> Bool { cudp_enable_gro(fileDescriptor, 1) == 0 }

    private func setOption(_ level: Int32, _ name: Int32, _ value: Int32, _ label: String) throws {
        var v = value
        guard setsockopt(fileDescriptor, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) == 0 else {
            throw SystemError("setsockopt \(label)", errno: errno)
        }
    }

    /// Converts an IPv4 destination to its v4-mapped form when this socket is IPv6 dual-stack.
    public func destination(for address: SocketAddress) -> SocketAddress {
        guard family == AF_INET6, address.family == AF_INET else { return address }
        return SocketAddress(addressBytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] + address.addressBytes, port: address.port)!
    }

    /// Sends one datagram (control traffic; the data path uses `DatagramBatch`). Never blocks:
    /// callers hold the session lock, and a full send buffer (a data burst towards a path that
    /// just died) must not stall the control plane; a dropped probe is what probes are for.
    @discardableResult
    public func send(_ buffer: UnsafeRawPointer, length: Int, to address: SocketAddress) -> Bool {
        var dst = destination(for: address)
        let n = withUnsafePointer(to: &dst.storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fileDescriptor, buffer, length, Int32(MSG_DONTWAIT), $0, dst.length)
            }
        }
        return n == length
    }
}

extension SocketAddress {
    /// v4-mapped IPv6 addresses (from a dual-stack socket) shown and compared as plain IPv4.
    public var unmapped: SocketAddress {
        guard family == AF_INET6 else { return self }
        let b = addressBytes
        guard b[0..<10].allSatisfy({ $0 == 0 }), b[10] == 0xff, b[11] == 0xff else { return self }
        return SocketAddress(addressBytes: Array(b[12..<16]), port: port)!
    }
}
