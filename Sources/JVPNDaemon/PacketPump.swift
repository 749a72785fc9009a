import Glibc
import JVPNCore
import JVPNSystem
import Synchronization

/// The data plane. Stages, in the order the functions below follow:
///   send:    readTunBatch -> routeToPeer -> [fitToPath] -> segmentInPlace -> sealInPlace -> flushBatch
///            (one path with and without TUN offload; flushBatch by the route's transport: sendmmsg
///            / UDP GSO on a UDP socket, length-prefixed frames on a TCP connection)
///   receive: recvmmsg (receiveLoop), or a TCP stream read and its frames (PacketPump+Stream)
///            -> peekHeader -> lookupReceiver -> open -> replay update -> checkInnerSource
///            -> [clampMss] -> writeTun; control frames go to the controller;
///            handshakes (types 1-3): admitHandshake -> HandshakeWorker -> controller.
/// One packet worker of the `DataPlane`: a thread per direction, on its own TUN queue and its own
/// share of the transport sockets (the UDP sockets whose index modulo the worker count is its
/// number; worker 0 also serves the TCP transport). The handshake worker is shared. Buffers are
/// allocated once; nothing is allocated per packet, and the counters a worker writes per packet
/// are its own (per-worker lines of `PeerCounters.traffic`, its own drop counters). [fitToPath]
/// and [clampMss] run only while the peer's path carries less than the tunnel MTU
/// (PacketPump+PathFit.swift).
protocol PumpController: AnyObject, Sendable {
    /// Handshake messages (types 1-3), admitted by `HandshakeAdmission`, on the handshake worker
    /// thread: unauthenticated until the controller verifies them.
    func handleHandshake(_ bytes: UnsafeRawBufferPointer, from: TransportAddress)
    /// True: the receive thread queues its control facts for the worker thread; false: it
    /// delivers each at once. Read once, when the receive thread starts.
    var queuesControlFacts: Bool { get }
    /// Control facts in arrival order, `next()` until nil: a batch from the queue on the worker
    /// thread, or a single fact on the receive thread.
    func apply(_ next: () -> ControlFact?)
}

extension PumpController {
    var queuesControlFacts: Bool { false }

    /// One fact, as a batch of one.
    func apply(one fact: ControlFact) {
        var once: ControlFact? = fact
        apply {
            defer { once = nil }
            return once
        }
    }
}

final class PacketPump: @unchecked Sendable {
    static let batchSize = 64
    /// This worker's TUN queue.
    let tun: TunDevice
    /// This worker's number, and how many there are.
    let worker: Int
    let workers: Int
    let snapshot: SnapshotCell
    private let link: ControllerLink
    var controller: (any PumpController)? { link.controller }
    /// The TCP connections (the receive thread reads them; see PacketPump+Stream).
    let connections: TcpConnections
    /// Gateway: the TCP ports served (set before `start`), and the receive thread's admission
    /// table of the connections accepted on them.
    var listeners: [TcpListener] = []
    var streamTable: StreamConnectionTable?
    /// Gateway: the peers the table must have room for (a reload may add some).
    let streamPeerCount = Atomic<Int>(0)
    let streamCounters = StreamCounters()
    let epoll: EpollSet
    private let stop = Atomic<Bool>(false)
    private let wakeSend: EventFD
    private let wakeReceive: EventFD
    let slotSize: Int
    private var threads = 0
    private let done = Semaphore()

    /// Transport datagrams this worker's receive thread took (each frame of a GRO batch counts), for
    /// status: how the sockets share the load. Written by that thread alone, once per batch.
    let datagramsReceived = Atomic<UInt64>(0)
    let droppedNoRoute = Atomic<UInt64>(0)
    let droppedNoKey = Atomic<UInt64>(0)
    /// Received datagrams too short, too long or of no known type (shown with the handshakes).
    let droppedMalformed = Atomic<UInt64>(0)
    /// Packets read from the TUN that could not be segmented or fragmented (a virtio_net_hdr or
    /// headers that do not add up).
    let droppedTunMalformed = Atomic<UInt64>(0)
    /// Packets dropped because sealing one of their frames failed (the AEAD refused).
    let droppedSealFailed = Atomic<UInt64>(0)
    let droppedUnknownIndex = Atomic<UInt64>(0)
    /// Opened packets (and our own ICMP errors) the kernel refused at the TUN: it is down, or
    /// rejects what a peer sealed. Written only on a failure, so never per delivered packet.
    let droppedTunWrite = Atomic<UInt64>(0)
    // Handshakes the receive thread turned away (malformed ones count in droppedMalformed).
    let droppedHandshakeBadMac1 = Atomic<UInt64>(0)
    let droppedHandshakeCookieLimited = Atomic<UInt64>(0)
    let droppedHandshakeSourceLimited = Atomic<UInt64>(0)
    let droppedHandshakeQueueFull = Atomic<UInt64>(0)
    let droppedCookieReplyQueueFull = Atomic<UInt64>(0)

