import JVPNSystem
import Logging

/// The daemon's operator log: swift-log to stderr (journald under systemd, /run/jvpn/NAME.log in
/// the background). Level from JVPN_LOG_LEVEL (trace, debug, info, notice, warning, error,
/// critical; default info). Keys never go to it: only public keys are ever formatted.
enum Log {
    static func bootstrap() {
        let level = FileIO.environment("JVPN_LOG_LEVEL").flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
    }
}
