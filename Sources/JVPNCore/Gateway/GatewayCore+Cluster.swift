/// The clustered gateway's ownership decisions (GatewayCore with a `ClusterOwnership`). A session
/// opens on this node only once the store has recorded it here: a new session by creating its
/// record, a resume by one compare-and-swap on the record as last read (the session exists,
/// belongs to this peer key, is not TERMINATED, and the initiation is newer than the one that
/// changed it last). The node serves only while its lease holds, and lets a session go as soon as
/// the watch shows another owner.
extension GatewayCore {
    // MARK: initiations

    mutating func clusterInitiation(peer: Int, session sid: SessionID, timestamp: Timestamp12, wallNs: UInt64, from: Address,
                                    now: UInt64, resume: ReasonCode?, _ out: inout [GatewayAction<Address>]) -> (InitiationDecision, [GatewayAction<Address>]) {
        guard let c = cluster else { return (.drop(.unknownSession), out) }
        cluster!.wallMs = max(c.wallMs, wallNs / 1_000_000)
        // A retry while the store works on this very session: the newer initiation is the one to answer.
        if let held = peers[peer].awaiting, held.session == sid {
            peers[peer].newestTimestamp = timestamp
            peers[peer].awaiting = PendingHandshake(session: sid, respondedTo: from, atMs: now, resumedFrom: held.resumedFrom,
                                                    rekeysLiveSession: held.rekeysLiveSession)
            return (.awaitStore, out)
        }
        guard c.isServing(nowMs: now) else {
            return refuseUnrecordable(peer, sid, "this node holds no lease (etcd unreachable)", &out)
        }
        guard c.inFlight[sid] == nil else {
            return refuseUnrecordable(peer, sid, "a store request for the session is still running", &out)
        }
        let record: SessionRecord
        let request: StoreRequest
        var resumedFrom: (node: String, reason: ReasonCode)?
        let liveHere = peers[peer].session.map { $0.id == sid && $0.isLive } ?? false
        if let stored = c.records[sid] {
            let r = stored.record
            guard r.peer == c.peerKeys[peer] else {
                out.append(.audit(peer: peer, sid, AuditRecord(check: "session_owner", result: "fail",
                                                               detail: "session \(sid.hex) belongs to another peer in the cluster store")))
                securityEvent(peer, .ownershipConflict, from, now, &out)
                return (.drop(.ownershipConflict), out)
            }
            guard r.state != .terminated else { return (.drop(.unknownSession), out) }
            guard timestamp > r.initiationTimestamp else {
                counters.staleInitiations += 1
                securityEvent(peer, .replayDetected, from, now, &out)
                return (.drop(.replayDetected), out)
            }
            if resume == nil, r.owner == c.node, let p = peers[peer].pending, p.session == sid {
                // The handshake of a session recorded here, retried before the client confirmed it.
                // Never a resume: the client asks for one after it left this node, and this node's
                // copy of the record may be stale (cut off from the store while its lease holds),
                // so only a compare-and-swap on the record can give the session back to it.
                peers[peer].newestTimestamp = timestamp
                peers[peer].pending = PendingHandshake(session: sid, respondedTo: from, atMs: now, resumedFrom: p.resumedFrom)
                return (.respondNewSession, out)
            }
            guard let reason = resume else {
                // Only a resume continues a recorded session; a fresh handshake must bring a fresh id.
                out.append(.audit(peer: peer, sid, AuditRecord(check: "ownership", result: "fail",
                                                               detail: "handshake names session \(sid.hex), recorded on \(r.owner), without asking to resume it")))
                return (.drop(.ownershipConflict), out)
            }
            if liveHere {
                // Served here: the record as read must still say so; the session keeps its
                // binding_version and its keys are renewed as by a rekey.
                guard r.owner == c.node else {
                    return refuseUnrecordable(peer, sid, "the store names \(r.owner) owner of a session served here", &out)
                }
                var kept = r
                kept.initiationTimestamp = timestamp
                kept.reason = reason
                record = kept
                request = .claim(sid, expecting: stored.revision, kept)
            } else {
                var taken = r
                taken.owner = c.node
                taken.bindingVersion = OwnershipEpoch.next(after: r.bindingVersion)
                taken.state = .recovering
                taken.initiationTimestamp = timestamp
                taken.reason = reason
                record = taken
                request = .claim(sid, expecting: stored.revision, taken)
                resumedFrom = (r.owner, reason)
            }
        } else if liveHere {
            return refuseUnrecordable(peer, sid, "no record of a session served here", &out)
        } else {
            if resume != nil {
                // The cache may lag a creation by a moment: the client's next attempt finds it.
                out.append(.audit(peer: peer, sid, AuditRecord(check: "ownership", result: "fail",
                                                               detail: "resume of session \(sid.hex): no record of it in the cluster store")))
                return (.drop(.unknownSession), out)
            }
            let wall = cluster!.wallMs
            record = SessionRecord(peer: c.peerKeys[peer], owner: c.node, bindingVersion: GatewayCore.initialBindingVersion,
                                   state: .birth, initiationTimestamp: timestamp, reason: .handshakeOK, createdWallMs: wall,
                                   expiresWallMs: wall &+ policy.sessionTtlMs)
            request = .create(sid, record)
        }
        peers[peer].newestTimestamp = timestamp
        if let old = peers[peer].awaiting { out.append(.dropHeld(peer: peer, old.session)) }
        peers[peer].awaiting = PendingHandshake(session: sid, respondedTo: from, atMs: now, resumedFrom: resumedFrom,
                                                rekeysLiveSession: liveHere)
        cluster!.inFlight[sid] = request
        out.append(.store(request))
        return (.awaitStore, out)
    }

