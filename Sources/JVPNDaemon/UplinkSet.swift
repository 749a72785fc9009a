import Glibc
import JVPNCore
import JVPNSystem

/// The client's uplinks: one UDP socket per uplink, bound to its device and marked, and one
/// candidate path per (uplink x gateway endpoint x transport kind), in priority order. A TCP path's
/// connection is its own (ClientHost opens it on the uplink's device, with the same mark).
final class UplinkSet {
    /// The name of the one unbound socket when no uplink is known.
    static let unboundName = "default"

    private(set) var sockets: [UDPSocket?] = []
    private(set) var paths: [ClientPath] = []
    private(set) var names: [String] = []
    /// The gateway endpoints of each transport kind the peer allows, in config order (path
    /// `u * 16 + e` of that kind goes from uplink u to its endpoint e), and the kind's rank.
    private(set) var endpoints: [TransportKind: [Endpoint]] = [:]
    private var ranks: [TransportKind: Int] = [:]
    /// Each uplink's device MTU: the ceiling of its UDP paths' MTU search.
    private(set) var mtus: [Int] = []
    /// Without a known device the search goes up to an Ethernet frame.
    static let defaultMtu = 1500
    let fwMark: UInt32
    private var port: UInt16 = 0

    init(config: JVPNConfig, network: InterfaceSetup) throws {
        fwMark = network.fwMark
        var uplinks = config.interface.uplinks ?? []
        if uplinks.isEmpty {
            uplinks = UplinkSet.defaultRouteInterfaces(network.netlink).filter { $0 != network.interfaceName }
        }
        if let peer = config.peers.first {
            for kind in TransportKind.allCases {
                guard let rank = peer.preference(of: kind) else { continue }
                ranks[kind] = rank
                endpoints[kind] = peer.endpoints(for: kind)
            }
        }
        let port = config.interface.listenPort ?? 0
        if uplinks.isEmpty {
            // No uplink known: one unbound socket; the routing table picks the way out.
            let s = try UDPSocket(port: port, device: nil, mark: fwMark)
            sockets.append(s)
            names.append(UplinkSet.unboundName)
            mtus.append(UplinkSet.defaultMtu)
            paths += makePaths(u: 0, local: "0.0.0.0") { _, _ in true }
            return
        }
        self.port = port
        for (u, uplink) in uplinks.enumerated() {
            // An uplink that is absent now gets its socket when it appears (hot-plug).
            sockets.append(try? UDPSocket(port: port, device: uplink, mark: fwMark))
            names.append(uplink)
            mtus.append(UplinkSet.deviceMtu(uplink, network: network) ?? UplinkSet.defaultMtu)
            paths += makePaths(u: u, local: UplinkSet.localAddress(of: uplink, network: network)) { _, _ in true }
        }
    }

    /// Uplink `u`'s paths: to each endpoint `e` of each allowed kind for which `include(kind, e)`.
    private func makePaths(u: Int, local: String, include: (TransportKind, Int) -> Bool) -> [ClientPath] {
        var out: [ClientPath] = []
        for kind in TransportKind.allCases {
            guard let rank = ranks[kind] else { continue }
            for (e, ep) in (endpoints[kind] ?? []).enumerated() where include(kind, e) {
                let id = UInt32(u * 16 + e) + (kind == .tcp ? ClientPath.tcpIDBase : 0)
                out.append(ClientPath(id: id, uplink: names[u], uplinkIndex: u, kind: kind, transportRank: rank, remote: ep.socketAddress,
                                      gateway: e, localAddress: local, localPort: kind == .udp ? sockets[u]?.localPort ?? 0 : 0))
            }
        }
        return out
    }

    /// Uplinks and endpoints appended by a config reload (`peer` is the new gateway peer, whose
    /// endpoint lists of each kind extend the running ones): a socket for each new uplink (nil while
    /// it is absent, as at start) and a path for every new (uplink, endpoint, kind), appended after
    /// the existing paths so that their indexes stay. Returns the new paths and the facts about the
    /// new uplinks' current link state.
    func extend(uplinks newUplinks: [String], peer: PeerConfig, network: InterfaceSetup) -> (paths: [ClientPath], facts: [UplinkFact]) {
        let oldUplinks = names.count
        let oldCounts = endpoints.mapValues(\.count)
        for kind in ranks.keys { endpoints[kind] = peer.endpoints(for: kind) }
        var facts: [UplinkFact] = []
        for name in newUplinks {
            let u = names.count
            sockets.append(try? UDPSocket(port: port, device: name, mark: fwMark))
            names.append(name)
            mtus.append(UplinkSet.deviceMtu(name, network: network) ?? UplinkSet.defaultMtu)
            let up = (try? network.netlink.linkIsUp(name: name)) ?? false
            upState[u] = up
            facts.append(up ? .linkUp(uplink: u) : .linkDown(uplink: u))
        }
        var added: [ClientPath] = []
        for (u, name) in names.enumerated() {
            let local = name == UplinkSet.unboundName ? "0.0.0.0" : UplinkSet.localAddress(of: name, network: network)
            added += makePaths(u: u, local: local) { kind, e in u >= oldUplinks || e >= oldCounts[kind, default: 0] }
        }
        paths += added
        return (added, facts)
    }

