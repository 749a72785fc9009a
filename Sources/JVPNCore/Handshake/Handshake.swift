import CSodium

public enum HandshakeError: Error, Equatable, Sendable {
    case sodiumUnavailable
    /// Message is not exactly the size of its type.
    case wrongLength
    /// Wrong message type or non-zero reserved bytes.
    case wrongType
    /// mac1 does not match our public key: the sender does not know who we are. Send nothing.
    case badMAC
    /// A Diffie-Hellman result was all zero (low-order point).
    case badKey
    /// An AEAD field failed to authenticate.
    case decryptFailed
    /// The initiator's static key is not one we accept. Send nothing.
    case unknownPeer
    /// A response addressed to a different handshake (receiver index mismatch).
    case wrongReceiver
    /// This handshake state was already used to produce keys.
    case alreadyConsumed
}

/// Noise IKpsk2 with the pre-shared key fixed to 32 zero bytes, built from libsodium primitives:
/// X25519, ChaCha20-Poly1305 IETF, BLAKE2b (HASH, keyed PRF for HKDF, keyed MAC for mac1).
/// See docs/PROTOCOL.md for the byte layout and key schedule; the test vectors there are checked by
/// ProtocolVectorTests.
public enum Handshake {
    public static let construction = "jvpn1_IKpsk2_25519_ChaChaPoly_BLAKE2b"
    public static let identifier = "jvpn v1 handshake"
    public static let mac1Label = "mac1----"

    public static let initiationLength = 160
    public static let responseLength = 92
    public static let payloadLength = 24

    // Initiation offsets.
    static let iSender = 4, iEphemeral = 8, iStatic = 40, iPayload = 88, iMac1 = 128, iMac2 = 144
    // Response offsets. Its mac2 (at 76) is zero in this version; receivers ignore it.
    static let rSender = 4, rReceiver = 8, rEphemeral = 12, rEmpty = 44, rMac1 = 60

    /// C0 = HASH(construction), H0 = HASH(C0 || identifier); constants.
    static let initialChain: (ck: [UInt8], h: [UInt8]) = {
        var ck = [UInt8](repeating: 0, count: 32)
        var h = [UInt8](repeating: 0, count: 32)
        let c = Array(construction.utf8)
        let id = Array(identifier.utf8)
        c.withUnsafeBytes { cb in ck.withUnsafeMutableBytes { Blake2.hash($0.baseAddress!, cb) } }
        ck.withUnsafeBytes { ckb in
            id.withUnsafeBytes { idb in h.withUnsafeMutableBytes { Blake2.hash($0.baseAddress!, ckb, idb) } }
        }
        return (ck, h)
    }()

    /// HASH(mac1Label || publicKey): the mac1 key for messages sent to the holder of `publicKey`.
    static func mac1Key(for key: PublicKey, into out: UnsafeMutableRawPointer) {
        let label = Array(mac1Label.utf8)
        label.withUnsafeBytes { l in key.withBytes { k in Blake2.hash(out, l, k) } }
    }

    /// mac1 over everything before it, written/compared at `macOffset`.
    static func computeMac1(_ msg: UnsafeRawPointer, macOffset: Int, receiver: PublicKey,
                            into out: UnsafeMutableRawPointer) {
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { k in
            mac1Key(for: receiver, into: k.baseAddress!)
            Blake2.keyed(out, outLength: 16, key: UnsafeRawPointer(k.baseAddress!),
                         UnsafeRawBufferPointer(start: msg, count: macOffset))
        }
    }

