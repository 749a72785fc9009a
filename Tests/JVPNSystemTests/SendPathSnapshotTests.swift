import Foundation
import Glibc
import JVPNCore
@testable import JVPNDaemon
import JVPNSystem
import Synchronization
import XCTest

/// The send thread picks up a new snapshot (path, keys, socket) within one batch, however busy
/// the TUN stays: a real pump on a real TUN in a namespace of its own, flooded by two sender
/// threads, switched to another socket, destination and keypair mid-flood. Frames still sealed
/// with the old keys after the switch are counted at the old destination.
final class SendPathSnapshotTests: XCTestCase {
    override func setUpWithError() throws {
        guard geteuid() == 0 else { throw XCTSkip("needs root (network namespace, TUN)") }
        try Sodium.initialize()
    }

    func testSwitchOfPathAndKeysReachesTheSendThreadWhileTheTunStaysBusy() throws {
        try SendPathFixture.inNamespace { try self.switchUnderFlood(offload: false) }
    }

    /// The same with TUN offload (virtio_net_hdr on every read): one send path for both.
    func testSwitchReachesTheSendThreadWithOffload() throws {
        try SendPathFixture.inNamespace { try self.switchUnderFlood(offload: true) }
    }

    /// In the namespace (this thread and the threads it starts).
    private func switchUnderFlood(offload: Bool) throws {
        let oldPath = try FrameCollector(), newPath = try FrameCollector()
        let socketA = try UDPSocket(family: AF_INET), socketB = try UDPSocket(family: AF_INET)
        let tun = try TunDevice(name: "jvsend0", options: offload ? [.nonBlocking, .vnetHeader] : [.nonBlocking])
        if offload { try tun.enableTCPOffload() }
        try tun.setMTU(1420)
        try tun.setUp(true)
        try NetlinkControl().addAddress(NetlinkAddress(family: AF_INET, bytes: [10, 99, 0, 1])!, prefix: 24, interface: tun.name)

        let oldKeys = SendPathFixture.keypair(7), newKeys = SendPathFixture.keypair(8)
        let (cell, pump) = try SendPathFixture.pump(tun: tun, mtu: 1420, vnet: offload, oldKeys, socketA, oldPath.address)
        try oldPath.start()
        try newPath.start()
        try pump.start()

        // Two senders keep the TUN's queue full: the pump never finds it empty while they run.
        let flooding = Atomic<Bool>(true)
        let floodDone = Semaphore()
        for _ in 0..<2 {
            let s = socket(AF_INET, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            XCTAssertGreaterThanOrEqual(s, 0)
            var to = sockaddr_in()
            to.sin_family = sa_family_t(AF_INET)
            to.sin_port = UInt16(9).bigEndian
            to.sin_addr.s_addr = UInt32(0x0a63_0002).bigEndian
            let rc = withUnsafePointer(to: &to) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            XCTAssertEqual(rc, 0)
            try DetachedThread.start(name: "test-flood") {
                let payload = [UInt8](repeating: 0x5a, count: 1200)
                while flooding.load(ordering: .relaxed) {
                    _ = payload.withUnsafeBytes { Glibc.send(s, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                }
                close(s)
                floodDone.signal()
            }
        }
        usleep(300_000)
        cell.publish(SendPathFixture.snapshot(newKeys, socketB, newPath.address))
        let firstStale = oldKeys.messagesSent
        usleep(500_000)
        flooding.store(false, ordering: .relaxed)
        floodDone.wait(timeoutMs: 2000)
        floodDone.wait(timeoutMs: 2000)
        usleep(100_000)
        pump.requestStop()
        pump.waitStopped(deadlineMs: Clock.monotonicMilliseconds() + 2000)
        let onOld = oldPath.finish().map(\.counter), onNew = newPath.finish().map(\.counter)

        let stale = onOld.filter { $0 >= firstStale }.count
        print("send path (offload \(offload)): \(onOld.count) frames on the old path (\(stale) after the switch), \(onNew.count) on the new one; " +
              "no route \(pump.droppedNoRoute.load(ordering: .relaxed))")
        XCTAssertGreaterThan(firstStale, 1000, "the flood reached the pump before the switch")
        XCTAssertGreaterThan(onNew.count, 1000, "the flood went on after the switch, on the new path")
        // The batch being filled at the switch may finish on the old snapshot; nothing after it.
        XCTAssertLessThanOrEqual(stale, PacketPump.batchSize, "frames on the old path and keys after the switch")
    }
}
