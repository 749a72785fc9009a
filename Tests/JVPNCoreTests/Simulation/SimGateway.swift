@testable import JVPNCore

/// The gateway side of the simulation: the real `GatewayCore`, with keys modelled as epochs (as the
/// daemon's GatewayHost keeps a KeyRing and a pending keypair per peer) and real replay windows.
struct SimGateway {
    var core: GatewayCore<String>
    /// Live session keys: current (confirmed), next (rekey, unconfirmed), previous.
    var current: UInt64?
    var next: UInt64?
    var previous: UInt64?
    /// Keys of a new session waiting for the client's confirmation.
    var pending: UInt64?
    var windows: [UInt64: ReplayWindow] = [:]
    var sendCounters: [UInt64: UInt64] = [:]
    var nextEpoch: UInt64 = 1_000_000
    /// Rejects and binding versions seen, for the invariants.
    var rejectsSent: [(at: UInt64, reason: ReasonCode)] = []
    var versions: [(SessionID, UInt64)] = []
    /// Data packets accepted from the client (time of the last one).
    var lastDataMs: UInt64?
    var wallNs: UInt64 = 1_700_000_000_000_000_000

    init(policy: PolicyConfig, seed: UInt64) {
        core = GatewayCore(policy: policy, peerCount: 1, seed: seed, nowMs: 0)
    }

    var session: GatewaySession<String>? { core.session(ofPeer: 0) }

    mutating func receive(_ p: SimPacket, now: UInt64, net: inout SimNetwork) {
        net.gatewayReceived[p.clientAddress, default: 0] += p.payload.size
        switch p.payload {
        case .initiation(let sid, let ts, let handshake):
            let (decision, actions) = core.initiation(peer: 0, session: sid, timestamp: ts, wallNs: wallNs + now * 1_000_000,
                                                      from: p.clientAddress, nowMs: now)
            perform(actions, now: now, net: &net)
            switch decision {
            case .drop, .awaitStore:
                return
            case .respondRekey:
                nextEpoch += 1
                next = nextEpoch
                net.gatewaySend(.response(handshake: handshake, epoch: nextEpoch), to: p.clientAddress, now: now)
            case .respondNewSession:
                nextEpoch += 1
                pending = nextEpoch
                net.gatewaySend(.response(handshake: handshake, epoch: nextEpoch), to: p.clientAddress, now: now)
            }
        case .response:
            return
        case .frame(let epoch, let counter, let control):
            guard epoch == current || epoch == next || epoch == previous || epoch == pending else { return }
            // Proof is the epoch (only the client has it); freshness is the real replay window.
            guard windows[epoch, default: ReplayWindow()].update(counter) else {
                if control != nil { perform(core.controlRefused(peer: 0, reason: .replayDetected, from: p.clientAddress, nowMs: now), now: now, net: &net) }
                return
            }
            if epoch == pending {
                perform(core.confirmed(peer: 0, session: core.pendingSession(ofPeer: 0)!, from: p.clientAddress, bytes: p.payload.size,
                                       nowMs: now), now: now, net: &net)
            } else if epoch == next {
                previous = current
                current = next
                next = nil
            }
            if let control {
                guard let m = try? control.withUnsafeBytes({ try ControlMessage.decode($0) }) else { return }
                perform(core.control(peer: 0, m, from: p.clientAddress, bytes: p.payload.size, nowMs: now), now: now, net: &net)
            } else if session?.isLive == true {
                lastDataMs = now
                if session?.bound != p.clientAddress {
                    let hint = NATHint(address: [10, 0, 0, 1], port: 1)
                    perform(core.dataFromUnbound(peer: 0, from: p.clientAddress, bytes: p.payload.size, natHint: hint, nowMs: now),
                            now: now, net: &net)
                }
            }
        }
    }

    mutating func tick(now: UInt64, net: inout SimNetwork) {
        perform(core.tick(nowMs: now), now: now, net: &net)
    }

    /// Data back to the client on the bound path, as the data plane would send it.
    mutating func sendData(now: UInt64, net: inout SimNetwork) {
        guard let s = session, s.isLive, let b = s.bound, let kp = current else { return }
        net.gatewaySend(.frame(epoch: kp, counter: counter(kp), control: nil), to: b, now: now)
    }

    private mutating func counter(_ epoch: UInt64) -> UInt64 {
        let c = sendCounters[epoch, default: 0]
        sendCounters[epoch] = c + 1
        return c
    }

    private mutating func perform(_ actions: [GatewayAction<String>], now: UInt64, net: inout SimNetwork) {
        for a in actions {
            switch a {
            case .send(_, let m, let to, let paddedTo):
                guard let kp = current else { continue }
                if case .reject(let reason, _, _) = m { rejectsSent.append((now, reason)) }
                var buf = [UInt8](repeating: 0, count: max(m.encodedLength, paddedTo))
                let n = buf.withUnsafeMutableBytes { m.encode(into: $0.baseAddress!, capacity: $0.count, paddedTo: paddedTo) }
                net.gatewaySend(.frame(epoch: kp, counter: counter(kp), control: Array(buf[0..<n])), to: to, now: now)
            case .sessionOpened:
                current = pending
                pending = nil
                previous = nil
                next = nil
            case .pendingDropped:
                pending = nil
            case .bindingChanged, .stateChanged, .switched, .security, .audit, .store, .respondHeld, .dropHeld, .ownershipChanged,
                 .arrived, .released:
                break
            }
            if let s = session { versions.append((s.id, s.bindingVersion)) }
        }
    }
}
