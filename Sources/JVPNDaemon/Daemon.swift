import Glibc
import JVPNCluster
import JVPNCore
import JVPNOps
import JVPNSystem
import Logging

public enum DaemonError: Error, CustomStringConvertible {
    case alreadyRunning(String)
    case setup(String)

    public var description: String {
        switch self {
        case .alreadyRunning(let n): return "interface \(n) is already up (a jvpn daemon answers on \(Daemon.controlPath(n)))"
        case .setup(let s): return s
        }
    }
}

/// Wires config, TUN, sockets, netlink, the pump and the session host together, and runs until
/// SIGTERM/SIGINT or `jvpn down`.
public final class Daemon: @unchecked Sendable {
    public static var runDirectory = "/run/jvpn"
    /// What the daemon still needs once set up: CAP_NET_ADMIN for netlink (routes and rules on
    /// teardown, links), SO_MARK and SO_RCVBUFFORCE on sockets; CAP_NET_RAW for SO_BINDTODEVICE on
    /// the socket of an uplink that is plugged in later (kernels before 5.7 require it for every
    /// bind). Files it writes afterwards (event log, control socket removal) are root's own, so
    /// it needs no CAP_DAC_OVERRIDE. deploy/systemd/jvpn@.service bounds the unit to the same set.
    public static let keptCapabilities = CapabilitySet([.netAdmin, .netRaw])
    public static func controlPath(_ name: String) -> String { "\(runDirectory)/\(name).sock" }

    /// The running config; a reload replaces it.
    private(set) var config: JVPNConfig
    let name: String
    private var stopRequested = false
    private var host: SessionHost!
    private var client: ClientHost? { host as? ClientHost }
    private var gateway: GatewayHost? { host as? GatewayHost }
    private var dataPlane: DataPlane!
    /// The TUN's queues, one per packet worker (queue 0 names the interface).
    private var tunQueues: [TunDevice] = []
    private var tun: TunDevice { tunQueues[0] }
    private var eventLog: EventLog!
    private var network: InterfaceSetup!
    private var uplinks: UplinkSet?
    /// Gateway: the TCP transport's listeners (TcpListen).
    private var tcpListeners: [TcpListener] = []
    private let startedWall = Clock.wallMilliseconds()
    /// Called once the interface is up (systemd readiness, logs).
    public var onReady: (() -> Void)?
    private var metrics: JVPNMetrics?
    private var metricsServer: MetricsServer?
    private var syslog: SyslogSink?
    private var lastMetricsMs: UInt64 = 0
    /// `[Cluster]` only: the etcd agent and its metrics.
    private var clusterAgent: ClusterAgent?
    private var clusterMetrics: ClusterMetrics?
    private var lastMaintenanceMs: UInt64 = 0
    private let logger = Logger(label: "jvpn")

    public init(config: JVPNConfig) {
        self.config = config
        self.name = config.interface.name
    }

