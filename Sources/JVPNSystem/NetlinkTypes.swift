import CMnl

#if canImport(Glibc)
import Glibc
#endif

/// A failed netlink operation: what we tried and the kernel's (or libc's) errno.
public struct NetlinkError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Operation: String, Sendable {
        case open, linkIndex, linkGet, linkDump, linkSetUp, linkSetDown, setMTU
        case addAddress, removeAddress, dumpAddresses
        case addRoute, removeRoute, dumpRoutes
        case addRule, removeRule, dumpRules
        case monitorOpen, monitorRead, monitorWait
        case addProxyNeighbour, removeProxyNeighbour
    }

    public let operation: Operation
    public let errno: Int32

    public init(_ operation: Operation, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String {
        "netlink \(operation.rawValue): \(String(cString: strerror(errno))) (errno \(errno))"
    }

    public var isAlreadyExists: Bool { errno == EEXIST }
    /// The object to remove or query is not there (the kernel uses several codes for that).
    public var isNotFound: Bool {
        errno == ENOENT || errno == ESRCH || errno == ENODEV || errno == EADDRNOTAVAIL
    }
}

/// An IPv4 or IPv6 address in network byte order. JVPNSystem's own type on purpose: the
/// daemon converts from JVPNCore's address types, so this layer depends on nothing above it.
public struct NetlinkAddress: Hashable, Sendable, CustomStringConvertible {
    public let family: Int32
    public let bytes: [UInt8]

    /// nil unless `bytes` is 4 bytes for AF_INET or 16 for AF_INET6.
    public init?(family: Int32, bytes: [UInt8]) {
        guard (family == AF_INET && bytes.count == 4) || (family == AF_INET6 && bytes.count == 16)
        else { return nil }
        self.family = family
        self.bytes = bytes
    }

    /// Parses dotted IPv4 or textual IPv6 ("10.0.0.1", "fd00::1").
    public init?(_ text: String) {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            self.family = AF_INET
            self.bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            self.family = AF_INET6
            self.bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }

    public static func ipv4(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) -> NetlinkAddress {
        NetlinkAddress(checkedFamily: AF_INET, bytes: [a, b, c, d])
    }

    /// The all-zero address of a family (the destination of a default route).
    public static func any(family: Int32) -> NetlinkAddress? {
        switch family {
        case AF_INET: return NetlinkAddress(checkedFamily: AF_INET, bytes: [UInt8](repeating: 0, count: 4))
        case AF_INET6: return NetlinkAddress(checkedFamily: AF_INET6, bytes: [UInt8](repeating: 0, count: 16))
        default: return nil
        }
    }

    private init(checkedFamily: Int32, bytes: [UInt8]) {
        self.family = checkedFamily
        self.bytes = bytes
    }

    public var isIPv4: Bool { family == AF_INET }
    public var bitLength: Int { bytes.count * 8 }

    public var description: String {
        var out = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        let ok = bytes.withUnsafeBytes { raw in
            inet_ntop(family, raw.baseAddress, &out, socklen_t(out.count)) != nil
        }
        guard ok else { return "?" }
        return String(cString: out)
    }

    /// Copies into a C `uint8_t[16]` tuple.
    func withTuple16<R>(_ body: (inout (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                                        UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) -> R) -> R {
        var t: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &t) { dst in
            for i in 0..<min(bytes.count, 16) { dst[i] = bytes[i] }
        }
        return body(&t)
    }

    /// Reads from a C `uint8_t[16]` tuple; nil for an unknown family.
    static func fromTuple<T>(family: Int32, _ tuple: T) -> NetlinkAddress? {
        let count: Int
        switch family {
        case AF_INET: count = 4
        case AF_INET6: count = 16
        default: return nil
        }
        let bytes = withUnsafeBytes(of: tuple) { Array($0.prefix(count)) }
        return NetlinkAddress(checkedFamily: family, bytes: bytes)
    }
}

// IFF_* from linux/if.h (Glibc imports them as Int).
let netlinkIffUp: UInt32 = 0x1
let netlinkIffRunning: UInt32 = 0x40
let netlinkIffLowerUp: UInt32 = 0x10000

/// C `char[16]` tuple to String.
func netlinkName<T>(_ tuple: T) -> String {
    withUnsafeBytes(of: tuple) { raw in
        String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
    }
}

public struct NetlinkLink: Hashable, Sendable {
    public let index: Int32
    public let name: String
    /// IFF_* flags.
    public let flags: UInt32
    public let mtu: UInt32
    /// IF_OPER_*: 2 down, 5 dormant, 6 up, 0 unknown (virtual links without carrier logic).
    public let operState: UInt8

    public var isUp: Bool { flags & netlinkIffUp != 0 }
    public var isRunning: Bool { flags & netlinkIffRunning != 0 }
    /// IFF_LOWER_UP: the driver reports carrier.
    public var hasCarrier: Bool { flags & netlinkIffLowerUp != 0 }

    init(_ l: cmnl_link) {
        index = l.ifindex
        name = netlinkName(l.name)
        flags = l.flags
        mtu = l.mtu
        operState = l.operstate
    }
}

public struct NetlinkAddressEntry: Hashable, Sendable {
    public let index: Int32
    public let address: NetlinkAddress
    public let prefix: UInt8
    /// IFA_F_* flags.
    public let flags: UInt32
    public let scope: UInt8

