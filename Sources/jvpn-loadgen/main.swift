// Load generator for peer scaling (deploy/bench/peers.sh): N client sessions built from JVPNCore's
// handshake, keys and sealing over plain UDP sockets, each with its own key pair and source port,
// all handshaking with one real gateway at once.
//
//   jvpn-loadgen keys --count N --out DIR
//       DIR/loadgen.keys (private keys, one per line, mode 0600) and DIR/loadgen.peers (the
//       gateway's [Peer] sections; AllowedIPs 10.100.x.y/32, one per session)
//   jvpn-loadgen run --keys FILE --gateway IP:PORT --gateway-key BASE64 [--source-base IPv4]
//                    [--sources K] [--timeout S] [--retry-ms MS] [--hold S] [--wave W --wave-ms MS]
//       session i binds to source-base + (i mod K) (default: the wildcard address), port 0;
//       all sessions initiate at once (or W at a time, a wave every MS); prints when every
//       session is attached (its PROBE answered), then holds them idle.
import Glibc
import JVPNCore
import JVPNSystem

func fail(_ message: String) -> Never {
    fputs("jvpn-loadgen: \(message)\n", stderr)
    exit(2)
}

func say(_ line: String) {
    print(line)
    fflush(stdout)
}

var arguments = Array(CommandLine.arguments.dropFirst())
guard let command = arguments.first else { fail("usage: jvpn-loadgen keys|run ... (see the source's header)") }
arguments.removeFirst()
var options: [String: String] = [:]
var i = 0
while i < arguments.count {
    let a = arguments[i]
    guard a.hasPrefix("--"), i + 1 < arguments.count else { fail("expected --option value at '\(a)'") }
    options[String(a.dropFirst(2))] = arguments[i + 1]
    i += 2
}
func option(_ name: String) -> String? { options.removeValue(forKey: name) }
func number(_ name: String, default value: Int, range: ClosedRange<Int>) -> Int {
    guard let s = option(name) else { return value }
    guard let n = Int(s), range.contains(n) else { fail("--\(name) wants \(range.lowerBound)...\(range.upperBound)") }
    return n
}

do { try Sodium.initialize() } catch { fail("libsodium: \(error)") }

