import XCTest
@testable import JVPNCore

/// The gateway core finds a session id's owner and the peers whose timers are due through indexes
/// instead of looking at every peer. Random schedules over many peers, sharing a small pool of
/// session ids (so that peers try to take each other's): after every step the indexes agree with a
/// scan of every peer, and after every tick no peer is left with a timer that was due.
final class GatewayPeerTableTests: XCTestCase {
    typealias Core = GatewayCore<String>
    let wall: UInt64 = 1_700_000_000_000_000_000

    func testIndexesAgreeWithAScanOfEveryPeer() throws {
        let pool = try (0..<12).map { i in try SessionID(bytes: [UInt8](repeating: UInt8(i + 1), count: 8)) }
        var policy = PolicyConfig()
        policy.transportLossTtlMs = 4_000
        policy.sessionTtlMs = 30_000
        var ownerChecks = 0, refusedAsOwned = 0, expiredByTick = 0
        for seed in 1...40 as ClosedRange<UInt64> {
            var rng = SeededRandom(seed: seed)
            func pick(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }
            var core = Core(policy: policy, peerCount: 6, seed: seed, nowMs: 0)
            var now: UInt64 = 0
            var stamp: UInt64 = 0
            for step in 0..<400 {
                let peer = pick(core.peerCount)
                let address = ["A", "B", "C"][pick(3)]
                switch pick(9) {
                case 0, 1:
                    stamp += 1
                    let sid = pool[pick(pool.count)]
                    let (d, _) = core.initiation(peer: peer, session: sid, timestamp: Timestamp12(unixNanoseconds: wall + stamp * 1_000_000),
                                                 wallNs: wall + stamp * 1_000_000, from: address, nowMs: now)
                    if d == .drop(.ownershipConflict) { refusedAsOwned += 1 }
                case 2, 3:
                    if let sid = core.pendingSession(ofPeer: peer) {
                        _ = core.confirmed(peer: peer, session: sid, from: address, bytes: 64, nowMs: now)
                    }
                case 4:
                    _ = core.control(peer: peer, .probe(seq: UInt32(step), sentAtNs: 0, pathID: 1), from: address, bytes: 64, nowMs: now)
                case 5:
                    if let s = core.session(ofPeer: peer) {
                        _ = core.control(peer: peer, .reattachRequest(sessionID: s.id, bindingVersion: s.bindingVersion, pathID: 1,
                                                                      nonce: .random(), reason: .linkDown),
                                         from: address, bytes: 70, nowMs: now)
                    }
                case 6:
                    if pick(20) == 0 { _ = core.removePeer(peer, reason: .operatorRequest, nowMs: now) }
                case 7:
                    if pick(10) == 0 {
                        policy.transportLossTtlMs = [2_000, 4_000, 8_000][pick(3)]
                        core.setPolicy(policy)
                    }
                default:
                    now += UInt64(pick(3_000))
                    let before = (0..<core.peerCount).filter { due(core, $0, now) }.count
                    _ = core.tick(nowMs: now)
                    expiredByTick += before
                    for p in 0..<core.peerCount {
                        XCTAssertFalse(due(core, p, now), "seed \(seed) step \(step): peer \(p) has a due timer after the tick")
                    }
                }
                for sid in pool {
                    let holders = (0..<core.peerCount).filter { holds(core, $0, sid) }
                    XCTAssertLessThanOrEqual(holders.count, 1, "seed \(seed) step \(step): \(sid.hex) held by \(holders)")
                    XCTAssertEqual(core.peers.owner(of: sid), holders.first, "seed \(seed) step \(step): owner of \(sid.hex)")
                    ownerChecks += 1
                }
                for p in 0..<core.peerCount {
                    XCTAssertLessThanOrEqual(core.peers.wakeMs[p], earliestTimer(core, p, policy),
                                             "seed \(seed) step \(step): peer \(p) would wake too late")
                }
            }
        }
        // The schedules did reach what the indexes are for.
        XCTAssertGreaterThan(refusedAsOwned, 50)
        XCTAssertGreaterThan(expiredByTick, 50)
        XCTAssertGreaterThan(ownerChecks, 100_000)
    }

    private func holds(_ core: Core, _ p: Int, _ sid: SessionID) -> Bool {
        let peer = core.peers[p]
        return peer.session?.id == sid || peer.pending?.session == sid || peer.awaiting?.session == sid
    }

    /// The same conditions as the tick's, by a scan: something for the tick to do at `now`.
    private func due(_ core: Core, _ p: Int, _ now: UInt64) -> Bool {
        let peer = core.peers[p]
        if let pending = peer.pending, elapsedMs(now, since: pending.atMs) > GatewayLimits.pendingLifetimeMs { return true }
        guard let s = peer.session, s.isLive else { return false }
        if let r = s.pendingReattach, elapsedMs(now, since: r.atMs) > GatewayLimits.pendingLifetimeMs { return true }
        return elapsedMs(now, since: s.lastAuthenticatedMs) > core.policy.transportLossTtlMs
            || elapsedMs(now, since: s.startedMs) > core.policy.sessionTtlMs
    }

    private func earliestTimer(_ core: Core, _ p: Int, _ policy: PolicyConfig) -> UInt64 {
        let peer = core.peers[p]
        var at = UInt64.max
        if let pending = peer.pending { at = min(at, pending.atMs + GatewayLimits.pendingLifetimeMs + 1) }
        if let s = peer.session, s.isLive {
            if let r = s.pendingReattach { at = min(at, r.atMs + GatewayLimits.pendingLifetimeMs + 1) }
            at = min(at, s.lastAuthenticatedMs + core.policy.transportLossTtlMs + 1, s.startedMs + core.policy.sessionTtlMs + 1)
        }
        return at
    }
}