    static func deviceMtu(_ name: String, network: InterfaceSetup) -> Int? {
        (try? network.netlink.link(name: name)).map { Int($0.mtu) }
    }

    static func localAddress(of uplink: String, network: InterfaceSetup) -> String {
        guard let index = try? network.netlink.interfaceIndex(uplink),
              let addrs = try? network.netlink.addresses(ofIndex: index),
              let first = addrs.first(where: { $0.address.family == AF_INET }) ?? addrs.first,
              let ip = IPAddress(networkBytes: first.address.bytes) else { return "0.0.0.0" }
        return ip.description
    }

    /// Interfaces that carry a default route in the main table, in metric order.
    static func defaultRouteInterfaces(_ netlink: NetlinkControl) -> [String] {
        var found: [(UInt32, String)] = []
        for family in [AF_INET, AF_INET6] {
            for r in (try? netlink.routes(family: family, table: NetlinkControl.mainTable)) ?? [] where r.isDefault && r.oif > 0 {
                if let link = try? netlink.link(index: r.oif), !found.contains(where: { $0.1 == link.name }) {
                    found.append((r.metric, link.name))
                }
            }
        }
        return found.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// Facts about one uplink, derived from netlink events, for the client's orchestrator.
    enum UplinkFact {
        case linkDown(uplink: Int)
        case linkUp(uplink: Int)
        case addressLost(uplink: Int)
        case addressAdded(uplink: Int)
        /// The uplink (re)appeared and now has a socket (hot-plug).
        case socketCreated(uplink: Int)
        /// The uplink's device MTU changed.
        case mtuChanged(uplink: Int, mtu: Int)
    }

    private var indexByUplink: [Int: Int32] = [:]
    private var upState: [Int: Bool] = [:]

    /// Turns one netlink event into uplink facts; creates the socket of an uplink that appears.
    func handle(_ event: NetlinkEvent, network: InterfaceSetup) -> [UplinkFact] {
        func uplinkNamed(_ name: String) -> Int? { names.firstIndex(of: name) }
        func uplinkIndexed(_ index: Int32) -> Int? {
            if let u = indexByUplink.first(where: { $0.value == index })?.key { return u }
            guard let link = try? network.netlink.link(index: index), let u = uplinkNamed(link.name) else { return nil }
            indexByUplink[u] = index
            return u
        }
        var facts: [UplinkFact] = []
        switch event {
        case .linkChanged(let index, let name, let isUp, let isRunning, _):
            guard let u = uplinkNamed(name) else { return [] }
            indexByUplink[u] = index
            let usable = isUp && isRunning
            if sockets[u] == nil && usable, let s = try? UDPSocket(port: port, device: name, mark: fwMark) {
                sockets[u] = s
                refreshLocal(u, network: network)
                facts.append(.socketCreated(uplink: u))
            }
            if upState[u] != usable {
                upState[u] = usable
                facts.append(usable ? .linkUp(uplink: u) : .linkDown(uplink: u))
            }
            // A link event also reports MTU changes: read it (rare, off the packet path).
            if let mtu = UplinkSet.deviceMtu(name, network: network), mtu != mtus[u] {
                mtus[u] = mtu
                facts.append(.mtuChanged(uplink: u, mtu: mtu))
            }
        case .linkRemoved(let index, let name):
            guard let u = uplinkNamed(name) ?? indexByUplink.first(where: { $0.value == index })?.key else { return [] }
            indexByUplink[u] = nil
            upState[u] = false
            sockets[u] = nil // the device is gone; a new one gets a new socket
            facts.append(.linkDown(uplink: u))
        case .addressAdded(let index, let address, _):
            guard let u = uplinkIndexed(index), address.isIPv4 || !address.bytes.starts(with: [0xfe, 0x80]) else { return [] }
            refreshLocal(u, network: network)
            facts.append(.addressAdded(uplink: u))
        case .addressRemoved(let index, let address, _):
            guard let u = uplinkIndexed(index) else { return [] }
            let ip = IPAddress(networkBytes: address.bytes)?.description
            if paths.contains(where: { $0.uplinkIndex == u && $0.localAddress == ip }) {
                refreshLocal(u, network: network)
                facts.append(.addressLost(uplink: u))
            }
        case .routeAdded, .routeRemoved, .overflow:
            break
        }
        return facts
    }

    /// Reads the uplink's current local address (for path names) and port.
    private func refreshLocal(_ u: Int, network: InterfaceSetup) {
        let local = UplinkSet.localAddress(of: names[u], network: network)
        for i in paths.indices where paths[i].uplinkIndex == u {
            paths[i].localAddress = local
            if paths[i].kind == .udp { paths[i].localPort = sockets[u]?.localPort ?? 0 }
        }
    }

    /// Current link state of every uplink, read once at start (the monitor reports changes after).
    func initialFacts(network: InterfaceSetup) -> [UplinkFact] {
        var facts: [UplinkFact] = []
        for (u, name) in names.enumerated() where name != UplinkSet.unboundName {
            let up = (try? network.netlink.linkIsUp(name: name)) ?? false
            upState[u] = up
            if !up { facts.append(.linkDown(uplink: u)) }
        }
        return facts
    }
}

extension Endpoint {
    var socketAddress: SocketAddress { SocketAddress(addressBytes: address.bytes, port: port)! }
}
