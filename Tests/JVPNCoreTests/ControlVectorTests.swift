import Foundation
import XCTest
@testable import JVPNCore

/// Recomputes the ```control-vectors block of docs/PROTOCOL.md (one control message of each kind,
/// its plaintext and its sealed type-5 frame) from the block's inputs, fails on any difference, and
/// decodes every plaintext of the document back to the message it was built from.
final class ControlVectorTests: XCTestCase {
    /// `name = value` lines of the first fenced block tagged `tag`; indented lines continue the
    /// previous value, `#` starts a comment line.
    enum VectorError: Error { case missing(String), encodeFailed(String), sealFailed(String) }

    /// The messages the block describes, in the order of their counters, with their names in the block.
    static func messages(from doc: [String: String]) throws -> [(name: String, message: ControlMessage, paddedTo: Int)] {
        func value(_ k: String) throws -> String {
            guard let v = doc[k] else { throw VectorError.missing(k) }
            return v
        }
        func hex(_ k: String) throws -> [UInt8] {
            guard let b = HexCodec.decode(try value(k)) else { throw VectorError.missing(k) }
            return b
        }
        func number<N: FixedWidthInteger>(_ k: String, as: N.Type = N.self) throws -> N {
            let v = try value(k)
            guard let n = v.hasPrefix("0x") ? N(v.dropFirst(2), radix: 16) : N(v) else { throw VectorError.missing(k) }
            return n
        }
        func reason(_ k: String) throws -> ReasonCode {
            guard let r = ReasonCode(rawValue: try value(k)) else { throw VectorError.missing(k) }
            return r
        }
        func hint(_ prefix: String) throws -> NATHint {
            guard let h = NATHint(address: try hex(prefix + "_address"), port: try number(prefix + "_port")) else {
                throw VectorError.missing(prefix + "_address")
            }
            return h
        }
        let sid = try SessionID(bytes: hex("session_id"))
        let nonce = try ControlNonce(bytes: hex("control_nonce"))
        let (seq, sentAt, pathID): (UInt32, UInt64, UInt32) = (try number("probe_seq"), try number("probe_sent_at_ns"),
                                                                try number("path_id"))
        // 8 opaque bytes on the wire; the code keeps them as the little-endian UInt64 they spell.
        let pathData = try hex("path_data").reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return [
            ("probe", .probe(seq: seq, sentAtNs: sentAt, pathID: pathID), 0),
            ("probe_reply", .probeReply(seq: seq, sentAtNs: sentAt, pathID: pathID), try number("probe_reply_padded_to")),
            ("reattach_request", .reattachRequest(sessionID: sid, bindingVersion: try number("reattach_binding_version"),
                                                  pathID: pathID, nonce: nonce, reason: try reason("reattach_reason")), 0),
            ("reattach_ack", .reattachAck(sessionID: sid, bindingVersion: try number("ack_binding_version"), nonce: nonce), 0),
            ("reject", .reject(reason: try reason("reject_reason"), nonce: nonce,
                               bindingVersion: try number("reject_binding_version")), 0),
            ("close", .close(reason: try reason("close_reason")), 0),
            ("nat_hint_v4", .natHint(try hint("nat_hint_v4")), 0),
            ("nat_hint_v6", .natHint(try hint("nat_hint_v6")), 0),
            ("path_challenge", .pathChallenge(data: pathData), 0),
            ("path_response", .pathResponse(data: pathData), 0),
            ("path_mtu", .pathMtu(pathID: pathID, maxDatagram: try number("path_mtu_max_datagram")), 0),
            ("path_mtu_ack", .pathMtuAck(pathID: pathID, maxDatagram: try number("path_mtu_max_datagram")), 0),
        ]
    }

