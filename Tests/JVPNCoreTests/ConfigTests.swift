import XCTest
@testable import JVPNCore

final class ConfigTests: XCTestCase {
    static let priv1 = "mJRD+957aeUHfZhByy1oHPZROvBzIhaeJQh24BFx7HA="
    static let pub1 = "de9NlGy3twRo0mq8LZVY+eGJuzZknn8VltlPjzHhhXc="
    static let priv2 = "YPHIdNR5rHMxQVcT/Bktjb33JyltVWwoWCXpe7U5wW8="
    static let pub2 = "SXFFOJEIAsJebGDywsTxOGMX3Urlo+dVxAYo0sdONik="
    static let pub3 = "5j7N67n0RBcEgN5V9FR/FMJfnsbkz+f644JBzm+ZPiU="

    static let client = """
        # laptop
        [Interface]
        PrivateKey = \(priv1)
        Address = 10.77.0.2/32, fd77::2/128
        Uplinks = wlan0, wwan0
        MTU = 1380

        [Peer]
        PublicKey = \(pub2)
        Endpoint = 203.0.113.7:51820, [2001:db8::7]:51820
        AllowedIPs = 0.0.0.0/0, ::/0
        PersistentKeepalive = 25

        [Policy]
        ProbeIntervalMs = 100
        DeadAfterMs = 600
        LossVolatilePct = 2.5
        PreemptToPreferred = no
        restartonterminate = 0
        """

    static let gateway = """
        [Interface]
        PrivateKeyFile = /etc/jvpn/gw.key
        Address = 10.77.0.1/24
        ListenPort = 51820
        EventLog = /tmp/gw.events.jsonl
        MetricsListen = 127.0.0.1:9586
        EventSyslog = udp://[::1]:514

        [Peer]
        Name = laptop
        PublicKey = \(pub1)
        AllowedIPs = 10.77.0.2/32

        [Peer]
        PublicKey = \(pub3)
        AllowedIPs = 10.77.0.3/32, 10.99.0.0/16
        AllowedIPs = 10.77.0.3/32
        """

    private func parse(_ text: String, file: String = "/etc/jvpn/jvpn0.conf") -> Result<JVPNConfig, ConfigErrors> {
        JVPNConfig.parse(text: text, file: file)
    }

    private func errors(_ text: String, file: String = "t.conf", line: UInt = #line) -> [String] {
        switch JVPNConfig.parse(text: text, file: file) {
        case .success:
            XCTFail("expected errors", line: line)
            return []
        case .failure(let e):
            return e.diagnostics.map(\.description)
        }
    }

    /// A minimal valid client with `extra` lines inserted in sections.
    private func clientText(interface: String = "", peer: String = "", policy: String = "") -> String {
        """
        [Interface]
        PrivateKey = \(Self.priv1)
        Address = 10.77.0.2/32
        \(interface)
        [Peer]
        PublicKey = \(Self.pub2)
        Endpoint = 203.0.113.7:51820
        AllowedIPs = 10.77.0.0/24
        \(peer)
        [Policy]
        \(policy)
        """
    }

    func testValidClient() throws {
        let c = try parse(Self.client).get()
        XCTAssertEqual(c.interface.name, "jvpn0")
        XCTAssertEqual(c.interface.privateKey, .inline(Self.priv1))
        XCTAssertEqual(c.interface.addresses.map(\.description), ["10.77.0.2/32", "fd77::2/128"])
        XCTAssertNil(c.interface.listenPort)
        XCTAssertEqual(c.interface.mtu, 1380)
        XCTAssertEqual(c.interface.uplinks, ["wlan0", "wwan0"])
        XCTAssertEqual(c.interface.eventLog, "/var/log/jvpn/jvpn0.events.jsonl")
        XCTAssertEqual(c.interface.line, 2)
        XCTAssertEqual(c.interface.privateKeyLine, 3)
        XCTAssertEqual(c.peers.count, 1)
        XCTAssertEqual(c.peers[0].publicKey, Self.pub2)
        XCTAssertEqual(c.peers[0].endpoints.map(\.description), ["203.0.113.7:51820", "[2001:db8::7]:51820"])
        XCTAssertEqual(c.peers[0].allowedIPs.map(\.description), ["0.0.0.0/0", "::/0"])
        XCTAssertEqual(c.peers[0].persistentKeepalive, 25)
        XCTAssertEqual(c.peers[0].line, 8)
        XCTAssertEqual(c.peers[0].publicKeyBytes?.count, 32)
        XCTAssertEqual(c.role, .client)
        XCTAssertTrue(c.isFullTunnel)
        XCTAssertEqual(c.effectiveFwMark, 51820)
        var want = PolicyConfig()
        want.probeIntervalMs = 100
        want.deadAfterMs = 600
        want.lossVolatilePct = 2.5
        want.preemptToPreferred = false
        want.restartOnTerminate = false
        XCTAssertEqual(c.policy, want)
        XCTAssertEqual(c.sourceFile, "/etc/jvpn/jvpn0.conf")
    }

