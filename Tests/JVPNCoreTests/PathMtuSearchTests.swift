import XCTest
@testable import JVPNCore

/// The path MTU search against a modelled path: a size passes when it is at most the path's MTU
/// and the (seeded) loss spares it; answers come back after one round trip.
final class PathMtuSearchTests: XCTestCase {
    struct ModelPath {
        var mtu: Int
        var lossPct = 0
        var answers = true
        var rttMs: UInt64 = 4
        var rng = SeededRandom(seed: 1)
        var inflight: [(at: UInt64, seq: UInt32)] = []
        var sent: [PathMtuSearch.Probe] = []

        mutating func send(_ p: PathMtuSearch.Probe, now: UInt64) {
            sent.append(p)
            guard answers, (p.size ?? 0) <= mtu else { return }
            if lossPct > 0 && Int(rng.next() % 100) < lossPct { return }
            inflight.append((now + rttMs, p.seq))
        }
    }

    /// Runs the search for `ms` milliseconds from `start`; returns the time it reached `complete`
    /// (or error) last, if it did.
    @discardableResult
    func run(_ s: inout PathMtuSearch, _ path: inout ModelPath, from start: UInt64, ms: UInt64,
             budget: inout TokenBucket) -> UInt64? {
        var doneAt: UInt64?
        for now in start..<(start + ms) {
            let due = path.inflight.filter { $0.at <= now }
            path.inflight.removeAll { $0.at <= now }
            for d in due { s.replied(seq: d.seq, nowMs: now) }
            for p in s.poll(nowMs: now, timeoutMs: 20, budget: &budget) { path.send(p, now: now) }
            if s.phase != .searching && doneAt == nil { doneAt = now }
            if s.phase == .searching { doneAt = nil }
        }
        return doneAt
    }

    func unlimited() -> TokenBucket { TokenBucket(capacity: 1_000_000, refillPerSecond: 1_000_000, nowMs: 0) }

    func testAFullSizePathIsSettledInOneRound() {
        var s = PathMtuSearch(uplinkMtu: 1500, ipv6: false)
        var path = ModelPath(mtu: 1500)
        var b = unlimited()
        XCTAssertNil(s.inUse, "no limit before the search completes")
        let done = run(&s, &path, from: 1_000, ms: 100, budget: &b)
        XCTAssertEqual(s.phase, .complete)
        XCTAssertEqual(s.inUse, 1500)
        XCTAssertEqual(done, 1_004, "one round trip")
        XCTAssertEqual(path.sent.map(\.size), [nil, 1280, 1500], "a small probe, the base and the uplink's MTU")
        XCTAssertTrue(path.sent.allSatisfy { PathMtuSearch.isMtuProbe(seq: $0.seq) })
        XCTAssertEqual(s.maxDatagram, 1472)
        XCTAssertEqual(s.innerCapacity, 1440)
        XCTAssertFalse(s.isBelowFloor)
    }

    func testTheSearchFindsTheExactMtu() {
        for mtu in [1281, 1400, 1420, 1492, 1499, 1280] {
            var s = PathMtuSearch(uplinkMtu: 1500, ipv6: false)
            var path = ModelPath(mtu: mtu)
            var b = unlimited()
            let done = run(&s, &path, from: 0, ms: 3_000, budget: &b)
            XCTAssertEqual(s.inUse, mtu, "path MTU \(mtu)")
            XCTAssertEqual(s.phase, .complete)
            XCTAssertLessThan(done ?? .max, 600, "path MTU \(mtu): at most ~10 rounds of 50 ms")
            XCTAssertTrue(path.sent.allSatisfy { ($0.size ?? 0) <= 1500 })
        }
    }

    func testAPathBelowTheBaseIsSearchedDownToTheIPv4Minimum() {
        var s = PathMtuSearch(uplinkMtu: 1500, ipv6: false)
        var path = ModelPath(mtu: 1000)
        var b = unlimited()
        run(&s, &path, from: 0, ms: 3_000, budget: &b)
        XCTAssertEqual(s.inUse, 1000)
        XCTAssertTrue(s.isBelowFloor)
        var tiny = PathMtuSearch(uplinkMtu: 1500, ipv6: false)
        var broken = ModelPath(mtu: 500)
        run(&tiny, &broken, from: 0, ms: 5_000, budget: &b)
        XCTAssertEqual(tiny.phase, .error, "not even 576 passes while small probes do")
        XCTAssertEqual(tiny.inUse, 576)
        var v6 = PathMtuSearch(uplinkMtu: 1500, ipv6: true)
        var small6 = ModelPath(mtu: 1200)
        run(&v6, &small6, from: 0, ms: 3_000, budget: &b)
        XCTAssertEqual(v6.phase, .error, "IPv6 has nothing below 1280")
        XCTAssertEqual(v6.inUse, 1280)
        XCTAssertEqual(v6.innerCapacity, 1280 - 48 - 32)
    }

