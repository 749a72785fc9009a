/// What `jvpn reload` (or SIGHUP) changes in a running daemon, decided from the running config
/// and the newly read one. Pure: the daemon applies it.
///
/// Applied live: peers added, removed, or with other AllowedIPs / Name / PersistentKeepalive (a
/// gateway); every `[Policy]` key; a client's new Endpoints, TcpEndpoints and Uplinks, appended
/// after the existing ones (new candidate paths, lowest priority), and its AllowedIPs. Everything
/// else that a running interface is built from (Name, the private key, Address, ListenPort,
/// TcpListen, MTU, Workers, EventLog, FwMark, MetricsListen, EventSyslog, `[Cluster]`, the role,
/// full tunnel on or off, a client's gateway key and Transport, removing or reordering Endpoints,
/// TcpEndpoints or Uplinks) is refused with `FILE:LINE:` and the running config stays: it needs
/// `jvpn down` and `jvpn up`.
public struct ReloadPlan: Equatable, Sendable {
    public enum PeerChange: Equatable, Sendable {
        /// A new peer (a gateway's client).
        case added(PeerConfig)
        /// A peer no longer in the config: its session ends (`OPERATOR_REQUEST`).
        case removed(publicKey: String)
        /// Same key, other AllowedIPs, Name or PersistentKeepalive; the session is untouched.
        case changed(PeerConfig, allowedAdded: [IPPrefix], allowedRemoved: [IPPrefix])
    }

    /// Removals first, then changes, then additions (so a prefix may move between peers).
    public var peers: [PeerChange] = []
    /// `Key old -> new` for each `[Policy]` key that changed.
    public var policy: [String] = []
    /// Client: uplinks appended to `Uplinks`.
    public var uplinksAdded: [String] = []
    /// Client: gateway endpoints appended to `Endpoint`.
    public var endpointsAdded: [Endpoint] = []
    /// Client: gateway TCP endpoints appended (to `TcpEndpoint`, or with `Endpoint` when that is
    /// where they come from).
    public var tcpEndpointsAdded: [Endpoint] = []
    /// Kernel routes via the tunnel to add and to remove (from `JVPNConfig.routedPrefixes`).
    public var routesAdded: [IPPrefix] = []
    public var routesRemoved: [IPPrefix] = []

    public var isEmpty: Bool {
        peers.isEmpty && policy.isEmpty && uplinksAdded.isEmpty && endpointsAdded.isEmpty && tcpEndpointsAdded.isEmpty
            && routesAdded.isEmpty && routesRemoved.isEmpty
    }

    /// One line for the operator: `peers +1 -1 ~2, policy: DeadAfterMs 1000 -> 600, uplinks +wwan0`.
    public var summary: String {
        if isEmpty { return "no change" }
        var parts: [String] = []
        let added = peers.filter { if case .added = $0 { return true }; return false }.count
        let removed = peers.filter { if case .removed = $0 { return true }; return false }.count
        let changed = peers.count - added - removed
        if !peers.isEmpty { parts.append("peers +\(added) -\(removed) ~\(changed)") }
        if !policy.isEmpty { parts.append("policy: " + policy.joined(separator: ", ")) }
        if !uplinksAdded.isEmpty { parts.append("uplinks +" + uplinksAdded.joined(separator: " +")) }
        if !endpointsAdded.isEmpty { parts.append("endpoints +" + endpointsAdded.map(\.description).joined(separator: " +")) }
        if !tcpEndpointsAdded.isEmpty { parts.append("tcp endpoints +" + tcpEndpointsAdded.map(\.description).joined(separator: " +")) }
        if !routesAdded.isEmpty || !routesRemoved.isEmpty {
            parts.append("routes +\(routesAdded.count) -\(routesRemoved.count)")
        }
        return parts.joined(separator: ", ")
    }

