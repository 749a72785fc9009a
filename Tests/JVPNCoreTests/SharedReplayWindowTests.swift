import Foundation
import Synchronization
import XCTest
@testable import JVPNCore

final class SharedReplayWindowTests: XCTestCase {
    private static let limit = MessageLimits.rejectAfterMessages

    /// Both windows side by side: every counter offered to both, `check` then `update`, answers and
    /// `highest` compared.
    private struct Pair {
        var plain = ReplayWindow()
        let shared = SharedReplayWindow()
        var differences: [String] = []
        var accepted = 0
        var rejected = 0

        mutating func offer(_ c: UInt64) {
            let plainCheck = plain.check(c)
            let sharedCheck = shared.check(c)
            let plainUpdate = plain.update(c)
            let sharedUpdate = shared.update(c)
            if plainCheck != sharedCheck || plainUpdate != sharedUpdate || plain.highest != shared.highest {
                if differences.count < 5 {
                    differences.append("counter \(c): check \(plainCheck)/\(sharedCheck), update \(plainUpdate)/\(sharedUpdate), "
                                       + "highest \(plain.highest)/\(shared.highest)")
                } else {
                    differences[4] = "and more"
                }
            }
            if plainUpdate { accepted += 1 } else { rejected += 1 }
        }
    }

    /// `operations` random operations from `base`: in-order runs, losses (small jumps), jumps past the
    /// whole ring (> 4096) and far ones (2^20 to 2^32 when `farJumps`), late counters inside the
    /// window, at its edge and beyond it, early counters, duplicates of recent ones. Counters stop
    /// growing a little past the limit, where both must reject everything.
    ///
    /// Far jumps stay below 2^32 so that a run moves less than 2^44 counters in all: the tag alias
    /// (`testTagAliasIsTheOneDifference`) cannot happen, and the two must agree on every answer.
    private func compare(seed: UInt64, base: UInt64, operations: Int, farJumps: Bool) -> Pair {
        var pair = Pair()
        var rng = SeededRandom(seed: seed)
        let ceiling = Self.limit + 64
        var next = base
        func advance(_ by: UInt64) { next += min(by, ceiling - next) }
        var recent = [UInt64](repeating: base, count: 256)
        var recentIndex = 0
        func offer(_ c: UInt64) {
            pair.offer(c)
            recent[recentIndex & 255] = c
            recentIndex += 1
        }
        let window = ReplayWindow.windowSize
        for _ in 0..<operations {
            let highest = pair.plain.highest
            switch rng.next() % 100 {
            case 0..<35:
                for _ in 0...(rng.next() % 8) {
                    offer(next)
                    advance(1)
                }
            case 35..<45:
                advance(1 + rng.next() % 200)
                offer(next)
                advance(1)
            case 45..<48:
                advance(4097 + rng.next() % 100_000)
                offer(next)
                advance(1)
            case 48:
                advance(farJumps ? (1 << 20) + rng.next() % (1 << 32) : 4097)
                offer(next)
                advance(1)
            case 49..<65:
                let back = rng.next() % window
                if highest >= back { offer(highest - back) }
            case 65..<70:
                let back = window - 2 + rng.next() % 4
                if highest >= back { offer(highest - back) }
            case 70..<78:
                let back = window + rng.next() % 50_000
                if highest >= back { offer(highest - back) }
            case 78..<92:
                offer(recent[Int(rng.next() % 256)])
            default:
                offer(next + rng.next() % 64)
            }
        }
        return pair
    }