    /// The cheap checks before the handshake queue (shared by the workers).
    private let admission: SharedAdmission
    /// Shared by the workers.
    private let handshakes: HandshakeWorker
    /// Receive-thread only: cookie replies or control facts were queued during this receive batch.
    private var workerPending = false
    /// Receive-thread only: control facts go to the worker (gateway) rather than straight to the
    /// controller (client).
    private var queuesControlFacts = false
    /// Receive-thread only: the unconfirmed keys whose confirmation is queued, until the next
    /// snapshot (a rekeyed stream would otherwise queue one per frame until it is published).
    private var confirmQueued: Keypair?
    /// Receive-thread only: closed connections the full queue refused, queued again after a batch.
    var closesToReport: [UInt64] = []
    /// Receive-thread only: listeners out of the epoll set after accepting failed (`acceptStreams`).
    var pausedListeners: [TcpListener] = []
    /// Receive-thread only: the TCP connections it reads, by id, and the gateway's by admission slot.
    var watchedStreams: [UInt64: TcpConnection] = [:]
    var streamsBySlot: [Int: TcpConnection] = [:]

    /// The TUN carries a virtio_net_hdr per packet (TSO super-packets in, plain packets out).
    let vnet: Bool
    /// The TUN also takes UDP_L4 super-packets (USO): bursts of one UDP flow are merged on the way in.
    let uso: Bool
    /// Send-thread only: where ICMP "too big" errors are built, and their rate limit (this worker's
    /// share of `tooBigPerSecond`).
    let tooBigBuffer = UnsafeMutableRawPointer.allocate(byteCount: VirtioNetHeader.size + PacketTooBig.ipv6Limit, alignment: 16)
    var tooBigBudget: TokenBucket

    init(tun: TunDevice, worker: Int, of workers: Int, mtu: Int, snapshot: SnapshotCell, vnet: Bool, uso: Bool,
         admission: SharedAdmission, handshakes: HandshakeWorker, link: ControllerLink, connections: TcpConnections) throws {
        self.tun = tun
        self.worker = worker
        self.workers = workers
        self.handshakes = handshakes
        self.link = link
        tooBigBudget = TokenBucket(capacity: max(1, PacketPump.tooBigBurst / UInt64(workers)),
                                   refillPerSecond: PacketPump.tooBigPerSecond / Double(workers),
                                   nowMs: Clock.monotonicMilliseconds())
        self.admission = admission
        self.vnet = vnet
        self.uso = vnet && uso
        self.snapshot = snapshot
        self.connections = connections
        wakeSend = try EventFD()
        wakeReceive = try EventFD()
        epoll = try EpollSet()
        // Room for the largest inner packet plus header and tag, and for oversized datagrams
        // (which are then rejected rather than truncated silently).
        slotSize = max(mtu, 1500) + Frame.overhead + 64
    }

    /// Worker 0's threads keep the names profiles and `top -H` know; the others' carry their number.
    func start() throws {
        let suffix = worker == 0 ? "" : "\(worker)"
        try DetachedThread.start(name: "jvpn-send" + suffix) { [self] in sendLoop(); done.signal() }
        threads += 1
        try DetachedThread.start(name: "jvpn-recv" + suffix) { [self] in receiveLoop(); done.signal() }
        threads += 1
    }

    /// Tells the receive thread to pick up a changed socket or connection set now.
    func socketsChanged() { wakeReceive.signal() }

    /// Tells both threads to stop; they see it within a round or at the wake-up.
    func requestStop() {
        stop.store(true, ordering: .relaxed)
        wakeSend.signal()
        wakeReceive.signal()
    }

    /// Waits for both threads to end, until `deadlineMs` (monotonic) at the latest: several workers
    /// are told first and then waited for on one deadline, not one after another.
    func waitStopped(deadlineMs: UInt64) {
        for _ in 0..<threads {
            let now = Clock.monotonicMilliseconds()
            done.wait(timeoutMs: Int(clamping: deadlineMs > now ? deadlineMs - now : 0))
        }
        threads = 0
    }

    // MARK: send

