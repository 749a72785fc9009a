import JVPNCluster
import JVPNCore
import JVPNSystem
import Logging

/// The `ClusterLink` of a clustered gateway: store requests go to the etcd agent, ownership to the
/// LAN (proxy neighbours and announcements on `LanInterface`).
final class GatewayClusterLink: ClusterLink, @unchecked Sendable {
    let agent: ClusterAgent
    let lan: LanNeighbours
    private let logger = Logger(label: "jvpn.cluster")

    init(agent: ClusterAgent, lan: LanNeighbours) {
        self.agent = agent
        self.lan = lan
        for path in lan.unsetTunables {
            logger.warning("could not set \(path) (set it in sysctl.d): proxy ARP/NDP answers may be slow or missing")
        }
    }

    func submit(_ request: StoreRequest) { agent.submit(request) }

    func announce(peer: Int, allowedIPs: [IPPrefix]) {
        for (a, why) in lan.announce(LanNeighbours.hosts(allowedIPs)) {
            logger.warning("cannot announce \(a) on \(lan.interface): \(why)")
        }
    }

    func withdraw(peer: Int, allowedIPs: [IPPrefix]) {
        for (a, why) in lan.withdraw(LanNeighbours.hosts(allowedIPs)) {
            logger.warning("cannot withdraw \(a) from \(lan.interface): \(why)")
        }
    }
}
