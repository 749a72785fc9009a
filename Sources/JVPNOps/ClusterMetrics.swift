import JVPNSystem
import Prometheus

/// A clustered gateway's series, on the daemon's registry (only with `[Cluster]` and
/// `MetricsListen`), set from the ~1 s timer:
/// - `jvpn_cluster_etcd_up` gauge (1 while etcd answers), `jvpn_cluster_owned_sessions` gauge;
/// - `jvpn_cluster_store_latency_ms{quantile="0.5"|"0.99"}` gauges over the last 1024 store
///   transactions, `jvpn_cluster_store_requests_total` counter;
/// - `jvpn_cluster_cas_conflicts_total` (compare-and-swap requests that found the record changed),
///   `jvpn_cluster_released_total` (sessions this node let go) counters.
public final class ClusterMetrics: @unchecked Sendable {
    private let lock = Lock()
    private let up: Gauge
    private let owned: Gauge
    private let p50: Gauge
    private let p99: Gauge
    private let requests: Counter
    private let conflicts: Counter
    private let released: Counter
    private var last = (requests: UInt64(0), conflicts: UInt64(0), released: UInt64(0))

    public init(metrics: JVPNMetrics, interface: String) {
        let r = metrics.registry
        let base = [("interface", interface)]
        func d(_ n: String, _ h: String) -> MetricNameDescriptor { MetricNameDescriptor(metricName: n, unitName: "", helpText: h) }
        up = r.makeGauge(descriptor: d("jvpn_cluster_etcd_up", "1 while etcd answers this gateway"), labels: base)
        owned = r.makeGauge(descriptor: d("jvpn_cluster_owned_sessions", "Live sessions this gateway owns"), labels: base)
        let latency = d("jvpn_cluster_store_latency_ms", "Store transaction round trip in milliseconds over the last 1024")
        p50 = r.makeGauge(descriptor: latency, labels: base + [("quantile", "0.5")])
        p99 = r.makeGauge(descriptor: latency, labels: base + [("quantile", "0.99")])
        requests = r.makeCounter(descriptor: d("jvpn_cluster_store_requests_total", "Store transactions answered"), labels: base)
        conflicts = r.makeCounter(descriptor: d("jvpn_cluster_cas_conflicts_total",
                                                "Compare-and-swap requests that found the record changed"), labels: base)
        released = r.makeCounter(descriptor: d("jvpn_cluster_released_total", "Sessions this gateway let go"), labels: base)
    }

    public func update(etcdUp: Bool, owned sessions: Int, p50Ms: Double, p99Ms: Double, requests r: UInt64, conflicts c: UInt64,
                       released rel: UInt64) {
        lock.lock(); defer { lock.unlock() }
        up.set(etcdUp ? 1.0 : 0.0)
        owned.set(Double(sessions))
        p50.set(p50Ms)
        p99.set(p99Ms)
        if r > last.requests { requests.increment(by: Int64(r - last.requests)) }
        if c > last.conflicts { conflicts.increment(by: Int64(c - last.conflicts)) }
        if rel > last.released { released.increment(by: Int64(rel - last.released)) }
        last = (r, c, rel)
    }
}