    /// Waits for the TUN, then drains it round by round. The snapshot (routes, paths, keys,
    /// sockets) is looked at before every round, so a switch of path or a rekey reaches the very
    /// next batch however long the TUN stays busy (one atomic load per round).
    private func sendLoop() {
        let batch = DatagramBatch(capacity: PacketPump.batchSize, slotSize: slotSize)
        let big = KernelCopyBuffer.allocate(byteCount: PacketPump.superPacketCapacity)
        defer { KernelCopyBuffer.deallocate(big) }
        let poller = Poller([tun.fileDescriptor, wakeSend.fileDescriptor])
        var generation = UInt64.max
        var snap = DataPlaneSnapshot.empty
        while !stop.load(ordering: .relaxed) {
            poller.wait(timeoutMs: 1000)
            if poller.isReadable(1) { wakeSend.drain() }
            var more = true
            while more && !stop.load(ordering: .relaxed) {
                let g = snapshot.generation.load(ordering: .acquiring)
                if g != generation {
                    generation = g
                    snap = snapshot.load()
                }
                more = sendRound(batch, big, snap)
            }
        }
    }

    static let superPacketCapacity = 65536 + VirtioNetHeader.size + 64
    /// UDP GSO (UDP_SEGMENT) for bursts and runs; off for good once the kernel says it does not do
    /// it (`SegmentedSend.unsupported`).
    private var useUDPGSO = FileIO.environment("JVPN_NO_UDP_GSO") != "1"

    /// One round of the send path, with or without TUN offload: up to `batchSize` reads
    /// (readTunBatch), each routed (routeToPeer), fitted to its path if need be (fitToPath), split
    /// (segmentInPlace: a TSO super-packet into wire-size packets, any other packet copied as one)
    /// straight into batch slots, sealed, and sent (flushBatch). Returns false once the TUN is
    /// empty.
    private func sendRound(_ batch: DatagramBatch, _ big: UnsafeMutableRawPointer, _ snap: DataPlaneSnapshot) -> Bool {
        batch.count = 0
        var batchTransport: (any FrameTransport)?
        let headerSize = vnet ? VirtioNetHeader.size : 0
        var reads = 0
        var drained = false
        while reads < PacketPump.batchSize {
            reads += 1
            let n: Int
            do { n = try tun.read(into: big, capacity: PacketPump.superPacketCapacity) } catch { n = 0 }
            if n <= headerSize { drained = true; break }
            var h = vnet ? VirtioNetHeader(big) : VirtioNetHeader()
            h.gsoType &= 0x7f // ECN bit
            let pkt = UnsafeRawPointer(big + headerSize)
            let len = n - headerSize
            guard let peer = snap.routes.lookupDestination(packet: pkt, length: len) else {
                droppedNoRoute.add(1, ordering: .relaxed)
                continue
            }
            guard peer < snap.send.count, let route = snap.send[peer] else {
                droppedNoKey.add(1, ordering: .relaxed)
                continue
            }
            if route.fitsToPath {
                queueFitted(batch, pkt, len, h, route, &batchTransport)
            } else {
                queueSegments(batch, pkt, len, h, route, &batchTransport)
            }
        }
        if batch.count > 0, let t = batchTransport { flush(batch, on: t) }
        batch.count = 0
        return !drained
    }

    /// Sends the batch on `t`; over UDP, while the kernel takes GSO, each run of equal-size frames
    /// to one address leaves as one send.
    func flush(_ batch: DatagramBatch, on t: any FrameTransport) {
        if !t.sendBatch(batch, coalescing: useUDPGSO) { useUDPGSO = false }
    }

