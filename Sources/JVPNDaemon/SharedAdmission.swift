import JVPNCore
import JVPNSystem

/// The handshake admission every receive thread goes through: one cookie secret and one sequence
/// of cookie-reply nonces (a nonce is never used twice under the reply key), one per-source limit
/// (a source's datagrams reach several workers' sockets when it sends from several ports), one
/// reply budget. A lock per handshake message or cookie reply, never per data packet.
final class SharedAdmission: @unchecked Sendable {
    private let lock = Lock()
    private var admission: HandshakeAdmission

    init(_ admission: HandshakeAdmission) {
        self.admission = admission
    }

    func admit(_ message: UnsafeRawBufferPointer, source: HandshakeSource, queueDepth: Int, nowMs: UInt64,
               sourceProven: Bool) -> AdmissionDecision {
        lock.withLock {
            admission.admit(message, source: source, queueDepth: queueDepth, nowMs: nowMs, sourceProven: sourceProven)
        }
    }

    /// The cookie reply to an initiation `admit` said `.sendCookie` for, written into `out`.
    func writeCookieReply(to message: UnsafeRawBufferPointer, source: HandshakeSource, into out: UnsafeMutableRawPointer) -> Int {
        lock.withLock { admission.writeCookieReply(to: message, source: source, into: out) }
    }
}