switch command {
case "keys":
    let count = number("count", default: 0, range: 1...20_000)
    guard let dir = option("out") else { fail("keys needs --out DIR") }
    guard options.isEmpty else { fail("unknown options: \(options.keys.sorted())") }
    let keys = (0..<count).map { _ in PrivateKey.generate() }
    let old = umask(0o077)
    let keyText = keys.map(\.base64).joined(separator: "\n") + "\n"
    let peerText = keys.enumerated().map { i, k in
        let host = i + 1
        return "[Peer]\nPublicKey = \(k.publicKey.base64)\nAllowedIPs = 10.100.\(host >> 8).\(host & 255)/32\n"
    }.joined(separator: "\n")
    for (name, text) in [("loadgen.keys", keyText), ("loadgen.peers", peerText)] {
        guard let f = fopen("\(dir)/\(name)", "w"), fputs(text, f) >= 0, fclose(f) == 0 else { fail("cannot write \(dir)/\(name)") }
    }
    umask(old)
    say("\(count) key pairs: \(dir)/loadgen.keys, \(dir)/loadgen.peers")

case "run":
    guard let keyFile = option("keys"), let gatewayText = option("gateway"), let gatewayKeyText = option("gateway-key") else {
        fail("run needs --keys, --gateway and --gateway-key")
    }
    let sources = number("sources", default: 1, range: 1...20_000)
    let timeoutS = number("timeout", default: 30, range: 1...600)
    let retryMs = UInt64(number("retry-ms", default: 1000, range: 50...10_000))
    let holdS = number("hold", default: 10, range: 0...3600)
    let wave = number("wave", default: 20_000, range: 1...20_000)
    let waveMs = UInt64(number("wave-ms", default: 1000, range: 1...60_000))
    let sourceBase = option("source-base").map { s -> [UInt8] in
        guard case .v4(let v)? = IPAddress(s) else { fail("--source-base wants an IPv4 address") }
        return withUnsafeBytes(of: v.bigEndian) { Array($0) }
    }
    guard options.isEmpty else { fail("unknown options: \(options.keys.sorted())") }
    guard case .success(let endpoint) = Endpoint.parse(gatewayText), case .v4(let gwV4) = endpoint.address else {
        fail("--gateway wants IPv4:PORT")
    }
    let gateway = SocketAddress(addressBytes: withUnsafeBytes(of: gwV4.bigEndian) { Array($0) }, port: endpoint.port)!
    guard let gatewayKey = try? PublicKey(base64: gatewayKeyText) else { fail("--gateway-key is not a public key") }
    guard let text = try? FileIO.readUTF8(keyFile) else { fail("cannot read \(keyFile)") }
    let keys = text.split(separator: "\n").map { line -> PrivateKey in
        guard let k = try? PrivateKey(base64: String(line)) else { fail("\(keyFile): a line is not a private key") }
        return k
    }
    var sessions: [LoadSession] = []
    sessions.reserveCapacity(keys.count)
    for (n, key) in keys.enumerated() {
        var local: SocketAddress?
        if let b = sourceBase {
            let v = (UInt32(b[0]) << 24 | UInt32(b[1]) << 16 | UInt32(b[2]) << 8 | UInt32(b[3])) &+ UInt32(n % sources)
            local = SocketAddress(addressBytes: withUnsafeBytes(of: v.bigEndian) { Array($0) }, port: 0)
        }
        do {
            let s = try UDPSocket(family: AF_INET, localAddress: local)
            sessions.append(LoadSession(key: key, socket: s, localIndex: UInt32(n + 1)))
        } catch {
            fail("session \(n): \(error) (ulimit -n? the source address on an interface?)")
        }
    }
    // The storm: every initiation built first, then all sent back to back.
    // The storm: every initiation of a wave built first, then all sent back to back; the next wave
    // `waveMs` later (one wave of all N unless --wave is given).
    func startWave(_ range: Range<Int>, nowMs: UInt64?) {
        let initiations = sessions[range].map { s -> [UInt8] in
            guard let m = s.prepareInitiation(gateway: gatewayKey) else { fail("cannot build an initiation") }
            return m
        }
        let at = nowMs ?? Clock.monotonicMilliseconds()
        for (s, m) in zip(sessions[range], initiations) { s.sendInitiation(m, to: gateway, nowMs: at) }
    }
    let t0 = Clock.monotonicMilliseconds()
    var started = min(wave, sessions.count)
    startWave(0..<started, nowMs: nil)
    var nextWaveMs = Clock.monotonicMilliseconds() + waveMs
    let poller = Poller(sessions.map(\.socket.fileDescriptor))
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2048, alignment: 16)
    var attached = 0
    var lastCheckMs = t0
    let deadline = t0 + UInt64(timeoutS) * 1000
    while attached < sessions.count && Clock.monotonicMilliseconds() < deadline {
        poller.wait(timeoutMs: 20)
        let nowMs = Clock.monotonicMilliseconds()
        for (k, s) in sessions.enumerated() where poller.isReadable(k) {
            while true {
                let n = recv(s.socket.fileDescriptor, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
                if n <= 0 { break }
                let was = s.isAttached
                s.receive(UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]), gatewayKey: gatewayKey, gateway: gateway, nowMs: nowMs)
                if !was && s.isAttached { attached += 1 }
            }
        }
        if started < sessions.count && nowMs >= nextWaveMs {
            let next = min(started + wave, sessions.count)
            startWave(started..<next, nowMs: nil)
            started = next
            nextWaveMs = Clock.monotonicMilliseconds() + waveMs
        }
        if nowMs - lastCheckMs >= 50 {
            lastCheckMs = nowMs
            for s in sessions[0..<started] where !s.isAttached {
                s.retryIfDue(gatewayKey: gatewayKey, gateway: gateway, nowMs: nowMs, retryMs: retryMs)
            }
        }
    }
    let times = sessions.filter(\.isAttached).map { Double($0.attachedMs - t0) }
    let last = times.max() ?? 0
    say("attached \(attached)/\(sessions.count) in \(Int(last)) ms" +
        " (p50 \(Int(Percentile.of(times, 50) ?? 0)) ms, p99 \(Int(Percentile.of(times, 99) ?? 0)) ms);" +
        " initiations \(sessions.reduce(0) { $0 + $1.initiationsSent }), cookie replies \(sessions.reduce(0) { $0 + $1.cookieReplies })," +
        " probes \(sessions.reduce(0) { $0 + $1.probesSent }), path challenges \(sessions.reduce(0) { $0 + $1.challenges })," +
        " other control \(sessions.reduce(0) { $0 + $1.otherControl })")
    if holdS > 0 {
        say("holding \(attached) idle sessions for \(holdS) s")
        sleep(UInt32(holdS))
    }
    exit(attached == sessions.count ? 0 : 1)

default:
    fail("unknown command '\(command)': keys or run")
}