    func testValidGateway() throws {
        let c = try JVPNConfig(parsing: Self.gateway, file: "gw-1.conf")
        XCTAssertEqual(c.interface.name, "gw-1")
        XCTAssertEqual(c.interface.privateKey, .file("/etc/jvpn/gw.key"))
        XCTAssertEqual(c.interface.addresses, [IPPrefix("10.77.0.1/24")!])
        XCTAssertEqual(c.interface.listenPort, 51820)
        XCTAssertEqual(c.interface.mtu, 1420)
        XCTAssertNil(c.interface.uplinks)
        XCTAssertEqual(c.interface.eventLog, "/tmp/gw.events.jsonl")
        XCTAssertEqual(c.interface.metricsListen?.description, "127.0.0.1:9586")
        XCTAssertEqual(c.interface.eventSyslog, .udp(try Endpoint.parse("[::1]:514").get()))
        XCTAssertEqual(c.role, .server)
        XCTAssertFalse(c.isFullTunnel)
        XCTAssertNil(c.effectiveFwMark)
        XCTAssertEqual(c.peers.map(\.name), ["laptop", nil])
        // Repeated AllowedIPs lines accumulate; exact repeats within a peer collapse.
        XCTAssertEqual(c.peers[1].allowedIPs.map(\.description), ["10.77.0.3/32", "10.99.0.0/16"])
        XCTAssertEqual(c.policy, PolicyConfig())

        // The table a gateway builds from it.
        var table = AllowedIPsTable<Int>()
        for (i, p) in c.peers.enumerated() { for a in p.allowedIPs { table.insert(a, value: i) } }
        XCTAssertEqual(table.lookup(IPAddress("10.99.3.4")!), 1)
        XCTAssertEqual(table.lookup(IPAddress("10.77.0.2")!), 0)
    }

    func testLexicalTolerance() throws {
        let text = "\u{FEFF}; full-line semicolon comment\r\n"
            + "  [interface]  # trailing comment\r\n"
            + "\tprivatekey=\(Self.priv1)\r\n"
            + "ADDRESS =   10.0.0.2/32   # host\r\n"
            + "name = wg-test\r\n"
            + "\r\n"
            + "[PEER]\r\n"
            + "publicKey = \(Self.pub2)\r\n"
            + "endpoint = 192.0.2.1:1\r\n"
            + "allowedips = 10.0.0.0/8\r\n"
        let c = try parse(text, file: "whatever.txt").get()
        XCTAssertEqual(c.interface.name, "wg-test")
        XCTAssertEqual(c.interface.line, 2)
        XCTAssertEqual(c.peers[0].line, 7)
        XCTAssertEqual(c.peers[0].endpoints.first?.port, 1)
    }

    func testNormalizesAllowedIPs() throws {
        let c = try parse(clientText(peer: "AllowedIPs = 10.1.2.3/16")).get()
        XCTAssertEqual(c.peers[0].allowedIPs.map(\.description), ["10.77.0.0/24", "10.1.0.0/16"])
    }

