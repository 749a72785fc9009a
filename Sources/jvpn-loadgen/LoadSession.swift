import Glibc
import JVPNCore
import JVPNSystem

/// One synthetic client session: its own key pair and UDP socket (own source port), the handshake
/// as a real client makes it (cookie reply -> mac2 resend), then a sealed PROBE that confirms the
/// keys to the gateway; its PROBE_REPLY means the session is attached.
final class LoadSession {
    enum State {
        case idle
        case handshaking(InitiatorHandshake)
        case confirming(Keypair)
        case attached(Keypair)
    }

    let key: PrivateKey
    let socket: UDPSocket
    let localIndex: UInt32
    private(set) var state = State.idle
    private(set) var lastSendMs: UInt64 = 0
    private(set) var attachedMs: UInt64 = 0
    private var cookie: MAC16?
    private var sessionID = SessionID.random()
    private var probeSeq: UInt32 = 0

    /// Counted for the report.
    private(set) var initiationsSent = 0
    private(set) var cookieReplies = 0
    private(set) var probesSent = 0
    private(set) var challenges = 0
    /// Authenticated control frames other than the answers above.
    private(set) var otherControl = 0

    init(key: PrivateKey, socket: UDPSocket, localIndex: UInt32) {
        self.key = key
        self.socket = socket
        self.localIndex = localIndex
    }

    var isAttached: Bool {
        if case .attached = state { return true }
        return false
    }

    /// Builds the initiation without sending it (so a storm's public-key work is done before t0).
    func prepareInitiation(gateway: PublicKey) -> [UInt8]? {
        guard let (message, hs) = try? Handshake.makeInitiation(local: key, remote: gateway, sessionID: sessionID, localIndex: localIndex,
                                                                timestamp: Timestamp12(unixNanoseconds: Clock.wallNanoseconds()),
                                                                cookie: cookie) else { return nil }
        state = .handshaking(hs)
        return message
    }

    func send(_ bytes: [UInt8], to gateway: SocketAddress, nowMs: UInt64) {
        _ = bytes.withUnsafeBytes { socket.send($0.baseAddress!, length: $0.count, to: gateway) }
        lastSendMs = nowMs
    }

    func sendInitiation(_ message: [UInt8], to gateway: SocketAddress, nowMs: UInt64) {
        initiationsSent += 1
        send(message, to: gateway, nowMs: nowMs)
    }

    /// Nothing heard for `retryMs` since the last send: the initiation or the probe again.
    func retryIfDue(gatewayKey: PublicKey, gateway: SocketAddress, nowMs: UInt64, retryMs: UInt64) {
        guard nowMs &- lastSendMs >= retryMs else { return }
        switch state {
        case .idle, .handshaking:
            if let m = prepareInitiation(gateway: gatewayKey) { sendInitiation(m, to: gateway, nowMs: nowMs) }
        case .confirming(let kp):
            sendProbe(kp, to: gateway, nowMs: nowMs)
        case .attached:
            break
        }
    }

    private func sendProbe(_ kp: Keypair, to gateway: SocketAddress, nowMs: UInt64) {
        probeSeq &+= 1
        probesSent += 1
        sendControl(.probe(seq: probeSeq, sentAtNs: Clock.monotonicNanoseconds(), pathID: 0), kp, to: gateway, nowMs: nowMs)
    }

    private func sendControl(_ message: ControlMessage, _ kp: Keypair, to gateway: SocketAddress, nowMs: UInt64) {
        var buf = [UInt8](repeating: 0, count: 128)
        let total = buf.withUnsafeMutableBytes { raw -> Int in
            let n = message.encode(into: raw.baseAddress! + Frame.headerLength, capacity: 64)
            guard let counter = kp.nextCounter() else { return 0 }
            return Frame.seal(type: .control, receiverIndex: kp.remoteIndex, counter: counter, key: kp,
                              buffer: raw.baseAddress!, plaintextLength: n)
        }
        guard total > 0 else { return }
        send(Array(buf[0..<total]), to: gateway, nowMs: nowMs)
    }

    /// One datagram from the gateway.
    func receive(_ bytes: UnsafeMutableRawBufferPointer, gatewayKey: PublicKey, gateway: SocketAddress, nowMs: UInt64) {
        guard let type = bytes.first.flatMap(MessageType.init(rawValue:)) else { return }
        switch (type, state) {
        case (.cookieReply, .handshaking(let hs)):
            guard let value = try? Cookie.openReply(UnsafeRawBufferPointer(bytes), responder: gatewayKey, receiverIndex: hs.localIndex,
                                                    mac1: hs.mac1) else { return }
            cookieReplies += 1
            cookie = value
            if let m = prepareInitiation(gateway: gatewayKey) { sendInitiation(m, to: gateway, nowMs: nowMs) }
        case (.response, .handshaking(let hs)):
            guard let kp = try? hs.consumeResponse(UnsafeRawBufferPointer(bytes), now: Clock.monotonicNanoseconds()) else { return }
            state = .confirming(kp)
            sendProbe(kp, to: gateway, nowMs: nowMs)
        case (.control, .confirming(let kp)), (.control, .attached(let kp)):
            guard let h = Frame.peekHeader(bytes.baseAddress!, length: bytes.count), h.receiverIndex == kp.localIndex,
                  let n = Frame.open(header: h, key: kp, buffer: bytes.baseAddress!, length: bytes.count),
                  kp.replay.update(h.counter),
                  let message = try? ControlMessage.decode(UnsafeRawBufferPointer(start: bytes.baseAddress! + Frame.headerLength, count: n))
            else { return }
            switch message {
            case .probeReply:
                if case .confirming = state {
                    state = .attached(kp)
                    attachedMs = nowMs
                }
            case .pathChallenge(let data):
                // As a client does: the answer proves it receives where it sends from.
                challenges += 1
                sendControl(.pathResponse(data: data), kp, to: gateway, nowMs: nowMs)
            case .probe, .reattachRequest, .reattachAck, .reject, .close, .natHint, .pathResponse, .pathMtu, .pathMtuAck:
                otherControl += 1
            }
        case (.initiation, _), (.response, _), (.cookieReply, _), (.data, _), (.control, _):
            return
        }
    }
}
