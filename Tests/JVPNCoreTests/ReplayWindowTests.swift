import XCTest
@testable import JVPNCore

/// The data plane's replay window (`SharedReplayWindow`) used by one thread; its limits, `check`
/// and concurrency are in SharedReplayWindowTests.
final class ReplayWindowTests: XCTestCase {
    func testInOrder() {
        let w = SharedReplayWindow()
        for c in UInt64(0)..<10_000 {
            XCTAssertTrue(w.check(c))
            XCTAssertTrue(w.update(c))
            XCTAssertFalse(w.check(c))
        }
        XCTAssertEqual(w.highest, 9999)
    }

    func testDuplicatesRejected() {
        let w = SharedReplayWindow()
        XCTAssertTrue(w.update(0))
        XCTAssertFalse(w.update(0))
        XCTAssertTrue(w.update(5))
        XCTAssertFalse(w.update(5))
        XCTAssertTrue(w.update(3))
        XCTAssertFalse(w.update(3))
        XCTAssertFalse(w.update(0))
    }

    func testReorderWithin2048() {
        let w = SharedReplayWindow()
        XCTAssertTrue(w.update(3000))
        // Everything in the 2048 before it arrives late, in reverse: all accepted once.
        for c in stride(from: UInt64(2999), through: 3000 - 2048, by: -1) {
            XCTAssertTrue(w.update(c), "\(c)")
        }
        for c in (3000 - 2048)...3000 { XCTAssertFalse(w.update(UInt64(c))) }
        // The window reaches further than required (4032).
        let w2 = SharedReplayWindow()
        XCTAssertTrue(w2.update(10_000))
        XCTAssertTrue(w2.update(10_000 - SharedReplayWindow.windowSize + 1))
        XCTAssertFalse(w2.update(10_000 - SharedReplayWindow.windowSize))
    }

    func testInterleavedPathSwitchReorder() {
        // Two paths: new path delivers 1000..<3000, old path's stragglers 0..<1000 arrive after.
        let w = SharedReplayWindow()
        for c in UInt64(1000)..<3000 { XCTAssertTrue(w.update(c)) }
        for c in UInt64(0)..<1000 { XCTAssertTrue(w.update(c)) }
        for c in UInt64(0)..<3000 { XCTAssertFalse(w.check(c)) }
    }

    func testFarJumpClearsWindow() {
        let w = SharedReplayWindow()
        for c in UInt64(0)..<5000 { XCTAssertTrue(w.update(c)) }
        XCTAssertTrue(w.update(1_000_000))
        // Counters just below the new head were never seen: the stale bits must not say otherwise.
        for c in (1_000_000 - 4000)..<1_000_000 { XCTAssertTrue(w.check(UInt64(c)), "\(c)") }
        XCTAssertTrue(w.update(999_999))
        XCTAssertFalse(w.update(1_000_000))
        // Jumps of exactly one ring length and just over.
        let w2 = SharedReplayWindow()
        XCTAssertTrue(w2.update(10))
        XCTAssertTrue(w2.update(10 + 4096))
        XCTAssertTrue(w2.check(10 + 4095))
        XCTAssertTrue(w2.update(10 + 4096 + 4097))
        XCTAssertTrue(w2.check(10 + 4096 + 4096))
    }

    func testTooOldRejected() {
        let w = SharedReplayWindow()
        XCTAssertTrue(w.update(100_000))
        XCTAssertFalse(w.check(0))
        XCTAssertFalse(w.update(100_000 - 5000))
        XCTAssertFalse(w.update(100_000 - SharedReplayWindow.windowSize))
    }

    func testRandomAgainstReferenceModel() {
        let w = SharedReplayWindow()
        var seen = Set<UInt64>()
        var highest: UInt64 = 0
        var any = false
        var rng = SeededRandom(seed: 99)
        var base: UInt64 = 0
        for _ in 0..<200_000 {
            let r = rng.next()
            if r % 1000 == 0 { base += r % 20_000 }
            let c = base + (rng.next() % 6000)
            let tooOld = any && highest >= c && highest - c >= SharedReplayWindow.windowSize
            let expected = !tooOld && !seen.contains(c)
            XCTAssertEqual(w.update(c), expected, "counter \(c)")
            if expected {
                seen.insert(c)
                if !any || c > highest { highest = c; any = true }
            }
        }
    }
}
