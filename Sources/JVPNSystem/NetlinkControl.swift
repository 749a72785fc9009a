import CMnl

#if canImport(Glibc)
import Glibc
#endif

/// rtnetlink requests over one libmnl socket. Every request waits for the kernel's ACK and
/// throws its error. The socket belongs to the network namespace of the thread that created
/// the object. Calls are serialised by a lock, so one instance can be shared.
public final class NetlinkControl: @unchecked Sendable {
    public static let mainTable: UInt32 = CMNL_TABLE_MAIN
    public static let localTable: UInt32 = CMNL_TABLE_LOCAL
    /// IFA_F_NODAD: an IPv6 address usable at once, without duplicate address detection.
    public static let addressFlagNoDAD: UInt32 = 0x02

    private let handle: OpaquePointer
    private let lock = Lock()

    public init() throws {
        var h: OpaquePointer?
        let rc = cmnl_open(&h)
        guard rc == 0, let h else { throw NetlinkError(.open, errno: rc < 0 ? -rc : EIO) }
        handle = h
    }

    deinit { cmnl_close(handle) }

    func call(_ op: NetlinkError.Operation, _ body: (OpaquePointer) -> Int32) throws -> Int32 {
        lock.lock()
        defer { lock.unlock() }
        let rc = body(handle)
        if rc < 0 { throw NetlinkError(op, errno: -rc) }
        return rc
    }

    /// Runs a C dump into a growing array: the kernel may gain entries between attempts.
    private func dump<T>(_ op: NetlinkError.Operation, empty: T,
                         _ body: (OpaquePointer, UnsafeMutablePointer<T>, UInt32, UnsafeMutablePointer<UInt32>) -> Int32)
        throws -> [T] {
        var capacity = 64
        for _ in 0..<6 {
            var items = [T](repeating: empty, count: capacity)
            var total: UInt32 = 0
            _ = try call(op) { h in
                items.withUnsafeMutableBufferPointer { buf in
                    // Arrays with capacity > 0 always have a base address.
                    guard let base = buf.baseAddress else { return -ENOMEM }
                    return body(h, base, UInt32(buf.count), &total)
                }
            }
            if Int(total) <= capacity { return Array(items.prefix(Int(total))) }
            capacity = Int(total) + 64
        }
        throw NetlinkError(op, errno: EAGAIN)
    }

    // MARK: links

    public func interfaceIndex(_ name: String) throws -> Int32 {
        try call(.linkIndex) { cmnl_link_index($0, name) }
    }

    public func link(index: Int32) throws -> NetlinkLink {
        var l = cmnl_link()
        _ = try call(.linkGet) { cmnl_link_get($0, index, &l) }
        return NetlinkLink(l)
    }

    public func link(name: String) throws -> NetlinkLink {
        try link(index: try interfaceIndex(name))
    }

    public func links() throws -> [NetlinkLink] {
        try dump(.linkDump, empty: cmnl_link()) { cmnl_link_dump($0, $1, $2, $3) }.map(NetlinkLink.init)
    }

    /// Administratively up and running (IFF_UP and IFF_RUNNING): usable as an uplink.
    public func linkIsUp(name: String) throws -> Bool {
        let l = try link(name: name)
        return l.isUp && l.isRunning
    }

    public func setLinkUp(index: Int32) throws {
        _ = try call(.linkSetUp) { cmnl_link_set_up($0, index, 1) }
    }

    public func setLinkUp(name: String) throws { try setLinkUp(index: try interfaceIndex(name)) }

    public func setLinkDown(index: Int32) throws {
        _ = try call(.linkSetDown) { cmnl_link_set_up($0, index, 0) }
    }

    public func setLinkDown(name: String) throws { try setLinkDown(index: try interfaceIndex(name)) }

    public func setMTU(index: Int32, _ mtu: UInt32) throws {
        _ = try call(.setMTU) { cmnl_link_set_mtu($0, index, mtu) }
    }

    public func setMTU(name: String, _ mtu: UInt32) throws {
        try setMTU(index: try interfaceIndex(name), mtu)
    }

    // MARK: addresses

