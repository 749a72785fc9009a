import XCTest
@testable import JVPNCore

final class FrameTests: XCTestCase {
    /// A matching pair of keypairs from a real handshake: a (client) sends to b (server).
    static func pair() throws -> (a: Keypair, b: Keypair) {
        let c = PrivateKey.generate(), s = PrivateKey.generate()
        let (msg, ini) = try Handshake.makeInitiation(local: c, remote: s.publicKey, sessionID: .random(),
                                                      localIndex: 0x1111, timestamp: Timestamp12(unixNanoseconds: 1))
        let rx = try msg.withUnsafeBytes { try Handshake.consumeInitiation($0, local: s, isAuthorized: { _ in true }) }
        let (resp, b) = try rx.makeResponse(localIndex: 0x2222, now: 0)
        let a = try resp.withUnsafeBytes { try ini.consumeResponse($0, now: 0) }
        return (a, b)
    }

    var buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 70_000, alignment: 16)
    override func tearDown() { buffer.deallocate() }

    private func sealFrom(_ kp: Keypair, _ payload: [UInt8], type: MessageType = .data, counter: UInt64? = nil) -> Int {
        payload.withUnsafeBytes { (buffer.baseAddress! + Frame.headerLength).copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return Frame.seal(type: type, receiverIndex: kp.remoteIndex, counter: counter ?? kp.nextCounter()!, key: kp,
                          buffer: buffer.baseAddress!, plaintextLength: payload.count)
    }

    private func openAt(_ kp: Keypair, length: Int) -> [UInt8]? {
        guard let h = Frame.peekHeader(buffer.baseAddress!, length: length),
              let n = Frame.open(header: h, key: kp, buffer: buffer.baseAddress!, length: length) else { return nil }
        return Array(UnsafeRawBufferPointer(start: buffer.baseAddress! + Frame.headerLength, count: n))
    }

    func testSealOpenRoundTrip() throws {
        let (a, b) = try Self.pair()
        for size in [0, 1, 20, 1420, Frame.maxPlaintext] {
            let payload = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31) }
            let n = sealFrom(a, payload)
            XCTAssertEqual(n, size + Frame.overhead)
            let h = try XCTUnwrap(Frame.peekHeader(buffer.baseAddress!, length: n))
            XCTAssertEqual(h.type, .data)
            XCTAssertEqual(h.receiverIndex, b.localIndex)
            XCTAssertEqual(openAt(b, length: n), payload)
            XCTAssertTrue(b.replay.update(h.counter))
        }
        // And the other direction, control type.
        let n = sealFrom(b, [5, 6, 7], type: .control)
        XCTAssertEqual(Frame.peekHeader(buffer.baseAddress!, length: n)?.type, .control)
        XCTAssertEqual(openAt(a, length: n), [5, 6, 7])
    }

    func testHeaderLayout() throws {
        let (a, _) = try Self.pair()
        let n = sealFrom(a, [], counter: 0x0102_0304_0506_0708)
        let bytes = Array(UnsafeRawBufferPointer(start: buffer.baseAddress!, count: n))
        XCTAssertEqual(Array(bytes[0..<16]), [4, 0, 0, 0, 0x22, 0x22, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1])
        XCTAssertEqual(n, 32)
    }

    func testTamperedByteFails() throws {
        let (a, b) = try Self.pair()
        let payload = [UInt8](repeating: 0xab, count: 100)
        let n = sealFrom(a, payload)
        let original = Array(UnsafeRawBufferPointer(start: buffer.baseAddress!, count: n))
        for i in 0..<n {
            original.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: n) }
            buffer[i] ^= 0x10
            XCTAssertNil(openAt(b, length: n), "byte \(i)")
        }
        // The untouched frame still opens (failures did not consume anything).
        original.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: n) }
        XCTAssertEqual(openAt(b, length: n), payload)
    }

    func testTruncatedAndOversized() throws {
        let (a, b) = try Self.pair()
        let n = sealFrom(a, [UInt8](repeating: 1, count: 64))
        for len in [0, 1, 15, 16, 31, n - 1] {
            XCTAssertNil(openAt(b, length: len), "len \(len)")
        }
        XCTAssertNil(Frame.peekHeader(buffer.baseAddress!, length: Frame.maxFrame + 1))
        let h = Frame.peekHeader(buffer.baseAddress!, length: n)!
        XCTAssertNil(Frame.open(header: h, key: b, buffer: buffer.baseAddress!, length: Frame.maxFrame + 1))
        // Seal refuses plaintext that would not fit in a frame.
        XCTAssertEqual(Frame.seal(type: .data, receiverIndex: 1, counter: 1, key: a, buffer: buffer.baseAddress!,
                                  plaintextLength: Frame.maxPlaintext + 1), 0)
        XCTAssertEqual(Frame.seal(type: .data, receiverIndex: 1, counter: 1, key: a, buffer: buffer.baseAddress!,
                                  plaintextLength: -1), 0)
        XCTAssertEqual(Frame.seal(type: .initiation, receiverIndex: 1, counter: 1, key: a, buffer: buffer.baseAddress!,
                                  plaintextLength: 0), 0)
        XCTAssertEqual(Frame.seal(type: .data, receiverIndex: 1, counter: MessageLimits.rejectAfterMessages, key: a,
                                  buffer: buffer.baseAddress!, plaintextLength: 0), 0)
    }

    func testWrongKeyOrIndexFails() throws {
        let (a, b) = try Self.pair()
        let (_, other) = try Self.pair()
        let n = sealFrom(a, [1, 2, 3])
        let saved = Array(UnsafeRawBufferPointer(start: buffer.baseAddress!, count: n))
        let h = try XCTUnwrap(Frame.peekHeader(buffer.baseAddress!, length: n))
        XCTAssertNil(Frame.open(header: h, key: other, buffer: buffer.baseAddress!, length: n)) // index mismatch
        XCTAssertNil(Frame.open(header: h, key: a, buffer: buffer.baseAddress!, length: n)) // our own send key's peer index
        // Right index, wrong key.
        let sameIndexWrongKey = try XCTUnwrap(Keypair(sendKey: [UInt8](repeating: 0, count: 32),
                                                      receiveKey: [UInt8](repeating: 9, count: 32),
                                                      localIndex: b.localIndex, remoteIndex: 0, createdAt: 0,
                                                      isInitiator: false))
        XCTAssertNil(Frame.open(header: h, key: sameIndexWrongKey, buffer: buffer.baseAddress!, length: n))
        // A header edited to claim another counter fails authentication.
        var h2 = h
        h2.counter += 1
        XCTAssertNil(Frame.open(header: h2, key: b, buffer: buffer.baseAddress!, length: n))
        // libsodium wipes the output of a failed in-place open, so restore the frame first.
        saved.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: n) }
        XCTAssertNotNil(Frame.open(header: h, key: b, buffer: buffer.baseAddress!, length: n))
    }

    func testPeekHeaderRejectsBadTypesAndReserved() throws {
        let (a, _) = try Self.pair()
        let n = sealFrom(a, [1])
        for t: UInt8 in [0, 1, 2, 3, 6, 255] {
            buffer[0] = t
            XCTAssertNil(Frame.peekHeader(buffer.baseAddress!, length: n), "type \(t)")
        }
        buffer[0] = 4
        XCTAssertNotNil(Frame.peekHeader(buffer.baseAddress!, length: n))
        for r in 1...3 {
            buffer[r] = 1
            XCTAssertNil(Frame.peekHeader(buffer.baseAddress!, length: n))
            buffer[r] = 0
        }
    }

    func testClassify() {
        XCTAssertEqual(Frame.classify(1), .initiation)
        XCTAssertEqual(Frame.classify(2), .response)
        XCTAssertEqual(Frame.classify(3), .cookieReply)
        XCTAssertEqual(Frame.classify(4), .data)
        XCTAssertEqual(Frame.classify(5), .control)
        XCTAssertNil(Frame.classify(0))
        XCTAssertNil(Frame.classify(UnsafeRawBufferPointer(start: nil, count: 0)))
    }

    func testReplayCheckedAfterOpen() throws {
        let (a, b) = try Self.pair()
        let n = sealFrom(a, [9, 9])
        let saved = Array(UnsafeRawBufferPointer(start: buffer.baseAddress!, count: n))
        let h = try XCTUnwrap(Frame.peekHeader(buffer.baseAddress!, length: n))
        XCTAssertNotNil(Frame.open(header: h, key: b, buffer: buffer.baseAddress!, length: n))
        XCTAssertTrue(b.replay.update(h.counter))
        saved.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: n) }
        XCTAssertNotNil(Frame.open(header: h, key: b, buffer: buffer.baseAddress!, length: n))
        XCTAssertFalse(b.replay.update(h.counter), "a replayed frame opens but fails freshness")
        // A forged frame with a fresh counter fails open and leaves that counter usable.
        var forged = saved
        forged[8] = 0x33
        forged.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress!, byteCount: n) }
        let fh = try XCTUnwrap(Frame.peekHeader(buffer.baseAddress!, length: n))
        XCTAssertNil(Frame.open(header: fh, key: b, buffer: buffer.baseAddress!, length: n))
        XCTAssertTrue(b.replay.check(fh.counter))
    }

    func testRandomInputNeverCrashes() throws {
        let (_, b) = try Self.pair()
        var rng = SeededRandom(seed: 0x5eed)
        var opened = 0
        for _ in 0..<10_000 {
            let len = Int(rng.next() % 2000)
            for i in 0..<len { buffer[i] = UInt8(truncatingIfNeeded: rng.next()) }
            // Make about half plausible so that the AEAD path runs too.
            if rng.next() & 1 == 0, len >= 8 {
                buffer[0] = 4 + UInt8(rng.next() & 1)
                buffer[1] = 0; buffer[2] = 0; buffer[3] = 0
                buffer.storeBytes(of: b.localIndex.littleEndian, toByteOffset: 4, as: UInt32.self)
            }
            _ = Frame.classify(UnsafeRawBufferPointer(rebasing: buffer[0..<len]))
            if let h = Frame.peekHeader(buffer.baseAddress!, length: len),
               Frame.open(header: h, key: b, buffer: buffer.baseAddress!, length: len) != nil {
                opened += 1
            }
            _ = try? ControlMessage.decode(UnsafeRawBufferPointer(rebasing: buffer[0..<min(len, 64)]))
        }
        XCTAssertEqual(opened, 0)
    }

    func testSealIsAllocationFreeShapeAndFast() throws {
        // Not a benchmark: a sanity check that the per-packet path is cheap enough.
        let (a, b) = try Self.pair()
        let payload = [UInt8](repeating: 0x42, count: 1400)
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<2000 {
            let n = sealFrom(a, payload)
            XCTAssertNotNil(openAt(b, length: n))
        }
        let perPacket = (DispatchTime.now().uptimeNanoseconds - start) / 2000
        XCTAssertLessThan(perPacket, 200_000)
    }
}