    func testFwMarkAndSyslogForms() throws {
        var c = try parse(clientText(interface: "FwMark = 0x10\nEventSyslog = unix:/dev/log")).get()
        XCTAssertEqual(c.interface.fwMark, 16)
        XCTAssertEqual(c.effectiveFwMark, 16)
        XCTAssertEqual(c.interface.eventSyslog, .unix("/dev/log"))
        c = try parse(clientText(interface: "FwMark = 4242\nListenPort = 4000")).get()
        XCTAssertEqual(c.interface.fwMark, 4242)
        XCTAssertEqual(c.interface.listenPort, 4000)
        XCTAssertEqual(c.role, .client, "a client may also set ListenPort")
    }

    // MARK: errors

    func testUnknownSectionAndKeys() {
        XCTAssertEqual(errors(clientText(interface: "DNS = 1.1.1.1", peer: "Foo = bar") + "\n[Bogus]\nX = 1"), [
            "t.conf:4: unknown key 'DNS' in [Interface] (a wg-quick key that jvpn does not support)",
            "t.conf:9: unknown key 'Foo' in [Peer]",
            "t.conf:12: unknown section [Bogus] (expected [Interface], [Peer], [Policy] or [Cluster])",
        ])
        XCTAssertEqual(errors(clientText(policy: "ProbeInterval = 100")), [
            "t.conf:11: unknown key 'ProbeInterval' in [Policy]",
        ])
    }

    func testKeyOutsideSectionAndMissingEquals() {
        let text = "MTU = 1400\n" + clientText(interface: "ListenPort 51820", policy: "[Peer")
        XCTAssertEqual(errors(text), [
            "t.conf:1: key 'MTU' outside of any section (start with [Interface])",
            "t.conf:5: expected 'Key = Value', missing '=' in 'ListenPort 51820'",
            "t.conf:12: malformed section header '[Peer' (expected [Interface], [Peer], [Policy] or [Cluster])",
        ])
        XCTAssertEqual(errors(clientText(interface: "= 5")), ["t.conf:4: missing key before '='"])
    }

    func testDuplicateSingleValuedKey() {
        XCTAssertEqual(errors(clientText(interface: "MTU = 1400\nmtu = 1300", peer: "PublicKey = \(Self.pub3)")), [
            "t.conf:5: duplicate key 'MTU' in [Interface] (first set at line 4)",
            "t.conf:10: duplicate key 'PublicKey' in [Peer] (first set at line 7)",
        ])
        XCTAssertEqual(errors(clientText(policy: "DeadAfterMs = 5000\nDeadAfterMs = 6000")), [
            "t.conf:12: duplicate key 'DeadAfterMs' in [Policy] (first set at line 11)",
        ])
        XCTAssertEqual(errors(clientText(interface: "PrivateKeyFile = /k")), [
            "t.conf:4: PrivateKey and PrivateKeyFile are mutually exclusive (key already set at line 2)",
        ])
        XCTAssertEqual(errors(clientText() + "\n[Interface]\n[Policy]"), [
            "t.conf:12: duplicate [Interface] section (first at line 1)",
            "t.conf:13: duplicate [Policy] section (first at line 10)",
        ])
    }