    /// Each message's plaintext and frame, sealed with `send_key` to `receiver_index` at consecutive
    /// counters from `first_counter`.
    static func compute(from doc: [String: String]) throws -> [(String, String)] {
        guard let sendKey = doc["send_key"].flatMap(HexCodec.decode),
              let key = Keypair(sendKey: sendKey, receiveKey: [UInt8](repeating: 0, count: 32), localIndex: 0,
                                remoteIndex: 0, createdAt: 0, isInitiator: true) else { throw VectorError.missing("send_key") }
        guard let receiver = doc["receiver_index"].flatMap({ UInt32($0.dropFirst(2), radix: 16) }) else {
            throw VectorError.missing("receiver_index")
        }
        guard let firstCounter = doc["first_counter"].flatMap({ UInt64($0) }) else { throw VectorError.missing("first_counter") }
        var out: [(String, String)] = []
        for (i, m) in try messages(from: doc).enumerated() {
            let plain = try plaintext(m.message, paddedTo: m.paddedTo)
            var frame = [UInt8](repeating: 0, count: Frame.headerLength) + plain + [UInt8](repeating: 0, count: Frame.tagLength)
            let n = frame.withUnsafeMutableBytes {
                Frame.seal(type: .control, receiverIndex: receiver, counter: firstCounter + UInt64(i), key: key,
                           buffer: $0.baseAddress!, plaintextLength: plain.count)
            }
            guard n == frame.count else { throw VectorError.sealFailed(m.name) }
            out.append((m.name, HexCodec.encode(plain)))
            out.append((m.name + "_frame", HexCodec.encode(frame)))
        }
        return out
    }

    static func plaintext(_ m: ControlMessage, paddedTo: Int) throws -> [UInt8] {
        var b = [UInt8](repeating: 0, count: max(m.encodedLength, paddedTo))
        let n = b.withUnsafeMutableBytes { m.encode(into: $0.baseAddress!, capacity: $0.count, paddedTo: paddedTo) }
        guard n == b.count else { throw VectorError.encodeFailed("\(m)") }
        return b
    }

    func testDocumentControlVectorsMatchCode() throws {
        let text = try String(contentsOf: VectorBlock.protocolDocument, encoding: .utf8)
        let doc = VectorBlock.parse(text, tag: "control-vectors")
        XCTAssertGreaterThan(doc.count, 20, "control-vectors block not found in \(VectorBlock.protocolDocument.path)")
        let computed = try Self.compute(from: doc)
        VectorBlock.assertMatches(doc, computed, label: "control vectors")
    }

    /// The document's plaintexts decode to the messages they were built from, and its frames open
    /// with the send key (as the receiver holding it as its receive key would open them).
    func testDocumentControlVectorsDecode() throws {
        let text = try String(contentsOf: VectorBlock.protocolDocument, encoding: .utf8)
        let doc = VectorBlock.parse(text, tag: "control-vectors")
        guard let key = doc["send_key"].flatMap(HexCodec.decode),
              let receiver = doc["receiver_index"].flatMap({ UInt32($0.dropFirst(2), radix: 16) }),
              let receiving = Keypair(sendKey: [UInt8](repeating: 0, count: 32), receiveKey: key, localIndex: receiver,
                                      remoteIndex: 0, createdAt: 0, isInitiator: false) else {
            return XCTFail("control-vectors inputs missing")
        }
        for m in try Self.messages(from: doc) {
            guard let plain = doc[m.name].flatMap(HexCodec.decode), var frame = doc[m.name + "_frame"].flatMap(HexCodec.decode) else {
                XCTFail("\(m.name): no vector in the document"); continue
            }
            XCTAssertEqual(plain.withUnsafeBytes { try? ControlMessage.decode($0) }, m.message, m.name)
            let opened = frame.withUnsafeMutableBytes { p -> Int? in
                guard let h = Frame.peekHeader(UnsafeRawPointer(p.baseAddress!), length: p.count), h.type == .control else { return nil }
                return Frame.open(header: h, key: receiving, buffer: p.baseAddress!, length: p.count)
            }
            XCTAssertEqual(opened, plain.count, m.name)
            XCTAssertEqual(Array(frame.dropFirst(Frame.headerLength).prefix(plain.count)), plain, m.name)
        }
    }

    func testBlockParserReadsOnlyItsOwnBlock() {
        let doc = "```vectors\na = 1\n```\n```control-vectors\n# c\nb = 0011\n    2233\n```\n```control-vectors\nc = 1\n```\n"
        let v = VectorBlock.parse(doc, tag: "control-vectors")
        XCTAssertNil(v["a"])
        XCTAssertEqual(v["b"], "00112233")
        XCTAssertNil(v["c"], "only the first control-vectors block counts")
    }
}
