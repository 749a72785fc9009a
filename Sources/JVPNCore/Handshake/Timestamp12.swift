/// TAI64N-style 12-byte timestamp carried (encrypted) in the initiation: 8 bytes big-endian seconds
/// label (2^62 + 10 + unix seconds, as WireGuard writes it) then 4 bytes big-endian nanoseconds.
/// Big-endian so that byte order equals time order. The core has no clock: the caller passes
/// wall-clock time in.
public struct Timestamp12: Comparable, Hashable, Sendable, CustomStringConvertible {
    public static let length = 12
    static let labelBase: UInt64 = 0x4000_0000_0000_000a

    public let seconds: UInt64
    public let nanoseconds: UInt32

    public init(unixNanoseconds: UInt64) {
        seconds = Timestamp12.labelBase &+ unixNanoseconds / 1_000_000_000
        nanoseconds = UInt32(unixNanoseconds % 1_000_000_000)
    }

    public init(seconds: UInt64, nanoseconds: UInt32) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    init(pointer p: UnsafeRawPointer) {
        seconds = UInt64(bigEndian: p.loadUnaligned(as: UInt64.self))
        nanoseconds = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
    }

    func write(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: seconds.bigEndian, as: UInt64.self)
        p.storeBytes(of: nanoseconds.bigEndian, toByteOffset: 8, as: UInt32.self)
    }

    public var bytes: [UInt8] {
        var out = [UInt8](repeating: 0, count: 12)
        out.withUnsafeMutableBytes { write(to: $0.baseAddress!) }
        return out
    }

    public var description: String { HexCodec.encode(bytes) }

    public static func < (a: Timestamp12, b: Timestamp12) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }
}

/// Per-peer memory of the newest accepted initiation timestamp. An initiation whose timestamp is not
/// strictly newer is a replay (or a reordered old one) and must not replace a live session.
/// Feed it only initiations that `Handshake.consumeInitiation` authenticated. Not thread-safe.
public struct InitiationReplayGuard: Sendable {
    private var newest: [PublicKey: Timestamp12] = [:]

    public init() {}

    /// True (and remembered) if `timestamp` is strictly newer than anything seen from `peer`.
    public mutating func accept(peer: PublicKey, timestamp: Timestamp12) -> Bool {
        if let last = newest[peer], timestamp <= last { return false }
        newest[peer] = timestamp
        return true
    }

    public func newestTimestamp(for peer: PublicKey) -> Timestamp12? { newest[peer] }

    /// Forget a peer removed from the configuration.
    public mutating func forget(peer: PublicKey) { newest[peer] = nil }
}
