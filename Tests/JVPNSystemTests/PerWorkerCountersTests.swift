import JVPNSystem
import XCTest

/// Each worker adds to its own line; the totals are exact with all of them adding at once, and one
/// worker's counts never show in another's.
final class PerWorkerCountersTests: XCTestCase {
    func testWorkersAddingAtOnceGiveExactTotals() throws {
        let workers = 4, adds = 500_000
        let c = PerWorkerCounters(workers: workers)
        let done = Semaphore()
        for w in 0..<workers {
            try DetachedThread.start(name: "test-worker") {
                for _ in 0..<adds {
                    c.add(0, worker: w, 1)
                    c.add(1, worker: w, UInt64(w + 1))
                }
                done.signal()
            }
        }
        for _ in 0..<workers { done.wait(timeoutMs: 20_000) }
        for w in 0..<workers {
            XCTAssertEqual(c.value(0, worker: w), UInt64(adds))
            XCTAssertEqual(c.value(1, worker: w), UInt64(adds * (w + 1)))
            for k in 2..<PerWorkerCounters.perWorker { XCTAssertEqual(c.value(k, worker: w), 0) }
        }
        XCTAssertEqual(c.total(0), UInt64(workers * adds))
        XCTAssertEqual(c.total(1), UInt64(adds * (1 + 2 + 3 + 4)))
    }

    func testAtLeastOneWorker() {
        let c = PerWorkerCounters(workers: 0)
        XCTAssertEqual(c.workers, 1)
        c.add(3, worker: 0, 7)
        XCTAssertEqual(c.total(3), 7)
    }
}
