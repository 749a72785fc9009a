import Foundation
import JVPNCluster
import JVPNCore
import JVPNSystem
import XCTest


/// JVPNCluster against a real three-member etcd (Raft, quorum, member loss): the CAS, the watch
/// and the lease that session ownership rests on.
final class EtcdClientTests: XCTestCase {
    var etcd: EtcdCluster!
    let sid = try! SessionID(bytes: [1, 2, 3, 4, 5, 6, 7, 8])

    override func setUpWithError() throws { etcd = try EtcdCluster() }
    override func tearDown() { etcd?.stop() }

    private func record(owner: String, version: UInt64 = 1, state: SessionState = .birth, tsMs: UInt64 = 0) -> SessionRecord {
        SessionRecord(peer: "key", owner: owner, bindingVersion: version, state: state,
                      initiationTimestamp: Timestamp12(unixNanoseconds: 1_700_000_000_000_000_000 + tsMs * 1_000_000),
                      reason: .handshakeOK, createdWallMs: 1, expiresWallMs: 2)
    }

    func testCreateIsExclusiveAndAConflictReturnsTheWinner() async throws {
        let a = SessionStore(client: EtcdClient(endpoints: etcd.endpoints))
        let b = SessionStore(client: EtcdClient(endpoints: etcd.endpoints.reversed()))
        guard case .succeeded(let rev) = await a.execute(.create(sid, record(owner: "a"))) else { return XCTFail("create") }
        let second = await b.execute(.create(sid, record(owner: "b")))
        XCTAssertEqual(second, .conflict(current: StoredRecord(record(owner: "a"), revision: rev)))
        await a.client.shutdown()
        await b.client.shutdown()
    }

    func testTwoNodesRacingForOneRecordExactlyOneWinsEveryRound() async throws {
        let stores = (0..<3).map { i in SessionStore(client: EtcdClient(endpoints: Array(etcd.endpoints[i...] + etcd.endpoints[..<i]))) }
        guard case .succeeded(var rev) = await stores[0].execute(.create(sid, record(owner: "n0"))) else { return XCTFail("create") }
        for round in 1...20 {
            let expected = rev
            let results = await withTaskGroup(of: (Int, StoreResult).self) { group in
                for (i, s) in stores.enumerated() {
                    group.addTask { (i, await s.execute(.claim(self.sid, expecting: expected,
                                                                self.record(owner: "n\(i)", version: UInt64(round), tsMs: UInt64(round))))) }
                }
                var all: [(Int, StoreResult)] = []
                for await r in group { all.append(r) }
                return all
            }
            let winners = results.filter { if case .succeeded = $0.1 { return true }; return false }
            XCTAssertEqual(winners.count, 1, "round \(round): \(results)")
            guard let (winner, result) = winners.first, case .succeeded(let newRev) = result else { continue }
            for (i, r) in results where i != winner {
                XCTAssertEqual(r, .conflict(current: StoredRecord(record(owner: "n\(winner)", version: UInt64(round), tsMs: UInt64(round)),
                                                                  revision: newRev)))
            }
            rev = newRev
        }
        for s in stores { await s.client.shutdown() }
    }

