import Glibc
import JVPNSystem
import XCTest

final class FreeHeapPagesTests: XCTestCase {
    private func residentKB() throws -> Int {
        let status = try XCTUnwrap(try? String(contentsOfFile: "/proc/self/status", encoding: .utf8))
        let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        return try XCTUnwrap(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    }

    /// Large blocks freed between small ones that stay (as a publication's copies between keypairs)
    /// remain resident until released.
    func testFreedPagesBetweenLiveBlocksLeaveTheProcess() throws {
        let count = 256, large = 64 * 1024
        var larges: [UnsafeMutableRawPointer] = []
        var smalls: [UnsafeMutableRawPointer] = []
        larges.reserveCapacity(count)
        smalls.reserveCapacity(count)
        for _ in 0..<count {
            let l = try XCTUnwrap(malloc(large))
            memset(l, 0x5a, large)
            larges.append(l)
            smalls.append(try XCTUnwrap(malloc(32)))
        }
        for l in larges { free(l) }
        let before = try residentKB()
        FreeHeapPages.release()
        let after = try residentKB()
        for s in smalls { free(s) }
        // 16 MB were freed; at least half of it must have left the resident set.
        XCTAssertGreaterThan(before - after, count * large / 1024 / 2, "RSS \(before) KB -> \(after) KB")
    }
}
