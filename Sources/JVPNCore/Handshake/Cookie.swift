import CSodium

/// A 16-byte MAC value held inline: a mac1, a mac2 or a cookie (a cookie is itself a MAC).
public struct MAC16: Equatable, Sendable {
    var a: UInt64
    var b: UInt64

    public static let zero = MAC16(a: 0, b: 0)

    init(a: UInt64, b: UInt64) {
        self.a = a
        self.b = b
    }

    init(pointer p: UnsafeRawPointer) {
        a = p.loadUnaligned(as: UInt64.self)
        b = p.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
    }

    public init?(bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        self = bytes.withUnsafeBytes { MAC16(pointer: $0.baseAddress!) }
    }

    func write(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: a, as: UInt64.self)
        p.storeBytes(of: b, toByteOffset: 8, as: UInt64.self)
    }

    func withBytes<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R {
        withUnsafeBytes(of: (a, b), body)
    }

    public var bytes: [UInt8] { withBytes { Array($0) } }
}

/// Where a handshake message came from, as the cookie binds it: address and UDP port.
public struct HandshakeSource: Equatable, Sendable {
    public let address: IPAddress
    public let port: UInt16

    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }
}

/// The 24-byte XChaCha20-Poly1305 nonce of a cookie reply.
public struct CookieNonce: Equatable, Sendable {
    var words: (UInt64, UInt64, UInt64)

    public init?(bytes: [UInt8]) {
        guard bytes.count == 24 else { return nil }
        var w: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &w) { $0.copyBytes(from: bytes) }
        words = w
    }

    init(words: (UInt64, UInt64, UInt64)) { self.words = words }

    public static func == (x: CookieNonce, y: CookieNonce) -> Bool {
        x.words.0 == y.words.0 && x.words.1 == y.words.1 && x.words.2 == y.words.2
    }
}

/// WireGuard's cookie mechanism (docs/PROTOCOL.md 3.5). Under load the gateway answers an
/// initiation without a valid mac2 with a cookie reply instead of doing public-key work; the
/// initiator puts `mac2 = MAC(cookie, msg[0..<144])` into its next initiation, which proves it
/// receives packets at the source address it claims.
public enum Cookie {
    public static let label = "cookie--"
    /// R is replaced this often; an initiator uses a cookie at most this long after receiving it.
    public static let lifetimeMs: UInt64 = 120_000
    public static let replyLength = 64

    // Cookie reply offsets.
    static let cReceiver = 4, cNonce = 8, cSealed = 32

    /// HASH(label || publicKey): the key of cookie replies sent to initiators of `publicKey`'s holder.
    static func encryptionKey(for key: PublicKey) -> (UInt64, UInt64, UInt64, UInt64) {
        var out: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let l = Array(label.utf8)
        withUnsafeMutableBytes(of: &out) { o in
            l.withUnsafeBytes { lb in key.withBytes { Blake2.hash(o.baseAddress!, lb, $0) } }
        }
        return out
    }

    /// mac2 = MAC(cookie, msg[0..<144]) with the 16-byte cookie as the BLAKE2b key (as WireGuard
    /// keys BLAKE2s with it), written at `into`.
    static func computeMac2(_ msg: UnsafeRawPointer, cookie: MAC16, into out: UnsafeMutableRawPointer) {
        var key = cookie
        withUnsafeBytes(of: &key) { k in
            Blake2.keyed(out, outLength: 16, key: k.baseAddress!, keyLength: 16,
                         UnsafeRawBufferPointer(start: msg, count: Handshake.iMac2))
        }
    }

    /// Opens a cookie reply addressed to the pending initiation `(receiverIndex, mac1)` sent to
    /// `responder`. Order: size, type and reserved; receiver index; the AEAD (its AD is our mac1,
    /// so only a reply to this very initiation opens).
    public static func openReply(_ bytes: UnsafeRawBufferPointer, responder: PublicKey, receiverIndex: UInt32,
                                 mac1: MAC16) throws(HandshakeError) -> MAC16 {
        guard Sodium.isReady else { throw .sodiumUnavailable }
        try Handshake.checkHeader(bytes, type: .cookieReply, length: replyLength)
        let p = bytes.baseAddress!
        guard UInt32(littleEndian: p.loadUnaligned(fromByteOffset: cReceiver, as: UInt32.self)) == receiverIndex else {
            throw .wrongReceiver
        }
        var key = encryptionKey(for: responder)
        defer { withUnsafeMutableBytes(of: &key) { sodium_memzero($0.baseAddress!, 32) } }
        var ad = mac1
        var plain = MAC16.zero
        var plainLength: UInt64 = 0
        let rc = withUnsafeMutableBytes(of: &plain) { out in
            withUnsafeBytes(of: &ad) { adb in
                withUnsafeBytes(of: &key) { kb in
                    crypto_aead_xchacha20poly1305_ietf_decrypt(
                        out.baseAddress!.assumingMemoryBound(to: UInt8.self), &plainLength, nil,
                        (p + cSealed).assumingMemoryBound(to: UInt8.self), 32,
                        adb.baseAddress!.assumingMemoryBound(to: UInt8.self), 16,
                        (p + cNonce).assumingMemoryBound(to: UInt8.self),
                        kb.baseAddress!.assumingMemoryBound(to: UInt8.self))
                }
            }
        }
        guard rc == 0, plainLength == 16 else { throw .decryptFailed }
        return plain
    }
}

