import CSodium
import Synchronization

/// Fixed-size secret slots carved out of libsodium guarded chunks, for secrets that come and go by
/// the thousand (the transport keys of every session).
///
/// One `sodium_malloc` per secret costs 8 KB of resident memory (its header page and its data page)
/// and four memory mappings, whatever the secret's size: 8 KB per session on a gateway, and a
/// gateway with ~16,000 keypairs alive would reach the kernel's default map limit (65,530), where
/// `sodium_malloc` fails. A chunk here is one `sodium_malloc` of `slotsPerChunk` slots: the same
/// protection for the chunk as a whole (guard pages around it, locked into RAM, excluded from core
/// dumps), shared by the slots inside it. A slot is wiped when released and zero when acquired.
///
/// Chunks are never returned: the slab stays at the largest number of slots ever alive at once
/// (a few hundred bytes per keypair). Safe from any thread; the lock is taken once per acquire and
/// release (a handshake, a keypair's end), never per packet, and no call allocates except the one
/// that adds a chunk.
final class SecretSlab: @unchecked Sendable {
    /// The transport keys of every `Keypair`: send key and receive key, 32 bytes each.
    static let transportKeys = SecretSlab(slotSize: 64, slotsPerChunk: 63)

    let slotSize: Int
    let slotsPerChunk: Int

    private struct State {
        /// Free slots linked through their first 8 bytes.
        var firstFree: UnsafeMutableRawPointer?
        var chunks: [UnsafeMutableRawPointer] = []
        var slotsInUse = 0
    }

    private let state = Mutex(State())

    /// `slotSize` a multiple of 16 (slots stay 16-byte aligned, as `sodium_malloc` places the chunk
    /// at the end of its pages); 63 slots of 64 bytes plus libsodium's 16-byte canary fill one 4 KB page.
    init(slotSize: Int, slotsPerChunk: Int) {
        precondition(slotSize >= 16 && slotSize % 16 == 0, "slot size must be a multiple of 16")
        precondition(slotsPerChunk >= 1, "a chunk holds at least one slot")
        self.slotSize = slotSize
        self.slotsPerChunk = slotsPerChunk
    }

    deinit {
        state.withLock { s in
            for chunk in s.chunks { sodium_free(chunk) }
        }
    }

    /// A zeroed slot of `slotSize` bytes, until `release`.
    func acquire() -> UnsafeMutableRawPointer {
        let slot = state.withLock { s -> UnsafeMutableRawPointer in
            if s.firstFree == nil { addChunk(&s) }
            let slot = s.firstFree!
            s.firstFree = slot.load(as: UnsafeMutableRawPointer?.self)
            s.slotsInUse += 1
            return slot
        }
        slot.initializeMemory(as: UInt8.self, repeating: 0, count: MemoryLayout<UnsafeMutableRawPointer>.size)
        return slot
    }

    /// Wipes `slot` and makes it available again. `slot` must come from this slab's `acquire`.
    func release(_ slot: UnsafeMutableRawPointer) {
        sodium_memzero(slot, slotSize)
        state.withLock { s in
            slot.storeBytes(of: s.firstFree, as: UnsafeMutableRawPointer?.self)
            s.firstFree = slot
            s.slotsInUse -= 1
        }
    }

    /// Slots acquired and not released.
    var slotsInUse: Int { state.withLock { $0.slotsInUse } }
    /// Guarded chunks allocated so far (each holds `slotsPerChunk` slots).
    var chunkCount: Int { state.withLock { $0.chunks.count } }

    private func addChunk(_ s: inout State) {
        // sodium_malloc needs sodium_init (it sets the page size).
        Sodium.ensureInitialized()
        let bytes = slotSize * slotsPerChunk
        guard let chunk = sodium_malloc(bytes) else { fatalError("sodium_malloc(\(bytes)): out of memory") }
        sodium_memzero(chunk, bytes)
        s.chunks.append(chunk)
        // Linked in address order, the first slot first.
        var next: UnsafeMutableRawPointer? = s.firstFree
        for i in stride(from: slotsPerChunk - 1, through: 0, by: -1) {
            let slot = chunk + i * slotSize
            slot.storeBytes(of: next, as: UnsafeMutableRawPointer?.self)
            next = slot
        }
        s.firstFree = next
    }
}
