import XCTest
@testable import JVPNCore

final class AllowedIPsTests: XCTestCase {
    private func ip(_ s: String) -> IPAddress { IPAddress(s)! }
    private func pfx(_ s: String) -> IPPrefix { IPPrefix(s)! }

    func testLongestPrefixMatchV4() {
        var t = AllowedIPsTable<String>()
        XCTAssertNil(t.lookup(ip("1.2.3.4")))
        t.insert(pfx("0.0.0.0/0"), value: "default")
        t.insert(pfx("10.0.0.0/8"), value: "ten")
        t.insert(pfx("10.77.0.0/24"), value: "lan")
        t.insert(pfx("10.77.0.5/32"), value: "host")
        XCTAssertEqual(t.lookup(ip("10.77.0.5")), "host")
        XCTAssertEqual(t.lookup(ip("10.77.0.6")), "lan")
        XCTAssertEqual(t.lookup(ip("10.1.2.3")), "ten")
        XCTAssertEqual(t.lookup(ip("192.168.1.1")), "default")
        XCTAssertNil(t.lookup(ip("::1")), "v4 default route must not match IPv6")
        XCTAssertEqual(t.count, 4)

        // Host bits in the inserted prefix are ignored.
        XCTAssertEqual(t.insert(pfx("10.77.0.99/24"), value: "lan2"), "lan")
        XCTAssertEqual(t.lookup(ip("10.77.0.6")), "lan2")
        XCTAssertEqual(t.exact(pfx("10.77.0.0/24")), "lan2")

        XCTAssertEqual(t.remove(pfx("10.77.0.5/32")), "host")
        XCTAssertEqual(t.lookup(ip("10.77.0.5")), "lan2")
        XCTAssertEqual(t.remove(pfx("0.0.0.0/0")), "default")
        XCTAssertNil(t.lookup(ip("192.168.1.1")))
        XCTAssertNil(t.remove(pfx("0.0.0.0/0")))
    }

    func testLongestPrefixMatchV6() {
        var t = AllowedIPsTable<Int>()
        t.insert(pfx("::/0"), value: 0)
        t.insert(pfx("2001:db8::/32"), value: 32)
        t.insert(pfx("2001:db8:0:1::/64"), value: 64)
        t.insert(pfx("2001:db8:0:1:8000::/65"), value: 65)
        t.insert(pfx("2001:db8:0:1::7/128"), value: 128)
        XCTAssertEqual(t.lookup(ip("2001:db8:0:1::7")), 128)
        XCTAssertEqual(t.lookup(ip("2001:db8:0:1::8")), 64)
        XCTAssertEqual(t.lookup(ip("2001:db8:0:1:8000::8")), 65)
        XCTAssertEqual(t.lookup(ip("2001:db8:ffff::1")), 32)
        XCTAssertEqual(t.lookup(ip("fd00::1")), 0)
        XCTAssertNil(t.lookup(ip("10.0.0.1")))
        XCTAssertEqual(t.entries.count, 5)
        XCTAssertEqual(t.entries.first?.prefix.length, 128)
    }

    func testRemoveAllWhere() {
        var t = AllowedIPsTable<String>()
        t.insert(pfx("10.0.0.1/32"), value: "a")
        t.insert(pfx("10.0.0.2/32"), value: "b")
        t.insert(pfx("fd00::1/128"), value: "a")
        t.insert(pfx("10.0.0.0/24"), value: "b")
        t.removeAll { $0 == "a" }
        XCTAssertEqual(t.count, 2)
        XCTAssertEqual(t.lookup(ip("10.0.0.1")), "b")
        XCTAssertNil(t.lookup(ip("fd00::1")))
        t.removeAll { _ in true }
        XCTAssertTrue(t.isEmpty)
    }

    func testPacketLookup() {
        var t = AllowedIPsTable<String>()
        t.insert(pfx("10.77.0.2/32"), value: "client2")
        t.insert(pfx("fd77::2/128"), value: "client2v6")
        let v4 = PacketFixtures.ipv4(src: [10, 77, 0, 1], dst: [10, 77, 0, 2])
        v4.withUnsafeBytes { b in
            XCTAssertEqual(t.lookupDestination(packet: b.baseAddress!, length: b.count), "client2")
            XCTAssertNil(t.lookupSource(packet: b.baseAddress!, length: b.count))
            XCTAssertNil(t.lookupDestination(packet: b.baseAddress!, length: 19))
        }
        let v6 = PacketFixtures.ipv6(src: ip("fd77::2").bytes, dst: ip("fd77::1").bytes)
        v6.withUnsafeBytes { b in
            XCTAssertEqual(t.lookupSource(packet: b.baseAddress!, length: b.count), "client2v6")
            XCTAssertNil(t.lookupDestination(packet: b.baseAddress!, length: b.count))
        }
    }

