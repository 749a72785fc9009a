import Glibc
import JVPNCore

/// Fixed inputs shared by the targets, so a crash reproduces from its input file alone.
public enum FuzzFixture {
    /// The transport key of the frame target (the same bytes as the control-vectors block's send key).
    public static let transportKey: [UInt8] = (0..<32).map { UInt8(0x80 + $0) }
    public static let receiverIndex: UInt32 = 0x0403_0201

    /// Sender's keypair: seals with `transportKey` towards `receiverIndex`.
    public static func sender() -> Keypair {
        Keypair(sendKey: transportKey, receiveKey: [UInt8](repeating: 0, count: 32), localIndex: 0,
                remoteIndex: receiverIndex, createdAt: 0, isInitiator: true)!
    }

    /// Receiver's keypair: opens what `sender()` seals.
    public static func receiver() -> Keypair {
        Keypair(sendKey: [UInt8](repeating: 0, count: 32), receiveKey: transportKey, localIndex: receiverIndex,
                remoteIndex: 0, createdAt: 0, isInitiator: false)!
    }
}

/// Stops the run: a violated property is a finding, reported the way libFuzzer reports a crash
/// (it saves the input as an artifact).
public func fuzzFailure(_ message: String) -> Never {
    fputs("fuzz property violated: \(message)\n", stderr)
    abort()
}

/// When `JVPN_FUZZ_WRITE_SEEDS` names a directory, writes `seeds()` there (one file each) and exits.
/// run.sh makes each target's seed corpus this way, from messages the current code builds, so a seed
/// can never describe an older layout. Call it from the target's `LLVMFuzzerInitialize`.
public func writeSeedsIfAsked(_ seeds: () -> [[UInt8]]) {
    guard let dir = getenv("JVPN_FUZZ_WRITE_SEEDS").map({ String(cString: $0) }) else { return }
    for (i, seed) in seeds().enumerated() {
        let path = "\(dir)/seed-\(i)"
        guard let f = fopen(path, "wb") else { fuzzFailure("cannot write \(path)") }
        _ = seed.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        fclose(f)
    }
    exit(0)
}

/// The fuzzer's input as a fresh, exactly sized buffer: parsers that work in place may write to it,
/// and AddressSanitizer sees any read past its end.
public func withMutableCopy<R>(_ data: UnsafePointer<UInt8>?, _ size: Int,
                               _ body: (UnsafeMutableRawBufferPointer) -> R) -> R {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 16)
    defer { buffer.deallocate() }
    if size > 0, let data { buffer.copyMemory(from: UnsafeRawBufferPointer(start: data, count: size)) }
    return body(buffer)
}
