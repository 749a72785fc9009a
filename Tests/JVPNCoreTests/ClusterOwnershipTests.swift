import XCTest
@testable import JVPNCore

/// Ownership in a cluster, fact by fact: cores of several nodes over the CAS store model.
final class ClusterOwnershipTests: XCTestCase {
    typealias Core = GatewayCore<String>
    typealias Action = GatewayAction<String>
    let sid = try! SessionID(bytes: [1, 2, 3, 4, 5, 6, 7, 8])
    let sid2 = try! SessionID(bytes: [9, 9, 9, 9, 9, 9, 9, 9])
    let wall: UInt64 = 1_700_000_000_000_000_000
    let keys = ["peerA-key", "peerB-key"]
    var store = SimStore()
    /// How far each node's watch has replayed the store's log.
    var watched: [String: Int] = [:]

    private func ts(_ offsetMs: UInt64) -> Timestamp12 { Timestamp12(unixNanoseconds: wall + offsetMs * 1_000_000) }

    private func node(_ name: String, leaseUntil: UInt64 = 10_000) -> Core {
        var core = Core(policy: PolicyConfig(), peerCount: 2, seed: 1, nowMs: 0,
                        cluster: ClusterOwnership(node: name, peerKeys: keys, leaseTtlMs: 5000))
        core.leaseRenewed(sentMs: leaseUntil - 5000, nowMs: 0)
        return core
    }

    private func requests(_ a: [Action]) -> [StoreRequest] { a.compactMap { if case .store(let r) = $0 { return r }; return nil } }

    /// Performs the core's store requests against the model and feeds the answers back.
    @discardableResult
    private func serve(_ core: inout Core, _ actions: [Action], nowMs: UInt64) -> [Action] {
        var out: [Action] = []
        for r in requests(actions) { out += core.storeAnswered(session: r.session, store.apply(r), nowMs: nowMs) }
        return out
    }

    /// Replays the store's changes this node has not seen yet.
    @discardableResult
    private func watch(_ core: inout Core, _ name: String, nowMs: UInt64) -> [Action] {
        var out: [Action] = []
        let start = watched[name, default: 0]
        for c in store.log[start...] { out += core.recordChanged(session: c.session, c.stored, revision: c.revision, nowMs: nowMs) }
        watched[name] = store.log.count
        return out
    }

    /// Peer 0 opens `sid` on `core` from `address`: create, respond, confirm.
    private func open(_ core: inout Core, _ name: String, from address: String, at t: UInt64) {
        let (d, a) = core.initiation(peer: 0, session: sid, timestamp: ts(t), wallNs: wall + t * 1_000_000, from: address, nowMs: t)
        XCTAssertEqual(d, .awaitStore)
        XCTAssertEqual(requests(a).count, 1)
        guard case .create = requests(a).first else { return XCTFail("expected a create, got \(a)") }
        XCTAssertNil(core.pendingSession(ofPeer: 0), "nothing is answered before the store recorded it")
        let answered = serve(&core, a, nowMs: t + 2)
        XCTAssertTrue(answered.contains(.respondHeld(peer: 0, sid, rekey: false)))
        let c = core.confirmed(peer: 0, session: sid, from: address, bytes: 49, nowMs: t + 3)
        XCTAssertTrue(c.contains(.sessionOpened(peer: 0, sid)))
        watch(&core, name, nowMs: t + 3)
    }

    /// Peer `peer` resumes `session` on `core`; returns the initiation's actions.
    private func resume(_ core: inout Core, peer: Int = 0, session: SessionID? = nil, from address: String, at t: UInt64,
                        timestamp: Timestamp12? = nil) -> (InitiationDecision, [Action]) {
        core.initiation(peer: peer, session: session ?? sid, timestamp: timestamp ?? ts(t), wallNs: wall + t * 1_000_000,
                        from: address, nowMs: t, resume: .probeTimeout)
    }

    func testNewSessionIsRecordedBeforeItIsAnswered() {
        var a = node("gw-a")
        open(&a, "gw-a", from: "c1", at: 100)
        XCTAssertEqual(store.records[sid]?.record.owner, "gw-a")
        XCTAssertEqual(store.records[sid]?.record.peer, "peerA-key")
        XCTAssertEqual(store.records[sid]?.record.state, .birth)
        XCTAssertEqual(a.session(ofPeer: 0)?.bindingVersion, 1)
        XCTAssertEqual(a.cluster?.counters.created, 1)
        XCTAssertEqual(a.cluster?.ownedRecords, 1)
    }

