import JVPNCore
import Synchronization

/// What the receive thread learns that the control plane must decide on: authenticated control
/// messages, confirmations of a responder's keys, refused control frames, data from an unbound
/// address, closed TCP connections. A gateway's receive thread queues them for the control worker
/// (`ControlFactRing`) instead of taking the host lock, so a handshake storm or a long control
/// decision never stalls the data plane; a client delivers them at once (one peer, no storm, and its
/// probe replies time the path).
enum ControlFact {
    /// An authenticated, fresh control frame (`message` nil: it did not decode), `bytes` long on
    /// the wire, and the keys that opened it: by the time the worker applies it, the peer may have
    /// moved on to other keys (a frame on keys it no longer holds is stale and ignored), or these
    /// may be the pending keys whose confirmation found the queue full (the frame confirms them).
    case control(peer: Int, ControlMessage?, keypair: Keypair, from: TransportAddress, bytes: Int)
    /// A frame authenticated on keys the responder had not yet confirmed (`bytes`: the datagram).
    case confirm(peer: Int, keypair: Keypair, from: TransportAddress, bytes: Int)
    /// A control frame for a known session failed its proof or its freshness check.
    case refused(peer: Int, ReasonCode, from: TransportAddress)
    /// Authenticated data from an address other than the bound path.
    case unboundSource(peer: Int, from: TransportAddress, bytes: Int)
    /// A TCP connection ended; the receive thread has stopped reading it.
    case connectionClosed(UInt64)
}

/// Control facts from the receive thread (single producer) to the control worker (single
/// consumer): preallocated slots and two counters, no lock and no allocation. When full, the
/// fact is dropped and counted: a control exchange is retried by its sender, a confirmation is
/// reported again by the next frame on the same keys (or confirmed by a control frame on them), a
/// closed connection is queued again by the receive thread, and refusals only feed the
/// security-event limiter.
final class ControlFactRing: @unchecked Sendable {
    /// A gateway's: about 450 KB (a slot is about 112 bytes).
    static let gatewayCapacity = 4096
    private let capacity: Int
    private let mask: Int
    private let slots: UnsafeMutablePointer<ControlFact?>
    private let pushed = Atomic<Int>(0)
    private let popped = Atomic<Int>(0)
    let droppedFull = Atomic<UInt64>(0)

    /// `capacity` must be a power of two.
    init(capacity: Int) {
        precondition(capacity > 0 && capacity & (capacity - 1) == 0, "capacity must be a power of two")
        self.capacity = capacity
        mask = capacity - 1
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: nil, count: capacity)
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    /// Facts taken since start: the consumer tells from it whether a round took any.
    var poppedCount: Int { popped.load(ordering: .relaxed) }

    /// Producer only. False (and counted) when the ring is full.
    @discardableResult
    func push(_ fact: ControlFact) -> Bool {
        let n = pushed.load(ordering: .relaxed)
        guard n - popped.load(ordering: .acquiring) < capacity else {
            droppedFull.add(1, ordering: .relaxed)
            return false
        }
        slots[n & mask] = fact
        // Sequentially consistent, as the worker's idle flag: either it sees this fact before it
        // sleeps, or the producer sees it idle and wakes it.
        pushed.store(n + 1, ordering: .sequentiallyConsistent)
        return true
    }

    /// Consumer only: the oldest fact, nil when none.
    func pop() -> ControlFact? {
        let n = popped.load(ordering: .relaxed)
        guard n < pushed.load(ordering: .sequentiallyConsistent) else { return nil }
        let slot = n & mask
        let fact = slots[slot]
        slots[slot] = nil
        popped.store(n + 1, ordering: .releasing)
        return fact
    }

    var isEmpty: Bool { popped.load(ordering: .relaxed) >= pushed.load(ordering: .sequentiallyConsistent) }
}
