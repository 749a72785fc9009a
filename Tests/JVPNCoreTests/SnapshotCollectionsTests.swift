import XCTest
@testable import JVPNCore

/// The two collections the data-plane snapshot is made of: lookups agree with a plain Dictionary /
/// Array under any sequence of changes, and a copy shares all storage but the part a change touched.
final class SnapshotCollectionsTests: XCTestCase {
    func testShardedIndexMapAgreesWithADictionaryUnderChurn() {
        var rng = SeededRandom(seed: 7)
        // Keys in one shard with few distinct homes, so probe runs are long, wrap and get holes
        // shifted back; and random keys over all shards.
        let crowded: [UInt32] = (0..<200).map { (i: Int) -> UInt32 in
            let home = UInt32(i % 40) << 6
            let high = UInt32(i / 40) << 26
            return home | high | 5
        }
        let spread = (0..<300).map { _ in UInt32.random(in: 1...UInt32.max, using: &rng) }
        let pool = crowded + spread
        var map = ShardedIndexMap<Int>()
        var reference: [UInt32: Int] = [:]
        for step in 0..<40_000 {
            let key = pool[Int(rng.next() % UInt64(pool.count))]
            if rng.next() % 3 == 0 {
                XCTAssertEqual(map.remove(key), reference.removeValue(forKey: key), "step \(step): remove \(key)")
            } else {
                map.set(step, for: key)
                reference[key] = step
            }
            XCTAssertEqual(map[key], reference[key], "step \(step): key \(key)")
            if step % 1000 == 999 {
                XCTAssertEqual(map.count, reference.count)
                for k in pool { XCTAssertEqual(map[k], reference[k], "step \(step): key \(k)") }
                let entries = map.map { ($0.key, $0.value) }
                XCTAssertEqual(entries.count, reference.count, "iteration yields every entry once")
                XCTAssertEqual(Dictionary(entries, uniquingKeysWith: { a, _ in a }), reference)
            }
        }
        // Emptied again (shards shrink), then refilled.
        for k in pool { map.remove(k) }
        XCTAssertEqual(map.count, 0)
        for k in pool { XCTAssertNil(map[k]) }
        for (i, k) in pool.enumerated() { map.set(i, for: k) }
        for (i, k) in pool.enumerated() where pool.firstIndex(of: k) == i { XCTAssertEqual(map[k], pool.lastIndex(of: k)) }
    }

    func testKeyZeroIsNeverFound() {
        var map = ShardedIndexMap<Int>()
        XCTAssertNil(map[0])
        map.set(1, for: 64) // same shard and home as 0 would have
        XCTAssertNil(map[0])
        XCTAssertNil(map.remove(0))
        XCTAssertEqual(map.count, 1)
    }

    func testAChangeCopiesOnlyItsShard() {
        var rng = SeededRandom(seed: 11)
        var published = ShardedIndexMap<Int>()
        let keys = (0..<2000).map { _ in UInt32.random(in: 1...UInt32.max, using: &rng) }
        for (i, k) in keys.enumerated() { published.set(i, for: k) }
        var next = published
        let changed = keys[1234]
        next.remove(changed)
        let sameShard: UInt32 = (keys[1235] & ~UInt32(63)) | (changed & 63) | (1 << 31)
        next.set(-1, for: sameShard) // a new key in the same shard
        let touched = Int(changed & 63)
        for s in 0..<ShardedIndexMap<Int>.shardCount {
            let same = next.storageIdentity(ofShard: s) == published.storageIdentity(ofShard: s)
            XCTAssertEqual(same, s != touched, "shard \(s)")
        }
        XCTAssertEqual(published[changed], 1234, "the published copy is untouched")
        XCTAssertNil(next[changed])
        XCTAssertEqual(published.count, next.count)
    }

    func testChunkedSlotsCopyOnlyTheChunkASetTouches() {
        var published = ChunkedSlots<Int>()
        for i in 0..<1000 { published.append(i % 7 == 0 ? nil : i) }
        XCTAssertEqual(published.count, 1000)
        for i in 0..<1000 { XCTAssertEqual(published[i], i % 7 == 0 ? nil : i) }
        var next = published
        next[500] = -500
        for c in 0..<(1000 + 63) / 64 {
            XCTAssertEqual(next.storageIdentity(ofChunk: c) == published.storageIdentity(ofChunk: c), c != 500 / 64, "chunk \(c)")
        }
        XCTAssertEqual(published[500], 500)
        XCTAssertEqual(next[500], -500)
        next.append(1000)
        XCTAssertEqual(next[1000], 1000)
        XCTAssertEqual(published.count, 1000)
    }
}