    func testSameAnswersAsReplayWindowSingleThreaded() {
        let fromZero = compare(seed: 1, base: 0, operations: 200_000, farJumps: true)
        XCTAssertEqual(fromZero.differences, [])
        // Not a vacuous agreement: plenty of both answers.
        XCTAssertGreaterThan(fromZero.accepted, 100_000)
        XCTAssertGreaterThan(fromZero.rejected, 50_000)
        let high = compare(seed: 2, base: (1 << 63) + 12_345, operations: 100_000, farJumps: true)
        XCTAssertEqual(high.differences, [])
        XCTAssertGreaterThan(high.accepted, 50_000)
        // Runs into the limit: everything past it rejected by both.
        let nearLimit = compare(seed: 3, base: Self.limit - 20_000_000, operations: 50_000, farJumps: false)
        XCTAssertEqual(nearLimit.differences, [])
        XCTAssertGreaterThan(nearLimit.accepted, 10_000)
    }

    func testFreshSlots() {
        // Blocks 0..125 arrive newest first into empty slots (tag 0, no bit): block 0 reads as
        // itself with nothing seen, the others as older blocks to replace.
        let w = SharedReplayWindow()
        let newest = ReplayWindow.windowSize - 1
        for c in stride(from: newest, through: 0, by: -1) { XCTAssertTrue(w.update(c), "\(c)") }
        for c in 0...newest { XCTAssertFalse(w.check(c), "\(c)") }
        for c in 0...newest { XCTAssertFalse(w.update(c), "\(c)") }
        XCTAssertEqual(w.highest, newest)
        XCTAssertTrue(w.update(newest + 1))
        XCTAssertFalse(w.update(0))
    }

    func testCheckDoesNotMark() {
        let w = SharedReplayWindow()
        XCTAssertTrue(w.check(7))
        XCTAssertTrue(w.check(7))
        XCTAssertTrue(w.update(7))
        XCTAssertFalse(w.check(7))
    }

    func testLimits() {
        let w = SharedReplayWindow()
        XCTAssertFalse(w.check(Self.limit))
        XCTAssertFalse(w.update(Self.limit))
        XCTAssertFalse(w.update(UInt64.max))
        XCTAssertEqual(w.highest, 0)
        XCTAssertTrue(w.check(Self.limit - 1))
        XCTAssertTrue(w.update(Self.limit - 1))
        XCTAssertFalse(w.update(Self.limit - 1))
        XCTAssertEqual(w.highest, Self.limit - 1)
        XCTAssertTrue(w.update(Self.limit - 1 - (ReplayWindow.windowSize - 1)))
        XCTAssertFalse(w.update(Self.limit - 1 - ReplayWindow.windowSize))
        XCTAssertFalse(w.check(0))
        // In order up to the last counter allowed, then nothing.
        let inOrder = SharedReplayWindow()
        for c in (Self.limit - 10_000)..<Self.limit { XCTAssertTrue(inOrder.update(c), "\(c)") }
        XCTAssertFalse(inOrder.update(Self.limit))
        XCTAssertFalse(inOrder.update(Self.limit + 1))
        XCTAssertEqual(inOrder.highest, Self.limit - 1)
    }

    /// The one place where the two windows differ by design: a slot left untouched for 2^44 counters
    /// holds a block whose tag (32 bits of block >> 7) equals the new one's, so its bits are read as
    /// the new block's. A false rejection, never a second acceptance; out of reach within a key's life.
    func testTagAliasIsTheOneDifference() {
        let w = SharedReplayWindow()
        var plain = ReplayWindow()
        XCTAssertTrue(w.update(5))
        XCTAssertTrue(plain.update(5))
        let alias: UInt64 = 5 + (1 << 44)
        XCTAssertTrue(plain.update(alias))
        XCTAssertFalse(w.update(alias))
        XCTAssertTrue(w.update(alias + 1))
        XCTAssertFalse(w.update(alias + 1))
        XCTAssertFalse(w.update(5))
    }

