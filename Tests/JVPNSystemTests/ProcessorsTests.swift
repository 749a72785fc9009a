@testable import JVPNSystem
import XCTest

/// The CPU quota that lowers `Workers = auto`: cgroup v2 and v1 files, the lowest on the way up.
final class ProcessorsTests: XCTestCase {
    func testCpuMaxText() {
        XCTAssertNil(Processors.quotaCores(cpuMax: "max 100000\n"))
        XCTAssertEqual(Processors.quotaCores(cpuMax: "200000 100000\n"), 2)
        XCTAssertEqual(Processors.quotaCores(cpuMax: "150000 100000"), 2, "1.5 CPUs round up")
        XCTAssertEqual(Processors.quotaCores(cpuMax: "50000 100000"), 1)
        XCTAssertNil(Processors.quotaCores(cpuMax: "garbage"))
        XCTAssertNil(Processors.quotaCores(quota: -1, period: 100_000), "v1: no quota")
    }

    func testLowestQuotaOnTheWayUpV2() {
        let files = ["/sys/fs/cgroup/a/b/cpu.max": "max 100000", "/sys/fs/cgroup/a/cpu.max": "300000 100000",
                     "/sys/fs/cgroup/cpu.max": "max 100000"]
        XCTAssertEqual(Processors.quotaCores(cgroups: "0::/a/b\n", read: { files[$0] }), 3)
        XCTAssertNil(Processors.quotaCores(cgroups: "0::/\n", read: { files[$0] }))
    }

    func testV1CpuController() {
        let files = ["/sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_quota_us": "400000\n",
                     "/sys/fs/cgroup/cpu,cpuacct/docker/x/cpu.cfs_period_us": "100000\n",
                     "/sys/fs/cgroup/cpu,cpuacct/docker/cpu.cfs_quota_us": "-1\n",
                     "/sys/fs/cgroup/cpu,cpuacct/docker/cpu.cfs_period_us": "100000\n"]
        let text = "12:memory:/docker/x\n4:cpu,cpuacct:/docker/x\n0::/\n"
        XCTAssertEqual(Processors.quotaCores(cgroups: text, read: { files[$0] }), 4)
        XCTAssertNil(Processors.quotaCores(cgroups: "4:cpu,cpuacct:/\n", read: { files[$0] }))
    }

    func testThisProcess() {
        XCTAssertGreaterThanOrEqual(Processors.available(), 1)
    }
}
