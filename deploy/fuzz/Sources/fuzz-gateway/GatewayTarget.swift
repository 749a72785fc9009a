import FuzzSupport
import JVPNCore

// The gateway core fed random fact sequences. Each step is one byte choosing the fact, then its
// fields; addresses are one byte (0-7), two peers, three session ids, a clock advanced by the input.
// Properties after every step, checked from outside the core: binding_version never decreases
// within a session's lifetime; a session is bound only to an address that proved itself (its handshake
// response went there and it confirmed from there, or it echoed a PATH_CHALLENGE); before it proved
// itself an address never got more than 3x the bytes it sent.

private struct Reader {
    let bytes: UnsafeRawBufferPointer
    var at = 0
    var done: Bool { at >= bytes.count }
    mutating func byte() -> UInt8 {
        guard at < bytes.count else { return 0 }
        defer { at += 1 }
        return bytes[at]
    }
    mutating func u64() -> UInt64 { (0..<8).reduce(0) { v, _ in v << 8 | UInt64(byte()) } }
}

private let sessions = [try! SessionID(bytes: [1, 1, 1, 1, 1, 1, 1, 1]), try! SessionID(bytes: [2, 2, 2, 2, 2, 2, 2, 2]),
                        try! SessionID(bytes: [3, 3, 3, 3, 3, 3, 3, 3])]

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>,
                           _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    writeSeedsIfAsked {
        // initiation, confirmation, probes from a second address, its challenge echoed, a REATTACH.
        [[0, 0, 0, 0, 1, 1, 0, 0, 0, 3, 1, 0, 5, 1, 0, 4, 1, 2, 1, 0, 5]]
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    withMutableCopy(data, size) { input in
        var r = Reader(bytes: UnsafeRawBufferPointer(input))
        var policy = PolicyConfig()
        policy.maxSwitchesPerMinute = 5
        var core = GatewayCore<UInt8>(policy: policy, peerCount: 2, seed: 7, nowMs: 0)
        var now: UInt64 = 0
        let wall: UInt64 = 1_700_000_000_000_000_000
        var timestamp: UInt64 = 0
        // What the outside world knows: challenges sent, addresses proven, bytes each way.
        var challenges: [UInt8: UInt64] = [:]
        var proven: [SessionID: Set<UInt8>] = [:]
        var responseTo: [Int: UInt8] = [:]
        var received: [UInt8: Int] = [:]
        var sentBeforeProof: [UInt8: Int] = [:]
        var versions: [SessionID: UInt64] = [:]

        func apply(_ actions: [GatewayAction<UInt8>], peer: Int) {
            for a in actions {
                // A session id that ended may be opened again later (the core only remembers the
                // current session of each peer): its versions start over then.
                if case .sessionOpened(_, let sid) = a { versions[sid] = nil }
                guard case .send(let p, let m, let to, let pad) = a else { continue }
                if case .pathChallenge(let d) = m { challenges[to] = d }
                let sid = core.session(ofPeer: p)?.id
                if sid.map({ proven[$0]?.contains(to) ?? false }) != true {
                    sentBeforeProof[to, default: 0] += max(m.encodedLength, pad) + 32
                }
            }
        }

        while !r.done {
            let op = r.byte() % 8
            let peer = Int(r.byte() % 2)
            let from = r.byte() % 8
            now += UInt64(r.byte()) * 7
            switch op {
            case 0: // an authenticated initiation
                timestamp += UInt64(r.byte() % 4) // 0 = a replayed timestamp
                let sid = sessions[Int(r.byte()) % sessions.count]
                let (d, a) = core.initiation(peer: peer, session: sid, timestamp: Timestamp12(unixNanoseconds: wall + timestamp * 1000),
                                             wallNs: wall, from: from, nowMs: now)
                apply(a, peer: peer)
                if d == .respondNewSession { responseTo[peer] = from }
            case 1: // the pending session's keys confirmed
                received[from, default: 0] += 49
                if let sid = core.pendingSession(ofPeer: peer) {
                    if responseTo[peer] == from { proven[sid, default: []].insert(from) }
                    apply(core.confirmed(peer: peer, session: sid, from: from, bytes: 49, nowMs: now), peer: peer)
                }
            case 2: // a probe, possibly padded
                let bytes = 49 + Int(r.byte()) * 4
                received[from, default: 0] += bytes
                apply(core.control(peer: peer, .probe(seq: 1, sentAtNs: 0, pathID: 1), from: from, bytes: bytes, nowMs: now), peer: peer)
            case 3: // the client echoes the challenge sent to `from` (if any), or guesses
                received[from, default: 0] += 41
                let echo = r.byte() % 4 != 0
                let d = echo ? (challenges[from] ?? 0) : r.u64()
                if echo, challenges[from] != nil, let sid = core.session(ofPeer: peer)?.id { proven[sid, default: []].insert(from) }
                apply(core.control(peer: peer, .pathResponse(data: d), from: from, bytes: 41, nowMs: now), peer: peer)
            case 4: // a REATTACH with some version
                received[from, default: 0] += 70
                let sid = r.byte() % 8 == 0 ? sessions[0] : (core.session(ofPeer: peer)?.id ?? sessions[0])
                let version = (core.session(ofPeer: peer)?.bindingVersion ?? 1) &- UInt64(r.byte() % 3)
                let nonce = try! ControlNonce(bytes: [UInt8](repeating: r.byte() % 4, count: 16))
                apply(core.control(peer: peer, .reattachRequest(sessionID: sid, bindingVersion: version, pathID: 1, nonce: nonce,
                                                                reason: .linkDown), from: from, bytes: 70, nowMs: now), peer: peer)
            case 5: // data from an address other than the bound one
                received[from, default: 0] += 132
                apply(core.dataFromUnbound(peer: peer, from: from, bytes: 132, natHint: NATHint(address: [10, 0, 0, from], port: 1),
                                           nowMs: now), peer: peer)
            case 6: // a forged or replayed control frame
                apply(core.controlRefused(peer: peer, reason: r.byte() % 2 == 0 ? .invalidProof : .replayDetected, from: from, nowMs: now),
                      peer: peer)
            default: // time passes, or a close
                if r.byte() % 16 == 0 {
                    apply(core.control(peer: peer, .close(reason: .operatorRequest), from: from, bytes: 34, nowMs: now), peer: peer)
                } else {
                    now += UInt64(r.byte()) * 100
                    apply(core.tick(nowMs: now), peer: peer)
                }
            }
            for p in 0..<2 {
                guard let s = core.session(ofPeer: p) else { continue }
                if s.bindingVersion < versions[s.id, default: 0] { fuzzFailure("binding_version of \(s.id) went back") }
                versions[s.id] = s.bindingVersion
                if let b = s.bound, !(proven[s.id]?.contains(b) ?? false) { fuzzFailure("session \(s.id) bound to \(b), which never proved itself") }
            }
            for (a, sent) in sentBeforeProof where sent > 3 * received[a, default: 0] {
                fuzzFailure("address \(a) got \(sent) bytes before proving itself, for \(received[a, default: 0]) received")
            }
        }
    }
    return 0
}
