import CChecksum
import XCTest
@testable import JVPNCore

/// The Internet checksum (CChecksum: AVX2 where the CPU has it, else native-order 64-bit words)
/// against RFC 1071's definition (big-endian 16-bit words, end-around carry), over random lengths,
/// offsets and contents, including the all-ones words that exercise the carries and the all-zero
/// buffer whose sum must stay zero; both kernels, and the copying forms.
final class ChecksumTests: XCTestCase {
    /// RFC 1071, word by word.
    private func reference(_ bytes: [UInt8], initial: UInt64) -> UInt16 {
        var acc = initial
        var i = 0
        while i + 1 < bytes.count {
            acc += UInt64(bytes[i]) << 8 | UInt64(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { acc += UInt64(bytes[i]) << 8 }
        return Checksum.fold(acc)
    }

    private func sum(_ bytes: [UInt8], offset: Int, initial: UInt64) -> UInt16 {
        // At `offset` within a larger buffer: unaligned loads.
        var buffer = [UInt8](repeating: 0xa5, count: offset) + bytes
        return buffer.withUnsafeMutableBytes { Checksum.fold(Checksum.sum($0.baseAddress! + offset, bytes.count, initial: initial)) }
    }

    func testMatchesRFC1071() {
        var rng = SeededRandom(seed: 1071)
        var carriesSeen = 0
        for round in 0..<3000 {
            // Mostly packet sizes; every 50th round up to the largest TSO super-packet.
            let length = Int(round % 50 == 49 ? rng.next() % 65_536 : rng.next() % 1600)
            let bytes: [UInt8]
            switch round % 4 {
            case 0: bytes = [UInt8](repeating: 0xff, count: length)
            case 1: bytes = (0..<length).map { _ in rng.next() % 8 == 0 ? 0 : 0xff }
            default: bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            }
            let initial = round % 3 == 0 ? rng.next() % (1 << 40) : 0
            let offset = Int(rng.next() % 8)
            XCTAssertEqual(sum(bytes, offset: offset, initial: initial), reference(bytes, initial: initial),
                           "length \(length), offset \(offset), round \(round)")
            if length >= 16 && round % 4 < 2 { carriesSeen += 1 }
        }
        XCTAssertGreaterThan(carriesSeen, 1000)
        for length in [0, 1, 2, 3, 7, 8, 9, 20, 1500] {
            XCTAssertEqual(sum([UInt8](repeating: 0, count: length), offset: 0, initial: 0), 0, "all zero, length \(length)")
        }
        // A known value: RFC 1071's example bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        XCTAssertEqual(sum([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7], offset: 3, initial: 0), 0xddf2)
    }

    /// Every length 0...300 (each of the vector loop's and the tail's ends) and random ones up to
    /// 64 KiB, at every source alignment modulo 8: the portable kernel, the dispatched one and
    /// both copying forms agree with RFC 1071, and a copy writes exactly its bytes.
    func testKernelsAndCopiesMatchRFC1071() {
        var rng = SeededRandom(seed: 1624)
        let lengths = Array(0...300) + (0..<60).map { _ in Int(rng.next() % 65_536) }
        for (n, length) in lengths.enumerated() {
            let bytes: [UInt8] = n % 5 == 0 ? [UInt8](repeating: 0xff, count: length)
                                            : (0..<length).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            let offset = n % 8
            let expected = reference(bytes, initial: 0)
            var source = [UInt8](repeating: 0x5a, count: offset) + bytes
            // Guard bytes around the destination: a copy must not touch them.
            var destination = [UInt8](repeating: 0xc3, count: length + 2 * 32)
            source.withUnsafeMutableBytes { src in
                let p = UnsafeRawPointer(src.baseAddress! + offset)
                XCTAssertEqual(Checksum.fold(Checksum.bigEndianSum(cchecksum_sum_words(p, length))), expected, "words, length \(length)")
                XCTAssertEqual(Checksum.fold(Checksum.sum(p, length)), expected, "dispatched, length \(length)")
                destination.withUnsafeMutableBytes { dst in
                    let d = dst.baseAddress! + 32 - offset % 3
                    XCTAssertEqual(Checksum.fold(Checksum.bigEndianSum(cchecksum_copy_sum_words(d, p, length))), expected,
                                   "copying words, length \(length)")
                    XCTAssertTrue(memcmp(d, p, length) == 0, "copied words, length \(length)")
                    d.initializeMemory(as: UInt8.self, repeating: 0xc3, count: length)
                    XCTAssertEqual(Checksum.fold(Checksum.copyAndSum(to: d, from: p, count: length)), expected,
                                   "copying, length \(length)")
                    XCTAssertTrue(memcmp(d, p, length) == 0, "copied, length \(length)")
                    let before = dst.prefix(32 - offset % 3), after = dst.suffix(from: 32 - offset % 3 + length)
                    XCTAssertTrue(before.allSatisfy { $0 == 0xc3 } && after.allSatisfy { $0 == 0xc3 }, "guard bytes, length \(length)")
                }
            }
        }
    }
}
