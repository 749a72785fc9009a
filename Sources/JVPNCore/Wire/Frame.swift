/// First byte of every datagram.
public enum MessageType: UInt8, Sendable, CaseIterable {
    case initiation = 1
    case response = 2
    /// Gateway -> initiator under load (docs/PROTOCOL.md 3.5).
    case cookieReply = 3
    case data = 4
    case control = 5
}

public struct FrameHeader: Equatable, Sendable {
    public var type: MessageType
    public var receiverIndex: UInt32
    public var counter: UInt64

    public init(type: MessageType, receiverIndex: UInt32, counter: UInt64) {
        self.type = type
        self.receiverIndex = receiverIndex
        self.counter = counter
    }
}

/// Transport frames (types 4 and 5):
///
///     0      1..3      4..7             8..15          16..            last 16
///     type   0 0 0     receiver (LE)    counter (LE)   ciphertext     Poly1305 tag
///
/// AEAD = ChaCha20-Poly1305 IETF with key = the direction's key, nonce = 4 zero bytes || counter LE,
/// additional data = the 16 header bytes (TransportAead: OpenSSL's ChaCha20 and Poly1305 for every
/// frame, libsodium only if their self-test failed; same bytes). All functions work in place on the
/// caller's buffer, keep no state between calls and allocate nothing.
public enum Frame {
    public static let headerLength = 16
    public static let tagLength = 16
    public static let overhead = headerLength + tagLength
    /// The largest UDP payload over IPv4 (65535 - 20 - 8), so a frame fits one datagram on either family.
    public static let maxFrame = 65507
    public static let maxPlaintext = maxFrame - overhead

    @inline(__always)
    public static func classify(_ firstByte: UInt8) -> MessageType? {
        MessageType(rawValue: firstByte)
    }

    /// Classifies a datagram; nil when empty or an unknown type.
    @inline(__always)
    public static func classify(_ p: UnsafeRawBufferPointer) -> MessageType? {
        guard let first = p.first else { return nil }
        return MessageType(rawValue: first)
    }

    /// Bytes before a frame's buffer that `seal` and `open` put to use when the caller lends them
    /// (`roomBefore`): the AEAD then works on the frame where it lies instead of on a copy.
    public static let usefulRoomBefore = 48

    /// Seals the plaintext found at `buffer + 16` in place: writes the header, encrypts, appends the
    /// tag. `buffer` must have room for `plaintextLength + 32` bytes. Returns the frame length, or 0
    /// if the type is not a transport type or the length is out of range (nothing is written then).
    /// `roomBefore`: how many bytes right before `buffer` the call may borrow: writable, touched by
    /// nothing else during the call, and holding the same bytes again when it returns.
    @inline(__always)
    public static func seal(type: MessageType, receiverIndex: UInt32, counter: UInt64, key: Keypair,
                            buffer: UnsafeMutableRawPointer, plaintextLength: Int, roomBefore: Int = 0) -> Int {
        guard type == .data || type == .control,
              plaintextLength >= 0, plaintextLength <= maxPlaintext,
              counter < MessageLimits.rejectAfterMessages else { return 0 }
        writeHeader(buffer, type: type, receiverIndex: receiverIndex, counter: counter)
        var nonce = makeNonce(counter)
        let body = (buffer + headerLength).assumingMemoryBound(to: UInt8.self)
        let sealed = withUnsafeBytes(of: &nonce) { n in
            TransportAead.seal(text: body, length: plaintextLength, tag: body + plaintextLength,
                               ad: buffer.assumingMemoryBound(to: UInt8.self), adLength: headerLength,
                               nonce: n.baseAddress!.assumingMemoryBound(to: UInt8.self), key: key.sendKeyPointer,
                               roomBefore: roomBefore + headerLength)
        }
        return sealed ? plaintextLength + overhead : 0
    }

    /// Parses and sanity-checks a transport header without any crypto. Nil when the datagram is too
    /// short to hold header and tag, too long, not type 4/5, or has non-zero reserved bytes.
    @inline(__always)
    public static func peekHeader(_ p: UnsafeRawPointer, length: Int) -> FrameHeader? {
        guard length >= overhead, length <= maxFrame else { return nil }
        let t = p.load(as: UInt8.self)
        guard t == MessageType.data.rawValue || t == MessageType.control.rawValue else { return nil }
        guard p.load(fromByteOffset: 1, as: UInt8.self) == 0,
              p.load(fromByteOffset: 2, as: UInt8.self) == 0,
              p.load(fromByteOffset: 3, as: UInt8.self) == 0 else { return nil }
        let index = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
        let counter = UInt64(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
        return FrameHeader(type: t == 4 ? .data : .control, receiverIndex: index, counter: counter)
    }

    /// Authenticates and decrypts in place; plaintext ends up at `buffer + 16`. Returns its length, or
    /// nil if the frame does not authenticate, is addressed to another index or its counter is beyond
    /// the limit. The replay window is NOT touched: the caller runs `key.replay.update(counter)` only
    /// after this succeeded, so forged packets cannot burn counters (DESIGN: proof before freshness).
    /// On failure the ciphertext region is zeroed in place: a failed frame is garbage anyway.
    /// `roomBefore` as for `seal`.
    @inline(__always)
    public static func open(header: FrameHeader, key: Keypair, buffer: UnsafeMutableRawPointer,
                            length: Int, roomBefore: Int = 0) -> Int? {
        guard length >= overhead, length <= maxFrame,
              header.receiverIndex == key.localIndex,
              header.counter < MessageLimits.rejectAfterMessages else { return nil }
        let cipherLength = length - overhead
        var nonce = makeNonce(header.counter)
        let body = (buffer + headerLength).assumingMemoryBound(to: UInt8.self)
        // Authenticate against the header as it is in the buffer, so any bit the header parse
        // tolerated but the sender did not write fails the tag.
        let opened = withUnsafeBytes(of: &nonce) { n in
            TransportAead.open(text: body, length: cipherLength, tag: body + cipherLength,
                               ad: buffer.assumingMemoryBound(to: UInt8.self), adLength: headerLength,
                               nonce: n.baseAddress!.assumingMemoryBound(to: UInt8.self), key: key.receiveKeyPointer,
                               roomBefore: roomBefore + headerLength)
        }
        return opened ? cipherLength : nil
    }

    @inline(__always)
    static func writeHeader(_ p: UnsafeMutableRawPointer, type: MessageType, receiverIndex: UInt32, counter: UInt64) {
        p.storeBytes(of: type.rawValue, as: UInt8.self)
        p.storeBytes(of: 0, toByteOffset: 1, as: UInt8.self)
        p.storeBytes(of: 0, toByteOffset: 2, as: UInt8.self)
        p.storeBytes(of: 0, toByteOffset: 3, as: UInt8.self)
        p.storeBytes(of: receiverIndex.littleEndian, toByteOffset: 4, as: UInt32.self)
        p.storeBytes(of: counter.littleEndian, toByteOffset: 8, as: UInt64.self)
    }

    @inline(__always)
    static func makeNonce(_ counter: UInt64) -> (UInt32, UInt32, UInt32) {
        // 12 contiguous bytes: 4 zero bytes, then the counter little-endian (low half first).
        (0, UInt32(truncatingIfNeeded: counter).littleEndian, UInt32(truncatingIfNeeded: counter >> 32).littleEndian)
    }
}