    public func run() throws {
        // Before any key is in memory: a crash must not leave a core file with keys in it.
        try CoreDumps.disable()
        // Every TCP path is a descriptor: the soft limit must not be what stops a gateway.
        try DescriptorLimit.raiseToHard()
        try Sodium.initialize()
        let privateKey = try KeyLoading.privateKey(for: config)
        let listener: UnixControlListener
        do {
            listener = try UnixControlListener(path: Daemon.controlPath(name))
        } catch let e as SystemError where e.errno == EADDRINUSE {
            throw DaemonError.alreadyRunning(name)
        }
        defer { listener.removeSocketFile() }

        eventLog = EventLog(path: config.interface.eventLog)
        if let target = config.interface.eventSyslog {
            let sink = try SyslogSink(target: target.description)
            syslog = sink
            eventLog.forward.append { line in
                sink.send(jsonLine: line, eventName: SessionEvent(jsonLine: line)?.kind.rawValue ?? "EVENT")
            }
        }
        defer { eventLog.stop() }
        let isClient = config.role == .client
        let emitter = EventEmitter(log: eventLog, side: isClient ? "client" : "server")
        if let listen = config.interface.metricsListen {
            let m = JVPNMetrics(interface: name)
            metrics = m
            emitter.metrics = m
            metricsServer = try MetricsServer(listen: listen.description, metrics: m)
        }
        defer { metricsServer?.stop() }

        // TSO from the TUN: one read per 64 KiB of TCP instead of one per packet.
        // JVPN_NO_OFFLOAD=1 turns it off (benchmark comparisons, old kernels).
        var vnet = FileIO.environment("JVPN_NO_OFFLOAD") != "1"
        // USO as well where the kernel takes it (>= 6.2): UDP bursts into the TUN in one write.
        // JVPN_NO_USO=1 keeps TCP-only offload (what an older kernel gives).
        var uso = false
        let workers = config.interface.effectiveWorkers(cores: Processors.available(), role: config.role)
        // One TUN queue per worker; the kernel gives each flow one queue.
        var queueOptions: TunDevice.Options = workers > 1 ? [.nonBlocking, .multiQueue] : [.nonBlocking]
        if vnet {
            do {
                let first = try TunDevice(name: name, options: queueOptions.union(.vnetHeader))
                tunQueues = [first]
                try first.enableTCPOffload()
                if FileIO.environment("JVPN_NO_USO") != "1" {
                    uso = (try? first.enableTCPAndUDPOffload()) != nil
                }
            } catch {
                tunQueues = []
                vnet = false
            }
        }
        if vnet {
            queueOptions.insert(.vnetHeader)
        } else {
            tunQueues = [try TunDevice(name: name, options: queueOptions)]
        }
        // The other queues attach to the interface the first one made, with the same options.
        while tunQueues.count < workers { tunQueues.append(try TunDevice(name: tun.name, options: queueOptions)) }
        network = try InterfaceSetup(interfaceName: tun.name, config: config)
        defer { network.teardown() }
        try tun.setMTU(config.interface.mtu)
        try network.configureInterface()

        if isClient {
            let set = try UplinkSet(config: config, network: network)
            uplinks = set
            let c = try ClientHost(config: config, privateKey: privateKey, events: emitter, workers: workers)
            c.sockets = set.sockets
            c.paths = set.paths
            c.uplinkMtus = set.mtus
            c.fwMark = set.fwMark
            host = c
        } else {
            let g = try GatewayHost(config: config, privateKey: privateKey, events: emitter, workers: workers)
            host = g
            // One socket per worker on the port: the kernel gives each client address one of them.
            // SO_REUSEPORT would let another daemon's set join the port too, so a plain socket
            // first proves the port free (it is closed at once; what binds in between joins only
            // with SO_REUSEPORT under the same user).
            let port = config.interface.listenPort ?? 51820
            if workers > 1 { _ = try UDPSocket(port: port) }
            host.sockets = try (0..<workers).map { _ in try UDPSocket(port: port, reusePort: workers > 1) }
            // Before capabilities are dropped: a port below 1024 (443) needs CAP_NET_BIND_SERVICE.
            tcpListeners = try config.interface.effectiveTcpListen.map { try TcpListener(port: $0) }
            if let c = config.cluster {
                // The LAN side is set up while the daemon still may write sysctls; the agent's
                // threads start after the capabilities are restricted (below).
                let lan = try LanNeighbours(interface: c.lanInterface, netlink: network.netlink)
                // A daemon killed earlier may have left its proxy entries: this node answers for no
                // client until it owns one.
                lan.withdraw(config.peers.flatMap { LanNeighbours.hosts($0.allowedIPs) })
                let agent = ClusterAgent(config: c, facts: ClusterAgent.Facts(
                    answered: { [weak g] sid, r in g?.storeAnswered(session: sid, r) },
                    recordChanged: { [weak g] sid, r, rev in g?.recordChanged(session: sid, r, revision: rev) },
                    leaseRenewed: { [weak g] sent in g?.leaseRenewed(sentMs: sent) },
                    leaseLost: { [weak g] in g?.leaseLost() }))
                g.cluster = GatewayClusterLink(agent: agent, lan: lan)
                clusterAgent = agent
                if let m = metrics { clusterMetrics = ClusterMetrics(metrics: m, interface: name) }
            }
        }
        dataPlane = try DataPlane(queues: tunQueues, mtu: config.interface.mtu, snapshot: host.snapshot, vnet: vnet, uso: uso,
                                  admission: HandshakeAdmission(role: isClient ? .client : .gateway,
                                                                localPublicKey: privateKey.publicKey,
                                                                nowMs: Clock.monotonicMilliseconds()),
                                  connections: host.connections)
        if !isClient {
            dataPlane.streams.listeners = tcpListeners
            dataPlane.streams.streamTable = StreamConnectionTable(peerCount: config.peers.count)
            dataPlane.streams.streamPeerCount.store(config.peers.count, ordering: .relaxed)
        }
        host.dataPlane = dataPlane
        dataPlane.link.controller = host as? any PumpController
        host.lock.withLock { host.republish() }
        let wake = try EventFD()
        Signals.install(wake: wake)
        let monitor = try? NetlinkMonitor()

        // Everything that needs more privilege is open now. Capabilities are per thread and a
        // thread inherits its creator's, so this comes before the first thread starts.
        try ProcessCapabilities.restrict(to: Daemon.keptCapabilities)
        try eventLog.start()
        try metricsServer?.start()
        clusterAgent?.start()
        try dataPlane.start()
        try network.configureRoutes()
        if let client, let uplinks {
            let facts = uplinks.initialFacts(network: network)
            client.tick(nowMs: Clock.monotonicMilliseconds())
            if !facts.isEmpty { client.apply(facts, uplinks: uplinks) }
        }
        logger.info("\(name) up: \(isClient ? "client" : "server"), public key \(privateKey.publicKey.base64), MTU \(config.interface.mtu), TUN offload \(vnet ? (uso ? "on (TCP, UDP)" : "on (TCP)") : "off"), \(workers) packet worker\(workers == 1 ? "" : "s")")
        SystemdNotify.ready(status: "\(name) up")
        onReady?()

        var fds = [listener.fileDescriptor, wake.fileDescriptor]
        if let monitor { fds.append(monitor.fileDescriptor) }
        let poller = Poller(fds)
        while !stopRequested && !Signals.received {
            // While traffic flows the client times its active path's PTO: it asks for ticks as
            // often as every millisecond then.
            poller.wait(timeoutMs: Int32(client?.tickIntervalMs(nowMs: Clock.monotonicMilliseconds()) ?? 10))
            if poller.isReadable(1) { wake.drain() }
            if Signals.takeReloadRequest() {
                logger.notice("SIGHUP: \(reloadAndRecord().text)")
            }
            if let monitor, fds.count > 2, poller.isReadable(2) {
                try? monitor.drain { event in self.handleNetlink(event) }
            }
            let now = Clock.monotonicMilliseconds()
            // When a connection waits to be accepted, and every round while accepted ones are open
            // (they may have sent their request since, or expired); not otherwise: under traffic a
            // client's round comes every millisecond, and an accept4 each time showed in profiles.
            if poller.isReadable(0) || listener.openConnections > 0 {
                listener.serve(nowMs: now) { self.handleControl($0) }
            }
            client?.tick(nowMs: now)
            gateway?.tick(nowMs: now)
            if clusterAgent != nil && elapsedMs(now, since: lastMaintenanceMs) >= 1000 {
                lastMaintenanceMs = now
                gateway?.clusterMaintenance()
            }
            if metrics != nil && elapsedMs(now, since: lastMetricsMs) >= 1000 {
                lastMetricsMs = now
                updateMetrics()
            }
        }
        SystemdNotify.stopping()
        logger.info("\(name) going down (\(Signals.received ? "signal" : "jvpn down"))")
        client?.shutdown(reason: .operatorRequest)
        gateway?.shutdown(reason: .operatorRequest)
        if let agent = clusterAgent {
            // The lease is revoked so that the other members see this one leave at once.
            let stopped = Semaphore()
            Task { await agent.stop(); stopped.signal() }
            stopped.wait(timeoutMs: 2000)
        }
        dataPlane.shutdown()
    }

