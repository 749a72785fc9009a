import Foundation
import Glibc
import JVPNCore
@testable import JVPNDaemon
import JVPNSystem
import Synchronization
import XCTest

/// The frames one loopback socket received (counter and bytes), from its own thread.
final class FrameCollector: @unchecked Sendable {
    let socket: UDPSocket
    let stop = Atomic<Bool>(false)
    let lock = Lock()
    var frames: [(counter: UInt64, bytes: [UInt8])] = []
    private let done = Semaphore()

    init() throws {
        socket = try UDPSocket(family: AF_INET, localAddress: SocketAddress(addressBytes: [127, 0, 0, 1], port: 0))
    }

    var address: SocketAddress { SocketAddress(addressBytes: [127, 0, 0, 1], port: socket.localPort)! }

    func start() throws {
        try DetachedThread.start(name: "test-collect") { [self] in
            let batch = DatagramBatch(capacity: 64, slotSize: 2048)
            let poller = Poller([socket.fileDescriptor])
            while !stop.load(ordering: .relaxed) {
                poller.wait(timeoutMs: 20)
                while true {
                    let n = (try? batch.receive(from: socket)) ?? 0
                    if n == 0 { break }
                    lock.withLock {
                        for i in 0..<n {
                            if let h = Frame.peekHeader(UnsafeRawPointer(batch.payload(i)), length: batch.lengths[i]) {
                                frames.append((h.counter, Array(UnsafeRawBufferPointer(start: batch.payload(i), count: batch.lengths[i]))))
                            }
                        }
                    }
                }
            }
            done.signal()
        }
    }

    func finish() -> [(counter: UInt64, bytes: [UInt8])] {
        stop.store(true, ordering: .relaxed)
        done.wait(timeoutMs: 2000)
        return lock.withLock { frames }
    }
}

/// A pump's surroundings for the send-path tests: a namespace, keys, a one-peer snapshot.
enum SendPathFixture {
    /// Runs `body` on a thread inside a fresh namespace (lo up); the namespace goes afterwards.
    static func inNamespace(_ body: @escaping () throws -> Void) throws {
        let namespace = try NetlinkNamespace()
        defer { namespace.destroy() }
        try namespace.ip(["link", "set", "lo", "up"])
        try namespace.run(body)
    }

    static func keypair(_ remoteIndex: UInt32) -> Keypair {
        Keypair(sendKey: (0..<32).map { UInt8($0) &+ UInt8(truncatingIfNeeded: remoteIndex) }, receiveKey: [UInt8](repeating: 9, count: 32),
                localIndex: remoteIndex + 100, remoteIndex: remoteIndex, createdAt: 0, isInitiator: true)!
    }

    /// The one peer's route: everything in 10.99.0.0/24.
    static var routes: AllowedIPsTable<Int> {
        var routes = AllowedIPsTable<Int>()
        _ = routes.insert(IPPrefix("10.99.0.0/24")!, value: 0)
        return routes
    }

    static func snapshot(_ kp: Keypair, _ socket: UDPSocket, _ to: SocketAddress) -> DataPlaneSnapshot {
        let route = PeerSendRoute(keypair: kp, transport: socket, destination: to, counters: PeerCounters(workers: 1), maxInnerPacket: Int.max)
        var send = ChunkedSlots<PeerSendRoute>()
        send.append(route)
        return DataPlaneSnapshot(routes: routes, send: send, receivers: ShardedIndexMap(), sockets: [socket])
    }

    /// A client's pump on `tun`, its snapshot sending with `kp` on `socket` to `to`; the cell lets a
    /// test publish the next one.
    static func pump(tun: TunDevice, mtu: Int, vnet: Bool, uso: Bool = false, _ kp: Keypair, _ socket: UDPSocket,
                     _ to: SocketAddress) throws -> (cell: SnapshotCell, pump: PacketPump) {
        let cell = SnapshotCell()
        cell.publish(snapshot(kp, socket, to))
        let pump = try PacketPump(tun: tun, worker: 0, of: 1, mtu: mtu, snapshot: cell, vnet: vnet, uso: uso,
                                  admission: SharedAdmission(HandshakeAdmission(role: .client, localPublicKey: PrivateKey.generate().publicKey,
                                                                                nowMs: 0)),
                                  handshakes: HandshakeWorker(snapshot: cell, replyCapacity: 1) { _, _ in }, link: ControllerLink(),
                                  connections: TcpConnections())
        return (cell, pump)
    }

    /// The far side of `keypair(remoteIndex)`: opens what it seals.
    static func receiverKeypair(_ remoteIndex: UInt32) -> Keypair {
        Keypair(sendKey: [UInt8](repeating: 9, count: 32), receiveKey: (0..<32).map { UInt8($0) &+ UInt8(truncatingIfNeeded: remoteIndex) },
                localIndex: remoteIndex, remoteIndex: remoteIndex + 100, createdAt: 0, isInitiator: false)!
    }
}
