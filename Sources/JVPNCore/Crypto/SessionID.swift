import CSodium

/// The 8-byte session identifier chosen by the client at BIRTH; stable across rekeys and reattaches.
public struct SessionID: Hashable, Sendable, CustomStringConvertible {
    /// The 8 bytes in wire order, viewed as a native integer only for storage/hashing.
    private var raw: UInt64

    public init(bytes: some Collection<UInt8>) throws(KeyError) {
        guard bytes.count == 8 else { throw .wrongLength(actual: bytes.count) }
        var r: UInt64 = 0
        withUnsafeMutableBytes(of: &r) { p in
            var i = 0
            for b in bytes { p[i] = b; i += 1 }
        }
        raw = r
    }

    init(pointer: UnsafeRawPointer) {
        var r: UInt64 = 0
        withUnsafeMutableBytes(of: &r) { $0.baseAddress!.copyMemory(from: pointer, byteCount: 8) }
        raw = r
    }

    /// Parses 16 hex digits (as printed by `hex`).
    public init?(hex: String) {
        let u = Array(hex.utf8)
        guard u.count == 16 else { return nil }
        var out = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 {
            guard let hi = HexCodec.nibble(u[2 * i]), let lo = HexCodec.nibble(u[2 * i + 1]) else { return nil }
            out[i] = hi << 4 | lo
        }
        guard let s = try? SessionID(bytes: out) else { return nil }
        self = s
    }

    public static func random() -> SessionID {
        Sodium.ensureInitialized()
        var r: UInt64 = 0
        withUnsafeMutableBytes(of: &r) { randombytes_buf($0.baseAddress!, 8) }
        return SessionID(rawValue: r)
    }

    private init(rawValue: UInt64) { raw = rawValue }

    public var bytes: [UInt8] { withUnsafeBytes(of: raw) { Array($0) } }
    public var hex: String { HexCodec.encode(bytes) }
    public var description: String { hex }

    func write(to p: UnsafeMutableRawPointer) {
        withUnsafeBytes(of: raw) { p.copyMemory(from: $0.baseAddress!, byteCount: 8) }
    }
}

/// Hex helpers shared by IDs, logs and tests.
public enum HexCodec {
    @inline(__always)
    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x61...0x66: return c - 0x61 + 10
        case 0x41...0x46: return c - 0x41 + 10
        default: return nil
        }
    }

    /// Lower-case hex of a byte sequence.
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits: [UInt8] = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parses hex (even length, any case); nil on bad input.
    public static func decode(_ hex: String) -> [UInt8]? {
        let u = Array(hex.utf8)
        guard u.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(u.count / 2)
        var i = 0
        while i < u.count {
            guard let hi = nibble(u[i]), let lo = nibble(u[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}