/// The gateway's side of cookies: the secret R, cookies for sources, mac2 checks and cookie replies.
/// Pure but for `CookieNonce.random()`/R's random bytes; time comes in. Nothing allocated per call.
public struct CookieChecker: Sendable {
    private var secret: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
    private var secretCreatedMs: UInt64 = 0
    private let replyKey: (UInt64, UInt64, UInt64, UInt64)
    /// Cookie-reply nonces: 16 random bytes drawn with each R, then a counter. Unique per reply under
    /// the one reply key, which is all XChaCha20-Poly1305 needs, and no getrandom() per reply (that
    /// syscall was a measurable share of the receive thread under a flood).
    private var noncePrefix: (UInt64, UInt64) = (0, 0)
    private var nonceCounter: UInt64 = 0

    /// `secret` fixes R (test vectors); nil draws it at random.
    public init(localPublicKey: PublicKey, nowMs: UInt64, secret: [UInt8]? = nil) {
        replyKey = Cookie.encryptionKey(for: localPublicKey)
        if let secret {
            setSecret(secret, nowMs: nowMs)
        } else {
            newRandomSecret(nowMs: nowMs)
        }
    }

    /// Replaces R once it is `Cookie.lifetimeMs` old. The previous R is not kept: a cookie made
    /// with it fails mac2 and its holder is sent a new one.
    public mutating func rotateIfDue(nowMs: UInt64) {
        if nowMs &- secretCreatedMs >= Cookie.lifetimeMs { newRandomSecret(nowMs: nowMs) }
    }

    public mutating func setSecret(_ bytes: [UInt8], nowMs: UInt64) {
        withUnsafeMutableBytes(of: &secret) { $0.copyBytes(from: bytes.prefix(32)) }
        Sodium.ensureInitialized()
        withUnsafeMutableBytes(of: &noncePrefix) { randombytes_buf($0.baseAddress!, 16) }
        secretCreatedMs = nowMs
    }

    private mutating func newRandomSecret(nowMs: UInt64) {
        Sodium.ensureInitialized()
        withUnsafeMutableBytes(of: &secret) { randombytes_buf($0.baseAddress!, 32) }
        withUnsafeMutableBytes(of: &noncePrefix) { randombytes_buf($0.baseAddress!, 16) }
        nonceCounter = 0
        secretCreatedMs = nowMs
    }

    /// A nonce never used before with this process's reply key.
    public mutating func nextNonce() -> CookieNonce {
        nonceCounter &+= 1
        return CookieNonce(words: (noncePrefix.0, noncePrefix.1, nonceCounter))
    }

    /// cookie = MAC(R, address bytes (4 or 16, network order) || port (2 bytes, big-endian)).
    public func cookie(for source: HandshakeSource) -> MAC16 {
        var out = MAC16.zero
        var r = secret
        withUnsafeTemporaryAllocation(byteCount: 18, alignment: 8) { buf in
            let b = buf.baseAddress!
            let n = source.address.withBytes { a in
                b.copyMemory(from: a.baseAddress!, byteCount: a.count)
                return a.count
            }
            b.storeBytes(of: source.port.bigEndian, toByteOffset: n, as: UInt16.self)
            withUnsafeMutableBytes(of: &out) { o in
                withUnsafeBytes(of: &r) { k in
                    Blake2.keyed(o.baseAddress!, outLength: 16, key: k.baseAddress!,
                                 UnsafeRawBufferPointer(start: b, count: n + 2))
                }
            }
        }
        return out
    }

    /// True when the initiation's mac2 is MAC(cookie(source), msg[0..<144]), in constant time.
    /// `msg` holds a whole initiation (length checked by the caller).
    public func isValidMac2(_ msg: UnsafeRawPointer, source: HandshakeSource) -> Bool {
        isValidMac2(msg, cookie: cookie(for: source))
    }

    /// The same with the source's cookie already computed (the admission reuses it for the reply).
    public func isValidMac2(_ msg: UnsafeRawPointer, cookie c: MAC16) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: 16, alignment: 8) { m in
            Cookie.computeMac2(msg, cookie: c, into: m.baseAddress!)
            return sodium_memcmp(m.baseAddress!, msg + Handshake.iMac2, 16) == 0
        }
    }

    /// Writes the 64-byte cookie reply to the initiation `msg` from `source` into `out`.
    public func writeReply(to msg: UnsafeRawPointer, source: HandshakeSource, nonce: CookieNonce,
                           into out: UnsafeMutableRawPointer) {
        writeReply(to: msg, cookie: cookie(for: source), nonce: nonce, into: out)
    }

    /// The same with the source's cookie already computed.
    public func writeReply(to msg: UnsafeRawPointer, cookie: MAC16, nonce: CookieNonce,
                           into out: UnsafeMutableRawPointer) {
        out.initializeMemory(as: UInt8.self, repeating: 0, count: 4)
        out.storeBytes(of: MessageType.cookieReply.rawValue, as: UInt8.self)
        // The initiation's sender index, copied as it lies (little-endian on both sides).
        (out + Cookie.cReceiver).copyMemory(from: msg + Handshake.iSender, byteCount: 4)
        var n = nonce.words
        withUnsafeBytes(of: &n) { (out + Cookie.cNonce).copyMemory(from: $0.baseAddress!, byteCount: 24) }
        var c = cookie
        var key = replyKey
        var sealedLength: UInt64 = 0
        withUnsafeBytes(of: &c) { cb in
            withUnsafeBytes(of: &key) { kb in
                _ = crypto_aead_xchacha20poly1305_ietf_encrypt(
                    (out + Cookie.cSealed).assumingMemoryBound(to: UInt8.self), &sealedLength,
                    cb.baseAddress!.assumingMemoryBound(to: UInt8.self), 16,
                    (msg + Handshake.iMac1).assumingMemoryBound(to: UInt8.self), 16, nil,
                    (out + Cookie.cNonce).assumingMemoryBound(to: UInt8.self),
                    kb.baseAddress!.assumingMemoryBound(to: UInt8.self))
            }
        }
    }
}
