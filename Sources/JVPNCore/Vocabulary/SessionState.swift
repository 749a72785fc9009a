/// The six session states of the contract. TERMINATED is final for a session id.
public enum SessionState: String, Sendable, CaseIterable, Codable {
    case birth = "BIRTH"
    case attached = "ATTACHED"
    case volatile = "VOLATILE"
    case recovering = "RECOVERING"
    case degraded = "DEGRADED"
    case terminated = "TERMINATED"
}
