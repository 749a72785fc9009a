import JVPNCore
import JVPNOps
import JVPNSystem
import Logging

/// Turns session facts into contract events (JSON Lines) for the event log.
final class EventEmitter: @unchecked Sendable {
    let log: EventLog
    let side: String

    init(log: EventLog, side: String) {
        self.log = log
        self.side = side
    }

    var metrics: JVPNMetrics?
    var logger = Logger(label: "jvpn.events")

    /// Event log first (never blocks), then metrics and the operator log.
    func emit(_ event: SessionEvent) {
        log.append(event.jsonLine())
        switch event.kind {
        case .transportSwitch:
            if let r = event.reason.flatMap(ReasonCode.init(rawValue:)) {
                metrics?.recordSwitch(reason: r, recoveryMs: Double(event.recoveryMs ?? 0))
            }
            logger.info("transport switch \(event.fromPath ?? "") -> \(event.toPath ?? "") (\(event.reason ?? ""), \(event.recoveryMs ?? 0) ms) session \(event.session)")
        case .security:
            if let r = event.reason.flatMap(ReasonCode.init(rawValue:)) { metrics?.recordReject(reason: r) }
            logger.warning("security: \(event.reason ?? "") from \(event.remote ?? "?") session \(event.session)")
        case .stateChange:
            logger.info("session \(event.session): \(event.from ?? "") -> \(event.to ?? "") (\(event.reason ?? ""))")
        case .audit:
            logger.notice("audit \(event.check ?? "") \(event.result ?? ""): \(event.detail ?? "")")
        case .ownershipChange:
            logger.notice("session \(event.session): owner \(event.fromNode ?? "") -> \(event.toNode ?? "") (\(event.reason ?? ""), binding_version \(event.bindingVersion ?? 0))")
        }
    }

    func base(_ kind: SessionEvent.Kind, session: SessionID?, peer: PublicKey) -> SessionEvent {
        SessionEvent(timestampMs: Clock.wallMilliseconds(), kind: kind, side: side,
                     session: session?.hex ?? "", peer: peer.base64)
    }
}
