import JVPNCore
import JVPNSystem
import Synchronization

/// The handshake queue and its one worker thread, which is also the gateway's control worker: the
/// receive thread admits a handshake message (cheap checks, `HandshakeAdmission`) and copies it
/// here; the worker does the public-key work (`PumpController.handleHandshake`). A gateway's
/// receive thread also queues its control facts here (`ControlFactRing`), and the worker applies
/// them (`PumpController.apply`, under the host lock). So the data plane never waits for a
/// Diffie-Hellman, for a control decision or for the host lock. Cookie replies, built by the
/// receive thread, are sent from here too: under a flood of initiations their sendmmsg was half of
/// the receive thread's time.
///
/// Producers: the receive threads of the packet workers, one at a time (`producers`, a lock taken
/// per handshake message, cookie reply or control fact, never per data packet); one consumer (the
/// worker): rings of preallocated slots (messages, cookie replies, facts) with two atomic counters
/// each. The worker sleeps on a
/// semaphore only once every ring is empty; a message always posts it, cookie replies and control
/// facts only when the worker said it is going to sleep (`idle`), so a flood does not cost a
/// wake-up per batch. Facts come first (they are cheap and a REATTACH waits for them), then
/// replies, then one handshake.
final class HandshakeWorker: @unchecked Sendable {
    static let capacity = HandshakeAdmission.queueCapacity
    /// The largest handshake message (an initiation).
    static let slotBytes = Handshake.initiationLength
    private static let mask = capacity - 1

    private let bytes = UnsafeMutableRawPointer.allocate(byteCount: capacity * slotBytes, alignment: 16)
    private let lengths = UnsafeMutablePointer<Int>.allocate(capacity: capacity)
    private let sources = UnsafeMutablePointer<TransportAddress>.allocate(capacity: capacity)
    /// Cookie replies waiting to be sent: the same ring layout with 64-byte slots. A gateway's
    /// holds 80 ms of a 100,000/s flood (about 1.5 MB): enough for a worker descheduled for a
    /// while; twice as deep lost as many replies on a starved 2-core machine and only added
    /// latency. A client never sends any.
    static let gatewayReplyCapacity = 8192
    let replyCapacity: Int
    private let replyMask: Int
    private let replies: DatagramBatch
    private let replySocketIndexes: UnsafeMutablePointer<Int>
    private let repliesPopped = Atomic<Int>(0)
    private let repliesPushed = Atomic<Int>(0)
    /// Worker-only: one sendmmsg's worth of replies.
    private let sendBatch = DatagramBatch(capacity: 64, slotSize: Cookie.replyLength)
    let cookieRepliesSent = Atomic<UInt64>(0)
    private let snapshot: SnapshotCell
    /// Control facts from a gateway's receive thread (a client's stay empty: one slot).
    let facts: ControlFactRing
    /// At most this many facts per hold of the host lock, so a handshake is never kept waiting long.
    static let factBatch = 64
    private let applyFacts: (_ next: () -> ControlFact?) -> Void
    /// Messages taken by the worker / put by the receive thread, since start (slot = count & mask).
    private let popped = Atomic<Int>(0)
    private let pushed = Atomic<Int>(0)
    private let queued = Semaphore()
    /// The worker found both rings empty and is about to wait. Sequentially consistent with the
    /// ring counters: either the worker sees a reply pushed meanwhile, or the receive thread sees
    /// `idle` and posts.
    private let idle = Atomic<Bool>(false)
    private let stop = Atomic<Bool>(false)
    private let done = Semaphore()
    private var running = false
    private let handle: (UnsafeRawBufferPointer, TransportAddress) -> Void
    /// Held by a receive thread while it pushes, so the rings keep one producer at a time.
    private let producers = Lock()