    /// segmentInPlace -> sealInPlace: the packet's segments go straight into batch slots, each is
    /// sealed, and a burst of them leaves with one UDP GSO send (or one write on a stream). A
    /// super-packet leaves as its own burst: whatever small packets are queued (ACKs, pings) go
    /// first, so they keep their order and do not wait behind megabytes of bursts. More segments
    /// than the batch has room for go in several.
    func queueSegments(_ batch: DatagramBatch, _ pkt: UnsafeRawPointer, _ len: Int, _ h: VirtioNetHeader, _ route: PeerSendRoute,
                       _ batchTransport: inout (any FrameTransport)?) {
        let bursts = useUDPGSO || route.transport.isStream
        let burst = h.gsoType != VirtioNetHeader.gsoNone && bursts
        var first = 0
        while true {
            if batchTransport !== route.transport || batch.count == batch.capacity || (burst && batch.count > 0) {
                if batch.count > 0, let t = batchTransport { flush(batch, on: t) }
                batch.count = 0
            }
            batchTransport = route.transport
            let base = batch.count
            let room = batch.capacity - base
            let produced: Int
            var keysExhausted = false, sealFailed = false
            do {
                produced = try Segmenter.segment(pkt, length: len, header: h, firstSegment: first, maxSegments: room,
                                                 capacity: slotSize - Frame.overhead,
                                                 destination: { batch.payload(base + $0) + Frame.headerLength },
                                                 emit: { i, l in
                                                     if route.fitsToPath {
                                                         self.clampMss(batch.payload(base + i) + Frame.headerLength, l, route.maxInnerPacket,
                                                                       route.counters)
                                                     }
                                                     guard let counter = route.keypair.nextCounter() else { keysExhausted = true; return }
                                                     if !self.sealAndQueue(batch, index: base + i, length: l, route: route, counter: counter) {
                                                         sealFailed = true
                                                     }
                                                 })
            } catch {
                droppedTunMalformed.add(1, ordering: .relaxed)
                batch.count = base
                return
            }
            if keysExhausted || sealFailed || batch.count != base + produced { // mid-way: drop it all
                if keysExhausted { droppedNoKey.add(1, ordering: .relaxed) }
                batch.count = base
                return
            }
            // A burst of equal-size frames to one peer: one UDP GSO send (or one stream write)
            // instead of one per frame.
            if produced > 1 && bursts {
                switch route.transport.sendBurst(batch, start: base, count: produced) {
                case .sent: batch.count = base
                case .refused: break // the frames stay in the batch and go one by one
                case .unsupported: useUDPGSO = false // and the frames stay in the batch
                }
            }
            if produced < room { return }
            first += produced
        }
    }

    /// Seals the packet in slot `index` and makes it the batch's last; false (counted, not queued)
    /// if the AEAD refused.
    @inline(__always)
    func sealAndQueue(_ batch: DatagramBatch, index: Int, length: Int, route: PeerSendRoute, counter: UInt64) -> Bool {
        // sealInPlace
        let total = Frame.seal(type: .data, receiverIndex: route.keypair.remoteIndex, counter: counter,
                               key: route.keypair, buffer: batch.payload(index), plaintextLength: length,
                               roomBefore: DatagramBatch.roomBefore)
        // Not queued: the caller drops the packet whole (an empty slot would shift every later
        // frame of a UDP GSO burst).
        guard total > 0 else {
            droppedSealFailed.add(1, ordering: .relaxed)
            return false
        }
        batch.lengths[index] = total
        batch.addresses[index] = route.destination
        batch.count = index + 1
        route.counters.countSent(worker: worker, bytes: length)
        return true
    }

    // MARK: receive