    /// IPv6 addresses get IFA_F_NODAD unless `flags` is given explicitly, so that sockets can
    /// bind to them at once.
    public func addAddress(_ address: NetlinkAddress, prefix: UInt8, index: Int32,
                           flags: UInt32? = nil) throws {
        let f = flags ?? (address.isIPv4 ? 0 : Self.addressFlagNoDAD)
        _ = try call(.addAddress) { h in
            address.bytes.withUnsafeBufferPointer { b in
                cmnl_addr_add(h, index, address.family, b.baseAddress, prefix, f)
            }
        }
    }

    public func addAddress(_ address: NetlinkAddress, prefix: UInt8, interface name: String,
                           flags: UInt32? = nil) throws {
        try addAddress(address, prefix: prefix, index: try interfaceIndex(name), flags: flags)
    }

    public func removeAddress(_ address: NetlinkAddress, prefix: UInt8, index: Int32) throws {
        _ = try call(.removeAddress) { h in
            address.bytes.withUnsafeBufferPointer { b in
                cmnl_addr_del(h, index, address.family, b.baseAddress, prefix)
            }
        }
    }

    public func removeAddress(_ address: NetlinkAddress, prefix: UInt8, interface name: String) throws {
        try removeAddress(address, prefix: prefix, index: try interfaceIndex(name))
    }

    /// Addresses of one link (index 0 = all links); family 0 = IPv4 and IPv6.
    public func addresses(ofIndex index: Int32, family: Int32 = 0) throws -> [NetlinkAddressEntry] {
        let raw = try dump(.dumpAddresses, empty: cmnl_addr()) { cmnl_addr_dump($0, index, family, $1, $2, $3) }
        return raw.compactMap { a in
            guard let addr = NetlinkAddress.fromTuple(family: a.family, a.addr) else { return nil }
            return NetlinkAddressEntry(index: a.ifindex, address: addr, prefix: a.prefixlen,
                                       flags: a.flags, scope: a.scope)
        }
    }

    // MARK: routes

    /// Adds a route; `replace` overwrites an existing one instead of failing with EEXIST.
    public func addRoute(_ route: NetlinkRoute, replace: Bool = false) throws {
        var r = try route.cValue()
        _ = try call(.addRoute) { cmnl_route_add($0, &r, replace ? 1 : 0) }
    }

    public func removeRoute(_ route: NetlinkRoute) throws {
        var r: cmnl_route
        do { r = try route.cValue() } catch { throw NetlinkError(.removeRoute, errno: EAFNOSUPPORT) }
        _ = try call(.removeRoute) { cmnl_route_del($0, &r) }
    }

    /// Routes of one family; table 0 = every table, oif 0 = any interface.
    public func routes(family: Int32, table: UInt32 = 0, oif: Int32 = 0) throws -> [NetlinkRoute] {
        try dump(.dumpRoutes, empty: cmnl_route()) { cmnl_route_dump($0, family, table, oif, $1, $2, $3) }
            .compactMap(NetlinkRoute.init)
    }

    /// The main table's default route through `oif` with the lowest metric (its gateway is the
    /// uplink's next hop), or nil when that interface has none.
    public func defaultRoute(family: Int32, oif: Int32) throws -> NetlinkRoute? {
        try routes(family: family, table: Self.mainTable, oif: oif)
            .filter { $0.prefix == 0 && ($0.type == NetlinkRoute.typeUnicast) }
            .min { $0.metric < $1.metric }
    }

    // MARK: rules

    public func addRule(_ rule: NetlinkRule) throws {
        if let s = rule.suppressPrefixLength, s < 0 { throw NetlinkError(.addRule, errno: EINVAL) }
        var r = rule.cValue
        _ = try call(.addRule) { cmnl_rule_add($0, &r) }
    }

    public func removeRule(_ rule: NetlinkRule) throws {
        if let s = rule.suppressPrefixLength, s < 0 { throw NetlinkError(.removeRule, errno: EINVAL) }
        var r = rule.cValue
        _ = try call(.removeRule) { cmnl_rule_del($0, &r) }
    }

    public func rules(family: Int32) throws -> [NetlinkRule] {
        try dump(.dumpRules, empty: cmnl_rule()) { cmnl_rule_dump($0, family, $1, $2, $3) }
            .map(NetlinkRule.init)
    }
}
