import JVPNCore
import JVPNSystem
import Synchronization

/// The handshake queue and its one worker thread: the receive thread admits a handshake message
/// (cheap checks, `HandshakeAdmission`) and copies it here; the worker does the public-key work
/// (`PumpController.handleHandshake`, X25519 under the host lock). So the data plane never waits
/// for a Diffie-Hellman or for the host lock because of a handshake.
///
/// Single producer (the receive thread), single consumer (the worker): a ring of preallocated
/// slots with two atomic counters, and a counting semaphore holding one count per queued message.
final class HandshakeWorker: @unchecked Sendable {
    static let capacity = HandshakeAdmission.queueCapacity
    /// The largest handshake message (an initiation).
    static let slotBytes = Handshake.initiationLength
    private static let mask = capacity - 1

    private let bytes = UnsafeMutableRawPointer.allocate(byteCount: capacity * slotBytes, alignment: 16)
    private let lengths = UnsafeMutablePointer<Int>.allocate(capacity: capacity)
    private let sources = UnsafeMutablePointer<SocketAddress>.allocate(capacity: capacity)
    private let socketIndexes = UnsafeMutablePointer<Int>.allocate(capacity: capacity)
    /// Messages taken by the worker / put by the receive thread, since start (slot = count & mask).
    private let popped = Atomic<Int>(0)
    private let pushed = Atomic<Int>(0)
    private let queued = Semaphore()
    private let stop = Atomic<Bool>(false)
    private let done = Semaphore()
    private var running = false
    private let handle: (UnsafeRawBufferPointer, SocketAddress, Int) -> Void

    /// `handle` runs on the worker thread with the message, its source (unmapped) and socket index.
    init(handle: @escaping (UnsafeRawBufferPointer, SocketAddress, Int) -> Void) {
        precondition(HandshakeWorker.capacity & HandshakeWorker.mask == 0, "capacity must be a power of two")
        self.handle = handle
        sources.initialize(repeating: SocketAddress(), count: HandshakeWorker.capacity)
    }

    deinit {
        bytes.deallocate()
        lengths.deallocate()
        sources.deinitialize(count: HandshakeWorker.capacity)
        sources.deallocate()
        socketIndexes.deallocate()
    }

    /// Messages waiting: the load signal of `HandshakeAdmission`. Any thread.
    var depth: Int { pushed.load(ordering: .acquiring) - popped.load(ordering: .acquiring) }

    /// Receive thread only. Copies the message into a free slot; false when the queue is full.
    func push(_ message: UnsafeRawBufferPointer, from source: SocketAddress, socketIndex: Int) -> Bool {
        let n = pushed.load(ordering: .relaxed)
        guard n - popped.load(ordering: .acquiring) < HandshakeWorker.capacity,
              message.count <= HandshakeWorker.slotBytes, let base = message.baseAddress else { return false }
        let slot = n & HandshakeWorker.mask
        (bytes + slot * HandshakeWorker.slotBytes).copyMemory(from: base, byteCount: message.count)
        lengths[slot] = message.count
        sources[slot] = source
        socketIndexes[slot] = socketIndex
        pushed.store(n + 1, ordering: .releasing)
        queued.signal()
        return true
    }

    func start() throws {
        try DetachedThread.start(name: "jvpn-handshake") { [self] in run(); done.signal() }
        running = true
    }

    func shutdown() {
        guard running else { return }
        stop.store(true, ordering: .relaxed)
        queued.signal()
        done.wait(timeoutMs: 2000)
        running = false
    }

    private func run() {
        while !stop.load(ordering: .relaxed) {
            // The timeout only bounds how long shutdown waits; every message comes with a count.
            guard queued.wait(timeoutMs: 1000) else { continue }
            let n = popped.load(ordering: .relaxed)
            guard n < pushed.load(ordering: .acquiring) else { continue } // the shutdown wake-up
            let slot = n & HandshakeWorker.mask
            handle(UnsafeRawBufferPointer(start: bytes + slot * HandshakeWorker.slotBytes, count: lengths[slot]),
                   sources[slot].unmapped, socketIndexes[slot])
            popped.store(n + 1, ordering: .releasing)
        }
    }
}
