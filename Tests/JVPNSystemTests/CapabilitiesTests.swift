import Glibc
import JVPNDaemon
import JVPNSystem
import XCTest

/// Capability dropping and core-dump exclusion, each in a forked child (they cannot be undone,
/// and the child of fork has a single thread, as the daemon has when it drops them).
final class CapabilitiesTests: XCTestCase {
    /// Runs `body` in a forked child; its return value is the child's exit status (0 = pass).
    private func inChild(_ body: () -> Int32) -> Int32 {
        let pid = fork()
        if pid == 0 { _exit(body()) }
        var status: Int32 = 0
        XCTAssertEqual(waitpid(pid, &status, 0), pid)
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    private func requireCapabilities() throws {
        guard let caps = try? ProcessCapabilities.current(), caps.effective.contains(.setpcap),
              caps.bounding.contains(.netBindService) else {
            throw XCTSkip("needs root with CAP_SETPCAP and a full bounding set")
        }
    }

    func testRestrictLeavesExactlyTheKeptSet() throws {
        try requireCapabilities()
        let keep = Daemon.keptCapabilities
        XCTAssertEqual(keep.description, "CAP_NET_ADMIN, CAP_NET_RAW")
        XCTAssertEqual(keep.mask, 0x3000)   // as /proc/PID/status prints it
        let rc = inChild {
            guard (try? ProcessCapabilities.restrict(to: keep)) != nil else { return 10 }
            guard let after = try? ProcessCapabilities.current() else { return 11 }
            if after.effective != keep { return 12 }
            if after.permitted != keep { return 13 }
            if after.inheritable.mask != 0 { return 14 }
            if after.bounding != keep { return 15 }
            if !ProcessCapabilities.noNewPrivileges { return 16 }
            // Kept ones still work: SO_MARK needs CAP_NET_ADMIN; dropped ones do not: a port below
            // 1024 needs CAP_NET_BIND_SERVICE.
            let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
            var mark: Int32 = 0x5a
            if setsockopt(fd, SOL_SOCKET, SO_MARK, &mark, socklen_t(MemoryLayout<Int32>.size)) != 0 { return 17 }
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = UInt16(1).bigEndian
            let bound = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            if bound == 0 || errno != EACCES { return 18 }
            // A second call finds nothing left to drop and succeeds (the systemd case).
            guard (try? ProcessCapabilities.restrict(to: keep)) != nil else { return 19 }
            return 0
        }
        XCTAssertEqual(rc, 0, "child check \(rc) failed")
    }

    func testRefusesWhileOtherThreadsRun() throws {
        try requireCapabilities()
        let rc = inChild {
            let hold = Semaphore()
            guard (try? DetachedThread.start(name: "jvpn-test-hold") { hold.wait(timeoutMs: 10_000) }) != nil else { return 20 }
            do {
                try ProcessCapabilities.restrict(to: Daemon.keptCapabilities)
                return 21
            } catch {
                guard case CapabilityError.otherThreadsRunning(let n) = error, n >= 2 else { return 22 }
            }
            guard let after = try? ProcessCapabilities.current(), after.effective.contains(.netBindService) else { return 23 }
            return 0
        }
        XCTAssertEqual(rc, 0, "child check \(rc) failed")
    }

    func testCoreDumpsDisabled() {
        let rc = inChild {
            guard CoreDumps.enabled else { return 30 }
            guard (try? CoreDumps.disable()) != nil else { return 31 }
            return CoreDumps.enabled ? 32 : 0
        }
        XCTAssertEqual(rc, 0, "child check \(rc) failed")
    }
}
