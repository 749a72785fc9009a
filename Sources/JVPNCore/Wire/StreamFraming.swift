/// Frames on a byte stream (a TCP path, docs/PROTOCOL.md section 10): every message of sections 3
/// and 4, byte for byte what a UDP datagram would carry, preceded by its length as a u16
/// little-endian. The reader checks each frame's head before buffering its body, so a stream that is
/// not jvpn (garbage, a length out of range, an unknown type, a handshake message of the wrong size)
/// is refused after at most 6 bytes. Pure, no allocation.
public enum StreamFraming {
    public static let prefixLength = 2
    /// The smallest message: a transport frame with an empty plaintext (a keepalive).
    public static let minFrame = Frame.overhead
    /// The largest message: the largest datagram (docs/PROTOCOL.md 2.1).
    public static let maxFrame = Frame.maxFrame

    /// Why a stream is refused; the connection is closed, never the session.
    public enum Violation: Error, Equatable, Sendable, CustomStringConvertible {
        /// A length below the smallest message.
        case tooShort(Int)
        /// A length above the protocol's largest message, or above what the reader accepts now.
        case tooLong(Int)
        /// A first byte that is no message type.
        case unknownType(UInt8)
        /// Bytes 1..3 of the message are not zero.
        case reservedBytes
        /// A handshake message (types 1-3) whose length is not that type's fixed size.
        case wrongHandshakeLength(type: UInt8, length: Int)

        public var description: String {
            switch self {
            case .tooShort(let n): return "frame length \(n) below \(StreamFraming.minFrame)"
            case .tooLong(let n): return "frame length \(n) too long"
            case .unknownType(let t): return "unknown message type \(t)"
            case .reservedBytes: return "reserved bytes not zero"
            case .wrongHandshakeLength(let t, let n): return "handshake message type \(t) of \(n) bytes"
            }
        }
    }

    /// What the bytes at the reader's position hold.
    public enum Next: Equatable, Sendable {
        /// A whole message: `length` bytes at `start` (after its prefix); the next one starts at
        /// `start + length`.
        case frame(start: Int, length: Int)
        /// Not all there yet: the frame at the position needs `total` bytes (prefix included) from
        /// the position, or at least 6 if its head is not there yet.
        case needMore(total: Int)
        case violation(Violation)
    }

    /// The fixed size of a handshake message type, nil for transport frames (any size in range).
    static func fixedLength(ofType t: UInt8) -> Int? {
        switch MessageType(rawValue: t) {
        case .initiation: return Handshake.initiationLength
        case .response: return Handshake.responseLength
        case .cookieReply: return Cookie.replyLength
        case .data, .control, nil: return nil
        }
    }

    /// Examines `p[offset..<count]`. `maxFrame` is the largest message the reader takes now (at
    /// most the protocol's); longer ones are a violation.
    public static func next(_ p: UnsafeRawPointer, offset: Int, count: Int, maxFrame: Int = StreamFraming.maxFrame) -> Next {
        let available = count - offset
        guard available >= prefixLength else { return .needMore(total: prefixLength + 4) }
        let length = Int(p.load(fromByteOffset: offset, as: UInt8.self)) | Int(p.load(fromByteOffset: offset + 1, as: UInt8.self)) << 8
        if length < minFrame { return .violation(.tooShort(length)) }
        if length > min(maxFrame, StreamFraming.maxFrame) { return .violation(.tooLong(length)) }
        if available >= prefixLength + 1 {
            let type = p.load(fromByteOffset: offset + 2, as: UInt8.self)
            guard MessageType(rawValue: type) != nil else { return .violation(.unknownType(type)) }
            if let fixed = fixedLength(ofType: type), fixed != length {
                return .violation(.wrongHandshakeLength(type: type, length: length))
            }
        }
        if available >= prefixLength + 4 {
            for i in 1...3 where p.load(fromByteOffset: offset + 2 + i, as: UInt8.self) != 0 { return .violation(.reservedBytes) }
        }
        guard available >= prefixLength + length else { return .needMore(total: prefixLength + length) }
        return .frame(start: offset + prefixLength, length: length)
    }

    /// Writes the prefix of a `length`-byte message (32...65507) at `p`.
    @inline(__always)
    public static func writePrefix(_ length: Int, to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: UInt8(truncatingIfNeeded: length), as: UInt8.self)
        (p + 1).storeBytes(of: UInt8(truncatingIfNeeded: length >> 8), as: UInt8.self)
    }

    /// The stream bytes of `messages`, in order (tests, tools).
    public static func encode(_ messages: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = []
        for m in messages {
            out.append(UInt8(truncatingIfNeeded: m.count))
            out.append(UInt8(truncatingIfNeeded: m.count >> 8))
            out += m
        }
        return out
    }
}
