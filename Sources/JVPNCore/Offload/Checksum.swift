import CChecksum

/// Internet checksum (RFC 1071) helpers over raw memory, no allocation.
public enum Checksum {
    /// Ones'-complement sum of `length` bytes as big-endian 16-bit words, plus `initial`: a value
    /// whose `fold` is that sum's (it is the sum itself only up to the end-around carries). Sums
    /// of regions that meet at an even offset add.
    @inlinable
    public static func sum(_ p: UnsafeRawPointer, _ length: Int, initial: UInt64 = 0) -> UInt64 {
        // CChecksum sums native-order words (AVX2 where the CPU has it); the ones'-complement sum
        // does not depend on the byte order but for one swap of the folded result (RFC 1071, 2.B).
        bigEndianSum(cchecksum_sum(p, max(length, 0))) &+ initial
    }

    /// Copies `count` bytes from `source` to `destination` (not overlapping) and returns their
    /// `sum`, reading them once.
    @inlinable
    public static func copyAndSum(to destination: UnsafeMutableRawPointer, from source: UnsafeRawPointer, count: Int,
                                  initial: UInt64 = 0) -> UInt64 {
        bigEndianSum(cchecksum_copy_sum(destination, source, max(count, 0))) &+ initial
    }

    @inlinable
    static func bigEndianSum(_ nativeSum: UInt64) -> UInt64 {
        UInt64(UInt16(bigEndian: fold(nativeSum)))
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
