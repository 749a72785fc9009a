import CUDP
import Glibc

/// What became of a UDP GSO send (`DatagramBatch.sendSegmented`).
public enum SegmentedSend: Sendable {
    /// It left (a chunk after the first that failed was dropped, as sendmmsg would drop it).
    case sent
    /// Refused for this run only, nothing sent: EINVAL, as for a segment too big for the route's
    /// MTU. The frames may go one by one, and GSO stays worth trying.
    case refused
    /// Refused because the kernel does not do GSO here, nothing sent: EIO (no checksum offload on
    /// the route), ENOPROTOOPT, EOPNOTSUPP.
    case unsupported
}

/// Preallocated slots for `recvmmsg`/`sendmmsg`: one buffer, iovec, cudp_msg and address per slot.
public final class DatagramBatch: @unchecked Sendable {
    public let capacity: Int
    public let slotSize: Int
    /// Bytes of the batch's own memory before every slot (the previous slot's end, or a margin
    /// before the first), which the thread that owns the batch may lend the AEAD while it seals or
    /// opens a frame in place (`Frame.seal`'s `roomBefore`).
    public static let roomBefore = 64
    public var count = 0

    private let memory: UnsafeMutableRawPointer
    private let iovecs: UnsafeMutablePointer<iovec>
    private let headers: UnsafeMutablePointer<cudp_msg>
    public let addresses: UnsafeMutablePointer<SocketAddress>
    /// Payload length per slot (sent or received datagram length).
    public let lengths: UnsafeMutablePointer<Int>
    /// With `control`: the UDP_GRO segment size per received slot (0 = one datagram).
    public let segmentSizes: UnsafeMutablePointer<Int>
    private let controlSize = 64
    private let control: UnsafeMutableRawPointer?