    func testBadValues() {
        let text = """
            [Interface]
            PrivateKey = notbase64
            Address = 10.77.0.2/33, 10.0.0.1/0, fd00::1/64
            ListenPort = 0
            MTU = 1000
            Uplinks = wlan0, this-name-is-too-long, , wlan0
            EventLog = relative.log
            FwMark = 0
            MetricsListen = localhost:9000
            EventSyslog = tcp://1.2.3.4:514
            Name = bad/name

            [Peer]
            PublicKey = AAAA
            Endpoint = vpn.example.com:51820, 1.2.3.4:99999, 2001:db8::1:51820
            AllowedIPs = 10.0.0.0/40
            PersistentKeepalive = forever

            [Policy]
            ProbeIntervalMs = 5
            LossVolatilePct = 101
            PreemptToPreferred = maybe
            MaxSwitchesPerMinute = 0
            SessionTtlMs = -1
            RttVolatileMs = 1e3
            """
        XCTAssertEqual(errors(text, file: "bad.conf"), [
            "bad.conf:2: invalid PrivateKey: expected a base64 key of 32 bytes (44 characters)",
            "bad.conf:3: invalid Address '10.77.0.2/33': expected IP/PREFIXLEN, e.g. 10.77.0.2/24",
            "bad.conf:3: invalid Address '10.0.0.1/0': prefix length 0 is not an interface address",
            "bad.conf:4: invalid ListenPort '0': expected an integer in 1...65535",
            "bad.conf:5: MTU 1000 is below 1280, the IPv6 minimum, and Address has an IPv6 address",
            "bad.conf:6: empty item in the 'Uplinks' list",
            "bad.conf:6: invalid uplink 'this-name-is-too-long': not a valid interface name",
            "bad.conf:6: duplicate uplink 'wlan0' (first at line 6)",
            "bad.conf:7: invalid EventLog 'relative.log': expected an absolute path",
            "bad.conf:8: invalid FwMark '0': expected a decimal or 0x hex mark in 1...4294967295",
            "bad.conf:9: invalid MetricsListen: endpoint 'localhost:9000': host names are not supported, use an IP address literal (expected IP:PORT or [IPv6]:PORT)",
            "bad.conf:10: invalid EventSyslog 'tcp://1.2.3.4:514': expected udp://IP:PORT or unix:/path",
            "bad.conf:11: invalid Name 'bad/name': an interface name has 1..15 characters from A-Z a-z 0-9 _ . - and is not '.' or '..'",
            "bad.conf:14: invalid PublicKey: expected a base64 key of 32 bytes (44 characters)",
            "bad.conf:15: invalid Endpoint: endpoint 'vpn.example.com:51820': host names are not supported, use an IP address literal",
            "bad.conf:15: invalid Endpoint: endpoint '1.2.3.4:99999' has an invalid port (expected 1..65535)",
            "bad.conf:15: invalid Endpoint: endpoint '2001:db8::1:51820': write an IPv6 endpoint as [ADDRESS]:PORT",
            "bad.conf:16: invalid AllowedIPs entry '10.0.0.0/40': expected IP/PREFIXLEN, e.g. 10.77.0.0/24",
            "bad.conf:17: invalid PersistentKeepalive 'forever': expected seconds or 'off' in 0...65535",
            "bad.conf:20: invalid ProbeIntervalMs '5': expected an integer in 10...60000",
            "bad.conf:21: invalid LossVolatilePct '101': expected a number in 0...100",
            "bad.conf:22: invalid PreemptToPreferred 'maybe': expected true/false, yes/no or 1/0",
            "bad.conf:23: invalid MaxSwitchesPerMinute '0': expected an integer in 1...600",
            "bad.conf:24: invalid SessionTtlMs '-1': expected an integer in 10000...31536000000",
            "bad.conf:25: invalid RttVolatileMs '1e3': expected a number in 1...60000",
        ])
    }

    func testTransportKeysOfAClient() throws {
        let d = try parse(clientText()).get()
        XCTAssertEqual(d.peers[0].transports, [.udp, .tcp], "default: UDP preferred, TCP as well")
        XCTAssertEqual(d.peers[0].endpoints(for: .tcp).map(\.description), ["203.0.113.7:51820"], "default: each Endpoint over TCP")
        XCTAssertEqual(d.peers[0].preference(of: .tcp), 1)
        let c = try parse(clientText(peer: "Transport = TCP, udp\nTcpEndpoint = 203.0.113.7:443, [2001:db8::7]:443\nTcpEndpoint = 198.51.100.1:8443")).get()
        XCTAssertEqual(c.peers[0].transports, [.tcp, .udp])
        XCTAssertEqual(c.peers[0].endpoints(for: .tcp).map(\.description), ["203.0.113.7:443", "[2001:db8::7]:443", "198.51.100.1:8443"])
        XCTAssertEqual(c.peers[0].endpoints(for: .udp).map(\.description), ["203.0.113.7:51820"])
        XCTAssertEqual(c.peers[0].preference(of: .udp), 1)
        let udpOnly = try parse(clientText(peer: "transport = udp")).get()
        XCTAssertEqual(udpOnly.peers[0].endpoints(for: .tcp), [], "TCP off")
        XCTAssertNil(udpOnly.peers[0].preference(of: .tcp))
    }

