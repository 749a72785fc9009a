import CAead
import CSodium

/// ChaCha20-Poly1305 IETF (RFC 8439) for transport frames, in place, detached 16-byte tag.
///
/// Two implementations of the same construction give byte-identical output, so each message may
/// take either and the peer cannot tell. OpenSSL's ChaCha20 and Poly1305 (CAead) are 2.2x as fast
/// as libsodium on 1,420-byte frames on this project's VM and 1.4x on 64-byte ones (TCP
/// acknowledgements), so every frame takes them; libsodium takes a message only if CAead is
/// unavailable (its self-test failed).
/// Handshakes and cookies never come here: they stay on libsodium.
enum TransportAead {
    /// Encrypts `length` bytes at `text` in place and writes the tag to `tag`. False only if the
    /// message could not be sealed (the text is garbage then). `roomBefore`: bytes right before
    /// `text` the call may borrow (writable, touched by nothing else meanwhile, restored before it
    /// returns; they may hold `ad`); 64 spare CAead a copy of the text.
    @inline(__always)
    static func seal(text: UnsafeMutablePointer<UInt8>, length: Int, tag: UnsafeMutablePointer<UInt8>,
                     ad: UnsafePointer<UInt8>, adLength: Int, nonce: UnsafePointer<UInt8>,
                     key: UnsafePointer<UInt8>, roomBefore: Int) -> Bool {
        switch caead_seal(text, length, tag, ad, adLength, nonce, key, max(roomBefore, 0)) {
        case Int32(CAEAD_OK): return true
        case Int32(CAEAD_UNAVAILABLE): break   // text untouched: libsodium below
        default: return false
        }
        return crypto_aead_chacha20poly1305_ietf_encrypt_detached(
            text, tag, nil, text, UInt64(length), ad, UInt64(adLength), nil, nonce, key) == 0
    }

    /// Verifies `tag` and decrypts `length` bytes at `text` in place. False when the message does not
    /// authenticate; the text is zeroed then (both implementations do that). `roomBefore` as for
    /// `seal`.
    @inline(__always)
    static func open(text: UnsafeMutablePointer<UInt8>, length: Int, tag: UnsafePointer<UInt8>,
                     ad: UnsafePointer<UInt8>, adLength: Int, nonce: UnsafePointer<UInt8>,
                     key: UnsafePointer<UInt8>, roomBefore: Int) -> Bool {
        switch caead_open(text, length, tag, ad, adLength, nonce, key, max(roomBefore, 0)) {
        case Int32(CAEAD_OK): return true
        case Int32(CAEAD_UNAVAILABLE): break   // text untouched: libsodium below
        default: return false
        }
        return crypto_aead_chacha20poly1305_ietf_decrypt_detached(
            text, nil, text, UInt64(length), tag, ad, UInt64(adLength), nonce, key) == 0
    }
}
