import Foundation
import Glibc
import XCTest
@testable import JVPNOps

final class SyslogSinkTests: XCTestCase {
    let stateChange = #"{"ts":"2025-01-31T12:00:00.123Z","event":"STATE_CHANGE","side":"client","session":"9f3c01","peer":"Z0mdbhrp/GSnxyExvnG8bm3YFG54qSX8nMwhcB2/UVI=","from":"BIRTH","to":"ATTACHED","reason":"HANDSHAKE_OK","state_version":1}"#
    let security = #"{"ts":"2025-01-31T12:00:01.000Z","event":"SECURITY_EVENT","side":"server","session":"9f3c01","peer":"x","reason":"REPLAY_DETECTED","remote":"10.0.0.9:4000"}"#
    let audit = #"{"ts":"2025-01-31T12:00:02.000Z","event":"AUDIT_EVENT","side":"server","session":"9f3c01","peer":"x","check":"transition","result":"fail","detail":"BIRTH->DEGRADED"}"#

    /// Splits `<PRI>1 TS HOST APP PROCID MSGID SD MSG` and checks each header field.
    func assertRFC5424(_ message: String?, pri: Int, msgid: String, body: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        guard let message else { return XCTFail("no message received", file: file, line: line) }
        let parts = message.split(separator: " ", maxSplits: 7, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 8 else { return XCTFail("not 8 fields: \(message)", file: file, line: line) }
        XCTAssertEqual(parts[0], "<\(pri)>1", file: file, line: line)
        let ts = parts[1]
        XCTAssertNotNil(ts.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"#, options: .regularExpression),
                        "timestamp \(ts)", file: file, line: line)
        XCTAssertEqual(parts[2], "testhost", file: file, line: line)
        XCTAssertEqual(parts[3], "jvpn", file: file, line: line)
        XCTAssertEqual(parts[4], String(getpid()), file: file, line: line)
        XCTAssertEqual(parts[5], msgid, file: file, line: line)
        XCTAssertEqual(parts[6], "-", file: file, line: line)
        XCTAssertEqual(parts[7], body, "the JSON must be the MSG verbatim", file: file, line: line)
    }

    func testUDPLoopbackReceivesRFC5424() throws {
        let (rx, port) = try TestSockets.udpReceiver()
        defer { close(rx) }
        let sink = try SyslogSink(target: "udp://127.0.0.1:\(port)", hostname: "testhost")
        sink.send(jsonLine: stateChange + "\n", eventName: "STATE_CHANGE")
        assertRFC5424(TestSockets.receive(rx), pri: 3 * 8 + 6, msgid: "STATE_CHANGE", body: stateChange)
        sink.send(jsonLine: security, eventName: "SECURITY_EVENT")
        assertRFC5424(TestSockets.receive(rx), pri: 3 * 8 + 4, msgid: "SECURITY_EVENT", body: security)
        sink.send(jsonLine: audit, eventName: "AUDIT_EVENT")
        assertRFC5424(TestSockets.receive(rx), pri: 3 * 8 + 5, msgid: "AUDIT_EVENT", body: audit)
        XCTAssertEqual(sink.failures, 0)
        XCTAssertEqual(sink.sent, 3)
    }

    func testUDPIPv6Loopback() throws {
        let rx: (fd: Int32, port: UInt16)
        do { rx = try TestSockets.udpReceiver(ipv6: true) } catch { throw XCTSkip("no IPv6 loopback: \(error)") }
        defer { close(rx.fd) }
        let sink = try SyslogSink(target: "udp://[::1]:\(rx.port)", facility: .local0, hostname: "testhost")
        sink.send(jsonLine: stateChange, eventName: "TRANSPORT_SWITCH")
        assertRFC5424(TestSockets.receive(rx.fd), pri: 16 * 8 + 6, msgid: "TRANSPORT_SWITCH", body: stateChange)
    }

    func testUnixDatagramSocketReceives() throws {
        let dir = try TestSockets.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/log"
        let rx = try TestSockets.unixReceiver(path)
        defer { close(rx) }
        for target in ["unix:" + path, "unix://" + path] {
            let sink = try SyslogSink(target: target, hostname: "testhost")
            sink.send(jsonLine: security, eventName: "SECURITY_EVENT")
            assertRFC5424(TestSockets.receive(rx), pri: 28, msgid: "SECURITY_EVENT", body: security)
            XCTAssertEqual(sink.failures, 0)
        }
    }

    func testMissingReceiverIsCountedNotThrown() throws {
        let dir = try TestSockets.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sink = try SyslogSink(target: "unix:\(dir)/nobody-here")
        sink.send(jsonLine: stateChange, eventName: "STATE_CHANGE")
        sink.send(jsonLine: stateChange, eventName: "STATE_CHANGE")
        XCTAssertEqual(sink.failures, 2)
        XCTAssertEqual(sink.sent, 0)
    }

    /// A receiver that never reads fills its queue; the sender must neither block nor crash.
    func testFullReceiverQueueNeverBlocks() throws {
        let dir = try TestSockets.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rx = try TestSockets.unixReceiver(dir + "/log")
        defer { close(rx) }
        let sink = try SyslogSink(target: "unix:\(dir)/log")
        let start = Date()
        for _ in 0..<5000 { sink.send(jsonLine: stateChange, eventName: "STATE_CHANGE") }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        XCTAssertGreaterThan(sink.failures, 0, "a full queue must be counted")
        XCTAssertEqual(sink.failures + sink.sent, 5000)
    }

    func testBadTargetsAreTypedErrors() {
        let bad = ["", "tcp://127.0.0.1:514", "udp://127.0.0.1", "udp://localhost:514", "udp://::1:514",
                   "udp://127.0.0.1:0", "udp://127.0.0.1:70000", "udp://[::1:514", "unix:relative/path",
                   "unix:", "unix:/" + String(repeating: "x", count: 200)]
        for t in bad {
            XCTAssertThrowsError(try SyslogSink(target: t), t) { error in
                guard case OpsError.badSyslogTarget(let target, let why) = error else {
                    return XCTFail("\(t): \(error)")
                }
                XCTAssertEqual(target, t)
                XCTAssertFalse(why.isEmpty)
                XCTAssertTrue("\(error)".contains("EventSyslog = \(t)"))
            }
        }
    }

    func testHeaderFieldsAreSanitised() throws {
        let sink = try SyslogSink(target: "udp://127.0.0.1:514", hostname: "bad host\u{e9}")
        let m = sink.format(jsonLine: "{}", eventName: "", now: timespec(tv_sec: 0, tv_nsec: 5_000_000))
        XCTAssertTrue(m.hasPrefix("<30>1 1970-01-01T00:00:00.005Z badhost jvpn \(getpid()) - - {}"), m)
    }
}
