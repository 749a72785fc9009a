/// Address family of an `IPAddress` / `IPPrefix`.
public enum IPFamily: Sendable, Hashable {
    case v4
    case v6

    /// Number of bits in an address of this family.
    public var bitWidth: Int {
        switch self {
        case .v4: return 32
        case .v6: return 128
        }
    }
}

/// An IPv4 or IPv6 address held as integers in host order, so that hashing, masking and
/// comparison never allocate (the address is used as a routing key on the packet path).
public enum IPAddress: Hashable, Sendable {
    /// IPv4 address, host order (`1.2.3.4` == `0x01020304`).
    case v4(UInt32)
    /// IPv6 address, host order halves: `hi` holds bytes 0..7, `lo` bytes 8..15.
    case v6(UInt64, UInt64)

    public var family: IPFamily {
        switch self {
        case .v4: return .v4
        case .v6: return .v6
        }
    }

    public static let v4Any = IPAddress.v4(0)
    public static let v6Any = IPAddress.v6(0, 0)

    /// Reads 4 (v4) or 16 (v6) bytes in network order from `pointer`. No alignment needed.
    @inlinable
    public init(v4NetworkBytes pointer: UnsafeRawPointer) {
        self = .v4(UInt32(bigEndian: pointer.loadUnaligned(as: UInt32.self)))
    }

    @inlinable
    public init(v6NetworkBytes pointer: UnsafeRawPointer) {
        let hi = UInt64(bigEndian: pointer.loadUnaligned(as: UInt64.self))
        let lo = UInt64(bigEndian: pointer.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        self = .v6(hi, lo)
    }

    /// Builds an address from 4 or 16 network-order bytes; nil for any other count.
    public init?<C: Collection>(networkBytes bytes: C) where C.Element == UInt8 {
        var buf = (UInt64(0), UInt64(0))
        let n = bytes.count
        guard n == 4 || n == 16 else { return nil }
        let parsed: IPAddress = withUnsafeMutableBytes(of: &buf) { raw in
            var i = 0
            for b in bytes { raw[i] = b; i += 1 }
            let base = UnsafeRawPointer(raw.baseAddress!)
            return n == 4 ? IPAddress(v4NetworkBytes: base) : IPAddress(v6NetworkBytes: base)
        }
        self = parsed
    }

    /// Network-order bytes (4 or 16). Allocates; for the packet path use `withBytes`.
    public var bytes: [UInt8] {
        withBytes { Array($0) }
    }

    /// Calls `body` with the network-order bytes (4 or 16) in a stack buffer.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch self {
        case .v4(let a):
            var be = a.bigEndian
            return try withUnsafeBytes(of: &be) { try body($0) }
        case .v6(let hi, let lo):
            var be = (hi.bigEndian, lo.bigEndian)
            return try withUnsafeBytes(of: &be) { try body($0) }
        }
    }

    /// True for `::ffff:a.b.c.d`.
    public var isV4Mapped: Bool {
        if case .v6(let hi, let lo) = self { return hi == 0 && lo >> 32 == 0xffff }
        return false
    }

    /// The IPv4 address inside a v4-mapped IPv6 address, else self.
    public var unmapped: IPAddress {
        if case .v6(_, let lo) = self, isV4Mapped { return .v4(UInt32(truncatingIfNeeded: lo)) }
        return self
    }

    /// The address with all but the first `length` bits cleared.
    public func masked(to length: Int) -> IPAddress {
        switch self {
        case .v4(let a):
            return .v4(a & IPAddress.v4Mask(length))
        case .v6(let hi, let lo):
            let m = IPAddress.v6Mask(length)
            return .v6(hi & m.hi, lo & m.lo)
        }
    }

    @inlinable
    static func v4Mask(_ length: Int) -> UInt32 {
        if length <= 0 { return 0 }
        if length >= 32 { return .max }
        return UInt32.max << UInt32(32 - length)
    }

    @inlinable
    static func v6Mask(_ length: Int) -> (hi: UInt64, lo: UInt64) {
        if length <= 0 { return (0, 0) }
        if length >= 128 { return (.max, .max) }
        if length <= 64 {
            return (length == 64 ? .max : UInt64.max << UInt64(64 - length), 0)
        }
        return (.max, UInt64.max << UInt64(128 - length))
    }
}

// MARK: - Parsing

extension IPAddress {
    /// Parses dotted-quad IPv4 or textual IPv6 (with `::` and a dotted IPv4 tail).
    /// Rejects leading zeros in IPv4 octets (ambiguous octal), zone ids and surrounding spaces.
    public init?(_ string: String) {
        self.init(utf8: Array(string.utf8)[...])
    }

    public init?(_ string: Substring) {
        self.init(utf8: Array(string.utf8)[...])
    }

    init?(utf8 s: ArraySlice<UInt8>) {
        if s.contains(UInt8(ascii: ":")) {
            guard let (hi, lo) = IPAddress.parseV6(s) else { return nil }
            self = .v6(hi, lo)
        } else {
            guard let a = IPAddress.parseV4(s) else { return nil }
            self = .v4(a)
        }
    }