    /// Gauges and counters from the status view, about once a second (never per packet).
    private func updateMetrics() {
        guard let metrics else { return }
        let status = statusObject()
        var livePaths = Set<String>()
        var mtuTotals = JVPNMetrics.mtuTotalKeys.map { _ in UInt64(0) }
        for s in status["sessions"]?.arrayValue ?? [] {
            for (i, key) in JVPNMetrics.mtuTotalKeys.enumerated() { mtuTotals[i] += UInt64(clamping: s["mtu"]?[key]?.intValue ?? 0) }
            guard let sid = s["session"]?.stringValue, !sid.isEmpty,
                  let state = s["state"]?.stringValue.flatMap(SessionState.init(rawValue:)) else { continue }
            metrics.setSessionState(session: sid, peer: s["peer"]?.stringValue ?? "", state: state)
            if state == .terminated { continue }
            func count(_ key: String) -> UInt64 { UInt64(clamping: s[key]?.intValue ?? 0) }
            metrics.setTraffic(session: sid, txBytes: count("tx_bytes"), rxBytes: count("rx_bytes"),
                               txPackets: count("tx_packets"), rxPackets: count("rx_packets"))
            for p in s["paths"]?.arrayValue ?? [] {
                guard let path = p["path"]?.stringValue else { continue }
                livePaths.insert(path)
                metrics.setPath(path: path, uplink: p["uplink"]?.stringValue ?? "", transport: p["transport"]?.stringValue ?? "udp",
                                rttMs: p["rtt_ms"]?.doubleValue ?? 0,
                                lossPct: p["loss_pct"]?.doubleValue ?? 0, jitterMs: p["jitter_ms"]?.doubleValue ?? 0,
                                status: p["status"]?.stringValue ?? "", mtuBytes: Double(p["mtu"]?.intValue ?? 0))
            }
        }
        metrics.retainPaths(livePaths)
        metrics.setMtuTotals(mtuTotals)
        metrics.setEventsDropped(eventLog.droppedCount)
        metrics.setSecurityEventsSuppressed(UInt64(clamping: status["security_events_suppressed"]?.intValue ?? 0))
        if let syslog { metrics.setSyslogFailures(syslog.failures) }
        if let cm = clusterMetrics, let agent = clusterAgent, let state = gateway?.clusterState {
            cm.update(etcdUp: agent.isReachable, owned: gateway?.ownedSessions ?? 0, p50Ms: agent.latency.percentile(0.5),
                      p99Ms: agent.latency.percentile(0.99), requests: agent.latency.count, conflicts: state.counters.casConflicts,
                      released: state.counters.released)
        }
    }

