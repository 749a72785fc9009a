/// What a clustered gateway core knows of the cluster store: its own name, its lease, a cache of
/// every session record (from the watch and from its own writes) and the requests in flight. The
/// store is an asynchronous collaborator: the core asks (`GatewayAction.store`), the answers and
/// the watched changes come back as facts. Consistency over availability: no ownership change
/// without a successful compare-and-swap, and no serving past the lease.
public struct ClusterOwnership: Equatable, Sendable {
    public let node: String
    /// The configured peers' public keys (base64), by peer index: records name peers by key.
    public internal(set) var peerKeys: [String]
    public let leaseTtlMs: UInt64
    /// This node serves sessions until then (local clock): the send time of the last renewal the
    /// store acknowledged plus the TTL, never later than the store's own expiry. nil = no lease.
    public internal(set) var leaseValidUntilMs: UInt64?
    public internal(set) var records: [SessionID: StoredRecord] = [:]
    /// Requests sent to the store and not answered yet (at most one per session).
    public internal(set) var inFlight: [SessionID: StoreRequest] = [:]
    /// Ends this node could not record yet (store unreachable): written again by `maintenance`.
    var unrecordedEnds: [SessionID: ReasonCode] = [:]
    /// Newest wall clock seen (initiations and maintenance): record times and expiry.
    var wallMs: UInt64 = 0
    public internal(set) var counters = ClusterCounters()

    /// An ended session's record stays this long (resumes of it are refused meanwhile), then any
    /// node may delete it.
    public static let endedRecordGraceMs: UInt64 = 600_000

    public init(node: String, peerKeys: [String], leaseTtlMs: UInt64) {
        self.node = node
        self.peerKeys = peerKeys
        self.leaseTtlMs = leaseTtlMs
    }

    public func isServing(nowMs: UInt64) -> Bool { leaseValidUntilMs.map { nowMs < $0 } ?? false }

    /// Sessions whose record names this node.
    public var ownedRecords: Int { records.values.filter { $0.record.owner == node && $0.record.state != .terminated }.count }
}

public struct ClusterCounters: Equatable, Sendable {
    public var created: UInt64 = 0
    public var claimed: UInt64 = 0
    /// Compare-and-swap requests that found the record changed (a race lost, a stale cache).
    public var casConflicts: UInt64 = 0
    /// Initiations refused because the change could not be recorded (STORE_UNAVAILABLE).
    public var refusedUnavailable: UInt64 = 0
    /// Sessions this node stopped serving (another node took them, or the lease ran out).
    public var released: UInt64 = 0
}