    /// The plan from `running` to `new`, or every reason `new` cannot be applied live, each as
    /// `FILE:LINE:` in the new file.
    public static func make(running old: JVPNConfig, new: JVPNConfig) -> Result<ReloadPlan, ConfigErrors> {
        var errors: [ConfigDiagnostic] = []
        let file = new.sourceFile
        let oi = old.interface, ni = new.interface
        func refuse(_ line: Int, _ what: String) {
            errors.append(ConfigDiagnostic(file: file, line: line,
                                           message: "\(what) cannot change while \(oi.name) runs; apply it with `jvpn down \(oi.name)` and `jvpn up \(file)`"))
        }
        if ni.name != oi.name { refuse(ni.line(of: "Name"), "Name (\(oi.name) -> \(ni.name))") }
        if ni.privateKey != oi.privateKey { refuse(ni.privateKeyLine, "the private key") }
        if ni.addresses != oi.addresses {
            refuse(ni.line(of: "Address"), "Address (\(list(oi.addresses)) -> \(list(ni.addresses)))")
        }
        if ni.listenPort != oi.listenPort { refuse(ni.line(of: "ListenPort"), "ListenPort") }
        if ni.listenPort == oi.listenPort && ni.effectiveTcpListen != oi.effectiveTcpListen {
            refuse(ni.line(of: "TcpListen"), "TcpListen")
        }
        if ni.mtu != oi.mtu { refuse(ni.line(of: "MTU"), "MTU (\(oi.mtu) -> \(ni.mtu))") }
        if ni.workers != oi.workers {
            refuse(ni.line(of: "Workers"), "Workers (\(workersText(oi.workers)) -> \(workersText(ni.workers)))")
        }
        if ni.eventLog != oi.eventLog { refuse(ni.line(of: "EventLog"), "EventLog") }
        if ni.fwMark != oi.fwMark { refuse(ni.line(of: "FwMark"), "FwMark") }
        if ni.metricsListen != oi.metricsListen { refuse(ni.line(of: "MetricsListen"), "MetricsListen") }
        if ni.eventSyslog != oi.eventSyslog { refuse(ni.line(of: "EventSyslog"), "EventSyslog") }
        if new.role != old.role { refuse(ni.line, "the role (\(old.role.rawValue) -> \(new.role.rawValue))") }
        if let oc = old.cluster, let nc = new.cluster {
            if (oc.etcd, oc.nodeId, oc.leaseTtlS, oc.lanInterface) != (nc.etcd, nc.nodeId, nc.leaseTtlS, nc.lanInterface) {
                refuse(nc.line, "[Cluster]")
            }
        } else if old.cluster != nil || new.cluster != nil {
            refuse(new.cluster?.line ?? ni.line, "[Cluster] (added or removed)")
        }
        if new.isFullTunnel != old.isFullTunnel {
            let line = new.peers.first { p in p.allowedIPs.contains { $0.isDefaultRoute } }?.line(of: "AllowedIPs")
                ?? new.peers.first?.line(of: "AllowedIPs") ?? ni.line
            refuse(line, "full tunnel (an AllowedIPs of 0.0.0.0/0 or ::/0)")
        }

        var plan = ReloadPlan()
        if new.role == .client && old.role == .client, let op = old.peers.first, let np = new.peers.first {
            if np.publicKey != op.publicKey { refuse(np.line(of: "PublicKey"), "the gateway's PublicKey") }
            if np.endpoints.starts(with: op.endpoints) {
                plan.endpointsAdded = Array(np.endpoints.dropFirst(op.endpoints.count))
            } else {
                refuse(np.line(of: "Endpoint"), "removing or reordering Endpoint addresses (new ones may be appended)")
            }
            if np.transports != op.transports {
                refuse(np.line(of: "Transport"), "Transport (\(op.transports.map(\.rawValue).joined(separator: ", ")) -> \(np.transports.map(\.rawValue).joined(separator: ", ")))")
            } else if np.tcpEndpoints.isEmpty && op.tcpEndpoints.isEmpty {
                // Each Endpoint over TCP: what Endpoint gains (its changes are judged above).
                if np.transports.contains(.tcp) { plan.tcpEndpointsAdded = plan.endpointsAdded }
            } else if np.endpoints(for: .tcp).starts(with: op.endpoints(for: .tcp)) {
                plan.tcpEndpointsAdded = Array(np.endpoints(for: .tcp).dropFirst(op.endpoints(for: .tcp).count))
            } else {
                refuse(np.line(of: "TcpEndpoint"), "removing or reordering TcpEndpoint addresses (new ones may be appended)")
            }
            switch (oi.uplinks, ni.uplinks) {
            case (nil, nil): break
            case (let o?, let n?) where n.starts(with: o): plan.uplinksAdded = Array(n.dropFirst(o.count))
            default: refuse(ni.line(of: "Uplinks"), "removing or reordering Uplinks (new ones may be appended)")
            }
        }
        guard errors.isEmpty else { return .failure(ConfigErrors(errors)) }

        let oldByKey = Dictionary(uniqueKeysWithValues: old.peers.map { ($0.publicKey, $0) })
        let newKeys = Set(new.peers.map(\.publicKey))
        for p in old.peers where !newKeys.contains(p.publicKey) { plan.peers.append(.removed(publicKey: p.publicKey)) }
        for p in new.peers {
            guard let o = oldByKey[p.publicKey] else { continue }
            let added = p.allowedIPs.filter { !o.allowedIPs.contains($0) }
            let removed = o.allowedIPs.filter { !p.allowedIPs.contains($0) }
            if !added.isEmpty || !removed.isEmpty || p.name != o.name || p.persistentKeepalive != o.persistentKeepalive
                || p.endpoints != o.endpoints || p.tcpEndpoints != o.tcpEndpoints {
                plan.peers.append(.changed(p, allowedAdded: added, allowedRemoved: removed))
            }
        }
        for p in new.peers where oldByKey[p.publicKey] == nil { plan.peers.append(.added(p)) }

        plan.policy = new.policy.differences(from: old.policy)
        if plan.policy.isEmpty && new.policy != old.policy { plan.policy = ["[Policy]"] }
        let oldRoutes = old.routedPrefixes, newRoutes = new.routedPrefixes
        plan.routesAdded = newRoutes.filter { !oldRoutes.contains($0) }
        plan.routesRemoved = oldRoutes.filter { !newRoutes.contains($0) }
        return .success(plan)
    }

    /// `Workers` as written: a count, or `auto`.
    private static func workersText(_ n: Int?) -> String { n.map(String.init) ?? "auto" }

    private static func list(_ prefixes: [IPPrefix]) -> String {
        prefixes.map(\.description).joined(separator: ", ")
    }
}

extension ReloadPlan {
    /// What changed for one peer, for its AUDIT_EVENT.
    public static func peerDetail(_ p: PeerConfig, _ added: [IPPrefix], _ removed: [IPPrefix]) -> String {
        var parts: [String] = []
        if !added.isEmpty { parts.append("AllowedIPs +" + added.map(\.description).joined(separator: " +")) }
        if !removed.isEmpty { parts.append("AllowedIPs -" + removed.map(\.description).joined(separator: " -")) }
        if parts.isEmpty { parts.append("Name, PersistentKeepalive or Endpoint") }
        return "peer changed: " + parts.joined(separator: ", ") + "; session untouched"
    }
}
