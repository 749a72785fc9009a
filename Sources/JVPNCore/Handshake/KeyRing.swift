import Synchronization

/// Key lifetime limits, WireGuard's values. Times are nanoseconds of the caller's monotonic clock.
public struct RekeyPolicy: Sendable, Equatable {
    public static let second: UInt64 = 1_000_000_000

    /// The initiator of the current keys starts a new handshake once they are this old.
    public var rekeyAfterTime: UInt64 = 120 * second
    /// Keys this old are neither used nor accepted.
    public var rejectAfterTime: UInt64 = 180 * second
    /// Either side asks for a rekey once it has sent this many messages with one key.
    public var rekeyAfterMessages: UInt64 = MessageLimits.rekeyAfterMessages
    /// Hard limit, enforced by `Keypair.nextCounter()` and `SharedReplayWindow` regardless of this value.
    public var rejectAfterMessages: UInt64 = MessageLimits.rejectAfterMessages
    /// How long a replaced keypair still opens in-flight packets.
    public var keepPreviousFor: UInt64 = 10 * second
    /// Retransmit an unanswered initiation after this long.
    public var rekeyTimeout: UInt64 = 5 * second

    public init() {}
}

/// The three keypairs of one session at a point in time. A plain value: the receive/send hot path
/// takes one snapshot per batch (one lock round-trip) and then looks up without locking.
public struct KeyRingSnapshot: Sendable {
    public var current: Keypair?
    public var previous: Keypair?
    /// Responder only: keys from a completed handshake that the initiator has not yet used.
    public var next: Keypair?

    public init(current: Keypair? = nil, previous: Keypair? = nil, next: Keypair? = nil) {
        self.current = current
        self.previous = previous
        self.next = next
    }

    /// The keypair whose local (receiver) index is `index`: at most three comparisons.
    @inline(__always)
    public func lookup(localIndex index: UInt32) -> Keypair? {
        if let c = current, c.localIndex == index { return c }
        if let n = next, n.localIndex == index { return n }
        if let p = previous, p.localIndex == index { return p }
        return nil
    }
}

/// current / previous / next keypairs of one session, with WireGuard's rotation rules:
/// - initiator, on a valid response: previous = current (or the unconfirmed next), current = new.
/// - responder, after sending its response: next = new (it may not send with keys the initiator has
///   not confirmed yet); the first authenticated frame received on next promotes it
///   (previous = current, current = next).
///
/// Thread-safety: the ring has its own mutex, so every method is safe from any thread; each call is
/// atomic on its own. Callers that must combine ring changes with other session state (e.g. the
/// session table) still hold their session lock around the sequence. The hot path does not call
/// into the ring per packet: it takes `snapshot()` once per batch; a keypair dropped from the ring
/// while a batch still holds it stays valid memory (reference counted) until the batch ends.
public final class KeyRing: Sendable {
    private struct State {
        var ring = KeyRingSnapshot()
        /// When `previous` was demoted (caller's clock).
        var previousSince: UInt64 = 0
    }

    private let state = Mutex(State())
    public let policy: RekeyPolicy
    /// The earliest time `expire` can drop anything (`UInt64.max`: nothing to expire), kept by every
    /// change, so that a timer over many rings looks at one atomic per ring instead of its lock.
    private let expiryDue = Atomic<UInt64>(UInt64.max)

    public init(policy: RekeyPolicy = RekeyPolicy()) {
        self.policy = policy
    }

    public func snapshot() -> KeyRingSnapshot { state.withLock { $0.ring } }

    /// Whether `expire(now:)` may drop anything now. Lock-free.
    public func mayExpire(now: UInt64) -> Bool { now >= expiryDue.load(ordering: .relaxed) }

    /// Called under the ring's lock after every change.
    private func changed(_ s: State) {
        func after(_ t: UInt64, _ d: UInt64) -> UInt64 {
            let (sum, overflow) = t.addingReportingOverflow(d)
            return overflow ? UInt64.max : sum
        }
        var due = UInt64.max
        if let p = s.ring.previous { due = min(due, after(s.previousSince, policy.keepPreviousFor), after(p.createdAt, policy.rejectAfterTime)) }
        if let c = s.ring.current { due = min(due, after(c.createdAt, policy.rejectAfterTime)) }
        if let n = s.ring.next { due = min(due, after(n.createdAt, policy.rejectAfterTime)) }
        expiryDue.store(due, ordering: .relaxed)
    }