    private func handleNetlink(_ event: NetlinkEvent) {
        guard let client, let uplinks else { return }
        let facts = uplinks.handle(event, network: network)
        if !facts.isEmpty { client.apply(facts, uplinks: uplinks) }
    }

    private func handleControl(_ line: String) -> String {
        switch line {
        case "ping": return "pong\n"
        case "status": return statusJSON() + "\n"
        case "status history": return statusObject(history: true).text + "\n"
        case "down":
            stopRequested = true
            return "ok\n"
        case "eventlog": return config.interface.eventLog + "\n"
        case "reload": return reloadAndRecord().reply
        default: return "error: unknown command\n"
        }
    }

    // MARK: reload

    /// What a reload did: applied (`ok`), refused with `FILE:LINE:` lines (the running config
    /// stays), or failed while applying (a route the kernel refused; nothing else was changed).
    enum ReloadOutcome {
        case applied(String)
        case refused([String])
        case failed(String)

        /// The control socket's answer: first line `ok SUMMARY`, `refused` or `failed`, then details.
        var reply: String {
            switch self {
            case .applied(let summary): return "ok \(summary)\n"
            case .refused(let lines): return "refused\n" + lines.map { $0 + "\n" }.joined()
            case .failed(let why): return "failed\n\(why)\n"
            }
        }

        var text: String {
            switch self {
            case .applied(let summary): return "config reloaded: \(summary)"
            case .refused(let lines): return "config reload refused, the running config stays: " + lines.joined(separator: "; ")
            case .failed(let why): return "config reload failed, the running config stays: \(why)"
            }
        }
    }

    /// A reload whose refusal or failure is an AUDIT_EVENT too (`config_reload`, `fail`): the
    /// timeline shows that the config on disk is not the one running.
    private func reloadAndRecord() -> ReloadOutcome {
        let outcome = reload()
        switch outcome {
        case .applied: break
        case .refused, .failed: host.auditInterface(check: "config_reload", pass: false, detail: outcome.text)
        }
        return outcome
    }

