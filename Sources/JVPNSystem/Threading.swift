import Glibc

// pthread-based primitives so the daemon needs no Foundation (Thread, NSLock, DispatchSemaphore):
// Foundation and ICU alone kept ~12 MB of the daemon's resident set.

/// A plain mutex for control-plane state. The data plane never takes it per packet.
public final class Lock: @unchecked Sendable {
    private let m: UnsafeMutablePointer<pthread_mutex_t>

    public init() {
        m = .allocate(capacity: 1)
        pthread_mutex_init(m, nil)
    }

    deinit {
        pthread_mutex_destroy(m)
        m.deallocate()
    }

    public func lock() { pthread_mutex_lock(m) }
    public func unlock() { pthread_mutex_unlock(m) }

    @inline(__always)
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(m)
        defer { pthread_mutex_unlock(m) }
        return try body()
    }
}

/// A counting semaphore with a bounded wait.
public final class Semaphore: @unchecked Sendable {
    private let s: UnsafeMutablePointer<sem_t>

    public init(value: UInt32 = 0) {
        s = .allocate(capacity: 1)
        sem_init(s, 0, value)
    }

    deinit {
        sem_destroy(s)
        s.deallocate()
    }

    public func signal() { sem_post(s) }

    /// Waits at most `timeoutMs`; false on timeout.
    @discardableResult
    public func wait(timeoutMs: Int) -> Bool {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let ns = Int(ts.tv_nsec) + (timeoutMs % 1000) * 1_000_000
        ts.tv_sec += timeoutMs / 1000 + ns / 1_000_000_000
        ts.tv_nsec = ns % 1_000_000_000
        while sem_timedwait(s, &ts) != 0 {
            if errno != EINTR { return false }
        }
        return true
    }
}

/// Errors from starting a thread.
public enum ThreadError: Error, Equatable {
    case createFailed(errno: Int32)
}

/// A detached named OS thread running `body`. Callers synchronise its end (e.g. with a Semaphore).
public enum DetachedThread {
    private final class Box {
        let name: String
        let body: () -> Void
        init(_ name: String, _ body: @escaping () -> Void) { self.name = name; self.body = body }
    }

    /// Names the calling thread (shown by top -H, ps -L); Linux keeps 15 bytes.
    private static func nameCurrentThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        let bytes = Array(name.utf8.prefix(15))
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
    }

    public static func start(name: String, _ body: @escaping () -> Void) throws {
        let box = Unmanaged.passRetained(Box(name, body)).toOpaque()
        var attr = pthread_attr_t()
        pthread_attr_init(&attr)
        defer { pthread_attr_destroy(&attr) }
        pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
        var tid = pthread_t()
        let rc = pthread_create(&tid, &attr, { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            DetachedThread.nameCurrentThread(box.name)
            box.body()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<Box>.fromOpaque(box).release()
            throw ThreadError.createFailed(errno: rc)
        }
    }
}
