import CAead
import CCpuFeatures
import CSodium
import Foundation
import XCTest
@testable import JVPNCore

/// OpenSSL's ChaCha20 and Poly1305 composed into RFC 8439's AEAD (CAead), against RFC 8439 and against
/// libsodium's IETF AEAD, which must produce the same bytes: frames sealed by either are opened by
/// the other.
final class TransportAeadTests: XCTestCase {
    private struct Message {
        var key: [UInt8], nonce: [UInt8], ad: [UInt8], plain: [UInt8]

        static func random(length: Int, adLength: Int) -> Message {
            Message(key: randomBytes(32), nonce: randomBytes(12), ad: randomBytes(adLength), plain: randomBytes(length))
        }
    }

    private static func randomBytes(_ n: Int) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: n)
        if n > 0 { randombytes_buf(&b, n) }
        return b
    }

    /// Runs `body` on a copy of `bytes` (never a nil pointer, even when empty) that has `room` random
    /// bytes before it (lent to CAead), and returns the copy; asserts that the lent bytes hold what
    /// they held before.
    private static func inPlace(_ bytes: [UInt8], room: Int = 0, file: StaticString = #filePath, line: UInt = #line,
                                _ body: (UnsafeMutablePointer<UInt8>) -> Int32) -> ([UInt8], Int32) {
        let before = randomBytes(room)
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: room + max(bytes.count, 1))
        defer { p.deallocate() }
        p.initialize(from: before, count: room)
        (p + room).initialize(from: bytes, count: bytes.count)
        let rc = body(p + room)
        XCTAssertTrue(Array(UnsafeBufferPointer(start: p, count: room)) == before, "lent bytes not given back", file: file, line: line)
        return (Array(UnsafeBufferPointer(start: p + room, count: bytes.count)), rc)
    }

    /// (ciphertext, tag) from CAead, asserting it reported success; `room` bytes lent before the text.
    private func caeadSeal(_ m: Message, room: Int = 0, file: StaticString = #filePath, line: UInt = #line) -> ([UInt8], [UInt8]) {
        var tag = [UInt8](repeating: 0, count: 16)
        let (text, rc) = Self.inPlace(m.plain, room: room, file: file, line: line) {
            caead_seal($0, m.plain.count, &tag, m.ad, m.ad.count, m.nonce, m.key, room)
        }
        XCTAssertEqual(rc, Int32(CAEAD_OK), file: file, line: line)
        return (text, tag)
    }

    /// The plaintext, or nil when CAead rejected the message (then the text must have been zeroed).
    private func caeadOpen(_ m: Message, _ cipher: [UInt8], _ tag: [UInt8], room: Int = 0, file: StaticString = #filePath,
                           line: UInt = #line) -> [UInt8]? {
        let (text, rc) = Self.inPlace(cipher, room: room, file: file, line: line) {
            caead_open($0, cipher.count, tag, m.ad, m.ad.count, m.nonce, m.key, room)
        }
        if rc == Int32(CAEAD_OK) { return text }
        XCTAssertEqual(rc, Int32(CAEAD_REJECTED), file: file, line: line)
        XCTAssertTrue(text.allSatisfy { $0 == 0 }, "rejected text left behind", file: file, line: line)
        return nil
    }

    private func sodiumSeal(_ m: Message) -> ([UInt8], [UInt8]) {
        var tag = [UInt8](repeating: 0, count: 16)
        let (text, rc) = Self.inPlace(m.plain) {
            crypto_aead_chacha20poly1305_ietf_encrypt_detached(
                $0, &tag, nil, $0, UInt64(m.plain.count), m.ad, UInt64(m.ad.count), nil, m.nonce, m.key)
        }
        XCTAssertEqual(rc, 0)
        return (text, tag)
    }

    private func sodiumOpen(_ m: Message, _ cipher: [UInt8], _ tag: [UInt8]) -> [UInt8]? {
        let (text, rc) = Self.inPlace(cipher) {
            crypto_aead_chacha20poly1305_ietf_decrypt_detached(
                $0, nil, $0, UInt64(cipher.count), tag, m.ad, UInt64(m.ad.count), m.nonce, m.key)
        }
        return rc == 0 ? text : nil
    }

    private func hex(_ s: String) throws -> [UInt8] {
        try XCTUnwrap(HexCodec.decode(s.filter { !$0.isWhitespace }))
    }

    /// RFC 8439 section 2.8.2, through both implementations.
    func testRFC8439Vector() throws {
        let m = Message(
            key: try hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"),
            nonce: try hex("070000004041424344454647"),
            ad: try hex("50515253c0c1c2c3c4c5c6c7"),
            plain: Array("Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.".utf8))
        let cipher = try hex("""
            d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6
            3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36
            92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc
            3ff4def08e4b7a9de576d26586cec64b6116
            """)
        let tag = try hex("1ae10b594f09e26a7e902ecbd0600691")
        let ours = caeadSeal(m)
        XCTAssertEqual(ours.0, cipher)
        XCTAssertEqual(ours.1, tag)
        XCTAssertEqual(caeadOpen(m, cipher, tag), m.plain)
        let sodium = sodiumSeal(m)
        XCTAssertEqual(sodium.0, cipher)
        XCTAssertEqual(sodium.1, tag)
    }

    /// Random keys, nonces, AAD and lengths 0...2000, and long ones up to a 64 KiB frame (OpenSSL's
    /// ChaCha20 takes other code paths from 512 bytes and by 1,024-byte strides): same bytes from
    /// both; each opens the other's.
    func testMatchesLibsodiumBothWays() {
        // and around where block 0 stops joining the text's call (a 1,024-byte stride's last 64
        // bytes, and the 2,048-byte scratch)
        // and where ChaCha20's rest behind whole 1,024-byte strides changes hands (OpenSSL's short
        // code up to 256 bytes, the 8-block kernel from 257 to 512, one call beyond): joined with
        // block 0 (64 bytes more: every rest from 250 to 520 bytes) and not (from 1,985 bytes)
        let lengths = [0, 1, 15, 16, 17, 63, 64, 65, 192, 193, 255, 256, 257, 448, 449, 511, 512, 513, 639, 640, 641,
                       959, 960, 961, 1023, 1024, 1025, 1216, 1217, 1420, 1472, 1473, 1983, 1984, 1985, 1988, 2000, 2048,
                       2304, 2305, 2560, 2561, 4095, 4097, 65_535] + Array(1210...1480)
            + (0..<150).map { _ in Int.random(in: 0...2000) } + (0..<40).map { _ in Int.random(in: 2001...3100) }
            + (0..<20).map { _ in Int.random(in: 3101...65_535) }
        // With the 64 bytes before the text lent and without (in place, or through the scratch),
        // and with fewer lent than it takes.
        for length in lengths {
            for room in [0, 64, 63] {
                let m = Message.random(length: length, adLength: Int.random(in: 0...64))
                let ours = caeadSeal(m, room: room), sodium = sodiumSeal(m)
                // Booleans: a mismatch of long arrays would print both whole.
                XCTAssertTrue(ours.0 == sodium.0, "ciphertext, length \(length), room \(room)")
                XCTAssertTrue(ours.1 == sodium.1, "tag, length \(length), room \(room)")
                XCTAssertTrue(sodiumOpen(m, ours.0, ours.1) == m.plain, "CAead seal -> sodium open, length \(length), room \(room)")
                XCTAssertTrue(caeadOpen(m, sodium.0, sodium.1, room: room) == m.plain,
                              "sodium seal -> CAead open, length \(length), room \(room)")
            }
        }
    }

    /// On a CPU with AVX-512 VL and BW the 8-block kernel is in use (it passed its check against
    /// OpenSSL), so the lengths above went through it.
    func testEightBlockKernelIsUsedWhereTheCPUHasIt() throws {
        guard Int(ccpu_features()) & CCPU_AVX512VL_BW != 0 else {
            throw XCTSkip("this CPU has no AVX-512 VL and BW")
        }
        XCTAssertEqual(caead_uses_eight_blocks(), 1)
    }

    /// Nothing carries over from one message to the next: messages alternating between keys, runs
    /// under one key, a key at a new address with the same bytes, and a key differing in one byte
    /// all give libsodium's bytes, sealing and opening.
    func testKeyChangesBetweenMessages() {
        let a = Self.randomBytes(32)
        var b = a
        b[17] ^= 0x01
        let c = Self.randomBytes(32)
        let keys = [a, a, b, a, c, c, c, b, b, a] + (0..<60).map { _ in [a, b, c][Int.random(in: 0...2)] }
        for (i, key) in keys.enumerated() {
            // A fresh array each time: the same key bytes at another address.
            let m = Message(key: Array(key), nonce: Self.randomBytes(12), ad: Self.randomBytes(16),
                            plain: Self.randomBytes(1420 - (i % 4) * 200))
            let ours = caeadSeal(m), sodium = sodiumSeal(m)
            // Booleans: a mismatch of 1,420-byte arrays would print both whole.
            XCTAssertTrue(ours.0 == sodium.0, "ciphertext differs from libsodium's, message \(i)")
            XCTAssertTrue(ours.1 == sodium.1, "tag differs from libsodium's, message \(i)")
            XCTAssertTrue(caeadOpen(m, sodium.0, sodium.1) == m.plain, "libsodium's message not opened, message \(i)")
        }
    }

    /// A rejected message (wrong tag, or a wrong key) does not disturb the next one under the right
    /// key; every way of computing block 0 (with the text in place or in the scratch, or alone:
    /// 1,024 and 3,000 bytes), and the lent bytes are given back on rejection too.
    func testARejectionDoesNotDisturbTheNextMessage() {
        for length in [1420, 1024, 3000] {
            for room in [0, 64] { rejectionDoesNotDisturbTheNextMessage(length: length, room: room) }
        }
    }

    private func rejectionDoesNotDisturbTheNextMessage(length: Int, room: Int) {
        let m = Message.random(length: length, adLength: 16)
        let (cipher, tag) = sodiumSeal(m)
        var badTag = tag
        badTag[0] ^= 0x40
        XCTAssertNil(caeadOpen(m, cipher, badTag, room: room))
        XCTAssertEqual(caeadOpen(m, cipher, tag, room: room), m.plain)
        var wrongKey = m
        wrongKey.key[0] ^= 0x01
        XCTAssertNil(caeadOpen(wrongKey, cipher, tag, room: room))
        XCTAssertEqual(caeadOpen(m, cipher, tag, room: room), m.plain)
        XCTAssertNil(caeadOpen(m, cipher, badTag, room: room))
        XCTAssertNil(caeadOpen(m, cipher, badTag, room: room))
        XCTAssertEqual(caeadOpen(m, cipher, tag, room: room), m.plain)
    }

    /// Every single-bit flip in ciphertext, tag or AAD is rejected, and a wrong key or nonce too.
    func testEveryBitFlipIsRejected() {
        let m = Message.random(length: 700, adLength: Frame.headerLength)
        let (cipher, tag) = caeadSeal(m)
        XCTAssertEqual(caeadOpen(m, cipher, tag), m.plain)
        var rejected = 0, tried = 0
        for i in 0..<(cipher.count * 8) {
            var c = cipher
            c[i / 8] ^= 1 << (i % 8)
            tried += 1
            if caeadOpen(m, c, tag, room: i % 2 == 0 ? 0 : 64) == nil { rejected += 1 }
        }
        for i in 0..<(tag.count * 8) {
            var t = tag
            t[i / 8] ^= 1 << (i % 8)
            tried += 1
            if caeadOpen(m, cipher, t) == nil { rejected += 1 }
        }
        for i in 0..<(m.ad.count * 8) {
            var f = m
            f.ad[i / 8] ^= 1 << (i % 8)
            tried += 1
            if caeadOpen(f, cipher, tag) == nil { rejected += 1 }
        }
        XCTAssertEqual(tried, (700 + 16 + 16) * 8)
        XCTAssertEqual(rejected, tried)
        var wrongKey = m
        wrongKey.key[31] ^= 0x80
        XCTAssertNil(caeadOpen(wrongKey, cipher, tag))
        var wrongNonce = m
        wrongNonce.nonce[0] ^= 1
        XCTAssertNil(caeadOpen(wrongNonce, cipher, tag))
        var shorter = m
        shorter.ad.removeLast()
        XCTAssertNil(caeadOpen(shorter, cipher, tag))
    }

    /// Threads sealing at once, each with its own key, each of which starts and ends; every result
    /// checked with libsodium.
    func testConcurrentThreadsWithDifferentKeys() {
        let threads = 4, perThread = 300
        let failures = LockedCounter()
        let done = DispatchGroup()
        for _ in 0..<threads {
            done.enter()
            let thread = Thread {
                defer { done.leave() }
                let key = Self.randomBytes(32)
                for i in 0..<perThread {
                    let m = Message(key: key, nonce: Self.randomBytes(12), ad: Self.randomBytes(16),
                                    plain: Self.randomBytes(1420 - (i % 3) * 500))
                    var tag = [UInt8](repeating: 0, count: 16)
                    let (text, rc) = Self.inPlace(m.plain, room: i % 2 == 0 ? 0 : 64, file: #filePath, line: #line) {
                        caead_seal($0, m.plain.count, &tag, m.ad, m.ad.count, m.nonce, m.key, i % 2 == 0 ? 0 : 64)
                    }
                    let (back, ok) = Self.inPlace(text) {
                        crypto_aead_chacha20poly1305_ietf_decrypt_detached(
                            $0, nil, $0, UInt64(text.count), tag, m.ad, 16, m.nonce, m.key)
                    }
                    if rc != Int32(CAEAD_OK) || ok != 0 || back != m.plain { failures.increment() }
                }
            }
            thread.start()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 30), .success)
        XCTAssertEqual(failures.value, 0)
    }

    /// Frames, short (a TCP acknowledgement) and long, carry exactly the bytes libsodium would have
    /// written, and open (lengths where block 0 joins the text's ChaCha20 call and where it does not),
    /// with room lent before the frame (the header, its AAD, among the borrowed bytes) and without.
    func testFrameBytesAreLibsodiums() throws {
        // The header (the AAD) and the ciphertext go to Poly1305 together: every length of a last
        // partial block (1,400-1,431), and ChaCha20's rest to each of its three codes, joined with
        // block 0 and not.
        for length in [0, 1, 15, 16, 17, 52, 200, 460, 960, 1024, 1100, 1217, 1472, 1985, 2200, 2305, 3000]
            + Array(1400...1431) {
            for room in [0, Frame.usefulRoomBefore] { try frameBytesAreLibsodiums(length: length, room: room) }
        }
    }

    private func frameBytesAreLibsodiums(length: Int, room: Int) throws {
        let (a, b) = try FrameTests.pair()
        let whole = UnsafeMutableRawBufferPointer.allocate(byteCount: room + length + Frame.overhead, alignment: 16)
        defer { whole.deallocate() }
        let lent = Self.randomBytes(room)
        if room > 0 { lent.withUnsafeBytes { whole.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: room) } }
        let buffer = UnsafeMutableRawBufferPointer(rebasing: whole[room...])
        let plain = Self.randomBytes(length)
        if length > 0 {
            plain.withUnsafeBytes { (buffer.baseAddress! + Frame.headerLength).copyMemory(from: $0.baseAddress!, byteCount: length) }
        }
        let counter: UInt64 = 0x0102_0304_0506
        let n = Frame.seal(type: .data, receiverIndex: a.remoteIndex, counter: counter, key: a,
                           buffer: buffer.baseAddress!, plaintextLength: length, roomBefore: room)
        XCTAssertTrue(Array(whole[..<room]) == lent, "lent bytes after seal, length \(length)")
        XCTAssertEqual(n, length + Frame.overhead)
        let frame = Array(buffer)
        let m = Message(key: a.sendKeyBytes, nonce: [0, 0, 0, 0] + withUnsafeBytes(of: counter.littleEndian) { Array($0) },
                        ad: Array(frame[0..<Frame.headerLength]), plain: plain)
        let (cipher, tag) = sodiumSeal(m)
        XCTAssertTrue(Array(frame[Frame.headerLength..<(Frame.headerLength + length)]) == cipher, "ciphertext, length \(length)")
        XCTAssertEqual(Array(frame[(Frame.headerLength + length)...]), tag, "length \(length)")
        let h = try XCTUnwrap(Frame.peekHeader(buffer.baseAddress!, length: n))
        XCTAssertEqual(Frame.open(header: h, key: b, buffer: buffer.baseAddress!, length: n, roomBefore: room), length)
        XCTAssertEqual(Array(buffer[Frame.headerLength..<(Frame.headerLength + length)]), plain)
        XCTAssertTrue(Array(whole[..<room]) == lent, "lent bytes after open, length \(length)")
    }
}

/// A counter several threads bump (failures seen off the test's thread).
private final class LockedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.lock(); count += 1; lock.unlock() }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