    func testTcpListenOfAGateway() throws {
        let g = try JVPNConfig(parsing: Self.gateway, file: "gw.conf")
        XCTAssertNil(g.interface.tcpListen)
        XCTAssertEqual(g.interface.effectiveTcpListen, [51820], "default: ListenPort's number")
        let two = try JVPNConfig(parsing: Self.gateway.replacing("ListenPort = 51820", with: "ListenPort = 51820\nTcpListen = 51820, 443"), file: "gw.conf")
        XCTAssertEqual(two.interface.effectiveTcpListen, [51820, 443])
        let off = try JVPNConfig(parsing: Self.gateway.replacing("ListenPort = 51820", with: "ListenPort = 51820\nTcpListen = Off"), file: "gw.conf")
        XCTAssertEqual(off.interface.effectiveTcpListen, [])
    }

    func testWorkersAutoOrACount() throws {
        let absent = try parse(clientText()).get()
        XCTAssertNil(absent.interface.workers, "absent = auto")
        XCTAssertNil(try parse(clientText(interface: "workers = Auto")).get().interface.workers)
        XCTAssertEqual(try parse(clientText(interface: "Workers = 3")).get().interface.workers, 3)
        XCTAssertEqual(try JVPNConfig(parsing: Self.gateway.replacing("ListenPort = 51820", with: "ListenPort = 51820\nWorkers = 64"),
                                      file: "gw.conf").interface.workers, 64, "a gateway too; 64 is the largest")
        XCTAssertEqual(try parse(clientText(interface: "Workers = 1")).get().interface.workers, 1)
    }

    func testBadWorkers() {
        for bad in ["0", "65", "x", "2.5", "-1", "auto4"] {
            XCTAssertEqual(errors(clientText(interface: "Workers = \(bad)")), [
                "t.conf:4: invalid Workers '\(bad)': expected 'auto' or an integer in 1...64",
            ])
        }
        XCTAssertEqual(errors(clientText(interface: "Workers = 2\nWorkers = auto")), [
            "t.conf:5: duplicate key 'Workers' in [Interface] (first set at line 4)",
        ])
    }

    func testEffectiveWorkersFromTheCores() throws {
        let auto = try parse(clientText()).get().interface
        // A gateway: one worker per two cores (each worker has two packet threads), at least 1, at
        // most 16. A client: 1 (its session runs on one worker each way).
        let byCores = [0: 1, 1: 1, 2: 1, 3: 1, 4: 2, 8: 4, 31: 15, 32: 16, 64: 16]
        for (cores, want) in byCores {
            XCTAssertEqual(auto.effectiveWorkers(cores: cores, role: .server), want, "\(cores) cores")
            XCTAssertEqual(auto.effectiveWorkers(cores: cores, role: .client), 1, "client, \(cores) cores")
        }
        let three = try parse(clientText(interface: "Workers = 3")).get().interface
        for cores in [1, 2, 8, 64] {
            for role in [JVPNConfig.Role.client, .server] {
                XCTAssertEqual(three.effectiveWorkers(cores: cores, role: role), 3,
                               "an explicit count is taken as written (\(cores) cores, \(role))")
            }
        }
    }