    func testResumeTakesTheSessionInOneCASAndTheOldOwnerLetsGo() {
        var a = node("gw-a"), b = node("gw-b")
        open(&a, "gw-a", from: "c1", at: 100)
        watch(&b, "gw-b", nowMs: 100)
        let before = store.records[sid]!
        let (d, act) = resume(&b, from: "c2", at: 2000)
        XCTAssertEqual(d, .awaitStore)
        XCTAssertEqual(requests(act), [.claim(sid, expecting: before.revision, requests(act).first.flatMap {
            if case .claim(_, _, let r) = $0 { return r }; return nil }!)])
        let answered = serve(&b, act, nowMs: 2002)
        let expectedVersion: UInt64 = 1 << 32 | 1
        XCTAssertTrue(answered.contains(.ownershipChanged(peer: 0, sid, OwnershipChange(fromNode: "gw-a", toNode: "gw-b",
                                                                                     bindingVersion: expectedVersion,
                                                                                     reason: .probeTimeout, boundAt: nil))))
        XCTAssertTrue(answered.contains(.respondHeld(peer: 0, sid, rekey: false)))
        XCTAssertEqual(store.records[sid]?.record.owner, "gw-b")
        XCTAssertEqual(store.records[sid]?.record.state, .recovering)
        let confirmed = b.confirmed(peer: 0, session: sid, from: "c2", bytes: 49, nowMs: 2003)
        XCTAssertTrue(confirmed.contains(.arrived(peer: 0, sid, fromNode: "gw-a", to: "c2", reason: .probeTimeout)))
        XCTAssertEqual(b.session(ofPeer: 0)?.bindingVersion, expectedVersion, "the new owner's versions are above the old one's")
        XCTAssertEqual(b.session(ofPeer: 0)?.bound, "c2")

        // The old owner, still alive, sees the change through its watch and stops serving.
        let seen = watch(&a, "gw-a", nowMs: 2005)
        XCTAssertTrue(seen.contains(.ownershipChanged(peer: 0, sid, OwnershipChange(fromNode: "gw-a", toNode: "gw-b",
                                                                                 bindingVersion: expectedVersion,
                                                                                 reason: .probeTimeout, boundAt: "c1"))))
        XCTAssertTrue(seen.contains(.released(peer: 0, sid)))
        XCTAssertTrue(seen.contains { if case .stateChanged(0, _, let c) = $0 { return c.to == .terminated && c.reason == .ownershipConflict }; return false })
        XCTAssertNil(a.session(ofPeer: 0), "no dual-active: the old owner holds nothing of it")
        XCTAssertEqual(a.cluster?.counters.released, 1)
        // Its own watch echo changes nothing on the new owner.
        XCTAssertEqual(watch(&b, "gw-b", nowMs: 2006), [])
        XCTAssertEqual(b.session(ofPeer: 0)?.isLive, true)
    }

    func testTwoNodesRacingForOneSessionExactlyOneWins() {
        var a = node("gw-a"), b = node("gw-b"), c = node("gw-c")
        open(&a, "gw-a", from: "c1", at: 100)
        watch(&b, "gw-b", nowMs: 100)
        watch(&c, "gw-c", nowMs: 100)
        let (_, fromB) = resume(&b, from: "c2", at: 2000)
        let (_, fromC) = resume(&c, from: "c3", at: 2001, timestamp: ts(2001))
        let answerB = serve(&b, fromB, nowMs: 2003)
        let answerC = serve(&c, fromC, nowMs: 2003)
        XCTAssertTrue(answerB.contains(.respondHeld(peer: 0, sid, rekey: false)))
        XCTAssertTrue(answerC.contains(.dropHeld(peer: 0, sid)))
        XCTAssertFalse(answerC.contains(.respondHeld(peer: 0, sid, rekey: false)))
        XCTAssertEqual(c.cluster?.counters.casConflicts, 1)
        XCTAssertEqual(c.cluster?.records[sid]?.record.owner, "gw-b", "the loser learns the winner from the conflict")
        XCTAssertEqual(store.records[sid]?.record.owner, "gw-b")
    }