    public var current: Keypair? { state.withLock { $0.ring.current } }
    public var previous: Keypair? { state.withLock { $0.ring.previous } }
    public var next: Keypair? { state.withLock { $0.ring.next } }

    public func lookup(localIndex: UInt32) -> Keypair? {
        state.withLock { $0.ring.lookup(localIndex: localIndex) }
    }

    /// Installs fresh keys: as current when we initiated the handshake, as next when we responded.
    public func install(_ keypair: Keypair, now: UInt64) {
        state.withLock { s in
            if keypair.isInitiator {
                // An unconfirmed next (we also answered a handshake of the peer) is the newest key the
                // peer may still use, so it is the one worth keeping as previous.
                if let n = s.ring.next {
                    s.ring.previous = n
                    s.ring.next = nil
                } else {
                    s.ring.previous = s.ring.current
                }
                s.previousSince = now
                s.ring.current = keypair
            } else {
                // A newer handshake replaces an unconfirmed next: the peer can only use the newest.
                s.ring.next = keypair
            }
            changed(s)
        }
    }

    /// Call after a frame authenticated (opened and passed the replay window) on `keypair`.
    /// Returns true if that promoted `next` to current (the responder's handshake is now confirmed).
    @discardableResult
    public func receivedAuthenticated(on keypair: Keypair, now: UInt64) -> Bool {
        state.withLock { s in
            guard let n = s.ring.next, n === keypair else { return false }
            s.ring.previous = s.ring.current
            s.previousSince = now
            s.ring.current = n
            s.ring.next = nil
            changed(s)
            return true
        }
    }

    /// The keypair to send with, nil if there is none usable (too old, or counter exhausted).
    public func sendingKeypair(now: UInt64) -> Keypair? {
        state.withLock { s in
            guard let c = s.ring.current, keyAge(now, c.createdAt) < policy.rejectAfterTime,
                  c.messagesSent < policy.rejectAfterMessages else { return nil }
            return c
        }
    }

    /// Should we start a handshake? True when the current keys have sent `rekeyAfterMessages`, or
    /// when we initiated them and they are `rekeyAfterTime` old (only the initiator rekeys on time,
    /// so both sides never race to rekey). False with no keys at all: starting the first handshake is
    /// the session's decision, not the ring's.
    public func needsRekey(now: UInt64) -> Bool {
        state.withLock { s in
            guard let c = s.ring.current else { return false }
            if c.messagesSent >= policy.rekeyAfterMessages { return true }
            return c.isInitiator && keyAge(now, c.createdAt) >= policy.rekeyAfterTime
        }
    }

    /// Drops previous `keepPreviousFor` after it was replaced, and every keypair older than
    /// `rejectAfterTime`. Call from the session timer. Returns the dropped keypairs so that the caller
    /// can unregister their indexes.
    @discardableResult
    public func expire(now: UInt64) -> [Keypair] {
        state.withLock { s in
            var dropped: [Keypair] = []
            if let p = s.ring.previous,
               keyAge(now, s.previousSince) >= policy.keepPreviousFor || keyAge(now, p.createdAt) >= policy.rejectAfterTime {
                dropped.append(p)
                s.ring.previous = nil
            }
            if let c = s.ring.current, keyAge(now, c.createdAt) >= policy.rejectAfterTime {
                dropped.append(c)
                s.ring.current = nil
            }
            if let n = s.ring.next, keyAge(now, n.createdAt) >= policy.rejectAfterTime {
                dropped.append(n)
                s.ring.next = nil
            }
            changed(s)
            return dropped
        }
    }

    /// Forget everything (session closed). Returns the dropped keypairs.
    @discardableResult
    public func clear() -> [Keypair] {
        state.withLock { s in
            let all = [s.ring.current, s.ring.previous, s.ring.next].compactMap { $0 }
            s = State()
            changed(s)
            return all
        }
    }
}

/// Elapsed time that treats a clock reading before `since` as zero age rather than wrapping.
@inline(__always)
func keyAge(_ now: UInt64, _ since: UInt64) -> UInt64 { now > since ? now - since : 0 }
