import Glibc
import JVPNCore
import JVPNDaemon
import JVPNSystem
import XCTest

/// PrivateKeyFile checks on the opened file (root: chown to another uid needs it).
final class KeyFileTests: XCTestCase {
    private var dir = ""
    private let keyText = "+NonYI+vw3r4POLJk2HTRf+UkAVIjzVZxIrf3zcnQnQ=\n"

    override func setUpWithError() throws {
        dir = "/tmp/jvpn-keyfile-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileIO.createDirectories(dir, mode: 0o700)
    }

    override func tearDown() {
        for name in FileIO.list(dir) {
            let p = dir + "/" + name
            if rmdir(p) != 0 { unlink(p) }
        }
        rmdir(dir)
    }

    private func writeKey(_ name: String, mode: mode_t = 0o600) throws -> String {
        let path = dir + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        XCTAssertGreaterThanOrEqual(fd, 0)
        XCTAssertTrue(FileIO.write(keyText, to: fd))
        XCTAssertEqual(fchmod(fd, mode), 0)
        close(fd)
        return path
    }

    private func refusal(_ path: String) -> KeyFileError? {
        do {
            _ = try KeyLoading.readPrivateKeyFile(path)
            return nil
        } catch {
            return error
        }
    }

    func testOwnedMode0600IsAccepted() throws {
        let path = try writeKey("ok.key")
        let key = try KeyLoading.readPrivateKeyFile(path)
        XCTAssertEqual(key.base64, keyText.trimmingWhitespace)
    }

    func testSymlinkIsRefusedEvenToAGoodFile() throws {
        let target = try writeKey("target.key")
        let link = dir + "/link.key"
        XCTAssertEqual(symlink(target, link), 0)
        XCTAssertEqual(refusal(link), .symbolicLink(link))
        XCTAssertEqual(refusal(link)?.description, "key file \(link) is a symbolic link; set PrivateKeyFile to the file itself")
    }

    func testDirectoryAndFifoAreRefused() throws {
        let sub = dir + "/sub.key"
        XCTAssertEqual(mkdir(sub, 0o700), 0)
        XCTAssertEqual(refusal(sub), .notRegularFile(sub, .directory))
        // A FIFO without a writer would block a plain open forever; it must be refused at once.
        let fifo = dir + "/fifo.key"
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        XCTAssertEqual(refusal(fifo), .notRegularFile(fifo, .fifo))
        XCTAssertEqual(refusal(fifo)?.description, "key file \(fifo) is a FIFO, not a regular file")
    }

    func testGroupOrOtherBitsAreRefused() throws {
        for mode: mode_t in [0o640, 0o604, 0o620, 0o644] {
            let path = try writeKey("open\(String(mode, radix: 8)).key", mode: mode)
            XCTAssertEqual(refusal(path), .tooOpen(path, UInt32(mode)), String(mode, radix: 8))
        }
        let path = dir + "/open640.key"
        XCTAssertEqual(refusal(path)?.description, "key file \(path) has mode 640; it must be 0600 (chmod 600 \(path))")
    }

    func testOtherOwnerIsRefused() throws {
        guard geteuid() == 0 else { throw XCTSkip("chown to another uid needs root") }
        let path = try writeKey("uid1.key")
        XCTAssertEqual(chown(path, 1, 0), 0)
        XCTAssertEqual(refusal(path), .wrongOwner(path, owner: 1, expected: 0))
        XCTAssertEqual(refusal(path)?.description, "key file \(path) is owned by uid 1; it must be owned by uid 0 (chown 0 \(path))")
    }

    func testMissingFileAndBadContent() throws {
        XCTAssertEqual(refusal(dir + "/none.key"), .unreadable(dir + "/none.key", ENOENT))
        let path = dir + "/bad.key"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        XCTAssertTrue(FileIO.write("not a key\n", to: fd))
        close(fd)
        XCTAssertEqual(refusal(path), .invalid(path))
    }

    func testOwnerRuleFollowsTheEffectiveUser() {
        let regular = FileIO.Status(kind: .regular, owner: 1000, permissions: 0o600)
        XCTAssertNil(KeyLoading.refusal("k", regular, expectedOwner: 1000))
        XCTAssertEqual(KeyLoading.refusal("k", regular, expectedOwner: 0), .wrongOwner("k", owner: 1000, expected: 0))
        XCTAssertEqual(KeyLoading.refusal("k", FileIO.Status(kind: .socket, owner: 0, permissions: 0o600), expectedOwner: 0),
                       .notRegularFile("k", .socket))
    }
}
