import CSodium

/// 16 random bytes that a REATTACH_ACK or reject echoes, binding the answer to one request.
public struct ControlNonce: Hashable, Sendable, CustomStringConvertible {
    public static let length = 16
    private var a: UInt64
    private var b: UInt64

    public static let zero = ControlNonce(a: 0, b: 0)

    private init(a: UInt64, b: UInt64) {
        self.a = a
        self.b = b
    }

    public init(bytes: some Collection<UInt8>) throws(KeyError) {
        guard bytes.count == 16 else { throw .wrongLength(actual: bytes.count) }
        var s: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &s) { p in
            var i = 0
            for x in bytes { p[i] = x; i += 1 }
        }
        a = s.0
        b = s.1
    }

    init(pointer p: UnsafeRawPointer) {
        a = p.loadUnaligned(as: UInt64.self)
        b = p.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
    }

    /// A nonce made unique by construction instead of by chance: a per-sender random `prefix` and a
    /// `counter` that never repeats under it. It need not be secret: the answer that echoes it is
    /// authenticated by the session keys.
    public init(prefix: UInt64, counter: UInt64) {
        self.init(a: prefix, b: counter)
    }

    public static func random() -> ControlNonce {
        Sodium.ensureInitialized()
        var s: (UInt64, UInt64) = (0, 0)
        withUnsafeMutableBytes(of: &s) { randombytes_buf($0.baseAddress!, 16) }
        return ControlNonce(a: s.0, b: s.1)
    }

    func write(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: a, as: UInt64.self)
        p.storeBytes(of: b, toByteOffset: 8, as: UInt64.self)
    }

    public var bytes: [UInt8] { withUnsafeBytes(of: (a, b)) { Array($0) } }
    public var description: String { HexCodec.encode(bytes) }
}

/// An address:port the server observed for the client (NAT rebinding hint). The address bytes and the
/// port are in network order on the wire, as in the socket address they were copied from; 4 address
/// bytes for IPv4 or 16 for IPv6.
public struct NATHint: Equatable, Sendable {
    public let address: [UInt8]
    public let port: UInt16

    public init?(address: [UInt8], port: UInt16) {
        guard address.count == 4 || address.count == 16 else { return nil }
        self.address = address
        self.port = port
    }

    public var isIPv6: Bool { address.count == 16 }
}

public enum ControlDecodeError: Error, Equatable, Sendable {
    case empty
    case unknownKind(UInt8)
    /// Length does not fit the kind (`expected` is the exact or minimum size).
    case wrongLength(kind: UInt8, expected: Int, actual: Int)
    case unknownReason(UInt8)
    /// A known reason code that this message kind may not carry (a REATTACH names why the client moves).
    case reasonNotAllowed(kind: UInt8, reason: UInt8)
    case badAddressFamily(UInt8)
    /// A path MTU report smaller than any IPv4 path carries (576 - 28 bytes of datagram).
    case datagramTooSmall(UInt16)
}

/// Plaintext of a type-5 (control) frame. First byte = kind, integers little-endian, fixed sizes.
/// See docs/PROTOCOL.md for the layouts. Probes and probe replies may carry trailing zero padding
/// (ignored) so that they can be sized for path-MTU checks in both directions (a reply is padded to
/// the size of its probe); every other kind has an exact size.
public enum ControlMessage: Equatable, Sendable {
    case probe(seq: UInt32, sentAtNs: UInt64, pathID: UInt32)
    case probeReply(seq: UInt32, sentAtNs: UInt64, pathID: UInt32)
    case reattachRequest(sessionID: SessionID, bindingVersion: UInt64, pathID: UInt32, nonce: ControlNonce,
                         reason: ReasonCode)
    case reattachAck(sessionID: SessionID, bindingVersion: UInt64, nonce: ControlNonce)
    /// `bindingVersion` is the gateway's current one: the client resyncs to it instead of retrying a
    /// stale version forever (the frame is sealed with the session keys, so this is authenticated).
    case reject(reason: ReasonCode, nonce: ControlNonce, bindingVersion: UInt64)
    case close(reason: ReasonCode)
    case natHint(NATHint)
    /// The gateway asks the client to prove it receives on the path this arrives on (path validation).
    case pathChallenge(data: UInt64)
    /// The client's answer, sent back on the path the challenge arrived on, echoing `data`.
    case pathResponse(data: UInt64)
    /// The client's word on the path this arrives on: the largest datagram (UDP payload) its
    /// padded probes carried both ways. The gateway fits what it sends to that address to it.
    case pathMtu(pathID: UInt32, maxDatagram: UInt16)
    /// The gateway's receipt of a `pathMtu`, echoing it (the client repeats its report until then).
    case pathMtuAck(pathID: UInt32, maxDatagram: UInt16)

