// Micro-benchmarks of the per-packet work in JVPNCore: seal, open, replay window, TSO
// segmentation, GRO coalescing, the snapshot's receiver map and AllowedIPs table. Run in release: deploy/bench/micro.sh. Prints ns/op and Gbit/s.
import CAead
import CSodium
import Glibc
import JVPNCore

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func measure(_ name: String, bytesPerOp: Int, iterations: Int, _ body: () -> Void) {
    for _ in 0..<(iterations / 10) { body() } // warm-up
    let t0 = now()
    for _ in 0..<iterations { body() }
    let ns = Double(now() - t0) / Double(iterations)
    let gbps = bytesPerOp > 0 ? "  " + fixed(Double(bytesPerOp * 8) / ns, 2) + " Gbit/s" : ""
    let pad = String(repeating: " ", count: max(0, 36 - name.count))
    print(name + pad + fixed(ns, 1) + " ns/op" + gbps)
}

/// Fixed-point text without Foundation.
func fixed(_ x: Double, _ digits: Int) -> String {
    var m = 1.0
    for _ in 0..<digits { m *= 10 }
    let v = (x * m).rounded() / m
    var s = String(v)
    if let dot = s.firstIndex(of: ".") {
        let frac = s[s.index(after: dot)...].count
        if frac < digits { s += String(repeating: "0", count: digits - frac) }
    }
    return s
}

do {
    try Sodium.initialize()
} catch {
    print("libsodium failed to initialise: \(error)")
    exit(1)
}
print("libsodium AVX2 available: \(sodium_runtime_has_avx2() == 1)")
print("CAead: ChaCha20 rests on the 8-block AVX-512 kernel: \(caead_uses_eight_blocks() == 1)")
let kp = Keypair(sendKey: [UInt8](repeating: 1, count: 32), receiveKey: [UInt8](repeating: 1, count: 32),
                 localIndex: 1, remoteIndex: 1, createdAt: 0, isInitiator: true)!
let buf = UnsafeMutableRawPointer.allocate(byteCount: 70_000, alignment: 64)
buf.initializeMemory(as: UInt8.self, repeating: 7, count: 70_000)
let payload = 1420
var counter: UInt64 = 0
// As the data plane seals and opens: with the bytes before the frame lent (`roomBefore`), and
// without (the AEAD then copies the text through a stack scratch).
let frame = buf + 64
for room in [Frame.usefulRoomBefore, 0] {
    let label = room > 0 ? ", room lent" : ", no room"
    measure("seal 1420 B" + label, bytesPerOp: payload, iterations: 200_000) {
        counter &+= 1
        _ = Frame.seal(type: .data, receiverIndex: 1, counter: counter, key: kp, buffer: frame, plaintextLength: payload, roomBefore: room)
    }
    let sealed = Frame.seal(type: .data, receiverIndex: 1, counter: 5, key: kp, buffer: frame, plaintextLength: payload)
    let copy = UnsafeMutableRawPointer.allocate(byteCount: 2048, alignment: 64)
    copy.copyMemory(from: frame, byteCount: sealed)
    measure("open 1420 B" + label, bytesPerOp: payload, iterations: 200_000) {
        frame.copyMemory(from: copy, byteCount: sealed)
        let h = Frame.peekHeader(frame, length: sealed)!
        _ = Frame.open(header: h, key: kp, buffer: frame, length: sealed, roomBefore: room)
    }
    copy.deallocate()
}
measure("checksum 1420 B (RFC 1071)", bytesPerOp: payload, iterations: 2_000_000) {
    counter &+= Checksum.sum(buf + 1, payload)
}
let sharedWindow = SharedReplayWindow()
var sc: UInt64 = 0
measure("replay update, shared (in order)", bytesPerOp: 0, iterations: 5_000_000) {
    sc &+= 1
    _ = sharedWindow.update(sc)
}
// A 64 KiB TSO super-packet (IPv4/TCP, MSS 1388) split into segments, then merged back.
var sp = [UInt8](repeating: 0, count: 40 + 1388 * 46)
sp[0] = 0x45; sp[2] = UInt8(sp.count >> 8); sp[3] = UInt8(sp.count & 0xff); sp[8] = 64; sp[9] = 6
sp[12] = 10; sp[15] = 2; sp[16] = 10; sp[19] = 1; sp[32] = 0x50; sp[33] = 0x10
var vh = VirtioNetHeader()
vh.gsoType = VirtioNetHeader.gsoTCPv4
vh.gsoSize = 1388
let slots = UnsafeMutableRawPointer.allocate(byteCount: 64 * 2048, alignment: 64)
var lens = [Int](repeating: 0, count: 64)
measure("segment 64 KiB TSO (46 segments)", bytesPerOp: sp.count, iterations: 20_000) {
    _ = sp.withUnsafeBytes { try? Segmenter.segment($0.baseAddress!, length: $0.count, header: vh, maxSegments: 64, capacity: 2048,
                                                    destination: { slots + $0 * 2048 }, emit: { lens[$0] = $1 }) }
}
let segs = (0..<46).map { Coalescer.parse(slots + $0 * 2048, lens[$0])! }
measure("coalesce 46 segments (GRO headers)", bytesPerOp: 0, iterations: 200_000) {
    _ = Coalescer.mergedHeaders(into: buf, count: 46, pointer: { UnsafeRawPointer(slots + $0 * 2048) }, segment: { segs[$0] })
}