    func testNoLimitIsPublishedWhileThePathDoesNotAnswer() {
        var s = PathMtuSearch(uplinkMtu: 1500, ipv6: false)
        var path = ModelPath(mtu: 1500, answers: false)
        var b = unlimited()
        run(&s, &path, from: 0, ms: 2_000, budget: &b)
        XCTAssertEqual(s.phase, .searching)
        XCTAssertNil(s.inUse, "silence is not a small path: nothing learnt")
        XCTAssertLessThanOrEqual(path.sent.count, 3 * 2_000 / 50, "unanswered rounds are paced")
        path.answers = true
        run(&s, &path, from: 2_000, ms: 200, budget: &b)
        XCTAssertEqual(s.inUse, 1500)
    }

    func testMissesNeededGrowWithTheLoss() {
        XCTAssertEqual(PathMtuSearch.missesNeeded(lossPct: 0), PathMtuSearch.maxProbes)
        XCTAssertEqual(PathMtuSearch.missesNeeded(lossPct: 1), PathMtuSearch.maxProbes)
        XCTAssertEqual(PathMtuSearch.missesNeeded(lossPct: 10), 5)
        XCTAssertEqual(PathMtuSearch.missesNeeded(lossPct: 30), 8)
        XCTAssertEqual(PathMtuSearch.missesNeeded(lossPct: 90), PathMtuSearch.maxMissesOnLossyPath)
    }

    /// A 1500-byte path that loses 30 % of every probe, confirmed every 200 ms for 200 s: told the
    /// path's loss, the search never takes it for a black hole; not told, it does, again and again.
    func testRandomLossIsNotTakenForABlackHole() {
        func blackHoles(toldLossPct: Double) -> Int {
            var s = PathMtuSearch(uplinkMtu: 1500, ipv6: false)
            var path = ModelPath(mtu: 1500)
            var b = unlimited()
            run(&s, &path, from: 0, ms: 100, budget: &b)
            XCTAssertEqual(s.inUse, 1500)
            path.lossPct = 30
            for now in UInt64(100)..<200_100 {
                if now % 200 == 0 { s.confirmSoon(nowMs: now) }
                let due = path.inflight.filter { $0.at <= now }
                path.inflight.removeAll { $0.at <= now }
                for d in due { s.replied(seq: d.seq, nowMs: now) }
                for p in s.poll(nowMs: now, timeoutMs: 20, lossPct: toldLossPct, budget: &b) { path.send(p, now: now) }
            }
            return s.blackHoles
        }
        XCTAssertEqual(blackHoles(toldLossPct: 30), 0)
        XCTAssertGreaterThan(blackHoles(toldLossPct: 0), 0, "random loss looks like a black hole to three rounds")
    }

    /// A real black hole on a lossy path is still found, after more rounds.
    func testABlackHoleOnALossyPathIsStillFound() {
        var s = PathMtuSearch(uplinkMtu: 1500, ipv6: false)
        var path = ModelPath(mtu: 1500)
        var b = unlimited()
        run(&s, &path, from: 0, ms: 100, budget: &b)
        path.lossPct = 30
        path.mtu = 1400
        s.confirmSoon(nowMs: 100)
        for now in UInt64(100)..<5_100 {
            let due = path.inflight.filter { $0.at <= now }
            path.inflight.removeAll { $0.at <= now }
            for d in due { s.replied(seq: d.seq, nowMs: now) }
            for p in s.poll(nowMs: now, timeoutMs: 20, lossPct: 30, budget: &b) { path.send(p, now: now) }
        }
        XCTAssertEqual(s.blackHoles, 1)
        XCTAssertLessThanOrEqual(s.inUse ?? 0, 1400)
    }

    func testRandomLossNeverLeadsAboveThePathAndRarelyBelowIt() {
        var exact = 0
        for seed in 1...200 {
            var s = PathMtuSearch(uplinkMtu: 1500, ipv6: false)
            var path = ModelPath(mtu: 1400, lossPct: 10, rng: SeededRandom(seed: UInt64(seed)))
            var b = unlimited()
            run(&s, &path, from: 0, ms: 5_000, budget: &b)
            XCTAssertEqual(s.phase, .complete, "seed \(seed)")
            XCTAssertLessThanOrEqual(s.inUse ?? .max, 1400, "seed \(seed): a size larger than the path is never confirmed")
            if s.inUse == 1400 { exact += 1 }
        }
        XCTAssertGreaterThanOrEqual(exact, 190, "10 % loss: three misses in a row of a size that passes are rare")
    }