    /// `jvpn reload` and SIGHUP: re-reads the config file this daemon was started with, checks it
    /// as `jvpn check` does, and applies the difference (`ReloadPlan`).
    func reload() -> ReloadOutcome {
        let file = config.sourceFile
        let read: (bytes: [UInt8], status: FileIO.Status)
        do { read = try FileIO.readWithStatus(file) } catch {
            return .refused(["\(file):0: cannot read the file: \(String(cString: strerror(error.errno)))"])
        }
        guard let text = String(validating: read.bytes, as: UTF8.self) else { return .refused(["\(file):0: the file is not UTF-8 text"]) }
        let new: JVPNConfig
        switch JVPNConfig.parse(text: text, file: file) {
        case .success(let c): new = c
        case .failure(let errors): return .refused(errors.diagnostics.map(\.description))
        }
        do { try KeyLoading.checkInlineKey(in: new, file: file, permissions: read.status.permissions) } catch {
            return .refused([error.description])
        }
        do {
            guard try KeyLoading.privateKey(for: new).publicKey == host.privateKey.publicKey else {
                return .refused(["\(file):\(new.interface.privateKeyLine): the private key cannot change while \(name) runs; apply it with `jvpn down \(name)` and `jvpn up \(file)`"])
            }
        } catch {
            return .refused(["\(file):\(new.interface.privateKeyLine): \(error)"])
        }
        let plan: ReloadPlan
        switch ReloadPlan.make(running: config, new: new) {
        case .success(let p): plan = p
        case .failure(let errors): return .refused(errors.diagnostics.map(\.description))
        }
        if plan.isEmpty {
            config = new
            return .applied(plan.summary)
        }
        // Routes first: the one step that can fail, and it undoes itself.
        do { try network.addRoutes(plan.routesAdded) } catch { return .failed("adding routes: \(error)") }
        if let client, let uplinks {
            let (paths, facts) = uplinks.extend(uplinks: plan.uplinksAdded, peer: new.peers.first ?? config.peers[0], network: network)
            client.applyReload(plan, config: new, uplinks: uplinks, newPaths: paths, facts: facts)
        }
        gateway?.applyReload(plan, config: new)
        network.removeRoutes(plan.routesRemoved)
        config = new
        return .applied(plan.summary)
    }

    // MARK: status

    /// Status JSON; `history` adds each client path's `probe_history` (see README).
    func statusObject(history: Bool = false) -> JSONValue {
        let nowMs = Clock.monotonicMilliseconds()
        let eventsDropped = JSONValue(eventLog.droppedCount)
        let sessions: [JSONValue] = host.lock.withLock {
            host.peers.compactMap { p -> JSONValue? in
                if let gateway { return gateway.sessionStatus(p, nowMs: nowMs).map { gatewaySessionJSON(p, $0, eventsDropped) } }
                guard let client else { return nil }
                guard let sid = p.session else {
                    return ["session": "", "peer": .string(p.publicKey.base64), "state": .string(SessionState.birth.rawValue),
                            "state_version": 0, "active_path": "", "paths": .array(client.pathStatus(history: history)),
                            "switches": 0, "last_switch": .null,
                            "tx_bytes": 0, "rx_bytes": 0, "tx_packets": 0, "rx_packets": 0,
                            "rejected": ["replay": 0, "auth": 0, "stale_version": 0, "rate_limited": 0, "malformed_control": 0],
                            "events_dropped": eventsDropped]
                }
                var activePath = ""
                if let a = client.active, p.state != .terminated { activePath = client.paths[a].name }
                var o = countersJSON(p, eventsDropped)
                o["session"] = .string(sid.hex)
                o["state"] = .string(p.state.rawValue)
                o["state_version"] = JSONValue(p.machine.stateVersion)
                o["active_path"] = .string(activePath)
                o["paths"] = .array(client.pathStatus(history: history))
                o["switches"] = JSONValue(p.switches)
                o["last_switch"] = p.lastSwitch ?? .null
                o["binding_version"] = JSONValue(p.bindingVersion)
                o["suspicion"] = client.suspicionStatus()
                o["mtu"] = client.mtuStatus()
                return .object(o)
            }
        }
        let listenPort = client == nil ? Int(host.sockets.first??.localPort ?? 0) : Int(config.interface.listenPort ?? 0)
        return [
            "interface": .string(tun.name), "role": client == nil ? "server" : "client",
            "public_key": .string(host.privateKey.publicKey.base64),
            "listen_port": JSONValue(listenPort),
            "event_log": .string(config.interface.eventLog),
            "sessions": .array(sessions),
            "security_events_suppressed": JSONValue(gateway?.securityEventsSuppressed ?? 0),
            "handshakes": dataPlane.handshakeStatus(),
            "data_plane": dataPlane.status(traffic: host.lock.withLock { host.peers.map(\.counters.traffic) }),
            "tcp": tcpStatus(),
            "cluster": clusterStatus(),
        ]
    }

