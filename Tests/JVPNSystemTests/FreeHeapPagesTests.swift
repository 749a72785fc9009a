import Glibc
import JVPNSystem
import XCTest

final class FreeHeapPagesTests: XCTestCase {
    private func residentKB() throws -> Int {
        let status = try XCTUnwrap(try? String(contentsOfFile: "/proc/self/status", encoding: .utf8))
        let line = try XCTUnwrap(status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") })
        return try XCTUnwrap(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
    }

    /// Large blocks freed between blocks that stay (as a publication's copies between keypairs)
    /// remain resident until released. The blocks that stay are the freed ones' neighbours in
    /// allocation order, whatever the heap held before: small separators could come from free
    /// chunks elsewhere (as after other tests), leaving the freed blocks one run at the top of the
    /// heap, which `free` itself gives back.
    func testFreedPagesBetweenLiveBlocksLeaveTheProcess() throws {
        let freedCount = 128, large = 64 * 1024
        var blocks: [UnsafeMutableRawPointer] = []
        blocks.reserveCapacity(2 * freedCount + 1)
        for _ in 0..<(2 * freedCount + 1) {
            let b = try XCTUnwrap(malloc(large))
            memset(b, 0x5a, large)
            blocks.append(b)
        }
        let filled = try residentKB()
        for i in stride(from: 1, to: blocks.count, by: 2) { free(blocks[i]) }
        let before = try residentKB()
        FreeHeapPages.release()
        let after = try residentKB()
        for i in stride(from: 0, to: blocks.count, by: 2) { free(blocks[i]) }
        let freedKB = freedCount * large / 1024
        // `free` alone kept them (else this test would show nothing), the release gave back at least half.
        XCTAssertLessThan(filled - before, freedKB / 2, "RSS \(filled) KB -> \(before) KB after free")
        XCTAssertGreaterThan(before - after, freedKB / 2, "RSS \(before) KB -> \(after) KB")
    }
}
