import Foundation
import JVPNCluster
@testable import JVPNCore
import JVPNSystem
import XCTest

/// A resume that names another peer's session, end to end but for the sockets: real handshake
/// crypto (the peer is whoever the Noise initiation authenticates), two clustered gateway cores fed
/// by their own ClusterAgent over a real three-member etcd. Peer A's session is recorded by gw-a;
/// peer B, a configured client of the same cluster, asks gw-b to resume it: refused
/// (OWNERSHIP_CONFLICT), nothing written, the record in etcd untouched.
final class ForeignResumeTests: XCTestCase {
    var etcd: EtcdCluster!

    override func setUpWithError() throws { etcd = try EtcdCluster() }
    override func tearDown() { etcd?.stop() }

    /// One gateway of the cluster: its core, fed with its agent's facts as the daemon does.
    final class Node: @unchecked Sendable {
        let lock = NSLock()
        var core: GatewayCore<String>
        var agent: ClusterAgent!
        private(set) var answers: [(SessionID, StoreResult)] = []

        init(_ name: String, endpoints: [Endpoint], peerKeys: [String]) {
            core = GatewayCore(policy: PolicyConfig(), peerCount: peerKeys.count, seed: 1, nowMs: Clock.monotonicMilliseconds(),
                               cluster: ClusterOwnership(node: name, peerKeys: peerKeys, leaseTtlMs: 2000))
            agent = ClusterAgent(config: ClusterConfig(etcd: endpoints, nodeId: name, leaseTtlS: 2, lanInterface: "lan0"), facts: ClusterAgent.Facts(
                answered: { [unowned self] s, r in self.lock.withLock {
                    self.answers.append((s, r))
                    self.perform(self.core.storeAnswered(session: s, r, nowMs: Clock.monotonicMilliseconds()))
                } },
                recordChanged: { [unowned self] s, r, v in self.lock.withLock {
                    self.perform(self.core.recordChanged(session: s, r, revision: v, nowMs: Clock.monotonicMilliseconds()))
                } },
                leaseRenewed: { [unowned self] t in self.lock.withLock { self.core.leaseRenewed(sentMs: t, nowMs: Clock.monotonicMilliseconds()) } },
                leaseLost: { [unowned self] in self.lock.withLock { self.perform(self.core.leaseLost(nowMs: Clock.monotonicMilliseconds())) } }))
        }

        /// Store requests go to etcd; everything else is the test's to look at.
        private(set) var actions: [GatewayAction<String>] = []
        func perform(_ a: [GatewayAction<String>]) {
            for action in a {
                if case .store(let r) = action { agent.submit(r) }
                actions.append(action)
            }
        }

        func initiation(_ received: ReceivedInitiation, peer: Int, from: String) -> InitiationDecision {
            lock.withLock {
                let (d, a) = core.initiation(peer: peer, session: received.sessionID, timestamp: received.timestamp,
                                             wallNs: Clock.wallNanoseconds(), from: from, nowMs: Clock.monotonicMilliseconds(),
                                             resume: InitiationFlags(word: received.flags).resume)
                perform(a)
                return d
            }
        }

        var isServing: Bool { lock.withLock { core.cluster?.isServing(nowMs: Clock.monotonicMilliseconds()) ?? false } }
        func did(_ match: (GatewayAction<String>) -> Bool) -> Bool { lock.withLock { actions.contains(where: match) } }
        var requestCount: Int { lock.withLock { actions.filter { if case .store = $0 { return true }; return false }.count } }
        func record(_ sid: SessionID) -> StoredRecord? { lock.withLock { core.cluster?.records[sid] } }
    }

    func testAResumeOfAnotherPeersSessionIsRefusedAndNothingIsWritten() async throws {
        let gatewayKey = PrivateKey.generate()
        let clientA = PrivateKey.generate(), clientB = PrivateKey.generate()
        let keys = [clientA.publicKey.base64, clientB.publicKey.base64]
        let gwA = Node("gw-a", endpoints: etcd.endpoints, peerKeys: keys)
        let gwB = Node("gw-b", endpoints: etcd.endpoints.reversed(), peerKeys: keys)
        gwA.agent.start()
        gwB.agent.start()
        addTeardownBlock { await gwA.agent.stop(); await gwB.agent.stop() }
        var ok = await eventually(5) { gwA.isServing && gwB.isServing }
        XCTAssertTrue(ok, "both nodes hold a lease")

        /// What the gateway's handshake code makes of `client`'s initiation: the authenticated peer.
        func initiation(from client: PrivateKey, session: SessionID, resume: ReasonCode?) throws -> (ReceivedInitiation, Int) {
            let (message, _) = try Handshake.makeInitiation(local: client, remote: gatewayKey.publicKey, sessionID: session, localIndex: 7,
                                                            timestamp: Timestamp12(unixNanoseconds: Clock.wallNanoseconds()),
                                                            flags: InitiationFlags(resume: resume).word)
            let received = try message.withUnsafeBytes { try Handshake.consumeInitiation($0, local: gatewayKey, isAuthorized: { keys.contains($0.base64) }) }
            return (received, try XCTUnwrap(keys.firstIndex(of: received.peer.base64)))
        }

        // Peer A opens its session on gw-a: recorded in etcd before it is answered.
        let sid = SessionID.random()
        let (openA, peerA) = try initiation(from: clientA, session: sid, resume: nil)
        XCTAssertEqual(peerA, 0)
        XCTAssertEqual(gwA.initiation(openA, peer: peerA, from: "10.0.0.1:4000"), .awaitStore)
        ok = await eventually(5) { gwA.did { $0 == .respondHeld(peer: 0, sid, rekey: false) } }
        XCTAssertTrue(ok, "gw-a recorded and answered peer A's session")
        ok = await eventually(5) { gwB.record(sid)?.record.owner == "gw-a" }
        XCTAssertTrue(ok, "gw-b's watch loaded the record")
        let stored = try XCTUnwrap(gwB.record(sid))
        XCTAssertEqual(stored.record.peer, clientA.publicKey.base64)

        // Peer B, authenticated by its own key, asks gw-b to resume A's session.
        let (resumeB, peerB) = try initiation(from: clientB, session: sid, resume: .probeTimeout)
        XCTAssertEqual(peerB, 1)
        let requestsBefore = gwB.requestCount
        XCTAssertEqual(gwB.initiation(resumeB, peer: peerB, from: "10.0.0.66:4000"), .drop(.ownershipConflict))
        XCTAssertEqual(gwB.requestCount, requestsBefore, "nothing is sent to etcd")
        XCTAssertTrue(gwB.did { if case .security(1, _, .ownershipConflict, "10.0.0.66:4000") = $0 { return true }; return false })

        // etcd itself: the record is A's, on gw-a, at the revision it was created with.
        let client = EtcdClient(endpoints: etcd.endpoints)
        let (kvs, _) = try await client.range(prefix: SessionStore.key(sid))
        await client.shutdown()
        XCTAssertEqual(kvs.count, 1)
        XCTAssertEqual(kvs.first?.modRevision, stored.revision, "the record was not written since")
        let current = try XCTUnwrap(kvs.first.flatMap { SessionStore.record($0.value) })
        XCTAssertEqual(current.owner, "gw-a")
        XCTAssertEqual(current.peer, clientA.publicKey.base64)
    }
}