    /// Four threads each offer every counter of 0..<200_000, each in its own order (shuffled within
    /// runs of 64, as two paths would deliver them): every counter must be taken exactly once in all.
    /// With a plain load and store in place of the compare-and-swap, threads take the same counter
    /// twice. Several rounds, because on a small machine the threads do not overlap in every round.
    func testConcurrentUpdatesAcceptEachCounterOnce() {
        let threads = 4
        let count = 200_000
        for round in 0..<5 {
            let window = SharedReplayWindow()
            let orders: [[UInt64]] = (0..<threads).map { t in
                var rng = SeededRandom(seed: UInt64(100 * round + t + 1))
                var order = Array(0..<UInt64(count))
                for start in stride(from: 0, to: count, by: 64) {
                    order[start..<min(start + 64, count)].shuffle(using: &rng)
                }
                return order
            }
            // Each thread writes only its own quarter.
            nonisolated(unsafe) let taken = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: threads * count)
            taken.initialize(repeating: 0)
            defer { taken.deallocate() }
            let gate = StartGate()
            let done = DispatchGroup()
            for t in 0..<threads {
                done.enter()
                let order = orders[t]
                Thread {
                    gate.arriveAndWait(for: threads)
                    for c in order where window.update(c) { taken[t * count + Int(c)] &+= 1 }
                    done.leave()
                }.start()
            }
            done.wait()
            var wrong = 0
            var firstWrong = ""
            var perThread = [Int](repeating: 0, count: threads)
            for c in 0..<count {
                var total = 0
                for t in 0..<threads {
                    total += Int(taken[t * count + c])
                    perThread[t] += Int(taken[t * count + c])
                }
                if total != 1 {
                    if wrong == 0 { firstWrong = "counter \(c) taken \(total) times" }
                    wrong += 1
                }
            }
            XCTAssertEqual(wrong, 0, "round \(round): \(firstWrong); taken per thread \(perThread)")
        }
    }

    /// A jump forward that takes a slot over, raced by a replay of the counter it displaces: one
    /// thread offers 4096·k for k = 1, 2, ... (all in slot 0, each the next block there), another
    /// keeps offering `highest`, the counter taken last (or being taken). Each must be taken once in
    /// all. With `highest` raised after the slot's swap instead of before, the replay could read the
    /// new tag with the old `highest`, take the slot back and be accepted a second time.
    func testReplayRacingTheJumpThatDisplacesIt() {
        let jumps = 300_000
        let window = SharedReplayWindow()
        let gate = StartGate()
        // One row per thread, indexed by k; each thread writes only its own.
        nonisolated(unsafe) let taken = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: 2 * (jumps + 1))
        taken.initialize(repeating: 0)
        defer { taken.deallocate() }
        let done = DispatchGroup()
        done.enter()
        Thread {
            gate.arriveAndWait(for: 2)
            for k in 1...jumps where window.update(4096 * UInt64(k)) { taken[k] &+= 1 }
            gate.finish()
            done.leave()
        }.start()
        done.enter()
        Thread {
            gate.arriveAndWait(for: 2)
            while !gate.finished {
                let highest = window.highest
                if highest > 0 && window.update(highest) { taken[jumps + Int(highest / 4096)] &+= 1 }
            }
            done.leave()
        }.start()
        done.wait()
        var wrong = 0
        var firstWrong = ""
        var byReplayer = 0
        for k in 1...jumps {
            let total = Int(taken[k]) + Int(taken[jumps + k])
            byReplayer += Int(taken[jumps + k])
            if total != 1 {
                if wrong == 0 { firstWrong = "counter \(4096 * k) taken \(total) times" }
                wrong += 1
            }
        }
        XCTAssertEqual(wrong, 0, "\(firstWrong); \(byReplayer) taken by the replaying thread")
    }
}

/// Holds threads until all have arrived, so that they really run over the same counters together.
private final class StartGate: @unchecked Sendable {
    private let arrived = Atomic<Int>(0)

    func arriveAndWait(for count: Int) {
        arrived.wrappingAdd(1, ordering: .relaxed)
        while arrived.load(ordering: .relaxed) < count { sched_yield() }
    }

    private let over = Atomic<Bool>(false)
    func finish() { over.store(true, ordering: .relaxed) }
    var finished: Bool { over.load(ordering: .relaxed) }
}
