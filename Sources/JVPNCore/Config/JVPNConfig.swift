/// One problem in a config file. `description` is the `FILE:LINE: message` that `jvpn check`
/// prints (lines count from 1).
public struct ConfigDiagnostic: Error, Equatable, Sendable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var message: String

    public init(file: String, line: Int, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String { "\(file):\(line): \(message)" }
}

/// Every problem found in a config, in line order.
public struct ConfigErrors: Error, Equatable, Sendable, CustomStringConvertible {
    public var diagnostics: [ConfigDiagnostic]

    public init(_ diagnostics: [ConfigDiagnostic]) { self.diagnostics = diagnostics }

    /// One `FILE:LINE: message` per line.
    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}

/// A parsed and validated config file (see docs/CONFIG.md).
public struct JVPNConfig: Equatable, Sendable {
    /// A client talks to exactly one gateway [Peer] that has Endpoint(s); a server listens on
    /// ListenPort and its peers have no Endpoint.
    public enum Role: String, Equatable, Sendable {
        case client
        case server
    }

    public var interface: InterfaceConfig
    public var peers: [PeerConfig]
    public var policy: PolicyConfig
    /// `[Cluster]`: session ownership in etcd; nil for a standalone gateway and for a client.
    public var cluster: ClusterConfig?
    /// The path given to the parser, used in later `FILE:LINE:` messages (e.g. the daemon
    /// failing to read PrivateKeyFile).
    public var sourceFile: String

    public init(interface: InterfaceConfig, peers: [PeerConfig], policy: PolicyConfig, cluster: ClusterConfig? = nil,
                sourceFile: String) {
        self.interface = interface
        self.peers = peers
        self.policy = policy
        self.cluster = cluster
        self.sourceFile = sourceFile
    }

    /// `.client` when a [Peer] has an Endpoint (validation guarantees it is then the only one).
    public var role: Role {
        peers.contains { !$0.endpoints.isEmpty } ? .client : .server
    }

    /// Some peer's AllowedIPs holds `0.0.0.0/0` or `::/0`: routed by policy routing (fwmark).
    public var isFullTunnel: Bool {
        peers.contains { $0.allowedIPs.contains { $0.isDefaultRoute } }
    }

    /// The prefixes that get a route via the tunnel: every peer's AllowedIPs except the default
    /// routes (full tunnel goes by policy routing) and those an interface address already covers
    /// as its connected route.
    public var routedPrefixes: [IPPrefix] {
        var out: [IPPrefix] = []
        for peer in peers {
            for prefix in peer.allowedIPs where prefix.length > 0 && !out.contains(prefix) {
                if interface.addresses.contains(where: { $0.network == prefix.network }) { continue }
                out.append(prefix)
            }
        }
        return out
    }

    /// The default fwmark used for full-tunnel policy routing when `FwMark` is not set.
    public static let defaultFwMark: UInt32 = 51820

    /// FwMark if set, else 51820 for a full tunnel, else nil (no mark needed).
    public var effectiveFwMark: UInt32? {
        interface.fwMark ?? (isFullTunnel ? JVPNConfig.defaultFwMark : nil)
    }

    /// Parses and validates `text`; `file` only names the source in diagnostics and derives the
    /// interface name (`/etc/jvpn/jvpn0.conf` -> `jvpn0`). Reports every problem found.
    public static func parse(text: String, file: String) -> Result<JVPNConfig, ConfigErrors> {
        var p = ConfigParser(file: file)
        return p.parse(text)
    }

    /// Throwing form of `parse(text:file:)`; throws `ConfigErrors`.
    public init(parsing text: String, file: String) throws {
        self = try JVPNConfig.parse(text: text, file: file).get()
    }

    /// Decodes standard, padded base64 that must yield exactly 32 bytes (a WireGuard-style
    /// key: 44 characters ending in `=`). nil otherwise.
    public static func decodeKey(_ text: String) -> [UInt8]? {
        Base64.decodeKey32(text)
    }
}

public struct InterfaceConfig: Equatable, Sendable {
    public enum PrivateKeySource: Equatable, Sendable {
        /// Base64 text, already checked to decode to 32 bytes.
        case inline(String)
        /// Absolute path; the daemon reads it and requires mode 0600 (not the parser: no IO).
        case file(String)
    }

