/// The INI reader and validator behind `JVPNConfig.parse`. It never stops at the first problem:
/// every diagnostic is collected so that `jvpn check` shows them all at once.
struct ConfigParser {
    let file: String
    private var diags: [ConfigDiagnostic] = []

    init(file: String) { self.file = file }

    mutating func error(_ line: Int, _ message: String) {
        diags.append(ConfigDiagnostic(file: file, line: line, message: message))
    }

    // MARK: lexing

    enum SectionKind: Equatable {
        case interface, peer, policy, cluster
        /// Unknown or duplicate section: already reported, its keys are skipped.
        case ignored
    }

    struct Entry {
        var key: String
        var value: String
        var line: Int
    }

    struct Section {
        var kind: SectionKind
        var line: Int
        var entries: [Entry] = []
    }

    private static func trim(_ s: Substring) -> Substring {
        var t = s
        while let c = t.first, c == " " || c == "\t" || c == "\r" || c == "\u{FEFF}" { t.removeFirst() }
        while let c = t.last, c == " " || c == "\t" || c == "\r" { t.removeLast() }
        return t
    }

    private mutating func lex(_ text: String) -> [Section] {
        var body = Substring(text)
        if body.first == "\u{FEFF}" { body.removeFirst() }
        // "\r\n" is a single Character in Swift, and isNewline, so CRLF splits like LF.
        let lines = body.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        var sections: [Section] = []
        var seenInterface: Int? = nil
        var seenPolicy: Int? = nil
        var seenCluster: Int? = nil
        for (index, raw) in lines.enumerated() {
            let lineNo = index + 1
            var line = ConfigParser.trim(raw)
            if line.first == ";" { continue }
            if let hash = line.firstIndex(of: "#") { line = ConfigParser.trim(line[..<hash]) }
            if line.isEmpty { continue }

            if line.first == "[" {
                guard line.last == "]", line.count >= 2 else {
                    error(lineNo, "malformed section header '\(line)' (expected [Interface], [Peer], [Policy] or [Cluster])")
                    sections.append(Section(kind: .ignored, line: lineNo))
                    continue
                }
                let name = ConfigParser.trim(line.dropFirst().dropLast())
                var kind: SectionKind
                switch name.lowercased() {
                case "interface":
                    kind = .interface
                    if let first = seenInterface {
                        error(lineNo, "duplicate [Interface] section (first at line \(first))")
                        kind = .ignored
                    } else {
                        seenInterface = lineNo
                    }
                case "peer":
                    kind = .peer
                case "policy":
                    kind = .policy
                    if let first = seenPolicy {
                        error(lineNo, "duplicate [Policy] section (first at line \(first))")
                        kind = .ignored
                    } else {
                        seenPolicy = lineNo
                    }
                case "cluster":
                    kind = .cluster
                    if let first = seenCluster {
                        error(lineNo, "duplicate [Cluster] section (first at line \(first))")
                        kind = .ignored
                    } else {
                        seenCluster = lineNo
                    }
                default:
                    error(lineNo, "unknown section [\(name)] (expected [Interface], [Peer], [Policy] or [Cluster])")
                    kind = .ignored
                }
                sections.append(Section(kind: kind, line: lineNo))
                continue
            }

            guard let eq = line.firstIndex(of: "=") else {
                error(lineNo, "expected 'Key = Value', missing '=' in '\(line)'")
                continue
            }
            let key = ConfigParser.trim(line[..<eq])
            let value = ConfigParser.trim(line[line.index(after: eq)...])
            if key.isEmpty {
                error(lineNo, "missing key before '='")
                continue
            }
            guard !sections.isEmpty else {
                error(lineNo, "key '\(key)' outside of any section (start with [Interface])")
                continue
            }
            sections[sections.count - 1].entries.append(Entry(key: String(key), value: String(value), line: lineNo))
        }
        return sections
    }

    // MARK: keys