    func testBadTransportKeys() {
        XCTAssertEqual(errors(clientText(peer: "Transport = udp, quic, udp\nTcpEndpoint = host:443, 1.2.3.4:443, 1.2.3.4:443")), [
            "t.conf:9: invalid Transport 'quic': expected udp or tcp (in preference order, e.g. 'udp, tcp')",
            "t.conf:9: duplicate Transport 'udp'",
            "t.conf:10: invalid TcpEndpoint: endpoint 'host:443': host names are not supported, use an IP address literal",
            "t.conf:10: duplicate TcpEndpoint 1.2.3.4:443",
            "t.conf:10: TcpEndpoint is set but Transport (udp) does not include tcp",
        ])
        XCTAssertEqual(errors(clientText(interface: "TcpListen = 443")), [
            "t.conf:4: TcpListen is a gateway key, but this config is a client (its [Peer] has an Endpoint)",
        ])
        let gw = Self.gateway.replacing("ListenPort = 51820", with: "ListenPort = 51820\nTcpListen = 443, 0, off, 443, https\nTcpListen = off")
            .replacing("Name = laptop", with: "Name = laptop\nTransport = tcp\nTcpEndpoint = 1.2.3.4:443")
        XCTAssertEqual(errors(gw, file: "gw.conf"), [
            "gw.conf:5: invalid TcpListen '0': expected TCP ports in 1...65535 or 'off'",
            "gw.conf:5: TcpListen 'off' cannot be combined with ports",
            "gw.conf:5: TcpListen 'off' cannot be combined with ports",
            "gw.conf:5: invalid TcpListen 'https': expected TCP ports in 1...65535 or 'off'",
            "gw.conf:6: duplicate TcpListen 'off' (first at line 5)",
            "gw.conf:13: Transport is for a client's [Peer] (one with an Endpoint); a gateway serves both kinds",
            "gw.conf:14: TcpEndpoint needs an Endpoint in the same [Peer] (it names a gateway's TCP addresses)",
        ])
    }

    func testMTUBelowIPv6Minimum() {
        XCTAssertEqual(errors(clientText(interface: "Address = fd00::2/128\nMTU = 1200")), [
            "t.conf:5: MTU 1200 is below 1280, the IPv6 minimum, and Address has an IPv6 address",
        ])
        XCTAssertNoThrow(try JVPNConfig(parsing: clientText(interface: "MTU = 1200"), file: "t.conf"))
    }

    func testMissingRequiredKeys() {
        let text = """
            [Interface]
            ListenPort = 51820

            [Peer]
            Name = a

            [Peer]
            PublicKey = \(Self.pub1)
            """
        XCTAssertEqual(errors(text), [
            "t.conf:1: missing PrivateKey (or PrivateKeyFile) in [Interface]",
            "t.conf:1: missing Address in [Interface]",
            "t.conf:4: missing PublicKey in [Peer]",
            "t.conf:4: missing AllowedIPs in [Peer]",
            "t.conf:7: missing AllowedIPs in [Peer]",
        ])
    }

    func testNoInterfaceNoPeer() {
        XCTAssertEqual(errors("# empty\n"), [
            "t.conf:1: missing [Interface] section",
            "t.conf:1: no [Peer] section: at least one is required",
        ])
        XCTAssertEqual(errors("\n[Interface]\nPrivateKey = \(Self.priv1)\nAddress = 10.0.0.1/24\nListenPort = 1"), [
            "t.conf:2: no [Peer] section: at least one is required",
        ])
    }

    func testDuplicatePeersAndOverlappingAllowedIPs() {
        let text = """
            [Interface]
            PrivateKey = \(Self.priv1)
            Address = 10.77.0.1/24
            ListenPort = 51820
            [Peer]
            PublicKey = \(Self.pub2)
            AllowedIPs = 10.77.0.2/32, 10.50.0.0/16
            [Peer]
            PublicKey = \(Self.pub2)
            AllowedIPs = 10.77.0.3/32
            [Peer]
            PublicKey = \(Self.pub3)
            AllowedIPs = 10.77.0.9/32
            AllowedIPs = 10.50.1.1/16
            """
        XCTAssertEqual(errors(text), [
            "t.conf:9: duplicate peer: PublicKey already used by the [Peer] at line 5",
            "t.conf:14: AllowedIPs 10.50.0.0/16 is already routed to the [Peer] at line 5",
        ])
    }