    public var name: String
    public var privateKey: PrivateKeySource
    /// Interface addresses, host bits kept (`10.77.0.2/24`).
    public var addresses: [IPPrefix]
    public var listenPort: UInt16?
    public var mtu: Int
    /// Client uplinks in priority order; nil = every interface with a default route.
    public var uplinks: [String]?
    public var eventLog: String
    public var fwMark: UInt32?
    public var metricsListen: Endpoint?
    public var eventSyslog: SyslogTarget?
    /// TCP ports a gateway serves beside `ListenPort`: nil = not set (the `ListenPort` number),
    /// empty = `off`.
    public var tcpListen: [UInt16]?
    /// Packet workers (`Workers`), each a send thread on its own TUN queue and a receive thread on
    /// its own share of the UDP socket: nil = `auto` (from the cores, see `effectiveWorkers`).
    public var workers: Int?
    /// Line of the `[Interface]` header.
    public var line: Int
    /// Line of the PrivateKey / PrivateKeyFile key, for messages about reading the key.
    public var privateKeyLine: Int
    /// Line of each key present in the section (canonical key name), for later messages.
    public var keyLines: [String: Int]

    public static let defaultMTU = 1420
    /// The largest explicit `Workers`.
    public static let maxWorkers = 64
    /// The most workers `auto` picks, however many cores there are.
    public static let maxAutoWorkers = 16

    public static func defaultEventLog(name: String) -> String {
        "/var/log/jvpn/\(name).events.jsonl"
    }

    public init(name: String, privateKey: PrivateKeySource, addresses: [IPPrefix],
                listenPort: UInt16? = nil, mtu: Int = InterfaceConfig.defaultMTU,
                uplinks: [String]? = nil, eventLog: String? = nil, fwMark: UInt32? = nil,
                metricsListen: Endpoint? = nil, eventSyslog: SyslogTarget? = nil, tcpListen: [UInt16]? = nil,
                workers: Int? = nil, line: Int = 0, privateKeyLine: Int = 0, keyLines: [String: Int] = [:]) {
        self.name = name
        self.privateKey = privateKey
        self.addresses = addresses
        self.listenPort = listenPort
        self.mtu = mtu
        self.uplinks = uplinks
        self.eventLog = eventLog ?? InterfaceConfig.defaultEventLog(name: name)
        self.fwMark = fwMark
        self.metricsListen = metricsListen
        self.eventSyslog = eventSyslog
        self.tcpListen = tcpListen
        self.workers = workers
        self.line = line
        self.privateKeyLine = privateKeyLine
        self.keyLines = keyLines
    }

    /// Line of `key` in the section, or of the section header when the key is absent.
    public func line(of key: String) -> Int { keyLines[key] ?? line }

    /// The TCP ports a gateway listens on: `TcpListen`, or `ListenPort`'s number when not set.
    public var effectiveTcpListen: [UInt16] { tcpListen ?? listenPort.map { [$0] } ?? [] }

    /// How many packet workers to run on `cores` usable cores (the daemon counts them: the
    /// process's CPU affinity and CPU quota). An explicit `Workers` is taken as written. `auto` on
    /// a gateway gives one worker per two cores, since each worker's two threads can keep two cores
    /// busy: at least 1, at most `maxAutoWorkers`. `auto` on a client gives 1: its one session runs
    /// on one worker each way (the kernel keeps a flow on one TUN queue and one socket), so more
    /// would only add idle threads and buffers.
    public func effectiveWorkers(cores: Int, role: JVPNConfig.Role) -> Int {
        if let workers { return workers }
        switch role {
        case .client: return 1
        case .server: return min(InterfaceConfig.maxAutoWorkers, max(1, cores / 2))
        }
    }
}

/// Where `EventSyslog` sends a copy of the event log.
public enum SyslogTarget: Equatable, Sendable, CustomStringConvertible {
    case udp(Endpoint)
    case unix(String)

    public var description: String {
        switch self {
        case .udp(let e): return "udp://\(e)"
        case .unix(let p): return "unix:\(p)"
        }
    }
}

