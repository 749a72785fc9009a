import CSodium

/// Fixed-size secret stored in its own heap allocation so that it has a stable address (no copies
/// made by Array/struct moves) and is wiped with sodium_memzero when the last reference goes.
final class SecretBytes: @unchecked Sendable {
    let count: Int
    let pointer: UnsafeMutableRawPointer

    init(count: Int) {
        self.count = count
        pointer = UnsafeMutableRawPointer.allocate(byteCount: count, alignment: 16)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: count)
    }

    convenience init(copying source: UnsafeRawPointer, count: Int) {
        self.init(count: count)
        pointer.copyMemory(from: source, byteCount: count)
    }

    deinit {
        sodium_memzero(pointer, count)
        pointer.deallocate()
    }

    var raw: UnsafeRawPointer { UnsafeRawPointer(pointer) }
    var bytes: UnsafeMutablePointer<UInt8> { pointer.assumingMemoryBound(to: UInt8.self) }
    var array: [UInt8] { Array(UnsafeRawBufferPointer(start: raw, count: count)) }
}
