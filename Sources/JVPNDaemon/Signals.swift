import Glibc
import JVPNSystem

/// SIGTERM/SIGINT (stop) and SIGHUP (reload) become a flag and a write to an eventfd the main loop
/// polls (both async-signal-safe).
nonisolated(unsafe) private var signalWakeFD: Int32 = -1
nonisolated(unsafe) private var signalSeen: Int32 = 0
nonisolated(unsafe) private var reloadSeen: Int32 = 0

enum Signals {
    static func install(wake: EventFD) {
        signalWakeFD = wake.fileDescriptor
        let handler: @convention(c) (Int32) -> Void = { _ in
            signalSeen = 1
            var one: UInt64 = 1
            _ = write(signalWakeFD, &one, 8)
        }
        let reload: @convention(c) (Int32) -> Void = { _ in
            reloadSeen = 1
            var one: UInt64 = 1
            _ = write(signalWakeFD, &one, 8)
        }
        signal(SIGTERM, handler)
        signal(SIGINT, handler)
        signal(SIGHUP, reload)
        signal(SIGPIPE, SIG_IGN)
    }

    static var received: Bool { signalSeen != 0 }

    /// A SIGHUP arrived since the last call.
    static func takeReloadRequest() -> Bool {
        guard reloadSeen != 0 else { return false }
        reloadSeen = 0
        return true
    }
}
