import CSodium

public enum KeyError: Error, Equatable, Sendable {
    /// Not valid standard (padded) base64.
    case invalidBase64
    /// Valid base64, but it decoded to `actual` bytes instead of 32.
    case wrongLength(actual: Int)
}

/// Strict base64 for 32-byte keys, via libsodium.
enum KeyCodec {
    /// Decodes strict standard base64 (with padding) of exactly 32 bytes. Surrounding ASCII whitespace
    /// is ignored so that `echo KEY | jvpn pubkey` and config values with trailing blanks work.
    static func decodeKey32(_ text: String, into out: UnsafeMutableRawPointer) throws(KeyError) {
        var utf8 = Array(text.utf8)
        while let last = utf8.last, last == 0x20 || last == 0x09 || last == 0x0A || last == 0x0D { utf8.removeLast() }
        var start = 0
        while start < utf8.count, utf8[start] == 0x20 || utf8[start] == 0x09 || utf8[start] == 0x0A || utf8[start] == 0x0D { start += 1 }
        let trimmed = utf8[start...]
        if trimmed.isEmpty { throw .wrongLength(actual: 0) }
        // Room for more than 32 so that a too-long input is reported with its real length.
        let cap = trimmed.count
        var decodedLength = 0
        let ok: Bool = withUnsafeTemporaryAllocation(byteCount: cap, alignment: 1) { buf in
            trimmed.withUnsafeBufferPointer { b64 in
                var binLen = 0
                var end: UnsafePointer<CChar>? = nil
                let r = b64.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b64.count) { p in
                    sodium_base642bin(buf.baseAddress!.assumingMemoryBound(to: UInt8.self), cap,
                                      p, b64.count, nil, &binLen, &end,
                                      sodium_base64_VARIANT_ORIGINAL)
                }
                guard r == 0, let e = end else { return false }
                // Reject trailing garbage that libsodium stopped at.
                let consumed = b64.baseAddress!.withMemoryRebound(to: CChar.self, capacity: b64.count) { p in e - p }
                guard consumed == b64.count else { return false }
                decodedLength = binLen
                if binLen == 32 { out.copyMemory(from: buf.baseAddress!, byteCount: 32) }
                sodium_memzero(buf.baseAddress!, cap)
                return true
            }
        }
        if !ok { throw .invalidBase64 }
        if decodedLength != 32 { throw .wrongLength(actual: decodedLength) }
    }

    static func encodeBase64(_ p: UnsafeRawPointer, count: Int) -> String {
        let outLen = sodium_base64_encoded_len(count, sodium_base64_VARIANT_ORIGINAL)
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: outLen) { out in
            sodium_bin2base64(out.baseAddress!, outLen, p.assumingMemoryBound(to: UInt8.self), count,
                              sodium_base64_VARIANT_ORIGINAL)
            return String(cString: out.baseAddress!)
        }
    }
}

/// An X25519 private key. The 32 bytes live in a wiped-on-free allocation shared by copies.
public struct PrivateKey: Sendable {
    let storage: SecretBytes

    private init(storage: SecretBytes) {
        self.storage = storage
        clamp()
    }

    /// X25519 clamping (RFC 7748): the stored key is the canonical clamped scalar, as `wg genkey`
    /// prints it, so the same key always round-trips to the same base64.
    private func clamp() {
        let b = storage.bytes
        b[0] &= 248
        b[31] = (b[31] & 127) | 64
    }

    public init(base64: String) throws(KeyError) {
        let s = SecretBytes(count: 32)
        try KeyCodec.decodeKey32(base64, into: s.pointer)
        self.init(storage: s)
    }

    /// From 32 raw bytes (test vectors, key files in binary).
    public init(rawBytes: some Collection<UInt8>) throws(KeyError) {
        guard rawBytes.count == 32 else { throw .wrongLength(actual: rawBytes.count) }
        let s = SecretBytes(count: 32)
        var i = 0
        for byte in rawBytes { s.bytes[i] = byte; i += 1 }
        self.init(storage: s)
    }

    public static func generate() -> PrivateKey {
        Sodium.ensureInitialized()
        let s = SecretBytes(count: 32)
        randombytes_buf(s.pointer, 32)
        return PrivateKey(storage: s)
    }

    public var publicKey: PublicKey {
        Sodium.ensureInitialized()
        var pk = PublicKey.zeroStorage
        withUnsafeMutableBytes(of: &pk) { out in
            _ = crypto_scalarmult_base(out.baseAddress!.assumingMemoryBound(to: UInt8.self), storage.bytes)
        }
        return PublicKey(storage: pk)
    }

    public var base64: String { KeyCodec.encodeBase64(storage.raw, count: 32) }

    /// X25519(self, peer) into `out` (32 bytes). False if the result is all zero (low-order point).
    func sharedSecret(with peer: PublicKey, into out: UnsafeMutableRawPointer) -> Bool {
        peer.withBytes { p in
            crypto_scalarmult(out.assumingMemoryBound(to: UInt8.self), storage.bytes,
                              p.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 0
        }
    }
}

/// An X25519 public key: plain value, hashable so it can key peer tables.
public struct PublicKey: Hashable, Sendable, CustomStringConvertible {
    typealias Storage = (UInt64, UInt64, UInt64, UInt64)
    static let zeroStorage: Storage = (0, 0, 0, 0)
    private var storage: Storage

    init(storage: Storage) { self.storage = storage }

    public init(base64: String) throws(KeyError) {
        var s = PublicKey.zeroStorage
        try withUnsafeMutableBytes(of: &s) { (p: UnsafeMutableRawBufferPointer) throws(KeyError) in
            try KeyCodec.decodeKey32(base64, into: p.baseAddress!)
        }
        storage = s
    }

    public init(rawBytes: some Collection<UInt8>) throws(KeyError) {
        guard rawBytes.count == 32 else { throw .wrongLength(actual: rawBytes.count) }
        var s = PublicKey.zeroStorage
        withUnsafeMutableBytes(of: &s) { p in
            var i = 0
            for byte in rawBytes { p[i] = byte; i += 1 }
        }
        storage = s
    }

    init(pointer: UnsafeRawPointer) {
        var s = PublicKey.zeroStorage
        withUnsafeMutableBytes(of: &s) { $0.baseAddress!.copyMemory(from: pointer, byteCount: 32) }
        storage = s
    }

    public var bytes: [UInt8] { withBytes { Array($0) } }
    public var base64: String { withBytes { KeyCodec.encodeBase64($0.baseAddress!, count: 32) } }
    public var description: String { base64 }

    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try withUnsafeBytes(of: storage, body)
    }

    public static func == (a: PublicKey, b: PublicKey) -> Bool {
        a.storage.0 == b.storage.0 && a.storage.1 == b.storage.1
            && a.storage.2 == b.storage.2 && a.storage.3 == b.storage.3
    }

    public func hash(into h: inout Hasher) {
        h.combine(storage.0); h.combine(storage.1); h.combine(storage.2); h.combine(storage.3)
    }
}
