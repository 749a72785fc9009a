/// One session as the gateway owns it: the single source of truth for its state, binding,
/// `binding_version`, validated addresses and limits. Only `GatewayCore` changes it.
public struct GatewaySession<Address: Hashable & Sendable>: Equatable, Sendable {
    /// A REATTACH waiting for its address to pass path validation.
    struct PendingReattach: Equatable, Sendable {
        var nonce: ControlNonce
        var version: UInt64
        var reason: ReasonCode
        var address: Address
        var atMs: UInt64
    }

    /// The last REATTACH that moved the binding: a retry of it gets the same ACK.
    struct AppliedReattach: Equatable, Sendable {
        var nonce: ControlNonce
        var version: UInt64
    }

    public let id: SessionID
    public internal(set) var machine: SessionStateMachine
    /// Where the session's traffic goes; nil until an address is validated.
    public internal(set) var bound: Address?
    public internal(set) var bindingVersion: UInt64
    public let startedMs: UInt64
    /// Last authenticated frame from the bound address (TransportLossTtlMs counts from here).
    public internal(set) var lastAuthenticatedMs: UInt64
    public internal(set) var switches = 0
    public internal(set) var securityEventsSuppressed: UInt64 = 0
    /// Why the session ended, once TERMINATED (told to a client that still uses its keys).
    public internal(set) var endReason: ReasonCode?
    var validation = PathValidation<Address>()
    /// The client's path MTU reports, by address.
    public internal(set) var pathMtus = PathMtuTable<Address>()
    var pendingReattach: PendingReattach?
    var lastApplied: AppliedReattach?
    var switchBudget: SwitchBudget
    var controlBucket: TokenBucket
    var securityBucket: TokenBucket
    var lastHintMs: UInt64?
    var lastCloseMs: UInt64?

    /// `bindingVersion`: the first version of the session on this gateway (a resumed session starts
    /// at its new ownership epoch).
    init(id: SessionID, policy: PolicyConfig, nowMs: UInt64, bindingVersion: UInt64 = GatewayCore<Address>.initialBindingVersion) {
        self.id = id
        machine = SessionStateMachine(nowMs: nowMs)
        self.bindingVersion = bindingVersion
        startedMs = nowMs
        lastAuthenticatedMs = nowMs
        switchBudget = SwitchBudget(limit: policy.maxSwitchesPerMinute)
        controlBucket = TokenBucket(capacity: GatewayLimits.controlPerSessionBurst,
                                    refillPerSecond: GatewayLimits.controlPerSessionPerSecond, nowMs: nowMs)
        securityBucket = SecurityEventLimiter.sessionBucket(nowMs: nowMs)
    }

    public var state: SessionState { machine.state }
    /// `MaxSwitchesPerMinute` in force for this session.
    public var switchBudgetLimit: Int { switchBudget.limit }
    public var isLive: Bool { machine.state != .terminated }

    public func isValidated(_ a: Address, nowMs: UInt64) -> Bool { validation.isValidated(a, nowMs: nowMs) }

    /// An authenticated frame of `bytes` arrived from `a`. The address a REATTACH waits on keeps
    /// its challenge however many other addresses are heard meanwhile: an on-path attacker that
    /// replays frames from addresses of its choosing must not starve its validation.
    mutating func heard(_ a: Address, bytes: Int, nowMs: UInt64) {
        validation.heard(a, bytes: bytes, nowMs: nowMs, keeping: pendingReattach?.address)
    }

    /// The largest datagram the bound path carries, as the client reported it (nil: no report).
    public var boundMaxDatagram: Int? { bound.flatMap { pathMtus.maxDatagram(towards: $0) } }
}

/// Fixed limits of the gateway core (documented in docs/PROTOCOL.md).
public enum GatewayLimits {
    /// Control frames per session: far above what probing at 50 ms on a few paths needs.
    public static let controlPerSessionBurst: UInt64 = 200
    public static let controlPerSessionPerSecond = 100.0
    public static let controlGlobalBurst: UInt64 = 20_000
    public static let controlGlobalPerSecond = 10_000.0
    /// An initiation's timestamp may run ahead of the gateway's wall clock by at most this much.
    public static let maxFutureTimestampNs: UInt64 = 300 * 1_000_000_000
    /// Unconfirmed handshakes and REATTACHes waiting for path validation are forgotten after this.
    public static let pendingLifetimeMs: UInt64 = 5000
    /// NAT hints and close replies at most this often per session.
    public static let hintIntervalMs: UInt64 = 1000
}