    // Receive-thread only: opened packets of the current batch, waiting for writeCoalesced.
    static let pendingCapacity = 512
    private let pendingPointers = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: PacketPump.pendingCapacity)
    private let pendingLengths = UnsafeMutablePointer<Int>.allocate(capacity: PacketPump.pendingCapacity)
    private var pendingCount = 0
    private let mergeSegments = UnsafeMutablePointer<Coalescer.Segment>.allocate(capacity: PacketPump.pendingCapacity)
    private let mergeDatagrams = UnsafeMutablePointer<UDPCoalescer.Datagram>.allocate(capacity: UDPCoalescer.maxSegments)
    /// UDP GRO on the transport sockets (JVPN_NO_UDP_GRO=1 turns it off).
    private let useUDPGRO = FileIO.environment("JVPN_NO_UDP_GRO") != "1"
    /// A merged packet's virtio_net_hdr and headers; its payloads stay where they were opened.
    private let mergedHeaders = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 64)
    /// The pieces of one merged TUN write: its headers, then each packet's payload.
    private let mergePieces = UnsafeMutablePointer<iovec>.allocate(capacity: PacketPump.pendingCapacity + 1)

    /// coalesceTCP -> writeTun: consecutive segments of one TCP flow become one TSO write, and
    /// (with USO) consecutive datagrams of one UDP flow one UDP_L4 write, each gathered from the
    /// merged headers and the payloads where they were opened (no copy but the kernel's); anything
    /// else is written alone behind a zero virtio_net_hdr (placed in the frame header's room).
    private func writeCoalesced() {
        var i = 0
        while i < pendingCount {
            let base = i
            let n = Coalescer.group(count: pendingCount - base, pointer: { UnsafeRawPointer(self.pendingPointers[base + $0]) },
                                    length: { self.pendingLengths[base + $0] }, parsed: mergeSegments)
            switch n {
            case 0:
                i += uso ? writeUDPGroup(at: i) : writeSingleAt(i)
            case 1:
                i += writeSingleAt(i)
            default:
                let size = Coalescer.mergedHeaders(into: mergedHeaders, count: n, pointer: { UnsafeRawPointer(self.pendingPointers[base + $0]) },
                                                   segment: { self.mergeSegments[$0] })
                writeMerged(first: base, count: n, size: size, headerLength: { self.mergeSegments[$0].headerLength },
                            payloadLength: { self.mergeSegments[$0].payloadLength })
                i += n
            }
        }
        pendingCount = 0
    }

    /// Writes the UDP group that starts at pending packet `i` (or that packet alone); returns
    /// how many pending packets it took.
    @inline(__always)
    private func writeUDPGroup(at i: Int) -> Int {
        let n = UDPCoalescer.group(count: pendingCount - i, pointer: { UnsafeRawPointer(self.pendingPointers[i + $0]) },
                                   length: { self.pendingLengths[i + $0] }, parsed: mergeDatagrams)
        guard n >= 2 else { return writeSingleAt(i) }
        let size = UDPCoalescer.mergedHeaders(into: mergedHeaders, count: n, pointer: { UnsafeRawPointer(self.pendingPointers[i + $0]) },
                                              datagram: { self.mergeDatagrams[$0] })
        writeMerged(first: i, count: n, size: size, headerLength: { self.mergeDatagrams[$0].headerLength },
                    payloadLength: { self.mergeDatagrams[$0].payloadLength })
        return n
    }

    @inline(__always)
    private func writeSingleAt(_ i: Int) -> Int {
        writeSingle(pendingPointers[i], pendingLengths[i])
        return 1
    }

    @inline(__always)
    private func writeSingle(_ body: UnsafeMutableRawPointer, _ length: Int) {
        let h = body - VirtioNetHeader.size
        h.initializeMemory(as: UInt8.self, repeating: 0, count: VirtioNetHeader.size)
        writeTun(h, length: length + VirtioNetHeader.size, packets: 1)
    }

    /// One gathering write of a merged packet: `mergedHeaders` (`size` as the coalescer built
    /// them), then the payload of each of the `count` pending packets from `first` (packet k's
    /// `payloadLength(k)` bytes after its `headerLength(k)`); a refused one counts them all.
    @inline(__always)
    private func writeMerged(first: Int, count n: Int, size: (headerBytes: Int, totalBytes: Int), headerLength: (Int) -> Int,
                             payloadLength: (Int) -> Int) {
        mergePieces[0] = iovec(iov_base: mergedHeaders, iov_len: size.headerBytes)
        for k in 0..<n {
            mergePieces[1 + k] = iovec(iov_base: pendingPointers[first + k] + headerLength(k), iov_len: payloadLength(k))
        }
        if !tun.write(pieces: mergePieces, count: n + 1, length: size.totalBytes) {
            droppedTunWrite.add(UInt64(n), ordering: .relaxed)
        }
    }

    /// One write to the TUN carrying `packets` opened packets; a refused one counts them all.
    @inline(__always)
    private func writeTun(_ buffer: UnsafeRawPointer, length: Int, packets: Int) {
        if !tun.write(buffer, length: length) { droppedTunWrite.add(UInt64(packets), ordering: .relaxed) }
    }

    /// What a descriptor in the receive thread's epoll set is: the top byte of its tag.
    enum WatchTag {
        static let wake: UInt64 = 0
        static let udp: UInt64 = 1 << 56
        static let listener: UInt64 = 2 << 56
        static let stream: UInt64 = 3 << 56
        static let valueMask: UInt64 = (1 << 56) - 1
    }

    private func receiveLoop() {
        // With UDP GRO a slot may hold up to 64 KiB of same-size frames, so fewer, bigger slots.
        let batch = useUDPGRO
            ? DatagramBatch(capacity: 8, slotSize: PacketPump.superPacketCapacity, control: true)
            : DatagramBatch(capacity: PacketPump.batchSize, slotSize: slotSize)
        // `snap` is of `generation`; the watched socket set is of `socketsGeneration` (a batch may
        // move `snap` on before the socket set is looked at again, at the top).
        var generation = UInt64.max
        var socketsGeneration = UInt64.max
        var snap = DataPlaneSnapshot.empty
        var live: [(index: Int, socket: UDPSocket)] = []
        queuesControlFacts = controller?.queuesControlFacts ?? false
        epoll.add(wakeReceive.fileDescriptor, tag: WatchTag.wake)
        for (i, l) in listeners.enumerated() { epoll.add(l.fileDescriptor, tag: WatchTag.listener | UInt64(i)) }
        var nextExpiryMs: UInt64 = 0
        while !stop.load(ordering: .relaxed) {
            // Pick up a new snapshot (and socket set) before waiting, so a new socket is watched at once.
            let g = snapshot.generation.load(ordering: .acquiring)
            if g != socketsGeneration {
                socketsGeneration = g
                generation = g
                let fresh = snapshot.load()
                let now = fresh.sockets.enumerated().compactMap { i, s in
                    i % workers == worker ? s.map { (index: i, socket: $0) } : nil
                }
                if now.map(\.socket.fileDescriptor) != live.map(\.socket.fileDescriptor) || now.map(\.index) != live.map(\.index) {
                    // The old sockets are still open here (`live` holds them): no descriptor reuse.
                    for e in live { epoll.remove(e.socket.fileDescriptor) }
                    for e in now {
                        if useUDPGRO { e.socket.enableGRO() }
                        epoll.add(e.socket.fileDescriptor, tag: WatchTag.udp | UInt64(e.index))
                    }
                    live = now
                }
                snap = fresh
                confirmQueued = nil
            }
            if worker == 0 { adoptStreamChanges() } // the TCP transport is worker 0's alone
            epoll.wait(timeoutMs: streamTable == nil && watchedStreams.isEmpty ? 1000 : 250)
            // A new snapshot may change the socket set: reload at the top (epoll is level-triggered,
            // so whatever is ready now is seen again at once).
            if snapshot.generation.load(ordering: .acquiring) != socketsGeneration { continue }
            for r in 0..<epoll.readyCount {
                let tag = epoll.tag(r)
                let value = tag & WatchTag.valueMask
                switch tag & ~WatchTag.valueMask {
                case WatchTag.wake:
                    wakeReceive.drain()
                case WatchTag.udp:
                    guard let entry = live.first(where: { $0.index == Int(value) }) else { continue }
                    receiveDatagrams(batch, entry.socket, index: entry.index, snap: &snap, generation: &generation)
                case WatchTag.listener:
                    if Int(value) < listeners.count { acceptStreams(listeners[Int(value)]) }
                case WatchTag.stream:
                    if let c = watchedStreams[value] { serviceStream(c, snap: &snap, generation: &generation) }
                default:
                    break
                }
            }
            if streamTable != nil || !watchedStreams.isEmpty {
                let nowMs = Clock.monotonicMilliseconds()
                if nowMs >= nextExpiryMs {
                    nextExpiryMs = nowMs + 250
                    expireStreams(nowMs: nowMs)
                    resumeListeners()
                    for c in watchedStreams.values { c.finishPartialFrame() }
                }
            }
            // Facts from streams or their expiry, outside any receive batch.
            finishReceiveBatch()
        }
    }

    /// recvmmsg rounds on one ready UDP socket, bounded so one busy socket cannot starve the others.
    /// The snapshot is looked at before every round: keys published while the thread was busy (a
    /// handshake's, whose response may already have been answered) are known to the next round.
    private func receiveDatagrams(_ batch: DatagramBatch, _ socket: UDPSocket, index: Int, snap: inout DataPlaneSnapshot,
                                  generation: inout UInt64) {
        var rounds = 0
        while rounds < 16 {
            rounds += 1
            refreshSnapshot(&snap, generation: &generation)
            let n = (try? batch.receive(from: socket)) ?? 0
            if n == 0 { break }
            var frames: UInt64 = 0
            for i in 0..<n {
                let p = batch.payload(i)
                let total = batch.lengths[i]
                let step = batch.segmentSizes[i] > 0 ? batch.segmentSizes[i] : total
                let source = TransportAddress(via: .udp(socket: index), address: batch.addresses[i])
                var off = 0
                // splitGRO: same-size frames back to back. An empty datagram is one frame too (step
                // is 0 only then), so receiveOne counts it as malformed.
                repeat {
                    frames += 1
                    receiveOne(p + off, min(step, total - off), roomBefore: DatagramBatch.roomBefore + off, from: source,
                               snap: &snap, generation: &generation)
                    off += step
                } while off < total
            }
            datagramsReceived.store(datagramsReceived.load(ordering: .relaxed) &+ frames, ordering: .relaxed)
            finishReceiveBatch()
            if n < batch.capacity { break }
        }
    }

    /// Moves the receive thread's `snap` to the published one if a newer exists; returns whether it
    /// did. An atomic load when nothing changed.
    @inline(__always)
    @discardableResult
    private func refreshSnapshot(_ snap: inout DataPlaneSnapshot, generation: inout UInt64) -> Bool {
        let g = snapshot.generation.load(ordering: .acquiring)
        guard g != generation else { return false }
        generation = g
        snap = snapshot.load()
        confirmQueued = nil
        return true
    }

    /// After a batch of frames: coalesced writes into the TUN, and a wake for the worker if cookie
    /// replies or control facts were queued.
    func finishReceiveBatch() {
        if pendingCount > 0 { writeCoalesced() }
        if !closesToReport.isEmpty {
            closesToReport.removeAll { handshakes.pushFact(.connectionClosed($0)) }
            workerPending = true
        }
        if workerPending {
            workerPending = false
            handshakes.wakeIfIdle()
        }
    }

    /// A control fact: queued for the worker (gateway; dropped and counted when the queue is full)
    /// or delivered at once (client). False when it was dropped.
    @discardableResult
    func report(_ fact: ControlFact) -> Bool {
        guard queuesControlFacts else {
            controller?.apply(one: fact)
            return true
        }
        guard handshakes.pushFact(fact) else { return false }
        workerPending = true
        return true
    }

    /// A control frame failed its proof or freshness check: the control plane hears of it at most
    /// once per peer per 100 ms (it only feeds the security-event limiter; the counters count all).
    private func reportRefused(_ entry: ReceiverEntry, _ reason: ReasonCode, from source: TransportAddress) {
        let nowMs = Clock.monotonicMilliseconds()
        guard elapsedMs(nowMs, since: entry.counters.lastRefusedReportMs.load(ordering: .relaxed)) >= 100 else { return }
        entry.counters.lastRefusedReportMs.store(nowMs, ordering: .relaxed)
        report(.refused(peer: entry.peerIndex, reason, from: source.unmapped))
    }

    /// One frame, from a datagram or a stream. `source` is in the receiving socket's own form (a
    /// UDP address may be v4-mapped). `roomBefore`: bytes of this thread's buffer before `p`,
    /// lent to the AEAD. Returns the peer whose session keys authenticated it (proof and freshness
    /// passed), nil otherwise.
    @inline(__always)
    @discardableResult
    func receiveOne(_ p: UnsafeMutableRawPointer, _ len: Int, roomBefore: Int, from source: TransportAddress,
                    snap: inout DataPlaneSnapshot, generation: inout UInt64) -> Int? {
        guard len > 0, len <= slotSize - 64, let type = Frame.classify(UnsafeRawPointer(p).load(as: UInt8.self)) else {
            droppedMalformed.add(1, ordering: .relaxed)
            return nil
        }
        if type == .initiation || type == .response || type == .cookieReply {
            admitHandshake(UnsafeRawBufferPointer(start: p, count: len), from: source)
            return nil
        }
        guard let header = Frame.peekHeader(UnsafeRawPointer(p), length: len) else {
            droppedMalformed.add(1, ordering: .relaxed)
            return nil
        }
        switch header.type {
        case .initiation, .response, .cookieReply:
            return nil
        case .data, .control:
            // An index this round's snapshot does not know may be of keys published since (a
            // handshake answered while this thread was busy): the thread moves to the newer
            // snapshot once, so a flood of unknown indexes costs an atomic load each, not a lock.
            var found = snap.receivers[header.receiverIndex]
            if found == nil, refreshSnapshot(&snap, generation: &generation) { found = snap.receivers[header.receiverIndex] }
            guard let entry = found else {
                droppedUnknownIndex.add(1, ordering: .relaxed)
                return nil
            }
            guard let plain = Frame.open(header: header, key: entry.keypair, buffer: p, length: len, roomBefore: roomBefore) else {
                entry.counters.rejectedAuth.add(1, ordering: .relaxed)
                if header.type == .control { reportRefused(entry, .invalidProof, from: source) }
                return nil
            }
            // Proof first, then freshness: forged packets cannot burn counters.
            guard entry.keypair.replay.update(header.counter) else {
                entry.counters.rejectedReplay.add(1, ordering: .relaxed)
                if header.type == .control { reportRefused(entry, .replayDetected, from: source) }
                return nil
            }
            if entry.isUnconfirmed, entry.keypair !== confirmQueued,
               report(.confirm(peer: entry.peerIndex, keypair: entry.keypair, from: source.unmapped, bytes: len)) {
                confirmQueued = entry.keypair
            }
            let body = UnsafeMutableRawPointer(p + Frame.headerLength)
            if header.type == .control {
                let message = try? ControlMessage.decode(UnsafeRawBufferPointer(start: body, count: plain))
                report(.control(peer: entry.peerIndex, message, keypair: entry.keypair, from: source.unmapped, bytes: len))
                return entry.peerIndex
            }
            if entry.isEnded { // the session is over: its control frames are answered, its data is not delivered
                droppedNoKey.add(1, ordering: .relaxed)
                return entry.peerIndex
            }
            // Both in the socket's own (mapped) form; a nil bound source (not bound yet) matches nothing.
            if entry.checksBoundSource, entry.boundSource != source {
                // Authenticated but from an unbound address: never moves the session; hint only. At
                // most one report per peer per 100 ms, so such a stream never takes the lock per packet.
                let nowMs = Clock.monotonicMilliseconds()
                let last = entry.counters.lastUnboundReportMs.load(ordering: .relaxed)
                if elapsedMs(nowMs, since: last) >= 100 {
                    entry.counters.lastUnboundReportMs.store(nowMs, ordering: .relaxed)
                    report(.unboundSource(peer: entry.peerIndex, from: source.unmapped, bytes: len))
                }
            }
            if plain == 0 { return entry.peerIndex } // keepalive
            // checkInnerSource: a peer may only send from its AllowedIPs.
            guard snap.routes.lookupSource(packet: UnsafeRawPointer(body), length: plain) == entry.peerIndex else {
                entry.counters.droppedInnerSource.add(1, ordering: .relaxed)
                return entry.peerIndex
            }
            // clampMss: a SYN from the far side announces what our side will send it, over our path.
            if entry.maxInnerPacket != Int.max { clampMss(body, plain, entry.maxInnerPacket, entry.counters) }
            if vnet {
                // Held until the batch ends, so that a TSO burst can go to the TUN as one write.
                if pendingCount == PacketPump.pendingCapacity { writeCoalesced() }
                pendingPointers[pendingCount] = body
                pendingLengths[pendingCount] = plain
                pendingCount += 1
                entry.counters.countReceived(worker: worker, bytes: plain)
                return entry.peerIndex
            }
            // Counted as received either way, as with a TUN that takes offloads.
            entry.counters.countReceived(worker: worker, bytes: plain)
            writeTun(body, length: plain, packets: 1)
            return entry.peerIndex
        }
    }

    /// admitHandshake: length, mac1, cookie (under load; not over TCP, whose connection proved the
    /// source), per-source limit, then the queue. The public-key work happens on the handshake
    /// worker, which also sends the cookie replies built here.
    private func admitHandshake(_ message: UnsafeRawBufferPointer, from source: TransportAddress) {
        let origin = HandshakeSource(socketAddress: source.address)
        let nowMs = Clock.monotonicMilliseconds()
        switch admission.admit(message, source: origin, queueDepth: handshakes.depth, nowMs: nowMs, sourceProven: source.kind == .tcp) {
        case .enqueue:
            if !handshakes.push(message, from: source) {
                droppedHandshakeQueueFull.add(1, ordering: .relaxed)
            }
        case .sendCookie:
            // The reply goes where the initiation came from, in the socket's own address form.
            guard case .udp(let socketIndex) = source.via else { return }
            let queued = handshakes.pushCookieReply(to: source.address, socketIndex: socketIndex) {
                admission.writeCookieReply(to: message, source: origin, into: $0)
            }
            if queued {
                workerPending = true
            } else {
                droppedCookieReplyQueueFull.add(1, ordering: .relaxed)
            }
        case .drop(let reason):
            switch reason {
            case .malformed: droppedMalformed.add(1, ordering: .relaxed)
            case .badMac1: droppedHandshakeBadMac1.add(1, ordering: .relaxed)
            case .cookieRateLimited: droppedHandshakeCookieLimited.add(1, ordering: .relaxed)
            case .sourceRateLimited: droppedHandshakeSourceLimited.add(1, ordering: .relaxed)
            case .queueFull: droppedHandshakeQueueFull.add(1, ordering: .relaxed)
            }
        }
    }
}

extension HandshakeSource {
    /// Address (v4-mapped IPv6 read as IPv4) and port of a received datagram, without allocating.
    init(socketAddress a: SocketAddress) {
        var storage = a.storage
        let address: IPAddress = withUnsafeBytes(of: &storage) { raw in
            a.family == AF_INET ? IPAddress(v4NetworkBytes: raw.baseAddress! + 4)
                                : IPAddress(v6NetworkBytes: raw.baseAddress! + 8).unmapped
        }
        self.init(address: address, port: a.port)
    }
}