// The snapshot's receiver map: a lookup per received frame, and the patch a rekey of one peer
// publishes (copy of the published map, one index removed, one added), against a Dictionary.
final class EntryKeys {}
struct ReceiverLike {
    let peer: Int
    let keys: EntryKeys
    let counters: EntryKeys
    let unconfirmed: Bool
}
var indexRandom = SeededRandom(seed: 1)
for entries in [2_000, 20_000] {
    let keys = (0..<entries).map { _ in UInt32.random(in: 1...UInt32.max, using: &indexRandom) }
    var dictionary: [UInt32: ReceiverLike] = [:]
    var sharded = ShardedIndexMap<ReceiverLike>()
    for (i, k) in keys.enumerated() {
        let e = ReceiverLike(peer: i, keys: EntryKeys(), counters: EntryKeys(), unconfirmed: false)
        dictionary[k] = e
        sharded.set(e, for: k)
    }
    var found = 0
    var probe = 0
    measure("receiver lookup, Dictionary, \(entries)", bytesPerOp: 0, iterations: 5_000_000) {
        probe = (probe &+ 7919) % entries
        found &+= dictionary[keys[probe]]?.peer ?? 0
    }
    measure("receiver lookup, sharded map, \(entries)", bytesPerOp: 0, iterations: 5_000_000) {
        probe = (probe &+ 7919) % entries
        found &+= sharded[keys[probe]]?.peer ?? 0
    }
    var spare = keys[0]
    let patchIterations = entries > 10_000 ? 2_000 : 20_000
    measure("one-peer patch, Dictionary, \(entries)", bytesPerOp: 0, iterations: patchIterations) {
        var next = dictionary
        let e = next.removeValue(forKey: spare)!
        spare = UInt32.random(in: 1...UInt32.max, using: &indexRandom)
        next[spare] = e
        dictionary = next
    }
    spare = keys[0]
    measure("one-peer patch, sharded map, \(entries)", bytesPerOp: 0, iterations: patchIterations) {
        var next = sharded
        let e = next.remove(spare)!
        spare = UInt32.random(in: 1...UInt32.max, using: &indexRandom)
        next.set(e, for: spare)
        sharded = next
    }
    if found == 42 { print("") } // keeps the lookups from being optimised away
}

// The snapshot's AllowedIPs table on a gateway: a lookup per packet (one /32 per peer and a /16
// of a peer behind it), the patch a reload adding one peer publishes (a copy of the published
// table and one /32 inserted; the next round removes it again), and a rebuild over all peers.
var routeRandom = SeededRandom(seed: 2)
for peers in [1_000, 10_000] {
    var table = AllowedIPsTable<Int>()
    let hosts = (0..<peers).map { UInt32(0x0A40_0000) + UInt32($0) + 2 }
    for (i, h) in hosts.enumerated() { table.insert(IPPrefix(host: .v4(h)), value: i) }
    table.insert(IPPrefix(address: .v4(0x0A63_0000), length: 16)!, value: 0)
    var routed = 0
    var probe = 0
    measure("AllowedIPs lookup, \(peers) peers", bytesPerOp: 0, iterations: 5_000_000) {
        probe = (probe &+ 7919) % peers
        routed &+= table.lookup(v4: hosts[probe]) ?? 0
    }
    let added = IPPrefix(host: .v4(0x0A50_0000 | UInt32(routeRandom.next() & 0xffff)))
    var present = false
    // `published` holds the table as the packet threads' snapshot does while the next is built.
    var published = [table]
    measure("AllowedIPs add one, \(peers) peers", bytesPerOp: 0, iterations: peers > 5_000 ? 2_000 : 20_000) {
        var next = published[0]
        if present { next.remove(added) } else { next.insert(added, value: peers) }
        present.toggle()
        published[0] = next
    }
    measure("AllowedIPs rebuild, \(peers) peers", bytesPerOp: 0, iterations: peers > 5_000 ? 200 : 2_000) {
        var rebuilt = AllowedIPsTable<Int>()
        for (i, h) in hosts.enumerated() { rebuilt.insert(IPPrefix(host: .v4(h)), value: i) }
        routed &+= rebuilt.count
    }
    if routed == 42 { print("") } // keeps the lookups from being optimised away
}
