import XCTest
@testable import JVPNCore

final class ClusterConfigTests: XCTestCase {
    private func gateway(_ cluster: String) -> String {
        """
        [Interface]
        PrivateKeyFile = /etc/jvpn/gw.key
        Address = 10.77.0.1/24
        ListenPort = 51820

        [Peer]
        PublicKey = \(ConfigTests.pub1)
        AllowedIPs = 10.77.0.2/32

        \(cluster)
        """
    }

    private func errors(_ text: String, line: UInt = #line) -> [String] {
        switch JVPNConfig.parse(text: text, file: "gw.conf") {
        case .success:
            XCTFail("expected errors", line: line)
            return []
        case .failure(let e):
            return e.diagnostics.map(\.description)
        }
    }

    func testFullSection() throws {
        let c = try JVPNConfig(parsing: gateway("""
            [Cluster]
            Etcd = http://10.0.0.1:2379, http://[fd00::2]:2379/ , http://10.0.0.3:2379
            NodeId = gw-a
            LeaseTtlS = 3
            LanInterface = lan0
            """), file: "gw.conf")
        let cluster = try XCTUnwrap(c.cluster)
        XCTAssertEqual(cluster.etcd.map(\.description), ["10.0.0.1:2379", "[fd00::2]:2379", "10.0.0.3:2379"])
        XCTAssertEqual(cluster.nodeId, "gw-a")
        XCTAssertEqual(cluster.leaseTtlS, 3)
        XCTAssertEqual(cluster.lanInterface, "lan0")
        XCTAssertEqual(cluster.line, 10)
    }

    func testDefaultsAndAbsence() throws {
        let c = try JVPNConfig(parsing: gateway("""
            [cluster]
            etcd = http://127.0.0.1:2379
            nodeid = one
            laninterface = eth1
            """), file: "gw.conf")
        XCTAssertEqual(c.cluster?.leaseTtlS, ClusterConfig.defaultLeaseTtlS)
        XCTAssertNil(try JVPNConfig(parsing: gateway(""), file: "gw.conf").cluster)
    }

    func testEveryProblemWithItsLine() {
        let e = errors(gateway("""
            [Cluster]
            Etcd = https://10.0.0.1:2379, 10.0.0.2:2379, http://etcd1:2379, http://10.0.0.4:2379, http://10.0.0.4:2379
            NodeId = gw a
            LeaseTtlS = 1
            LanInterface = this-name-is-far-too-long
            Color = blue
            """))
        XCTAssertEqual(e, [
            "gw.conf:11: invalid Etcd endpoint 'https://10.0.0.1:2379': etcd over TLS (https://) is not supported; use http:// on a trusted network",
            "gw.conf:11: invalid Etcd endpoint '10.0.0.2:2379': expected http://IP:PORT",
            "gw.conf:11: invalid Etcd endpoint 'http://etcd1:2379': endpoint 'etcd1:2379': host names are not supported, use an IP address literal",
            "gw.conf:11: duplicate Etcd endpoint http://10.0.0.4:2379",
            "gw.conf:12: invalid NodeId 'gw a': 1..63 characters from A-Z a-z 0-9 - _ .",
            "gw.conf:13: invalid LeaseTtlS '1': expected seconds in 2...60",
            "gw.conf:14: invalid LanInterface 'this-name-is-far-too-long': not a valid interface name",
            "gw.conf:15: unknown key 'Color' in [Cluster]",
        ])
    }

    func testMissingKeysAndDuplicateSection() {
        XCTAssertEqual(errors(gateway("""
            [Cluster]
            LeaseTtlS = 5

            [Cluster]
            NodeId = b
            """)), [
            "gw.conf:10: missing Etcd (http://IP:PORT, ...) in [Cluster]",
            "gw.conf:10: missing NodeId in [Cluster]",
            "gw.conf:10: missing LanInterface in [Cluster]",
            "gw.conf:13: duplicate [Cluster] section (first at line 10)",
        ])
    }

    func testClientRefusesCluster() {
        let text = """
            [Interface]
            PrivateKey = \(ConfigTests.priv1)
            Address = 10.77.0.2/32

            [Peer]
            PublicKey = \(ConfigTests.pub2)
            Endpoint = 10.0.0.1:51820
            AllowedIPs = 10.77.0.0/24

            [Cluster]
            Etcd = http://10.0.0.1:2379
            NodeId = a
            LanInterface = eth0
            """
        XCTAssertEqual(errors(text), ["gw.conf:10: [Cluster] is for gateways: this config is a client (its [Peer] has an Endpoint)"])
    }
}
