import CUDP

/// A few counters kept once per packet worker and summed when read. Each worker writes only its
/// own 64-byte line, so two workers never write the same cache line, and an add is a plain load
/// and store (one writer per line: no locked instruction).
public final class PerWorkerCounters: @unchecked Sendable {
    /// Counters per worker line.
    public static let perWorker = 8
    public let workers: Int
    @usableFromInline let lines: UnsafeMutablePointer<UInt64>

    public init(workers: Int) {
        self.workers = max(1, workers)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: self.workers * 64, alignment: 64)
        lines = raw.initializeMemory(as: UInt64.self, repeating: 0, count: self.workers * PerWorkerCounters.perWorker)
    }

    deinit { lines.deallocate() }

    /// Worker `worker` alone may call this for its line. Inlined into the packet threads.
    @inlinable @inline(__always)
    public func add(_ counter: Int, worker: Int, _ value: UInt64) {
        ccounter_add(lines + (worker &* PerWorkerCounters.perWorker &+ counter), value)
    }

    /// What `worker` has counted so far. Any thread.
    public func value(_ counter: Int, worker: Int) -> UInt64 {
        ccounter_load(lines + worker * PerWorkerCounters.perWorker + counter)
    }

    /// The sum over the workers. Any thread.
    public func total(_ counter: Int) -> UInt64 {
        (0..<workers).reduce(0) { $0 &+ value(counter, worker: $1) }
    }
}
