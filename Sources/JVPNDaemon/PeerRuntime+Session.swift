import JVPNCore
import JVPNSystem

/// One configured peer and its current session. Mutated only under the host's lock.
final class PeerRuntime: @unchecked Sendable {
    let index: Int
    /// Replaced by a config reload (AllowedIPs, Name, ...); the key never changes.
    var config: PeerConfig
    /// Removed from the config by a reload: no routes to it; its ended session stays visible.
    var removed = false
    let publicKey: PublicKey
    let counters: PeerCounters
    var keyRing = KeyRing()
    var session: SessionID?
    var machine = SessionStateMachine()
    var sessionStartedMs: UInt64 = 0
    var lastAuthenticatedMs: UInt64 = 0
    // gateway: the single bound path of the session
    var bound: SocketAddress?
    var bindingVersion: UInt64 = 0
    var lastHintMs: UInt64 = 0
    // status
    var switches = 0
    var lastSwitch: JSONValue?

    /// `workers`: the data plane's packet workers (each counts the peer's traffic on its own line).
    init(index: Int, config: PeerConfig, publicKey: PublicKey, workers: Int) {
        self.index = index
        counters = PeerCounters(workers: workers)
        self.config = config
        self.publicKey = publicKey
    }

    var state: SessionState { machine.state }
}
