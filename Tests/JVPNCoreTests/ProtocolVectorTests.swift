import Foundation
import XCTest
@testable import JVPNCore

/// Recomputes the test vectors of docs/PROTOCOL.md from their inputs and compares them with the hex in
/// the document, so the document and the code cannot drift apart.
final class ProtocolVectorTests: XCTestCase {
    /// Inputs are read from the document; the outputs are computed here.
    static func compute(from doc: [String: String]) throws -> [(String, String)] {
        func hex(_ k: String) throws -> [UInt8] {
            guard let v = doc[k], let b = HexCodec.decode(v) else { throw VectorError.missing(k) }
            return b
        }
        func u32(_ k: String) throws -> UInt32 {
            guard let v = doc[k], let n = UInt32(v.dropFirst(v.hasPrefix("0x") ? 2 : 0), radix: 16) else { throw VectorError.missing(k) }
            return n
        }
        func u64(_ k: String) throws -> UInt64 {
            guard let v = doc[k], let n = UInt64(v) else { throw VectorError.missing(k) }
            return n
        }
        let iStatic = try PrivateKey(rawBytes: hex("initiator_static_private"))
        let rStatic = try PrivateKey(rawBytes: hex("responder_static_private"))
        let iEph = try PrivateKey(rawBytes: hex("initiator_ephemeral_private"))
        let rEph = try PrivateKey(rawBytes: hex("responder_ephemeral_private"))
        let iIndex = try u32("initiator_index")
        let rIndex = try u32("responder_index")
        let ts = Timestamp12(unixNanoseconds: try u64("timestamp_unix_ns"))
        let sid = try SessionID(bytes: hex("session_id"))
        let plaintext = try hex("data_plaintext")
        let counter = try u64("data_counter")
        let cookieSecret = try hex("cookie_secret")
        guard let cookieNonce = CookieNonce(bytes: try hex("cookie_nonce")),
              let sourceAddress = IPAddress(networkBytes: try hex("cookie_source_address")),
              let sourcePort = doc["cookie_source_port"].flatMap({ UInt16($0) }) else { throw VectorError.missing("cookie_*") }
        let source = HandshakeSource(address: sourceAddress, port: sourcePort)

        let (initiation, ini) = try Handshake.makeInitiation(local: iStatic, remote: rStatic.publicKey, sessionID: sid,
                                                             localIndex: iIndex, timestamp: ts, ephemeral: iEph)
        let rx = try initiation.withUnsafeBytes {
            try Handshake.consumeInitiation($0, local: rStatic, isAuthorized: { $0 == iStatic.publicKey })
        }
        let (response, rKP) = try rx.makeResponse(localIndex: rIndex, now: 0, ephemeral: rEph)
        let iKP = try response.withUnsafeBytes { try ini.consumeResponse($0, now: 0) }
        guard iKP.sendKeyBytes == rKP.receiveKeyBytes, iKP.receiveKeyBytes == rKP.sendKeyBytes else {
            throw VectorError.keysDisagree
        }

        var frame = [UInt8](repeating: 0, count: plaintext.count + Frame.overhead)
        frame.replaceSubrange(Frame.headerLength..<(Frame.headerLength + plaintext.count), with: plaintext)
        let n = frame.withUnsafeMutableBytes {
            Frame.seal(type: .data, receiverIndex: iKP.remoteIndex, counter: counter, key: iKP,
                       buffer: $0.baseAddress!, plaintextLength: plaintext.count)
        }
        // And back, as the responder would.
        var opened = frame
        let m = opened.withUnsafeMutableBytes { (p: UnsafeMutableRawBufferPointer) -> Int? in
            guard let h = Frame.peekHeader(p.baseAddress!, length: n) else { return nil }
            return Frame.open(header: h, key: rKP, buffer: p.baseAddress!, length: n)
        }
        guard m == plaintext.count, Array(opened[16..<(16 + plaintext.count)]) == plaintext else {
            throw VectorError.frameDoesNotOpen
        }

        // Under load: the gateway answers the initiation with a cookie reply; the initiator opens it
        // and sends the same initiation again (same ephemeral and timestamp here), now with mac2.
        let checker = CookieChecker(localPublicKey: rStatic.publicKey, nowMs: 0, secret: cookieSecret)
        let cookie = checker.cookie(for: source)
        var reply = [UInt8](repeating: 0, count: Cookie.replyLength)
        initiation.withUnsafeBytes { i in
            reply.withUnsafeMutableBytes { checker.writeReply(to: i.baseAddress!, source: source, nonce: cookieNonce, into: $0.baseAddress!) }
        }
        let opened3 = try reply.withUnsafeBytes {
            try Cookie.openReply($0, responder: rStatic.publicKey, receiverIndex: iIndex, mac1: ini.mac1)
        }
        let (withMac2, _) = try Handshake.makeInitiation(local: iStatic, remote: rStatic.publicKey, sessionID: sid,
                                                         localIndex: iIndex, timestamp: ts, cookie: opened3, ephemeral: iEph)
        guard opened3 == cookie, Array(withMac2[0..<Handshake.iMac2]) == Array(initiation[0..<Handshake.iMac2]),
              withMac2.withUnsafeBytes({ checker.isValidMac2($0.baseAddress!, source: source) }) else {
            throw VectorError.cookieRoundTripFails
        }

        return [
            ("initiator_static_public", HexCodec.encode(iStatic.publicKey.bytes)),
            ("responder_static_public", HexCodec.encode(rStatic.publicKey.bytes)),
            ("initiator_static_public_base64", iStatic.publicKey.base64),
            ("responder_static_public_base64", rStatic.publicKey.base64),
            ("timestamp12", HexCodec.encode(ts.bytes)),
            ("initiation", HexCodec.encode(initiation)),
            ("response", HexCodec.encode(response)),
            ("initiator_send_key", HexCodec.encode(iKP.sendKeyBytes)),
            ("initiator_receive_key", HexCodec.encode(iKP.receiveKeyBytes)),
            ("data_frame", HexCodec.encode(frame[0..<n])),
            ("cookie", HexCodec.encode(cookie.bytes)),
            ("cookie_reply", HexCodec.encode(reply)),
            ("initiation_mac2", HexCodec.encode(withMac2[Handshake.iMac2...])),
        ]
    }

    enum VectorError: Error { case missing(String), keysDisagree, frameDoesNotOpen, cookieRoundTripFails }

    func testDocumentVectorsMatchCode() throws {
        let text = try String(contentsOf: VectorBlock.protocolDocument, encoding: .utf8)
        let doc = VectorBlock.parse(text, tag: "vectors")
        XCTAssertGreaterThan(doc.count, 10, "vectors block not found in \(VectorBlock.protocolDocument.path)")
        let computed = try Self.compute(from: doc)
        VectorBlock.assertMatches(doc, computed, label: "vectors")
    }

    func testVectorParserHandlesContinuations() {
        let doc = "x\n```vectors\n# c\na = 0011\n    2233\nb = ff\n```\n```vectors\nc = 1\n```\n"
        let v = VectorBlock.parse(doc, tag: "vectors")
        XCTAssertEqual(v["a"], "00112233")
        XCTAssertEqual(v["b"], "ff")
        XCTAssertNil(v["c"], "only the first vectors block counts")
    }

    func testSizesMatchDocument() {
        XCTAssertEqual(Handshake.initiationLength, 160)
        XCTAssertEqual(Handshake.responseLength, 92)
        XCTAssertEqual(Cookie.replyLength, 64)
        XCTAssertEqual(Frame.overhead, 32)
        XCTAssertEqual(Handshake.initialChain.ck.count, 32)
    }
}
