import Glibc
import XCTest
import JVPNSystem

final class ThreadingAndFileIOTests: XCTestCase {
    func testDetachedThreadRunsNamedAndSignals() throws {
        let done = Semaphore()
        let lock = Lock()
        var seenName = ""
        try DetachedThread.start(name: "jvpn-test-thread-long-name") {
            let name = (try? FileIO.read("/proc/thread-self/comm")).map { String(decoding: $0, as: UTF8.self) } ?? ""
            lock.withLock { seenName = name.trimmingWhitespace }
            done.signal()
        }
        XCTAssertTrue(done.wait(timeoutMs: 5000))
        XCTAssertEqual(lock.withLock { seenName }, "jvpn-test-threa")   // the kernel keeps 15 bytes
    }

    func testSemaphoreTimesOutAndCounts() {
        let s = Semaphore()
        let t0 = Clock.monotonicMilliseconds()
        XCTAssertFalse(s.wait(timeoutMs: 120))
        XCTAssertGreaterThanOrEqual(Clock.monotonicMilliseconds() - t0, 100)
        s.signal(); s.signal()
        XCTAssertTrue(s.wait(timeoutMs: 0))
        XCTAssertTrue(s.wait(timeoutMs: 0))
        XCTAssertFalse(s.wait(timeoutMs: 0))
    }

    func testFileIOReadsWritesAndRefusesOversizedFiles() throws {
        let dir = "/tmp/jvpn-fileio-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { FileIO.list(dir + "/a/b").forEach { unlink(dir + "/a/b/" + $0) }; rmdir(dir + "/a/b"); rmdir(dir + "/a"); rmdir(dir) }
        try FileIO.createDirectories(dir + "/a/b")
        try FileIO.createDirectories(dir + "/a/b")   // existing is fine
        let path = dir + "/a/b/f"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertTrue(FileIO.write(" héllo\n", to: fd))
        close(fd)
        XCTAssertEqual(try FileIO.readUTF8(path), " héllo\n")
        XCTAssertEqual(try FileIO.readUTF8(path)?.trimmingWhitespace, "héllo")
        XCTAssertThrowsError(try FileIO.read(path, maxBytes: 3)) { XCTAssertEqual(($0 as? FileIO.Failure)?.errno, EFBIG) }
        XCTAssertThrowsError(try FileIO.read(dir + "/missing")) { XCTAssertEqual(($0 as? FileIO.Failure)?.errno, ENOENT) }
        XCTAssertEqual(FileIO.list(dir + "/a/b"), ["f"])
        XCTAssertEqual(FileIO.directory(of: path), dir + "/a/b")
        XCTAssertEqual(FileIO.directory(of: "/f"), "/")
        XCTAssertEqual(FileIO.directory(of: "f"), "")
        let bad = [UInt8]([0xFF, 0xFE])
        let fd2 = open(path, O_WRONLY | O_TRUNC)
        _ = bad.withUnsafeBytes { write(fd2, $0.baseAddress, 2) }
        close(fd2)
        XCTAssertNil(try FileIO.readUTF8(path))   // not UTF-8: nil, not mangled text
    }
}
