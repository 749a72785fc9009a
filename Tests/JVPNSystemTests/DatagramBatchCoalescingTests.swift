import Glibc
import JVPNSystem
import XCTest

/// `DatagramBatch.sendCoalescing` on real sockets: every datagram arrives once, whole and in order,
/// at its own address, whatever the runs; and a run leaves as one UDP GSO send, which a socket with
/// UDP_GRO reads as one message of that run's datagrams (on loopback nothing else merges them).
final class DatagramBatchCoalescingTests: XCTestCase {
    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("needs root (network namespace)") }
    }

    func testRunsLeaveAsOneSendEachAndArriveWholeInOrder() throws {
        try SendPathFixture.inNamespace { try self.runs() }
    }

    /// A run the kernel refuses (EINVAL; here because the sender turned off its UDP checksums,
    /// which GSO needs) goes by sendmmsg: every datagram arrives exactly once and in order, one per
    /// read, and GSO stays worth trying (the call does not report it unsupported).
    func testARefusedRunGoesOneByOne() throws {
        try SendPathFixture.inNamespace { try self.refused() }
    }

    private static let loopback: [UInt8] = [127, 0, 0, 1]

    /// Datagram `i`: its index in the first two bytes, then a pattern of it.
    private static func bytes(_ i: Int, _ length: Int) -> [UInt8] {
        (0..<length).map { k in k == 0 ? UInt8(i & 0xff) : k == 1 ? UInt8(i >> 8) : UInt8((i * 7 + k) % 251) }
    }

    private func runs() throws {
        let sender = try UDPSocket(family: AF_INET, localAddress: SocketAddress(addressBytes: Self.loopback, port: 0))
        let withGRO = try UDPSocket(family: AF_INET, localAddress: SocketAddress(addressBytes: Self.loopback, port: 0))
        XCTAssertTrue(withGRO.enableGRO())
        let plain = try UDPSocket(family: AF_INET, localAddress: SocketAddress(addressBytes: Self.loopback, port: 0))
        let a = try XCTUnwrap(SocketAddress(addressBytes: Self.loopback, port: withGRO.localPort))
        let b = try XCTUnwrap(SocketAddress(addressBytes: Self.loopback, port: plain.localPort))
        // Runs: a 3 x 100 + a shorter last; a single; a run to b; a single before a longer run; a
        // run to b; 70 to a, more than one GSO send takes.
        var plan: [(SocketAddress, Int)] = [(a, 100), (a, 100), (a, 100), (a, 60), (a, 100), (b, 100), (b, 100),
                                            (a, 100), (a, 200), (a, 200), (b, 50), (b, 50), (b, 50)]
        plan += Array(repeating: (a, 120), count: 70)
        let batch = DatagramBatch(capacity: plan.count, slotSize: 2048)
        for (i, (to, length)) in plan.enumerated() {
            Self.bytes(i, length).withUnsafeBytes { batch.payload(i).copyMemory(from: $0.baseAddress!, byteCount: length) }
            batch.lengths[i] = length
            batch.addresses[i] = to
        }
        batch.count = plan.count
        XCTAssertTrue(batch.sendCoalescing(on: sender))
        XCTAssertEqual(batch.count, 0)

        let expectedA = plan.enumerated().filter { $0.element.0 == a }.map { Self.bytes($0.offset, $0.element.1) }
        let expectedB = plan.enumerated().filter { $0.element.0 == b }.map { Self.bytes($0.offset, $0.element.1) }
        let (gotA, readsA) = try receive(withGRO, count: expectedA.count)
        let (gotB, readsB) = try receive(plain, count: expectedB.count)
        XCTAssertEqual(gotA.count, expectedA.count)
        XCTAssertTrue(gotA == expectedA, "the datagrams to a, whole and in order")
        XCTAssertTrue(gotB == expectedB, "the datagrams to b, whole and in order")
        XCTAssertEqual(readsB, expectedB.map { _ in 1 }, "without UDP_GRO each datagram is its own read")
        // Each run is one GSO send of at most 64 datagrams; the singles go by sendmmsg.
        XCTAssertEqual(readsA, [4, 1, 1, 2, 64, 6], "datagrams per read at the socket with UDP_GRO")
    }

    private func refused() throws {
        let sender = try UDPSocket(family: AF_INET, localAddress: SocketAddress(addressBytes: Self.loopback, port: 0))
        var on: Int32 = 1
        XCTAssertEqual(setsockopt(sender.fileDescriptor, SOL_SOCKET, SO_NO_CHECK, &on, socklen_t(MemoryLayout<Int32>.size)), 0)
        let receiver = try UDPSocket(family: AF_INET, localAddress: SocketAddress(addressBytes: Self.loopback, port: 0))
        XCTAssertTrue(receiver.enableGRO())
        let a = try XCTUnwrap(SocketAddress(addressBytes: Self.loopback, port: receiver.localPort))
        // A single, a run of three, a run of two.
        let lengths = [50, 100, 100, 100, 70, 70]
        let batch = DatagramBatch(capacity: lengths.count, slotSize: 2048)
        for (i, length) in lengths.enumerated() {
            Self.bytes(i, length).withUnsafeBytes { batch.payload(i).copyMemory(from: $0.baseAddress!, byteCount: length) }
            batch.lengths[i] = length
            batch.addresses[i] = a
        }
        batch.count = lengths.count
        XCTAssertTrue(batch.sendCoalescing(on: sender))
        let expected = lengths.enumerated().map { Self.bytes($0.offset, $0.element) }
        let (got, reads) = try receive(receiver, count: expected.count + 1) // waits out a duplicate
        XCTAssertTrue(got == expected, "each datagram once, in order: got \(got.map { $0.count })")
        XCTAssertEqual(reads, expected.map { _ in 1 })
    }

    /// Reads `socket` until `count` datagrams came or 2 s passed (at most 100 waits of 20 ms): the datagrams (a coalesced read
    /// split at its segment size) and how many each read carried.
    private func receive(_ socket: UDPSocket, count: Int) throws -> ([[UInt8]], [Int]) {
        let batch = DatagramBatch(capacity: 8, slotSize: 65_536, control: true)
        let poller = Poller([socket.fileDescriptor])
        var datagrams: [[UInt8]] = [], perRead: [Int] = []
        var waits = 0
        while datagrams.count < count && waits < 100 {
            waits += 1
            poller.wait(timeoutMs: 20)
            let n = try batch.receive(from: socket)
            for i in 0..<n {
                let all = Array(UnsafeRawBufferPointer(start: batch.payload(i), count: batch.lengths[i]))
                let size = max(1, batch.segmentSizes[i] > 0 ? batch.segmentSizes[i] : all.count)
                let parts = stride(from: 0, to: all.count, by: size).map { Array(all[$0..<min($0 + size, all.count)]) }
                datagrams += parts
                perRead.append(parts.count)
            }
        }
        return (datagrams, perRead)
    }
}