    public enum Kind: UInt8, Sendable, CaseIterable {
        case probe = 1
        case probeReply = 2
        case reattachRequest = 3
        case reattachAck = 4
        case reject = 5
        case close = 6
        case natHint = 7
        case pathChallenge = 8
        case pathResponse = 9
        case pathMtu = 10
        case pathMtuAck = 11
    }

    /// Largest encoding (IPv6 NAT hint is 20; REATTACH_REQUEST is 38).
    public static let maxEncodedLength = 38

    public var kind: Kind {
        switch self {
        case .probe: return .probe
        case .probeReply: return .probeReply
        case .reattachRequest: return .reattachRequest
        case .reattachAck: return .reattachAck
        case .reject: return .reject
        case .close: return .close
        case .natHint: return .natHint
        case .pathChallenge: return .pathChallenge
        case .pathResponse: return .pathResponse
        case .pathMtu: return .pathMtu
        case .pathMtuAck: return .pathMtuAck
        }
    }

    /// The smallest `maxDatagram` a path MTU report may carry: IPv4's minimum MTU (576) less the
    /// IPv4 and UDP headers.
    public static let minReportedDatagram: UInt16 = 548

    static func fixedLength(_ kind: Kind) -> Int {
        switch kind {
        case .probe, .probeReply: return 17
        case .reattachRequest: return 38
        case .reattachAck: return 33
        case .reject: return 26
        case .close: return 2
        case .natHint: return 8 // IPv4; IPv6 is 20
        case .pathChallenge, .pathResponse: return 9
        case .pathMtu, .pathMtuAck: return 7
        }
    }

    public var encodedLength: Int {
        if case .natHint(let h) = self { return 4 + h.address.count }
        return ControlMessage.fixedLength(kind)
    }

