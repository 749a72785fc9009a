import CSodium
import FuzzSupport
import Glibc
import JVPNCore

// Handshake consumers: the responder's Handshake.consumeInitiation and the initiator's
// InitiatorHandshake.consumeResponse, on random bytes. Each input is tried twice: as it is (mostly
// stopped by the size check or mac1), and with mac1 recomputed (and, for a response, the receiver
// index set to the pending handshake's), so that the fuzzer also reaches the DH steps and the AEAD
// opens behind mac1. A genuine message is in the seed corpus; when one is accepted, the responder
// also builds its response and the initiator starts a new pending handshake.

private let initiatorStatic = try! PrivateKey(rawBytes: (0..<32).map { UInt8(0x10 + $0) })
private let responderStatic = try! PrivateKey(rawBytes: (0..<32).map { UInt8(0x30 + $0) })
private let initiatorEphemeral = try! PrivateKey(rawBytes: (0..<32).map { UInt8(0x50 + $0) })
private let responderEphemeral = try! PrivateKey(rawBytes: (0..<32).map { UInt8(0x70 + $0) })
private let initiatorIndex: UInt32 = 0x1122_3344
/// Offset of the receiver index in a response (section 3.2 of docs/PROTOCOL.md).
private let responseReceiverOffset = 8

/// The initiator's side of the fixed handshake; deterministic, so the seed response answers it.
private func startHandshake() -> (message: [UInt8], state: InitiatorHandshake) {
    try! Handshake.makeInitiation(local: initiatorStatic, remote: responderStatic.publicKey,
                                  sessionID: try! SessionID(bytes: [1, 2, 3, 4, 5, 6, 7, 8]), localIndex: initiatorIndex,
                                  timestamp: Timestamp12(unixNanoseconds: 1_700_000_000_000_000_000),
                                  ephemeral: initiatorEphemeral)
}

private func authorized(_ key: PublicKey) -> Bool { key == initiatorStatic.publicKey }

/// MAC(HASH(LABEL_MAC1 ‖ receiver), message[0..<offset]) written at `offset`.
private func writeMac1(_ message: UnsafeMutableRawBufferPointer, offset: Int, receiver: PublicKey) {
    var key = [UInt8](repeating: 0, count: 32)
    let input = Array(Handshake.mac1Label.utf8) + receiver.bytes
    crypto_generichash(&key, 32, input, UInt64(input.count), nil, 0)
    crypto_generichash(message.baseAddress!.assumingMemoryBound(to: UInt8.self) + offset, 16,
                       message.baseAddress!.assumingMemoryBound(to: UInt8.self), UInt64(offset), key, 32)
}

/// Where mac1 sits, found on a genuine message rather than assumed: the handshake owns its layout
/// (a later mac2 moves mac1), and the harness should follow it without an edit.
private func locateMac1(in message: [UInt8], receiver: PublicKey) -> Int {
    for offset in stride(from: message.count - 16, through: 0, by: -1) {
        var copy = message
        copy.withUnsafeMutableBytes { writeMac1($0, offset: offset, receiver: receiver) }
        if copy == message { return offset }
    }
    fuzzFailure("no mac1 found in a genuine \(message.count)-byte message")
}

private struct Fixture {
    let initiation: [UInt8]
    let response: [UInt8]
    let initiationMac1: Int
    let responseMac1: Int
    var pending: InitiatorHandshake

    init() {
        let (initiation, pending) = startHandshake()
        let received = try! initiation.withUnsafeBytes {
            try Handshake.consumeInitiation($0, local: responderStatic, isAuthorized: authorized)
        }
        response = try! received.makeResponse(localIndex: 0x5566_7788, now: 0, ephemeral: responderEphemeral).0
        self.initiation = initiation
        self.pending = pending
        initiationMac1 = locateMac1(in: initiation, receiver: responderStatic.publicKey)
        responseMac1 = locateMac1(in: response, receiver: initiatorStatic.publicKey)
    }
}

nonisolated(unsafe) private var fixture = Fixture()

private func tryInitiation(_ bytes: UnsafeRawBufferPointer) {
    guard let received = try? Handshake.consumeInitiation(bytes, local: responderStatic, isAuthorized: authorized) else {
        return
    }
    _ = try? received.makeResponse(localIndex: 1, now: 0)
}

private func tryResponse(_ bytes: UnsafeRawBufferPointer) {
    if (try? fixture.pending.consumeResponse(bytes, now: 0)) != nil { fixture.pending = startHandshake().state }
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzInitialize(_ argc: UnsafeMutablePointer<Int32>,
                           _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    writeSeedsIfAsked { [fixture.initiation, fixture.response] }
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    withMutableCopy(data, size) { tryInitiation(UnsafeRawBufferPointer($0)) }
    withMutableCopy(data, size) { tryResponse(UnsafeRawBufferPointer($0)) }
    if size == fixture.initiation.count {
        withMutableCopy(data, size) { message in
            writeMac1(message, offset: fixture.initiationMac1, receiver: responderStatic.publicKey)
            tryInitiation(UnsafeRawBufferPointer(message))
        }
    }
    if size == fixture.response.count {
        withMutableCopy(data, size) { message in
            message.storeBytes(of: initiatorIndex.littleEndian, toByteOffset: responseReceiverOffset, as: UInt32.self)
            writeMac1(message, offset: fixture.responseMac1, receiver: initiatorStatic.publicKey)
            tryResponse(UnsafeRawBufferPointer(message))
        }
    }
    return 0
}
