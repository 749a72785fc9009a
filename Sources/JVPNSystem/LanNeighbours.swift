import CMnl
import CUDP
import Glibc
import JVPNCore

/// A clustered gateway's presence on its LAN for the client addresses it serves: proxy neighbour
/// entries (the kernel answers ARP/NDP for them with the LAN interface's address) and, when it takes
/// them over, a gratuitous ARP / unsolicited neighbour advertisement so that every host on the link
/// sends to it at once. Only host prefixes (/32, /128) are announced: a wider AllowedIPs is routed,
/// not answered for.
public final class LanNeighbours: @unchecked Sendable {
    public let interface: String
    public let index: Int32
    private let netlink: NetlinkControl

    /// Resolves the interface and tunes its neighbour handling where the daemon may (not under
    /// systemd's ProtectKernelTunables: docs/OPERATIONS.md sets them in sysctl.d): proxy answers at
    /// once (the kernel delays them up to 0.8 s by default), NDP proxying on for IPv6. Returns the
    /// settings it could not write.
    public init(interface: String, netlink: NetlinkControl) throws {
        self.interface = interface
        self.netlink = netlink
        index = try netlink.interfaceIndex(interface)
        for (path, value) in LanNeighbours.tunables(interface) {
            do { try FileIO.writeText(path, value) } catch { unsetTunables.append(path) }
        }
    }

    /// Settings that could not be written (the operator sets them).
    public private(set) var unsetTunables: [String] = []

    static func tunables(_ i: String) -> [(String, String)] {
        [("/proc/sys/net/ipv4/neigh/\(i)/proxy_delay", "0\n"), ("/proc/sys/net/ipv6/neigh/\(i)/proxy_delay", "0\n"),
         ("/proc/sys/net/ipv6/conf/\(i)/proxy_ndp", "1\n")]
    }

    /// The host addresses of `prefixes` (the others are left to routing).
    public static func hosts(_ prefixes: [IPPrefix]) -> [IPAddress] {
        prefixes.filter { $0.length == ($0.family == .v4 ? 32 : 128) }.map(\.address)
    }

    /// Answers for `addresses` from now on and tells the link. Returns the failures (address, why).
    @discardableResult
    public func announce(_ addresses: [IPAddress]) -> [(IPAddress, String)] {
        var failures: [(IPAddress, String)] = []
        for a in addresses {
            let bytes = a.bytes
            let family = a.family == .v4 ? AF_INET : AF_INET6
            do {
                try netlink.addProxyNeighbour(family: family, bytes: bytes, index: index)
            } catch {
                failures.append((a, "\(error)"))
                continue
            }
            let rc = bytes.withUnsafeBufferPointer { b in
                a.family == .v4 ? cannounce_garp(index, b.baseAddress) : cannounce_unsolicited_na(index, b.baseAddress)
            }
            if rc < 0 { failures.append((a, "announcement: \(String(cString: strerror(-rc)))")) }
        }
        return failures
    }

    /// Stops answering for `addresses`.
    @discardableResult
    public func withdraw(_ addresses: [IPAddress]) -> [(IPAddress, String)] {
        var failures: [(IPAddress, String)] = []
        for a in addresses {
            do {
                try netlink.removeProxyNeighbour(family: a.family == .v4 ? AF_INET : AF_INET6, bytes: a.bytes, index: index)
            } catch let e as NetlinkError where e.isNotFound {
                continue
            } catch {
                failures.append((a, "\(error)"))
            }
        }
        return failures
    }
}

extension NetlinkControl {
    public func addProxyNeighbour(family: Int32, bytes: [UInt8], index: Int32) throws {
        _ = try call(.addProxyNeighbour) { h in bytes.withUnsafeBufferPointer { cmnl_proxy_neigh_add(h, index, family, $0.baseAddress) } }
    }

    public func removeProxyNeighbour(family: Int32, bytes: [UInt8], index: Int32) throws {
        _ = try call(.removeProxyNeighbour) { h in bytes.withUnsafeBufferPointer { cmnl_proxy_neigh_del(h, index, family, $0.baseAddress) } }
    }
}