    static func parseV4(_ s: ArraySlice<UInt8>) -> UInt32? {
        var result: UInt32 = 0
        var octets = 0
        var value: UInt32 = 0
        var digits = 0
        var leadingZero = false
        for c in s {
            if c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") {
                if digits == 1 && leadingZero { return nil }
                if digits == 0 { leadingZero = (c == UInt8(ascii: "0")) }
                value = value * 10 + UInt32(c - UInt8(ascii: "0"))
                digits += 1
                if digits > 3 || value > 255 { return nil }
            } else if c == UInt8(ascii: ".") {
                guard digits > 0, octets < 3 else { return nil }
                result = result << 8 | value
                octets += 1
                value = 0
                digits = 0
            } else {
                return nil
            }
        }
        guard digits > 0, octets == 3 else { return nil }
        return result << 8 | value
    }

    static func parseV6(_ s: ArraySlice<UInt8>) -> (UInt64, UInt64)? {
        var groups = [UInt16]()
        groups.reserveCapacity(8)
        var gapIndex: Int? = nil  // index into `groups` where `::` sits
        var i = s.startIndex
        let end = s.endIndex
        if i == end { return nil }
        // A leading "::" is the only place a group may start with ':'.
        if s[i] == UInt8(ascii: ":") {
            guard s.index(after: i) < end, s[s.index(after: i)] == UInt8(ascii: ":") else { return nil }
            gapIndex = 0
            i = s.index(i, offsetBy: 2)
            if i == end { return (0, 0) }
        }
        while i < end {
            // Read one group: hex digits, or a dotted IPv4 tail.
            var j = i
            var sawDot = false
            while j < end && s[j] != UInt8(ascii: ":") {
                if s[j] == UInt8(ascii: ".") { sawDot = true }
                j += 1
            }
            let token = s[i..<j]
            if sawDot {
                // IPv4 tail must be last and takes two groups.
                guard j == end, groups.count <= 6, let v4 = parseV4(token) else { return nil }
                groups.append(UInt16(v4 >> 16))
                groups.append(UInt16(v4 & 0xffff))
                i = j
                break
            }
            guard !token.isEmpty, token.count <= 4 else { return nil }
            var v: UInt16 = 0
            for c in token {
                guard let h = hexValue(c) else { return nil }
                v = v << 4 | UInt16(h)
            }
            groups.append(v)
            if groups.count > 8 { return nil }
            if j == end { i = j; break }
            // j points at ':'
            let next = j + 1
            guard next < end else { return nil }  // trailing single ':'
            if s[next] == UInt8(ascii: ":") {
                guard gapIndex == nil else { return nil }  // second "::"
                gapIndex = groups.count
                i = next + 1
                if i == end { break }
                guard s[i] != UInt8(ascii: ":") else { return nil }  // ":::"
            } else {
                i = next
            }
        }
        var full = [UInt16](repeating: 0, count: 8)
        if let gap = gapIndex {
            // "::" must stand for at least one zero group.
            guard groups.count <= 7 else { return nil }
            for k in 0..<gap { full[k] = groups[k] }
            let tail = groups.count - gap
            for k in 0..<tail { full[8 - tail + k] = groups[gap + k] }
        } else {
            guard groups.count == 8 else { return nil }
            full = groups
        }
        var hi: UInt64 = 0
        var lo: UInt64 = 0
        for k in 0..<4 { hi = hi << 16 | UInt64(full[k]) }
        for k in 4..<8 { lo = lo << 16 | UInt64(full[k]) }
        return (hi, lo)
    }

    @inline(__always)
    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

// MARK: - Formatting

extension IPAddress: CustomStringConvertible {
    /// Dotted quad for IPv4; RFC 5952 canonical text for IPv6 (lowercase, no leading zeros,
    /// longest run of two or more zero groups compressed, first run on a tie, v4-mapped with a
    /// dotted tail).
    public var description: String {
        switch self {
        case .v4(let a):
            return IPAddress.formatV4(a)
        case .v6(let hi, let lo):
            if isV4Mapped {
                return "::ffff:" + IPAddress.formatV4(UInt32(truncatingIfNeeded: lo))
            }
            var g = [UInt16](repeating: 0, count: 8)
            for k in 0..<4 {
                g[k] = UInt16(truncatingIfNeeded: hi >> UInt64(48 - 16 * k))
                g[4 + k] = UInt16(truncatingIfNeeded: lo >> UInt64(48 - 16 * k))
            }
            var bestStart = -1
            var bestLen = 0
            var k = 0
            while k < 8 {
                if g[k] == 0 {
                    var e = k
                    while e < 8 && g[e] == 0 { e += 1 }
                    if e - k > bestLen { bestStart = k; bestLen = e - k }
                    k = e
                } else {
                    k += 1
                }
            }
            if bestLen < 2 { bestStart = -1 }
            var out = ""
            k = 0
            while k < 8 {
                if k == bestStart {
                    out += k == 0 ? "::" : ":"
                    k += bestLen
                    continue
                }
                out += String(g[k], radix: 16)
                if k < 7 { out += ":" }
                k += 1
            }
            return out
        }
    }

    static func formatV4(_ a: UInt32) -> String {
        "\(a >> 24).\((a >> 16) & 0xff).\((a >> 8) & 0xff).\(a & 0xff)"
    }
}

extension IPAddress: Comparable {
    /// IPv4 sorts before IPv6; within a family, numerically.
    public static func < (l: IPAddress, r: IPAddress) -> Bool {
        switch (l, r) {
        case (.v4(let a), .v4(let b)): return a < b
        case (.v4, .v6): return true
        case (.v6, .v4): return false
        case (.v6(let ah, let al), .v6(let bh, let bl)): return ah < bh || (ah == bh && al < bl)
        }
    }
}