    static func verifyMac1(_ msg: UnsafeRawPointer, macOffset: Int, receiver: PublicKey) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: 16, alignment: 8) { m in
            computeMac1(msg, macOffset: macOffset, receiver: receiver, into: m.baseAddress!)
            return sodium_memcmp(m.baseAddress!, msg + macOffset, 16) == 0
        }
    }

    static func checkHeader(_ bytes: UnsafeRawBufferPointer, type: MessageType, length: Int) throws(HandshakeError) {
        guard bytes.count == length, let p = bytes.baseAddress else { throw .wrongLength }
        guard p.load(as: UInt8.self) == type.rawValue,
              p.load(fromByteOffset: 1, as: UInt8.self) == 0,
              p.load(fromByteOffset: 2, as: UInt8.self) == 0,
              p.load(fromByteOffset: 3, as: UInt8.self) == 0 else { throw .wrongType }
    }

    /// Receiver index of a response (to find the pending handshake it answers) without any crypto.
    public static func receiverIndex(ofResponse bytes: UnsafeRawBufferPointer) -> UInt32? {
        guard bytes.count == responseLength, bytes[0] == MessageType.response.rawValue else { return nil }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: rReceiver, as: UInt32.self))
    }

    // MARK: initiator

    /// `cookie` is the gateway's latest cookie for this path if younger than `Cookie.lifetimeMs`:
    /// it makes mac2, which an overloaded gateway requires; nil leaves mac2 zero.
    public static func makeInitiation(local: PrivateKey, remote: PublicKey, sessionID: SessionID,
                                      localIndex: UInt32, timestamp: Timestamp12, flags: UInt32 = 0,
                                      cookie: MAC16? = nil, ephemeral: PrivateKey? = nil) throws(HandshakeError)
        -> (message: [UInt8], state: InitiatorHandshake) {
        guard Sodium.isReady else { throw .sodiumUnavailable }
        let eph = ephemeral ?? PrivateKey.generate()
        let st = SymmetricState(responderStatic: remote)
        var msg = [UInt8](repeating: 0, count: initiationLength)
        // Array's closure APIs only rethrow untyped errors, so the failure is carried out by value.
        var failure: HandshakeError?
        msg.withUnsafeMutableBytes { (m: UnsafeMutableRawBufferPointer) in
            let p = m.baseAddress!
            p.storeBytes(of: MessageType.initiation.rawValue, as: UInt8.self)
            p.storeBytes(of: localIndex.littleEndian, toByteOffset: iSender, as: UInt32.self)
            // e
            eph.publicKey.withBytes { (p + iEphemeral).copyMemory(from: $0.baseAddress!, byteCount: 32) }
            let e = UnsafeRawBufferPointer(start: p + iEphemeral, count: 32)
            st.mixKey(e)
            st.mixHash(e)
            // es, then s
            guard st.mixDH(eph, remote) else { failure = .badKey; return }
            local.publicKey.withBytes { st.encryptAndHash($0, into: p + iStatic) }
            // ss, then payload
            guard st.mixDH(local, remote) else { failure = .badKey; return }
            withUnsafeTemporaryAllocation(byteCount: payloadLength, alignment: 8) { pl in
                let q = pl.baseAddress!
                timestamp.write(to: q)
                sessionID.write(to: q + 12)
                q.storeBytes(of: flags.littleEndian, toByteOffset: 20, as: UInt32.self)
                st.encryptAndHash(UnsafeRawBufferPointer(start: q, count: payloadLength), into: p + iPayload)
            }
            computeMac1(p, macOffset: iMac1, receiver: remote, into: p + iMac1)
            if let cookie { Cookie.computeMac2(p, cookie: cookie, into: p + iMac2) }
        }
        if let failure { throw failure }
        let mac1 = msg.withUnsafeBytes { MAC16(pointer: $0.baseAddress! + iMac1) }
        let state = InitiatorHandshake(symmetric: st, local: local, remote: remote, ephemeral: eph,
                                       sessionID: sessionID, localIndex: localIndex, timestamp: timestamp, mac1: mac1)
        return (msg, state)
    }

    // MARK: responder

    /// Validation order: size and type; mac1 (cheap, before any DH); ephemeral + es; decrypt the
    /// initiator's static key; `isAuthorized` (unknown key -> `.unknownPeer`, answer nothing); ss;
    /// decrypt the payload. The returned value is authenticated; the caller still checks the timestamp
    /// with an `InitiationReplayGuard` before answering.
    public static func consumeInitiation(_ bytes: UnsafeRawBufferPointer, local: PrivateKey,
                                         isAuthorized: (PublicKey) -> Bool) throws(HandshakeError)
        -> ReceivedInitiation {
        guard Sodium.isReady else { throw .sodiumUnavailable }
        try checkHeader(bytes, type: .initiation, length: initiationLength)
        let p = bytes.baseAddress!
        let localPublic = local.publicKey
        guard verifyMac1(p, macOffset: iMac1, receiver: localPublic) else { throw .badMAC }
        let senderIndex = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: iSender, as: UInt32.self))
        let st = SymmetricState(responderStatic: localPublic)
        let e = UnsafeRawBufferPointer(start: p + iEphemeral, count: 32)
        let remoteEphemeral = PublicKey(pointer: p + iEphemeral)
        st.mixKey(e)
        st.mixHash(e)
        guard st.mixDH(local, remoteEphemeral) else { throw .badKey }
        var staticBytes = PublicKey.zeroStorage
        let ok = withUnsafeMutableBytes(of: &staticBytes) { out in
            st.decryptAndHash(UnsafeRawBufferPointer(start: p + iStatic, count: 48), into: out.baseAddress!)
        }
        guard ok else { throw .decryptFailed }
        let peer = PublicKey(storage: staticBytes)
        guard isAuthorized(peer) else { throw .unknownPeer }
        guard st.mixDH(local, peer) else { throw .badKey }
        var result: (Timestamp12, SessionID, UInt32)?
        withUnsafeTemporaryAllocation(byteCount: payloadLength, alignment: 8) { pl in
            let q = pl.baseAddress!
            if st.decryptAndHash(UnsafeRawBufferPointer(start: p + iPayload, count: payloadLength + 16), into: q) {
                result = (Timestamp12(pointer: q), SessionID(pointer: q + 12),
                          UInt32(littleEndian: q.loadUnaligned(fromByteOffset: 20, as: UInt32.self)))
            }
        }
        guard let (ts, sid, flags) = result else { throw .decryptFailed }
        return ReceivedInitiation(symmetric: st, local: local, peer: peer, remoteEphemeral: remoteEphemeral,
                                  initiatorIndex: senderIndex, sessionID: sid, timestamp: ts, flags: flags)
    }
}

