import Foundation
import JVPNSystem
import XCTest

#if canImport(Glibc)
import Glibc
#endif

/// A network namespace for one test, with a veth pair d0/d1 (the kernel here has no dummy
/// driver). Netlink calls run on a dedicated thread that has entered the namespace: setns
/// changes only the calling thread, and sockets keep the namespace they were opened in.
final class NetlinkNamespace {
    let name: String

    init() throws {
        name = "jvpnt-\(getpid())-\(UInt32.random(in: 0..<UInt32.max) % 1_000_000)"
        try NetlinkNamespace.ip(["netns", "add", name])
        do {
            try ip(["link", "add", "d0", "type", "veth", "peer", "name", "d1"])
        } catch {
            destroy()
            throw error
        }
    }

    func destroy() {
        _ = try? NetlinkNamespace.ip(["netns", "del", name])
    }

    @discardableResult
    static func ip(_ args: [String]) throws -> Data {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        if !FileManager.default.fileExists(atPath: "/usr/sbin/ip") {
            p.executableURL = URL(fileURLWithPath: "/sbin/ip")
        }
        p.arguments = args
        let out = Pipe()
        let err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw NSError(domain: "ip", code: Int(p.terminationStatus), userInfo: [
                NSLocalizedDescriptionKey: "ip \(args.joined(separator: " ")): "
                    + String(decoding: errData, as: UTF8.self)])
        }
        return data
    }

    @discardableResult
    func ip(_ args: [String]) throws -> Data { try NetlinkNamespace.ip(["-n", name] + args) }

    /// `ip -n NS -j ARGS` parsed as an array of objects.
    func json(_ args: [String]) throws -> [[String: Any]] {
        let data = try ip(["-j"] + args)
        if data.isEmpty { return [] }
        let obj = try JSONSerialization.jsonObject(with: data)
        return (obj as? [[String: Any]]) ?? []
    }

    /// Runs `body` on a fresh thread inside the namespace, waiting at most `timeout` seconds.
    func run<T>(timeout: TimeInterval = 30, _ body: @escaping () throws -> T) throws -> T {
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        let path = "/run/netns/\(name)"
        let thread = Thread {
            defer { done.signal() }
            let fd = open(path, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else {
                box.result = .failure(NSError(domain: "setns", code: Int(errno)))
                return
            }
            defer { close(fd) }
            guard let setns = netlinkTestSetns, setns(fd, 0x4000_0000 /* CLONE_NEWNET */) == 0 else {
                box.result = .failure(NSError(domain: "setns", code: Int(errno)))
                return
            }
            box.result = Result { try body() }
        }
        thread.start()
        guard done.wait(timeout: .now() + timeout) == .success else {
            throw NSError(domain: "netns-thread", code: Int(ETIMEDOUT))
        }
        guard let result = box.result else { throw NSError(domain: "netns-thread", code: Int(EIO)) }
        return try result.get()
    }
}

private final class ResultBox<T>: @unchecked Sendable {
    var result: Result<T, Error>?
}

// Glibc's Swift overlay does not export setns(2); look it up at run time.
private let netlinkTestSetns: (@convention(c) (Int32, Int32) -> Int32)? = {
    guard let me = dlopen(nil, RTLD_NOW), let sym = dlsym(me, "setns") else { return nil }
    return unsafeBitCast(sym, to: (@convention(c) (Int32, Int32) -> Int32).self)
}()

/// Pure value tests: no root needed.
final class NetlinkAddressTests: XCTestCase {
    func testAddressParsingAndFormatting() throws {
        let v4 = try XCTUnwrap(NetlinkAddress("10.1.2.3"))
        XCTAssertEqual(v4.family, AF_INET)
        XCTAssertEqual(v4.bytes, [10, 1, 2, 3])
        XCTAssertEqual(v4.description, "10.1.2.3")
        let v6 = try XCTUnwrap(NetlinkAddress("fd00::1"))
        XCTAssertEqual(v6.family, AF_INET6)
        XCTAssertEqual(v6.bytes.count, 16)
        XCTAssertEqual(v6.description, "fd00::1")
        XCTAssertNil(NetlinkAddress("10.1.2"))
        XCTAssertNil(NetlinkAddress(family: AF_INET, bytes: [1, 2, 3]))
        XCTAssertNil(NetlinkAddress(family: AF_INET6, bytes: [1, 2, 3, 4]))
    }
}