    /// A resume reaching the node that serves the session: answered (as a rekey, same
    /// binding_version) only once a compare-and-swap on the record as read shows it still owns it.
    func testResumeOfTheSessionServedHereIsCheckedInTheStore() {
        var a = node("gw-a")
        open(&a, "gw-a", from: "c1", at: 100)
        let version = a.session(ofPeer: 0)?.bindingVersion
        let (d, act) = resume(&a, from: "c2", at: 2000)
        XCTAssertEqual(d, .awaitStore, "not answered as a rekey before the store confirmed it")
        guard case .claim(_, _, let kept)? = requests(act).first else { return XCTFail("expected a CAS, got \(act)") }
        XCTAssertEqual(kept.owner, "gw-a")
        XCTAssertEqual(kept.bindingVersion, store.records[sid]?.record.bindingVersion)
        let answered = serve(&a, act, nowMs: 2002)
        XCTAssertEqual(answered, [.respondHeld(peer: 0, sid, rekey: true)])
        XCTAssertEqual(a.session(ofPeer: 0)?.bindingVersion, version)
        XCTAssertEqual(a.session(ofPeer: 0)?.isLive, true)
    }

    /// The node serving the session is cut off from the store (its lease still holds) while another
    /// node took the session over: the client's resume back to it fails its CAS and is refused, so
    /// the session is never served by a node the store no longer names.
    func testResumeOfTheSessionServedHereWithAStaleViewIsRefused() {
        var a = node("gw-a"), b = node("gw-b")
        open(&a, "gw-a", from: "c1", at: 100)
        watch(&b, "gw-b", nowMs: 100)
        let (_, take) = resume(&b, from: "c2", at: 2000)
        XCTAssertTrue(serve(&b, take, nowMs: 2002).contains(.respondHeld(peer: 0, sid, rekey: false)))
        // gw-a's watch has not delivered the change: it still serves the session.
        XCTAssertEqual(a.session(ofPeer: 0)?.isLive, true)
        let (d, back) = resume(&a, from: "c1", at: 2100)
        XCTAssertEqual(d, .awaitStore)
        let answered = serve(&a, back, nowMs: 2102)
        XCTAssertTrue(answered.contains(.dropHeld(peer: 0, sid)), "\(answered)")
        XCTAssertFalse(answered.contains { if case .respondHeld = $0 { return true }; return false })
        XCTAssertEqual(store.records[sid]?.record.owner, "gw-b")
    }

    func testResumeOfAnotherPeersSessionIsRefused() {
        var a = node("gw-a"), b = node("gw-b")
        open(&a, "gw-a", from: "c1", at: 100)
        watch(&b, "gw-b", nowMs: 100)
        let (d, act) = resume(&b, peer: 1, from: "x", at: 2000)
        XCTAssertEqual(d, .drop(.ownershipConflict))
        XCTAssertEqual(requests(act), [], "nothing is written")
        XCTAssertTrue(act.contains { if case .security(1, _, .ownershipConflict, "x") = $0 { return true }; return false })
        XCTAssertEqual(store.records[sid]?.record.owner, "gw-a")
    }

    func testReplayedInitiationNeverTakesTheSessionBack() {
        var a = node("gw-a"), b = node("gw-b"), c = node("gw-c")
        open(&a, "gw-a", from: "c1", at: 100)
        watch(&b, "gw-b", nowMs: 100)
        let (_, act) = resume(&b, from: "c2", at: 2000)
        serve(&b, act, nowMs: 2001)
        watch(&c, "gw-c", nowMs: 2002)
        // The same resume initiation, captured and sent to a third node later.
        let (d, replay) = resume(&c, from: "evil", at: 3000, timestamp: ts(2000))
        XCTAssertEqual(d, .drop(.replayDetected))
        XCTAssertEqual(requests(replay), [])
        XCTAssertEqual(store.records[sid]?.record.owner, "gw-b")
    }

    func testAFreshHandshakeNamingARecordedSessionIsNotAResume() {
        var a = node("gw-a"), b = node("gw-b")
        open(&a, "gw-a", from: "c1", at: 100)
        watch(&b, "gw-b", nowMs: 100)
        let (d, act) = b.initiation(peer: 0, session: sid, timestamp: ts(2000), wallNs: wall, from: "c2", nowMs: 2000)
        XCTAssertEqual(d, .drop(.ownershipConflict))
        XCTAssertEqual(requests(act), [])
    }

