import CSodium

/// Fixed-size secret in its own libsodium guarded allocation: a stable address (no copies made by
/// Array/struct moves), guard pages on both sides, locked into RAM and excluded from core dumps
/// (sodium_malloc applies sodium_mlock, which on Linux includes MADV_DONTDUMP), and wiped when the
/// last reference goes (sodium_free zeroes before unmapping).
/// Sizes here are multiples of 16, so the pointer (placed right before the trailing guard page)
/// stays 16-byte aligned.
final class SecretBytes: @unchecked Sendable {
    let count: Int
    let pointer: UnsafeMutableRawPointer

    init(count: Int) {
        self.count = count
        // sodium_malloc needs sodium_init (it sets the page size).
        Sodium.ensureInitialized()
        guard let p = sodium_malloc(count) else { fatalError("sodium_malloc(\(count)): out of memory") }
        pointer = p
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: count)
    }

    convenience init(copying source: UnsafeRawPointer, count: Int) {
        self.init(count: count)
        pointer.copyMemory(from: source, byteCount: count)
    }

    deinit {
        sodium_free(pointer)
    }

    var raw: UnsafeRawPointer { UnsafeRawPointer(pointer) }
    var bytes: UnsafeMutablePointer<UInt8> { pointer.assumingMemoryBound(to: UInt8.self) }
    var array: [UInt8] { Array(UnsafeRawBufferPointer(start: raw, count: count)) }
}
