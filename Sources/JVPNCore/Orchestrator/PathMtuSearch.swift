/// Path MTU discovery for one path, in the manner of datagram PLPMTUD (RFC 8899): padded,
/// authenticated probes, which the gateway answers padded to the same size (so one probe tests
/// both directions), search the largest IP packet the path carries, between the minimum of its IP
/// version and the uplink's own MTU. Pure: time comes in, probes to send go out.
///
/// - A *round* sends up to `sizesPerRound` probe sizes at once plus one small probe, and ends when
///   all are answered or after its timeout. The small probe proves that the path answered during
///   the round: a size counts as lost only then, so a path that went silent is never mistaken for
///   a small one (its death is the liveness machinery's business).
/// - A size is too big once it, as the smallest unanswered size of a round, has gone unanswered in
///   `maxProbes` rounds (RFC 8899's MAX_PROBES); an answer to it or to anything larger refutes it.
///   On a path that loses probes at random, more rounds: enough that random loss alone would
///   silence a size that often with a chance below 1 in 10,000 (`missesNeeded`), so a lossy path
///   is not taken for a small one.
/// - The first round tries the base (1280) and the uplink's MTU: most paths carry the full size and
///   one round settles them. After that each round splits what remains of the interval.
/// - Complete: `inUse` is what the data plane fits packets to. It is confirmed again every
///   `confirmIntervalMs`, and at once on request (after a switch, or when the active path goes
///   quiet under traffic); below the uplink's MTU a new search upwards starts every
///   `raiseIntervalMs` (the path may have grown).
/// - Black hole: `inUse` goes unanswered in `maxProbes` rounds while small probes are answered.
///   `inUse` falls to the base at once (to the minimum when the base itself failed) and a search
///   starts below the size that failed.
///
/// Until the first search completes `inUse` is nil and the data plane applies no limit: an ICMP
/// "too big" sent on a guess would shrink the hosts' own path MTU for minutes.
public struct PathMtuSearch: Equatable, Sendable {
    public enum Phase: String, Sendable {
        /// Looking for the largest size; `inUse` is the last complete result (nil before the first).
        case searching
        case complete
        /// Even the minimum size is lost while small probes are answered: `inUse` is the minimum,
        /// and the search starts over after `raiseIntervalMs`.
        case error
    }

    /// One probe to send: `size` is the IP packet size to pad it to, nil for the round's small probe.
    public struct Probe: Equatable, Sendable {
        public let seq: UInt32
        public let size: Int?
    }

    /// RFC 8899's BASE_PLPMTU for IPv6, used for IPv4 too: the search starts there.
    public static let baseMtu = 1280
    /// The smallest IPv4 packet every host must accept; IPv6's minimum is the base.
    public static let minimumIPv4Mtu = 576
    /// IPv6's minimum MTU, for the packets inside the tunnel: a path that cannot carry this much
    /// inner packet is ranked below every path that can.
    public static let innerFloor = 1280
    /// Largest size searched (a jumbo frame), whatever the uplink says.
    public static let largestMtu = 9000
    public static let maxProbes = 3
    /// The most rounds a size needs to go unanswered on a lossy path.
    public static let maxMissesOnLossyPath = 12
    public static let sizesPerRound = 3
    /// A round waits at least this long for its answers.
    public static let minTimeoutMs: UInt64 = 50
    public static let confirmIntervalMs: UInt64 = 15_000
    public static let raiseIntervalMs: UInt64 = 60_000
    /// Sequence numbers of MTU probes have this bit set, those of the regular probes never do: a
    /// reply is routed by it, so MTU probes never count in a path's loss, RTT or silence.
    public static let seqFlag: UInt32 = 0x8000_0000

    struct Round: Equatable, Sendable {
        var deadlineMs: UInt64
        var controlSeq: UInt32
        var controlAnswered = false
        var sizes: [Int]
        var seqs: [UInt32]
        var answered: [Bool]

        var allAnswered: Bool { controlAnswered && !answered.contains(false) }
    }

    /// IP and UDP headers in front of a frame on this path: 28 (IPv4) or 48 (IPv6).
    public let outerHeaderBytes: Int
    public let minMtu: Int
    public private(set) var maxMtu: Int
    public private(set) var phase: Phase = .searching
    /// The size the data plane fits packets to; nil until the first search completes.
    public private(set) var inUse: Int?
    /// Largest size answered in the current search.
    private var confirmed: Int?
    /// Smallest size found too big (`maxMtu + 1`: none).
    private var ceiling: Int
    /// Smallest size unanswered in the last round(s), with how many rounds it went unanswered.
    private var suspect: Int?
    private var misses = 0
    private var round: Round?
    private var notBeforeMs: UInt64 = 0
    private var nextConfirmMs: UInt64 = .max
    private var nextRaiseMs: UInt64 = .max
    private var seq: UInt32 = 0
    public private(set) var blackHoles = 0
    public private(set) var probesSent = 0

