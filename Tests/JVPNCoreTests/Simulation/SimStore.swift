@testable import JVPNCore

/// The cluster store as the simulation models etcd: one revision counter, records compared and
/// swapped atomically (a request applies only if the record is still at the revision it names),
/// and a log of every change, which is what each node's watch replays in order. It also checks the
/// store's own invariant: the owner of a record changes only through a successful claim.
struct SimStore {
    struct Change: Equatable {
        var session: SessionID
        var stored: StoredRecord?
        var revision: UInt64
    }

    private(set) var records: [SessionID: StoredRecord] = [:]
    private(set) var revision: UInt64 = 1
    private(set) var log: [Change] = []
    /// Owner changes made by something other than a claim (must stay empty).
    private(set) var violations: [String] = []

    mutating func apply(_ request: StoreRequest) -> StoreResult {
        let sid = request.session
        let current = records[sid]
        switch request {
        case .create(_, let r):
            guard current == nil else { return .conflict(current: current) }
            return put(sid, r)
        case .claim(_, let expecting, let r):
            guard let c = current, c.revision == expecting else { return .conflict(current: current) }
            return put(sid, r)
        case .update(_, let expecting, let r):
            guard let c = current, c.revision == expecting else { return .conflict(current: current) }
            if c.record.owner != r.owner { violations.append("update moved \(sid.hex) from \(c.record.owner) to \(r.owner)") }
            return put(sid, r)
        case .delete(_, let expecting):
            guard let c = current, c.revision == expecting else { return .conflict(current: current) }
            revision += 1
            records[sid] = nil
            log.append(Change(session: sid, stored: nil, revision: revision))
            return .succeeded(revision: revision)
        }
    }

    private mutating func put(_ sid: SessionID, _ r: SessionRecord) -> StoreResult {
        revision += 1
        let stored = StoredRecord(r, revision: revision)
        records[sid] = stored
        log.append(Change(session: sid, stored: stored, revision: revision))
        return .succeeded(revision: revision)
    }
}