    private mutating func refuseUnrecordable(_ peer: Int, _ sid: SessionID, _ why: String,
                                             _ out: inout [GatewayAction<Address>]) -> (InitiationDecision, [GatewayAction<Address>]) {
        cluster!.counters.refusedUnavailable += 1
        out.append(.audit(peer: peer, sid, AuditRecord(check: "ownership", result: "fail",
                                                       detail: "cannot record session \(sid.hex): \(why); refused (\(ReasonCode.storeUnavailable.rawValue))")))
        return (.drop(.storeUnavailable), out)
    }

    // MARK: facts from the store

    /// The store answered the request in flight for `session`.
    public mutating func storeAnswered(session sid: SessionID, _ result: StoreResult, nowMs: UInt64) -> [GatewayAction<Address>] {
        let now = clock(nowMs)
        var out: [GatewayAction<Address>] = []
        guard cluster != nil, let request = cluster!.inFlight.removeValue(forKey: sid) else { return out }
        switch request {
        case .create(_, let record), .claim(_, _, let record):
            let waiting = peers.owner(of: sid).flatMap { peers[$0].awaiting?.session == sid ? $0 : nil }
            switch result {
            case .succeeded(let revision):
                cluster!.records[sid] = StoredRecord(record, revision: revision)
                guard let peer = waiting, let held = peers[peer].awaiting else {
                    if case .claim = request { cluster!.counters.claimed += 1 } else { cluster!.counters.created += 1 }
                    // Nobody waits for it any more (the client moved on to another session).
                    if case .create = request { deleteRecord(sid, expecting: revision, &out) }
                    return out
                }
                peers[peer].awaiting = nil
                if held.rekeysLiveSession {
                    // Still this node's: the resume renews the live session's keys (or, if the
                    // session ended meanwhile, is answered by nobody).
                    if let s = peers[peer].session, s.id == sid, s.isLive, cluster!.isServing(nowMs: now) {
                        out.append(.respondHeld(peer: peer, sid, rekey: true))
                    } else {
                        out.append(.dropHeld(peer: peer, sid))
                    }
                    return out
                }
                if case .claim = request { cluster!.counters.claimed += 1 } else { cluster!.counters.created += 1 }
                if let old = peers[peer].pending, old.session != sid {
                    out.append(.pendingDropped(peer: peer, old.session))
                    forgetUnconfirmed(old.session, &out)
                }
                peers[peer].pending = held
                if let moved = held.resumedFrom {
                    out.append(.ownershipChanged(peer: peer, sid, OwnershipChange(fromNode: moved.node, toNode: record.owner,
                                                                                  bindingVersion: record.bindingVersion,
                                                                                  reason: moved.reason, boundAt: nil)))
                }
                out.append(.respondHeld(peer: peer, sid, rekey: false))
            case .conflict(let current):
                cluster!.counters.casConflicts += 1
                cluster!.records[sid] = current
                guard let peer = waiting else { return out }
                peers[peer].awaiting = nil
                out.append(.dropHeld(peer: peer, sid))
                let now = current.map { "owned by \($0.record.owner) at binding_version \($0.record.bindingVersion)" } ?? "no record"
                out.append(.audit(peer: peer, sid, AuditRecord(check: "ownership", result: "fail",
                                                               detail: "session \(sid.hex) changed in the store meanwhile (\(now)); refused (\(ReasonCode.ownershipConflict.rawValue))")))
            case .unreachable:
                cluster!.counters.refusedUnavailable += 1
                guard let peer = waiting else { return out }
                peers[peer].awaiting = nil
                out.append(.dropHeld(peer: peer, sid))
                out.append(.audit(peer: peer, sid, AuditRecord(check: "ownership", result: "fail",
                                                               detail: "cannot record session \(sid.hex): etcd did not answer; refused (\(ReasonCode.storeUnavailable.rawValue))")))
            }
        case .update(_, _, let record):
            switch result {
            case .succeeded(let revision):
                cluster!.records[sid] = StoredRecord(record, revision: revision)
                cluster!.unrecordedEnds[sid] = nil
            case .conflict(let current):
                // Another node has it now: its end is not ours to write.
                cluster!.counters.casConflicts += 1
                cluster!.records[sid] = current
                cluster!.unrecordedEnds[sid] = nil
            case .unreachable:
                cluster!.unrecordedEnds[sid] = record.reason
            }
        case .delete:
            switch result {
            case .succeeded: cluster!.records[sid] = nil
            case .conflict(let current): cluster!.records[sid] = current
            case .unreachable: break // expired records are collected again later
            }
        }
        _ = now
        return out
    }

