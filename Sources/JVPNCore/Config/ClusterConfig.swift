/// A gateway's `[Cluster]` section: the etcd cluster that holds session ownership, this gateway's
/// name in it, its liveness lease and the LAN interface where it announces the addresses of the
/// sessions it owns. Absent = a standalone gateway (nothing of the cluster starts).
public struct ClusterConfig: Equatable, Sendable {
    /// etcd client URLs (`http://IP:PORT`), tried in order.
    public var etcd: [Endpoint]
    /// This gateway's name in the cluster (liveness key, record owner, events).
    public var nodeId: String
    /// TTL of the liveness lease: a gateway cut off from etcd stops serving this long after its
    /// last renewal.
    public var leaseTtlS: Int
    /// Where this gateway answers ARP/NDP for the AllowedIPs of the sessions it owns.
    public var lanInterface: String
    /// Line of the `[Cluster]` header.
    public var line: Int

    public static let defaultLeaseTtlS = 5
    /// etcd refuses leases shorter than its election timeout allows (about 2 s with its
    /// defaults); a minute is far beyond any useful failover time.
    public static let leaseTtlRange: ClosedRange<UInt64> = 2...60

    public init(etcd: [Endpoint], nodeId: String, leaseTtlS: Int = ClusterConfig.defaultLeaseTtlS, lanInterface: String,
                line: Int = 0) {
        self.etcd = etcd
        self.nodeId = nodeId
        self.leaseTtlS = leaseTtlS
        self.lanInterface = lanInterface
        self.line = line
    }

    /// A node id is a DNS-label-like name: it is part of etcd keys and of event fields.
    public static func isValidNodeId(_ s: String) -> Bool {
        let u = s.utf8
        guard (1...63).contains(u.count) else { return false }
        return u.allSatisfy { c in
            (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "-") || c == UInt8(ascii: "_")
                || c == UInt8(ascii: ".")
        }
    }

    /// Why an `Etcd =` item is not a usable etcd URL (the message of its `FILE:LINE:` line).
    public struct URLError: Error, Equatable, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// `http://IP:PORT` (an optional trailing `/`); etcd over TLS is not supported.
    public static func parseEtcdURL(_ s: String) -> Result<Endpoint, URLError> {
        guard s.hasPrefix("http://") else {
            if s.hasPrefix("https://") {
                return .failure(URLError(description: "etcd over TLS (https://) is not supported; use http:// on a trusted network"))
            }
            return .failure(URLError(description: "expected http://IP:PORT"))
        }
        var rest = Substring(s.dropFirst(7))
        if rest.last == "/" { rest = rest.dropLast() }
        switch Endpoint.parse(String(rest)) {
        case .success(let ep): return .success(ep)
        case .failure(let err): return .failure(URLError(description: "\(err)"))
        }
    }
}

/// `[Cluster]` keys, parsed like every other section: all problems reported with their line.
extension ConfigParser {
    static let clusterKeys: [String: (name: String, multi: Bool)] = [
        "etcd": ("Etcd", true), "nodeid": ("NodeId", false), "leasettls": ("LeaseTtlS", false),
        "laninterface": ("LanInterface", false),
    ]

    mutating func cluster(_ s: Section) -> ClusterConfig? {
        let (entries, present) = accepted(s, keys: ConfigParser.clusterKeys, sectionName: "Cluster")
        var etcd: [Endpoint] = []
        var nodeId: String?
        var ttl = ClusterConfig.defaultLeaseTtlS
        var lan: String?
        for e in entries {
            switch e.key {
            case "Etcd":
                for item in list(e) {
                    switch ClusterConfig.parseEtcdURL(item) {
                    case .success(let ep):
                        if etcd.contains(ep) { error(e.line, "duplicate Etcd endpoint \(item)") } else { etcd.append(ep) }
                    case .failure(let why):
                        error(e.line, "invalid Etcd endpoint '\(item)': \(why)")
                    }
                }
            case "NodeId":
                if ClusterConfig.isValidNodeId(e.value) {
                    nodeId = e.value
                } else {
                    error(e.line, "invalid NodeId '\(e.value)': 1..63 characters from A-Z a-z 0-9 - _ .")
                }
            case "LeaseTtlS":
                if let n = integer(e, ClusterConfig.leaseTtlRange, what: "seconds") { ttl = Int(n) }
            case "LanInterface":
                if InterfaceName.isValid(e.value) {
                    lan = e.value
                } else {
                    error(e.line, "invalid LanInterface '\(e.value)': not a valid interface name")
                }
            default:
                break
            }
        }
        for (key, what) in [("Etcd", "Etcd (http://IP:PORT, ...)"), ("NodeId", "NodeId"), ("LanInterface", "LanInterface")]
        where present[key] == nil {
            error(s.line, "missing \(what) in [Cluster]")
        }
        guard let nodeId, let lan, !etcd.isEmpty else { return nil }
        return ClusterConfig(etcd: etcd, nodeId: nodeId, leaseTtlS: ttl, lanInterface: lan, line: s.line)
    }
}
