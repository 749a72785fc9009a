@testable import JVPNCore

/// RFC 6479 anti-replay window: 4096 bits in 64 words used as a ring, tracking the highest counter
/// seen. Counters up to 4096-64 = 4032 behind the highest are judged individually (the guarantee is
/// the 2048 the design asks for, with margin); older ones are rejected. A jump forward clears only the
/// words it passes over, so each update is O(1) amortised and nothing is allocated.
///
/// The reference model `SharedReplayWindow` is checked against (the data plane uses the shared one:
/// several receive threads may open one keypair's frames). Not thread-safe.
struct ReplayWindow: Sendable {
    static let bits = 4096
    static let wordCount = 64
    static let wordMask: UInt64 = 63
    /// Counters this far (or farther) behind the newest are too old.
    static let windowSize: UInt64 = UInt64(bits - 64)

    typealias Words = (
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
        UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)

    private var words: Words = (
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    /// Highest counter accepted so far (meaningless while `words` is all zero: counter 0 is then
    /// simply "not yet seen").
    private(set) var highest: UInt64 = 0

    init() {}

    /// Would `counter` be accepted? Does not change the window.
    func check(_ counter: UInt64) -> Bool {
        if counter >= MessageLimits.rejectAfterMessages { return false }
        if counter > highest { return true }
        if highest - counter >= ReplayWindow.windowSize { return false }
        let bit = counter & UInt64(ReplayWindow.bits - 1)
        let w = Int(bit >> 6)
        return withUnsafeBytes(of: words) { p in
            (p.load(fromByteOffset: w * 8, as: UInt64.self) >> (bit & ReplayWindow.wordMask)) & 1 == 0
        }
    }

    /// Check and mark: true exactly once per fresh counter. Call only after the packet authenticated.
    mutating func update(_ counter: UInt64) -> Bool {
        if counter >= MessageLimits.rejectAfterMessages { return false }
        let wordCount = UInt64(ReplayWindow.wordCount)
        return withUnsafeMutableBytes(of: &words) { raw in
            let p = raw.baseAddress!.assumingMemoryBound(to: UInt64.self)
            if counter > highest {
                let oldWord = highest >> 6
                let newWord = counter >> 6
                // Clear every word between the old head and the new one (at most all of them).
                let steps = min(newWord - oldWord, wordCount)
                var i: UInt64 = 1
                while i <= steps {
                    p[Int((oldWord &+ i) & (wordCount - 1))] = 0
                    i += 1
                }
                highest = counter
            } else if highest - counter >= ReplayWindow.windowSize {
                return false
            }
            let bit = counter & UInt64(ReplayWindow.bits - 1)
            let w = Int(bit >> 6)
            let mask: UInt64 = 1 << (bit & ReplayWindow.wordMask)
            if p[w] & mask != 0 { return false }
            p[w] |= mask
            return true
        }
    }

    mutating func reset() { self = ReplayWindow() }
}
