import JVPNCore
@testable import JVPNDaemon
import JVPNSystem
import Synchronization
import XCTest

/// The admission the workers' receive threads share: cookie replies written from several threads
/// at once never repeat a nonce (each worker with its own copy of the admission started the same
/// nonce sequence and sent every nonce once per worker).
final class SharedAdmissionTests: XCTestCase {
    func testCookieReplyNoncesNeverRepeatAcrossThreads() throws {
        let admission = SharedAdmission(HandshakeAdmission(role: .gateway, localPublicKey: PrivateKey.generate().publicKey, nowMs: 0))
        let threads = 2, replies = 20_000
        let nonces = (0..<threads).map { _ in UnsafeMutablePointer<UInt8>.allocate(capacity: replies * 24) }
        defer { nonces.forEach { $0.deallocate() } }
        let done = Semaphore()
        let ready = Atomic<Int>(0)
        for t in 0..<threads {
            let out = nonces[t]
            try DetachedThread.start(name: "test-admission") {
                var initiation = [UInt8](repeating: 0, count: Handshake.initiationLength)
                initiation[0] = 1
                initiation[4] = UInt8(t)
                let reply = UnsafeMutableRawPointer.allocate(byteCount: Cookie.replyLength, alignment: 16)
                defer { reply.deallocate() }
                let source = HandshakeSource(address: IPAddress("10.0.0.\(t + 1)")!, port: 4000)
                ready.add(1, ordering: .sequentiallyConsistent)
                while ready.load(ordering: .sequentiallyConsistent) < threads {}
                for i in 0..<replies {
                    _ = initiation.withUnsafeBytes { admission.writeCookieReply(to: $0, source: source, into: reply) }
                    (out + i * 24).update(from: reply.assumingMemoryBound(to: UInt8.self) + 8, count: 24)
                }
                done.signal()
            }
        }
        for _ in 0..<threads { XCTAssertTrue(done.wait(timeoutMs: 30_000)) }
        var seen = Set<[UInt8]>()
        for t in 0..<threads {
            for i in 0..<replies { seen.insert(Array(UnsafeBufferPointer(start: nonces[t] + i * 24, count: 24))) }
        }
        XCTAssertEqual(seen.count, threads * replies, "every cookie reply has its own nonce")
    }
}
