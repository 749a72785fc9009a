import JVPNSystem
import Glibc
import Synchronization

/// Append-only JSON Lines event log. `append` never blocks the caller on I/O: lines go to a bounded
/// queue drained by a writer thread; when the queue is full or the file cannot be written, the
/// line is dropped and counted (reported as `events_dropped`).
public final class EventLog: @unchecked Sendable {
    public let path: String
    private let queue = Mutex<[String]>([])
    private let wake = Semaphore()
    private let dropped = Atomic<UInt64>(0)
    private let stopping = Atomic<Bool>(false)
    private let capacity = 4096
    private var fd: Int32 = -1
    private var running = false
    private let finished = Semaphore()
    /// Extra sinks (e.g. syslog) get every line on the writer thread.
    public var forward: [(String) -> Void] = []

    public init(path: String) {
        self.path = path
    }

    public var droppedCount: UInt64 { dropped.load(ordering: .relaxed) }

    public func start() throws {
        try DetachedThread.start(name: "jvpn-events") { [self] in run() }
        running = true
    }

    public func append(_ line: String) {
        let accepted = queue.withLock { q -> Bool in
            guard q.count < capacity else { return false }
            q.append(line)
            return true
        }
        if accepted { wake.signal() } else { dropped.add(1, ordering: .relaxed) }
    }

    /// Flushes what is queued and stops the writer (bounded wait).
    public func stop() {
        guard running else { return }
        stopping.store(true, ordering: .relaxed)
        wake.signal()
        finished.wait(timeoutMs: 2000)
    }

    private func openIfNeeded() -> Bool {
        if fd >= 0 { return true }
        let dir = FileIO.directory(of: path)
        if !dir.isEmpty { try? FileIO.createDirectories(dir) }
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        return fd >= 0
    }

    private func run() {
        while true {
            wake.wait(timeoutMs: 1000)
            let lines = queue.withLock { q -> [String] in
                let l = q
                q.removeAll(keepingCapacity: true)
                return l
            }
            for line in lines {
                for sink in forward { sink(line) }
                guard openIfNeeded() else {
                    dropped.add(1, ordering: .relaxed)
                    continue
                }
                let bytes = Array((line + "\n").utf8)
                // One write per line with O_APPEND keeps lines whole even with concurrent readers.
                let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress!, $0.count) }
                if n != bytes.count {
                    dropped.add(1, ordering: .relaxed)
                    close(fd)
                    fd = -1
                }
            }
            if stopping.load(ordering: .relaxed) && queue.withLock({ $0.isEmpty }) { break }
        }
        if fd >= 0 { close(fd) }
        finished.signal()
    }
}