final class NetlinkTests: XCTestCase {
    private var ns: NetlinkNamespace!

    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("needs root for network namespaces") }
        let created = try NetlinkNamespace()
        ns = created
        addTeardownBlock { created.destroy() }
    }

    private func linkFlags(_ dev: String) throws -> [String] {
        try ns.json(["link", "show", dev]).first?["flags"] as? [String] ?? []
    }

    func testLinkUpDownMTUAndIndex() throws {
        let ns = self.ns!
        let (index, upSeen, mtuSeen) = try ns.run { () throws -> (Int32, Bool, UInt32) in
            let nl = try NetlinkControl()
            let index = try nl.interfaceIndex("d0")
            try nl.setLinkUp(name: "d0")
            try nl.setLinkUp(name: "d1")
            try nl.setMTU(name: "d0", 1280)
            let link = try nl.link(index: index)
            return (index, link.isUp, link.mtu)
        }
        XCTAssertGreaterThan(index, 0)
        XCTAssertTrue(upSeen)
        XCTAssertEqual(mtuSeen, 1280)
        let shown = try XCTUnwrap(ns.json(["link", "show", "d0"]).first)
        XCTAssertEqual(shown["ifindex"] as? Int, Int(index))
        XCTAssertEqual(shown["mtu"] as? Int, 1280)
        XCTAssertTrue(try linkFlags("d0").contains("UP"))

        let afterUp = try ns.run { try NetlinkControl().linkIsUp(name: "d0") }
        XCTAssertTrue(afterUp)

        try ns.run { try NetlinkControl().setLinkDown(name: "d0") }
        XCTAssertFalse(try linkFlags("d0").contains("UP"))
        let afterDown = try ns.run { try NetlinkControl().linkIsUp(name: "d0") }
        XCTAssertFalse(afterDown)

        let links = try ns.run { try NetlinkControl().links() }
        XCTAssertEqual(Set(links.map(\.name)).intersection(["lo", "d0", "d1"]), ["lo", "d0", "d1"])

        let missing = try ns.run { () -> NetlinkError? in
            do { _ = try NetlinkControl().interfaceIndex("nope0"); return nil } catch let e as NetlinkError { return e }
        }
        XCTAssertEqual(missing?.operation, .linkIndex)
        XCTAssertEqual(missing?.isNotFound, true)
        let tooLong = try ns.run { () -> NetlinkError? in
            do { _ = try NetlinkControl().interfaceIndex("abcdefghijklmnopq"); return nil } catch let e as NetlinkError { return e }
        }
        XCTAssertEqual(tooLong?.errno, EINVAL)
    }

    func testAddressAddDumpRemove() throws {
        let ns = self.ns!
        let v4 = try XCTUnwrap(NetlinkAddress("10.99.0.1"))
        let v6 = try XCTUnwrap(NetlinkAddress("fd00:99::1"))
        let (dumped, duplicate) = try ns.run { () throws -> ([NetlinkAddressEntry], NetlinkError?) in
            let nl = try NetlinkControl()
            try nl.setLinkUp(name: "d0")
            try nl.addAddress(v4, prefix: 24, interface: "d0")
            try nl.addAddress(v6, prefix: 64, interface: "d0")
            var dup: NetlinkError?
            do { try nl.addAddress(v4, prefix: 24, interface: "d0") } catch let e as NetlinkError { dup = e }
            return (try nl.addresses(ofIndex: try nl.interfaceIndex("d0")), dup)
        }
        XCTAssertEqual(duplicate?.isAlreadyExists, true)
        XCTAssertTrue(dumped.contains { $0.address == v4 && $0.prefix == 24 })
        let v6Entry = try XCTUnwrap(dumped.first { $0.address == v6 })
        XCTAssertEqual(v6Entry.prefix, 64)
        XCTAssertFalse(v6Entry.isTentative, "NODAD: usable at once")

        var infos = try ns.json(["addr", "show", "dev", "d0"]).first?["addr_info"] as? [[String: Any]] ?? []
        XCTAssertTrue(infos.contains { $0["local"] as? String == "10.99.0.1" && $0["prefixlen"] as? Int == 24 })
        XCTAssertTrue(infos.contains { $0["local"] as? String == "fd00:99::1" && $0["prefixlen"] as? Int == 64 })

        let v4Only = try ns.run { try NetlinkControl().addresses(ofIndex: 0, family: AF_INET) }
        XCTAssertTrue(v4Only.allSatisfy { $0.address.family == AF_INET })
        XCTAssertTrue(v4Only.contains { $0.address == v4 })

        try ns.run {
            let nl = try NetlinkControl()
            try nl.removeAddress(v4, prefix: 24, interface: "d0")
            try nl.removeAddress(v6, prefix: 64, interface: "d0")
        }
        infos = try ns.json(["addr", "show", "dev", "d0"]).first?["addr_info"] as? [[String: Any]] ?? []
        XCTAssertFalse(infos.contains { $0["local"] as? String == "10.99.0.1" })
        XCTAssertFalse(infos.contains { $0["local"] as? String == "fd00:99::1" })

        let again = try ns.run { () -> NetlinkError? in
            do { try NetlinkControl().removeAddress(v4, prefix: 24, interface: "d0"); return nil }
            catch let e as NetlinkError { return e }
        }
        XCTAssertEqual(again?.isNotFound, true)
    }

    func testRouteAddDumpRemoveInCustomTables() throws {
        let ns = self.ns!
        let table: UInt32 = 51820
        let bigTable: UInt32 = 1_000_000  // > 255: only expressible via RTA_TABLE
        let gw = try XCTUnwrap(NetlinkAddress("10.99.0.254"))
        let v4Route = NetlinkRoute(destination: try XCTUnwrap(NetlinkAddress("10.100.0.0")), prefix: 16,
                                   gateway: gw, table: table, metric: 5)
        let v6Dst = try XCTUnwrap(NetlinkAddress("fd00:100::"))
        let v4Default = try XCTUnwrap(NetlinkAddress.any(family: AF_INET))

        let (dumped, defaultRoute) = try ns.run { () throws -> ([NetlinkRoute], NetlinkRoute?) in
            let nl = try NetlinkControl()
            try nl.setLinkUp(name: "d0")
            try nl.setLinkUp(name: "d1")
            let d0 = try nl.interfaceIndex("d0")
            try nl.addAddress(try XCTUnwrap(NetlinkAddress("10.99.0.1")), prefix: 24, index: d0)
            try nl.addAddress(try XCTUnwrap(NetlinkAddress("fd00:99::1")), prefix: 64, index: d0)
            var r4 = v4Route
            r4.oif = d0
            try nl.addRoute(r4)
            try nl.addRoute(NetlinkRoute(destination: v6Dst, prefix: 48, oif: d0, table: table))
            try nl.addRoute(NetlinkRoute(destination: v4Default, prefix: 0, oif: d0, table: bigTable))
            try nl.addRoute(NetlinkRoute(destination: v4Default, prefix: 0, gateway: gw, oif: d0, metric: 10))
            // The same route again must be refused unless replacing.
            XCTAssertThrowsError(try nl.addRoute(r4)) { XCTAssertEqual(($0 as? NetlinkError)?.isAlreadyExists, true) }
            try nl.addRoute(r4, replace: true)
            return (try nl.routes(family: AF_INET, table: table), try nl.defaultRoute(family: AF_INET, oif: d0))
        }
        XCTAssertEqual(dumped.count, 1)
        XCTAssertEqual(dumped.first?.destination.description, "10.100.0.0")
        XCTAssertEqual(dumped.first?.prefix, 16)
        XCTAssertEqual(dumped.first?.gateway, gw)
        XCTAssertEqual(dumped.first?.metric, 5)
        XCTAssertEqual(dumped.first?.table, table)
        XCTAssertEqual(defaultRoute?.gateway, gw)
        XCTAssertEqual(defaultRoute?.table, NetlinkControl.mainTable)

        let shown4 = try ns.json(["route", "show", "table", "\(table)"])
        XCTAssertTrue(shown4.contains {
            $0["dst"] as? String == "10.100.0.0/16" && $0["gateway"] as? String == "10.99.0.254"
                && $0["dev"] as? String == "d0" && $0["metric"] as? Int == 5
        }, "\(shown4)")
        let shown6 = try ns.json(["-6", "route", "show", "table", "\(table)"])
        XCTAssertTrue(shown6.contains { $0["dst"] as? String == "fd00:100::/48" && $0["dev"] as? String == "d0" }, "\(shown6)")
        let shownBig = try ns.json(["route", "show", "table", "\(bigTable)"])
        XCTAssertTrue(shownBig.contains { $0["dst"] as? String == "default" && $0["dev"] as? String == "d0" }, "\(shownBig)")

        try ns.run {
            let nl = try NetlinkControl()
            let d0 = try nl.interfaceIndex("d0")
            try nl.removeRoute(v4Route)
            try nl.removeRoute(NetlinkRoute(destination: v6Dst, prefix: 48, oif: d0, table: table))
            try nl.removeRoute(NetlinkRoute(destination: v4Default, prefix: 0, table: bigTable))
            XCTAssertThrowsError(try nl.removeRoute(v4Route)) { XCTAssertEqual(($0 as? NetlinkError)?.isNotFound, true) }
        }
        XCTAssertTrue(try ns.json(["route", "show", "table", "\(table)"]).isEmpty)
        XCTAssertTrue(try ns.json(["-6", "route", "show", "table", "\(table)"]).isEmpty)
        XCTAssertTrue(try ns.json(["route", "show", "table", "\(bigTable)"]).isEmpty)
    }

    func testRulesLikeWgQuickBothFamilies() throws {
        let ns = self.ns!
        let mark: UInt32 = 51820
        func pair(_ family: Int32) -> [NetlinkRule] {
            [NetlinkRule(family: family, table: mark, priority: 100, fwmark: mark, invert: true),
             NetlinkRule(family: family, table: NetlinkControl.mainTable, priority: 101, suppressPrefixLength: 0)]
        }
        let dumped = try ns.run { () throws -> [NetlinkRule] in
            let nl = try NetlinkControl()
            for family in [AF_INET, AF_INET6] {
                for rule in pair(family) { try nl.addRule(rule) }
            }
            XCTAssertThrowsError(try nl.addRule(pair(AF_INET)[0])) {
                XCTAssertEqual(($0 as? NetlinkError)?.isAlreadyExists, true)
            }
            return try nl.rules(family: AF_INET)
        }
        let notRule = try XCTUnwrap(dumped.first { $0.priority == 100 })
        XCTAssertEqual(notRule.fwmark, mark)
        XCTAssertEqual(notRule.fwmask, 0xffff_ffff)
        XCTAssertTrue(notRule.invert)
        XCTAssertEqual(notRule.table, mark)
        let suppress = try XCTUnwrap(dumped.first { $0.priority == 101 })
        XCTAssertEqual(suppress.suppressPrefixLength, 0)
        XCTAssertEqual(suppress.table, NetlinkControl.mainTable)
        XCTAssertFalse(suppress.invert)

        for familyFlag in ["-4", "-6"] {
            let shown = try ns.json([familyFlag, "rule", "show"])
            XCTAssertTrue(shown.contains {
                $0["priority"] as? Int == 100 && $0.keys.contains("not") && $0["fwmark"] as? String == "0xca6c"
                    && $0["table"] as? String == "51820"
            }, "\(familyFlag) \(shown)")
            XCTAssertTrue(shown.contains {
                $0["priority"] as? Int == 101 && $0["table"] as? String == "main" && $0["suppress_prefixlen"] as? Int == 0
            }, "\(familyFlag) \(shown)")
        }

        try ns.run {
            let nl = try NetlinkControl()
            for family in [AF_INET, AF_INET6] {
                for rule in pair(family) { try nl.removeRule(rule) }
            }
            XCTAssertThrowsError(try nl.removeRule(pair(AF_INET)[1])) {
                XCTAssertEqual(($0 as? NetlinkError)?.isNotFound, true)
            }
        }
        for familyFlag in ["-4", "-6"] {
            let shown = try ns.json([familyFlag, "rule", "show"])
            XCTAssertFalse(shown.contains { [100, 101].contains($0["priority"] as? Int ?? -1) }, "\(shown)")
        }
    }

    func testMonitorSeesLinkDownUpAndAddressRemoval() throws {
        let ns = self.ns!
        let addr = try XCTUnwrap(NetlinkAddress("10.98.0.1"))
        let events = try ns.run(timeout: 60) { () throws -> [NetlinkEvent] in
            let nl = try NetlinkControl()
            try nl.setLinkUp(name: "d1")
            try nl.setLinkUp(name: "d0")
            let d0 = try nl.interfaceIndex("d0")
            try nl.addAddress(addr, prefix: 24, index: d0)
            let mon = try NetlinkMonitor()
            XCTAssertGreaterThanOrEqual(mon.fileDescriptor, 0)
            var seen: [NetlinkEvent] = []

            // Waits (bounded) until an event matching `want` arrives.
            func expectEvent(_ what: String, _ want: (NetlinkEvent) -> Bool) throws {
                let deadline = Date().addingTimeInterval(5)
                while Date() < deadline {
                    if seen.contains(where: want) { return }
                    _ = try mon.wait(timeoutMs: 200)
                    try mon.drain { seen.append($0) }
                }
                XCTFail("no \(what) within 5 s; saw \(seen)")
            }

            try NetlinkNamespace.ip(["-n", ns.name, "link", "set", "d0", "down"])
            try expectEvent("link down") {
                if case .linkChanged(d0, "d0", false, _, _) = $0 { return true }
                return false
            }
            try nl.setLinkUp(index: d0)
            try expectEvent("link up") {
                if case .linkChanged(d0, "d0", true, _, _) = $0 { return true }
                return false
            }
            try NetlinkNamespace.ip(["-n", ns.name, "addr", "del", "10.98.0.1/24", "dev", "d0"])
            try expectEvent("address removal") { $0 == .addressRemoved(index: d0, address: addr, prefix: 24) }
            try expectEvent("connected route removal") {
                if case .routeRemoved(NetlinkControl.mainTable, let dst, 24, d0, nil) = $0 {
                    return dst.description == "10.98.0.0"
                }
                return false
            }
            try nl.addAddress(addr, prefix: 24, index: d0)
            try expectEvent("address added") { $0 == .addressAdded(index: d0, address: addr, prefix: 24) }
            // Nothing pending: drain must return at once without blocking.
            try mon.drain { seen.append($0) }
            try mon.drain { _ in }
            return seen
        }
        XCTAssertFalse(events.isEmpty)
    }
}
