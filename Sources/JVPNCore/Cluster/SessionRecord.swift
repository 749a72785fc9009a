/// One session as the cluster store holds it (etcd key `/jvpn/sessions/<hex id>`, JSON value).
/// Public facts only: who the session belongs to (peer public key), which node owns it, the
/// `binding_version` it was taken at. No key, no address, nothing secret ever goes there.
public struct SessionRecord: Equatable, Sendable {
    /// Base64 public key of the peer that created the session; no other key may take it.
    public var peer: String
    /// Node id of the owning gateway.
    public var owner: String
    /// The version at which `owner` took the session (its epoch's first version, see
    /// `OwnershipEpoch`); the owner's later REATTACHes count on from there without a store write.
    public var bindingVersion: UInt64
    /// BIRTH when created (not yet confirmed), RECOVERING once moved, TERMINATED when it ended: the
    /// state at the record's last change, not the live state (that is the owner's).
    public var state: SessionState
    /// The initiation that last changed the record: a replay of it, or of any older one, can never
    /// take the session again, on any node.
    public var initiationTimestamp: Timestamp12
    /// Why the record changed last (the client's reason for a move, the end's reason).
    public var reason: ReasonCode
    public var createdWallMs: UInt64
    /// Any node may delete the record after this (wall clock): the session's lifetime for a live
    /// one, a grace period for an ended one.
    public var expiresWallMs: UInt64

    public init(peer: String, owner: String, bindingVersion: UInt64, state: SessionState, initiationTimestamp: Timestamp12,
                reason: ReasonCode, createdWallMs: UInt64, expiresWallMs: UInt64) {
        self.peer = peer
        self.owner = owner
        self.bindingVersion = bindingVersion
        self.state = state
        self.initiationTimestamp = initiationTimestamp
        self.reason = reason
        self.createdWallMs = createdWallMs
        self.expiresWallMs = expiresWallMs
    }

    public var json: JSONValue {
        ["peer": .string(peer), "owner": .string(owner), "binding_version": JSONValue(bindingVersion),
         "state": .string(state.rawValue), "initiation_ts": .string(initiationTimestamp.description),
         "reason": .string(reason.rawValue), "created_ms": JSONValue(createdWallMs), "expires_ms": JSONValue(expiresWallMs)]
    }

    /// Decodes a stored value; nil for anything that is not a complete record (a foreign or
    /// corrupted key is ignored, never trusted).
    public init?(json v: JSONValue) {
        func u64(_ k: String) -> UInt64? { v[k]?.intValue.flatMap { $0 >= 0 ? UInt64($0) : nil } }
        guard let peer = v["peer"]?.stringValue, let owner = v["owner"]?.stringValue, let version = u64("binding_version"),
              let state = v["state"]?.stringValue.flatMap(SessionState.init(rawValue:)),
              let tsHex = v["initiation_ts"]?.stringValue, let ts = HexCodec.decode(tsHex), ts.count == Timestamp12.length,
              let reason = v["reason"]?.stringValue.flatMap(ReasonCode.init(rawValue:)),
              let created = u64("created_ms"), let expires = u64("expires_ms") else { return nil }
        let timestamp = ts.withUnsafeBytes { Timestamp12(pointer: $0.baseAddress!) }
        self.init(peer: peer, owner: owner, bindingVersion: version, state: state, initiationTimestamp: timestamp, reason: reason,
                  createdWallMs: created, expiresWallMs: expires)
    }
}

/// A record with the store revision it was read or written at (etcd's `mod_revision`): the value
/// a compare-and-swap compares.
public struct StoredRecord: Equatable, Sendable {
    public var record: SessionRecord
    public var revision: UInt64

    public init(_ record: SessionRecord, revision: UInt64) {
        self.record = record
        self.revision = revision
    }
}

/// `binding_version` across owners: the high 32 bits count ownership changes (the epoch), the low
/// 32 bits the owner's own REATTACHes. Every version a new owner gives is greater than any the old
/// one gave, without the old owner writing its REATTACHes to the store. A standalone gateway stays
/// in epoch 0 (1, 2, 3, ... as before).
public enum OwnershipEpoch {
    public static func epoch(of version: UInt64) -> UInt64 { version >> 32 }

    /// The first version of the epoch after the one `version` belongs to.
    public static func next(after version: UInt64) -> UInt64 { (epoch(of: version) + 1) << 32 | 1 }
}
