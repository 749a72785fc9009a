import JVPNCore
import JVPNSystem

/// A clustered gateway's link to etcd, started only when `[Cluster]` is configured: it keeps the
/// node's lease and liveness key, loads and watches every record, and runs the core's store
/// requests. It decides nothing: what it learns goes to the gateway core as facts.
public final class ClusterAgent: @unchecked Sendable {
    /// Where the agent reports (the gateway host takes its lock in each).
    public struct Facts: Sendable {
        public var answered: @Sendable (SessionID, StoreResult) -> Void
        public var recordChanged: @Sendable (SessionID, StoredRecord?, UInt64) -> Void
        /// A lease renewal sent at this monotonic time was acknowledged.
        public var leaseRenewed: @Sendable (UInt64) -> Void
        public var leaseLost: @Sendable () -> Void

        public init(answered: @escaping @Sendable (SessionID, StoreResult) -> Void,
                    recordChanged: @escaping @Sendable (SessionID, StoredRecord?, UInt64) -> Void,
                    leaseRenewed: @escaping @Sendable (UInt64) -> Void, leaseLost: @escaping @Sendable () -> Void) {
            self.answered = answered
            self.recordChanged = recordChanged
            self.leaseRenewed = leaseRenewed
            self.leaseLost = leaseLost
        }
    }

    public let config: ClusterConfig
    /// Made by `start`: the HTTP client's event-loop thread starts with it, and the daemon starts
    /// threads only once it has dropped its capabilities.
    private var store: SessionStore?
    private let facts: Facts
    private let lock = Lock()
    private var leaseTask: Task<Void, Never>?
    private var watchTask: Task<Void, Never>?
    private var lease: Int64?
    /// Node id -> its liveness record, from the watch.
    private var members: [String: String] = [:]
    /// Session keys known from the last load and the watch: a reload reports the ones gone since.
    private var knownSessions: Set<SessionID> = []
    private var reachable = false
    public private(set) var latency = LatencyStats()
    private var conflicts: UInt64 = 0
    private let startedWallMs = Clock.wallMilliseconds()

    public init(config: ClusterConfig, facts: Facts) {
        self.config = config
        self.facts = facts
    }

    public func start() {
        let s = SessionStore(client: EtcdClient(endpoints: config.etcd))
        lock.withLock { store = s }
        leaseTask = Task { [self] in await keepLease(s) }
    }

    /// Stops the lease (revoked, so the other members see this node leave at once) and the watch.
    public func stop() async {
        leaseTask?.cancel()
        let (w, l, s) = lock.withLock { (watchTask, lease, store) }
        w?.cancel()
        guard let s else { return }
        if let l { try? await s.client.revoke(lease: l) }
        await s.client.shutdown()
    }

    /// Runs one request of the core; the answer goes back as a fact. Returns at once.
    public func submit(_ request: StoreRequest) {
        guard let store = lock.withLock({ store }) else {
            // Never synchronously: the caller holds the gateway's lock, which the answer takes.
            Task { [facts] in facts.answered(request.session, .unreachable) }
            return
        }
        Task { [self] in
            let t0 = Clock.monotonicNanoseconds()
            let result = await store.execute(request)
            let ms = Double(Clock.monotonicNanoseconds() - t0) / 1e6
            lock.withLock {
                switch result {
                case .unreachable:
                    reachable = false
                case .conflict:
                    conflicts += 1
                    reachable = true
                    latency.add(ms)
                case .succeeded:
                    reachable = true
                    latency.add(ms)
                }
            }
            facts.answered(request.session, result)
        }
    }

    // MARK: lease and liveness

    private func keepLease(_ store: SessionStore) async {
        let ttlMs = UInt64(config.leaseTtlS) * 1000
        while !Task.isCancelled {
            let sent = Clock.monotonicMilliseconds()
            guard let granted = try? await store.client.grantLease(ttlS: config.leaseTtlS),
                  (try? await announceNode(store, lease: granted.id)) != nil else {
                lock.withLock { reachable = false }
                try? await Task.sleep(nanoseconds: 250_000_000)
                continue
            }
            lock.withLock {
                lease = granted.id
                reachable = true
            }
            // A new lease means this node may have missed changes: everything is read afresh
            // before it serves again.
            restartWatch(store)
            facts.leaseRenewed(sent)
            var renewedAt = sent
            while !Task.isCancelled {
                // Renew three times per TTL; retry quickly while etcd does not answer.
                let healthy = lock.withLock { reachable }
                try? await Task.sleep(nanoseconds: healthy ? ttlMs * 1_000_000 / 3 : 200_000_000)
                let at = Clock.monotonicMilliseconds()
                do {
                    let remaining = try await store.client.keepAlive(lease: granted.id)
                    lock.withLock { reachable = true }
                    if remaining <= 0 {
                        facts.leaseLost()
                        break
                    }
                    renewedAt = at
                    facts.leaseRenewed(at)
                } catch {
                    lock.withLock { reachable = false }
                    // Past the TTL the lease is gone at etcd too: start over with a new one.
                    if elapsedMs(Clock.monotonicMilliseconds(), since: renewedAt) > ttlMs {
                        facts.leaseLost()
                        break
                    }
                }
            }
        }
    }