    /// Writes the message; returns its length, or 0 if `capacity` is too small. A probe or probe reply
    /// is zero-padded to `paddedTo` bytes when that is larger than its own size; other kinds ignore it.
    public func encode(into p: UnsafeMutableRawPointer, capacity: Int, paddedTo: Int = 0) -> Int {
        var n = encodedLength
        if kind == .probe || kind == .probeReply, paddedTo > n { n = paddedTo }
        guard capacity >= n else { return 0 }
        if n > encodedLength { (p + encodedLength).initializeMemory(as: UInt8.self, repeating: 0, count: n - encodedLength) }
        p.storeBytes(of: kind.rawValue, as: UInt8.self)
        switch self {
        case .probe(let seq, let sentAt, let path), .probeReply(let seq, let sentAt, let path):
            p.storeBytes(of: seq.littleEndian, toByteOffset: 1, as: UInt32.self)
            p.storeBytes(of: sentAt.littleEndian, toByteOffset: 5, as: UInt64.self)
            p.storeBytes(of: path.littleEndian, toByteOffset: 13, as: UInt32.self)
        case .reattachRequest(let sid, let version, let path, let nonce, let reason):
            sid.write(to: p + 1)
            p.storeBytes(of: version.littleEndian, toByteOffset: 9, as: UInt64.self)
            p.storeBytes(of: path.littleEndian, toByteOffset: 17, as: UInt32.self)
            nonce.write(to: p + 21)
            p.storeBytes(of: reason.wireCode, toByteOffset: 37, as: UInt8.self)
        case .reattachAck(let sid, let version, let nonce):
            sid.write(to: p + 1)
            p.storeBytes(of: version.littleEndian, toByteOffset: 9, as: UInt64.self)
            nonce.write(to: p + 17)
        case .reject(let reason, let nonce, let version):
            p.storeBytes(of: reason.wireCode, toByteOffset: 1, as: UInt8.self)
            nonce.write(to: p + 2)
            p.storeBytes(of: version.littleEndian, toByteOffset: 18, as: UInt64.self)
        case .close(let reason):
            p.storeBytes(of: reason.wireCode, toByteOffset: 1, as: UInt8.self)
        case .natHint(let h):
            p.storeBytes(of: UInt8(h.isIPv6 ? 6 : 4), toByteOffset: 1, as: UInt8.self)
            h.address.withUnsafeBytes { (p + 2).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            p.storeBytes(of: h.port.bigEndian, toByteOffset: 2 + h.address.count, as: UInt16.self)
        case .pathChallenge(let data), .pathResponse(let data):
            p.storeBytes(of: data.littleEndian, toByteOffset: 1, as: UInt64.self)
        case .pathMtu(let path, let size), .pathMtuAck(let path, let size):
            p.storeBytes(of: path.littleEndian, toByteOffset: 1, as: UInt32.self)
            p.storeBytes(of: size.littleEndian, toByteOffset: 5, as: UInt16.self)
        }
        return n
    }

    public static func decode(_ buf: UnsafeRawBufferPointer) throws(ControlDecodeError) -> ControlMessage {
        guard let p = buf.baseAddress, buf.count > 0 else { throw .empty }
        let raw = p.load(as: UInt8.self)
        guard let kind = Kind(rawValue: raw) else { throw .unknownKind(raw) }
        let count = buf.count
        func need(_ n: Int, exact: Bool = true) throws(ControlDecodeError) {
            if count < n || (exact && count != n) {
                throw .wrongLength(kind: raw, expected: n, actual: count)
            }
        }
        func reason(at offset: Int) throws(ControlDecodeError) -> ReasonCode {
            let code = p.load(fromByteOffset: offset, as: UInt8.self)
            guard let r = ReasonCode(wireCode: code) else { throw .unknownReason(code) }
            return r
        }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: p.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }

        switch kind {
        case .probe, .probeReply:
            try need(17, exact: false)
            let (seq, sentAt, path) = (u32(1), u64(5), u32(13))
            return kind == .probe ? .probe(seq: seq, sentAtNs: sentAt, pathID: path)
                                  : .probeReply(seq: seq, sentAtNs: sentAt, pathID: path)
        case .reattachRequest:
            try need(38)
            let why = try reason(at: 37)
            guard why.isReattachReason else { throw .reasonNotAllowed(kind: raw, reason: why.wireCode) }
            return .reattachRequest(sessionID: SessionID(pointer: p + 1), bindingVersion: u64(9), pathID: u32(17),
                                    nonce: ControlNonce(pointer: p + 21), reason: why)
        case .reattachAck:
            try need(33)
            return .reattachAck(sessionID: SessionID(pointer: p + 1), bindingVersion: u64(9),
                                nonce: ControlNonce(pointer: p + 17))
        case .reject:
            try need(26)
            return .reject(reason: try reason(at: 1), nonce: ControlNonce(pointer: p + 2), bindingVersion: u64(18))
        case .close:
            try need(2)
            return .close(reason: try reason(at: 1))
        case .natHint:
            try need(2, exact: false)
            let family = p.load(fromByteOffset: 1, as: UInt8.self)
            let addrLen: Int
            switch family {
            case 4: addrLen = 4
            case 6: addrLen = 16
            default: throw .badAddressFamily(family)
            }
            try need(4 + addrLen)
            let addr = Array(UnsafeRawBufferPointer(start: p + 2, count: addrLen))
            let port = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 2 + addrLen, as: UInt16.self))
            guard let hint = NATHint(address: addr, port: port) else { throw .badAddressFamily(family) }
            return .natHint(hint)
        case .pathChallenge, .pathResponse:
            try need(9)
            return kind == .pathChallenge ? .pathChallenge(data: u64(1)) : .pathResponse(data: u64(1))
        case .pathMtu, .pathMtuAck:
            try need(7)
            let size = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 5, as: UInt16.self))
            guard size >= minReportedDatagram else { throw .datagramTooSmall(size) }
            return kind == .pathMtu ? .pathMtu(pathID: u32(1), maxDatagram: size) : .pathMtuAck(pathID: u32(1), maxDatagram: size)
        }
    }
}