    /// `handle` runs on the worker thread with the message and where it came from (unmapped);
    /// `applyFacts` runs there with a source of up to `factBatch` queued control facts;
    /// cookie replies go out on the UDP sockets of `snapshot`.
    /// `replyCapacity` must be a power of two.
    init(snapshot: SnapshotCell, replyCapacity: Int, factCapacity: Int = 1,
         applyFacts: @escaping (_ next: () -> ControlFact?) -> Void = { _ in },
         handle: @escaping (UnsafeRawBufferPointer, TransportAddress) -> Void) {
        precondition(HandshakeWorker.capacity & HandshakeWorker.mask == 0 && replyCapacity & (replyCapacity - 1) == 0,
                     "capacities must be powers of two")
        self.replyCapacity = replyCapacity
        replyMask = replyCapacity - 1
        replies = DatagramBatch(capacity: replyCapacity, slotSize: Cookie.replyLength)
        replySocketIndexes = .allocate(capacity: replyCapacity)
        self.snapshot = snapshot
        facts = ControlFactRing(capacity: factCapacity)
        self.applyFacts = applyFacts
        self.handle = handle
        sources.initialize(repeating: TransportAddress(via: .udp(socket: 0), address: SocketAddress()), count: HandshakeWorker.capacity)
    }

    deinit {
        bytes.deallocate()
        lengths.deallocate()
        sources.deinitialize(count: HandshakeWorker.capacity)
        sources.deallocate()
        replySocketIndexes.deallocate()
    }

    /// Messages waiting: the load signal of `HandshakeAdmission`. Any thread.
    var depth: Int { pushed.load(ordering: .acquiring) - popped.load(ordering: .acquiring) }

    /// Receive threads. Copies the message into a free slot; false when the queue is full.
    func push(_ message: UnsafeRawBufferPointer, from source: TransportAddress) -> Bool {
        producers.lock()
        defer { producers.unlock() }
        let n = pushed.load(ordering: .relaxed)
        guard n - popped.load(ordering: .acquiring) < HandshakeWorker.capacity,
              message.count <= HandshakeWorker.slotBytes, let base = message.baseAddress else { return false }
        let slot = n & HandshakeWorker.mask
        (bytes + slot * HandshakeWorker.slotBytes).copyMemory(from: base, byteCount: message.count)
        lengths[slot] = message.count
        sources[slot] = source
        pushed.store(n + 1, ordering: .releasing)
        queued.signal()
        return true
    }

    /// Receive threads. `write` fills the 64-byte slot and returns the length; false (nothing
    /// written) when the reply ring is full.
    func pushCookieReply(to destination: SocketAddress, socketIndex: Int,
                         write: (UnsafeMutableRawPointer) -> Int) -> Bool {
        producers.lock()
        defer { producers.unlock() }
        let n = repliesPushed.load(ordering: .relaxed)
        guard n - repliesPopped.load(ordering: .acquiring) < replyCapacity else { return false }
        let slot = n & replyMask
        replies.lengths[slot] = write(replies.payload(slot))
        replies.addresses[slot] = destination
        replySocketIndexes[slot] = socketIndex
        repliesPushed.store(n + 1, ordering: .sequentiallyConsistent)
        return true
    }

    /// Receive threads. A control fact for the worker; false (and counted) when the ring is full.
    func pushFact(_ fact: ControlFact) -> Bool {
        producers.withLock { facts.push(fact) }
    }

