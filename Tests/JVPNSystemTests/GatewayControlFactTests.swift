import Glibc
import JVPNCore
@testable import JVPNDaemon
import JVPNSystem
import XCTest

/// A gateway applies the receive thread's control facts on its worker, some time after the frames
/// were opened, and a full queue may have dropped some: a control frame on keys not confirmed yet
/// confirms them (its confirmation was lost), and a frame on keys the peer no longer holds is
/// ignored rather than applied to the session that has replaced them. Real handshake crypto and
/// loopback sockets (what the gateway sends goes to a socket nobody reads).
final class GatewayControlFactTests: XCTestCase {
    override func setUpWithError() throws { try Sodium.initialize() }

    private let gatewayKey = PrivateKey.generate()
    private let clientKey = PrivateKey.generate()
    private var client: UDPSocket!
    private var from: TransportAddress!

    private func gateway() throws -> GatewayHost {
        let text = "[Interface]\nAddress = 10.77.0.1/24\nListenPort = 51820\nPrivateKey = \(gatewayKey.base64)\n\n"
            + "[Peer]\nPublicKey = \(clientKey.publicKey.base64)\nAllowedIPs = 10.77.0.2/32\n"
        guard case .success(let config) = JVPNConfig.parse(text: text, file: "test.conf") else { throw XCTSkip("fixture does not parse") }
        let gw = try GatewayHost(config: config, privateKey: gatewayKey, events: EventEmitter(log: EventLog(path: "/dev/null"), side: "gateway"))
        let loopback = SocketAddress(addressBytes: [127, 0, 0, 1], port: 0)!
        client = try UDPSocket(family: AF_INET, localAddress: loopback)
        from = TransportAddress(via: .udp(socket: 0), address: SocketAddress(addressBytes: [127, 0, 0, 1], port: client.localPort)!)
        gw.sockets = [try UDPSocket(family: AF_INET, localAddress: loopback)]
        gw.lock.withLock { gw.republish() }
        return gw
    }

    /// The client's initiation, answered: returns the keys the gateway holds for it, unconfirmed.
    private func handshake(_ gw: GatewayHost, session: SessionID) throws -> Keypair {
        let (message, _) = try Handshake.makeInitiation(local: clientKey, remote: gatewayKey.publicKey, sessionID: session,
                                                        localIndex: 7, timestamp: Timestamp12(unixNanoseconds: Clock.wallNanoseconds()))
        message.withUnsafeBytes { gw.handleHandshake($0, from: from) }
        let unconfirmed = gw.snapshot.load().receivers.map(\.value).filter { $0.peerIndex == 0 && $0.isUnconfirmed }
        XCTAssertEqual(unconfirmed.count, 1)
        return try XCTUnwrap(unconfirmed.first?.keypair)
    }

    private func live(_ gw: GatewayHost) -> SessionID? {
        gw.lock.withLock { gw.sessionStatus(gw.peers[0], nowMs: Clock.monotonicMilliseconds()) }.flatMap { $0.isLive ? $0.id : nil }
    }

    func testAControlFrameOnKeysWhoseConfirmationWasLostConfirmsThem() throws {
        let gw = try gateway()
        let sid = SessionID.random()
        let keys = try handshake(gw, session: sid)
        XCTAssertNil(live(gw))
        // No .confirm fact (the queue was full): the probe on the same keys opens the session.
        gw.apply(one: .control(peer: 0, .probe(seq: 1, sentAtNs: 0, pathID: 1), keypair: keys, from: from, bytes: 64))
        XCTAssertEqual(live(gw), sid)
        XCTAssertEqual(gw.snapshot.load().receivers[keys.localIndex]?.isUnconfirmed, false)
    }

    func testAControlFrameOnKeysThePeerNoLongerHoldsIsIgnored() throws {
        let gw = try gateway()
        let first = try handshake(gw, session: .random())
        gw.apply(one: .confirm(peer: 0, keypair: first, from: from, bytes: 64))
        // A new session replaces the first; its keys are confirmed.
        let sid = SessionID.random()
        let second = try handshake(gw, session: sid)
        gw.apply(one: .confirm(peer: 0, keypair: second, from: from, bytes: 64))
        XCTAssertEqual(live(gw), sid)
        // A close sealed with the first session's keys, applied late: it must not end the second.
        gw.apply(one: .control(peer: 0, .close(reason: .operatorRequest), keypair: first, from: from, bytes: 64))
        XCTAssertEqual(live(gw), sid)
        // The same close on the second session's keys does end it.
        gw.apply(one: .control(peer: 0, .close(reason: .operatorRequest), keypair: second, from: from, bytes: 64))
        XCTAssertNil(live(gw))
    }
}
