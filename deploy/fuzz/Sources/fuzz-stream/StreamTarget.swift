import Glibc
import FuzzSupport
import JVPNCore

// The TCP transport's reader and the gateway's connection table, fed by the input.
// 1. The input as the bytes of a TCP stream, delivered in chunks whose sizes the input chooses:
//    `StreamFraming.next` never reads outside what arrived, a frame it returns lies inside the
//    bytes and its head passes the framing rules, `needMore` only when the frame is not all there,
//    and the frames are the same whatever the chunking (compared with one delivery of everything).
// 2. The input as a sequence of connection events for `StreamConnectionTable` (accept from a
//    source, authenticate as a peer, a frame, close, time): the bounds always hold.

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>,
                           _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    writeSeedsIfAsked {
        let keepalive: [UInt8] = [4, 0, 0, 0] + [UInt8](repeating: 0x11, count: 28)
        let initiation: [UInt8] = [1, 0, 0, 0] + [UInt8](repeating: 0x22, count: 156)
        return [StreamFraming.encode([keepalive]), StreamFraming.encode([initiation, keepalive, keepalive]),
                Array("GET / HTTP/1.1\r\n\r\n".utf8)]
    }
    return 0
}

/// Every frame of `bytes` (the whole stream at once) until it ends or breaks the framing.
private func frames(_ bytes: UnsafeRawPointer, _ count: Int, maxFrame: Int) -> (frames: [[UInt8]], broken: Bool) {
    var out: [[UInt8]] = []
    var offset = 0
    while true {
        switch StreamFraming.next(bytes, offset: offset, count: count, maxFrame: maxFrame) {
        case .frame(let start, let length):
            guard start == offset + 2, length >= StreamFraming.minFrame, length <= maxFrame, start + length <= count else {
                fuzzFailure("frame at \(start) of \(length) bytes in a stream of \(count)")
            }
            let type = bytes.load(fromByteOffset: start, as: UInt8.self)
            guard MessageType(rawValue: type) != nil,
                  (1...3).allSatisfy({ bytes.load(fromByteOffset: start + $0, as: UInt8.self) == 0 }) else {
                fuzzFailure("a frame with a bad head was accepted")
            }
            out.append(Array(UnsafeRawBufferPointer(start: bytes + start, count: length)))
            offset = start + length
        case .needMore(let total):
            guard offset + total > count else { fuzzFailure("needMore(\(total)) at \(offset) with \(count) bytes there") }
            return (out, false)
        case .violation:
            return (out, true)
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data, size > 0 else { return 0 }
    let maxFrame = data[0] % 2 == 0 ? StreamFraming.maxFrame : 2046
    withMutableCopy(data, size) { stream in
        let whole = frames(UnsafeRawPointer(stream.baseAddress!), size, maxFrame: maxFrame)
        // The same bytes arriving in pieces, as a reader with a buffer sees them.
        var got: [[UInt8]] = []
        var broken = false
        var arrived = 0
        var consumed = 0
        var k = 0
        while arrived < size && !broken {
            arrived = min(size, arrived + 1 + Int(data[k % size]) % 97)
            k += 1
            let (f, b) = frames(UnsafeRawPointer(stream.baseAddress!) + consumed, arrived - consumed, maxFrame: maxFrame)
            got += f
            consumed += f.reduce(0) { $0 + $1.count + 2 }
            broken = b
        }
        guard got == whole.frames, broken == whole.broken else {
            fuzzFailure("chunked delivery gave \(got.count) frames (broken \(broken)), whole \(whole.frames.count) (broken \(whole.broken))")
        }
    }
    // The connection table under a sequence of events.
    var limits = StreamConnectionTable.Limits()
    limits.maxUnauthenticated = 8
    limits.perSourceUnauthenticated = 3
    limits.perPeer = 2
    var table = StreamConnectionTable(peerCount: 3, limits: limits)
    var open: [StreamConnectionTable.ID] = []
    var now: UInt64 = 0
    var i = 0
    while i + 1 < size {
        let op = data[i], arg = data[i + 1]
        i += 2
        switch op % 5 {
        case 0:
            if case .admit(let id, let evicting) = table.accept(source: .v4(UInt32(arg % 4)), nowMs: now) {
                open.removeAll { $0 == evicting }
                open.append(id)
            }
        case 1:
            if !open.isEmpty {
                let closing = table.authenticated(open[Int(arg) % open.count], peer: Int(arg % 3), nowMs: now)
                open.removeAll { closing.contains($0) }
            }
        case 2:
            if !open.isEmpty { table.heard(open[Int(arg) % open.count], nowMs: now) }
        case 3:
            if !open.isEmpty { table.closed(open.remove(at: Int(arg) % open.count)) }
        default:
            now += UInt64(arg) * 100
            let gone = table.expire(nowMs: now).map(\.0)
            open.removeAll { gone.contains($0) }
        }
        guard table.unauthenticated <= limits.maxUnauthenticated,
              table.unauthenticated + table.authenticatedCount == open.count,
              open.allSatisfy({ table.isOpen($0) }),
              (0..<3).allSatisfy({ p in open.filter { table.peer(of: $0) == p }.count <= limits.perPeer }) else {
            fuzzFailure("connection table bounds broken: \(table.unauthenticated) unauthenticated, \(table.authenticatedCount) authenticated, \(open.count) open")
        }
    }
    return 0
}
