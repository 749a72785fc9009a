import Glibc
import JVPNCore
import JVPNSystem
import Synchronization

/// One TCP connection of the TCP transport (a client's TCP path, or one the gateway accepted).
/// The receive thread alone reads it into `buffer` and parses frames there (docs/PROTOCOL.md 10);
/// the send thread (data) and the control plane (probes, REATTACH, handshake messages) write it
/// under `writeLock`, taken once per batch, never per packet. A write never waits: what the socket
/// does not take (`TCP_NOTSENT_LOWAT`) is dropped, except the rest of a frame it took in part,
/// which goes first on the next write so the stream stays well framed.
final class TcpConnection: FrameTransport, @unchecked Sendable {
    /// Buffer of a connection nothing has authenticated yet: a handshake initiation, or the first
    /// probe of a standby path, fits with room to spare; anything longer is refused (10.3).
    static let unauthenticatedBuffer = 2048
    /// Buffer once frames authenticate and the stream carries bulk data (or from the start, on a
    /// client): many frames per read.
    static let authenticatedBuffer = 128 * 1024
    /// Frames per gathered write (two buffers each: prefix, frame).
    static let framesPerWrite = 64

    let id: UInt64
    let socket: TcpSocket
    /// The peer's address, unmapped.
    let remote: SocketAddress
    var address: TransportAddress { TransportAddress(via: .tcp(connection: id), address: remote) }

    // Receive thread only.
    private(set) var buffer: UnsafeMutableRawPointer
    private(set) var capacity: Int
    var filled = 0
    /// A frame on it passed its proof (or it is a client's own connection to its gateway).
    var authenticated: Bool
    /// The gateway's admission entry.
    var tableID: StreamConnectionTable.ID?

    // Write side, under writeLock.
    private let writeLock = Lock()
    private var iov: UnsafeMutablePointer<iovec>?
    private var prefixes: UnsafeMutablePointer<UInt16>?
    /// The unsent rest of a frame the socket took in part: bytes [restSent, restLength).
    private var rest: UnsafeMutableRawPointer?
    private var restLength = 0
    private var restSent = 0
    /// A rest is waiting: the receive thread's tick looks at this without the lock.
    private let restPending = Atomic<Bool>(false)
    var hasPartialFrame: Bool { restPending.load(ordering: .acquiring) }

    /// Frames dropped because the connection was backed up or broken.
    let framesDropped = Atomic<UInt64>(0)
    private let isClosed = Atomic<Bool>(false)

