import Foundation
import XCTest
@testable import JVPNCore

final class StreamFramingTests: XCTestCase {
    private func next(_ bytes: [UInt8], offset: Int = 0, maxFrame: Int = StreamFraming.maxFrame) -> StreamFraming.Next {
        bytes.withUnsafeBytes { StreamFraming.next($0.baseAddress!, offset: offset, count: bytes.count, maxFrame: maxFrame) }
    }

    private func frame(_ type: UInt8, _ length: Int) -> [UInt8] {
        [type, 0, 0, 0] + [UInt8](repeating: 0x5a, count: length - 4)
    }

    func testFramesComeOutOneByOneWhateverTheChunking() {
        let messages = [frame(4, 32), frame(1, 160), frame(5, 49), frame(4, 1452), frame(2, 92), frame(3, 64), frame(4, 65507)]
        let stream = StreamFraming.encode(messages)
        XCTAssertEqual(stream.count, messages.map { $0.count + 2 }.reduce(0, +))
        // Delivered in chunks of every size from 1 byte up: the reader sees each message whole, in order.
        for chunk in [1, 2, 3, 5, 7, 64, 1000, 70_000] {
            var got: [[UInt8]] = []
            var buffer: [UInt8] = []
            var offset = 0
            var fed = 0
            while fed < stream.count || offset < buffer.count {
                if fed < stream.count {
                    buffer += stream[fed..<min(stream.count, fed + chunk)]
                    fed = min(stream.count, fed + chunk)
                }
                parse: while true {
                    switch next(buffer, offset: offset) {
                    case .frame(let start, let length):
                        got.append(Array(buffer[start..<(start + length)]))
                        offset = start + length
                    case .needMore(let total):
                        XCTAssertGreaterThan(offset + total, buffer.count, "needMore only when it is not all there")
                        break parse
                    case .violation(let v):
                        XCTFail("chunk \(chunk): \(v)")
                        return
                    }
                }
                if fed == stream.count && offset == buffer.count { break }
                if fed == stream.count, case .needMore = next(buffer, offset: offset) { XCTFail("truncated"); return }
            }
            XCTAssertEqual(got, messages, "chunk size \(chunk)")
        }
    }

    func testViolationsAreSeenFromTheHeadAlone() {
        // A length below the smallest message or above the largest: after the 2 prefix bytes.
        XCTAssertEqual(next([31, 0]), .violation(.tooShort(31)))
        XCTAssertEqual(next([0, 0]), .violation(.tooShort(0)))
        XCTAssertEqual(next([0xe4, 0xff]), .violation(.tooLong(65508)))
        XCTAssertEqual(next([0xff, 0xff]), .violation(.tooLong(65535)))
        // A reader may take less than the protocol's largest (an unauthenticated connection).
        XCTAssertEqual(next([0x01, 0x08], maxFrame: 2048), .violation(.tooLong(2049)))
        XCTAssertEqual(next([0x00, 0x08, 4], maxFrame: 2048), .needMore(total: 2050))
        // The type: after 3 bytes. HTTP, TLS and SSH are refused at once.
        XCTAssertEqual(next(Array("GET / HTTP/1.1\r\n".utf8)), .violation(.unknownType(UInt8(ascii: "T"))))
        XCTAssertEqual(next([0x16, 0x03, 0x01, 0x02, 0x00]), .violation(.wrongHandshakeLength(type: 1, length: 0x0316)), "TLS")
        XCTAssertEqual(next(Array("SSH-2.0-OpenSSH\r\n".utf8)), .violation(.unknownType(UInt8(ascii: "H"))))
        XCTAssertEqual(next([40, 0, 9]), .violation(.unknownType(9)))
        XCTAssertEqual(next([40, 0, 0]), .violation(.unknownType(0)))
        // Handshake messages have one size each.
        XCTAssertEqual(next([159, 0, 1]), .violation(.wrongHandshakeLength(type: 1, length: 159)))
        XCTAssertEqual(next([160, 0, 2]), .violation(.wrongHandshakeLength(type: 2, length: 160)))
        XCTAssertEqual(next([65, 0, 3]), .violation(.wrongHandshakeLength(type: 3, length: 65)))
        // Reserved bytes: after 6.
        XCTAssertEqual(next([32, 0, 4, 0, 1, 0]), .violation(.reservedBytes))
        XCTAssertEqual(next([32, 0, 4, 0, 0]), .needMore(total: 34))
        XCTAssertEqual(next([32, 0, 4]), .needMore(total: 34))
        XCTAssertEqual(next([32]), .needMore(total: 6))
        XCTAssertEqual(next([]), .needMore(total: 6))
    }

    func testPrefixIsLittleEndian() {
        var b = [UInt8](repeating: 0, count: 2)
        b.withUnsafeMutableBytes { StreamFraming.writePrefix(0x1234, to: $0.baseAddress!) }
        XCTAssertEqual(b, [0x34, 0x12])
        XCTAssertEqual(StreamFraming.encode([frame(4, 0xffe3)]).prefix(2), [0xe3, 0xff])
    }

    /// docs/PROTOCOL.md section 10.2: the stream carrying section 8's data frame and section 9's
    /// probe frame, and the heads a reader refuses.
    func testDocumentVectors() throws {
        let text = try String(contentsOf: VectorBlock.protocolDocument, encoding: .utf8)
        let v = VectorBlock.parse(text, tag: "stream-vectors")
        let main = VectorBlock.parse(text, tag: "vectors")
        let control = VectorBlock.parse(text, tag: "control-vectors")
        func hex(_ s: String?) throws -> [UInt8] { try XCTUnwrap(s.flatMap { HexCodec.decode($0) }) }
        let dataFrame = try hex(main["data_frame"]), probeFrame = try hex(control["probe_frame"])
        let stream = StreamFraming.encode([dataFrame, probeFrame])
        VectorBlock.assertMatches(v, [("stream", HexCodec.encode(stream))], label: "stream-vectors")
        XCTAssertEqual(next(stream), .frame(start: 2, length: dataFrame.count))
        XCTAssertEqual(next(stream, offset: 2 + dataFrame.count), .frame(start: 4 + dataFrame.count, length: probeFrame.count))
        let refusals: [(String, StreamFraming.Violation)] = [
            ("too_short", .tooShort(31)), ("too_long", .tooLong(65508)), ("unknown_type", .unknownType(0x47)),
            ("wrong_handshake_length", .wrongHandshakeLength(type: 1, length: 144)), ("reserved", .reservedBytes),
        ]
        for (name, violation) in refusals {
            XCTAssertEqual(next(try hex(v[name])), .violation(violation), name)
        }
    }
}
