import CSodium
import XCTest
@testable import JVPNCore

final class CryptoTests: XCTestCase {
    func testSodiumInitializeIsIdempotent() throws {
        try Sodium.initialize()
        try Sodium.initialize()
        XCTAssertTrue(Sodium.isReady)
    }

    func testSodiumInitializeConcurrently() {
        DispatchQueue.concurrentPerform(iterations: 16) { _ in
            do { try Sodium.initialize() } catch { XCTFail("\(error)") }
        }
    }

    func testInitSelectsOptimizedImplementations() throws {
        try Sodium.initialize()
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        guard cpuinfo.contains(" avx2") else { throw XCTSkip("CPU without AVX2") }
        XCTAssertEqual(sodium_runtime_has_avx2(), 1)
    }

    func testBlake2HashMatchesLibsodiumOneShot() {
        let input = Array("abc".utf8)
        var ours = [UInt8](repeating: 0, count: 32)
        var ref = [UInt8](repeating: 0, count: 32)
        input.withUnsafeBytes { i in ours.withUnsafeMutableBytes { Blake2.hash($0.baseAddress!, i) } }
        crypto_generichash(&ref, 32, input, UInt64(input.count), nil, 0)
        XCTAssertEqual(ours, ref)
        // Split input gives the same hash as the concatenation.
        var split = [UInt8](repeating: 0, count: 32)
        let a = Array("a".utf8), b = Array("bc".utf8)
        a.withUnsafeBytes { ab in b.withUnsafeBytes { bb in split.withUnsafeMutableBytes { Blake2.hash($0.baseAddress!, ab, bb) } } }
        XCTAssertEqual(split, ref)
    }

    func testKdfOutputsDifferAndAreDeterministic() {
        let ck = [UInt8](repeating: 7, count: 32)
        var o1 = [UInt8](repeating: 0, count: 96)
        var o2 = [UInt8](repeating: 0, count: 96)
        for out in [0, 1] {
            let input = Array("input".utf8)
            ck.withUnsafeBytes { c in
                input.withUnsafeBytes { i in
                    if out == 0 {
                        o1.withUnsafeMutableBytes { o in
                            Blake2.kdf(chainingKey: c.baseAddress!, input: i,
                                       outputs: [o.baseAddress!, o.baseAddress! + 32, o.baseAddress! + 64])
                        }
                    } else {
                        o2.withUnsafeMutableBytes { o in
                            Blake2.kdf(chainingKey: c.baseAddress!, input: i,
                                       outputs: [o.baseAddress!, o.baseAddress! + 32, o.baseAddress! + 64])
                        }
                    }
                }
            }
        }
        XCTAssertEqual(o1, o2)
        XCTAssertNotEqual(Array(o1[0..<32]), Array(o1[32..<64]))
        XCTAssertNotEqual(Array(o1[32..<64]), Array(o1[64..<96]))
    }

    func testSessionIDHexRoundTrip() throws {
        let s = SessionID.random()
        XCTAssertEqual(s.hex.count, 16)
        XCTAssertEqual(SessionID(hex: s.hex), s)
        XCTAssertNil(SessionID(hex: "zz"))
        XCTAssertNil(SessionID(hex: "0011223344556677zz"))
        XCTAssertNotEqual(SessionID.random(), SessionID.random())
        let fixed = try SessionID(bytes: [1, 2, 3, 4, 5, 6, 7, 8])
        XCTAssertEqual(fixed.hex, "0102030405060708")
        XCTAssertThrowsError(try SessionID(bytes: [1, 2, 3]))
    }

    func testNextCounterStopsAtLimit() throws {
        let kp = try XCTUnwrap(Keypair(sendKey: [UInt8](repeating: 1, count: 32), receiveKey: [UInt8](repeating: 2, count: 32),
                                       localIndex: 1, remoteIndex: 2, createdAt: 0, isInitiator: true))
        XCTAssertEqual(kp.nextCounter(), 0)
        XCTAssertEqual(kp.nextCounter(), 1)
        kp.sendCounter.pointee.store(MessageLimits.rejectAfterMessages - 1, ordering: .relaxed)
        XCTAssertEqual(kp.nextCounter(), MessageLimits.rejectAfterMessages - 1)
        for _ in 0..<10_000 { XCTAssertNil(kp.nextCounter()) }
        XCTAssertEqual(kp.messagesSent, MessageLimits.rejectAfterMessages)
        XCTAssertNil(Keypair(sendKey: [1], receiveKey: [], localIndex: 0, remoteIndex: 0, createdAt: 0, isInitiator: false))
    }

    func testNextCounterUniqueAcrossThreads() throws {
        let kp = try XCTUnwrap(Keypair(sendKey: [UInt8](repeating: 1, count: 32), receiveKey: [UInt8](repeating: 2, count: 32),
                                       localIndex: 1, remoteIndex: 2, createdAt: 0, isInitiator: true))
        let perThread = 10_000
        let results = UnsafeMutableBufferPointer<UInt64>.allocate(capacity: 4 * perThread)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: 4) { t in
            for i in 0..<perThread { results[t * perThread + i] = kp.nextCounter() ?? .max }
        }
        XCTAssertEqual(Set(results).count, 4 * perThread)
        XCTAssertEqual(Set(results), Set(0..<UInt64(4 * perThread)))
    }
}
