/// The gateway's authoritative session table: who owns each session, where it is bound, and the
/// `binding_version` that only a compare-and-swap moves. Pure, so that it could live in a shared
/// store for a cluster of gateways: `validateReattach` is the contract such a store must honour.
public struct SessionTable<Owner: Hashable & Sendable, Path: Equatable & Sendable>: Sendable {
    public struct Entry: Sendable {
        public let session: SessionID
        public let owner: Owner
        public internal(set) var path: Path
        public internal(set) var bindingVersion: UInt64
        public internal(set) var terminated: Bool
        var bucket: TokenBucket
    }

    private var sessions: [SessionID: Entry] = [:]
    private var byOwner: [Owner: SessionID] = [:]
    private var global: TokenBucket
    private let perSessionCapacity: UInt64
    private let perSessionRefill: Double

    /// Rate limits: `maxSwitchesPerMinute` per session (with a little burst), and a global bucket.
    public init(maxSwitchesPerMinute: Int, globalPerSecond: Double = 100, nowMs: UInt64) {
        perSessionCapacity = UInt64(max(maxSwitchesPerMinute, 1)) + 2
        perSessionRefill = Double(max(maxSwitchesPerMinute, 1)) / 60 + 0.5
        global = TokenBucket(capacity: UInt64(globalPerSecond * 2), refillPerSecond: globalPerSecond, nowMs: nowMs)
    }

    public func entry(_ session: SessionID) -> Entry? { sessions[session] }

    public func session(ownedBy owner: Owner) -> SessionID? { byOwner[owner] }

    /// A new authenticated session, bound to `path` at version 1. Single owner: the owner's
    /// previous live session is returned so the caller ends it (and says why).
    public mutating func open(_ session: SessionID, owner: Owner, path: Path, nowMs: UInt64) -> SessionID? {
        let previous = byOwner[owner].flatMap { sessions[$0]?.terminated == false ? $0 : nil }
        if let previous { sessions[previous]?.terminated = true }
        if let old = byOwner[owner], old != session { sessions[old] = nil }
        sessions[session] = Entry(session: session, owner: owner, path: path, bindingVersion: 1, terminated: false,
                                  bucket: TokenBucket(capacity: perSessionCapacity, refillPerSecond: perSessionRefill, nowMs: nowMs))
        byOwner[owner] = session
        return previous
    }

    public mutating func terminate(_ session: SessionID) {
        sessions[session]?.terminated = true
    }

    /// DESIGN's order: session exists and is not TERMINATED -> proof (AEAD) -> freshness (replay
    /// window) -> `binding_version` compare-and-swap -> rate limit. Only then the path moves and the
    /// version increments. Any failure leaves the table exactly as it was.
    public mutating func validateReattach(_ session: SessionID, proofValid: Bool, fresh: Bool, expectedVersion: UInt64,
                                          newPath: Path, nowMs: UInt64) -> Result<UInt64, ReattachRejection> {
        guard var e = sessions[session], !e.terminated else { return .failure(.init(.unknownSession)) }
        guard proofValid else { return .failure(.init(.invalidProof)) }
        guard fresh else { return .failure(.init(.replayDetected)) }
        guard expectedVersion == e.bindingVersion else { return .failure(.init(.staleVersion)) }
        var bucket = e.bucket, g = global
        guard bucket.take(nowMs: nowMs), g.take(nowMs: nowMs) else { return .failure(.init(.rateLimited)) }
        e.bucket = bucket
        global = g
        e.path = newPath
        e.bindingVersion += 1
        sessions[session] = e
        return .success(e.bindingVersion)
    }
}

/// Why a REATTACH was refused (one of the contract's security reject codes).
public struct ReattachRejection: Error, Equatable, Sendable {
    public let reason: ReasonCode
    public init(_ reason: ReasonCode) { self.reason = reason }
}
