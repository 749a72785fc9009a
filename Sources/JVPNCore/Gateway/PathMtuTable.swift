/// What the client reported (PATH_MTU) about each of its paths, by the address the gateway sees
/// it from: the largest datagram the path carries both ways. Kept for standby paths too, so that
/// the first packet after a REATTACH to one of them already fits. Bounded: `capacity` addresses,
/// the least recently reported one replaced first (never the bound one).
public struct PathMtuTable<Address: Hashable & Sendable>: Equatable, Sendable {
    public static var capacity: Int { 8 }

    struct Entry: Equatable, Sendable {
        var address: Address
        var maxDatagram: Int
        var reportedMs: UInt64
    }

    private var entries: [Entry] = []

    public init() {}

    public func maxDatagram(towards a: Address) -> Int? {
        entries.first { $0.address == a }?.maxDatagram
    }

    /// Records a report from `a`; true if what is known about `a` changed.
    public mutating func record(_ a: Address, maxDatagram: Int, bound: Address?, nowMs: UInt64) -> Bool {
        if let i = entries.firstIndex(where: { $0.address == a }) {
            let changed = entries[i].maxDatagram != maxDatagram
            entries[i].maxDatagram = maxDatagram
            entries[i].reportedMs = nowMs
            return changed
        }
        if entries.count >= PathMtuTable.capacity,
           let oldest = entries.indices.filter({ entries[$0].address != bound }).min(by: { entries[$0].reportedMs < entries[$1].reportedMs }) {
            entries.remove(at: oldest)
        }
        entries.append(Entry(address: a, maxDatagram: maxDatagram, reportedMs: nowMs))
        return true
    }
}
