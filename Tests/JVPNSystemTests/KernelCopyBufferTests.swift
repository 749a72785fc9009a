import JVPNSystem
import XCTest

/// Packet buffers the kernel copies whole packets into or out of start half a page in, so their
/// packet data is never a few bytes apart, modulo 4 KiB, from the kernel's page-aligned data.
final class KernelCopyBufferTests: XCTestCase {
    func testTheBufferStartsHalfAPageInAndHoldsItsBytes() {
        for size in [1, 2048, 4096, 65_610] {
            let p = KernelCopyBuffer.allocate(byteCount: size)
            XCTAssertEqual(Int(bitPattern: p) % 4096, 2048, "size \(size)")
            p.initializeMemory(as: UInt8.self, repeating: 0xa5, count: size)
            XCTAssertEqual(p.load(fromByteOffset: size - 1, as: UInt8.self), 0xa5)
            KernelCopyBuffer.deallocate(p)
        }
    }
}
