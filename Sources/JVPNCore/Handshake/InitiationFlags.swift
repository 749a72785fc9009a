/// The initiation payload's flags word (PROTOCOL.md 3.1). Bit 0 marks a resume: the initiation
/// names a session that lives on (on another gateway of a cluster, or on this one) and asks to
/// continue it with fresh keys; bits 8-15 carry the client's reason for moving (a REATTACH reason).
/// Authenticated with the rest of the payload, so nobody can turn a handshake into a resume.
public struct InitiationFlags: Equatable, Sendable {
    public static let resumeBit: UInt32 = 1

    /// The reason of a resume; nil for a handshake that opens (or rekeys) a session.
    public let resume: ReasonCode?

    public init(resume: ReasonCode?) { self.resume = resume }

    /// Unknown bits are ignored; a resume with a reason that is not a REATTACH reason reads as
    /// PROBE_TIMEOUT (the reason a client resumes for when it does not say better).
    public init(word: UInt32) {
        guard word & InitiationFlags.resumeBit != 0 else {
            resume = nil
            return
        }
        let r = ReasonCode(wireCode: UInt8(truncatingIfNeeded: word >> 8))
        resume = r.flatMap { $0.isReattachReason ? $0 : nil } ?? .probeTimeout
    }

    public var word: UInt32 {
        guard let resume else { return 0 }
        return InitiationFlags.resumeBit | UInt32(resume.wireCode) << 8
    }
}