    /// IPv6 duplicate address detection still running: the address cannot be bound yet.
    public var isTentative: Bool { flags & 0x40 != 0 }
}

/// A route as added, removed or dumped. `family` follows `destination`.
public struct NetlinkRoute: Hashable, Sendable {
    public static let typeUnicast: UInt8 = 1
    public static let typeLocal: UInt8 = 2
    public static let typeBlackhole: UInt8 = 6
    public static let typeUnreachable: UInt8 = 7
    public static let typeProhibit: UInt8 = 8
    public static let typeThrow: UInt8 = 9

    public var destination: NetlinkAddress
    public var prefix: UInt8
    public var gateway: NetlinkAddress?
    /// Output interface index, 0 for none.
    public var oif: Int32
    /// Routing table id (32-bit, carried in RTA_TABLE).
    public var table: UInt32
    /// RTA_PRIORITY. On removal 0 matches any metric.
    public var metric: UInt32
    /// RTN_*. On add 0 means unicast; on removal 0 matches any type.
    public var type: UInt8
    /// RTPROT_*. On add 0 means "boot" (as `ip route add`); on removal 0 matches any.
    public var proto: UInt8
    /// RT_SCOPE_*, as reported by dumps; derived on add.
    public var scope: UInt8

    public var family: Int32 { destination.family }
    public var isDefault: Bool { prefix == 0 }

    public init(destination: NetlinkAddress, prefix: UInt8, gateway: NetlinkAddress? = nil,
                oif: Int32 = 0, table: UInt32 = NetlinkControl.mainTable, metric: UInt32 = 0,
                type: UInt8 = 0, proto: UInt8 = 0) {
        self.destination = destination
        self.prefix = prefix
        self.gateway = gateway
        self.oif = oif
        self.table = table
        self.metric = metric
        self.type = type
        self.proto = proto
        self.scope = 0
    }

    init?(_ r: cmnl_route) {
        guard let dst = NetlinkAddress.fromTuple(family: r.family, r.dst) else { return nil }
        destination = dst
        prefix = r.dst_len
        gateway = r.has_gateway != 0 ? NetlinkAddress.fromTuple(family: r.family, r.gateway) : nil
        oif = r.oif
        table = r.table
        metric = r.metric
        type = r.type
        proto = r.protocol
        scope = r.scope
    }

    func cValue() throws -> cmnl_route {
        if let gw = gateway, gw.family != destination.family {
            throw NetlinkError(.addRoute, errno: EAFNOSUPPORT)
        }
        var r = cmnl_route()
        r.family = destination.family
        r.dst = destination.withTuple16 { $0 }
        r.dst_len = prefix
        if let gw = gateway {
            r.has_gateway = 1
            r.gateway = gw.withTuple16 { $0 }
        }
        r.oif = oif
        r.table = table
        r.metric = metric
        r.type = type
        r.protocol = proto
        return r
    }
}

/// A policy routing rule (`ip rule`). wg-quick's pair, for example:
/// `NetlinkRule(family: AF_INET, table: 51820, fwmark: 51820, invert: true)` and
/// `NetlinkRule(family: AF_INET, table: NetlinkControl.mainTable, suppressPrefixLength: 0)`.
public struct NetlinkRule: Hashable, Sendable {
    public var family: Int32
    /// Lookup table; on removal 0 matches any.
    public var table: UInt32
    /// Preference; nil lets the kernel choose on add and matches any on removal.
    public var priority: UInt32?
    public var fwmark: UInt32?
    /// 0 with a fwmark = exact match (the kernel then reports 0xffffffff).
    public var fwmask: UInt32
    /// "not": the rule applies when the selector does NOT match.
    public var invert: Bool
    public var suppressPrefixLength: Int32?
    /// FR_ACT_*; 1 = lookup table (the default on add).
    public var action: UInt8

    public init(family: Int32, table: UInt32, priority: UInt32? = nil, fwmark: UInt32? = nil,
                fwmask: UInt32 = 0, invert: Bool = false, suppressPrefixLength: Int32? = nil,
                action: UInt8 = 0) {
        self.family = family
        self.table = table
        self.priority = priority
        self.fwmark = fwmark
        self.fwmask = fwmask
        self.invert = invert
        self.suppressPrefixLength = suppressPrefixLength
        self.action = action
    }

    init(_ r: cmnl_rule) {
        family = r.family
        table = r.table
        priority = r.has_priority != 0 ? r.priority : nil
        fwmark = r.has_fwmark != 0 ? r.fwmark : nil
        fwmask = r.fwmask
        invert = r.invert != 0
        suppressPrefixLength = r.suppress_prefixlen >= 0 ? r.suppress_prefixlen : nil
        action = r.action
    }

    var cValue: cmnl_rule {
        var r = cmnl_rule()
        r.family = family
        r.table = table
        r.priority = priority ?? 0
        r.has_priority = priority == nil ? 0 : 1
        r.has_fwmark = fwmark == nil ? 0 : 1
        r.fwmark = fwmark ?? 0
        r.fwmask = fwmask
        r.invert = invert ? 1 : 0
        r.action = action
        r.suppress_prefixlen = suppressPrefixLength ?? -1
        return r
    }
}