    func testRoleRules() {
        // A server whose config has no ListenPort and no Endpoint can do nothing.
        let idle = """
            [Interface]
            PrivateKey = \(Self.priv1)
            Address = 10.77.0.1/24
            [Peer]
            PublicKey = \(Self.pub2)
            AllowedIPs = 10.77.0.2/32
            """
        XCTAssertEqual(errors(idle), [
            "t.conf:1: this config can neither listen nor connect: set ListenPort (server) or an Endpoint in [Peer] (client)",
        ])
        // A client has exactly one [Peer].
        let two = clientText() + "\n[Peer]\nPublicKey = \(Self.pub3)\nAllowedIPs = 10.9.0.0/16\nEndpoint = 192.0.2.9:1"
        XCTAssertEqual(errors(two), [
            "t.conf:12: a client has exactly one [Peer]: the [Peer] at line 5 has an Endpoint, but there are 2 [Peer] sections (a server's peers have no Endpoint)",
        ])
    }

    func testNameDerivation() {
        XCTAssertEqual(errors(clientText(), file: "/etc/jvpn/client"), [
            "/etc/jvpn/client:1: cannot derive the interface name from '/etc/jvpn/client' (expected NAME.conf); set Name = in [Interface]",
        ])
        XCTAssertEqual(errors(clientText(), file: "a-very-long-interface.conf"), [
            "a-very-long-interface.conf:1: interface name 'a-very-long-interface' derived from the file name is invalid (1..15 characters from A-Z a-z 0-9 _ . -); set Name = in [Interface]",
        ])
        XCTAssertEqual(errors(clientText(interface: "Uplinks = eth0, t"), file: "t.conf"), [
            "t.conf:4: Uplinks must not contain the tunnel interface 't' itself",
        ])
        XCTAssertTrue(InterfaceName.isValid("jvpn0"))
        XCTAssertTrue(InterfaceName.isValid("a.b_c-d"))
        XCTAssertTrue(InterfaceName.isValid("123456789012345"))
        for bad in ["", ".", "..", "1234567890123456", "a b", "a/b", "a:b", "é"] {
            XCTAssertFalse(InterfaceName.isValid(bad), bad)
        }
    }

    func testPolicyCrossCheck() {
        XCTAssertEqual(errors(clientText(policy: "ProbeIntervalMs = 500\nDeadAfterMs = 500")), [
            "t.conf:12: DeadAfterMs (500) must be greater than ProbeIntervalMs (500)",
        ])
        XCTAssertEqual(errors(clientText(policy: "ProbeIntervalMs = 2000")), [
            "t.conf:11: DeadAfterMs (1000) must be greater than ProbeIntervalMs (2000)",
        ])
    }

    func testEveryPolicyKeyAccepted() throws {
        let body = """
            ProbeIntervalMs = 150
            StandbyProbeIntervalMs = 900
            DeadAfterMs = 800
            LossVolatilePct = 7
            RttVolatileMs = 250
            JitterVolatileMs = 40.5
            StableWindowMs = 2000
            MaxRecoveryWindowMs = 4000
            TransportLossTtlMs = 20000
            SessionTtlMs = 3600000
            MaxSwitchesPerMinute = 6
            SwitchCooldownMs = 500
            PreemptToPreferred = false
            RestartOnTerminate = yes
            """
        let p = try parse(clientText(policy: body)).get().policy
        XCTAssertEqual(p.probeIntervalMs, 150)
        XCTAssertEqual(p.standbyProbeIntervalMs, 900)
        XCTAssertEqual(p.deadAfterMs, 800)
        XCTAssertEqual(p.lossVolatilePct, 7)
        XCTAssertEqual(p.rttVolatileMs, 250)
        XCTAssertEqual(p.jitterVolatileMs, 40.5)
        XCTAssertEqual(p.stableWindowMs, 2000)
        XCTAssertEqual(p.maxRecoveryWindowMs, 4000)
        XCTAssertEqual(p.transportLossTtlMs, 20000)
        XCTAssertEqual(p.sessionTtlMs, 3_600_000)
        XCTAssertEqual(p.maxSwitchesPerMinute, 6)
        XCTAssertEqual(p.switchCooldownMs, 500)
        XCTAssertFalse(p.preemptToPreferred)
        XCTAssertTrue(p.restartOnTerminate)
        XCTAssertEqual(ConfigParser.policyKeyNames.count, 14)
    }

