/// When a client opens, keeps and re-opens the TCP connection of one TCP path: connect while the
/// path is wanted (its uplink usable, TCP allowed), give a connect up after `connectTimeoutMs`, and
/// after a failure wait `1 s << failures` (at most `maxBackoffMs`) before the next try; a connection
/// that lasted `stableAfterMs` resets the backoff. Pure: facts and a clock in, actions out.
public struct StreamConnector: Equatable, Sendable {
    public static let connectTimeoutMs: UInt64 = 5000
    public static let firstBackoffMs: UInt64 = 1000
    public static let maxBackoffMs: UInt64 = 16_000
    public static let stableAfterMs: UInt64 = 10_000

    public enum State: Equatable, Sendable {
        case idle
        case connecting(sinceMs: UInt64)
        case connected(sinceMs: UInt64)
        case waiting(untilMs: UInt64)
    }

    public enum Action: Equatable, Sendable {
        /// Open a new connection (non-blocking connect).
        case connect
        /// Close the current connection or connect attempt.
        case close
    }

    public private(set) var state = State.idle
    public private(set) var failures = 0

    public init() {}

    public var isConnected: Bool {
        if case .connected = state { return true }
        return false
    }

    /// What to do now, given whether the path wants a connection.
    public mutating func tick(wanted: Bool, nowMs: UInt64) -> Action? {
        switch state {
        case .idle:
            guard wanted else { return nil }
            state = .connecting(sinceMs: nowMs)
            return .connect
        case .connecting(let since):
            if !wanted {
                state = .idle
                return .close
            }
            guard elapsedMs(nowMs, since: since) >= StreamConnector.connectTimeoutMs else { return nil }
            backOff(nowMs)
            return .close
        case .connected:
            guard !wanted else { return nil }
            state = .idle
            return .close
        case .waiting(let until):
            guard wanted else {
                state = .idle
                return nil
            }
            guard nowMs >= until else { return nil }
            state = .connecting(sinceMs: nowMs)
            return .connect
        }
    }

    /// The connect attempt completed.
    public mutating func connected(nowMs: UInt64) {
        guard case .connecting = state else { return }
        state = .connected(sinceMs: nowMs)
    }

    /// The attempt or the connection failed (refused, reset, closed by the gateway, a framing
    /// violation): wait, then try again.
    public mutating func failed(nowMs: UInt64) {
        switch state {
        case .connected(let since):
            if elapsedMs(nowMs, since: since) >= StreamConnector.stableAfterMs { failures = 0 }
            backOff(nowMs)
        case .connecting:
            backOff(nowMs)
        case .idle, .waiting:
            break
        }
    }

    private mutating func backOff(_ nowMs: UInt64) {
        let delay = min(StreamConnector.firstBackoffMs << UInt64(min(failures, 16)), StreamConnector.maxBackoffMs)
        failures += 1
        state = .waiting(untilMs: nowMs + delay)
    }
}
