import JVPNSystem
import JVPNCore
import Prometheus

/// The daemon's Prometheus metrics. Called on state changes and from a ~1 s timer, never per
/// packet; every method is safe from any thread.
///
/// Series (every one also carries `interface="NAME"` when the metrics were made with a name):
/// - `jvpn_session_state{session,peer,state}` gauge: 1 for the current state, 0 for the five
///   others. A TERMINATED session's series are removed (a gateway sees many short sessions; keeping
///   each id forever would grow without bound) and `jvpn_sessions_terminated_total` counts it.
/// - `jvpn_sessions{state}` gauge: how many live sessions are in each state.
/// - `jvpn_switches_total{reason}` counter, `jvpn_recovery_latency_ms` histogram.
/// - `jvpn_rejects_total{reason}` counter.
/// - `jvpn_tx_bytes_total`, `jvpn_rx_bytes_total`, `jvpn_tx_packets_total`, `jvpn_rx_packets_total`
///   `{session}` counters. `setTraffic` takes the daemon's running totals; the counter follows them
///   (if a total goes backwards the counter resets, which `rate()` handles).
/// - `jvpn_path_rtt_ms`, `jvpn_path_loss_pct` (0-100), `jvpn_path_jitter_ms` `{path,uplink,transport}`
///   gauges and `jvpn_path_status{path,uplink,transport,status}` (1 for the current status of
///   active|standby|dead); `transport` is `udp` or `tcp`.
/// - `jvpn_path_mtu_bytes{path,uplink,transport}` gauge: the path MTU the packets are fitted to (0
///   while unknown, and on a TCP path, whose stream carries any frame whole).
/// - `jvpn_mtu_{mss_clamped,resegmented,fragmented,dropped_too_big,too_big_sent,black_holes,probes}_total`
///   counters: what the data plane did to fit packets to a smaller path, and the MTU searches.
/// - `jvpn_events_dropped_total`, `jvpn_syslog_failures_total` counters.
public final class JVPNMetrics: @unchecked Sendable {
    public static let recoveryBucketsMs: [Double] = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000]
    public static let pathStatuses = ["active", "standby", "dead"]

    public let registry: PrometheusCollectorRegistry
    private let base: [(String, String)]
    private let lock = Lock()

    private struct SessionSeries {
        var peer: String
        var state: SessionState
        var stateGauges: [SessionState: Gauge]
        var traffic: [Counter] = []       // tx bytes, rx bytes, tx packets, rx packets
        var lastTotals: [UInt64] = [0, 0, 0, 0]
    }
    private var sessions: [String: SessionSeries] = [:]
    /// Ids recently terminated, so a timer tick racing the TERMINATED call cannot resurrect them.
    private var terminated: Set<String> = []
    private var terminatedOrder: [String] = []
    private static let terminatedMemory = 4096

    private struct PathSeries {
        var uplink: String
        var transport: String
        var rtt: Gauge, loss: Gauge, jitter: Gauge, mtu: Gauge
        var status: [String: Gauge]
    }
    private var paths: [String: PathSeries] = [:]

    private let sessionsByState: [SessionState: Gauge]
    private let terminatedTotal: Counter
    private let recovery: ValueHistogram
    private var switches: [ReasonCode: Counter] = [:]
    private var rejects: [ReasonCode: Counter] = [:]
    private let eventsDropped: Counter
    private var eventsDroppedLast: UInt64 = 0
    private let syslogFailures: Counter
    private var syslogFailuresLast: UInt64 = 0
    private let securitySuppressed: Counter
    private var securitySuppressedLast: UInt64 = 0
    private let mtuCounters: [Counter]
    private var mtuLast: [UInt64]

    private enum Help {
        static let sessionState = "1 for the session's current state, 0 for the others"
        static let sessions = "Live sessions by state"
        static let terminated = "Sessions that reached TERMINATED"
        static let switches = "Transport switches by reason"
        static let recovery = "Recovery latency of transport switches in milliseconds (old path declared dead or worse to new binding confirmed)"
        static let rejects = "Rejected requests by reason"
        static let txBytes = "Bytes sent through the tunnel by the session"
        static let rxBytes = "Bytes received through the tunnel by the session"
        static let txPackets = "Packets sent through the tunnel by the session"
        static let rxPackets = "Packets received through the tunnel by the session"
        static let rtt = "Smoothed round-trip time of authenticated probes on the path in milliseconds"
        static let loss = "Probe loss on the path in percent (last 20 probes)"
        static let jitter = "Probe jitter on the path in milliseconds"
        static let pathStatus = "1 for the path's current status (active, standby, dead), 0 for the others"
        static let mtu = "Path MTU in bytes (largest IP packet, both directions) that packets are fitted to; 0 while unknown"
        static let mtuTotals: [(String, String)] = [
            ("jvpn_mtu_mss_clamped_total", "TCP SYN and SYN-ACK segments whose MSS was lowered to fit the active path"),
            ("jvpn_mtu_resegmented_total", "Too-big TCP packets cut to the active path's size"),
            ("jvpn_mtu_fragmented_total", "IPv4 packets without DF fragmented to the active path's size"),
            ("jvpn_mtu_dropped_too_big_total", "Packets too big for the active path that could not be split"),
            ("jvpn_mtu_too_big_sent_total", "ICMP fragmentation-needed / packet-too-big errors written into the TUN"),
            ("jvpn_mtu_black_holes_total", "Path MTUs that stopped passing while small probes did"),
            ("jvpn_mtu_probes_total", "Path MTU probes sent"),
        ]
        static let eventsDropped = "Events that could not be written to the event log"
        static let syslogFailures = "Events that could not be handed to syslog"
        static let securitySuppressed = "SECURITY_EVENTs not emitted because the per-session or global event rate limit was reached"
    }

    /// Reasons that drive a switch and those that reject a request: pre-created at 0 so that
    /// `rate()` and alerts see the series before the first occurrence.
    static let switchReasons: [ReasonCode] = [.linkDown, .addressLost, .probeTimeout, .betterPath, .natRebind, .candidateAvailable]
    static let rejectReasons: [ReasonCode] = [.invalidProof, .replayDetected, .staleVersion, .unknownSession, .rateLimited]

    public init(interface: String? = nil, registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        let base: [(String, String)] = interface.map { [("interface", $0)] } ?? []
        self.base = base
        var byState: [SessionState: Gauge] = [:]
        for s in SessionState.allCases where s != .terminated {
            byState[s] = registry.makeGauge(descriptor: JVPNMetrics.d("jvpn_sessions", Help.sessions), labels: base + [("state", s.rawValue)])
        }
        sessionsByState = byState
        terminatedTotal = registry.makeCounter(descriptor: JVPNMetrics.d("jvpn_sessions_terminated_total", Help.terminated), labels: base)
        recovery = registry.makeValueHistogram(descriptor: JVPNMetrics.d("jvpn_recovery_latency_ms", Help.recovery), labels: base,
                                               buckets: JVPNMetrics.recoveryBucketsMs)
        eventsDropped = registry.makeCounter(descriptor: JVPNMetrics.d("jvpn_events_dropped_total", Help.eventsDropped), labels: base)
        syslogFailures = registry.makeCounter(descriptor: JVPNMetrics.d("jvpn_syslog_failures_total", Help.syslogFailures), labels: base)
        securitySuppressed = registry.makeCounter(descriptor: JVPNMetrics.d("jvpn_security_events_suppressed_total", Help.securitySuppressed),
                                                  labels: base)
        mtuCounters = Help.mtuTotals.map { registry.makeCounter(descriptor: JVPNMetrics.d($0.0, $0.1), labels: base) }
        mtuLast = Help.mtuTotals.map { _ in 0 }
        for r in JVPNMetrics.switchReasons { _ = switchCounter(r) }
        for r in JVPNMetrics.rejectReasons { _ = rejectCounter(r) }
    }

    // MARK: sessions

    public func setSessionState(session: String, peer: String, state: SessionState) {
        lock.lock(); defer { lock.unlock() }
        if terminated.contains(session) { return }
        if state == .terminated {
            if let s = sessions.removeValue(forKey: session) {
                for g in s.stateGauges.values { registry.unregisterGauge(g) }
                for c in s.traffic { registry.unregisterCounter(c) }
            }
            rememberTerminated(session)
            terminatedTotal.increment()
            refreshSessionCounts()
            return
        }
        var s = sessions[session] ?? makeSession(session: session, peer: peer, state: state)
        if s.peer != peer {
            // The peer label is part of the series identity: re-create the series under the new one.
            for g in s.stateGauges.values { registry.unregisterGauge(g) }
            s.stateGauges = makeStateGauges(session: session, peer: peer)
            s.peer = peer
        }
        s.state = state
        for (st, g) in s.stateGauges { g.set(st == state ? 1.0 : 0.0) }
        sessions[session] = s
        refreshSessionCounts()
    }

    /// Drops a session's series without counting a termination (e.g. the daemon shuts down).
    public func removeSession(session: String) {
        lock.lock(); defer { lock.unlock() }
        if let s = sessions.removeValue(forKey: session) {
            for g in s.stateGauges.values { registry.unregisterGauge(g) }
            for c in s.traffic { registry.unregisterCounter(c) }
        }
        refreshSessionCounts()
    }

    /// Running totals for the session since it began, from the daemon's ~1 s timer.
    public func setTraffic(session: String, txBytes: UInt64, rxBytes: UInt64, txPackets: UInt64, rxPackets: UInt64) {
        lock.lock(); defer { lock.unlock() }
        guard !terminated.contains(session), var s = sessions[session] else {
            // Traffic before the first state report: the state call creates the series.
            return
        }
        if s.traffic.isEmpty {
            let l = base + [("session", session)]
            s.traffic = [
                registry.makeCounter(descriptor: JVPNMetrics.d("jvpn_tx_bytes_total", Help.txBytes), labels: l),
                registry.makeCounter(descriptor: JVPNMetrics.d("jvpn_rx_bytes_total", Help.rxBytes), labels: l),
                registry.makeCounter(descriptor: JVPNMetrics.d("jvpn_tx_packets_total", Help.txPackets), labels: l),
                registry.makeCounter(descriptor: JVPNMetrics.d("jvpn_rx_packets_total", Help.rxPackets), labels: l),
            ]
        }
        let totals = [txBytes, rxBytes, txPackets, rxPackets]
        for i in 0..<4 {
            JVPNMetrics.follow(s.traffic[i], last: &s.lastTotals[i], total: totals[i])
        }
        sessions[session] = s
    }

    // MARK: switches and rejects

    public func recordSwitch(reason: ReasonCode, recoveryMs: Double) {
        lock.lock(); defer { lock.unlock() }
        switchCounter(reason).increment()
        if recoveryMs.isFinite && recoveryMs >= 0 { recovery.record(recoveryMs) }
    }

    public func recordReject(reason: ReasonCode) {
        lock.lock(); defer { lock.unlock() }
        rejectCounter(reason).increment()
    }

    // MARK: paths

    /// Path quality from the ~1 s timer. `status` is active, standby or dead; NaN is fine for an
    /// unmeasured RTT and renders as NaN.
    /// One path's gauges, labelled with the path, its uplink and its transport (`udp`, `tcp`).
    public func setPath(path: String, uplink: String, transport: String, rttMs: Double, lossPct: Double, jitterMs: Double,
                        status: String, mtuBytes: Double = 0) {
        lock.lock(); defer { lock.unlock() }
        var p: PathSeries
        if let existing = paths[path], existing.uplink == uplink, existing.transport == transport {
            p = existing
        } else {
            if let old = paths[path] { unregister(old) }
            let l = base + [("path", path), ("uplink", uplink), ("transport", transport)]
            var st: [String: Gauge] = [:]
            for name in JVPNMetrics.pathStatuses {
                st[name] = registry.makeGauge(descriptor: JVPNMetrics.d("jvpn_path_status", Help.pathStatus), labels: l + [("status", name)])
            }
            p = PathSeries(uplink: uplink, transport: transport,
                           rtt: registry.makeGauge(descriptor: JVPNMetrics.d("jvpn_path_rtt_ms", Help.rtt), labels: l),
                           loss: registry.makeGauge(descriptor: JVPNMetrics.d("jvpn_path_loss_pct", Help.loss), labels: l),
                           jitter: registry.makeGauge(descriptor: JVPNMetrics.d("jvpn_path_jitter_ms", Help.jitter), labels: l),
                           mtu: registry.makeGauge(descriptor: JVPNMetrics.d("jvpn_path_mtu_bytes", Help.mtu), labels: l),
                           status: st)
        }
        if p.status[status] == nil {
            // An unexpected status still shows up rather than vanishing.
            p.status[status] = registry.makeGauge(descriptor: JVPNMetrics.d("jvpn_path_status", Help.pathStatus),
                                                  labels: base + [("path", path), ("uplink", uplink), ("transport", transport),
                                                                  ("status", status)])
        }
        p.rtt.set(rttMs)
        p.loss.set(lossPct)
        p.jitter.set(jitterMs)
        p.mtu.set(mtuBytes)
        for (name, g) in p.status { g.set(name == status ? 1.0 : 0.0) }
        paths[path] = p
    }

    public func removePath(path: String) {
        lock.lock(); defer { lock.unlock() }
        if let p = paths.removeValue(forKey: path) { unregister(p) }
    }

    /// Keeps only the given paths: the timer passes what exists now, the rest disappear.
    public func retainPaths(_ keep: Set<String>) {
        lock.lock(); defer { lock.unlock() }
        for (name, p) in paths where !keep.contains(name) {
            unregister(p)
            paths.removeValue(forKey: name)
        }
    }

    // MARK: path MTU

    /// Running totals of the path-MTU counters, summed over sessions, in the order of
    /// `mtuTotalKeys`; from the ~1 s timer.
    public func setMtuTotals(_ totals: [UInt64]) {
        lock.lock(); defer { lock.unlock() }
        for (i, t) in totals.prefix(mtuCounters.count).enumerated() { JVPNMetrics.follow(mtuCounters[i], last: &mtuLast[i], total: t) }
    }

    /// The status JSON keys (of a session's `mtu`) behind `setMtuTotals`, in order.
    public static let mtuTotalKeys = ["mss_clamped", "resegmented", "fragmented", "dropped_too_big", "too_big_sent", "black_holes", "probes"]

    // MARK: telemetry loss

    /// The daemon's running count of events it could not write.
    public func setEventsDropped(_ total: UInt64) {
        lock.lock(); defer { lock.unlock() }
        JVPNMetrics.follow(eventsDropped, last: &eventsDroppedLast, total: total)
    }

    /// The gateway's count of rate-limited SECURITY_EVENTs, passed on from the timer.
    public func setSecurityEventsSuppressed(_ total: UInt64) {
        lock.lock(); defer { lock.unlock() }
        JVPNMetrics.follow(securitySuppressed, last: &securitySuppressedLast, total: total)
    }

    /// `SyslogSink.failures`, passed on from the timer.
    public func setSyslogFailures(_ total: UInt64) {
        lock.lock(); defer { lock.unlock() }
        JVPNMetrics.follow(syslogFailures, last: &syslogFailuresLast, total: total)
    }

    /// Prometheus text exposition format 0.0.4.
    public func render() -> String {
        registry.emitToString()
    }

    // MARK: - private (lock held)

    private static func d(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    private func makeStateGauges(session: String, peer: String) -> [SessionState: Gauge] {
        var g: [SessionState: Gauge] = [:]
        for st in SessionState.allCases {
            g[st] = registry.makeGauge(descriptor: JVPNMetrics.d("jvpn_session_state", Help.sessionState),
                                       labels: base + [("session", session), ("peer", peer), ("state", st.rawValue)])
        }
        return g
    }

    private func makeSession(session: String, peer: String, state: SessionState) -> SessionSeries {
        SessionSeries(peer: peer, state: state, stateGauges: makeStateGauges(session: session, peer: peer))
    }

    private func refreshSessionCounts() {
        var counts: [SessionState: Int] = [:]
        for s in sessions.values { counts[s.state, default: 0] += 1 }
        for (st, g) in sessionsByState { g.set(Double(counts[st] ?? 0)) }
    }

    private func rememberTerminated(_ session: String) {
        guard terminated.insert(session).inserted else { return }
        terminatedOrder.append(session)
        if terminatedOrder.count > JVPNMetrics.terminatedMemory {
            let drop = terminatedOrder.count - JVPNMetrics.terminatedMemory / 2
            for id in terminatedOrder.prefix(drop) { terminated.remove(id) }
            terminatedOrder.removeFirst(drop)
        }
    }

    private func switchCounter(_ r: ReasonCode) -> Counter {
        if let c = switches[r] { return c }
        let c = registry.makeCounter(descriptor: JVPNMetrics.d("jvpn_switches_total", Help.switches), labels: base + [("reason", r.rawValue)])
        switches[r] = c
        return c
    }

    private func rejectCounter(_ r: ReasonCode) -> Counter {
        if let c = rejects[r] { return c }
        let c = registry.makeCounter(descriptor: JVPNMetrics.d("jvpn_rejects_total", Help.rejects), labels: base + [("reason", r.rawValue)])
        rejects[r] = c
        return c
    }

    private func unregister(_ p: PathSeries) {
        registry.unregisterGauge(p.rtt)
        registry.unregisterGauge(p.loss)
        registry.unregisterGauge(p.jitter)
        registry.unregisterGauge(p.mtu)
        for g in p.status.values { registry.unregisterGauge(g) }
    }

    /// Moves a counter to a running total reported by the daemon.
    private static func follow(_ counter: Counter, last: inout UInt64, total: UInt64) {
        if total < last {
            counter.reset()
            last = 0
        }
        let delta = total - last
        if delta > 0 { counter.increment(by: Int64(clamping: delta)) }
        last = total
    }
}
