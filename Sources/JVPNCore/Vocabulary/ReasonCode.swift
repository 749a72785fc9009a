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

    /// Stable numeric code used on the wire (reject/close messages).
    public var wireCode: UInt8 {
        UInt8(ReasonCode.allCases.firstIndex(of: self)! + 1)
    }

    public init?(wireCode: UInt8) {
        let i = Int(wireCode) - 1
        guard i >= 0, i < ReasonCode.allCases.count else { return nil }
        self = ReasonCode.allCases[i]
    }
}