    public init(uplinkMtu: Int, ipv6: Bool) {
        outerHeaderBytes = ipv6 ? 48 : 28
        minMtu = ipv6 ? PathMtuSearch.baseMtu : PathMtuSearch.minimumIPv4Mtu
        maxMtu = min(max(uplinkMtu, minMtu), PathMtuSearch.largestMtu)
        ceiling = maxMtu + 1
    }

    public static func isMtuProbe(seq: UInt32) -> Bool { seq & seqFlag != 0 }

    /// The largest transport datagram (UDP payload) `inUse` allows.
    public var maxDatagram: Int? { inUse.map { $0 - outerHeaderBytes } }

    /// The largest inner IP packet `inUse` carries in one frame.
    public var innerCapacity: Int? { inUse.map { $0 - outerHeaderBytes - Frame.overhead } }

    /// Known to carry less than IPv6's minimum inside the tunnel.
    public var isBelowFloor: Bool { innerCapacity.map { $0 < PathMtuSearch.innerFloor } ?? false }

    /// Probes to send now. `timeoutMs` is how long answers on this path may take; `lossPct` is the
    /// share of the path's regular probes lost (round trip); `budget` bounds what all paths
    /// together send (a round that cannot have all its probes waits).
    public mutating func poll(nowMs now: UInt64, timeoutMs: UInt64, lossPct: Double = 0, budget: inout TokenBucket) -> [Probe] {
        if let r = round {
            guard r.allAnswered || now >= r.deadlineMs else { return [] }
            round = nil
            resolve(r, now, timeoutMs, missesNeeded: PathMtuSearch.missesNeeded(lossPct: lossPct))
        }
        guard now >= notBeforeMs else { return [] }
        let sizes = dueSizes(now)
        guard !sizes.isEmpty, budget.take(count: UInt64(sizes.count + 1), nowMs: now) else { return [] }
        let control = nextSeq()
        let seqs = sizes.map { _ in nextSeq() }
        round = Round(deadlineMs: now + max(timeoutMs, PathMtuSearch.minTimeoutMs), controlSeq: control, sizes: sizes, seqs: seqs,
                      answered: sizes.map { _ in false })
        probesSent += sizes.count + 1
        return [Probe(seq: control, size: nil)] + zip(seqs, sizes).map { Probe(seq: $0, size: $1) }
    }

    /// A reply to one of this search's probes; true if it was one of the round in flight. A round
    /// whose probes are all answered ends at once.
    @discardableResult
    public mutating func replied(seq s: UInt32, nowMs now: UInt64) -> Bool {
        guard var r = round else { return false }
        if s == r.controlSeq {
            r.controlAnswered = true
        } else if let i = r.seqs.firstIndex(of: s) {
            r.answered[i] = true
        } else {
            return false
        }
        round = r
        if r.allAnswered {
            round = nil
            resolve(r, now, 0, missesNeeded: PathMtuSearch.maxProbes)
        }
        return true
    }

    /// Confirm the size in use at the next poll (the path just became active, or went quiet under
    /// traffic). A search in progress is left alone: it is already probing.
    public mutating func confirmSoon(nowMs now: UInt64) {
        switch phase {
        case .complete, .error:
            nextConfirmMs = min(nextConfirmMs, now)
        case .searching:
            // A search upwards from the size in use is abandoned for now: whether that size still
            // passes matters more. A first search, or one after a black hole, goes on.
            guard let u = inUse, confirmed == u else { return }
            round = nil
            complete(u, now)
            nextConfirmMs = now
        }
    }

    /// The uplink's MTU changed: the search bounds follow, and a search starts from what is still
    /// known to pass.
    public mutating func uplinkMtuChanged(_ mtu: Int, nowMs now: UInt64) {
        let newMax = min(max(mtu, minMtu), PathMtuSearch.largestMtu)
        guard newMax != maxMtu else { return }
        maxMtu = newMax
        if let u = inUse, u > maxMtu { inUse = maxMtu }
        restartSearch(from: inUse)
    }

    /// Everything measured is forgotten (the uplink came back or changed address: maybe another
    /// network). Counters and the sequence numbers go on.
    public mutating func reset() {
        var fresh = PathMtuSearch(uplinkMtu: maxMtu, ipv6: outerHeaderBytes == 48)
        fresh.seq = seq
        fresh.blackHoles = blackHoles
        fresh.probesSent = probesSent
        self = fresh
    }

    // MARK: rounds

    private mutating func nextSeq() -> UInt32 {
        seq = (seq &+ 1) & ~PathMtuSearch.seqFlag
        return seq | PathMtuSearch.seqFlag
    }

    /// The sizes of the round due now (empty: none due).
    private mutating func dueSizes(_ now: UInt64) -> [Int] {
        switch phase {
        case .searching:
            return searchSizes()
        case .complete, .error:
            guard let u = inUse else { return [] }
            if suspect != nil { return [u] } // a confirmation went unanswered: ask again at once
            if now >= nextRaiseMs {
                restartSearch(from: phase == .complete ? u : nil)
                return searchSizes()
            }
            return now >= nextConfirmMs ? [u] : []
        }
    }

