import Glibc
import JVPNCore
import JVPNSystem

/// The client's uplinks: one UDP socket per uplink, bound to its device and marked, and one
/// candidate path per (uplink x gateway endpoint), in priority order.
final class UplinkSet {
    private(set) var sockets: [UDPSocket?] = []
    private(set) var paths: [ClientPath] = []
    private(set) var names: [String] = []
    let fwMark: UInt32
    private var port: UInt16 = 0

    init(config: JVPNConfig, network: InterfaceSetup) throws {
        fwMark = network.fwMark
        var uplinks = config.interface.uplinks ?? []
        if uplinks.isEmpty {
            uplinks = UplinkSet.defaultRouteInterfaces(network.netlink).filter { $0 != network.interfaceName }
        }
        let endpoints = config.peers.first?.endpoints ?? []
        let port = config.interface.listenPort ?? 0
        if uplinks.isEmpty {
            // No uplink known: one unbound socket; the routing table picks the way out.
            let s = try UDPSocket(port: port, device: nil, mark: fwMark)
            sockets.append(s)
            names.append("default")
            for (e, ep) in endpoints.enumerated() {
                paths.append(ClientPath(id: UInt32(e), uplink: "default", socketIndex: 0, remote: ep.socketAddress,
                                        localAddress: "0.0.0.0", localPort: s.localPort))
            }
            return
        }
        self.port = port
        for (u, uplink) in uplinks.enumerated() {
            // An uplink that is absent now gets its socket when it appears (hot-plug).
            let s = try? UDPSocket(port: port, device: uplink, mark: fwMark)
            sockets.append(s)
            names.append(uplink)
            let local = UplinkSet.localAddress(of: uplink, network: network)
            for (e, ep) in endpoints.enumerated() {
                paths.append(ClientPath(id: UInt32(u * 16 + e), uplink: uplink, socketIndex: u, remote: ep.socketAddress,
                                        localAddress: local, localPort: s?.localPort ?? 0))
            }
        }
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

    func handle(_ event: NetlinkEvent, client: ClientHost) {}
}

extension Endpoint {
    var socketAddress: SocketAddress { SocketAddress(addressBytes: address.bytes, port: port)! }
}