    private func announceNode(_ store: SessionStore, lease: Int64) async throws {
        let value: JSONValue = ["node": .string(config.nodeId), "started_ms": JSONValue(startedWallMs),
                                "lan_interface": .string(config.lanInterface)]
        _ = try await store.client.txn(compare: [], success: [.put(SessionStore.nodePrefix + config.nodeId, Array(value.text.utf8),
                                                                     lease: lease)], failure: [])
    }

    // MARK: records

    private func restartWatch(_ store: SessionStore) {
        let task = Task { [self] in await followRecords(store) }
        let old = lock.withLock { () -> Task<Void, Never>? in
            let o = watchTask
            watchTask = task
            return o
        }
        old?.cancel()
    }

    /// Loads every record, then follows changes from the next revision; reloads after a compaction,
    /// retries while etcd does not answer.
    private func followRecords(_ store: SessionStore) async {
        while !Task.isCancelled {
            guard let loaded = try? await store.client.range(prefix: SessionStore.prefix) else {
                try? await Task.sleep(nanoseconds: 200_000_000)
                continue
            }
            var present: Set<SessionID> = []
            var nodes: [String: String] = [:]
            for kv in loaded.kvs {
                if let sid = SessionStore.session(ofKey: kv.key), let r = SessionStore.record(kv.value) {
                    present.insert(sid)
                    facts.recordChanged(sid, StoredRecord(r, revision: kv.modRevision), kv.modRevision)
                } else if kv.key.hasPrefix(SessionStore.nodePrefix) {
                    nodes[String(kv.key.dropFirst(SessionStore.nodePrefix.count))] = String(decoding: kv.value, as: UTF8.self)
                }
            }
            let gone = lock.withLock { () -> Set<SessionID> in
                let g = knownSessions.subtracting(present)
                knownSessions = present
                members = nodes
                return g
            }
            for sid in gone { facts.recordChanged(sid, nil, loaded.revision) }
            var next = loaded.revision + 1
            while !Task.isCancelled {
                do {
                    next = try await store.client.watch(prefix: SessionStore.prefix, startRevision: next) { [self] events, _ in
                        apply(events)
                    }
                } catch EtcdError.badResponse(let why) where why.hasPrefix("compacted") {
                    break
                } catch {
                    try? await Task.sleep(nanoseconds: 200_000_000)
                }
            }
        }
    }

    private func apply(_ events: [EtcdWatchEvent]) {
        for e in events {
            if let sid = SessionStore.session(ofKey: e.key) {
                let stored = e.value.flatMap(SessionStore.record).map { StoredRecord($0, revision: e.modRevision) }
                lock.withLock {
                    if stored == nil { knownSessions.remove(sid) } else { knownSessions.insert(sid) }
                }
                facts.recordChanged(sid, stored, e.modRevision)
            } else if e.key.hasPrefix(SessionStore.nodePrefix) {
                let node = String(e.key.dropFirst(SessionStore.nodePrefix.count))
                lock.withLock { members[node] = e.value.map { String(decoding: $0, as: UTF8.self) } }
            }
        }
    }

    // MARK: status

    /// `etcd`, `members`, store latency and conflicts (the host adds what its core knows).
    public func status() -> [String: JSONValue] {
        lock.withLock {
            ["node": .string(config.nodeId), "etcd": .string(reachable ? "ok" : "unreachable"),
             "members": .array(members.keys.sorted().map { .string($0) }),
             "etcd_endpoints": .array(config.etcd.map { .string("http://\($0)") }),
             "lan_interface": .string(config.lanInterface), "lease_ttl_s": JSONValue(config.leaseTtlS),
             "store_requests": JSONValue(latency.count), "store_conflicts": JSONValue(conflicts),
             "store_latency_ms": latency.json]
        }
    }

    public var isReachable: Bool { lock.withLock { reachable } }
}

/// Store round trips: count, and a window of the last 1024 for percentiles.
public struct LatencyStats: Sendable {
    public private(set) var count: UInt64 = 0
    public private(set) var sumMs = 0.0
    private var window = [Double]()
    private var next = 0

    public mutating func add(_ ms: Double) {
        count += 1
        sumMs += ms
        if window.count < 1024 { window.append(ms) } else { window[next] = ms; next = (next + 1) % 1024 }
    }

    public func percentile(_ p: Double) -> Double {
        guard !window.isEmpty else { return 0 }
        let s = window.sorted()
        return s[min(s.count - 1, Int(Double(s.count - 1) * p + 0.5))]
    }

    var json: JSONValue {
        ["p50": .double((percentile(0.5) * 1000).rounded() / 1000), "p99": .double((percentile(0.99) * 1000).rounded() / 1000),
         "max": .double(((window.max() ?? 0) * 1000).rounded() / 1000)]
    }
}