    /// Brute-force cross-check against a linear scan over random prefixes.
    func testMatchesLinearScan() {
        var rng = SystemRandomNumberGenerator()
        var t = AllowedIPsTable<Int>()
        var list: [(IPPrefix, Int)] = []
        for i in 0..<300 {
            let len = Int.random(in: 0...32, using: &rng)
            let p = IPPrefix(address: .v4(UInt32.random(in: 0...0x0fff_ffff, using: &rng) | 0x0a00_0000), length: len)!.network
            if t.exact(p) != nil { continue }
            t.insert(p, value: i)
            list.append((p, i))
        }
        for _ in 0..<2000 {
            let a = IPAddress.v4(UInt32.random(in: 0...0x0fff_ffff, using: &rng) | 0x0a00_0000)
            let want = list.filter { $0.0.contains(a) }.max { $0.0.length < $1.0.length }?.1
            XCTAssertEqual(t.lookup(a), want)
        }
    }

    /// A reload patches the published table (routes of removed and changed peers out, routes of
    /// changed and added peers in); the result must be the table built afresh from the new peer
    /// set, for any mix of removals, changes (prefixes moving between peers) and additions.
    func testARerouteGivesTheTableOfTheNewPeerSet() {
        var rng = SeededRandom(seed: 11)
        func randomPrefix() -> IPPrefix {
            switch rng.next() % 4 {
            case 0: return IPPrefix(host: .v4(0x0A00_0000 | UInt32(rng.next() % 4096)))
            case 1: return IPPrefix(address: .v4(0x0A00_0000 | UInt32(rng.next() % 4096) << 8), length: 24)!.network
            case 2: return IPPrefix(host: .v6(0xFD00_0000_0000_0000, rng.next() % 4096))
            default: return IPPrefix(address: .v6(0xFD00_0000_0000_0000 | rng.next() % 4096 << 16, 0), length: 64)!.network
            }
        }
        func build(_ peers: [[IPPrefix]?]) -> AllowedIPsTable<Int> {
            var t = AllowedIPsTable<Int>()
            for (i, ps) in peers.enumerated() { for p in ps ?? [] { t.insert(p, value: i) } }
            return t
        }
        for round in 0..<200 {
            // Peer i routes peers[i]; nil = removed. No prefix belongs to two peers (as the parser
            // enforces).
            var taken = Set<IPPrefix>()
            // Prefixes given up in this reload: half of the new ones are taken from them (a prefix
            // moving to another peer).
            var freed: [IPPrefix] = []
            func fresh(_ n: Int) -> [IPPrefix] {
                (0..<n).compactMap { _ in
                    let p = !freed.isEmpty && rng.next() % 2 == 0 ? freed.removeLast() : randomPrefix()
                    return taken.insert(p).inserted ? p : nil
                }
            }
            var peers: [[IPPrefix]?] = (0..<Int(rng.next() % 40)).map { _ in fresh(1 + Int(rng.next() % 3)) }
            var table = build(peers)
            let before = table
            let beforeEntries = Dictionary(uniqueKeysWithValues: before.entries.map { ($0.prefix, $0.value) })
            var removing: [(prefix: IPPrefix, value: Int)] = []
            var adding: [(prefix: IPPrefix, value: Int)] = []
            for i in peers.indices {
                switch rng.next() % 4 {
                case 0: // removed; its prefixes may go to others below
                    removing += peers[i]!.map { ($0, i) }
                    for p in peers[i]! { taken.remove(p) }
                    freed += peers[i]!
                    peers[i] = nil
                case 1 where !peers[i]!.isEmpty: // changed: drops one prefix, gains one
                    let dropped = peers[i]!.removeFirst()
                    taken.remove(dropped)
                    freed.append(dropped)
                    removing.append((dropped, i))
                    let gained = fresh(1)
                    peers[i]! += gained
                    adding += gained.map { ($0, i) }
                default:
                    break
                }
            }
            for _ in 0..<Int(rng.next() % 5) {
                let gained = fresh(1 + Int(rng.next() % 2))
                peers.append(gained)
                adding += gained.map { ($0, peers.count - 1) }
            }
            table.reroute(removing: removing, adding: adding)
            let want = build(peers)
            XCTAssertEqual(table.count, want.count, "round \(round)")
            XCTAssertEqual(Dictionary(uniqueKeysWithValues: table.entries.map { ($0.prefix, $0.value) }),
                           Dictionary(uniqueKeysWithValues: want.entries.map { ($0.prefix, $0.value) }), "round \(round)")
            for _ in 0..<50 {
                let a = rng.next() % 2 == 0 ? IPAddress.v4(0x0A00_0000 | UInt32(rng.next() % 0x10_0000))
                                            : IPAddress.v6(0xFD00_0000_0000_0000 | rng.next() % 4096 << 16, rng.next() % 4096)
                XCTAssertEqual(table.lookup(a), want.lookup(a), "round \(round): \(a)")
            }
            XCTAssertEqual(Dictionary(uniqueKeysWithValues: before.entries.map { ($0.prefix, $0.value) }), beforeEntries,
                           "the published table is not changed")
        }
    }

