import CSodium

public enum SodiumError: Error, Equatable, Sendable {
    case initFailed(Int32)
}

/// The single entry point to libsodium's global initialisation.
public enum Sodium {
    // A Swift global/static `let` is initialised exactly once, thread-safely (swift_once), so this is
    // the whole "call sodium_init once" mechanism. It is a plain call, never inside assert/precondition,
    // because those are compiled out in release builds.
    private static let initResult: Int32 = sodium_init()

    /// Initialises libsodium (idempotent, thread-safe). The daemon calls this at startup so that a
    /// failure is fatal early; every other API in JVPNCore also triggers it.
    public static func initialize() throws(SodiumError) {
        let r = initResult
        if r < 0 { throw .initFailed(r) }
    }

    /// Non-throwing trigger for APIs whose signatures cannot throw (key/ID generation).
    /// sodium_init() only fails if its internal mutex fails; even then libsodium stays usable with its
    /// reference implementations and randombytes aborts rather than returning weak bytes, so these
    /// callers can never silently produce bad output.
    @inline(__always)
    static func ensureInitialized() {
        _ = initResult
    }

    /// Throwing variant for fallible APIs.
    @inline(__always)
    static var isReady: Bool { initResult >= 0 }
}
