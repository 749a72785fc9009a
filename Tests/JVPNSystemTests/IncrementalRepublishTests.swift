import Foundation
import JVPNCore
@testable import JVPNDaemon
import XCTest

/// A change to one peer published with `republish(peers:)` leaves the packet threads the same view
/// as a full `republish()` would: the changed peer's receiver entries replaced, the others kept,
/// the AllowedIPs table shared rather than rebuilt.
final class IncrementalRepublishTests: XCTestCase {
    override func setUpWithError() throws { try Sodium.initialize() }

    private func host(peers: Int) throws -> SessionHost {
        var text = "[Interface]\nAddress = 10.77.0.1/24\nListenPort = 51820\nPrivateKey = \(PrivateKey.generate().base64)\n"
        for i in 0..<peers {
            text += "\n[Peer]\nPublicKey = \(PrivateKey.generate().publicKey.base64)\nAllowedIPs = 10.77.\(i / 200).\(i % 200 + 2)/32\n"
        }
        guard case .success(let config) = JVPNConfig.parse(text: text, file: "test.conf") else { throw XCTSkip("fixture does not parse") }
        let log = EventLog(path: "/dev/null")
        return try SessionHost(config: config, privateKey: PrivateKey.generate(), events: EventEmitter(log: log, side: "gateway"))
    }

    private func keypair(_ host: SessionHost, initiator: Bool) -> Keypair {
        Keypair(sendKey: [UInt8](repeating: 1, count: 32), receiveKey: [UInt8](repeating: 2, count: 32), localIndex: host.freshIndex(),
                remoteIndex: 7, createdAt: 0, isInitiator: initiator)!
    }

    /// Receiver index -> (peer, keys, unconfirmed) of the published snapshot.
    private func receivers(_ host: SessionHost) -> [UInt32: String] {
        Dictionary(uniqueKeysWithValues: host.snapshot.load().receivers.map { r in
            (r.key, "\(r.value.peerIndex) \(ObjectIdentifier(r.value.keypair).hashValue) \(r.value.isUnconfirmed)")
        })
    }

    func testOnePeersRekeyPublishesWhatAFullRebuildWould() throws {
        let h = try host(peers: 50)
        h.lock.withLock {
            for p in h.peers { h.install(keypair(h, initiator: true), in: p.keyRing, nowNs: 0) }
            h.republish()
        }
        let table = h.snapshot.load().routes
        XCTAssertEqual(h.snapshot.load().receivers.count, 50)

        // Peer 17 rekeys twice (old current -> previous, then one pushed out), peer 3 gets an
        // unconfirmed next: each published alone.
        let p17 = h.peers[17], p3 = h.peers[3]
        let incremental: [UInt32: String] = h.lock.withLock {
            h.install(keypair(h, initiator: true), in: p17.keyRing, nowNs: 1)
            h.republish(peers: [17])
            h.install(keypair(h, initiator: true), in: p17.keyRing, nowNs: 2)
            h.install(keypair(h, initiator: false), in: p3.keyRing, nowNs: 2)
            h.republish(peers: [17, 3])
            return receivers(h)
        }
        XCTAssertEqual(incremental.count, 50 + 1 + 1) // 17: current and previous; 3: current and next
        XCTAssertEqual(h.snapshot.load().routes.count, table.count)
        let full: [UInt32: String] = h.lock.withLock {
            h.republish()
            return receivers(h)
        }
        XCTAssertEqual(incremental, full)
        XCTAssertEqual(h.snapshot.load().receivers[p17.keyRing.current!.localIndex]?.peerIndex, 17)
        XCTAssertEqual(h.snapshot.load().receivers[p3.keyRing.next!.localIndex]?.isUnconfirmed, true)
    }

    /// A batch of control facts publishes once at its end (what a full rebuild would give), except
    /// when something in it must be published before it is sent (`publishCollected`).
    func testABatchPublishesOnceAtItsEnd() throws {
        let h = try host(peers: 20)
        h.lock.withLock {
            for p in h.peers { h.install(keypair(h, initiator: true), in: p.keyRing, nowNs: 0) }
            h.republish()
        }
        let start = h.snapshot.generation.load(ordering: .acquiring)
        var generations: [UInt64] = []
        let batched: [UInt32: String] = h.lock.withLock {
            h.publishingOnce {
                for i in [2, 5, 2, 11] {
                    h.install(keypair(h, initiator: true), in: h.peers[i].keyRing, nowNs: 1)
                    h.republish(peers: [i])
                }
                generations.append(h.snapshot.generation.load(ordering: .acquiring))
                h.install(keypair(h, initiator: false), in: h.peers[7].keyRing, nowNs: 2)
                h.republish(peers: [7])
                h.publishCollected()
                generations.append(h.snapshot.generation.load(ordering: .acquiring))
                h.install(keypair(h, initiator: true), in: h.peers[9].keyRing, nowNs: 3)
                h.republish(peers: [9])
                generations.append(h.snapshot.generation.load(ordering: .acquiring))
            }
            return receivers(h)
        }
        XCTAssertEqual(generations[0], start, "nothing published while the batch collects")
        XCTAssertGreaterThan(generations[1], start, "publishCollected publishes at once")
        XCTAssertEqual(generations[2], generations[1])
        XCTAssertGreaterThan(h.snapshot.generation.load(ordering: .acquiring), generations[2], "the batch's end publishes the rest")
        XCTAssertEqual(h.snapshot.load().receivers[h.peers[9].keyRing.current!.localIndex]?.peerIndex, 9)
        let full: [UInt32: String] = h.lock.withLock {
            h.republish()
            return receivers(h)
        }
        XCTAssertEqual(batched, full)
    }
}
