import Foundation
import Glibc
import JVPNCore
import JVPNSystem
import XCTest

/// A real gateway daemon in its own namespace, and a hand-made client in the test that owns the
/// session keys: forged, replayed, stale and racing REATTACHes must each be rejected with their
/// reason and a SECURITY_EVENT, and never move the binding.
final class ReattachSecurityTests: XCTestCase {
    private var ns: NetlinkNamespace?
    private var gateway: Process?
    private var dir = ""
    private let port: UInt16 = 51999

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("needs root (namespaces, TUN)") }
        try Sodium.initialize()
    }

    override func tearDown() {
        if let g = gateway, g.isRunning {
            g.terminate()
            for _ in 0..<50 where g.isRunning { usleep(100_000) }
            if g.isRunning { kill(g.processIdentifier, SIGKILL) }
        }
        ns?.destroy()
        if !dir.isEmpty { try? FileManager.default.removeItem(atPath: dir) }
    }

    private func jvpnBinary() -> String? {
        if let env = ProcessInfo.processInfo.environment["JVPN_BIN"], FileManager.default.isExecutableFile(atPath: env) { return env }
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        for build in [".build/debug/jvpn", ".build/release/jvpn"] {
            let p = url.appendingPathComponent(build).path
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// Receives one datagram within `timeoutMs`.
    private func receive(_ s: UDPSocket, timeoutMs: Int32 = 1000) -> [UInt8]? {
        let poller = Poller([s.fileDescriptor])
        guard poller.wait(timeoutMs: timeoutMs) > 0 else { return nil }
        var buf = [UInt8](repeating: 0, count: 2048)
        let n = buf.withUnsafeMutableBytes { recv(s.fileDescriptor, $0.baseAddress, $0.count, 0) }
        return n > 0 ? Array(buf[0..<n]) : nil
    }

    private func seal(_ m: ControlMessage, _ kp: Keypair) -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: 256)
        let total = buf.withUnsafeMutableBytes { raw -> Int in
            let n = m.encode(into: raw.baseAddress! + Frame.headerLength, capacity: 200)
            return Frame.seal(type: .control, receiverIndex: kp.remoteIndex, counter: kp.nextCounter()!, key: kp,
                              buffer: raw.baseAddress!, plaintextLength: n)
        }
        return Array(buf[0..<total])
    }

    private func open(_ bytes: [UInt8], _ kp: Keypair) -> ControlMessage? {
        var b = bytes
        return b.withUnsafeMutableBytes { raw -> ControlMessage? in
            guard let h = Frame.peekHeader(raw.baseAddress!, length: raw.count), h.type == .control,
                  let n = Frame.open(header: h, key: kp, buffer: raw.baseAddress!, length: raw.count) else { return nil }
            return try? ControlMessage.decode(UnsafeRawBufferPointer(start: raw.baseAddress! + Frame.headerLength, count: n))
        }
    }

    private func status(_ name: String) -> [String: Any]? {
        guard let r = UnixControlClient.request(path: "/run/jvpn/\(name).sock", line: "status"),
              let o = try? JSONSerialization.jsonObject(with: Data(r.utf8)) as? [String: Any],
              let s = (o["sessions"] as? [[String: Any]])?.first else { return nil }
        return s
    }

    func testForgedReplayedStaleAndRacingReattach() throws {
        guard let bin = jvpnBinary() else { return XCTFail("no jvpn binary: run `swift build` first (or set JVPN_BIN)") }
        let namespace = try NetlinkNamespace()
        ns = namespace
        try namespace.ip(["link", "set", "lo", "up"])
        dir = NSTemporaryDirectory() + "jvpn-reattach-\(getpid())-\(UInt32.random(in: 0..<1_000_000))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let gwKey = PrivateKey.generate()
        let clientKey = PrivateKey.generate()
        let name = "jr\(UInt32.random(in: 0..<1_000_000))"
        let events = "\(dir)/\(name).events.jsonl"
        let conf = """
            [Interface]
            Name = \(name)
            PrivateKey = \(gwKey.base64)
            Address = 10.78.0.1/24
            ListenPort = \(port)
            EventLog = \(events)

            [Peer]
            PublicKey = \(clientKey.publicKey.base64)
            AllowedIPs = 10.78.0.2/32
            """
        try conf.write(toFile: "\(dir)/\(name).conf", atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: "\(dir)/\(name).conf")
        let g = Process()
        g.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        g.arguments = ["netns", "exec", namespace.name, bin, "up", "\(dir)/\(name).conf", "--foreground"]
        g.standardOutput = FileHandle.nullDevice
        try g.run()
        gateway = g
        var up = false
        for _ in 0..<100 where !up {
            up = UnixControlClient.request(path: "/run/jvpn/\(name).sock", line: "ping", timeoutMs: 200) != nil
            if !up { usleep(50_000) }
        }
        XCTAssertTrue(up, "gateway did not start")

        try namespace.run { [self] in
            let lo = SocketAddress(addressBytes: [127, 0, 0, 1], port: 0)!
            let gw = SocketAddress(addressBytes: [127, 0, 0, 1], port: port)!
            let a = try UDPSocket(localAddress: lo), b = try UDPSocket(localAddress: lo), c = try UDPSocket(localAddress: lo)
            // Handshake on path A.
            let sid = SessionID.random()
            let (initiation, state) = try Handshake.makeInitiation(local: clientKey, remote: gwKey.publicKey, sessionID: sid, localIndex: 7,
                                                                    timestamp: Timestamp12(unixNanoseconds: Clock.wallNanoseconds()))
            initiation.withUnsafeBytes { _ = a.send($0.baseAddress!, length: $0.count, to: gw) }
            guard let response = receive(a) else { return XCTFail("no handshake response") }
            let kp = try response.withUnsafeBytes { try state.consumeResponse($0, now: 0) }
            // A probe confirms the keys (the responder promotes them on first use).
            let probe = seal(.probe(seq: 1, sentAtNs: 1, pathID: 0), kp)
            probe.withUnsafeBytes { _ = a.send($0.baseAddress!, length: $0.count, to: gw) }
            guard let reply = receive(a), case .probeReply? = open(reply, kp) else { return XCTFail("no probe reply") }
            // B and C prove they receive there: a probe from each draws a reply and a PATH_CHALLENGE.
            for (i, s) in [b, c].enumerated() {
                seal(.probe(seq: UInt32(2 + i), sentAtNs: 1, pathID: UInt32(1 + i)), kp).withUnsafeBytes { _ = s.send($0.baseAddress!, length: $0.count, to: gw) }
                var challenge: UInt64?
                for _ in 0..<2 {
                    if case .pathChallenge(let d)? = receive(s).flatMap({ open($0, kp) }) { challenge = d }
                }
                guard let challenge else { return XCTFail("no PATH_CHALLENGE for a probe from a new address") }
                seal(.pathResponse(data: challenge), kp).withUnsafeBytes { _ = s.send($0.baseAddress!, length: $0.count, to: gw) }
            }
            usleep(100_000)

            // 1. Forged: right index, wrong keys.
            let forger = Keypair(sendKey: [UInt8](repeating: 9, count: 32), receiveKey: [UInt8](repeating: 8, count: 32),
                                 localIndex: 7, remoteIndex: kp.remoteIndex, createdAt: 0, isInitiator: true)!
            let forged = seal(.reattachRequest(sessionID: sid, bindingVersion: 1, pathID: 1, nonce: .random(), reason: .linkDown), forger)
            forged.withUnsafeBytes { _ = b.send($0.baseAddress!, length: $0.count, to: gw) }
            usleep(200_000)

            // 2. A valid REATTACH moves the binding to B (version 1 -> 2).
            let nonce1 = ControlNonce.random()
            let valid = seal(.reattachRequest(sessionID: sid, bindingVersion: 1, pathID: 1, nonce: nonce1, reason: .linkDown), kp)
            valid.withUnsafeBytes { _ = b.send($0.baseAddress!, length: $0.count, to: gw) }
            guard let ackBytes = receive(b), case .reattachAck(_, let v, let echoed)? = open(ackBytes, kp) else { return XCTFail("no ACK") }
            XCTAssertEqual(v, 2)
            XCTAssertEqual(echoed, nonce1)

            // 3. Replayed: the same bytes again, from C.
            valid.withUnsafeBytes { _ = c.send($0.baseAddress!, length: $0.count, to: gw) }
            usleep(200_000)

            // 4. Stale: fresh counter, old binding_version.
            let nonce2 = ControlNonce.random()
            seal(.reattachRequest(sessionID: sid, bindingVersion: 1, pathID: 2, nonce: nonce2, reason: .linkDown), kp)
                .withUnsafeBytes { _ = c.send($0.baseAddress!, length: $0.count, to: gw) }
            guard let rej = receive(c), case .reject(let reason, let n2, _)? = open(rej, kp) else { return XCTFail("no reject for stale") }
            XCTAssertEqual(reason, .staleVersion)
            XCTAssertEqual(n2, nonce2)
            XCTAssertEqual(status(name)?["binding_version"] as? Int, 2)
            XCTAssertEqual(status(name)?["active_path"] as? String, "127.0.0.1:\(b.localPort)")

            // 5. Two valid REATTACHes race for version 2: exactly one wins.
            let ra = seal(.reattachRequest(sessionID: sid, bindingVersion: 2, pathID: 0, nonce: .random(), reason: .betterPath), kp)
            let rc = seal(.reattachRequest(sessionID: sid, bindingVersion: 2, pathID: 2, nonce: .random(), reason: .betterPath), kp)
            ra.withUnsafeBytes { _ = a.send($0.baseAddress!, length: $0.count, to: gw) }
            rc.withUnsafeBytes { _ = c.send($0.baseAddress!, length: $0.count, to: gw) }
            var acks = 0, stale = 0
            for s in [a, c] {
                switch receive(s).flatMap({ open($0, kp) }) {
                case .reattachAck?: acks += 1
                case .reject(.staleVersion, _, _)?: stale += 1
                default: break
                }
            }
            XCTAssertEqual(acks, 1, "exactly one REATTACH wins")
            XCTAssertEqual(stale, 1, "the other is STALE_VERSION")
            XCTAssertEqual(status(name)?["binding_version"] as? Int, 3)
        }

        usleep(300_000) // the event log writer is asynchronous
        let lines = (try? String(contentsOfFile: events, encoding: .utf8))?.split(separator: "\n").compactMap { SessionEvent(jsonLine: String($0)) } ?? []
        let security = lines.filter { $0.kind == .security }.map { $0.reason ?? "" }
        XCTAssertTrue(security.contains("INVALID_PROOF"), "\(security)")
        XCTAssertTrue(security.contains("REPLAY_DETECTED"), "\(security)")
        XCTAssertEqual(security.filter { $0 == "STALE_VERSION" }.count, 2, "\(security)")
        XCTAssertEqual(lines.filter { $0.kind == .transportSwitch }.count, 2)
        let s = status(name)
        XCTAssertEqual((s?["rejected"] as? [String: Any])?["stale_version"] as? Int, 2)
    }
}