    func testEmptyValueAndMultipleErrorsInOrder() {
        let text = """
            [Interface]
            PrivateKey =
            Address = 10.0.0.2/32
            MTU = big
            [Peer]
            PublicKey = \(Self.pub2)
            Endpoint = 192.0.2.1:5
            AllowedIPs = 10.0.0.0/24,
            Oops
            """
        let r = parse(text, file: "multi.conf")
        guard case .failure(let e) = r else { return XCTFail("should fail") }
        XCTAssertEqual(e.description, """
            multi.conf:2: empty value for 'PrivateKey'
            multi.conf:4: invalid MTU 'big': expected an integer in 576...9000
            multi.conf:8: empty item in the 'AllowedIPs' list
            multi.conf:9: expected 'Key = Value', missing '=' in 'Oops'
            """)
        XCTAssertEqual(e.diagnostics[0], ConfigDiagnostic(file: "multi.conf", line: 2, message: "empty value for 'PrivateKey'"))
        XCTAssertThrowsError(try JVPNConfig(parsing: text, file: "multi.conf")) { err in
            XCTAssertEqual((err as? ConfigErrors)?.diagnostics.count, 4)
        }
    }

    func testDecodeKey() {
        XCTAssertEqual(JVPNConfig.decodeKey(Self.pub1)?.count, 32)
        XCTAssertNil(JVPNConfig.decodeKey(String(Self.pub1.dropLast())))
        XCTAssertNil(JVPNConfig.decodeKey("AAAA"))
        XCTAssertNil(JVPNConfig.decodeKey("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="))  // 31 bytes
        XCTAssertNil(JVPNConfig.decodeKey("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA!="))
        XCTAssertEqual(Base64.decode("TWFu"), Array("Man".utf8))
        XCTAssertEqual(Base64.decode("TWE="), Array("Ma".utf8))
        XCTAssertEqual(Base64.decode("TQ=="), Array("M".utf8))
        XCTAssertNil(Base64.decode("T==="))
        XCTAssertNil(Base64.decode("TQ=A"))
        XCTAssertNil(Base64.decode("TQ==TWFu"))
    }
}

final class ConfigDocExampleTests: XCTestCase {
    /// The examples in docs/CONFIG.md must stay valid.
    func testDocExamplesParse() throws {
        let client = """
            [Interface]
            PrivateKeyFile = /etc/jvpn/jvpn0.key
            Address = 10.77.0.2/32, fd77::2/128
            Uplinks = wlan0, wwan0

            [Peer]
            PublicKey = SXFFOJEIAsJebGDywsTxOGMX3Urlo+dVxAYo0sdONik=
            Endpoint = 203.0.113.7:51820, [2001:db8::7]:51820
            TcpEndpoint = 203.0.113.7:443
            AllowedIPs = 0.0.0.0/0, ::/0

            [Policy]
            ProbeIntervalMs = 100
            DeadAfterMs = 600
            """
        let c = try JVPNConfig(parsing: client, file: "/etc/jvpn/jvpn0.conf")
        XCTAssertEqual(c.role, .client)
        XCTAssertTrue(c.isFullTunnel)
        XCTAssertEqual(c.peers[0].endpoints(for: .tcp).map(\.description), ["203.0.113.7:443"])
        let gateway = """
            [Interface]
            PrivateKeyFile = /etc/jvpn/gw0.key
            Address = 10.77.0.1/24, fd77::1/64
            ListenPort = 51820
            TcpListen = 51820, 443

            [Peer]
            Name = laptop
            PublicKey = de9NlGy3twRo0mq8LZVY+eGJuzZknn8VltlPjzHhhXc=
            AllowedIPs = 10.77.0.2/32, fd77::2/128
            """
        let g = try JVPNConfig(parsing: gateway, file: "/etc/jvpn/gw0.conf")
        XCTAssertEqual(g.role, .server)
        XCTAssertEqual(g.interface.name, "gw0")
        XCTAssertEqual(g.interface.effectiveTcpListen, [51820, 443])
    }
}