    /// The TCP transport: the ports served (gateway), the connections open and what admission and
    /// framing did with them.
    private func tcpStatus() -> JSONValue {
        let v = dataPlane.streams.streamCounters.current
        var o: [String: JSONValue] = ["open": JSONValue(v.open), "framing_violations": JSONValue(v.violations),
                                      "closed_by_peer": JSONValue(v.closedByPeer)]
        if client == nil { o["accept_paused"] = JSONValue(v.acceptPaused) }
        if client == nil {
            o["listen_ports"] = .array(tcpListeners.map { JSONValue(Int($0.port)) })
            o["unauthenticated"] = JSONValue(v.unauthenticated)
            o["accepted"] = JSONValue(v.table.accepted)
            o["authenticated"] = JSONValue(v.table.authenticated)
            o["refused_source_limit"] = JSONValue(v.table.refusedSourceLimit)
            o["evicted"] = JSONValue(v.table.evicted)
            o["unauthenticated_timeouts"] = JSONValue(v.table.unauthenticatedTimeouts)
            o["idle_timeouts"] = JSONValue(v.table.idleTimeouts)
            o["peer_limit_closes"] = JSONValue(v.table.peerLimitCloses)
        }
        return .object(o)
    }

    /// Status `cluster` (null without `[Cluster]`): membership and etcd as the agent sees them,
    /// ownership as the core holds it.
    private func clusterStatus() -> JSONValue {
        guard let agent = clusterAgent, let gateway, let state = gateway.clusterState else { return .null }
        var o = agent.status()
        let now = Clock.monotonicMilliseconds()
        o["owned_sessions"] = JSONValue(gateway.ownedSessions)
        o["records"] = JSONValue(state.records.count)
        o["serving"] = .bool(state.isServing(nowMs: now))
        o["lease_remaining_ms"] = JSONValue(state.leaseValidUntilMs.map { $0 > now ? $0 - now : 0 } ?? 0)
        o["sessions_created"] = JSONValue(state.counters.created)
        o["sessions_claimed"] = JSONValue(state.counters.claimed)
        o["sessions_released"] = JSONValue(state.counters.released)
        o["cas_conflicts"] = JSONValue(state.counters.casConflicts)
        o["refused_store_unavailable"] = JSONValue(state.counters.refusedUnavailable)
        return .object(o)
    }

    /// The fields every session entry has, from the peer's data-plane counters.
    private func countersJSON(_ p: PeerRuntime, _ eventsDropped: JSONValue) -> [String: JSONValue] {
        let c = p.counters
        return [
            "peer": .string(p.publicKey.base64),
            "tx_bytes": JSONValue(c.txBytes), "rx_bytes": JSONValue(c.rxBytes),
            "tx_packets": JSONValue(c.txPackets), "rx_packets": JSONValue(c.rxPackets),
            "rejected": ["replay": JSONValue(c.rejectedReplay.load(ordering: .relaxed)),
                         "auth": JSONValue(c.rejectedAuth.load(ordering: .relaxed)),
                         "stale_version": JSONValue(c.rejectedStaleVersion.load(ordering: .relaxed)),
                         "rate_limited": JSONValue(c.rejectedRateLimited.load(ordering: .relaxed)),
                         "malformed_control": JSONValue(c.droppedMalformedControl.load(ordering: .relaxed))],
            "events_dropped": eventsDropped,
        ]
    }

    /// A gateway session as its core holds it; the one path is the bound client address.
    private func gatewaySessionJSON(_ p: PeerRuntime, _ s: GatewaySession<TransportAddress>, _ eventsDropped: JSONValue) -> JSONValue {
        var o = countersJSON(p, eventsDropped)
        let bound = s.bound?.description ?? ""
        o["session"] = .string(s.id.hex)
        o["state"] = .string(s.state.rawValue)
        o["state_version"] = JSONValue(s.machine.stateVersion)
        o["active_path"] = .string(s.isLive ? bound : "")
        // The path MTU the client reported for the bound path, as an IP packet size (0: no report;
        // never over TCP, whose stream carries any frame whole).
        let mtu = s.bound.flatMap { b in s.boundMaxDatagram.map { $0 + (b.address.unmapped.family == AF_INET ? 28 : 48) } } ?? 0
        o["paths"] = s.bound.map { b in .array([["path": .string(bound), "uplink": "", "transport": .string(b.kind.rawValue),
                                                  "status": s.isLive ? "active" : "dead", "rtt_ms": 0.0, "loss_pct": 0.0, "jitter_ms": 0.0,
                                                  "mtu": JSONValue(mtu)]]) }
            ?? .array([])
        o["mtu"] = PathFitCounters.json(p.counters)
        o["switches"] = JSONValue(s.switches)
        o["last_switch"] = p.lastSwitch ?? .null
        o["binding_version"] = JSONValue(s.bindingVersion)
        o["security_events_suppressed"] = JSONValue(s.securityEventsSuppressed)
        return .object(o)
    }

    func statusJSON() -> String { statusObject().text }
}