    /// The published table is shared: a copy that gains or loses one prefix copies only that
    /// prefix's shard, and the original still answers as before.
    func testAChangeToACopyCopiesOnlyItsShard() {
        var published = AllowedIPsTable<Int>()
        for i in 0..<1000 { published.insert(IPPrefix(host: .v4(0x0A40_0000 + UInt32(i))), value: i) }
        for (added, isV6) in [(IPPrefix(host: .v4(0x0A50_0001)), false), (IPPrefix(host: .v6(0xFD00, 1)), true)] {
            if isV6 { published.insert(IPPrefix(host: .v6(0xFD00, 2)), value: 2) }
            var next = published
            next.insert(added, value: 5000)
            let home = isV6 ? AllowedIPsTable<Int>.shard(v6: .init(hi: 0xFD00, lo: 1)) : AllowedIPsTable<Int>.shard(v4: 0x0A50_0001)
            for shard in 0..<64 {
                let same = next.storageIdentity(of: added, shard: shard) == published.storageIdentity(of: added, shard: shard)
                XCTAssertEqual(same, shard != home, "shard \(shard)")
            }
            XCTAssertNil(published.exact(added))
            XCTAssertEqual(next.exact(added), 5000)
            next.remove(IPPrefix(host: .v4(0x0A40_0007)))
            XCTAssertEqual(published.lookup(.v4(0x0A40_0007)), 7)
            XCTAssertNil(next.lookup(.v4(0x0A40_0007)))
        }
    }

    /// The 64 shards of a length are all used by consecutive host addresses.
    func testConsecutiveHostsSpreadOverEveryShard() {
        let v4 = Set((0..<1000).map { AllowedIPsTable<Int>.shard(v4: 0x0A40_0000 + UInt32($0)) })
        let v6 = Set((0..<1000).map { AllowedIPsTable<Int>.shard(v6: .init(hi: 0xFD00_0000_0000_0000, lo: UInt64($0))) })
        XCTAssertEqual(v4.count, 64)
        XCTAssertEqual(v6.count, 64)
    }
}

enum PacketFixtures {
    static func ipv4(src: [UInt8], dst: [UInt8], payload: Int = 8, ihl: UInt8 = 5) -> [UInt8] {
        let header = Int(ihl) * 4
        var p = [UInt8](repeating: 0, count: header + payload)
        p[0] = 0x40 | ihl
        let total = UInt16(p.count)
        p[2] = UInt8(total >> 8)
        p[3] = UInt8(total & 0xff)
        p[8] = 64
        p[9] = 17
        p.replaceSubrange(12..<16, with: src)
        p.replaceSubrange(16..<20, with: dst)
        return p
    }

    static func ipv6(src: [UInt8], dst: [UInt8], payload: Int = 8) -> [UInt8] {
        var p = [UInt8](repeating: 0, count: 40 + payload)
        p[0] = 0x60
        p[4] = UInt8(payload >> 8)
        p[5] = UInt8(payload & 0xff)
        p[6] = 17
        p[7] = 64
        p.replaceSubrange(8..<24, with: src)
        p.replaceSubrange(24..<40, with: dst)
        return p
    }
}