    func testWithoutLeaseNothingIsRecordedOrServed() {
        var a = node("gw-a", leaseUntil: 5000)
        open(&a, "gw-a", from: "c1", at: 100)
        // The lease is not renewed (etcd unreachable): at its end the node stops serving.
        XCTAssertEqual(a.tick(nowMs: 4999).filter { if case .released = $0 { return true }; return false }, [])
        let out = a.tick(nowMs: 5000)
        XCTAssertTrue(out.contains(.released(peer: 0, sid)))
        XCTAssertTrue(out.contains(.ownershipChanged(peer: 0, sid, OwnershipChange(fromNode: "gw-a", toNode: "", bindingVersion: 1,
                                                                                reason: .storeUnavailable, boundAt: "c1"))))
        XCTAssertNil(a.session(ofPeer: 0))
        // New sessions and resumes are refused with a clear reason, nothing is sent to the store.
        let (d, act) = a.initiation(peer: 1, session: sid2, timestamp: ts(6000), wallNs: wall, from: "c9", nowMs: 6000)
        XCTAssertEqual(d, .drop(.storeUnavailable))
        XCTAssertEqual(requests(act), [])
        XCTAssertTrue(act.contains { if case .audit(1, _, let r) = $0 { return r.detail.contains("STORE_UNAVAILABLE") }; return false })
        XCTAssertEqual(a.cluster?.counters.refusedUnavailable, 1)
        // The store stays as it was: the record still names gw-a until someone claims it.
        XCTAssertEqual(store.records[sid]?.record.owner, "gw-a")
    }

    func testUnreachableStoreRefusesTheHeldInitiation() {
        var a = node("gw-a")
        let (_, act) = a.initiation(peer: 0, session: sid, timestamp: ts(100), wallNs: wall, from: "c1", nowMs: 100)
        XCTAssertEqual(requests(act).count, 1)
        let out = a.storeAnswered(session: sid, .unreachable, nowMs: 2100)
        XCTAssertTrue(out.contains(.dropHeld(peer: 0, sid)))
        XCTAssertNil(a.pendingSession(ofPeer: 0))
        // The client's retry starts a new attempt.
        let (d, _) = a.initiation(peer: 0, session: sid, timestamp: ts(1100), wallNs: wall, from: "c1", nowMs: 2200)
        XCTAssertEqual(d, .awaitStore)
    }

    func testARetryWhileTheStoreWorksReplacesTheHeldInitiation() {
        var a = node("gw-a")
        let (_, act) = a.initiation(peer: 0, session: sid, timestamp: ts(100), wallNs: wall, from: "c1", nowMs: 100)
        let (d, again) = a.initiation(peer: 0, session: sid, timestamp: ts(1100), wallNs: wall, from: "c2", nowMs: 1100)
        XCTAssertEqual(d, .awaitStore)
        XCTAssertEqual(requests(again), [], "one request per session in flight")
        serve(&a, act, nowMs: 1101)
        _ = a.confirmed(peer: 0, session: sid, from: "c2", bytes: 49, nowMs: 1102)
        XCTAssertEqual(a.session(ofPeer: 0)?.bound, "c2", "bound where the newest response went")
    }

    func testEndedSessionIsRecordedTerminatedAndNeverResumed() {
        var a = node("gw-a"), b = node("gw-b")
        open(&a, "gw-a", from: "c1", at: 100)
        let out = a.control(peer: 0, .close(reason: .operatorRequest), from: "c1", bytes: 40, nowMs: 200)
        guard case .update(_, _, let ended)? = requests(out).first else { return XCTFail("no update: \(out)") }
        XCTAssertEqual(ended.state, .terminated)
        XCTAssertEqual(ended.reason, .peerClosed)
        serve(&a, out, nowMs: 201)
        watch(&b, "gw-b", nowMs: 202)
        XCTAssertEqual(resume(&b, from: "c2", at: 2000).0, .drop(.unknownSession))
    }