/// Initiator side between sending the initiation and receiving the response.
/// Not thread-safe: one owner (the handshake timer / receive path under the session lock).
public final class InitiatorHandshake: @unchecked Sendable {
    private let symmetric: SymmetricState
    private let local: PrivateKey
    public let remote: PublicKey
    private let ephemeral: PrivateKey
    public let sessionID: SessionID
    public let localIndex: UInt32
    public let timestamp: Timestamp12
    /// The initiation's mac1: the AD a cookie reply to it is sealed with.
    public let mac1: MAC16
    private var consumed = false

    init(symmetric: SymmetricState, local: PrivateKey, remote: PublicKey, ephemeral: PrivateKey,
         sessionID: SessionID, localIndex: UInt32, timestamp: Timestamp12, mac1: MAC16) {
        self.symmetric = symmetric
        self.local = local
        self.remote = remote
        self.ephemeral = ephemeral
        self.sessionID = sessionID
        self.localIndex = localIndex
        self.timestamp = timestamp
        self.mac1 = mac1
    }

    /// Validation order: size and type; receiver index is ours; mac1 (keyed by our public key);
    /// ee, se, psk; the empty AEAD authenticates the whole transcript. A failure leaves this state
    /// usable for the genuine response; success consumes it.
    public func consumeResponse(_ bytes: UnsafeRawBufferPointer, now: UInt64) throws(HandshakeError) -> Keypair {
        guard !consumed else { throw .alreadyConsumed }
        try Handshake.checkHeader(bytes, type: .response, length: Handshake.responseLength)
        let p = bytes.baseAddress!
        let receiver = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: Handshake.rReceiver, as: UInt32.self))
        guard receiver == localIndex else { throw .wrongReceiver }
        guard Handshake.verifyMac1(p, macOffset: Handshake.rMac1, receiver: local.publicKey) else { throw .badMAC }
        let senderIndex = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: Handshake.rSender, as: UInt32.self))
        // Work on a copy so that a forged response cannot spoil the state for the real one.
        let st = symmetric.copy()
        let e = UnsafeRawBufferPointer(start: p + Handshake.rEphemeral, count: 32)
        let responderEphemeral = PublicKey(pointer: p + Handshake.rEphemeral)
        st.mixKey(e)
        st.mixHash(e)
        guard st.mixKeyDH(ephemeral, responderEphemeral), st.mixKeyDH(local, responderEphemeral) else { throw .badKey }
        st.mixPresharedKey()
        let ok = withUnsafeTemporaryAllocation(byteCount: 1, alignment: 1) { out in
            st.decryptAndHash(UnsafeRawBufferPointer(start: p + Handshake.rEmpty, count: 16), into: out.baseAddress!)
        }
        guard ok else { throw .decryptFailed }
        consumed = true
        return Keypair(keys: st.split(initiator: true), localIndex: localIndex, remoteIndex: senderIndex,
                       createdAt: now, isInitiator: true)
    }
}

