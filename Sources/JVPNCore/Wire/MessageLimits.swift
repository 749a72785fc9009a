/// Protocol-wide message limits (WireGuard's values).
public enum MessageLimits {
    /// Initiate a rekey once a keypair has sent this many messages.
    public static let rekeyAfterMessages: UInt64 = 1 << 60
    /// 2^64 - 2^13 - 1: no counter at or above this is ever sent or accepted, leaving the top of the
    /// counter space (a full replay window and more) unused so the counter can never wrap.
    public static let rejectAfterMessages: UInt64 = UInt64.max - (1 << 13)
}
