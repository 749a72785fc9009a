import CSodium
import Synchronization

/// The transport keys of one completed handshake, plus the per-key counters.
///
/// Keys live in one 64-byte slot of `SecretSlab.transportKeys` (guarded memory, a stable address
/// handed to libsodium by pointer), wiped and given back on deinit. `sendCounter` is atomic so that
/// several sender threads may share the keypair; `replay` takes several receive threads at once
/// (the packet workers: a session's frames may reach two of them on two paths).
public final class Keypair: @unchecked Sendable {
    /// Send key, then receive key.
    private let keys: UnsafeMutableRawPointer
    /// Receiver index we chose: peers put it in the header of frames they send us.
    public let localIndex: UInt32
    /// Receiver index the peer chose: we put it in frames we send.
    public let remoteIndex: UInt32
    /// Caller's monotonic clock, nanoseconds, when the handshake completed.
    public let createdAt: UInt64
    public let isInitiator: Bool
    /// Next counter to use. Only `nextCounter()` should advance it. Alone on its cache line: the
    /// send threads write it per packet, and the receive threads read this object's other fields.
    public let sendCounter: UnsafeMutablePointer<Atomic<UInt64>>
    public let replay = SharedReplayWindow()

    /// `keys`: a slot of `SecretSlab.transportKeys`, owned by the keypair from now on.
    init(keys: UnsafeMutableRawPointer, localIndex: UInt32, remoteIndex: UInt32, createdAt: UInt64, isInitiator: Bool) {
        self.keys = keys
        self.localIndex = localIndex
        self.remoteIndex = remoteIndex
        self.createdAt = createdAt
        self.isInitiator = isInitiator
        sendCounter = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 64).bindMemory(to: Atomic<UInt64>.self, capacity: 1)
        sendCounter.initialize(to: Atomic(0))
    }

    /// Builds a keypair from raw 32-byte keys (tests, fixtures). Nil if a key is not 32 bytes.
    public convenience init?(sendKey: [UInt8], receiveKey: [UInt8], localIndex: UInt32, remoteIndex: UInt32,
                             createdAt: UInt64, isInitiator: Bool) {
        guard sendKey.count == 32, receiveKey.count == 32 else { return nil }
        let s = SecretSlab.transportKeys.acquire()
        s.copyMemory(from: sendKey, byteCount: 32)
        (s + 32).copyMemory(from: receiveKey, byteCount: 32)
        self.init(keys: s, localIndex: localIndex, remoteIndex: remoteIndex, createdAt: createdAt,
                  isInitiator: isInitiator)
    }

    deinit {
        SecretSlab.transportKeys.release(keys)
        sendCounter.deinitialize(count: 1)
        sendCounter.deallocate()
    }

    var sendKeyPointer: UnsafePointer<UInt8> { UnsafePointer(keys.assumingMemoryBound(to: UInt8.self)) }
    var receiveKeyPointer: UnsafePointer<UInt8> { UnsafePointer((keys + 32).assumingMemoryBound(to: UInt8.self)) }

    /// For test vectors and diagnostics only; never log these.
    public var sendKeyBytes: [UInt8] { Array(UnsafeBufferPointer(start: sendKeyPointer, count: 32)) }
    public var receiveKeyBytes: [UInt8] { Array(UnsafeBufferPointer(start: receiveKeyPointer, count: 32)) }

    /// Reserves the next send counter; nil once the key may send no more (a nonce is never reused).
    /// A CAS loop rather than a blind add so the counter can never run past the limit and wrap.
    @inline(__always)
    public func nextCounter() -> UInt64? {
        var current = sendCounter.pointee.load(ordering: .relaxed)
        while true {
            if current >= MessageLimits.rejectAfterMessages { return nil }
            let (exchanged, original) = sendCounter.pointee.compareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { return current }
            current = original
        }
    }

    /// Messages sent so far with this key.
    public var messagesSent: UInt64 { sendCounter.pointee.load(ordering: .relaxed) }
}
