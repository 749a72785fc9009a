/// A transition that happened: what the STATE_CHANGE event carries.
public struct StateChange: Equatable, Sendable {
    public var from: SessionState
    public var to: SessionState
    public var reason: ReasonCode
    public var stateVersion: UInt64
    public var atMs: UInt64
}

/// A rejected transition, logged as AUDIT_EVENT (check `transition`, result `fail`).
public struct AuditRecord: Equatable, Sendable {
    public var check: String
    public var result: String
    public var detail: String

    public init(check: String, result: String, detail: String) {
        self.check = check
        self.result = result
        self.detail = detail
    }
}

public enum TransitionResult: Equatable, Sendable {
    case applied(StateChange)
    case rejected(AuditRecord)
}

/// The contract's session state machine. Every applied transition increments `stateVersion`;
/// anything not in the table is rejected and leaves the state untouched. Pure: time comes in.
public struct SessionStateMachine: Equatable, Sendable {
    public private(set) var state: SessionState = .birth
    public private(set) var stateVersion: UInt64 = 0
    public private(set) var enteredAtMs: UInt64 = 0

    public init(nowMs: UInt64 = 0) { enteredAtMs = nowMs }

    /// The contract's table (from, to); reasons are free within an allowed pair.
    public static func isAllowed(from: SessionState, to: SessionState) -> Bool {
        switch (from, to) {
        case (.terminated, _): return false
        case (_, .terminated): return true
        case (.birth, .attached): return true
        case (.attached, .volatile): return true
        case (.volatile, .attached): return true
        case (.attached, .recovering), (.volatile, .recovering), (.degraded, .recovering): return true
        case (.recovering, .attached): return true
        case (.recovering, .degraded), (.volatile, .degraded): return true
        case (.degraded, .attached): return true
        case (.birth, _), (.attached, _), (.volatile, _), (.recovering, _), (.degraded, _): return false
        }
    }

    public mutating func transition(to: SessionState, reason: ReasonCode, now: UInt64) -> TransitionResult {
        guard SessionStateMachine.isAllowed(from: state, to: to) else {
            return .rejected(AuditRecord(check: "transition", result: "fail",
                                         detail: "\(state.rawValue) -> \(to.rawValue) (\(reason.rawValue)) is not allowed"))
        }
        let change = StateChange(from: state, to: to, reason: reason, stateVersion: stateVersion + 1, atMs: now)
        state = to
        stateVersion += 1
        enteredAtMs = now
        return .applied(change)
    }
}
