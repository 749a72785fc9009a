import Glibc
import JVPNCore
@testable import JVPNDaemon
import JVPNSystem
import XCTest

/// A frame the socket took only in part is finished without another write: the receive thread's
/// tick sends its rest, so a sender that falls silent after a backed-up burst leaves no frame cut.
final class TcpPartialFrameTests: XCTestCase {
    private func connectedPair() throws -> (listener: TcpListener, client: TcpSocket, server: TcpSocket) {
        for _ in 0..<20 {
            let port = UInt16.random(in: 40000...60000)
            guard let listener = try? TcpListener(port: port, family: AF_INET) else { continue }
            let client = try TcpSocket.connect(to: SocketAddress(addressBytes: [127, 0, 0, 1], port: port)!, device: nil, mark: nil)
            for _ in 0..<200 {
                if case .connection(let server, _) = listener.accept() { return (listener, client, server) }
                usleep(5000)
            }
        }
        throw XCTSkip("no free loopback port")
    }

    /// Every byte the server can read now.
    private func drain(_ s: TcpSocket, into out: inout [UInt8]) {
        let buf = UnsafeMutableRawPointer.allocate(byteCount: 1 << 16, alignment: 16)
        defer { buf.deallocate() }
        while case .bytes(let n) = s.read(into: buf, capacity: 1 << 16) {
            out += UnsafeRawBufferPointer(start: buf, count: n)
        }
    }

    /// Whole frames in `bytes`, and whether a frame is left cut at the end.
    private func frames(_ bytes: [UInt8]) -> (count: Int, cut: Bool) {
        var offset = 0, count = 0
        while offset + 2 <= bytes.count {
            let n = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8
            guard offset + 2 + n <= bytes.count else { return (count, true) }
            offset += 2 + n
            count += 1
        }
        return (count, offset != bytes.count)
    }

    func testTheRestOfACutFrameGoesOnTheTick() throws {
        let (listener, clientSocket, server) = try connectedPair()
        _ = listener
        for _ in 0..<200 where clientSocket.connectResult() == .inProgress { usleep(5000) }
        let c = TcpConnection(id: 1, socket: clientSocket, remote: SocketAddress(addressBytes: [127, 0, 0, 1], port: 1)!, authenticated: true)
        let frame = [UInt8](repeating: 0x5a, count: 1400)
        // Write until the socket takes a frame only in part (the server reads nothing meanwhile).
        var cut = false
        var sent = 0
        for _ in 0..<100_000 {
            let before = c.framesDropped.load(ordering: .relaxed)
            let ok = frame.withUnsafeBytes { c.sendOne($0.baseAddress!, length: $0.count, to: c.remote) }
            if ok { sent += 1 }
            if c.framesDropped.load(ordering: .relaxed) > before { break } // backed up: nothing taken
            if c.hasPartialFrame { cut = true; break }
        }
        XCTAssertTrue(cut, "no write was taken in part (sent \(sent))")
        var received: [UInt8] = []
        // Drain what is there: the last frame is cut, and stays so without a write.
        for _ in 0..<50 { drain(server, into: &received); usleep(2000) }
        XCTAssertTrue(frames(received).cut, "the cut frame should still be incomplete")
        c.finishPartialFrame()
        for _ in 0..<50 { drain(server, into: &received); usleep(2000) }
        let result = frames(received)
        XCTAssertFalse(result.cut, "the tick finished the frame")
        XCTAssertEqual(result.count, sent, "every frame the socket took in whole or in part arrived whole")
    }
}