    private static let interfaceKeys: [String: (name: String, multi: Bool)] = table([
        ("Name", false), ("PrivateKey", false), ("PrivateKeyFile", false), ("Address", true),
        ("ListenPort", false), ("MTU", false), ("Uplinks", true), ("EventLog", false),
        ("FwMark", false), ("MetricsListen", false), ("EventSyslog", false), ("TcpListen", true),
        ("Workers", false),
    ])
    private static let peerKeys: [String: (name: String, multi: Bool)] = table([
        ("PublicKey", false), ("Endpoint", true), ("AllowedIPs", true),
        ("PersistentKeepalive", false), ("Name", false), ("Transport", false), ("TcpEndpoint", true),
    ])
    /// wg-quick keys we knowingly do not support, for a more helpful message.
    private static let wgQuickOnly: Set<String> = [
        "dns", "table", "preup", "postup", "predown", "postdown", "saveconfig", "presharedkey",
    ]

    private static func table(_ list: [(String, Bool)]) -> [String: (name: String, multi: Bool)] {
        var d: [String: (name: String, multi: Bool)] = [:]
        for (n, m) in list { d[n.lowercased()] = (n, m) }
        return d
    }

    /// Resolves keys case-insensitively, reports unknown and repeated single-valued keys, and
    /// returns the accepted entries with canonical key names, plus the first line of every known
    /// key present (even with a bad value, so that it is not also reported as missing).
    mutating func accepted(_ section: Section, keys: [String: (name: String, multi: Bool)],
                                   sectionName: String) -> (entries: [Entry], present: [String: Int]) {
        var firstLine: [String: Int] = [:]
        var out: [Entry] = []
        for e in section.entries {
            let lower = e.key.lowercased()
            guard let spec = keys[lower] else {
                if ConfigParser.wgQuickOnly.contains(lower) {
                    error(e.line, "unknown key '\(e.key)' in [\(sectionName)] (a wg-quick key that jvpn does not support)")
                } else {
                    error(e.line, "unknown key '\(e.key)' in [\(sectionName)]")
                }
                continue
            }
            if !spec.multi, let first = firstLine[spec.name] {
                error(e.line, "duplicate key '\(spec.name)' in [\(sectionName)] (first set at line \(first))")
                continue
            }
            if firstLine[spec.name] == nil { firstLine[spec.name] = e.line }
            if e.value.isEmpty {
                error(e.line, "empty value for '\(spec.name)'")
                continue
            }
            out.append(Entry(key: spec.name, value: e.value, line: e.line))
        }
        return (out, firstLine)
    }

    /// Splits a comma-separated list; reports empty items.
    mutating func list(_ e: Entry) -> [String] {
        var items: [String] = []
        for part in e.value.split(separator: ",", omittingEmptySubsequences: false) {
            let t = ConfigParser.trim(part)
            if t.isEmpty {
                error(e.line, "empty item in the '\(e.key)' list")
                continue
            }
            items.append(String(t))
        }
        return items
    }

