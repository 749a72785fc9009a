import Glibc
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
    public static func controlPath(_ name: String) -> String { "\(runDirectory)/\(name).sock" }

    let config: JVPNConfig
    let name: String
    private var stopRequested = false
    private var host: SessionHost!
    private var client: ClientHost? { host as? ClientHost }
    private var gateway: GatewayHost? { host as? GatewayHost }
    private var pump: PacketPump!
    private var tun: TunDevice!
    private var eventLog: EventLog!
    private var network: InterfaceSetup!
    private var uplinks: UplinkSet?
    private let startedWall = Clock.wallMilliseconds()
    /// Called once the interface is up (systemd readiness, logs).
    public var onReady: (() -> Void)?
    private var metrics: JVPNMetrics?
    private var metricsServer: MetricsServer?
    private var syslog: SyslogSink?
    private var lastMetricsMs: UInt64 = 0
    private let logger = Logger(label: "jvpn")

    public init(config: JVPNConfig) {
        self.config = config
        self.name = config.interface.name
    }

    public func run() throws {
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
        try eventLog.start()
        defer { eventLog.stop() }
        let isClient = config.role == .client
        let emitter = EventEmitter(log: eventLog, side: isClient ? "client" : "server")
        if let listen = config.interface.metricsListen {
            let m = JVPNMetrics(interface: name)
            metrics = m
            emitter.metrics = m
            let server = try MetricsServer(listen: listen.description, metrics: m)
            try server.start()
            metricsServer = server
        }
        defer { metricsServer?.stop() }

        // TSO from the TUN: one read per 64 KiB of TCP instead of one per packet.
        // JVPN_NO_OFFLOAD=1 turns it off (benchmark comparisons, old kernels).
        var vnet = FileIO.environment("JVPN_NO_OFFLOAD") != "1"
        if vnet {
            do {
                tun = try TunDevice(name: name, options: [.nonBlocking, .vnetHeader])
                try tun.enableTCPOffload()
            } catch {
                tun = nil
                vnet = false
            }
        }
        if !vnet { tun = try TunDevice(name: name) }
        network = try InterfaceSetup(interfaceName: tun.name, config: config)
        defer { network.teardown() }
        try tun.setMTU(config.interface.mtu)
        try network.configureInterface()

        if isClient {
            let set = try UplinkSet(config: config, network: network)
            uplinks = set
            let c = try ClientHost(config: config, privateKey: privateKey, events: emitter)
            c.sockets = set.sockets
            c.paths = set.paths
            host = c
        } else {
            host = try GatewayHost(config: config, privateKey: privateKey, events: emitter)
            host.sockets = [try UDPSocket(port: config.interface.listenPort ?? 51820)]
        }
        pump = try PacketPump(tun: tun, mtu: config.interface.mtu, snapshot: host.snapshot, vnet: vnet,
                              admission: HandshakeAdmission(role: isClient ? .client : .gateway,
                                                            localPublicKey: privateKey.publicKey,
                                                            nowMs: Clock.monotonicMilliseconds()))
        host.pump = pump
        pump.controller = host as? any PumpController
        host.lock.withLock { host.republish() }
        try pump.start()
        try network.configureRoutes()
        if let client, let uplinks {
            let facts = uplinks.initialFacts(network: network)
            client.tick(nowMs: Clock.monotonicMilliseconds())
            if !facts.isEmpty { client.apply(facts, uplinks: uplinks) }
        }
        logger.info("\(name) up: \(isClient ? "client" : "server"), public key \(privateKey.publicKey.base64), MTU \(config.interface.mtu), TUN offload \(vnet ? "on" : "off")")
        SystemdNotify.ready(status: "\(name) up")
        onReady?()

        let wake = try EventFD()
        Signals.install(wake: wake)
        let monitor = try? NetlinkMonitor()
        var fds = [listener.fileDescriptor, wake.fileDescriptor]
        if let monitor { fds.append(monitor.fileDescriptor) }
        let poller = Poller(fds)
        while !stopRequested && !Signals.received {
            poller.wait(timeoutMs: 10)
            if poller.isReadable(0) {
                listener.serveOne { self.handleControl($0) }
            }
            if poller.isReadable(1) { wake.drain() }
            if let monitor, fds.count > 2, poller.isReadable(2) {
                try? monitor.drain { event in self.handleNetlink(event) }
            }
            let now = Clock.monotonicMilliseconds()
            client?.tick(nowMs: now)
            gateway?.tick(nowMs: now)
            if metrics != nil && elapsedMs(now, since: lastMetricsMs) >= 1000 {
                lastMetricsMs = now
                updateMetrics()
            }
        }
        SystemdNotify.stopping()
        logger.info("\(name) going down (\(Signals.received ? "signal" : "jvpn down"))")
        client?.shutdown(reason: .operatorRequest)
        gateway?.shutdown(reason: .operatorRequest)
        pump.shutdown()
    }

    /// Gauges and counters from the status view, about once a second (never per packet).
    private func updateMetrics() {
        guard let metrics else { return }
        let status = statusObject()
        var livePaths = Set<String>()
        for s in status["sessions"]?.arrayValue ?? [] {
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
                metrics.setPath(path: path, uplink: p["uplink"]?.stringValue ?? "", rttMs: p["rtt_ms"]?.doubleValue ?? 0,
                                lossPct: p["loss_pct"]?.doubleValue ?? 0, jitterMs: p["jitter_ms"]?.doubleValue ?? 0,
                                status: p["status"]?.stringValue ?? "")
            }
        }
        metrics.retainPaths(livePaths)
        metrics.setEventsDropped(eventLog.droppedCount)
        if let syslog { metrics.setSyslogFailures(syslog.failures) }
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
        case "down":
            stopRequested = true
            return "ok\n"
        case "eventlog": return config.interface.eventLog + "\n"
        default: return "error: unknown command\n"
        }
    }

    // MARK: status

    func statusObject() -> JSONValue {
        let nowMs = Clock.monotonicMilliseconds()
        let eventsDropped = JSONValue(eventLog.droppedCount)
        let sessions: [JSONValue] = host.lock.withLock {
            host.peers.compactMap { p -> JSONValue? in
                guard let sid = p.session else {
                    guard let client else { return nil }
                    return ["session": "", "peer": .string(p.publicKey.base64), "state": .string(SessionState.birth.rawValue),
                            "state_version": 0, "active_path": "", "paths": .array(client.pathStatus()),
                            "switches": 0, "last_switch": .null,
                            "tx_bytes": 0, "rx_bytes": 0, "tx_packets": 0, "rx_packets": 0,
                            "rejected": ["replay": 0, "auth": 0, "stale_version": 0, "rate_limited": 0],
                            "events_dropped": eventsDropped]
                }
                if client == nil && p.state == .terminated && elapsedMs(nowMs, since: p.lastAuthenticatedMs) > 3_600_000 { return nil }
                let c = p.counters
                var activePath = ""
                var paths: [JSONValue] = []
                if let client {
                    if let a = client.active, p.state != .terminated { activePath = client.paths[a].name }
                    paths = client.pathStatus()
                } else if let b = p.bound {
                    activePath = b.description
                    paths = [["path": .string(b.description), "uplink": "", "status": p.state == .terminated ? "dead" : "active",
                              "rtt_ms": 0.0, "loss_pct": 0.0, "jitter_ms": 0.0]]
                }
                return [
                    "session": .string(sid.hex), "peer": .string(p.publicKey.base64), "state": .string(p.state.rawValue),
                    "state_version": JSONValue(p.machine.stateVersion), "active_path": .string(activePath), "paths": .array(paths),
                    "switches": JSONValue(p.switches), "last_switch": p.lastSwitch ?? .null,
                    "binding_version": JSONValue(p.bindingVersion),
                    "tx_bytes": JSONValue(c.txBytes.load(ordering: .relaxed)), "rx_bytes": JSONValue(c.rxBytes.load(ordering: .relaxed)),
                    "tx_packets": JSONValue(c.txPackets.load(ordering: .relaxed)), "rx_packets": JSONValue(c.rxPackets.load(ordering: .relaxed)),
                    "rejected": ["replay": JSONValue(c.rejectedReplay.load(ordering: .relaxed)),
                                 "auth": JSONValue(c.rejectedAuth.load(ordering: .relaxed)),
                                 "stale_version": JSONValue(c.rejectedStaleVersion.load(ordering: .relaxed)),
                                 "rate_limited": JSONValue(c.rejectedRateLimited.load(ordering: .relaxed))],
                    "events_dropped": eventsDropped,
                ]
            }
        }
        let listenPort = client == nil ? Int(host.sockets.first??.localPort ?? 0) : Int(config.interface.listenPort ?? 0)
        return [
            "interface": .string(tun.name), "role": client == nil ? "server" : "client",
            "public_key": .string(host.privateKey.publicKey.base64),
            "listen_port": JSONValue(listenPort),
            "event_log": .string(config.interface.eventLog),
            "sessions": .array(sessions),
            "handshakes": pump.handshakeStatus(),
        ]
    }

    func statusJSON() -> String { statusObject().text }
}
