/// A change the gateway core asks of the cluster store. Each is one etcd transaction that
/// compares what the core last read (compare-and-swap); the answer comes back as a `StoreResult`
/// for the same session.
public enum StoreRequest: Equatable, Sendable {
    /// Record a new session: only if no record exists for the id.
    case create(SessionID, SessionRecord)
    /// Take the session over (a resume): only if the record is still at `expecting`.
    case claim(SessionID, expecting: UInt64, SessionRecord)
    /// Rewrite the owner's record (the session ended): only if still at `expecting`.
    case update(SessionID, expecting: UInt64, SessionRecord)
    /// Remove the record (an unconfirmed creation, an expired record): only if still at `expecting`.
    case delete(SessionID, expecting: UInt64)

    public var session: SessionID {
        switch self {
        case .create(let s, _), .claim(let s, _, _), .update(let s, _, _), .delete(let s, _): return s
        }
    }
}

/// How the store answered a `StoreRequest`.
public enum StoreResult: Equatable, Sendable {
    /// Applied; the record now has this revision (for a delete: the revision of the deletion).
    case succeeded(revision: UInt64)
    /// The comparison failed: the record is `current` now (nil: there is none).
    case conflict(current: StoredRecord?)
    /// No answer from any endpoint in time: nothing is known to have changed.
    case unreachable
}
