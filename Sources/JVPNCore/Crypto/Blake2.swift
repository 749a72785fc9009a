import CSodium

/// The handshake's HASH, MAC and KDF, all BLAKE2b (libsodium crypto_generichash).
///   HASH(x)     = BLAKE2b-256(x)
///   MAC(k, x)   = BLAKE2b-128 keyed with k            (mac1)
///   PRF(k, x)   = BLAKE2b-256 keyed with k            (stands in for Noise's HMAC-HASH)
///   KDFn(ck, x) = HKDF with PRF: T0 = PRF(ck, x); T1 = PRF(T0, 0x01); Ti = PRF(T0, T(i-1) || i)
/// Keyed BLAKE2b is a PRF by design, which is why HMAC's nested construction is not needed.
enum Blake2 {
    static let hashLength = 32

    /// out(32) = BLAKE2b-256(a || b)
    static func hash(_ out: UnsafeMutableRawPointer, _ a: UnsafeRawBufferPointer,
                     _ b: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        if b.count == 0 {
            // One-shot: libsodium keeps the state on its own stack (the streaming state below is
            // 64-byte aligned, which a Swift temporary allocation places on the heap).
            crypto_generichash(out.assumingMemoryBound(to: UInt8.self), hashLength,
                               a.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(a.count), nil, 0)
            return
        }
        withState { st in
            crypto_generichash_init(st, nil, 0, hashLength)
            update(st, a)
            update(st, b)
            crypto_generichash_final(st, out.assumingMemoryBound(to: UInt8.self), hashLength)
        }
    }

    /// out(outLength) = BLAKE2b-outLength keyed with key(keyLength, 32 but for mac2's 16-byte cookie),
    /// over a || b.
    static func keyed(_ out: UnsafeMutableRawPointer, outLength: Int, key: UnsafeRawPointer, keyLength: Int = 32,
                      _ a: UnsafeRawBufferPointer,
                      _ b: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0)) {
        if b.count == 0 {
            crypto_generichash(out.assumingMemoryBound(to: UInt8.self), outLength,
                               a.baseAddress?.assumingMemoryBound(to: UInt8.self), UInt64(a.count),
                               key.assumingMemoryBound(to: UInt8.self), keyLength)
            return
        }
        withState { st in
            crypto_generichash_init(st, key.assumingMemoryBound(to: UInt8.self), keyLength, outLength)
            update(st, a)
            update(st, b)
            crypto_generichash_final(st, out.assumingMemoryBound(to: UInt8.self), outLength)
        }
    }

    // The state struct is 64-byte aligned in C, so Swift imports it as opaque: give it raw storage.
    private static func withState(_ body: (OpaquePointer) -> Void) {
        let size = crypto_generichash_statebytes()
        withUnsafeTemporaryAllocation(byteCount: size, alignment: 64) { buf in
            body(OpaquePointer(buf.baseAddress!))
            sodium_memzero(buf.baseAddress!, size)
        }
    }

    private static func update(_ st: OpaquePointer, _ p: UnsafeRawBufferPointer) {
        guard let base = p.baseAddress, p.count > 0 else { return }
        crypto_generichash_update(st, base.assumingMemoryBound(to: UInt8.self), UInt64(p.count))
    }

    /// HKDF over keyed BLAKE2b producing `outputs.count` 32-byte outputs (1...3).
    /// Outputs may alias the chaining key input (it is consumed into T0 first).
    static func kdf(chainingKey: UnsafeRawPointer, input: UnsafeRawBufferPointer,
                    outputs: [UnsafeMutableRawPointer]) {
        withUnsafeTemporaryAllocation(byteCount: 64 + 33, alignment: 16) { tmp in
            let base = tmp.baseAddress!
            let t0 = base
            let t = base + 32
            keyed(t0, outLength: 32, key: chainingKey, input)
            var counter: UInt8 = 1
            // T1 = PRF(T0, 0x01)
            withUnsafeBytes(of: &counter) { c in keyed(t, outLength: 32, key: UnsafeRawPointer(t0), c) }
            outputs[0].copyMemory(from: t, byteCount: 32)
            var i = 1
            while i < outputs.count {
                counter += 1
                // Ti = PRF(T0, T(i-1) || i)
                let msg = base + 64
                msg.copyMemory(from: t, byteCount: 32)
                msg.storeBytes(of: counter, toByteOffset: 32, as: UInt8.self)
                keyed(t, outLength: 32, key: UnsafeRawPointer(t0),
                      UnsafeRawBufferPointer(start: msg, count: 33))
                outputs[i].copyMemory(from: t, byteCount: 32)
                i += 1
            }
            sodium_memzero(base, 64 + 33)
        }
    }
}