    /// The watch saw the record of `session` change at store `revision` (nil: deleted). A session
    /// served here whose record now names another node (or is gone) is let go at once.
    public mutating func recordChanged(session sid: SessionID, _ stored: StoredRecord?, revision: UInt64,
                                       nowMs: UInt64) -> [GatewayAction<Address>] {
        let now = clock(nowMs)
        var out: [GatewayAction<Address>] = []
        guard let c = cluster else { return out }
        // The answer to our own write may come before the watch reports older changes.
        if let cached = c.records[sid], cached.revision >= revision { return out }
        cluster!.records[sid] = stored
        let owner = stored?.record.owner
        guard owner != c.node else { return out }
        if let peer = peers.owner(of: sid) {
            if let p = peers[peer].pending, p.session == sid {
                peers[peer].pending = nil
                out.append(.pendingDropped(peer: peer, sid))
            }
            if let s = peers[peer].session, s.id == sid, s.isLive {
                release(peer, to: owner ?? "", bindingVersion: stored?.record.bindingVersion ?? s.bindingVersion,
                        reason: stored?.record.reason ?? .ownershipConflict, now, &out)
            }
        }
        return out
    }

    /// The store acknowledged a lease renewal sent at `sentMs`: this node may serve until
    /// `sentMs` + TTL (the store's expiry is later still).
    public mutating func leaseRenewed(sentMs: UInt64, nowMs: UInt64) {
        _ = clock(nowMs)
        guard let c = cluster else { return }
        cluster!.leaseValidUntilMs = max(c.leaseValidUntilMs ?? 0, sentMs + c.leaseTtlMs)
    }

    /// The store says the lease is gone (expired or revoked): stop serving at the next tick.
    public mutating func leaseLost(nowMs: UInt64) -> [GatewayAction<Address>] {
        let now = clock(nowMs)
        var out: [GatewayAction<Address>] = []
        guard cluster != nil else { return out }
        cluster!.leaseValidUntilMs = nil
        clusterTick(now, &out)
        return out
    }