    /// Decimal, or hex with 0x when `allowHex`; nil (and a diagnostic) when out of range.
    mutating func integer(_ e: Entry, _ range: ClosedRange<UInt64>, allowHex: Bool = false,
                                  what: String? = nil) -> UInt64? {
        let v = e.value
        var parsed: UInt64? = nil
        if allowHex, v.lowercased().hasPrefix("0x") {
            let digits = v.dropFirst(2)
            if !digits.isEmpty, digits.allSatisfy(\.isHexDigit) { parsed = UInt64(digits, radix: 16) }
        } else if !v.isEmpty, v.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            parsed = UInt64(v)
        }
        guard let n = parsed, range.contains(n) else {
            error(e.line, "invalid \(e.key) '\(v)': expected \(what ?? "an integer") in \(range.lowerBound)...\(range.upperBound)")
            return nil
        }
        return n
    }

    private mutating func decimal(_ e: Entry, _ range: ClosedRange<Double>) -> Double? {
        let v = e.value
        let ok = !v.isEmpty && v.first != "." && v.last != "."
            && v.allSatisfy { $0.isASCII && ($0.isNumber || $0 == ".") } && v.filter({ $0 == "." }).count <= 1
        guard ok, let d = Double(v), range.contains(d) else {
            error(e.line, "invalid \(e.key) '\(v)': expected a number in \(ConfigParser.fmt(range.lowerBound))...\(ConfigParser.fmt(range.upperBound))")
            return nil
        }
        return d
    }

    private static func fmt(_ d: Double) -> String {
        d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d)
    }

    private mutating func boolean(_ e: Entry) -> Bool? {
        switch e.value.lowercased() {
        case "true", "yes", "1": return true
        case "false", "no", "0": return false
        default:
            error(e.line, "invalid \(e.key) '\(e.value)': expected true/false, yes/no or 1/0")
            return nil
        }
    }

    private mutating func key32(_ e: Entry) -> String? {
        guard Base64.decodeKey32(e.value) != nil else {
            error(e.line, "invalid \(e.key): expected a base64 key of 32 bytes (44 characters)")
            return nil
        }
        return e.value
    }

    private mutating func absolutePath(_ e: Entry) -> String? {
        guard e.value.hasPrefix("/") else {
            error(e.line, "invalid \(e.key) '\(e.value)': expected an absolute path")
            return nil
        }
        return e.value
    }

    // MARK: sections

    private struct PartialInterface {
        var line: Int
        var name: String?
        var nameLine: Int?
        var privateKey: InterfaceConfig.PrivateKeySource?
        var privateKeyLine: Int?
        var addresses: [IPPrefix] = []
        var addressLines: [IPPrefix: Int] = [:]
        var listenPort: UInt16?
        var mtu: Int?
        var mtuLine: Int?
        var uplinks: [String]?
        var uplinkLines: [String: Int] = [:]
        var eventLog: String?
        var fwMark: UInt32?
        var metricsListen: Endpoint?
        var eventSyslog: SyslogTarget?
        var tcpListen: [UInt16]?
        var tcpListenLines: [UInt16: Int] = [:]
        var tcpListenOff: Int?
        var workers: Int?
        var present: [String: Int] = [:]
    }

    private mutating func interface(_ s: Section) -> PartialInterface {
        var p = PartialInterface(line: s.line)
        let (entries, present) = accepted(s, keys: ConfigParser.interfaceKeys, sectionName: "Interface")
        p.present = present
        for e in entries {
            switch e.key {
            case "Name":
                if InterfaceName.isValid(e.value) {
                    p.name = e.value
                    p.nameLine = e.line
                } else {
                    error(e.line, "invalid Name '\(e.value)': an interface name has 1..15 characters from A-Z a-z 0-9 _ . - and is not '.' or '..'")
                }
            case "PrivateKey", "PrivateKeyFile":
                if let other = p.privateKeyLine {
                    error(e.line, "PrivateKey and PrivateKeyFile are mutually exclusive (key already set at line \(other))")
                    continue
                }
                p.privateKeyLine = e.line
                if e.key == "PrivateKey" {
                    if let k = key32(e) { p.privateKey = .inline(k) }
                } else {
                    if let path = absolutePath(e) { p.privateKey = .file(path) }
                }
            case "Address":
                for item in list(e) {
                    guard let pfx = IPPrefix(item) else {
                        error(e.line, "invalid Address '\(item)': expected IP/PREFIXLEN, e.g. 10.77.0.2/24")
                        continue
                    }
                    if pfx.length == 0 {
                        error(e.line, "invalid Address '\(item)': prefix length 0 is not an interface address")
                        continue
                    }
                    if let first = p.addresses.firstIndex(where: { $0.address == pfx.address }) {
                        error(e.line, "duplicate Address \(pfx.address) (first at line \(p.addressLines[p.addresses[first]] ?? e.line))")
                        continue
                    }
                    p.addresses.append(pfx)
                    p.addressLines[pfx] = e.line
                }
            case "ListenPort":
                if let n = integer(e, 1...65535) { p.listenPort = UInt16(n) }
            case "MTU":
                if let n = integer(e, 576...9000) {
                    p.mtu = Int(n)
                    p.mtuLine = e.line
                }
            case "Uplinks":
                var ups = p.uplinks ?? []
                for item in list(e) {
                    guard InterfaceName.isValid(item) else {
                        error(e.line, "invalid uplink '\(item)': not a valid interface name")
                        continue
                    }
                    if let first = p.uplinkLines[item] {
                        error(e.line, "duplicate uplink '\(item)' (first at line \(first))")
                        continue
                    }
                    p.uplinkLines[item] = e.line
                    ups.append(item)
                }
                p.uplinks = ups
            case "EventLog":
                p.eventLog = absolutePath(e)
            case "FwMark":
                if let n = integer(e, 1...UInt64(UInt32.max), allowHex: true, what: "a decimal or 0x hex mark") {
                    p.fwMark = UInt32(n)
                }
            case "MetricsListen":
                switch Endpoint.parse(e.value) {
                case .success(let ep): p.metricsListen = ep
                case .failure(let err): error(e.line, "invalid MetricsListen: \(err) (expected IP:PORT or [IPv6]:PORT)")
                }
            case "EventSyslog":
                p.eventSyslog = syslogTarget(e)
            case "TcpListen":
                tcpListen(e, &p)
            case "Workers":
                if e.value.lowercased() != "auto",
                    let n = integer(e, 1...UInt64(InterfaceConfig.maxWorkers), what: "'auto' or an integer") {
                    p.workers = Int(n)
                }
            default:
                break  // accepted() only yields the keys above
            }
        }
        return p
    }

    /// `TcpListen = PORT, ...` (repeatable) or `off` alone.
    private mutating func tcpListen(_ e: Entry, _ p: inout PartialInterface) {
        var ports = p.tcpListen ?? []
        for item in list(e) {
            if item.lowercased() == "off" {
                if let first = p.tcpListenOff {
                    error(e.line, "duplicate TcpListen 'off' (first at line \(first))")
                } else if !ports.isEmpty {
                    error(e.line, "TcpListen 'off' cannot be combined with ports")
                }
                p.tcpListenOff = e.line
                continue
            }
            guard !item.isEmpty, item.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  let n = UInt16(item), n >= 1 else {
                error(e.line, "invalid TcpListen '\(item)': expected TCP ports in 1...65535 or 'off'")
                continue
            }
            if p.tcpListenOff != nil {
                error(e.line, "TcpListen 'off' cannot be combined with ports")
                continue
            }
            if let first = p.tcpListenLines[n] {
                error(e.line, "duplicate TcpListen port \(n) (first at line \(first))")
                continue
            }
            p.tcpListenLines[n] = e.line
            ports.append(n)
        }
        p.tcpListen = p.tcpListenOff != nil ? [] : ports
    }

    private mutating func syslogTarget(_ e: Entry) -> SyslogTarget? {
        let v = e.value
        if v.hasPrefix("udp://") {
            switch Endpoint.parse(String(v.dropFirst(6))) {
            case .success(let ep): return .udp(ep)
            case .failure(let err):
                error(e.line, "invalid EventSyslog: \(err)")
                return nil
            }
        }
        if v.hasPrefix("unix:") {
            let path = String(v.dropFirst(5))
            if path.hasPrefix("/") { return .unix(path) }
            error(e.line, "invalid EventSyslog '\(v)': unix: needs an absolute socket path")
            return nil
        }
        error(e.line, "invalid EventSyslog '\(v)': expected udp://IP:PORT or unix:/path")
        return nil
    }

    private struct PartialPeer {
        var line: Int
        var publicKey: String?
        var publicKeyLine: Int?
        var endpoints: [Endpoint] = []
        var allowedIPs: [IPPrefix] = []
        var allowedLines: [IPPrefix: Int] = [:]
        var keepalive: UInt16?
        var name: String?
        var nameLine: Int?
        var transports: [TransportKind]?
        var tcpEndpoints: [Endpoint] = []
        var present: [String: Int] = [:]
    }

    private mutating func peer(_ s: Section) -> PartialPeer {
        var p = PartialPeer(line: s.line)
        let (entries, present) = accepted(s, keys: ConfigParser.peerKeys, sectionName: "Peer")
        p.present = present
        for e in entries {
            switch e.key {
            case "PublicKey":
                p.publicKeyLine = e.line
                if let k = key32(e) { p.publicKey = k }
            case "Endpoint":
                for item in list(e) {
                    switch Endpoint.parse(item) {
                    case .success(let ep):
                        if p.endpoints.contains(ep) {
                            error(e.line, "duplicate Endpoint \(ep)")
                        } else {
                            p.endpoints.append(ep)
                        }
                    case .failure(let err):
                        error(e.line, "invalid Endpoint: \(err)")
                    }
                }
            case "AllowedIPs":
                for item in list(e) {
                    guard let pfx = IPPrefix(item) else {
                        error(e.line, "invalid AllowedIPs entry '\(item)': expected IP/PREFIXLEN, e.g. 10.77.0.0/24")
                        continue
                    }
                    // wg(8) masks host bits silently; so do we.
                    let net = pfx.network
                    if p.allowedLines[net] == nil {
                        p.allowedIPs.append(net)
                        p.allowedLines[net] = e.line
                    }
                }
            case "PersistentKeepalive":
                if e.value.lowercased() == "off" {
                    p.keepalive = nil
                } else if let n = integer(e, 0...65535, what: "seconds or 'off'") {
                    p.keepalive = n == 0 ? nil : UInt16(n)
                }
            case "Name":
                let ok = e.value.count <= 64 && e.value.unicodeScalars.allSatisfy {
                    $0.properties.generalCategory != .control
                }
                if ok {
                    p.name = e.value
                    p.nameLine = e.line
                } else {
                    error(e.line, "invalid peer Name: at most 64 printable characters")
                }
            case "Transport":
                var kinds: [TransportKind] = []
                for item in list(e) {
                    guard let k = TransportKind(rawValue: item.lowercased()) else {
                        error(e.line, "invalid Transport '\(item)': expected udp or tcp (in preference order, e.g. 'udp, tcp')")
                        continue
                    }
                    if kinds.contains(k) {
                        error(e.line, "duplicate Transport '\(k.rawValue)'")
                        continue
                    }
                    kinds.append(k)
                }
                p.transports = kinds
            case "TcpEndpoint":
                for item in list(e) {
                    switch Endpoint.parse(item) {
                    case .success(let ep):
                        if p.tcpEndpoints.contains(ep) {
                            error(e.line, "duplicate TcpEndpoint \(ep)")
                        } else {
                            p.tcpEndpoints.append(ep)
                        }
                    case .failure(let err):
                        error(e.line, "invalid TcpEndpoint: \(err)")
                    }
                }
            default:
                break
            }
        }
        return p
    }

    private mutating func policy(_ s: Section) -> (PolicyConfig, [String: Int]) {
        var c = PolicyConfig()
        var lines: [String: Int] = [:]
        let oneYearMs: UInt64 = 31_536_000_000
        var keys: [String: (name: String, multi: Bool)] = [:]
        for n in ConfigParser.policyKeyNames { keys[n.lowercased()] = (n, false) }
        for e in accepted(s, keys: keys, sectionName: "Policy").entries {
            lines[e.key] = e.line
            switch e.key {
            case "ProbeIntervalMs":
                if let n = integer(e, 10...60_000) { c.probeIntervalMs = n }
            case "StandbyProbeIntervalMs":
                if let n = integer(e, 10...600_000) { c.standbyProbeIntervalMs = n }
            case "DeadAfterMs":
                if let n = integer(e, 20...600_000) { c.deadAfterMs = n }
            case "LossVolatilePct":
                if let d = decimal(e, 0...100) { c.lossVolatilePct = d }
            case "RttVolatileMs":
                if let d = decimal(e, 1...60_000) { c.rttVolatileMs = d }
            case "JitterVolatileMs":
                if let d = decimal(e, 1...60_000) { c.jitterVolatileMs = d }
            case "StableWindowMs":
                if let n = integer(e, 0...3_600_000) { c.stableWindowMs = n }
            case "MaxRecoveryWindowMs":
                if let n = integer(e, 100...3_600_000) { c.maxRecoveryWindowMs = n }
            case "TransportLossTtlMs":
                if let n = integer(e, 1000...oneYearMs) { c.transportLossTtlMs = n }
            case "SessionTtlMs":
                if let n = integer(e, 10_000...oneYearMs) { c.sessionTtlMs = n }
            case "MaxSwitchesPerMinute":
                if let n = integer(e, 1...600) { c.maxSwitchesPerMinute = Int(n) }
            case "SwitchCooldownMs":
                if let n = integer(e, 0...600_000) { c.switchCooldownMs = n }
            case "PreemptToPreferred":
                if let b = boolean(e) { c.preemptToPreferred = b }
            case "RestartOnTerminate":
                if let b = boolean(e) { c.restartOnTerminate = b }
            default:
                break
            }
        }
        if c.deadAfterMs <= c.probeIntervalMs {
            let line = lines["DeadAfterMs"] ?? lines["ProbeIntervalMs"] ?? s.line
            error(line, "DeadAfterMs (\(c.deadAfterMs)) must be greater than ProbeIntervalMs (\(c.probeIntervalMs))")
        }
        return (c, lines)
    }

    static let policyKeyNames = [
        "ProbeIntervalMs", "StandbyProbeIntervalMs", "DeadAfterMs", "LossVolatilePct", "RttVolatileMs",
        "JitterVolatileMs", "StableWindowMs", "MaxRecoveryWindowMs", "TransportLossTtlMs", "SessionTtlMs",
        "MaxSwitchesPerMinute", "SwitchCooldownMs", "PreemptToPreferred", "RestartOnTerminate",
    ]

    /// A client peer's transport keys: `TcpEndpoint` needs tcp in `Transport` and an `Endpoint`
    /// (which makes the peer a client's gateway); neither key is for a server's peers.
    private mutating func transportKeys(_ p: PartialPeer) {
        let isClientPeer = p.present["Endpoint"] != nil
        if let line = p.present["Transport"], !isClientPeer {
            error(line, "Transport is for a client's [Peer] (one with an Endpoint); a gateway serves both kinds")
        }
        if let line = p.present["TcpEndpoint"] {
            if !isClientPeer {
                error(line, "TcpEndpoint needs an Endpoint in the same [Peer] (it names a gateway's TCP addresses)")
            } else if let kinds = p.transports, !kinds.isEmpty, !kinds.contains(.tcp) {
                error(line, "TcpEndpoint is set but Transport (\(kinds.map(\.rawValue).joined(separator: ", "))) does not include tcp")
            }
        }
    }

    // MARK: whole file

    /// `/etc/jvpn/jvpn0.conf` -> `jvpn0`; nil when the file is not named NAME.conf.
    static func nameFromFile(_ file: String) -> String? {
        let base = file.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? file
        guard base.hasSuffix(".conf"), base.count > 5 else { return nil }
        return String(base.dropLast(5))
    }

    mutating func parse(_ text: String) -> Result<JVPNConfig, ConfigErrors> {
        let sections = lex(text)
        var iface: PartialInterface? = nil
        var peers: [PartialPeer] = []
        var policyConfig = PolicyConfig()
        var clusterSection: Section?
        var clusterConfig: ClusterConfig?
        for s in sections {
            switch s.kind {
            case .interface: iface = interface(s)
            case .peer: peers.append(peer(s))
            case .policy: policyConfig = policy(s).0
            case .cluster:
                clusterSection = s
                clusterConfig = cluster(s)
            case .ignored: break
            }
        }

        // [Interface]
        var finalInterface: InterfaceConfig? = nil
        if let p = iface {
            var name = p.name
            if name == nil {
                if let derived = ConfigParser.nameFromFile(file) {
                    if InterfaceName.isValid(derived) {
                        name = derived
                    } else {
                        error(p.line, "interface name '\(derived)' derived from the file name is invalid (1..15 characters from A-Z a-z 0-9 _ . -); set Name = in [Interface]")
                    }
                } else {
                    error(p.line, "cannot derive the interface name from '\(file)' (expected NAME.conf); set Name = in [Interface]")
                }
            }
            if p.present["PrivateKey"] == nil && p.present["PrivateKeyFile"] == nil {
                error(p.line, "missing PrivateKey (or PrivateKeyFile) in [Interface]")
            }
            if p.present["Address"] == nil {
                error(p.line, "missing Address in [Interface]")
            }
            let mtu = p.mtu ?? InterfaceConfig.defaultMTU
            if mtu < 1280, p.addresses.contains(where: { $0.family == .v6 }) {
                error(p.mtuLine ?? p.line, "MTU \(mtu) is below 1280, the IPv6 minimum, and Address has an IPv6 address")
            }
            if let n = name, let line = p.uplinkLines[n] {
                error(line, "Uplinks must not contain the tunnel interface '\(n)' itself")
            }
            if let n = name, let key = p.privateKey {
                finalInterface = InterfaceConfig(
                    name: n, privateKey: key, addresses: p.addresses, listenPort: p.listenPort, mtu: mtu,
                    uplinks: p.uplinks, eventLog: p.eventLog, fwMark: p.fwMark,
                    metricsListen: p.metricsListen, eventSyslog: p.eventSyslog, tcpListen: p.tcpListen,
                    workers: p.workers, line: p.line, privateKeyLine: p.privateKeyLine ?? p.line, keyLines: p.present)
            }
        } else {
            error(1, "missing [Interface] section")
        }

        // [Peer]s
        var finalPeers: [PeerConfig] = []
        var keyOwner: [String: Int] = [:]
        var prefixOwner: [IPPrefix: Int] = [:]
        var nameOwner: [String: Int] = [:]
        if peers.isEmpty {
            error(iface?.line ?? 1, "no [Peer] section: at least one is required")
        }
        for p in peers {
            if p.present["PublicKey"] == nil {
                error(p.line, "missing PublicKey in [Peer]")
            }
            if let k = p.publicKey {
                if let first = keyOwner[k] {
                    error(p.publicKeyLine ?? p.line, "duplicate peer: PublicKey already used by the [Peer] at line \(first)")
                } else {
                    keyOwner[k] = p.line
                }
            }
            if p.present["AllowedIPs"] == nil {
                error(p.line, "missing AllowedIPs in [Peer]")
            }
            for pfx in p.allowedIPs {
                if let first = prefixOwner[pfx] {
                    error(p.allowedLines[pfx] ?? p.line, "AllowedIPs \(pfx) is already routed to the [Peer] at line \(first)")
                } else {
                    prefixOwner[pfx] = p.line
                }
            }
            if let n = p.name, let line = p.nameLine {
                if let first = nameOwner[n] {
                    error(line, "duplicate peer Name '\(n)' (first used by the [Peer] at line \(first))")
                } else {
                    nameOwner[n] = p.line
                }
            }
            transportKeys(p)
            if let k = p.publicKey {
                finalPeers.append(PeerConfig(publicKey: k, endpoints: p.endpoints, allowedIPs: p.allowedIPs,
                                             persistentKeepalive: p.keepalive, name: p.name,
                                             transports: p.transports ?? PeerConfig.defaultTransports,
                                             tcpEndpoints: p.tcpEndpoints, line: p.line, keyLines: p.present))
            }
        }

        // Role: a [Peer] with Endpoint makes a client, which has exactly one [Peer]; otherwise a
        // server, which must listen.
        let withEndpoints = peers.filter { !$0.endpoints.isEmpty }
        if !withEndpoints.isEmpty, peers.count > 1 {
            let first = withEndpoints[0]
            error(peers[1].line,
                  "a client has exactly one [Peer]: the [Peer] at line \(first.line) has an Endpoint, but there are \(peers.count) [Peer] sections (a server's peers have no Endpoint)")
        }
        if let p = iface, let line = p.present["TcpListen"], !withEndpoints.isEmpty {
            error(line, "TcpListen is a gateway key, but this config is a client (its [Peer] has an Endpoint)")
        }
        // Present-but-invalid ListenPort/Endpoint values are already reported.
        if let p = iface, !peers.isEmpty, withEndpoints.isEmpty, p.present["ListenPort"] == nil,
            !peers.contains(where: { $0.present["Endpoint"] != nil }) {
            error(p.line, "this config can neither listen nor connect: set ListenPort (server) or an Endpoint in [Peer] (client)")
        }

        if let c = clusterSection, !withEndpoints.isEmpty {
            error(c.line, "[Cluster] is for gateways: this config is a client (its [Peer] has an Endpoint)")
        }

        guard diags.isEmpty, let i = finalInterface else {
            let sorted = diags.enumerated().sorted { ($0.element.line, $0.offset) < ($1.element.line, $1.offset) }
            return .failure(ConfigErrors(sorted.map(\.element)))
        }
        return .success(JVPNConfig(interface: i, peers: finalPeers, policy: policyConfig, cluster: clusterConfig, sourceFile: file))
    }
}