    /// Receive thread, after a receive batch that pushed cookie replies or control facts: wakes the
    /// worker if it sleeps.
    func wakeIfIdle() {
        if idle.load(ordering: .sequentiallyConsistent), idle.exchange(false, ordering: .sequentiallyConsistent) {
            queued.signal()
        }
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
        var generation = UInt64.max
        var sockets: [UDPSocket?] = []
        // Handshakes (and the publications they cause) leave free but resident heap pages behind;
        // they are given back once no handshake has come for a second, never during a burst. (Not
        // "a whole wait without a wake-up": control facts wake the worker every few hundred ms.)
        var handledSinceTrim = false
        var lastHandshakeMs: UInt64 = 0
        while !stop.load(ordering: .relaxed) {
            let g = snapshot.generation.load(ordering: .acquiring)
            if g != generation {
                generation = g
                sockets = snapshot.load().sockets
            }
            // Facts, replies, then one message, so that public-key work never holds either back long.
            var appliedFacts = false
            var factsStuck = false
            if !facts.isEmpty {
                let before = facts.poppedCount
                var budget = HandshakeWorker.factBatch
                applyFacts {
                    guard budget > 0 else { return nil }
                    budget -= 1
                    return facts.pop()
                }
                // Nothing taken (no controller any more): sleep rather than spin on the same facts.
                appliedFacts = facts.poppedCount != before
                factsStuck = !appliedFacts
            }
            let sentReplies = sendCookieReplies(sockets)
            let n = popped.load(ordering: .relaxed)
            if n < pushed.load(ordering: .acquiring) {
                let slot = n & HandshakeWorker.mask
                handle(UnsafeRawBufferPointer(start: bytes + slot * HandshakeWorker.slotBytes, count: lengths[slot]),
                       sources[slot].unmapped)
                popped.store(n + 1, ordering: .releasing)
                handledSinceTrim = true
                lastHandshakeMs = Clock.monotonicMilliseconds()
                continue
            }
            if sentReplies || appliedFacts { continue }
            idle.store(true, ordering: .sequentiallyConsistent)
            if repliesPushed.load(ordering: .sequentiallyConsistent) != repliesPopped.load(ordering: .relaxed)
                || (!facts.isEmpty && !factsStuck) {
                idle.store(false, ordering: .sequentiallyConsistent)
                continue
            }
            // Nothing to do: the moment to give heap pages back, never right after a wake-up.
            var waitMs = 1000
            if handledSinceTrim {
                let quiet = elapsedMs(Clock.monotonicMilliseconds(), since: lastHandshakeMs)
                if quiet >= 1000 {
                    handledSinceTrim = false
                    FreeHeapPages.release()
                } else {
                    waitMs = Int(1000 - quiet)
                }
            }
            // Leftover counts only make one more empty round; the timeout bounds shutdown.
            queued.wait(timeoutMs: waitMs)
            idle.store(false, ordering: .sequentiallyConsistent)
        }
    }

    /// Everything in the reply ring, one sendmmsg per 64 replies to the same socket. True if any.
    private func sendCookieReplies(_ sockets: [UDPSocket?]) -> Bool {
        var n = repliesPopped.load(ordering: .relaxed)
        let end = repliesPushed.load(ordering: .sequentiallyConsistent)
        guard n < end else { return false }
        var socketIndex = -1
        while n < end {
            let slot = n & replyMask
            if sendBatch.count == sendBatch.capacity || (sendBatch.count > 0 && replySocketIndexes[slot] != socketIndex) {
                flush(sockets, socketIndex)
                // Free the slots now, not after the whole ring: the receive thread refills meanwhile.
                repliesPopped.store(n, ordering: .releasing)
            }
            socketIndex = replySocketIndexes[slot]
            let i = sendBatch.count
            sendBatch.payload(i).copyMemory(from: replies.payload(slot), byteCount: replies.lengths[slot])
            sendBatch.lengths[i] = replies.lengths[slot]
            sendBatch.addresses[i] = replies.addresses[slot]
            sendBatch.count = i + 1
            n += 1
        }
        if sendBatch.count > 0 { flush(sockets, socketIndex) }
        repliesPopped.store(n, ordering: .releasing)
        return true
    }

    private func flush(_ sockets: [UDPSocket?], _ index: Int) {
        guard index >= 0, index < sockets.count, let socket = sockets[index] else {
            sendBatch.count = 0
            return
        }
        cookieRepliesSent.add(UInt64(sendBatch.send(on: socket)), ordering: .relaxed)
    }
}
