import Synchronization

/// Anti-replay window that several receive threads may update at once for the same keypair, without
/// a lock or an allocation per packet: a counter is accepted at most once in all, whichever threads
/// offer it. Same window as RFC 6479's with 4096 bits (counters `windowSize` = 4032 or more behind
/// the highest accepted are too old), and the same answers when used by one thread (see the limits).
///
/// Layout: 128 atomic slots of 64 bits, allocated once. Block B = counter >> 5 lives in slot B & 127;
/// the slot's high 32 bits are a tag, the low 32 bits of B >> 7 (the slot index already says B's low
/// 7 bits), its low 32 bits the counters of that block seen so far. 128 × 32 = 4096 counters: the
/// window and the block `highest` is in. `highest` (the largest counter accepted) only grows.
///
/// update: read the slot, then `highest`; reject a counter too old; a slot holding the counter's block
/// decides by the bit; a slot holding any other block is replaced by this block with only this bit
/// (that block is older, and all of its counters are out of the window once this one is in: below).
/// Raise `highest` if the counter is above it, then compare-and-swap the slot; on failure start
/// again from the value found.
///
/// Why a counter is never accepted twice, even under races. Every write to a slot is a
/// compare-and-swap, so a slot's values form one sequence and no update is lost. Once c (block B) is
/// in, each later value of its slot either still has tag B and c's bit (writes to the same block only
/// add bits) or follows the acceptance of some x of another block in that slot. x was judged after c
/// went in, so against highest >= c (c's taker raised it before its swap), so x > c - 4032: x's block
/// is B + 128 or later, x >= c + 4065. A second offer of c that reads such a slot value reads
/// `highest` after it, and the raise to x happened before x's swap (release on the swap, acquire on
/// the read), so it sees highest >= x and rejects c as too old. Hence the order — raise before the
/// swap, read the slot before `highest`: with the raise after the swap, a replay could read the new
/// tag with a stale `highest`, take the tag for an older block's, replace it and be accepted again.
/// The same argument shows that a slot never holds a block newer than the counter being judged
/// unless that counter is too old, so "another block" always means an older one: the tag only has to
/// be compared for equality.
///
/// Where a never-seen counter is rejected: when 4032 or more behind `highest` (like a single-thread RFC 6479 window;
/// under races `highest` may already hold a counter whose swap is still on its way, as if it had been
/// taken first); and when its slot still holds a block exactly 2^39·k blocks older (the tag is the
/// same: the slot went untouched for 2^44 counters, far beyond a key's life) whose bit at the same
/// place is set. That tag alias is the only difference from a single-thread RFC 6479 window of 4096 bits
/// (the tests' `ReplayWindow`) used by one thread.
public final class SharedReplayWindow: @unchecked Sendable {
    /// Counters this far (or farther) behind the highest accepted are too old (the guarantee is the
    /// 2048 the design asks for, with margin).
    public static let windowSize: UInt64 = 4096 - 64
    static let slotCount = 128
    static let slotMask: UInt64 = 127
    static let tagMask: UInt64 = 0xFFFF_FFFF_0000_0000

    /// `highest` alone on the first cache line, then the slots: written per received packet, so
    /// nothing another thread writes (a send counter, a neighbour's window) shares their lines.
    private let block: UnsafeMutablePointer<Atomic<UInt64>>
    private var highestAccepted: UnsafeMutablePointer<Atomic<UInt64>> { block }
    private var slots: UnsafeMutablePointer<Atomic<UInt64>> { block + SharedReplayWindow.firstSlot }
    static let firstSlot = 8
    static let words = firstSlot + slotCount

    public init() {
        // One cache-line-aligned block, allocated with the keypair, never on the packet path.
        let raw = UnsafeMutableRawPointer.allocate(byteCount: SharedReplayWindow.words * 8, alignment: 64)
        block = raw.bindMemory(to: Atomic<UInt64>.self, capacity: SharedReplayWindow.words)
        for i in 0..<SharedReplayWindow.words { (block + i).initialize(to: Atomic(0)) }
    }

    deinit {
        block.deinitialize(count: SharedReplayWindow.words)
        block.deallocate()
    }

    /// Highest counter accepted so far (meaningless before the first acceptance: 0).
    public var highest: UInt64 { highestAccepted.pointee.load(ordering: .relaxed) }

    /// Where a counter lives: its slot, the tag its block has there, its bit in the block.
    private struct Place {
        let slot: Int
        let tag: UInt64
        let bit: UInt64

        @inline(__always)
        init(_ counter: UInt64) {
            let block = counter >> 5
            slot = Int(block & SharedReplayWindow.slotMask)
            tag = (block >> 7) << 32
            bit = 1 << (counter & 31)
        }
    }

    /// Atomic max by compare-and-swap. Not `Atomic.max`: for UInt64 it compares as signed (Swift
    /// 6.3.1 emits `atomicrmw max`, not `umax`), so counters from 2^63 on would never raise it.
    @inline(__always)
    private func raiseHighest(to counter: UInt64, from observed: UInt64) {
        var current = observed
        while counter > current {
            let (exchanged, original) = highestAccepted.pointee.compareExchange(
                expected: current, desired: counter, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    @inline(__always)
    private static func tooOld(_ counter: UInt64, highest: UInt64) -> Bool {
        counter <= highest && highest - counter >= SharedReplayWindow.windowSize
    }

    /// Would `counter` be accepted now? Changes nothing.
    public func check(_ counter: UInt64) -> Bool {
        if counter >= MessageLimits.rejectAfterMessages { return false }
        let place = Place(counter)
        let found = slots[place.slot].load(ordering: .acquiring)
        if SharedReplayWindow.tooOld(counter, highest: highestAccepted.pointee.load(ordering: .relaxed)) { return false }
        return found & SharedReplayWindow.tagMask != place.tag || found & place.bit == 0
    }

    /// Check and mark: true exactly once per fresh counter across all threads. Call only after the
    /// packet authenticated.
    public func update(_ counter: UInt64) -> Bool {
        if counter >= MessageLimits.rejectAfterMessages { return false }
        let place = Place(counter)
        var found = slots[place.slot].load(ordering: .acquiring)
        while true {
            let highest = highestAccepted.pointee.load(ordering: .relaxed)
            if SharedReplayWindow.tooOld(counter, highest: highest) { return false }
            let desired: UInt64
            if found & SharedReplayWindow.tagMask == place.tag {
                if found & place.bit != 0 { return false }
                desired = found | place.bit
            } else {
                desired = place.tag | place.bit
            }
            if counter > highest { raiseHighest(to: counter, from: highest) }
            let (exchanged, current) = slots[place.slot].compareExchange(
                expected: found, desired: desired, ordering: .acquiringAndReleasing)
            if exchanged { return true }
            found = current
        }
    }
}
