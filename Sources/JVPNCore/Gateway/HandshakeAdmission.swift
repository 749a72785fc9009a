import CSodium

/// Why a handshake datagram was dropped on the receive thread. Each is a counter, never an event.
public enum AdmissionDropReason: Sendable, Equatable {
    /// Wrong size for its type, non-zero reserved bytes, or a type this side never receives.
    case malformed
    /// An initiation whose mac1 is not keyed by our public key: the sender does not know us.
    case badMac1
    /// Under load, no valid mac2, and the global cookie-reply budget is spent.
    case cookieRateLimited
    /// The source address (IPv6: its /64) sent more handshakes than its bucket allows.
    case sourceRateLimited
    /// The handshake queue is full.
    case queueFull
}

public enum AdmissionDecision: Sendable, Equatable {
    /// Copy the message into the handshake queue: the worker does the public-key work.
    case enqueue
    /// Answer with a cookie reply (`HandshakeAdmission.writeCookieReply`) and drop the message.
    case sendCookie
    case drop(AdmissionDropReason)
}

/// The cheap checks a handshake datagram passes on the receive thread before any public-key work,
/// in WireGuard's order: exact size, type and reserved bytes; mac1 (one keyed BLAKE2b over 128
/// bytes, key precomputed); if the gateway is under load, a mac2 valid for this source address and
/// port, else a cookie reply; a token bucket per source; room in the queue. Pure: the facts (bytes,
/// source, queue depth, time) come in, a decision goes out. Nothing allocated per call; one owner
/// (the receive thread), so no lock.
public struct HandshakeAdmission: Sendable {
    public enum Role: Sendable, Equatable {
        /// Receives initiations (type 1).
        case gateway
        /// Receives responses (type 2) and cookie replies (type 3).
        case client
    }

    /// Slots of the handshake queue (`HandshakeWorker` in the daemon). 1024 * 160 bytes, preallocated.
    public static let queueCapacity = 1024
    /// The gateway is under load from when the queue holds this many messages (1/8, as WireGuard).
    public static let loadThreshold = queueCapacity / 8
    /// ... until this long after it last did (WireGuard's UnderLoadAfterTime): a flood that keeps the
    /// queue at the threshold would otherwise keep the worker busy on junk between two checks.
    public static let underLoadHoldMs: UInt64 = 1000
    /// Per source under load: WireGuard's 20 per second, burst 5.
    public static let loadedPerSecond = 20.0, loadedBurst = 5.0
    /// Per source otherwise: enough for many clients behind one NAT address; still bounds one
    /// sender's share of the queue before the load flag is up.
    public static let idlePerSecond = 100.0, idleBurst = 50.0
    /// Cookie replies per second, all sources together. It must at least match the flood rate we
    /// defend against (100,000/s), else a new client's request is refused with the flood's and it
    /// waits for 1 s retries (measured at 10,000/s: attach 3-4 s). Sending one costs ~4.5 us of
    /// kernel time on the handshake worker (BENCHMARKS.md), so this bounds it to ~2/3 of a core.
    /// A reply (64 bytes) is smaller than the initiation that asked for it (160): no amplification.
    public static let cookieRepliesPerSecond = 150_000.0
    public static let cookieReplyBurst: UInt64 = 15_000

    public let role: Role
    private let mac1Key: (UInt64, UInt64, UInt64, UInt64)
    public private(set) var cookies: CookieChecker
    private var cookieReplies: TokenBucket
    private var perSource: SourceRateLimiter
    private var underLoadUntilMs: UInt64 = 0
    /// The cookie of the last `.sendCookie` decision, so the reply does not compute it again.
    private var replyCookie: (source: HandshakeSource, cookie: MAC16)?

    public init(role: Role, localPublicKey: PublicKey, nowMs: UInt64, cookieSecret: [UInt8]? = nil,
                sourceTableCapacity: Int = SourceRateLimiter.defaultCapacity) {
        self.role = role
        var k: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        withUnsafeMutableBytes(of: &k) { Handshake.mac1Key(for: localPublicKey, into: $0.baseAddress!) }
        mac1Key = k
        cookies = CookieChecker(localPublicKey: localPublicKey, nowMs: nowMs, secret: cookieSecret)
        cookieReplies = TokenBucket(capacity: HandshakeAdmission.cookieReplyBurst,
                                    refillPerSecond: HandshakeAdmission.cookieRepliesPerSecond, nowMs: nowMs)
        perSource = SourceRateLimiter(capacity: sourceTableCapacity)
    }