    /// Sizes that split what is unknown: the suspect again (it needs `maxProbes` misses), the base
    /// and the uplink's MTU first, then evenly spread points of the open interval.
    private func searchSizes() -> [Int] {
        let lo = confirmed ?? (minMtu - 1)
        let hi = suspect ?? ceiling
        var sizes: [Int] = []
        if let s = suspect { sizes.append(s) }
        if confirmed == nil, PathMtuSearch.baseMtu > lo, PathMtuSearch.baseMtu < hi {
            sizes.append(PathMtuSearch.baseMtu)
        }
        if suspect == nil, ceiling > maxMtu, maxMtu > lo, !sizes.contains(maxMtu) { sizes.append(maxMtu) }
        if confirmed == nil && !sizes.isEmpty { return sizes }
        let room = PathMtuSearch.sizesPerRound - sizes.count
        guard room > 0, hi - lo > 1 else { return sizes }
        for k in 1...room {
            let s = lo + (hi - lo) * k / (room + 1)
            if s > lo, s < hi, !sizes.contains(s) { sizes.append(s) }
        }
        return sizes
    }

    /// Rounds a size must go unanswered before it counts as too big, on a path that loses `lossPct`
    /// of its probes at random: `maxProbes`, or as many as make random loss alone that likely
    /// below 1 in 10,000 (10 % loss: 5, 30 %: 8), at most `maxMissesOnLossyPath`.
    public static func missesNeeded(lossPct: Double) -> Int {
        let p = min(max(lossPct, 0), 100) / 100
        var needed = 0
        var chance = 1.0
        while chance >= 0.0001 && needed < maxMissesOnLossyPath {
            needed += 1
            chance *= p
        }
        return max(maxProbes, needed)
    }

    private mutating func resolve(_ r: Round, _ now: UInt64, _ timeoutMs: UInt64, missesNeeded: Int) {
        let best = zip(r.sizes, r.answered).filter { $0.1 }.map { $0.0 }.max()
        switch phase {
        case .searching:
            if let b = best { confirmed = max(confirmed ?? b, b) }
        case .complete:
            if let b = best, let u = inUse, b >= u { nextConfirmMs = now + PathMtuSearch.confirmIntervalMs }
        case .error:
            // The minimum passes again: search from there.
            if let b = best, let u = inUse, b >= u { restartSearch(from: b) }
        }
        // Sizes at or below what was answered are known to pass: their silence was loss.
        let floor = (phase == .searching ? confirmed : best) ?? 0
        if let s = suspect, s <= floor {
            suspect = nil
            misses = 0
        }
        if !r.controlAnswered {
            // The path itself did not answer: its silence says nothing about sizes. Later again.
            notBeforeMs = now + max(timeoutMs, PathMtuSearch.minTimeoutMs)
        } else if let lost = zip(r.sizes, r.answered).filter({ !$0.1 && $0.0 > floor }).map({ $0.0 }).min() {
            if lost == suspect {
                misses += 1
            } else if suspect.map({ lost < $0 }) ?? true {
                suspect = lost
                misses = 1
            }
        }
        if let s = suspect, misses >= missesNeeded {
            suspect = nil
            misses = 0
            switch phase {
            case .searching:
                ceiling = min(ceiling, s)
            case .complete, .error:
                blackHole(failed: s)
            }
        }
        guard phase == .searching else { return }
        if let c = confirmed, c >= maxMtu || ceiling - c <= 1 {
            complete(c, now)
        } else if confirmed == nil, ceiling <= minMtu {
            phase = .error
            inUse = minMtu
            nextConfirmMs = .max
            nextRaiseMs = now + PathMtuSearch.raiseIntervalMs
        }
    }

    private mutating func complete(_ size: Int, _ now: UInt64) {
        phase = .complete
        inUse = size
        confirmed = size
        suspect = nil
        misses = 0
        nextConfirmMs = now + PathMtuSearch.confirmIntervalMs
        nextRaiseMs = size < maxMtu ? now + PathMtuSearch.raiseIntervalMs : .max
    }

    /// The size in use stopped passing while small probes do: fall back at once, search below it.
    private mutating func blackHole(failed: Int) {
        blackHoles += 1
        ceiling = failed
        confirmed = nil
        inUse = failed > PathMtuSearch.baseMtu ? PathMtuSearch.baseMtu : minMtu
        phase = .searching
        nextConfirmMs = .max
        nextRaiseMs = .max
    }

    /// A new search that starts from `known` (a size still known to pass, or nil) up to the uplink's MTU.
    private mutating func restartSearch(from known: Int?) {
        phase = .searching
        confirmed = known
        ceiling = maxMtu + 1
        suspect = nil
        misses = 0
        round = nil
        nextConfirmMs = .max
        nextRaiseMs = .max
    }
}
