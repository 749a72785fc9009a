import XCTest
@testable import JVPNCore

final class SecretSlabTests: XCTestCase {
    func testSlotsAreDistinctAlignedAndZero() {
        let slab = SecretSlab(slotSize: 64, slotsPerChunk: 63)
        let slots = (0..<130).map { _ in slab.acquire() }
        XCTAssertEqual(Set(slots).count, 130)
        XCTAssertEqual(slab.chunkCount, 3, "63 slots a chunk: 130 slots need 3")
        XCTAssertEqual(slab.slotsInUse, 130)
        for slot in slots {
            XCTAssertEqual(Int(bitPattern: slot) % 16, 0)
            XCTAssertTrue(UnsafeRawBufferPointer(start: slot, count: 64).allSatisfy { $0 == 0 })
        }
        // Slots do not overlap: each keeps what was written to it.
        for (i, slot) in slots.enumerated() { slot.initializeMemory(as: UInt8.self, repeating: UInt8(i), count: 64) }
        for (i, slot) in slots.enumerated() {
            XCTAssertTrue(UnsafeRawBufferPointer(start: slot, count: 64).allSatisfy { $0 == UInt8(i) })
        }
        for slot in slots { slab.release(slot) }
        XCTAssertEqual(slab.slotsInUse, 0)
    }

    func testReleasedSlotsAreWipedAndReusedWithoutNewChunks() {
        let slab = SecretSlab(slotSize: 64, slotsPerChunk: 8)
        let first = (0..<8).map { _ in slab.acquire() }
        for slot in first { slot.initializeMemory(as: UInt8.self, repeating: 0xA5, count: 64) }
        for slot in first { slab.release(slot) }
        // A released slot holds no byte of its secret past the free list link in its first 8 bytes.
        for slot in first {
            let bytes = UnsafeRawBufferPointer(start: slot + 8, count: 56)
            XCTAssertTrue(bytes.allSatisfy { $0 == 0 })
        }
        let again = (0..<8).map { _ in slab.acquire() }
        XCTAssertEqual(Set(again), Set(first))
        XCTAssertEqual(slab.chunkCount, 1)
        for slot in again { XCTAssertTrue(UnsafeRawBufferPointer(start: slot, count: 64).allSatisfy { $0 == 0 }) }
        for slot in again { slab.release(slot) }
    }

    func testKeypairsShareChunksAndGiveTheirSlotsBack() throws {
        let slab = SecretSlab.transportKeys
        let before = slab.slotsInUse
        var keypairs: [Keypair] = []
        for i in 0..<200 {
            let kp = try XCTUnwrap(Keypair(sendKey: [UInt8](repeating: UInt8(i), count: 32), receiveKey: [UInt8](repeating: ~UInt8(i), count: 32),
                                           localIndex: UInt32(i), remoteIndex: UInt32(i), createdAt: 0, isInitiator: true))
            keypairs.append(kp)
        }
        XCTAssertEqual(slab.slotsInUse, before + 200)
        XCTAssertLessThanOrEqual(slab.chunkCount, (before + 200 + slab.slotsPerChunk - 1) / slab.slotsPerChunk)
        for (i, kp) in keypairs.enumerated() {
            XCTAssertEqual(kp.sendKeyBytes, [UInt8](repeating: UInt8(i), count: 32))
            XCTAssertEqual(kp.receiveKeyBytes, [UInt8](repeating: ~UInt8(i), count: 32))
        }
        keypairs.removeAll()
        XCTAssertEqual(slab.slotsInUse, before)
    }

    func testConcurrentAcquireAndReleaseKeepTheCount() {
        let slab = SecretSlab(slotSize: 64, slotsPerChunk: 63)
        DispatchQueue.concurrentPerform(iterations: 8) { t in
            for round in 0..<200 {
                let slots = (0..<5).map { _ in slab.acquire() }
                for slot in slots { slot.storeBytes(of: UInt64(t * 1000 + round), as: UInt64.self) }
                for slot in slots where slot.load(as: UInt64.self) != UInt64(t * 1000 + round) {
                    XCTFail("slot shared between threads")
                }
                for slot in slots { slab.release(slot) }
            }
        }
        XCTAssertEqual(slab.slotsInUse, 0)
        XCTAssertLessThanOrEqual(slab.chunkCount, 1)
    }
}
