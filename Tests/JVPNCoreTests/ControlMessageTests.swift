import XCTest
@testable import JVPNCore

final class ControlMessageTests: XCTestCase {
    private func roundTrip(_ m: ControlMessage, file: StaticString = #filePath, line: UInt = #line) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0xee, count: 64)
        let n = buf.withUnsafeMutableBytes { m.encode(into: $0.baseAddress!, capacity: 64) }
        XCTAssertEqual(n, m.encodedLength, file: file, line: line)
        XCTAssertLessThanOrEqual(n, ControlMessage.maxEncodedLength, file: file, line: line)
        let bytes = Array(buf[0..<n])
        let back = try bytes.withUnsafeBytes { try ControlMessage.decode($0) }
        XCTAssertEqual(back, m, file: file, line: line)
        return bytes
    }

    var samples: [ControlMessage] {
        let sid = try! SessionID(bytes: [1, 2, 3, 4, 5, 6, 7, 8])
        let nonce = ControlNonce.random()
        return [
            .probe(seq: 1, sentAtNs: 123_456_789, pathID: 3),
            .probeReply(seq: .max, sentAtNs: .max, pathID: .max),
            .reattachRequest(sessionID: sid, bindingVersion: 7, pathID: 2, nonce: nonce, reason: .linkDown),
            .reattachAck(sessionID: sid, bindingVersion: 8, nonce: nonce),
            .reject(reason: .staleVersion, nonce: nonce, bindingVersion: 9),
            .close(reason: .operatorRequest),
            .natHint(NATHint(address: [203, 0, 113, 7], port: 51820)!),
            .natHint(NATHint(address: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1], port: 1)!),
            .pathChallenge(data: 0x0102_0304_0506_0708),
            .pathResponse(data: .max),
            .pathMtu(pathID: 16, maxDatagram: 1252),
            .pathMtuAck(pathID: .max, maxDatagram: .max),
        ]
    }

    func testRoundTripAll() throws {
        for m in samples { _ = try roundTrip(m) }
        for r in ReasonCode.allCases {
            _ = try roundTrip(.close(reason: r))
            _ = try roundTrip(.reject(reason: r, nonce: .zero, bindingVersion: 1))
        }
    }

    func testLayout() throws {
        let bytes = try roundTrip(.probe(seq: 0x0102_0304, sentAtNs: 0x1112_1314_1516_1718, pathID: 0x2122_2324))
        XCTAssertEqual(bytes, [1, 4, 3, 2, 1, 0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, 0x24, 0x23, 0x22, 0x21])
        let close = try roundTrip(.close(reason: .peerClosed))
        XCTAssertEqual(close, [6, ReasonCode.peerClosed.wireCode])
        let hint = try roundTrip(.natHint(NATHint(address: [10, 0, 0, 1], port: 0x1234)!))
        XCTAssertEqual(hint, [7, 4, 10, 0, 0, 1, 0x12, 0x34], "address and port in network order")
        let reject = try roundTrip(.reject(reason: .staleVersion, nonce: .zero, bindingVersion: 0x0102))
        XCTAssertEqual(reject, [5, 24] + [UInt8](repeating: 0, count: 16) + [2, 1, 0, 0, 0, 0, 0, 0])
        let challenge = try roundTrip(.pathChallenge(data: 0x0807_0605_0403_0201))
        XCTAssertEqual(challenge, [8, 1, 2, 3, 4, 5, 6, 7, 8])
        let mtu = try roundTrip(.pathMtu(pathID: 0x0102_0304, maxDatagram: 1472))
        XCTAssertEqual(mtu, [10, 4, 3, 2, 1, 0xc0, 0x05])
        XCTAssertEqual(try roundTrip(.pathMtuAck(pathID: 0x0102_0304, maxDatagram: 1472)), [11, 4, 3, 2, 1, 0xc0, 0x05])
    }

    func testProbePaddingBothWays() throws {
        var buf = [UInt8](repeating: 0xee, count: 1500)
        let reply = ControlMessage.probeReply(seq: 1, sentAtNs: 2, pathID: 3)
        let n = buf.withUnsafeMutableBytes { reply.encode(into: $0.baseAddress!, capacity: 1500, paddedTo: 1200) }
        XCTAssertEqual(n, 1200)
        XCTAssertEqual(Set(buf[17..<1200]), [0], "padding is zeros")
        XCTAssertEqual(try buf[0..<n].withUnsafeBytes { try ControlMessage.decode($0) }, reply)
        // Other kinds are never padded.
        let close = ControlMessage.close(reason: .peerClosed)
        XCTAssertEqual(buf.withUnsafeMutableBytes { close.encode(into: $0.baseAddress!, capacity: 1500, paddedTo: 1200) }, 2)
    }

    func testReattachReasonsAreRestricted() throws {
        let sid = try SessionID(bytes: [1, 2, 3, 4, 5, 6, 7, 8])
        for r in ReasonCode.allCases {
            var buf = [UInt8](repeating: 0, count: 64)
            let m = ControlMessage.reattachRequest(sessionID: sid, bindingVersion: 1, pathID: 1, nonce: .zero, reason: r)
            let n = buf.withUnsafeMutableBytes { m.encode(into: $0.baseAddress!, capacity: 64) }
            let decoded = try? buf[0..<n].withUnsafeBytes { try ControlMessage.decode($0) }
            if r.isReattachReason { XCTAssertEqual(decoded, m) } else { XCTAssertNil(decoded, "\(r) accepted in a REATTACH") }
        }
        XCTAssertEqual(ReasonCode.allCases.filter(\.isReattachReason),
                       [.linkDown, .addressLost, .probeTimeout, .betterPath, .natRebind, .candidateAvailable])
    }

    func testEncodeCapacityTooSmall() {
        for m in samples {
            var buf = [UInt8](repeating: 0, count: 64)
            let n = buf.withUnsafeMutableBytes { m.encode(into: $0.baseAddress!, capacity: m.encodedLength - 1) }
            XCTAssertEqual(n, 0)
        }
    }

    func testGarbageIsAnError() {
        func decode(_ b: [UInt8]) -> ControlDecodeError? {
            do { _ = try b.withUnsafeBytes { try ControlMessage.decode($0) }; return nil } catch { return error as? ControlDecodeError }
        }
        XCTAssertEqual(decode([]), .empty)
        XCTAssertEqual(decode([0]), .unknownKind(0))
        XCTAssertEqual(decode([99, 1, 2]), .unknownKind(99))
        XCTAssertEqual(decode([1, 0, 0]), .wrongLength(kind: 1, expected: 17, actual: 3))
        XCTAssertEqual(decode([6]), .wrongLength(kind: 6, expected: 2, actual: 1))
        XCTAssertEqual(decode([6, 1, 0]), .wrongLength(kind: 6, expected: 2, actual: 3))
        XCTAssertEqual(decode([6, 0]), .unknownReason(0))
        XCTAssertEqual(decode([6, 250]), .unknownReason(250))
        XCTAssertEqual(decode([7, 5, 1, 2, 3, 4, 0, 0]), .badAddressFamily(5))
        XCTAssertEqual(decode([7, 6, 1, 2, 3, 4, 0, 0]), .wrongLength(kind: 7, expected: 20, actual: 8))
        XCTAssertEqual(decode([7]), .wrongLength(kind: 7, expected: 2, actual: 1))
        XCTAssertEqual(decode([10, 1, 0, 0, 0, 0x23, 0x02]), .datagramTooSmall(547), "smaller than any IPv4 path")
        XCTAssertNotNil(try? [UInt8]([10, 1, 0, 0, 0, 0x24, 0x02]).withUnsafeBytes { try ControlMessage.decode($0) }, "548 is IPv4's minimum")
        XCTAssertEqual(decode([11, 1, 0, 0, 0, 0xc0, 0x05, 0]), .wrongLength(kind: 11, expected: 7, actual: 8))
        // Probes tolerate padding.
        XCTAssertNil(decode([1] + [UInt8](repeating: 0, count: 16) + [UInt8](repeating: 0xaa, count: 100)))
        // Every truncation of every sample is an error, never a crash.
        for m in samples {
            guard let bytes = try? roundTrip(m) else { continue }
            for cut in 0..<bytes.count {
                XCTAssertNotNil(decode(Array(bytes[0..<cut])), "\(m) cut at \(cut)")
            }
        }
    }

    func testRandomNeverCrashes() {
        var rng = SeededRandom(seed: 7)
        var decoded = 0
        for _ in 0..<10_000 {
            let len = Int(rng.next() % 48)
            var b = [UInt8](repeating: 0, count: len)
            for i in 0..<len { b[i] = UInt8(truncatingIfNeeded: rng.next()) }
            if len > 0 { b[0] = UInt8(rng.next() % 13) }
            if let m = try? b.withUnsafeBytes({ try ControlMessage.decode($0) }) {
                decoded += 1
                // Whatever decodes re-encodes to a prefix of the input.
                var out = [UInt8](repeating: 0, count: 64)
                let n = out.withUnsafeMutableBytes { m.encode(into: $0.baseAddress!, capacity: 64) }
                XCTAssertEqual(Array(out[0..<n]), Array(b[0..<n]))
            }
        }
        XCTAssertGreaterThan(decoded, 0)
    }

    func testNonce() throws {
        let n = ControlNonce.random()
        XCTAssertEqual(try ControlNonce(bytes: n.bytes), n)
        XCTAssertNotEqual(ControlNonce.random(), n)
        XCTAssertThrowsError(try ControlNonce(bytes: [1]))
        XCTAssertNil(NATHint(address: [1, 2, 3], port: 1))
    }
}
