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
    /// the wire.
    case control(peer: Int, ControlMessage?, from: TransportAddress, bytes: Int)
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
/// fact is dropped and counted: every control exchange is retried by its sender, and a confirmation
/// is reported again by the next frame on the same keys.
final class ControlFactRing: @unchecked Sendable {
    static let capacity = 4096
    private static let mask = capacity - 1
    private let slots = UnsafeMutablePointer<ControlFact?>.allocate(capacity: ControlFactRing.capacity)
    private let pushed = Atomic<Int>(0)
    private let popped = Atomic<Int>(0)
    let droppedFull = Atomic<UInt64>(0)

    init() { slots.initialize(repeating: nil, count: ControlFactRing.capacity) }

    deinit {
        slots.deinitialize(count: ControlFactRing.capacity)
        slots.deallocate()
    }

    /// Producer only. False (and counted) when the ring is full.
    @discardableResult
    func push(_ fact: ControlFact) -> Bool {
        let n = pushed.load(ordering: .relaxed)
        guard n - popped.load(ordering: .acquiring) < ControlFactRing.capacity else {
            droppedFull.add(1, ordering: .relaxed)
            return false
        }
        slots[n & ControlFactRing.mask] = fact
        // Sequentially consistent, as the worker's idle flag: either it sees this fact before it
        // sleeps, or the producer sees it idle and wakes it.
        pushed.store(n + 1, ordering: .sequentiallyConsistent)
        return true
    }

    /// Consumer only: the oldest fact, nil when none.
    func pop() -> ControlFact? {
        let n = popped.load(ordering: .relaxed)
        guard n < pushed.load(ordering: .sequentiallyConsistent) else { return nil }
        let slot = n & ControlFactRing.mask
        let fact = slots[slot]
        slots[slot] = nil
        popped.store(n + 1, ordering: .releasing)
        return fact
    }

    var isEmpty: Bool { popped.load(ordering: .relaxed) >= pushed.load(ordering: .sequentiallyConsistent) }
}