/// An authenticated initiation, waiting for the caller's replay check and answer.
/// Not thread-safe; `makeResponse` may succeed once.
public final class ReceivedInitiation: @unchecked Sendable {
    private let symmetric: SymmetricState
    private let local: PrivateKey
    public let peer: PublicKey
    private let remoteEphemeral: PublicKey
    public let initiatorIndex: UInt32
    public let sessionID: SessionID
    public let timestamp: Timestamp12
    public let flags: UInt32
    private var responded = false

    init(symmetric: SymmetricState, local: PrivateKey, peer: PublicKey, remoteEphemeral: PublicKey,
         initiatorIndex: UInt32, sessionID: SessionID, timestamp: Timestamp12, flags: UInt32) {
        self.symmetric = symmetric
        self.local = local
        self.peer = peer
        self.remoteEphemeral = remoteEphemeral
        self.initiatorIndex = initiatorIndex
        self.sessionID = sessionID
        self.timestamp = timestamp
        self.flags = flags
    }

    public func makeResponse(localIndex: UInt32, now: UInt64, ephemeral: PrivateKey? = nil) throws(HandshakeError)
        -> (message: [UInt8], keypair: Keypair) {
        guard !responded else { throw .alreadyConsumed }
        // Any attempt consumes the transcript state, successful or not.
        responded = true
        let eph = ephemeral ?? PrivateKey.generate()
        let st = symmetric
        var msg = [UInt8](repeating: 0, count: Handshake.responseLength)
        // Array's closure APIs only rethrow untyped errors, so the failure is carried out by value.
        var failure: HandshakeError?
        msg.withUnsafeMutableBytes { (m: UnsafeMutableRawBufferPointer) in
            let p = m.baseAddress!
            p.storeBytes(of: MessageType.response.rawValue, as: UInt8.self)
            p.storeBytes(of: localIndex.littleEndian, toByteOffset: Handshake.rSender, as: UInt32.self)
            p.storeBytes(of: initiatorIndex.littleEndian, toByteOffset: Handshake.rReceiver, as: UInt32.self)
            eph.publicKey.withBytes { (p + Handshake.rEphemeral).copyMemory(from: $0.baseAddress!, byteCount: 32) }
            let e = UnsafeRawBufferPointer(start: p + Handshake.rEphemeral, count: 32)
            st.mixKey(e)
            st.mixHash(e)
            guard st.mixKeyDH(eph, remoteEphemeral), st.mixKeyDH(eph, peer) else { failure = .badKey; return }
            st.mixPresharedKey()
            st.encryptAndHash(UnsafeRawBufferPointer(start: nil, count: 0), into: p + Handshake.rEmpty)
            Handshake.computeMac1(p, macOffset: Handshake.rMac1, receiver: peer, into: p + Handshake.rMac1)
        }
        if let failure { throw failure }
        let kp = Keypair(keys: st.split(initiator: false), localIndex: localIndex, remoteIndex: initiatorIndex,
                         createdAt: now, isInitiator: false)
        return (msg, kp)
    }
}

/// Noise symmetric state: chaining key, transcript hash and the current AEAD key, in wiped memory.
final class SymmetricState: @unchecked Sendable {
    private let mem = SecretBytes(count: 96)
    private var ck: UnsafeMutableRawPointer { mem.pointer }
    private var h: UnsafeMutableRawPointer { mem.pointer + 32 }
    private var k: UnsafeMutableRawPointer { mem.pointer + 64 }

    private init() {}

    /// C = C0; H = HASH(H0 || S_r)
    convenience init(responderStatic: PublicKey) {
        self.init()
        let (c0, h0) = Handshake.initialChain
        ck.copyMemory(from: c0, byteCount: 32)
        h.copyMemory(from: h0, byteCount: 32)
        responderStatic.withBytes { mixHash($0) }
    }

    func copy() -> SymmetricState {
        let s = SymmetricState()
        s.mem.pointer.copyMemory(from: mem.raw, byteCount: 96)
        return s
    }

    /// H = HASH(H || data)
    func mixHash(_ data: UnsafeRawBufferPointer) {
        Blake2.hash(h, UnsafeRawBufferPointer(start: h, count: 32), data)
    }

    /// C = KDF1(C, data)
    func mixKey(_ data: UnsafeRawBufferPointer) {
        Blake2.kdf(chainingKey: ck, input: data, outputs: [ck])
    }