public struct PeerConfig: Equatable, Sendable {
    /// Base64 text, already checked to decode to 32 bytes.
    public var publicKey: String
    /// Gateway addresses in the order given (client only).
    public var endpoints: [Endpoint]
    /// Normalized to network prefixes (host bits cleared), duplicates removed, order kept.
    public var allowedIPs: [IPPrefix]
    /// Seconds; nil = off.
    public var persistentKeepalive: UInt16?
    public var name: String?
    /// Client: the transport kinds it may use, in preference order (`Transport`).
    public var transports: [TransportKind]
    /// Client: the gateway's TCP addresses (`TcpEndpoint`); empty = each `Endpoint` over TCP.
    public var tcpEndpoints: [Endpoint]
    /// Line of the `[Peer]` header.
    public var line: Int
    /// Line of each key present in the section (canonical key name), for later messages.
    public var keyLines: [String: Int]

    public static let defaultTransports: [TransportKind] = [.udp, .tcp]

    public init(publicKey: String, endpoints: [Endpoint] = [], allowedIPs: [IPPrefix],
                persistentKeepalive: UInt16? = nil, name: String? = nil,
                transports: [TransportKind] = PeerConfig.defaultTransports, tcpEndpoints: [Endpoint] = [], line: Int = 0,
                keyLines: [String: Int] = [:]) {
        self.publicKey = publicKey
        self.endpoints = endpoints
        self.allowedIPs = allowedIPs
        self.persistentKeepalive = persistentKeepalive
        self.name = name
        self.transports = transports
        self.tcpEndpoints = tcpEndpoints
        self.line = line
        self.keyLines = keyLines
    }

    /// Line of `key` in the section, or of the section header when the key is absent.
    public func line(of key: String) -> Int { keyLines[key] ?? line }

    /// The endpoints a client reaches the gateway at with `kind`; none when `Transport` excludes it.
    public func endpoints(for kind: TransportKind) -> [Endpoint] {
        guard transports.contains(kind) else { return [] }
        switch kind {
        case .udp: return endpoints
        case .tcp: return tcpEndpoints.isEmpty ? endpoints : tcpEndpoints
        }
    }

    /// Rank of `kind` in `Transport` (0 = preferred), nil when it is not allowed.
    public func preference(of kind: TransportKind) -> Int? { transports.firstIndex(of: kind) }

    /// The 32 key bytes (validated at parse time, so nil only for a hand-built value).
    public var publicKeyBytes: [UInt8]? { Base64.decodeKey32(publicKey) }
}

/// Linux interface name rules (IFNAMSIZ 16 with the NUL; a conservative character set).
public enum InterfaceName {
    public static func isValid(_ name: String) -> Bool {
        let u = name.utf8
        guard (1...15).contains(u.count), name != ".", name != ".." else { return false }
        return u.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
                || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9"))
                || c == UInt8(ascii: "_") || c == UInt8(ascii: ".") || c == UInt8(ascii: "-")
        }
    }
}

enum Base64 {
    /// Strict standard base64 with padding.
    static func decode(_ text: String) -> [UInt8]? {
        let u = Array(text.utf8)
        guard u.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(u.count / 4 * 3)
        var i = 0
        while i < u.count {
            var vals: [UInt8] = [0, 0, 0, 0]
            var pad = 0
            for k in 0..<4 {
                let c = u[i + k]
                if c == UInt8(ascii: "=") {
                    // Padding only in the last group, only in its last two places.
                    guard i + 4 == u.count, k >= 2 else { return nil }
                    pad += 1
                    continue
                }
                guard pad == 0, let v = value(c) else { return nil }
                vals[k] = v
            }
            let n = UInt32(vals[0]) << 18 | UInt32(vals[1]) << 12 | UInt32(vals[2]) << 6 | UInt32(vals[3])
            out.append(UInt8(truncatingIfNeeded: n >> 16))
            if pad < 2 { out.append(UInt8(truncatingIfNeeded: n >> 8)) }
            if pad < 1 { out.append(UInt8(truncatingIfNeeded: n)) }
            i += 4
        }
        return out
    }

    static func decodeKey32(_ text: String) -> [UInt8]? {
        guard text.utf8.count == 44, let b = decode(text), b.count == 32 else { return nil }
        return b
    }

    private static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
