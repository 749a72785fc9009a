import FuzzSupport
import JVPNCore

// Control messages (the plaintext of a type-5 frame). Property: decode never crashes, and whatever
// decodes re-encodes to the same bytes, except that a probe's or probe reply's padding comes back as
// zeros (its content is ignored); the re-encoding decodes to the same message.

private func encoded(_ m: ControlMessage, paddedTo: Int = 0) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: max(m.encodedLength, paddedTo))
    let n = out.withUnsafeMutableBytes { m.encode(into: $0.baseAddress!, capacity: $0.count, paddedTo: paddedTo) }
    return Array(out[0..<n])
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>,
                           _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    writeSeedsIfAsked {
        let sid = try! SessionID(bytes: [1, 2, 3, 4, 5, 6, 7, 8])
        let nonce = try! ControlNonce(bytes: (0..<16).map { UInt8($0) })
        return [
            encoded(.probe(seq: 1, sentAtNs: 2, pathID: 3)),
            encoded(.probeReply(seq: 1, sentAtNs: 2, pathID: 3), paddedTo: 64),
            encoded(.reattachRequest(sessionID: sid, bindingVersion: 1, pathID: 2, nonce: nonce, reason: .linkDown)),
            encoded(.reattachAck(sessionID: sid, bindingVersion: 2, nonce: nonce)),
            encoded(.reject(reason: .staleVersion, nonce: nonce, bindingVersion: 3)),
            encoded(.close(reason: .operatorRequest)),
            encoded(.natHint(NATHint(address: [192, 0, 2, 1], port: 51820)!)),
            encoded(.natHint(NATHint(address: [0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 11) + [1], port: 443)!)),
            encoded(.pathChallenge(data: 0x0102_0304_0506_0708)),
            encoded(.pathResponse(data: 0x0102_0304_0506_0708)),
        ]
    }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    withMutableCopy(data, size) { input in
        guard let message = try? ControlMessage.decode(UnsafeRawBufferPointer(input)) else { return }
        let again = encoded(message, paddedTo: size)
        let own = message.encodedLength
        guard again.count == size, again[0..<own].elementsEqual(input[0..<own]),
              again[own...].allSatisfy({ $0 == 0 }) else {
            fuzzFailure("\(message) decoded from \(size) bytes re-encodes to \(again.count) different bytes")
        }
        let redecoded = again.withUnsafeBytes { try? ControlMessage.decode($0) }
        guard redecoded == message else { fuzzFailure("\(message) re-encoded decodes to \(String(describing: redecoded))") }
    }
    return 0
}
