/// Which client addresses a session may send to, and how much it may send to the others.
///
/// An address is validated once the client proved it receives there: it echoed a PATH_CHALLENGE
/// sent to it, or it confirmed a handshake whose response went there. Until then the gateway sends
/// an address at most `amplificationFactor` times the bytes of authenticated frames it received from
/// it, so no REATTACH, however authentic, can aim the gateway's traffic at a third party. Bounded:
/// `validatedCapacity` and `unvalidatedCapacity` addresses, the least recently heard replaced first.
public struct PathValidation<Address: Hashable & Sendable>: Equatable, Sendable {
    /// Every path of a client with eight uplinks and both transports: fewer, and a client whose
    /// standbys all answer probes would keep evicting its own addresses, each then validated again
    /// (a challenge round trip, lost on a lossy path) before a REATTACH may move there.
    public static var validatedCapacity: Int { 16 }
    /// Addresses still to prove themselves (an attacker can make up any number of them).
    public static var unvalidatedCapacity: Int { 4 }
    public static var amplificationFactor: UInt64 { 3 }
    /// A validated address that has sent nothing authenticated this long must be validated again.
    public static var validatedForMs: UInt64 { 60_000 }
    /// A challenge is sent again at most this often for the same address.
    public static var challengeRepeatMs: UInt64 { 250 }

    struct Validated: Equatable, Sendable {
        var address: Address
        var lastHeardMs: UInt64
    }

    struct Unvalidated: Equatable, Sendable {
        var address: Address
        var receivedBytes: UInt64 = 0
        var sentBytes: UInt64 = 0
        var challenge: UInt64?
        var challengeSentMs: UInt64 = 0
        var lastHeardMs: UInt64
    }

    private var validated: [Validated] = []
    private var unvalidated: [Unvalidated] = []

    public init() {}

    public func isValidated(_ a: Address, nowMs: UInt64) -> Bool {
        validated.contains { $0.address == a && elapsedMs(nowMs, since: $0.lastHeardMs) < PathValidation.validatedForMs }
    }

    public mutating func markValidated(_ a: Address, nowMs: UInt64) {
        unvalidated.removeAll { $0.address == a }
        if let i = validated.firstIndex(where: { $0.address == a }) {
            validated[i].lastHeardMs = nowMs
            return
        }
        if validated.count >= PathValidation.validatedCapacity, let oldest = validated.indices.min(by: { validated[$0].lastHeardMs < validated[$1].lastHeardMs }) {
            validated.remove(at: oldest)
        }
        validated.append(Validated(address: a, lastHeardMs: nowMs))
    }

    /// An authenticated frame of `bytes` arrived from `a`. An unvalidated entry for `keeping` (the
    /// address a REATTACH waits on) is never the one replaced to make room.
    public mutating func heard(_ a: Address, bytes: Int, nowMs: UInt64, keeping: Address? = nil) {
        if let i = validated.firstIndex(where: { $0.address == a }),
           elapsedMs(nowMs, since: validated[i].lastHeardMs) < PathValidation.validatedForMs {
            validated[i].lastHeardMs = nowMs
            return
        }
        validated.removeAll { $0.address == a }
        let i = unvalidatedIndex(a, nowMs: nowMs, keeping: keeping)
        unvalidated[i].receivedBytes += UInt64(max(bytes, 0))
        unvalidated[i].lastHeardMs = nowMs
    }

    private mutating func unvalidatedIndex(_ a: Address, nowMs: UInt64, keeping: Address?) -> Int {
        if let i = unvalidated.firstIndex(where: { $0.address == a }) { return i }
        if unvalidated.count >= PathValidation.unvalidatedCapacity,
           let oldest = unvalidated.indices.filter({ unvalidated[$0].address != keeping })
               .min(by: { unvalidated[$0].lastHeardMs < unvalidated[$1].lastHeardMs }) {
            unvalidated.remove(at: oldest)
        }
        unvalidated.append(Unvalidated(address: a, lastHeardMs: nowMs))
        return unvalidated.count - 1
    }

    /// Whether `bytes` more may go to `a` now; if so they are charged against its allowance.
    public mutating func maySend(_ a: Address, bytes: Int, nowMs: UInt64) -> Bool {
        if isValidated(a, nowMs: nowMs) { return true }
        guard let i = unvalidated.firstIndex(where: { $0.address == a }) else { return false }
        let after = unvalidated[i].sentBytes + UInt64(max(bytes, 0))
        guard after <= unvalidated[i].receivedBytes * PathValidation.amplificationFactor else { return false }
        unvalidated[i].sentBytes = after
        return true
    }

    /// The challenge to send to `a` now, if one is due: a fresh one the first time, the same one
    /// again when asked after `challengeRepeatMs`. `fresh` supplies new challenge data.
    public mutating func challengeDue(_ a: Address, nowMs: UInt64, fresh: () -> UInt64) -> UInt64? {
        guard !isValidated(a, nowMs: nowMs), let i = unvalidated.firstIndex(where: { $0.address == a }) else { return nil }
        if let c = unvalidated[i].challenge {
            guard elapsedMs(nowMs, since: unvalidated[i].challengeSentMs) >= PathValidation.challengeRepeatMs else { return nil }
            unvalidated[i].challengeSentMs = nowMs
            return c
        }
        let c = fresh()
        unvalidated[i].challenge = c
        unvalidated[i].challengeSentMs = nowMs
        return c
    }

    /// A PATH_RESPONSE arrived from `a`: true (and `a` validated) if it echoes the challenge sent there.
    public mutating func responded(_ a: Address, data: UInt64, nowMs: UInt64) -> Bool {
        guard let i = unvalidated.firstIndex(where: { $0.address == a }), unvalidated[i].challenge == data else { return false }
        markValidated(a, nowMs: nowMs)
        return true
    }
}
