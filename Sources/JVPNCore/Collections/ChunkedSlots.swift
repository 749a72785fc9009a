/// An array of optional values (one slot per peer index) in chunks of 64, for one writer that
/// publishes immutable copies and packet threads that read a slot per packet. A copy shares every
/// chunk; setting a slot copies that chunk and the chunk list only, so publishing a change to one
/// peer costs O(slots / 64 + 64), not a copy of the whole array.
public struct ChunkedSlots<Value> {
    @usableFromInline static var chunkBits: Int { 6 }
    @usableFromInline static var chunkSize: Int { 1 << chunkBits }

    @usableFromInline var chunks: [[Value?]] = []
    @usableFromInline var storedCount = 0
    @inlinable public var count: Int { storedCount }

    @inlinable public init() {}

    /// Slot `index` (< count).
    @inlinable @inline(__always)
    public subscript(index: Int) -> Value? {
        get { chunks[index >> ChunkedSlots.chunkBits][index & (ChunkedSlots.chunkSize - 1)] }
        set { chunks[index >> ChunkedSlots.chunkBits][index & (ChunkedSlots.chunkSize - 1)] = newValue }
    }

    @inlinable
    public mutating func append(_ value: Value?) {
        if count & (ChunkedSlots.chunkSize - 1) == 0 {
            var chunk = [Value?]()
            chunk.reserveCapacity(ChunkedSlots.chunkSize)
            chunks.append(chunk)
        }
        chunks[chunks.count - 1].append(value)
        storedCount += 1
    }

    /// The address of chunk `c`'s storage: equal in two copies exactly while they share it.
    func storageIdentity(ofChunk c: Int) -> UnsafeRawPointer? {
        chunks[c].withUnsafeBufferPointer { $0.baseAddress.map { UnsafeRawPointer($0) } }
    }
}
