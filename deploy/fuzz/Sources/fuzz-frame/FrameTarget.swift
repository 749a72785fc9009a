import Glibc
import FuzzSupport
import JVPNCore

// Transport frames (types 4 and 5). Two properties per input:
// 1. as a received datagram: peekHeader and open never crash or read outside the datagram, and a
//    datagram that opens yields a plaintext of length - 32 (random bytes never do: the tag fails);
// 2. as a plaintext: seal then open gives it back, and the frame with one bit flipped does not open;
//    here the 48 bytes before the frame are lent to the AEAD (as the data plane lends them), which
//    must touch nothing beyond them (AddressSanitizer: they start the allocation) and give them
//    back unchanged.

private let sender = FuzzFixture.sender()
private let receiver = FuzzFixture.receiver()

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>,
                           _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    writeSeedsIfAsked {
        // Genuine frames, and one datagram a byte longer than the largest frame: libFuzzer's inputs
        // grow to the largest seed, so the size limit itself gets tested.
        [[], [0x45, 0, 0, 20], [UInt8](repeating: 0xab, count: 1400)].map { plaintext in
            var frame = [UInt8](repeating: 0, count: plaintext.count + Frame.overhead)
            frame.replaceSubrange(Frame.headerLength..<(Frame.headerLength + plaintext.count), with: plaintext)
            let n = frame.withUnsafeMutableBytes {
                Frame.seal(type: .data, receiverIndex: FuzzFixture.receiverIndex, counter: 1, key: sender,
                           buffer: $0.baseAddress!, plaintextLength: plaintext.count)
            }
            return Array(frame[0..<n])
        } + [[UInt8](repeating: MessageType.data.rawValue, count: Frame.maxFrame + 1)]
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    withMutableCopy(data, size) { datagram in
        guard let base = datagram.baseAddress,
              let header = Frame.peekHeader(UnsafeRawPointer(base), length: size) else { return }
        if let n = Frame.open(header: header, key: receiver, buffer: base, length: size), n != size - Frame.overhead {
            fuzzFailure("open returned \(n) for a \(size)-byte frame")
        }
    }
    let plaintextLength = min(size, Frame.maxPlaintext)
    let room = Frame.usefulRoomBefore
    withMutableCopy(nil, room + plaintextLength + Frame.overhead) { whole in
        let lent = whole.baseAddress!
        for i in 0..<room { lent.storeBytes(of: UInt8(truncatingIfNeeded: i &* 37 &+ size), toByteOffset: i, as: UInt8.self) }
        let lentBefore = Array(whole[0..<room])
        let base = lent + room
        let frame = UnsafeMutableRawBufferPointer(rebasing: whole[room...])
        if plaintextLength > 0 { (base + Frame.headerLength).copyMemory(from: data!, byteCount: plaintextLength) }
        let type: MessageType = plaintextLength % 2 == 0 ? .data : .control
        let n = Frame.seal(type: type, receiverIndex: FuzzFixture.receiverIndex, counter: UInt64(size), key: sender,
                           buffer: base, plaintextLength: plaintextLength, roomBefore: room)
        guard n == plaintextLength + Frame.overhead else { fuzzFailure("seal returned \(n) for \(plaintextLength) bytes") }
        guard Array(whole[0..<room]) == lentBefore else { fuzzFailure("seal did not give the lent bytes back") }
        let sealed = Array(frame)
        guard let header = Frame.peekHeader(UnsafeRawPointer(base), length: n),
              header == FrameHeader(type: type, receiverIndex: FuzzFixture.receiverIndex, counter: UInt64(size)),
              Frame.open(header: header, key: receiver, buffer: base, length: n, roomBefore: room) == plaintextLength,
              plaintextLength == 0 || memcmp(base + Frame.headerLength, data!, plaintextLength) == 0 else {
            fuzzFailure("a sealed frame of \(plaintextLength) bytes does not open to its plaintext")
        }
        guard Array(whole[0..<room]) == lentBefore else { fuzzFailure("open did not give the lent bytes back") }
        // Flip one bit, chosen by the input, anywhere in the frame: it must no longer be accepted.
        frame.copyBytes(from: sealed)
        let bit = size > 0 ? Int(data![0]) * 257 &+ size : 0
        base.storeBytes(of: sealed[(bit / 8) % n] ^ UInt8(1 << (bit % 8)), toByteOffset: (bit / 8) % n, as: UInt8.self)
        if let h = Frame.peekHeader(UnsafeRawPointer(base), length: n),
           Frame.open(header: h, key: receiver, buffer: base, length: n, roomBefore: room) != nil {
            fuzzFailure("a frame with bit \(bit % (8 * n)) flipped still opens")
        }
        guard Array(whole[0..<room]) == lentBefore else { fuzzFailure("a rejected open did not give the lent bytes back") }
    }
    return 0
}