    /// About once a second, with the wall clock: ends not recorded yet are written again, and
    /// expired records are deleted (any node may; a race is harmless, each delete compares).
    public mutating func maintenance(nowMs: UInt64, wallMs: UInt64, maxRequests: Int = 16) -> [GatewayAction<Address>] {
        let now = clock(nowMs)
        var out: [GatewayAction<Address>] = []
        guard let c = cluster, c.isServing(nowMs: now) else { return out }
        cluster!.wallMs = max(c.wallMs, wallMs)
        var budget = maxRequests
        for (sid, reason) in c.unrecordedEnds.sorted(by: { $0.key.hex < $1.key.hex }) where budget > 0 && c.inFlight[sid] == nil {
            budget -= 1
            cluster!.unrecordedEnds[sid] = nil
            recordEnd(sid, reason: reason, &out)
        }
        for (sid, stored) in c.records.sorted(by: { $0.key.hex < $1.key.hex })
        where budget > 0 && stored.record.expiresWallMs < cluster!.wallMs && cluster!.inFlight[sid] == nil {
            budget -= 1
            deleteRecord(sid, expecting: stored.revision, &out)
        }
        return out
    }

    // MARK: internals

    /// Without a valid lease this node serves nothing: whoever takes a session next must not find
    /// it still forwarded here.
    mutating func clusterTick(_ now: UInt64, _ out: inout [GatewayAction<Address>]) {
        guard let c = cluster, !c.isServing(nowMs: now) else { return }
        for peer in peers.indices {
            if let p = peers[peer].pending {
                peers[peer].pending = nil
                out.append(.pendingDropped(peer: peer, p.session))
            }
            if let s = peers[peer].session, s.isLive {
                release(peer, to: "", bindingVersion: s.bindingVersion, reason: .storeUnavailable, now, &out)
            }
        }
    }

    /// Lets every session go (operator shutdown of a cluster member): the records stay, the clients
    /// resume elsewhere.
    mutating func releaseAll(reason: ReasonCode, _ now: UInt64, _ out: inout [GatewayAction<Address>]) {
        for peer in peers.indices {
            if let p = peers[peer].pending {
                peers[peer].pending = nil
                out.append(.pendingDropped(peer: peer, p.session))
            }
            if let s = peers[peer].session, s.isLive {
                release(peer, to: "", bindingVersion: s.bindingVersion, reason: reason, now, &out)
            }
        }
    }

    private mutating func release(_ peer: Int, to node: String, bindingVersion: UInt64, reason: ReasonCode, _ now: UInt64,
                                  _ out: inout [GatewayAction<Address>]) {
        guard let c = cluster, var s = peers[peer].session else { return }
        out.append(.ownershipChanged(peer: peer, s.id, OwnershipChange(fromNode: c.node, toNode: node, bindingVersion: bindingVersion,
                                                                       reason: reason, boundAt: s.bound)))
        // This node's copy ends; the session itself lives on where its record points.
        transition(&s, peer, .terminated, .ownershipConflict, now, &out)
        peers[peer].session = nil
        cluster!.counters.released += 1
        out.append(.released(peer: peer, s.id))
        out.append(.bindingChanged(peer: peer))
    }

    /// A session that ended here: its record says so (TERMINATED is final, cluster-wide).
    mutating func recordEnd(_ sid: SessionID, reason: ReasonCode, _ out: inout [GatewayAction<Address>]) {
        guard let c = cluster, let stored = c.records[sid], stored.record.owner == c.node, stored.record.state != .terminated else { return }
        guard c.inFlight[sid] == nil else {
            cluster!.unrecordedEnds[sid] = reason
            return
        }
        var ended = stored.record
        ended.state = .terminated
        ended.reason = reason
        ended.expiresWallMs = c.wallMs &+ ClusterOwnership.endedRecordGraceMs
        let request = StoreRequest.update(sid, expecting: stored.revision, ended)
        cluster!.inFlight[sid] = request
        out.append(.store(request))
    }

    /// A session created here whose client never confirmed it: its record goes.
    mutating func forgetUnconfirmed(_ sid: SessionID, _ out: inout [GatewayAction<Address>]) {
        guard let c = cluster, let stored = c.records[sid], stored.record.owner == c.node, stored.record.state == .birth,
              c.inFlight[sid] == nil else { return }
        deleteRecord(sid, expecting: stored.revision, &out)
    }

    private mutating func deleteRecord(_ sid: SessionID, expecting revision: UInt64, _ out: inout [GatewayAction<Address>]) {
        guard cluster != nil, cluster!.inFlight[sid] == nil else { return }
        let request = StoreRequest.delete(sid, expecting: revision)
        cluster!.inFlight[sid] = request
        out.append(.store(request))
    }
}