    /// (C, k) = KDF2(C, DH(priv, pub)). False on an all-zero DH.
    func mixDH(_ priv: PrivateKey, _ pub: PublicKey) -> Bool {
        withDH(priv, pub) { dh in Blake2.kdf(chainingKey: ck, input: dh, outputs: [ck, k]) }
    }

    /// C = KDF1(C, DH(priv, pub)). False on an all-zero DH.
    func mixKeyDH(_ priv: PrivateKey, _ pub: PublicKey) -> Bool {
        withDH(priv, pub) { dh in Blake2.kdf(chainingKey: ck, input: dh, outputs: [ck]) }
    }

    private func withDH(_ priv: PrivateKey, _ pub: PublicKey, _ body: (UnsafeRawBufferPointer) -> Void) -> Bool {
        withUnsafeTemporaryAllocation(byteCount: 32, alignment: 8) { tmp in
            let out = tmp.baseAddress!
            defer { sodium_memzero(out, 32) }
            guard priv.sharedSecret(with: pub, into: out) else { return false }
            body(UnsafeRawBufferPointer(start: out, count: 32))
            return true
        }
    }

    /// (C, tau, k) = KDF3(C, Q) with Q = 32 zero bytes; H = HASH(H || tau). Keeping the psk step
    /// (with a zero key) leaves room to add a real pre-shared key without changing the pattern.
    func mixPresharedKey() {
        withUnsafeTemporaryAllocation(byteCount: 64, alignment: 8) { tmp in
            let psk = tmp.baseAddress!
            let tau = psk + 32
            psk.initializeMemory(as: UInt8.self, repeating: 0, count: 32)
            Blake2.kdf(chainingKey: ck, input: UnsafeRawBufferPointer(start: psk, count: 32), outputs: [ck, tau, k])
            mixHash(UnsafeRawBufferPointer(start: tau, count: 32))
            sodium_memzero(psk, 64)
        }
    }

    /// out = AEAD(k, 0, plaintext, H); H = HASH(H || out). Writes plaintext.count + 16 bytes.
    func encryptAndHash(_ plaintext: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer) {
        var nonce: (UInt32, UInt32, UInt32) = (0, 0, 0)
        var clen: UInt64 = 0
        withUnsafeBytes(of: &nonce) { n in
            _ = crypto_aead_chacha20poly1305_ietf_encrypt(
                out.assumingMemoryBound(to: UInt8.self), &clen,
                plaintext.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(plaintext.count),
                h.assumingMemoryBound(to: UInt8.self), 32, nil,
                n.baseAddress!.assumingMemoryBound(to: UInt8.self), k.assumingMemoryBound(to: UInt8.self))
        }
        mixHash(UnsafeRawBufferPointer(start: out, count: plaintext.count + 16))
    }

    /// Inverse of encryptAndHash; writes ciphertext.count - 16 bytes. False (state unchanged) on failure.
    func decryptAndHash(_ ciphertext: UnsafeRawBufferPointer, into out: UnsafeMutableRawPointer) -> Bool {
        guard ciphertext.count >= 16, let c = ciphertext.baseAddress else { return false }
        var nonce: (UInt32, UInt32, UInt32) = (0, 0, 0)
        var mlen: UInt64 = 0
        let rc = withUnsafeBytes(of: &nonce) { n in
            crypto_aead_chacha20poly1305_ietf_decrypt(
                out.assumingMemoryBound(to: UInt8.self), &mlen, nil,
                c.assumingMemoryBound(to: UInt8.self), UInt64(ciphertext.count),
                h.assumingMemoryBound(to: UInt8.self), 32,
                n.baseAddress!.assumingMemoryBound(to: UInt8.self), k.assumingMemoryBound(to: UInt8.self))
        }
        guard rc == 0 else { return false }
        mixHash(ciphertext)
        return true
    }

    /// (T1, T2) = KDF2(C, empty). T1 carries initiator->responder, T2 responder->initiator.
    /// Returned as a 64-byte slot of `SecretSlab.transportKeys` laid out (send, receive) for the given side.
    func split(initiator: Bool) -> UnsafeMutableRawPointer {
        let out = SecretSlab.transportKeys.acquire()
        if initiator {
            Blake2.kdf(chainingKey: ck, input: UnsafeRawBufferPointer(start: nil, count: 0),
                       outputs: [out, out + 32])
        } else {
            Blake2.kdf(chainingKey: ck, input: UnsafeRawBufferPointer(start: nil, count: 0),
                       outputs: [out + 32, out])
        }
        sodium_memzero(mem.pointer, 96)
        return out
    }
}
