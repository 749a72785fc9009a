/// Internet checksum (RFC 1071) helpers over raw memory, no allocation.
public enum Checksum {
    /// Ones'-complement sum of `length` bytes as big-endian 16-bit words, plus `initial`: a value
    /// whose `fold` is that sum's (it is the sum itself only up to the end-around carries).
    @inlinable
    public static func sum(_ p: UnsafeRawPointer, _ length: Int, initial: UInt64 = 0) -> UInt64 {
        // Native-order words, swapped once at the end: the ones'-complement sum does not depend on
        // the byte order but for one swap of the folded result (RFC 1071, 2.B), and 2^64 and 2^32
        // are 1 modulo 2^16 - 1, so wider words add like the 16-bit ones. Each 64-bit word's two
        // 32-bit halves go to two plain 64-bit sums: no end-around carry to wait for from one word
        // to the next (a serial add-with-carry per word cost three times as much), so the compiler
        // vectorizes the loop. Nothing here overflows below 2^34 bytes (packets are at most 64 KiB).
        var lowHalves: UInt64 = 0, highHalves: UInt64 = 0
        let words = max(length, 0) / 8
        for k in 0..<words {
            let w = p.loadUnaligned(fromByteOffset: k &* 8, as: UInt64.self)
            lowHalves &+= w & 0xffff_ffff
            highHalves &+= w >> 32
        }
        var acc = lowHalves &+ highHalves
        var i = words &* 8
        // The tail: at most 7 bytes, starting at an even offset.
        var tail: UInt64 = 0
        if i + 4 <= length {
            tail &+= UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt32.self))
            i += 4
        }
        if i + 2 <= length {
            tail &+= UInt64(p.loadUnaligned(fromByteOffset: i, as: UInt16.self))
            i += 2
        }
        if i < length {
            // The odd last byte is the first byte of a zero-padded 16-bit word.
            let b = UInt64(p.load(fromByteOffset: i, as: UInt8.self))
            tail &+= UInt16(1).littleEndian == 1 ? b : b << 8
        }
        acc &+= tail
        return UInt64(UInt16(bigEndian: fold(acc))) &+ initial
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
