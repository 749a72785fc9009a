/// A map from nonzero 32-bit keys (receiver indexes) to values, for one writer that publishes
/// immutable copies and packet threads that look up a key per packet.
///
/// - A lookup hashes nothing. The keys this project stores are drawn at random (1...UInt32.max),
///   so their low bits pick one of 64 shards and the next bits a slot; linear probing inside the
///   shard, whose load stays at most 1/2.
/// - A copy shares every shard's storage. Changing a key copies only that key's shard (Swift's
///   copy-on-write of the shard's arrays) and the 64-entry shard list, so publishing a change to
///   one peer costs O(entries / 64), not a copy of the whole map.
/// - Key 0 is never stored (it marks an empty slot) and is never found.
public struct ShardedIndexMap<Value> {
    @usableFromInline static var shardBits: UInt32 { 6 }
    @usableFromInline static var shardCount: Int { 1 << Int(shardBits) }

    @usableFromInline
    struct Shard {
        /// 0 where the slot is empty; the count is 0 or a power of two.
        @usableFromInline var keys: [UInt32] = []
        @usableFromInline var values: [Value?] = []
        @usableFromInline var count = 0

        @inlinable init() {}

        @inlinable @inline(__always)
        static func home(_ key: UInt32, _ mask: Int) -> Int { Int(key >> ShardedIndexMap.shardBits) & mask }

        @inlinable @inline(__always)
        func slot(of key: UInt32) -> Int? {
            let mask = keys.count &- 1
            guard mask >= 0 else { return nil }
            var i = Shard.home(key, mask)
            while true {
                let k = keys[i]
                if k == key { return i }
                if k == 0 { return nil }
                i = (i &+ 1) & mask
            }
        }

        /// Returns whether `key` is new.
        @inlinable
        mutating func set(_ key: UInt32, _ value: Value) -> Bool {
            if let i = slot(of: key) {
                values[i] = value
                return false
            }
            if (count + 1) * 2 > keys.count { resize(to: Swift.max(4, keys.count * 2)) }
            let mask = keys.count - 1
            var i = Shard.home(key, mask)
            while keys[i] != 0 { i = (i + 1) & mask }
            keys[i] = key
            values[i] = value
            count += 1
            return true
        }

        /// Removes `key` by shifting later entries of its probe run back into the hole (no
        /// tombstones, so lookups never slow down with churn).
        @inlinable
        mutating func remove(_ key: UInt32) -> Value? {
            guard let found = slot(of: key) else { return nil }
            let old = values[found]
            let mask = keys.count - 1
            var hole = found
            var j = found
            while true {
                j = (j + 1) & mask
                let k = keys[j]
                if k == 0 { break }
                let home = Shard.home(k, mask)
                // The entry at j may fill the hole unless its home lies cyclically in (hole, j].
                let homeBetween = hole < j ? (home > hole && home <= j) : (home > hole || home <= j)
                if !homeBetween {
                    keys[hole] = k
                    values[hole] = values[j]
                    hole = j
                }
            }
            keys[hole] = 0
            values[hole] = nil
            count -= 1
            if keys.count > 8, count * 8 < keys.count { resize(to: keys.count / 2) }
            return old
        }

        @inlinable
        mutating func resize(to capacity: Int) {
            let oldKeys = keys
            let oldValues = values
            keys = [UInt32](repeating: 0, count: capacity)
            values = [Value?](repeating: nil, count: capacity)
            let mask = capacity - 1
            for (i, k) in oldKeys.enumerated() where k != 0 {
                var s = Shard.home(k, mask)
                while keys[s] != 0 { s = (s + 1) & mask }
                keys[s] = k
                values[s] = oldValues[i]
            }
        }
    }

    @usableFromInline var shards = [Shard](repeating: Shard(), count: ShardedIndexMap.shardCount)
    @usableFromInline var storedCount = 0
    @inlinable public var count: Int { storedCount }

    @inlinable public init() {}

    @inlinable @inline(__always)
    static func shard(of key: UInt32) -> Int { Int(key & UInt32(shardCount - 1)) }

    @inlinable @inline(__always)
    public subscript(key: UInt32) -> Value? {
        guard key != 0 else { return nil }
        let s = ShardedIndexMap.shard(of: key)
        guard let i = shards[s].slot(of: key) else { return nil }
        return shards[s].values[i]
    }

    /// Stores `value` under `key` (nonzero), replacing what was there.
    @inlinable
    public mutating func set(_ value: Value, for key: UInt32) {
        precondition(key != 0, "key 0 marks an empty slot")
        if shards[ShardedIndexMap.shard(of: key)].set(key, value) { storedCount += 1 }
    }

    @inlinable @discardableResult
    public mutating func remove(_ key: UInt32) -> Value? {
        guard key != 0, let old = shards[ShardedIndexMap.shard(of: key)].remove(key) else { return nil }
        storedCount -= 1
        return old
    }

    /// The address of shard `s`'s key storage: equal in two maps exactly while they share it.
    func storageIdentity(ofShard s: Int) -> UnsafeRawPointer? {
        shards[s].keys.withUnsafeBufferPointer { $0.baseAddress.map { UnsafeRawPointer($0) } }
    }
}

extension ShardedIndexMap: Sequence {
    /// Every entry, in no particular order (status and checks; the packet threads only look up).
    public struct Iterator: IteratorProtocol {
        private let map: ShardedIndexMap
        private var shard = 0
        private var slot = 0

        init(_ map: ShardedIndexMap) { self.map = map }

        public mutating func next() -> (key: UInt32, value: Value)? {
            while shard < map.shards.count {
                let s = map.shards[shard]
                while slot < s.keys.count {
                    defer { slot += 1 }
                    if s.keys[slot] != 0, let v = s.values[slot] { return (s.keys[slot], v) }
                }
                shard += 1
                slot = 0
            }
            return nil
        }
    }

    public func makeIterator() -> Iterator { Iterator(self) }
    public var underestimatedCount: Int { count }
}
