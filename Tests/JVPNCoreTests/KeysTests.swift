import XCTest
@testable import JVPNCore

final class KeysTests: XCTestCase {
    func testPrivateKeyRoundTrip() throws {
        let k = PrivateKey.generate()
        let b64 = k.base64
        XCTAssertEqual(b64.count, 44)
        let again = try PrivateKey(base64: b64)
        XCTAssertEqual(again.base64, b64)
        XCTAssertEqual(again.publicKey, k.publicKey)
        XCTAssertNotEqual(PrivateKey.generate().publicKey, k.publicKey)
    }

    func testPublicKeyRoundTrip() throws {
        let pub = PrivateKey.generate().publicKey
        let again = try PublicKey(base64: pub.base64)
        XCTAssertEqual(again, pub)
        XCTAssertEqual(again.hashValue, pub.hashValue)
        XCTAssertEqual(again.bytes.count, 32)
        XCTAssertEqual(try PublicKey(rawBytes: pub.bytes), pub)
    }

    func testWhitespaceAroundKeyIsIgnored() throws {
        let k = PrivateKey.generate()
        XCTAssertEqual(try PrivateKey(base64: "  " + k.base64 + "\n").base64, k.base64)
    }

    func testClampingMatchesWireGuard() throws {
        // An unclamped key is clamped on load; the public key is that of the clamped scalar.
        let raw = [UInt8](repeating: 0xff, count: 32)
        let k = try PrivateKey(rawBytes: raw)
        let clamped = try PrivateKey(rawBytes: [0xf8] + [UInt8](repeating: 0xff, count: 30) + [0x7f])
        XCTAssertEqual(k.base64, clamped.base64)
        XCTAssertEqual(k.publicKey, clamped.publicKey)
        // Known X25519 value (RFC 7748 section 6.1, Alice).
        let alice = try PrivateKey(rawBytes: HexCodec.decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")!)
        XCTAssertEqual(HexCodec.encode(alice.publicKey.bytes),
                       "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    }

    func testBadBase64() {
        for bad in ["", "not base64!", "AAAA*AAA", "====", String(repeating: "A", count: 43)] {
            XCTAssertThrowsError(try PrivateKey(base64: bad), bad) { e in
                XCTAssertTrue([KeyError.invalidBase64, .wrongLength(actual: 0)].contains(e as? KeyError), "\(bad): \(e)")
            }
            XCTAssertThrowsError(try PublicKey(base64: bad), bad)
        }
        // Trailing garbage after a valid key.
        let good = PrivateKey.generate().base64
        XCTAssertThrowsError(try PublicKey(base64: good + "x")) { XCTAssertEqual($0 as? KeyError, .invalidBase64) }
    }

    func testWrongLength() {
        // 16 bytes, 31 bytes, 33 bytes, 64 bytes of valid base64.
        for n in [16, 31, 33, 64] {
            let b64 = [UInt8](repeating: 0x41, count: n).withUnsafeBytes { KeyCodec.encodeBase64($0.baseAddress!, count: n) }
            XCTAssertThrowsError(try PrivateKey(base64: b64)) { XCTAssertEqual($0 as? KeyError, .wrongLength(actual: n)) }
            XCTAssertThrowsError(try PublicKey(base64: b64)) { XCTAssertEqual($0 as? KeyError, .wrongLength(actual: n)) }
        }
        XCTAssertThrowsError(try PrivateKey(rawBytes: [1, 2, 3])) { XCTAssertEqual($0 as? KeyError, .wrongLength(actual: 3)) }
        XCTAssertThrowsError(try PublicKey(rawBytes: [UInt8](repeating: 0, count: 33)))
    }

    func testCompatibleWithWireGuardTools() throws {
        // `wg genkey` / `wg pubkey` interoperability, when the tools are installed.
        let wg = "/usr/bin/wg"
        guard FileManager.default.isExecutableFile(atPath: wg) else { throw XCTSkip("wg not installed") }
        let gen = Process()
        gen.executableURL = URL(fileURLWithPath: wg)
        gen.arguments = ["genkey"]
        let out = Pipe()
        gen.standardOutput = out
        try gen.run()
        gen.waitUntilExit()
        let priv = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let pubProc = Process()
        pubProc.executableURL = URL(fileURLWithPath: wg)
        pubProc.arguments = ["pubkey"]
        let inPipe = Pipe(), outPipe = Pipe()
        pubProc.standardInput = inPipe
        pubProc.standardOutput = outPipe
        try pubProc.run()
        inPipe.fileHandleForWriting.write(Data((priv + "\n").utf8))
        try inPipe.fileHandleForWriting.close()
        pubProc.waitUntilExit()
        let pub = String(decoding: outPipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertEqual(try PrivateKey(base64: priv).publicKey.base64, pub)
    }
}