    init(id: UInt64, socket: TcpSocket, remote: SocketAddress, authenticated: Bool) {
        self.id = id
        self.socket = socket
        self.remote = remote.unmapped
        self.authenticated = authenticated
        capacity = authenticated ? TcpConnection.authenticatedBuffer : TcpConnection.unauthenticatedBuffer
        buffer = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit {
        buffer.deallocate()
        iov?.deallocate()
        prefixes?.deallocate()
        rest?.deallocate()
    }

    var closed: Bool { isClosed.load(ordering: .acquiring) }

    /// Ends the connection (both directions); writes from now on are dropped.
    func close() {
        isClosed.store(true, ordering: .releasing)
        socket.shutdown()
    }

    /// Receive thread: room for the largest frame and many more (the connection authenticated and
    /// carries more than its small buffer holds).
    func grow() {
        guard capacity < TcpConnection.authenticatedBuffer else { return }
        let bigger = UnsafeMutableRawPointer.allocate(byteCount: TcpConnection.authenticatedBuffer, alignment: 16)
        bigger.copyMemory(from: buffer, byteCount: filled)
        buffer.deallocate()
        buffer = bigger
        capacity = TcpConnection.authenticatedBuffer
    }

    /// Receive thread: the bytes before `offset` were consumed; the rest moves to the front.
    func consume(upTo offset: Int) {
        guard offset > 0 else { return }
        if offset < filled { buffer.copyMemory(from: buffer + offset, byteCount: filled - offset) }
        filled -= offset
    }

    // MARK: FrameTransport

    var isStream: Bool { true }

    func sendBatch(_ batch: DatagramBatch, coalescing: Bool) -> Bool {
        var start = 0
        while start < batch.count {
            let n = min(TcpConnection.framesPerWrite, batch.count - start)
            write(count: n) { (UnsafeRawPointer(batch.payload(start + $0)), batch.lengths[start + $0]) }
            start += n
        }
        batch.count = 0
        return true
    }

    func sendBurst(_ batch: DatagramBatch, start: Int, count: Int) -> SegmentedSend {
        var i = start
        while i < start + count {
            let n = min(TcpConnection.framesPerWrite, start + count - i)
            let base = i
            write(count: n) { (UnsafeRawPointer(batch.payload(base + $0)), batch.lengths[base + $0]) }
            i += n
        }
        return .sent
    }

    func sendOne(_ bytes: UnsafeRawPointer, length: Int, to: SocketAddress) -> Bool {
        write(count: 1) { _ in (bytes, length) } == 1
    }

    /// Writes `count` frames with their prefixes in one gathered write; returns how many went
    /// whole or in part (the rest of a partial one is kept and goes first next time).
    @discardableResult
    private func write(count: Int, frame: (Int) -> (UnsafeRawPointer, Int)) -> Int {
        writeLock.lock()
        defer { writeLock.unlock() }
        guard !closed, flushRest() else {
            framesDropped.add(UInt64(count), ordering: .relaxed)
            return 0
        }
        let iov = self.iov ?? .allocate(capacity: 2 * TcpConnection.framesPerWrite)
        let prefixes = self.prefixes ?? .allocate(capacity: TcpConnection.framesPerWrite)
        self.iov = iov
        self.prefixes = prefixes
        var total = 0
        for k in 0..<count {
            let (p, n) = frame(k)
            prefixes[k] = UInt16(truncatingIfNeeded: n).littleEndian
            iov[2 * k] = iovec(iov_base: UnsafeMutableRawPointer(prefixes + k), iov_len: StreamFraming.prefixLength)
            iov[2 * k + 1] = iovec(iov_base: UnsafeMutableRawPointer(mutating: p), iov_len: n)
            total += StreamFraming.prefixLength + n
        }
        let sent = socket.send(iov, count: 2 * count)
        if sent < 0 {
            if -sent != EAGAIN && -sent != EWOULDBLOCK && -sent != EINTR { isClosed.store(true, ordering: .releasing) }
            framesDropped.add(UInt64(count), ordering: .relaxed)
            return 0
        }
        if sent == total { return count }
        // The socket took part of it: keep the rest of the frame it stopped in, drop the others.
        var offset = 0
        for k in 0..<count {
            let size = StreamFraming.prefixLength + iov[2 * k + 1].iov_len
            if sent < offset + size {
                let done = sent - offset
                if done > 0 { keepRest(of: k, sentBytes: done, iov: iov) }
                let whole = done > 0 ? k + 1 : k
                framesDropped.add(UInt64(count - whole), ordering: .relaxed)
                return whole
            }
            offset += size
        }
        return count
    }

    /// Copies prefix and frame `k` into `rest`, of which `sentBytes` already went.
    private func keepRest(of k: Int, sentBytes: Int, iov: UnsafeMutablePointer<iovec>) {
        let rest = self.rest ?? .allocate(byteCount: StreamFraming.prefixLength + StreamFraming.maxFrame, alignment: 16)
        self.rest = rest
        rest.copyMemory(from: iov[2 * k].iov_base!, byteCount: StreamFraming.prefixLength)
        (rest + StreamFraming.prefixLength).copyMemory(from: iov[2 * k + 1].iov_base!, byteCount: iov[2 * k + 1].iov_len)
        restLength = StreamFraming.prefixLength + iov[2 * k + 1].iov_len
        restSent = sentBytes
        restPending.store(true, ordering: .releasing)
    }

    /// Receive thread, every tick: sends what is left of a partly written frame. Otherwise it
    /// would go only with the next write, and the peer holds every later byte behind that frame:
    /// a sender that falls silent after a backed-up burst (a REATTACH_ACK, the tail of a flow)
    /// would leave its last frame cut.
    func finishPartialFrame() {
        guard hasPartialFrame else { return }
        writeLock.lock()
        defer { writeLock.unlock() }
        guard !closed else { return }
        _ = flushRest()
    }

    /// Sends what is left of a partly written frame; true when nothing is left.
    private func flushRest() -> Bool {
        guard restSent < restLength, let rest else { return true }
        var v = iovec(iov_base: rest + restSent, iov_len: restLength - restSent)
        let n = socket.send(&v, count: 1)
        if n > 0 { restSent += n }
        if n < 0 && -n != EAGAIN && -n != EWOULDBLOCK && -n != EINTR { isClosed.store(true, ordering: .releasing) }
        if restSent >= restLength {
            restLength = 0
            restSent = 0
            restPending.store(false, ordering: .releasing)
        }
        return restLength == 0
    }
}

/// Every TCP connection of the daemon, by id. The receive thread watches them (those the control
/// plane opens reach it through `takeAdded`, those it must stop watching through `takeClosing`);
/// the control plane finds them here to write to.
final class TcpConnections: @unchecked Sendable {
    private let lock = Lock()
    private var byID: [UInt64: TcpConnection] = [:]
    private var added: [TcpConnection] = []
    private var closing: [TcpConnection] = []
    private var lastID: UInt64 = 0
    /// Something waits in `added` or `closing`: the receive thread looks without the lock first.
    private let changed = Atomic<Bool>(false)

    /// A new id, never used before in this daemon.
    func nextID() -> UInt64 { lock.withLock { lastID += 1; return lastID } }

    /// Registers `c`; unless the receive thread itself made it, it is handed to it to watch.
    func insert(_ c: TcpConnection, watchedByCaller: Bool) {
        lock.withLock {
            byID[c.id] = c
            if !watchedByCaller {
                added.append(c)
                changed.store(true, ordering: .releasing)
            }
        }
    }

    /// Closes `c` from outside the receive thread; the receive thread then forgets it.
    func requestClose(_ c: TcpConnection) {
        c.close()
        lock.withLock {
            closing.append(c)
            changed.store(true, ordering: .releasing)
        }
    }

    func remove(_ id: UInt64) { lock.withLock { _ = byID.removeValue(forKey: id) } }

    func connection(_ id: UInt64) -> TcpConnection? { lock.withLock { byID[id] } }

    var count: Int { lock.withLock { byID.count } }

    /// Receive thread: the connections to start and to stop watching since the last call.
    func takeChanges() -> (added: [TcpConnection], closing: [TcpConnection])? {
        guard changed.load(ordering: .acquiring) else { return nil }
        return lock.withLock {
            changed.store(false, ordering: .relaxed)
            defer {
                added.removeAll()
                closing.removeAll()
            }
            return (added, closing)
        }
    }
}
