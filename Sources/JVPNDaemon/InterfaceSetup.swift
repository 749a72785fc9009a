import Glibc
import JVPNCore
import JVPNSystem

/// Addresses, routes and policy rules for the tunnel, done over netlink, recorded so that
/// `teardown` removes exactly what was added.
///
/// Full tunnel (an AllowedIPs of 0.0.0.0/0 or ::/0) is done as wg-quick does: a default route in
/// table FwMark, `not fwmark FwMark -> table FwMark`, and `table main suppress_prefixlength 0`.
/// The transport sockets carry SO_MARK FwMark, so encrypted UDP never loops into the tunnel.
final class InterfaceSetup {
    let interfaceName: String
    let config: JVPNConfig
    let netlink: NetlinkControl
    let fwMark: UInt32
    private var undo: [() -> Void] = []
    /// The AllowedIPs routes this process added (a reload adds and removes some).
    private var routes: [IPPrefix: NetlinkRoute] = [:]
    private(set) var ifIndex: Int32 = 0

    init(interfaceName: String, config: JVPNConfig) throws {
        self.interfaceName = interfaceName
        self.config = config
        self.netlink = try NetlinkControl()
        self.fwMark = config.interface.fwMark ?? JVPNConfig.defaultFwMark
    }

    var isFullTunnel: Bool { config.isFullTunnel }

    func configureInterface() throws {
        ifIndex = try netlink.interfaceIndex(interfaceName)
        for prefix in config.interface.addresses {
            try netlink.addAddress(prefix.address.netlinkAddress, prefix: prefix.length, index: ifIndex)
        }
        try netlink.setLinkUp(index: ifIndex)
    }

    func configureRoutes() throws {
        try addRoutes(config.routedPrefixes)
        let defaults = config.peers.flatMap(\.allowedIPs).filter(\.isDefaultRoute)
        let fullV4 = defaults.contains { $0.family == .v4 }, fullV6 = defaults.contains { $0.family == .v6 }
        for (on, family) in [(fullV4, AF_INET), (fullV6, AF_INET6)] where on {
            let route = NetlinkRoute(destination: NetlinkAddress.any(family: family)!, prefix: 0, oif: ifIndex, table: fwMark)
            try netlink.addRoute(route)
            undo.append { [netlink] in try? netlink.removeRoute(route) }
            let markRule = NetlinkRule(family: family, table: fwMark, priority: 32001, fwmark: fwMark, fwmask: 0xffff_ffff, invert: true)
            try netlink.addRule(markRule)
            undo.append { [netlink] in try? netlink.removeRule(markRule) }
            let suppress = NetlinkRule(family: family, table: NetlinkControl.mainTable, priority: 32000, suppressPrefixLength: 0)
            try netlink.addRule(suppress)
            undo.append { [netlink] in try? netlink.removeRule(suppress) }
        }
    }

    /// Routes via the tunnel for `prefixes` (a route that already exists is someone else's and is
    /// left alone). On failure the routes added by this call are removed again.
    func addRoutes(_ prefixes: [IPPrefix]) throws {
        var added: [IPPrefix] = []
        for prefix in prefixes where routes[prefix] == nil {
            let route = NetlinkRoute(destination: prefix.network.address.netlinkAddress, prefix: prefix.length, oif: ifIndex)
            do {
                try netlink.addRoute(route)
                routes[prefix] = route
                added.append(prefix)
            } catch let e as NetlinkError where e.isAlreadyExists {
                continue
            } catch {
                removeRoutes(added)
                throw error
            }
        }
    }

    /// Removes the routes this process added for `prefixes`.
    func removeRoutes(_ prefixes: [IPPrefix]) {
        for prefix in prefixes {
            if let route = routes.removeValue(forKey: prefix) { try? netlink.removeRoute(route) }
        }
    }

    /// Removes rules and routes in reverse order. The interface itself goes with its fd.
    func teardown() {
        for u in undo.reversed() { u() }
        undo.removeAll()
        removeRoutes(Array(routes.keys))
    }
}

extension IPAddress {
    var netlinkAddress: NetlinkAddress {
        NetlinkAddress(family: family == .v4 ? AF_INET : AF_INET6, bytes: bytes)!
    }
}
