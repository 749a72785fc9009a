import Glibc
import JVPNSystem

/// SIGTERM/SIGINT become a write to an eventfd the main loop polls (write is async-signal-safe).
nonisolated(unsafe) private var signalWakeFD: Int32 = -1
nonisolated(unsafe) private var signalSeen: Int32 = 0

enum Signals {
    static func install(wake: EventFD) {
        signalWakeFD = wake.fileDescriptor
        let handler: @convention(c) (Int32) -> Void = { _ in
            signalSeen = 1
            var one: UInt64 = 1
            _ = write(signalWakeFD, &one, 8)
        }
        signal(SIGTERM, handler)
        signal(SIGINT, handler)
        signal(SIGHUP, SIG_IGN)
        signal(SIGPIPE, SIG_IGN)
    }

    static var received: Bool { signalSeen != 0 }
}
