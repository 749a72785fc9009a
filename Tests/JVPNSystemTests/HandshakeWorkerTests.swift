import Glibc
import JVPNCore
@testable import JVPNDaemon
import JVPNSystem
import Synchronization
import XCTest

/// The handshake queue between the receive thread and the worker: order, bound, unmapped sources,
/// and cookie replies sent from the worker. Loopback sockets only (no root).
final class HandshakeWorkerTests: XCTestCase {
    private final class Seen: @unchecked Sendable {
        let lock = Lock()
        var messages: [([UInt8], TransportAddress)] = []
    }

    private func mapped(_ v4: [UInt8], port: UInt16) -> SocketAddress {
        SocketAddress(addressBytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] + v4, port: port)!
    }

    func testMessagesReachTheHandlerInOrderWithUnmappedSources() throws {
        let seen = Seen()
        let worker = HandshakeWorker(snapshot: SnapshotCell(), replyCapacity: 8) { bytes, from in
            seen.lock.withLock { seen.messages.append((Array(bytes), from)) }
        }
        try worker.start()
        defer { worker.shutdown() }
        for i in 0..<3 {
            let m: [UInt8] = [1, 0, 0, 0, UInt8(i)] + [UInt8](repeating: 0, count: 155)
            let via: TransportAddress.Via = i == 2 ? .tcp(connection: 9) : .udp(socket: i)
            XCTAssertTrue(m.withUnsafeBytes { worker.push($0, from: TransportAddress(via: via, address: mapped([10, 0, 0, UInt8(i)], port: 7))) })
        }
        for _ in 0..<200 where seen.lock.withLock({ seen.messages.count }) < 3 { usleep(5000) }
        let got = seen.lock.withLock { seen.messages }
        XCTAssertEqual(got.count, 3)
        for (i, (bytes, from)) in got.enumerated() {
            XCTAssertEqual(bytes.count, 160)
            XCTAssertEqual(bytes[4], UInt8(i))
            XCTAssertEqual(from.address, SocketAddress(addressBytes: [10, 0, 0, UInt8(i)], port: 7))
            XCTAssertEqual(from.via, i == 2 ? .tcp(connection: 9) : .udp(socket: i))
        }
        XCTAssertEqual(worker.depth, 0)
    }

    func testQueueIsBounded() {
        let worker = HandshakeWorker(snapshot: SnapshotCell(), replyCapacity: 8) { _, _ in }
        let m = [UInt8](repeating: 0, count: 160)
        for _ in 0..<HandshakeWorker.capacity {
            XCTAssertTrue(m.withUnsafeBytes { worker.push($0, from: TransportAddress(via: .udp(socket: 0), address: SocketAddress())) })
        }
        XCTAssertFalse(m.withUnsafeBytes { worker.push($0, from: TransportAddress(via: .udp(socket: 0), address: SocketAddress())) }, "full: a counted drop")
        XCTAssertEqual(worker.depth, HandshakeWorker.capacity)
        // Larger than any handshake message: refused, not truncated.
        let big = [UInt8](repeating: 0, count: 161)
        XCTAssertFalse(big.withUnsafeBytes { worker.push($0, from: TransportAddress(via: .udp(socket: 0), address: SocketAddress())) })
    }

    func testCookieRepliesAreSentByTheWorker() throws {
        let sender = try UDPSocket(family: AF_INET, localAddress: SocketAddress(addressBytes: [127, 0, 0, 1], port: 0))
        let receiver = try UDPSocket(family: AF_INET, localAddress: SocketAddress(addressBytes: [127, 0, 0, 1], port: 0))
        let cell = SnapshotCell()
        cell.publish(DataPlaneSnapshot(routes: AllowedIPsTable<Int>(), send: ChunkedSlots(), receivers: ShardedIndexMap(), sockets: [sender]))
        let worker = HandshakeWorker(snapshot: cell, replyCapacity: 8) { _, _ in }
        try worker.start()
        defer { worker.shutdown() }
        let to = SocketAddress(addressBytes: [127, 0, 0, 1], port: receiver.localPort)!
        for i in 0..<5 {
            XCTAssertTrue(worker.pushCookieReply(to: to, socketIndex: 0) { out in
                out.initializeMemory(as: UInt8.self, repeating: UInt8(i), count: Cookie.replyLength)
                return Cookie.replyLength
            })
        }
        worker.wakeIfIdle()
        let batch = DatagramBatch(capacity: 8, slotSize: 128)
        var got: [UInt8] = []
        for _ in 0..<200 where got.count < 5 {
            let n = (try? batch.receive(from: receiver)) ?? 0
            for k in 0..<n {
                XCTAssertEqual(batch.lengths[k], 64)
                got.append(batch.payload(k).load(as: UInt8.self))
            }
            if n == 0 { usleep(5000) }
        }
        XCTAssertEqual(got, [0, 1, 2, 3, 4])
        // A full reply ring refuses (the pump counts it) rather than overwriting.
        let small = HandshakeWorker(snapshot: cell, replyCapacity: 2) { _, _ in }
        for _ in 0..<2 { XCTAssertTrue(small.pushCookieReply(to: to, socketIndex: 0) { _ in 64 }) }
        XCTAssertFalse(small.pushCookieReply(to: to, socketIndex: 0) { _ in 64 })
        XCTAssertEqual(worker.cookieRepliesSent.load(ordering: .relaxed), 5)
    }

    /// A gateway's control facts: applied by the worker in the order the receive thread queued them,
    /// at most `factBatch` per call (one hold of the host lock each), after a wake-up of a sleeping
    /// worker; a full ring refuses and counts.
    func testControlFactsReachTheWorkerInOrderInBoundedBatches() throws {
        final class Applied: @unchecked Sendable {
            let lock = Lock()
            var ids: [UInt64] = []
            var batches: [Int] = []
        }
        let applied = Applied()
        let worker = HandshakeWorker(snapshot: SnapshotCell(), replyCapacity: 8, factCapacity: ControlFactRing.gatewayCapacity,
                                     applyFacts: { next in
            var n = 0
            while let fact = next() {
                n += 1
                guard case .connectionClosed(let id) = fact else { continue }
                applied.lock.withLock { applied.ids.append(id) }
            }
            applied.lock.withLock { applied.batches.append(n) }
        }) { _, _ in }
        try worker.start()
        defer { worker.shutdown() }
        usleep(20_000) // the worker is asleep now
        for id in 0..<200 as Range<UInt64> { XCTAssertTrue(worker.facts.push(.connectionClosed(id))) }
        worker.wakeIfIdle()
        // Well under the worker's 1 s idle timeout: only the wake-up gets the facts applied in time.
        for _ in 0..<100 where applied.lock.withLock({ applied.ids.count }) < 200 { usleep(5000) }
        let (ids, batches) = applied.lock.withLock { (applied.ids, applied.batches) }
        XCTAssertEqual(ids, Array(0..<200))
        XCTAssertLessThanOrEqual(batches.max() ?? 0, HandshakeWorker.factBatch)
        XCTAssertTrue(worker.facts.isEmpty)

        let ring = ControlFactRing(capacity: 8)
        for id in 0..<8 as Range<UInt64> { XCTAssertTrue(ring.push(.connectionClosed(id))) }
        XCTAssertFalse(ring.push(.connectionClosed(0)), "full: refused, not overwritten")
        XCTAssertEqual(ring.droppedFull.load(ordering: .relaxed), 1)
        guard case .connectionClosed(0)? = ring.pop() else { return XCTFail("the oldest fact first") }
        XCTAssertTrue(ring.push(.connectionClosed(99_999)), "room again after a pop")
    }

    /// The receive threads of several packet workers push at once: every message and every fact
    /// arrives exactly once, each producer's in its own order (without the producers' lock two
    /// pushes take the same slot).
    func testSeveralProducersLoseAndRepeatNothing() throws {
        final class Got: @unchecked Sendable {
            let lock = Lock()
            var messages: [[UInt8]] = []
            var facts: [UInt64] = []
        }
        let got = Got()
        let worker = HandshakeWorker(snapshot: SnapshotCell(), replyCapacity: 8, factCapacity: ControlFactRing.gatewayCapacity,
                                     applyFacts: { next in
            while let fact = next() {
                guard case .connectionClosed(let id) = fact else { continue }
                got.lock.withLock { got.facts.append(id) }
            }
        }) { bytes, _ in
            got.lock.withLock { got.messages.append(Array(bytes.prefix(3))) }
        }
        try worker.start()
        defer { worker.shutdown() }
        let producers = 4, perProducer = 20_000
        let done = Semaphore()
        let ready = Atomic<Int>(0)
        for p in 0..<producers {
            try DetachedThread.start(name: "test-producer") {
                var m = [UInt8](repeating: 0, count: 148)
                m[0] = UInt8(p)
                let from = TransportAddress(via: .udp(socket: p), address: SocketAddress())
                // All start together, so their pushes overlap.
                ready.add(1, ordering: .sequentiallyConsistent)
                while ready.load(ordering: .sequentiallyConsistent) < producers {}
                for i in 0..<perProducer {
                    m[1] = UInt8(i >> 8)
                    m[2] = UInt8(i & 255)
                    while !m.withUnsafeBytes({ worker.push($0, from: from) }) { sched_yield() }
                    while !worker.pushFact(.connectionClosed(UInt64(p * 1_000_000 + i))) { sched_yield() }
                    worker.wakeIfIdle()
                }
                done.signal()
            }
        }
        for _ in 0..<producers { done.wait(timeoutMs: 30_000) }
        let total = producers * perProducer
        for _ in 0..<400 where got.lock.withLock({ got.messages.count < total || got.facts.count < total }) { usleep(5000) }
        let (messages, facts) = got.lock.withLock { (got.messages, got.facts) }
        XCTAssertEqual(messages.count, total)
        XCTAssertEqual(facts.count, total)
        // Where a producer's sequence first goes wrong (nil: all of them, once each, in order).
        func firstWrong(_ seen: [Int]) -> Int? {
            seen.count == perProducer && seen == Array(0..<perProducer) ? nil
                : zip(seen, 0..<perProducer).first(where: { $0 != $1 })?.1 ?? min(seen.count, perProducer)
        }
        for p in 0..<producers {
            let mine = messages.filter { $0[0] == UInt8(p) }.map { Int($0[1]) << 8 | Int($0[2]) }
            XCTAssertNil(firstWrong(mine), "producer \(p)'s messages (\(mine.count))")
            let myFacts = facts.filter { $0 / 1_000_000 == UInt64(p) }.map { Int($0 % 1_000_000) }
            XCTAssertNil(firstWrong(myFacts), "producer \(p)'s facts (\(myFacts.count))")
        }
    }
}
