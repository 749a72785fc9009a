import Glibc

/// An IPv4 or IPv6 socket address stored inline (no allocation), comparable byte-wise.
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    /// sockaddr_in6 is large enough for both families.
    public var storage = sockaddr_in6()
    public var length: socklen_t = 0

    public init() {}

    /// `bytes` are the 4 or 16 address bytes in network order.
    public init?(addressBytes bytes: [UInt8], port: UInt16) {
        if bytes.count == 4 {
            var sin = sockaddr_in()
            sin.sin_family = sa_family_t(AF_INET)
            sin.sin_port = port.bigEndian
            withUnsafeMutableBytes(of: &sin.sin_addr) { $0.copyBytes(from: bytes) }
            withUnsafeMutableBytes(of: &storage) { dst in
                withUnsafeBytes(of: sin) { dst.copyMemory(from: $0) }
            }
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
        } else if bytes.count == 16 {
            storage.sin6_family = sa_family_t(AF_INET6)
            storage.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &storage.sin6_addr) { $0.copyBytes(from: bytes) }
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
        } else {
            return nil
        }
    }

    public var family: Int32 { Int32(storage.sin6_family) }

    public var port: UInt16 { UInt16(bigEndian: storage.sin6_port) } // same offset in sockaddr_in

    public var addressBytes: [UInt8] {
        withUnsafeBytes(of: storage) { raw in
            if family == AF_INET {
                return Array(raw[4..<8])
            } else if family == AF_INET6 {
                return Array(raw[8..<24])
            }
            return []
        }
    }

    public var addressString: String {
        var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        var s = storage
        if family == AF_INET {
            _ = withUnsafeBytes(of: &s) { raw in inet_ntop(AF_INET, raw.baseAddress! + 4, &buf, socklen_t(buf.count)) }
        } else if family == AF_INET6 {
            _ = withUnsafeBytes(of: &s) { raw in inet_ntop(AF_INET6, raw.baseAddress! + 8, &buf, socklen_t(buf.count)) }
        } else {
            return "?"
        }
        return String(cString: buf)
    }

    public var description: String {
        family == AF_INET6 ? "[\(addressString)]:\(port)" : "\(addressString):\(port)"
    }

    /// Copies a raw sockaddr (from recvmmsg) without allocating.
    @inline(__always)
    public mutating func assign(from raw: UnsafeRawPointer, length len: socklen_t) {
        let n = min(Int(len), MemoryLayout<sockaddr_in6>.size)
        withUnsafeMutableBytes(of: &storage) { dst in
            dst.baseAddress!.copyMemory(from: raw, byteCount: n)
            if n < dst.count { (dst.baseAddress! + n).initializeMemory(as: UInt8.self, repeating: 0, count: dst.count - n) }
        }
        length = len
    }

    public static func == (a: SocketAddress, b: SocketAddress) -> Bool {
        guard a.length == b.length, a.family == b.family else { return false }
        var x = a, y = b
        return withUnsafeBytes(of: &x.storage) { ra in
            withUnsafeBytes(of: &y.storage) { rb in memcmp(ra.baseAddress!, rb.baseAddress!, Int(a.length)) == 0 }
        }
    }

    public func hash(into hasher: inout Hasher) {
        var s = storage
        withUnsafeBytes(of: &s) { hasher.combine(bytes: UnsafeRawBufferPointer(rebasing: $0[0..<Int(length)])) }
    }
}