    func testUnconfirmedCreationIsDeleted() {
        var a = node("gw-a")
        let (_, act) = a.initiation(peer: 0, session: sid, timestamp: ts(100), wallNs: wall, from: "c1", nowMs: 100)
        serve(&a, act, nowMs: 101)
        XCTAssertNotNil(store.records[sid])
        let expired = a.tick(nowMs: 100 + GatewayLimits.pendingLifetimeMs + 1)
        XCTAssertTrue(expired.contains(.pendingDropped(peer: 0, sid)))
        serve(&a, expired, nowMs: 5200)
        XCTAssertNil(store.records[sid])
    }

    func testOlderWatchEventsDoNotUndoNewerKnowledge() {
        var a = node("gw-a"), b = node("gw-b"), c = node("gw-c")
        open(&a, "gw-a", from: "c1", at: 100)
        let created = store.log.last!
        watch(&b, "gw-b", nowMs: 100)
        watch(&c, "gw-c", nowMs: 100)
        serve(&c, resume(&c, from: "c3", at: 2000).1, nowMs: 2001)
        // b's claim loses and the conflict tells it the newer record (c's)...
        serve(&b, resume(&b, from: "c2", at: 2002).1, nowMs: 2003)
        XCTAssertEqual(b.cluster?.records[sid]?.record.owner, "gw-c")
        // ...which an older change its watch reports late must not undo.
        _ = b.recordChanged(session: sid, created.stored, revision: created.revision, nowMs: 2004)
        XCTAssertEqual(b.cluster?.records[sid]?.record.owner, "gw-c")
    }

    func testShutdownLetsSessionsGoWithoutEndingThem() {
        var a = node("gw-a")
        open(&a, "gw-a", from: "c1", at: 100)
        let out = a.shutdown(reason: .operatorRequest, nowMs: 300)
        XCTAssertTrue(out.contains(.released(peer: 0, sid)))
        XCTAssertFalse(out.contains { if case .send = $0 { return true }; return false }, "no close: the client resumes elsewhere")
        XCTAssertEqual(requests(out), [])
        XCTAssertNotEqual(store.records[sid]?.record.state, .terminated)
    }

    func testExpiredRecordsAreCollected() {
        var a = node("gw-a")
        open(&a, "gw-a", from: "c1", at: 100)
        let expires = store.records[sid]!.record.expiresWallMs
        XCTAssertEqual(requests(a.maintenance(nowMs: 200, wallMs: expires - 1)), [])
        let out = a.maintenance(nowMs: 300, wallMs: expires + 1)
        XCTAssertEqual(requests(out).count, 1)
        serve(&a, out, nowMs: 301)
        XCTAssertNil(store.records[sid])
        XCTAssertTrue(watch(&a, "gw-a", nowMs: 302).contains(.released(peer: 0, sid)))
    }

    func testStandaloneGatewayRefusesResumesOfWhatItDoesNotHold() {
        var core = Core(policy: PolicyConfig(), peerCount: 1, seed: 1, nowMs: 0)
        let (d, act) = core.initiation(peer: 0, session: sid, timestamp: ts(0), wallNs: wall, from: "c1", nowMs: 0, resume: .probeTimeout)
        XCTAssertEqual(d, .drop(.unknownSession))
        XCTAssertEqual(requests(act), [])
        XCTAssertEqual(core.initiation(peer: 0, session: sid, timestamp: ts(1), wallNs: wall, from: "c1", nowMs: 1).0, .respondNewSession)
    }

    func testRecordJSONRoundTrip() throws {
        let r = SessionRecord(peer: "k", owner: "gw-a", bindingVersion: 3 << 32 | 7, state: .recovering, initiationTimestamp: ts(5),
                              reason: .betterPath, createdWallMs: 1_700_000_000_000, expiresWallMs: 1_700_086_400_000)
        XCTAssertEqual(SessionRecord(json: try JSONValue.parse(r.json.text)), r)
        XCTAssertNil(SessionRecord(json: ["peer": "k"]))
        XCTAssertEqual(OwnershipEpoch.next(after: 1), 1 << 32 | 1)
        XCTAssertEqual(OwnershipEpoch.next(after: 1 << 32 | 9), 2 << 32 | 1)
        XCTAssertEqual(InitiationFlags(word: InitiationFlags(resume: .betterPath).word).resume, .betterPath)
        XCTAssertNil(InitiationFlags(word: 0).resume)
        XCTAssertEqual(InitiationFlags(word: 1 | UInt32(ReasonCode.operatorRequest.wireCode) << 8).resume, .probeTimeout)
    }
}
