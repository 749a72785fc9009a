/// Internet checksum (RFC 1071) helpers over raw memory, no allocation.
public enum Checksum {
    /// Ones'-complement sum of `length` bytes (big-endian 16-bit words), folded to 32 bits, plus `initial`.
    @inlinable
    public static func sum(_ p: UnsafeRawPointer, _ length: Int, initial: UInt64 = 0) -> UInt64 {
        var acc = initial
        var i = 0
        // 4 bytes at a time: big-endian 32-bit words add like pairs of 16-bit words.
        while i + 4 <= length {
            acc &+= UInt64(UInt32(bigEndian: p.loadUnaligned(fromByteOffset: i, as: UInt32.self)))
            i += 4
        }
        if i + 2 <= length {
            acc &+= UInt64(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: i, as: UInt16.self)))
            i += 2
        }
        if i < length { acc &+= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) << 8 }
        return acc
    }

    @inlinable
    public static func fold(_ s: UInt64) -> UInt16 {
        var x = s
        while x >> 16 != 0 { x = (x & 0xffff) &+ (x >> 16) }
        return UInt16(truncatingIfNeeded: x)
    }

    /// The checksum field value: complement of the folded sum.
    @inlinable
    public static func finish(_ s: UInt64) -> UInt16 { ~fold(s) }

    /// Sum of the TCP/UDP pseudo-header for IPv4 or IPv6 (addresses read from the IP header).
    @inlinable
    public static func pseudoHeader(ip: UnsafeRawPointer, isV6: Bool, proto: UInt8, l4Length: Int) -> UInt64 {
        if isV6 {
            return sum(ip + 8, 32) &+ UInt64(l4Length) &+ UInt64(proto)
        }
        return sum(ip + 12, 8) &+ UInt64(l4Length) &+ UInt64(proto)
    }
}
