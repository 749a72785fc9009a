import Glibc
import XCTest
import JVPNSystem

final class UDPSocketTests: XCTestCase {
    /// Every transport socket sets DF without the kernel's PMTU cache in the way (IP_PMTUDISC_PROBE
    /// = 3), at the IPv4 level and, on a dual-stack socket, the IPv6 level.
    func testTransportSocketsSetDontFragment() throws {
        let dual = try UDPSocket()
        XCTAssertEqual(dual.pathMtuDiscoveryModes.ipv4, 3)
        XCTAssertEqual(dual.pathMtuDiscoveryModes.ipv6, 3)
        let v4 = try UDPSocket(family: AF_INET)
        XCTAssertEqual(v4.pathMtuDiscoveryModes.ipv4, 3)
        XCTAssertNil(v4.pathMtuDiscoveryModes.ipv6)
    }
}
