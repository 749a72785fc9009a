import Glibc
import JVPNCore
import JVPNSystem

/// Where a frame came from or goes: a UDP socket (by index) and the remote address, or one TCP
/// connection (its id; the remote address for display). For the gateway this is a session's
/// binding: over TCP the binding is the connection, so a new connection from the same address is a
/// new path that must be validated like any other.
struct TransportAddress: Hashable, Sendable, CustomStringConvertible {
    enum Via: Hashable, Sendable {
        case udp(socket: Int)
        case tcp(connection: UInt64)
    }

    let via: Via
    let address: SocketAddress

    var kind: TransportKind {
        switch via {
        case .udp: return .udp
        case .tcp: return .tcp
        }
    }

    /// The contract's server-side spelling: `IP:PORT` for UDP, `tcp/IP:PORT` for TCP.
    var description: String {
        switch via {
        case .udp: return address.description
        case .tcp: return "tcp/\(address.description)"
        }
    }

    /// v4-mapped addresses (a dual-stack UDP socket's) as plain IPv4, for the control plane.
    var unmapped: TransportAddress { TransportAddress(via: via, address: address.unmapped) }
}

/// One way out for sealed frames. The pump's one send path calls only this: a UDP socket sends
/// datagrams (sendmmsg, UDP GSO for bursts), a TCP connection writes length-prefixed frames on its
/// stream (and drops them when it is backed up).
protocol FrameTransport: AnyObject, Sendable {
    /// Frames travel on a byte stream (TCP): order within it is kept, and there is no GSO to lose.
    var isStream: Bool { get }
    /// Sends slots [0, batch.count) (UDP: each to its slot's address) and empties the batch. With
    /// `coalescing`, UDP sends each run of equal-size frames to one address with GSO. False when
    /// the kernel does not do GSO here (the batch was still sent).
    func sendBatch(_ batch: DatagramBatch, coalescing: Bool) -> Bool
    /// Sends slots [start, start + count), frames of equal size but maybe the last, to
    /// `batch.addresses[start]`, as one unit. Unless `.sent`, nothing was sent (UDP: the kernel
    /// refused GSO for this burst, or does not do it at all).
    func sendBurst(_ batch: DatagramBatch, start: Int, count: Int) -> SegmentedSend
    /// One message (a control frame, a handshake message) to `to` (ignored by a stream).
    func sendOne(_ bytes: UnsafeRawPointer, length: Int, to: SocketAddress) -> Bool
}

extension UDPSocket: FrameTransport {
    var isStream: Bool { false }

    func sendBatch(_ batch: DatagramBatch, coalescing: Bool) -> Bool {
        if coalescing { return batch.sendCoalescing(on: self) }
        batch.send(on: self)
        return true
    }

    func sendBurst(_ batch: DatagramBatch, start: Int, count: Int) -> SegmentedSend {
        batch.sendSegmented(on: self, start: start, count: count)
    }

    func sendOne(_ bytes: UnsafeRawPointer, length: Int, to: SocketAddress) -> Bool { send(bytes, length: length, to: to) }
}