    /// Whether `admit` at `nowMs` with this queue depth treats the gateway as under load (and notes it).
    private mutating func isUnderLoad(queueDepth: Int, nowMs: UInt64) -> Bool {
        if queueDepth >= HandshakeAdmission.loadThreshold { underLoadUntilMs = nowMs + HandshakeAdmission.underLoadHoldMs }
        return nowMs < underLoadUntilMs
    }

    /// Decides what becomes of a handshake datagram (type 1, 2 or 3; the pump sends the others
    /// elsewhere). `sourceProven`: the message came on a TCP connection, whose handshake already
    /// proved the source address, so no cookie is asked for under load (the per-source limit holds).
    public mutating func admit(_ msg: UnsafeRawBufferPointer, source: HandshakeSource, queueDepth: Int,
                               nowMs: UInt64, sourceProven: Bool = false) -> AdmissionDecision {
        guard let p = msg.baseAddress, msg.count >= 4,
              p.load(fromByteOffset: 1, as: UInt8.self) == 0,
              p.load(fromByteOffset: 2, as: UInt8.self) == 0,
              p.load(fromByteOffset: 3, as: UInt8.self) == 0,
              let type = MessageType(rawValue: p.load(as: UInt8.self)) else { return .drop(.malformed) }
        switch (role, type) {
        case (.gateway, .initiation):
            return admitInitiation(p, length: msg.count, source: source, queueDepth: queueDepth, nowMs: nowMs,
                                   sourceProven: sourceProven)
        case (.client, .response):
            return admitToQueue(length: msg.count, expected: Handshake.responseLength, queueDepth: queueDepth)
        case (.client, .cookieReply):
            return admitToQueue(length: msg.count, expected: Cookie.replyLength, queueDepth: queueDepth)
        case (.gateway, .response), (.gateway, .cookieReply), (.client, .initiation),
             (_, .data), (_, .control):
            return .drop(.malformed)
        }
    }

    private func admitToQueue(length: Int, expected: Int, queueDepth: Int) -> AdmissionDecision {
        guard length == expected else { return .drop(.malformed) }
        return queueDepth < HandshakeAdmission.queueCapacity ? .enqueue : .drop(.queueFull)
    }

    private mutating func admitInitiation(_ p: UnsafeRawPointer, length: Int, source: HandshakeSource,
                                          queueDepth: Int, nowMs: UInt64, sourceProven: Bool) -> AdmissionDecision {
        guard length == Handshake.initiationLength else { return .drop(.malformed) }
        guard hasValidMac1(p) else { return .drop(.badMac1) }
        let loaded = isUnderLoad(queueDepth: queueDepth, nowMs: nowMs)
        if loaded && !sourceProven {
            cookies.rotateIfDue(nowMs: nowMs)
            let cookie = cookies.cookie(for: source)
            guard cookies.isValidMac2(p, cookie: cookie) else {
                guard cookieReplies.take(nowMs: nowMs) else { return .drop(.cookieRateLimited) }
                replyCookie = (source, cookie)
                return .sendCookie
            }
        }
        let allowed = loaded
            ? perSource.allow(source.address, nowMs: nowMs, perSecond: HandshakeAdmission.loadedPerSecond,
                              burst: HandshakeAdmission.loadedBurst)
            : perSource.allow(source.address, nowMs: nowMs, perSecond: HandshakeAdmission.idlePerSecond,
                              burst: HandshakeAdmission.idleBurst)
        guard allowed else { return .drop(.sourceRateLimited) }
        return queueDepth < HandshakeAdmission.queueCapacity ? .enqueue : .drop(.queueFull)
    }

    private func hasValidMac1(_ p: UnsafeRawPointer) -> Bool {
        var key = mac1Key
        return withUnsafeTemporaryAllocation(byteCount: 16, alignment: 8) { m in
            withUnsafeBytes(of: &key) { k in
                Blake2.keyed(m.baseAddress!, outLength: 16, key: k.baseAddress!,
                             UnsafeRawBufferPointer(start: p, count: Handshake.iMac1))
            }
            return sodium_memcmp(m.baseAddress!, p + Handshake.iMac1, 16) == 0
        }
    }

    /// The 64-byte answer to an initiation `admit` said `.sendCookie` for, written into `out`.
    public mutating func writeCookieReply(to msg: UnsafeRawBufferPointer, source: HandshakeSource,
                                          into out: UnsafeMutableRawPointer) -> Int {
        let nonce = cookies.nextNonce()
        if let r = replyCookie, r.source == source {
            cookies.writeReply(to: msg.baseAddress!, cookie: r.cookie, nonce: nonce, into: out)
        } else {
            cookies.writeReply(to: msg.baseAddress!, source: source, nonce: nonce, into: out)
        }
        return Cookie.replyLength
    }
}
