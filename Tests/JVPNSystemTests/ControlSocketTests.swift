import Glibc
import JVPNSystem
import XCTest

/// The control socket is served from the daemon's main loop: silent, slow or greedy clients must
/// never make `serve` wait, and a real request is answered while they hang on.
final class ControlSocketTests: XCTestCase {
    private var path = ""

    override func setUp() {
        path = "/tmp/jvpn-ctl-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
    }

    override func tearDown() { unlink(path) }

    private func connectUnix() -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(path.utf8) + [0]) }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        XCTAssertEqual(rc, 0)
        return fd
    }

    /// Plays the daemon's main loop on its own thread: serve, then a short sleep, until stopped.
    private final class MainLoop: @unchecked Sendable {
        let listener: UnixControlListener
        let lock = Lock()
        var stop = false
        var rounds = 0
        var maxOpen = 0
        let finished = Semaphore()

        init(_ listener: UnixControlListener) throws {
            self.listener = listener
            try DetachedThread.start(name: "jvpn-test-main") { [self] in
                while !lock.withLock({ stop }) {
                    listener.serve(nowMs: Clock.monotonicMilliseconds()) { line in line == "ping" ? "pong\n" : "got \(line)\n" }
                    let open = listener.openConnections
                    lock.withLock { rounds += 1; maxOpen = max(maxOpen, open) }
                    usleep(2000)
                }
                finished.signal()
            }
        }

        func end() { lock.withLock { stop = true }; finished.wait(timeoutMs: 5000) }
    }

    func testSilentAndHalfLineClientsDoNotHoldUpARequest() throws {
        let listener = try UnixControlListener(path: path)
        let loop = try MainLoop(listener)
        defer { loop.end() }
        // More silent clients than the listener keeps, and one that sends half a line.
        var idle = (0..<(UnixControlListener.limits.maxConnections + 4)).map { _ in connectUnix() }
        let half = connectUnix()
        idle.append(half)
        defer { idle.forEach { close($0) } }
        XCTAssertEqual(send(half, "stat", 4, 0), 4)
        let roundsBefore = loop.lock.withLock { loop.rounds }
        // Under the old blocking serve this waited 2 s per silent client, far past this timeout.
        XCTAssertEqual(UnixControlClient.request(path: path, line: "ping", timeoutMs: 1000), "pong\n")
        XCTAssertEqual(UnixControlClient.request(path: path, line: "status", timeoutMs: 1000), "got status\n")
        XCTAssertGreaterThan(loop.lock.withLock { loop.rounds }, roundsBefore, "the loop kept turning")
        XCTAssertLessThanOrEqual(loop.lock.withLock { loop.maxOpen }, UnixControlListener.limits.maxConnections)
    }

    func testSilentClientIsClosedAfterItsDeadline() throws {
        let listener = try UnixControlListener(path: path)
        let silent = connectUnix()
        defer { close(silent) }
        let t0 = Clock.monotonicMilliseconds()
        listener.serve(nowMs: t0) { _ in "x\n" }
        XCTAssertEqual(listener.openConnections, 1)
        listener.serve(nowMs: t0 + UnixControlListener.limits.deadlineMs) { _ in "x\n" }
        XCTAssertEqual(listener.openConnections, 0)
        var b: UInt8 = 0
        XCTAssertEqual(recv(silent, &b, 1, 0), 0, "closed without a reply")
    }

    func testRequestSplitAcrossWritesAndOverlongLine() throws {
        let listener = try UnixControlListener(path: path)
        let slow = connectUnix()
        defer { close(slow) }
        let now = Clock.monotonicMilliseconds()
        XCTAssertEqual(send(slow, "pi", 2, 0), 2)
        listener.serve(nowMs: now) { $0 == "ping" ? "pong\n" : "?\n" }
        XCTAssertEqual(send(slow, "ng\n", 3, 0), 3)
        listener.serve(nowMs: now) { $0 == "ping" ? "pong\n" : "?\n" }
        var buf = [UInt8](repeating: 0, count: 64)
        XCTAssertEqual(recv(slow, &buf, buf.count, 0), 5)
        XCTAssertEqual(String(decoding: buf[0..<5], as: UTF8.self), "pong\n")

        let greedy = connectUnix()
        defer { close(greedy) }
        let long = [UInt8](repeating: 0x61, count: UnixControlListener.limits.maxRequestBytes + 10)
        XCTAssertEqual(send(greedy, long, long.count, 0), long.count)
        var called = false
        listener.serve(nowMs: now) { _ in called = true; return "" }
        XCTAssertFalse(called, "an overlong request never reaches the handler")
        let n = recv(greedy, &buf, buf.count, 0)
        XCTAssertEqual(String(decoding: buf[0..<max(0, n)], as: UTF8.self), "error: request too long\n")
    }
}