    /// `control`: room for ancillary data per slot (UDP_GRO segment sizes on receive).
    public init(capacity: Int, slotSize: Int, control wantsControl: Bool = false) {
        self.capacity = capacity
        self.slotSize = slotSize
        memory = UnsafeMutableRawPointer.allocate(byteCount: DatagramBatch.roomBefore + capacity * slotSize, alignment: 64)
        // Not zeroed: every byte is written (by the kernel or a segmenter) before it is read, and
        // pages no datagram has touched stay out of the resident set (an idle worker's 8 receive
        // slots of 64 KiB; a frame's seal or open borrows the 48 bytes before it, so it may touch
        // the previous slot's last page too).
        iovecs = .allocate(capacity: capacity)
        headers = .allocate(capacity: capacity)
        addresses = .allocate(capacity: capacity)
        addresses.initialize(repeating: SocketAddress(), count: capacity)
        lengths = .allocate(capacity: capacity)
        lengths.initialize(repeating: 0, count: capacity)
        segmentSizes = .allocate(capacity: capacity)
        segmentSizes.initialize(repeating: 0, count: capacity)
        control = wantsControl ? UnsafeMutableRawPointer.allocate(byteCount: capacity * 64, alignment: 16) : nil
        for i in 0..<capacity {
            iovecs[i] = iovec(iov_base: payload(i), iov_len: slotSize)
            var h = cudp_msg()
            h.hdr.msg_iov = iovecs + i
            h.hdr.msg_iovlen = 1
            h.hdr.msg_name = UnsafeMutableRawPointer(addresses + i)
            h.hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in6>.size)
            headers[i] = h
        }
    }

    deinit {
        memory.deallocate()
        iovecs.deallocate()
        headers.deallocate()
        addresses.deallocate()
        lengths.deallocate()
        segmentSizes.deallocate()
        control?.deallocate()
    }

    /// Start of slot `i`'s payload.
    @inline(__always)
    public func payload(_ i: Int) -> UnsafeMutableRawPointer {
        memory + DatagramBatch.roomBefore + i * slotSize
    }

    /// Receives up to `capacity` datagrams without blocking. Returns how many (0 if none).
    public func receive(from socket: UDPSocket) throws -> Int {
        for i in 0..<capacity {
            iovecs[i].iov_len = slotSize
            headers[i].hdr.msg_namelen = socklen_t(MemoryLayout<sockaddr_in6>.size)
            headers[i].len = 0
            if let control {
                headers[i].hdr.msg_control = control + i * controlSize
                headers[i].hdr.msg_controllen = controlSize
            }
        }
        let n = cudp_recvmmsg(socket.fileDescriptor, headers, UInt32(capacity), Int32(MSG_DONTWAIT))
        if n < 0 {
            let e = -n
            count = 0
            if e == EAGAIN || e == EINTR || e == ECONNREFUSED { return 0 }
            throw SystemError("recvmmsg", errno: e)
        }
        count = Int(n)
        for i in 0..<count {
            lengths[i] = Int(headers[i].len)
            addresses[i].length = headers[i].hdr.msg_namelen
            segmentSizes[i] = control != nil ? Int(cudp_gro_size(&headers[i].hdr)) : 0
        }
        return count
    }

    /// Sends slots [start, start + n), all to `addresses[start]`, with UDP GSO: one sendmsg per
    /// up to 64 KiB, the kernel cutting datagrams of `lengths[start]` bytes (all slots but the last
    /// must have that length).
    public func sendSegmented(on socket: UDPSocket, start: Int, count n: Int) -> SegmentedSend {
        let segment = lengths[start]
        var i = start
        let end = start + n
        while i < end {
            var bytes = 0
            var k = i
            while k < end && k - i < 64 && bytes + lengths[k] <= 65_000 {
                iovecs[k].iov_len = lengths[k]
                bytes += lengths[k]
                k += 1
            }
            let rc = withUnsafePointer(to: &addresses[start].storage) { a in
                cudp_send_gso(socket.fileDescriptor, iovecs + i, Int32(k - i), a, addresses[start].length, UInt16(segment))
            }
            if rc < 0 && i == start {
                if rc == -EINVAL { return .refused }
                if rc == -EIO || rc == -ENOPROTOOPT || rc == -EOPNOTSUPP { return .unsupported }
            }
            // Any other failure (no route now, or a later chunk's): its datagrams are dropped, as
            // sendmmsg would drop them.
            i = k
        }
        return .sent
    }

    /// Sends slots [0, count) to their `addresses`, with their `lengths`. Returns datagrams sent;
    /// a datagram the kernel refuses (e.g. no route right now) is skipped, not retried forever.
    @discardableResult
    public func send(on socket: UDPSocket) -> Int {
        let sent = sendEach(on: socket, from: 0, to: count)
        count = 0
        return sent
    }

    /// Sends slots [0, count) in order, like `send(on:)`, except that each run of two or more
    /// consecutive slots to one address whose datagrams have one length (the run's last may be
    /// shorter) leaves as one UDP GSO send: the run crosses the sender's stack as one packet, and
    /// reaches a receiving socket with UDP_GRO as one, so a batch of small frames (TCP
    /// acknowledgements, small datagrams) costs about what one of them does. A run the kernel
    /// refuses goes by sendmmsg. False if the kernel does not do GSO on this socket
    /// (`SegmentedSend.unsupported`): the batch still left whole, by sendmmsg from there on.
    public func sendCoalescing(on socket: UDPSocket) -> Bool {
        var gso = true
        var waiting = 0 // slots [waiting, start) go by sendmmsg before the next run
        var start = 0
        while start < count {
            let length = lengths[start]
            var end = start + 1
            while end < count && lengths[end] <= length && addresses[end] == addresses[start] {
                end += 1
                if lengths[end - 1] < length { break } // a shorter datagram ends its run
            }
            if gso && end - start >= 2 {
                sendEach(on: socket, from: waiting, to: start)
                waiting = start
                switch sendSegmented(on: socket, start: start, count: end - start) {
                case .sent: waiting = end
                case .refused: break // the run goes by sendmmsg, with the slots after it
                case .unsupported: gso = false
                }
            }
            start = end
        }
        sendEach(on: socket, from: waiting, to: count)
        count = 0
        return gso
    }

    /// sendmmsg of slots [from, to); returns datagrams sent (a refused one is skipped).
    @discardableResult
    private func sendEach(on socket: UDPSocket, from: Int, to end: Int) -> Int {
        guard from < end else { return 0 }
        for i in from..<end {
            iovecs[i].iov_len = lengths[i]
            headers[i].hdr.msg_namelen = addresses[i].length
            headers[i].hdr.msg_control = nil
            headers[i].hdr.msg_controllen = 0
        }
        let n = end - from
        var sent = 0
        var attempts = 0
        while sent < n && attempts < n + 4 {
            attempts += 1
            let rc = cudp_sendmmsg(socket.fileDescriptor, headers + from + sent, UInt32(n - sent), 0)
            if rc > 0 {
                sent += Int(rc)
            } else if rc == -EINTR {
                continue
            } else {
                sent += 1 // drop the datagram the kernel refused and go on with the rest
            }
        }
        return sent
    }
}
