import Glibc
import XCTest
@testable import JVPNDaemon

/// A merged TUN write gathers its headers and up to `pendingCapacity` payloads in one `writev`,
/// which takes at most IOV_MAX pieces: beyond that every merged packet would be refused (EINVAL).
final class MergedWriteTests: XCTestCase {
    func testAMergedWriteFitsOneWritev() {
        let iovMax = sysconf(Int32(_SC_IOV_MAX))
        XCTAssertGreaterThan(iovMax, 0)
        XCTAssertLessThanOrEqual(PacketPump.pendingCapacity + 1, iovMax)
    }
}
