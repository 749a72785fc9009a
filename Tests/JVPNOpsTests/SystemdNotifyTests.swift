import Foundation
import Glibc
import XCTest
@testable import JVPNOps

final class SystemdNotifyTests: XCTestCase {
    override func tearDown() {
        unsetenv("NOTIFY_SOCKET")
    }

    func testPathSocket() throws {
        let dir = try TestSockets.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rx = try TestSockets.unixReceiver(dir + "/notify")
        defer { close(rx) }
        setenv("NOTIFY_SOCKET", dir + "/notify", 1)
        XCTAssertTrue(SystemdNotify.ready(status: "jvpn0 up (client)"))
        XCTAssertEqual(TestSockets.receive(rx), "READY=1\nSTATUS=jvpn0 up (client)")
        XCTAssertTrue(SystemdNotify.status("session 9f3c ATTACHED"))
        XCTAssertEqual(TestSockets.receive(rx), "STATUS=session 9f3c ATTACHED")
        XCTAssertTrue(SystemdNotify.stopping())
        XCTAssertEqual(TestSockets.receive(rx), "STOPPING=1\nSTATUS=stopping")
    }

    func testAbstractSocket() throws {
        let name = "@jvpn-notify-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let rx = try TestSockets.unixReceiver(name)
        defer { close(rx) }
        setenv("NOTIFY_SOCKET", name, 1)
        XCTAssertTrue(SystemdNotify.ready(status: "up"))
        XCTAssertEqual(TestSockets.receive(rx), "READY=1\nSTATUS=up")
    }

    /// A status text with a newline must not smuggle in another assignment such as READY=1.
    func testStatusCannotInjectAssignments() throws {
        let dir = try TestSockets.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let rx = try TestSockets.unixReceiver(dir + "/notify")
        defer { close(rx) }
        setenv("NOTIFY_SOCKET", dir + "/notify", 1)
        XCTAssertTrue(SystemdNotify.status("x\nREADY=1"))
        XCTAssertEqual(TestSockets.receive(rx), "STATUS=x READY=1")
    }

    func testNoSocketIsANoOp() {
        unsetenv("NOTIFY_SOCKET")
        XCTAssertFalse(SystemdNotify.ready(status: "up"))
        setenv("NOTIFY_SOCKET", "relative/path", 1)
        XCTAssertFalse(SystemdNotify.stopping())
        setenv("NOTIFY_SOCKET", "/nonexistent-dir-\(getpid())/notify", 1)
        XCTAssertFalse(SystemdNotify.status("x"))
    }
}
