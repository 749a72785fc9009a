/// Every reason code the contract names. Raw values are the wire/log spelling.
public enum ReasonCode: String, Sendable, CaseIterable, Codable {
    // transitions
    case handshakeOK = "HANDSHAKE_OK"
    case lossThreshold = "LOSS_THRESHOLD"
    case rttThreshold = "RTT_THRESHOLD"
    case jitterThreshold = "JITTER_THRESHOLD"
    case stabilityRestored = "STABILITY_RESTORED"
    case linkDown = "LINK_DOWN"
    case addressLost = "ADDRESS_LOST"
    case probeTimeout = "PROBE_TIMEOUT"
    case betterPath = "BETTER_PATH"
    case natRebind = "NAT_REBIND"
    case candidateAvailable = "CANDIDATE_AVAILABLE"
    case reattachOK = "REATTACH_OK"
    case recoveryWindowExceeded = "RECOVERY_WINDOW_EXCEEDED"
    case switchRateLimited = "SWITCH_RATE_LIMITED"
    case sessionTTLExpired = "SESSION_TTL_EXPIRED"
    case transportLossTTLExpired = "TRANSPORT_LOSS_TTL_EXPIRED"
    case handshakeTimeout = "HANDSHAKE_TIMEOUT"
    case operatorRequest = "OPERATOR_REQUEST"
    case peerClosed = "PEER_CLOSED"
    case policyHardFail = "POLICY_HARD_FAIL"
    case ownershipConflict = "OWNERSHIP_CONFLICT"
    // security rejects
    case invalidProof = "INVALID_PROOF"
    case replayDetected = "REPLAY_DETECTED"
    case staleVersion = "STALE_VERSION"
    case unknownSession = "UNKNOWN_SESSION"
    case rateLimited = "RATE_LIMITED"
    // cluster
    /// A clustered gateway cannot record a session change in its store (etcd unreachable, or its
    /// lease ran out): it refuses what it cannot record and stops serving what it can no longer own.
    case storeUnavailable = "STORE_UNAVAILABLE"

    /// The number written on the wire (reject and close messages, REATTACH_REQUEST). Fixed per code,
    /// not derived from declaration order, so adding a code never renumbers the others.
    public var wireCode: UInt8 {
        switch self {
        case .handshakeOK: return 1
        case .lossThreshold: return 2
        case .rttThreshold: return 3
        case .jitterThreshold: return 4
        case .stabilityRestored: return 5
        case .linkDown: return 6
        case .addressLost: return 7
        case .probeTimeout: return 8
        case .betterPath: return 9
        case .natRebind: return 10
        case .candidateAvailable: return 11
        case .reattachOK: return 12
        case .recoveryWindowExceeded: return 13
        case .switchRateLimited: return 14
        case .sessionTTLExpired: return 15
        case .transportLossTTLExpired: return 16
        case .handshakeTimeout: return 17
        case .operatorRequest: return 18
        case .peerClosed: return 19
        case .policyHardFail: return 20
        case .ownershipConflict: return 21
        case .invalidProof: return 22
        case .replayDetected: return 23
        case .staleVersion: return 24
        case .unknownSession: return 25
        case .rateLimited: return 26
        case .storeUnavailable: return 27
        }
    }

    public init?(wireCode: UInt8) {
        guard let r = ReasonCode.byWireCode[Int(wireCode)] else { return nil }
        self = r
    }

    private static let byWireCode: [ReasonCode?] = {
        var table = [ReasonCode?](repeating: nil, count: 256)
        for r in ReasonCode.allCases { table[Int(r.wireCode)] = r }
        return table
    }()

    /// The reasons a REATTACH_REQUEST may carry: why the client moves (the contract's reasons for
    /// entering RECOVERING). Anything else in a REATTACH is malformed.
    public var isReattachReason: Bool {
        switch self {
        case .linkDown, .addressLost, .probeTimeout, .betterPath, .natRebind, .candidateAvailable: return true
        case .handshakeOK, .lossThreshold, .rttThreshold, .jitterThreshold, .stabilityRestored, .reattachOK,
             .recoveryWindowExceeded, .switchRateLimited, .sessionTTLExpired, .transportLossTTLExpired,
             .handshakeTimeout, .operatorRequest, .peerClosed, .policyHardFail, .ownershipConflict,
             .invalidProof, .replayDetected, .staleVersion, .unknownSession, .rateLimited, .storeUnavailable: return false
        }
    }
}
