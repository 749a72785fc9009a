import JVPNCore
import JVPNSystem

/// Turns session facts into contract events (JSON Lines) for the event log.
final class EventEmitter: @unchecked Sendable {
    let log: EventLog
    let side: String

    init(log: EventLog, side: String) {
        self.log = log
        self.side = side
    }

    func emit(_ event: SessionEvent) {
        log.append(event.jsonLine())
    }

    func base(_ kind: SessionEvent.Kind, session: SessionID?, peer: PublicKey) -> SessionEvent {
        SessionEvent(timestampMs: Clock.wallMilliseconds(), kind: kind, side: side,
                     session: session?.hex ?? "", peer: peer.base64)
    }
}