    func testABlackHoleFallsBackToTheBaseWithinThreeRoundsThenSearchesAgain() {
        var s = PathMtuSearch(uplinkMtu: 1500, ipv6: false)
        var path = ModelPath(mtu: 1500)
        var b = unlimited()
        run(&s, &path, from: 0, ms: 100, budget: &b)
        XCTAssertEqual(s.inUse, 1500)
        path.mtu = 1400 // small probes still pass, large ones die
        path.sent = []
        s.confirmSoon(nowMs: 1_000)
        var fellBackAt: UInt64?
        for now in UInt64(1_000)..<1_400 {
            run(&s, &path, from: now, ms: 1, budget: &b)
            if fellBackAt == nil, s.inUse == 1280 { fellBackAt = now }
        }
        XCTAssertEqual(s.blackHoles, 1)
        XCTAssertNotNil(fellBackAt)
        XCTAssertLessThanOrEqual(fellBackAt ?? .max, 1_000 + 3 * 50 + 5, "three rounds of 50 ms")
        XCTAssertEqual(Array(path.sent.prefix(6)).map(\.size), [nil, 1500, nil, 1500, nil, 1500], "the size in use, three times")
        run(&s, &path, from: 1_400, ms: 1_000, budget: &b)
        XCTAssertEqual(s.inUse, 1400, "found again below the size that failed")
        XCTAssertEqual(s.phase, .complete)
    }

    func testASilentPathIsNotABlackHole() {
        var s = PathMtuSearch(uplinkMtu: 1500, ipv6: false)
        var path = ModelPath(mtu: 1500)
        var b = unlimited()
        run(&s, &path, from: 0, ms: 100, budget: &b)
        path.answers = false
        s.confirmSoon(nowMs: 1_000)
        run(&s, &path, from: 1_000, ms: 2_000, budget: &b)
        XCTAssertEqual(s.blackHoles, 0)
        XCTAssertEqual(s.inUse, 1500)
    }

    func testConfirmationAndRaiseTimers() {
        var s = PathMtuSearch(uplinkMtu: 1500, ipv6: false)
        var path = ModelPath(mtu: 1300)
        var b = unlimited()
        run(&s, &path, from: 0, ms: 1_000, budget: &b)
        XCTAssertEqual(s.inUse, 1300)
        let done = path.sent.count
        run(&s, &path, from: 1_000, ms: PathMtuSearch.confirmIntervalMs - 1_500, budget: &b)
        XCTAssertEqual(path.sent.count, done, "quiet until the confirmation is due")
        run(&s, &path, from: PathMtuSearch.confirmIntervalMs - 500, ms: 1_000, budget: &b)
        XCTAssertEqual(path.sent.dropFirst(done).map(\.size), [nil, 1300], "the size in use is confirmed")
        path.mtu = 1500 // the path grew: found at the next raise
        run(&s, &path, from: PathMtuSearch.confirmIntervalMs + 500, ms: PathMtuSearch.raiseIntervalMs, budget: &b)
        XCTAssertEqual(s.inUse, 1500)
        XCTAssertEqual(s.blackHoles, 0)
    }

    func testAConfirmationRequestInterruptsARaiseButNotAFirstSearch() {
        var s = PathMtuSearch(uplinkMtu: 1500, ipv6: false)
        var path = ModelPath(mtu: 1300)
        var b = unlimited()
        s.confirmSoon(nowMs: 0)
        run(&s, &path, from: 0, ms: 1_000, budget: &b)
        XCTAssertEqual(s.inUse, 1300, "the first search ran to its end")
        var t: UInt64 = 1_000
        while s.phase == .complete && t < 2_000 + PathMtuSearch.raiseIntervalMs {
            run(&s, &path, from: t, ms: 1, budget: &b)
            t += 1
        }
        XCTAssertEqual(s.phase, .searching, "raising")
        XCTAssertEqual(s.inUse, 1300, "the size in use stays while raising")
        path.mtu = 1200
        path.sent = []
        s.confirmSoon(nowMs: t + 1)
        run(&s, &path, from: t + 1, ms: 1_000, budget: &b)
        XCTAssertEqual(path.sent.prefix(2).map(\.size), [nil, 1300], "the size in use first")
        XCTAssertEqual(s.blackHoles, 1)
        XCTAssertEqual(s.inUse, 1200)
    }

    func testTheBudgetHoldsRoundsBack() {
        var s = PathMtuSearch(uplinkMtu: 1500, ipv6: false)
        var b = TokenBucket(capacity: 3, refillPerSecond: 10, nowMs: 0)
        XCTAssertTrue(b.take(count: 2, nowMs: 0))
        XCTAssertEqual(s.poll(nowMs: 0, timeoutMs: 20, budget: &b), [], "a round of three probes needs three tokens")
        XCTAssertEqual(s.poll(nowMs: 1_000, timeoutMs: 20, budget: &b).count, 3)
    }

    func testTheUplinkMtuBoundsTheSearch() {
        var s = PathMtuSearch(uplinkMtu: 1400, ipv6: false)
        var path = ModelPath(mtu: 9000)
        var b = unlimited()
        run(&s, &path, from: 0, ms: 200, budget: &b)
        XCTAssertEqual(s.inUse, 1400)
        s.uplinkMtuChanged(9000, nowMs: 200)
        run(&s, &path, from: 200, ms: 200, budget: &b)
        XCTAssertEqual(s.inUse, 9000)
        s.uplinkMtuChanged(1300, nowMs: 400)
        XCTAssertEqual(s.inUse, 1300, "never above the uplink")
        XCTAssertEqual(PathMtuSearch(uplinkMtu: 65535, ipv6: false).maxMtu, PathMtuSearch.largestMtu)
    }
}