    func testLosingOneMemberChangesNothing() async throws {
        // A follower, first in the client's list: no election intervenes (the next test loses the leader).
        let victim = (try etcd.leader() + 1) % 3
        let s = SessionStore(client: EtcdClient(endpoints: etcd.endpoints(from: victim)))
        guard case .succeeded(let rev) = await s.execute(.create(sid, record(owner: "a"))) else { return XCTFail("create") }
        try etcd.kill(victim)
        // The preferred endpoint is dead: the request moves on to the next member, quorum holds.
        let t0 = Date()
        let r = await s.execute(.claim(sid, expecting: rev, record(owner: "b", version: 2)))
        guard case .succeeded = r else { return XCTFail("claim with one member down: \(r)") }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 2.0)
        await s.client.shutdown()
    }

    func testLosingTheLeaderCostsOneElection() async throws {
        let leader = try etcd.leader()
        let s = SessionStore(client: EtcdClient(endpoints: etcd.endpoints(from: leader)))
        guard case .succeeded(let rev) = await s.execute(.create(sid, record(owner: "a"))) else { return XCTFail("create") }
        try etcd.kill(leader)
        // Until the others elect a leader (election timeout 500 ms here) a follower forwards the
        // request to the dead one and never answers: the store is unreachable for that long, and a
        // retry, as the gateway core makes, then goes through. A timed-out claim may still have
        // been applied: its retry then finds its own record.
        let t0 = Date()
        var r = StoreResult.unreachable
        while case .unreachable = r, Date().timeIntervalSince(t0) < 10 {
            r = await s.execute(.claim(sid, expecting: rev, record(owner: "b", version: 2)))
        }
        switch r {
        case .succeeded: break
        case .conflict(let current): XCTAssertEqual(current?.record.owner, "b", "a conflict with another writer")
        case .unreachable: XCTFail("no answer 10 s after losing the leader")
        }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5.0)
        await s.client.shutdown()
    }

    func testUnreachableStoreAnswersUnreachableQuickly() async throws {
        let dead = SessionStore(client: EtcdClient(endpoints: [Endpoint(address: IPAddress("127.0.0.1")!, port: UInt16(etcd.base + 29))],
                                                   attemptTimeoutMs: 300))
        let t0 = Date()
        let r = await dead.execute(.create(sid, record(owner: "a")))
        XCTAssertEqual(r, .unreachable)
        XCTAssertLessThan(Date().timeIntervalSince(t0), 1.5)
        await dead.client.shutdown()
    }

    func testAFrozenMemberCostsOneDeadlineForRequestsAndWatches() async throws {
        try etcd.freeze(0)
        // The other two first elect a leader among themselves (the frozen one may have led).
        let others = EtcdClient(endpoints: Array(etcd.endpoints[1...]))
        var ready = false
        for _ in 0..<50 where !ready {
            if (try? await others.range(prefix: "/")) != nil { ready = true } else { try await Task.sleep(nanoseconds: 100_000_000) }
        }
        XCTAssertTrue(ready, "quorum without the frozen member")
        let revision = try await others.range(prefix: "/").revision

        // The frozen member accepts the connection and never answers: the request's deadline moves
        // it on to the next member. Run unawaited, so that a hang fails the test instead of hanging it.
        let client = EtcdClient(endpoints: etcd.endpoints, attemptTimeoutMs: 300)
        let t0 = Date()
        let answered = Outcome<Double>()
        Task {
            _ = try await client.range(prefix: "/")
            answered.set(Date().timeIntervalSince(t0))
        }
        let ok = await eventually(5) { answered.value != nil }
        XCTAssertTrue(ok, "a request with the first member frozen")
        XCTAssertLessThan(answered.value ?? 99, 1.5)

        // The same for a watch: its deadline covers the answer's head, then the stream lasts.
        let seen = Outcome<[EtcdWatchEvent]>(), ended = Outcome<Bool>()
        let watchClient = EtcdClient(endpoints: etcd.endpoints, attemptTimeoutMs: 300)
        let watch = Task {
            _ = try? await watchClient.watch(prefix: "/w/", startRevision: revision + 1) { events, _ in seen.set(events) }
            ended.set(true)
        }
        // Past the head's deadline, so that a deadline left on the stream would have cut it.
        try await Task.sleep(nanoseconds: 800_000_000)
        _ = try await others.txn(compare: [], success: [.put("/w/a", [1, 2], lease: nil)], failure: [])
        let watched = await eventually(5) { seen.value?.first?.key == "/w/a" }
        XCTAssertTrue(watched, "watch through the next member: \(String(describing: seen.value)), ended \(String(describing: ended.value))")
        // Cancelling the watch's task ends it (the agent restarts its watch that way).
        watch.cancel()
        let stopped = await eventually(3) { ended.value == true }
        XCTAssertTrue(stopped, "cancelled watch returned")
        await client.shutdown()
        await watchClient.shutdown()
        await others.shutdown()
    }

    func testAMemberStallingMidAnswerCostsOneDeadline() async throws {
        // The deadline covers a request's whole answer, not only its head.
        let stalling = try StallingHTTPServer()
        defer { stalling.stop() }
        let client = EtcdClient(endpoints: [stalling.endpoint] + etcd.endpoints, attemptTimeoutMs: 300)
        let t0 = Date()
        let answered = Outcome<Double>()
        Task {
            _ = try await client.range(prefix: "/")
            answered.set(Date().timeIntervalSince(t0))
        }
        let ok = await eventually(5) { answered.value != nil }
        XCTAssertTrue(ok, "a request with the first member stalling mid-answer")
        XCTAssertLessThan(answered.value ?? 99, 1.5)
        await client.shutdown()
    }

    func testShutdownEndsTheExchangesUnderWay() async throws {
        // Requests and a watch in flight when the client shuts down (the agent stops with its lease
        // renewals, store requests and watch under way): each ends, none uses the stopped event loop.
        for round in 0..<20 {
            let client = EtcdClient(endpoints: etcd.endpoints)
            let count = Counter()
            let watch = Task {
                _ = try? await client.watch(prefix: "/s/", startRevision: 1) { _, _ in }
                count.add()
            }
            for k in 0..<8 {
                Task {
                    _ = try? await client.txn(compare: [], success: [.put("/s/\(k)", [UInt8(k)], lease: nil)], failure: [])
                    count.add()
                }
            }
            try await Task.sleep(nanoseconds: UInt64(round % 5) * 1_000_000)
            await client.shutdown()
            let all = await eventually(3) { count.value == 9 }
            XCTAssertTrue(all, "round \(round): \(count.value) of 9 exchanges ended")
            watch.cancel()
        }
    }

    func testAClientDroppedWithoutShutdownEndsItsThread() async throws {
        let before = nioThreads()
        do {
            let client = EtcdClient(endpoints: etcd.endpoints)
            _ = try await client.range(prefix: "/")
            XCTAssertEqual(nioThreads(), before + 1, "the client's event-loop thread")
        }
        let ended = await eventually(3) { nioThreads() == before }
        XCTAssertTrue(ended, "NIO threads: \(nioThreads()), before \(before)")
    }

    /// This process's threads named by swift-nio's event loops.
    private func nioThreads() -> Int {
        let tasks = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? []
        return tasks.filter { ((try? String(contentsOfFile: "/proc/self/task/\($0)/comm", encoding: .utf8)) ?? "").hasPrefix("NIO-") }.count
    }

    func testAnAnswerOverSixteenMiBIsABadResponse() async throws {
        // 13 values of 1 MiB (etcd takes requests up to 1.5 MiB): their range, base64 in JSON, is
        // about 18 MB; a range over 4 of them is well under the bound.
        let client = EtcdClient(endpoints: etcd.endpoints, attemptTimeoutMs: 5000)
        let value = [UInt8](repeating: 0x78, count: 1 << 20)
        for k in 0..<13 {
            _ = try await client.txn(compare: [], success: [.put("/big/\(k)", value, lease: nil)], failure: [])
        }
        do {
            let all = try await client.range(prefix: "/big/")
            XCTFail("an 18 MB answer was accepted: \(all.kvs.count) keys")
        } catch EtcdError.badResponse(let why) {
            XCTAssertTrue(why.contains("larger than"), why)
        }
        let some = try await client.range(prefix: "/big/1")
        XCTAssertEqual(some.kvs.map(\.key), ["/big/1", "/big/10", "/big/11", "/big/12"])
        XCTAssertEqual(some.kvs.first?.value, value)
        await client.shutdown()
    }

    func testAgentRenewsItsLeaseFollowsRecordsAndAnswersRequests() async throws {
        let log = FactLog(), other = FactLog()
        let config = ClusterConfig(etcd: etcd.endpoints, nodeId: "gw-a", leaseTtlS: 2, lanInterface: "lan0")
        let agent = ClusterAgent(config: config, facts: log.facts)
        let peer = ClusterAgent(config: ClusterConfig(etcd: etcd.endpoints.reversed(), nodeId: "gw-b", leaseTtlS: 2, lanInterface: "lan0"),
                                facts: other.facts)
        agent.start()
        peer.start()
        var ok = await eventually(5) { log.renewalCount >= 1 && other.renewalCount >= 1 }
        XCTAssertTrue(ok, "lease granted")
        ok = await eventually(5) { agent.status()["members"] == .array(["gw-a", "gw-b"]) }
        XCTAssertTrue(ok, "each member sees the other: \(agent.status())")

        agent.submit(.create(sid, record(owner: "gw-a")))
        ok = await eventually(5) { log.answer(for: sid) != nil }
        guard ok, case .succeeded(let rev)? = log.answer(for: sid) else { return XCTFail("create answered: \(String(describing: log.answer(for: sid)))") }
        // The other member learns it through its watch, at the write's revision.
        ok = await eventually(5) { other.changes(of: sid).contains { $0.0?.record.owner == "gw-a" && $0.1 == rev } }
        XCTAssertTrue(ok, "watched: \(other.changes(of: sid))")

        // One etcd member (a follower: no election) dies: renewals, requests and the watch go on
        // through the others.
        try etcd.kill((try etcd.leader() + 1) % 3)
        let renewed = log.renewalCount
        peer.submit(.claim(sid, expecting: rev, record(owner: "gw-b", version: 1 << 32 | 1, state: .recovering, tsMs: 5)))
        ok = await eventually(5) { if case .succeeded? = other.answer(for: sid) { return true }; return false }
        XCTAssertTrue(ok, "claim with a member down: \(String(describing: other.answer(for: sid)))")
        ok = await eventually(5) { log.changes(of: sid).contains { $0.0?.record.owner == "gw-b" } }
        XCTAssertTrue(ok, "the old owner's watch sees the takeover")
        ok = await eventually(3) { log.renewalCount > renewed }
        XCTAssertTrue(ok, "lease renewed with a member down")
        XCTAssertEqual(log.lossCount, 0)

        // A node that stops (lease revoked) leaves the membership at once.
        await peer.stop()
        ok = await eventually(5) { agent.status()["members"] == .array(["gw-a"]) }
        XCTAssertTrue(ok, "member left: \(agent.status())")
        XCTAssertEqual(agent.status()["etcd"], "ok")
        await agent.stop()
    }

    func testWithoutQuorumTheAgentLosesItsLease() async throws {
        let log = FactLog()
        let agent = ClusterAgent(config: ClusterConfig(etcd: etcd.endpoints, nodeId: "gw-a", leaseTtlS: 2, lanInterface: "lan0"),
                                 facts: log.facts)
        agent.start()
        var ok = await eventually(5) { log.renewalCount >= 1 }
        XCTAssertTrue(ok)
        try etcd.kill(0)
        try etcd.kill(1)
        ok = await eventually(6) { log.lossCount >= 1 }
        XCTAssertTrue(ok, "no quorum: the lease cannot be renewed past its TTL")
        XCTAssertEqual(agent.status()["etcd"], "unreachable")
        // Quorum back: a new lease, the node serves again.
        try etcd.restart(0)
        let before = log.renewalCount
        ok = await eventually(10) { log.renewalCount > before }
        XCTAssertTrue(ok, "lease granted again once quorum is back")
        await agent.stop()
    }
}
