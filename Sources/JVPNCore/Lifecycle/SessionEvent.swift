/// One line of the event log (JSON Lines), with the contract's field names.
public struct SessionEvent: Equatable, Sendable {
    public enum Kind: String, Sendable {
        case stateChange = "STATE_CHANGE"
        case transportSwitch = "TRANSPORT_SWITCH"
        case security = "SECURITY_EVENT"
        case audit = "AUDIT_EVENT"
        /// A clustered gateway took a session or let it go.
        case ownershipChange = "OWNERSHIP_CHANGE"
    }

    public var timestampMs: UInt64
    public var kind: Kind
    public var side: String
    public var session: String
    public var peer: String
    // STATE_CHANGE
    public var from: String?
    public var to: String?
    public var reason: String?
    public var stateVersion: UInt64?
    // TRANSPORT_SWITCH
    public var fromPath: String?
    public var toPath: String?
    public var recoveryMs: UInt64?
    // SECURITY_EVENT
    public var remote: String?
    // AUDIT_EVENT
    public var check: String?
    public var result: String?
    public var detail: String?
    // OWNERSHIP_CHANGE (and `reason`)
    public var fromNode: String?
    public var toNode: String?
    public var bindingVersion: UInt64?

    public init(timestampMs: UInt64, kind: Kind, side: String, session: String, peer: String) {
        self.timestampMs = timestampMs
        self.kind = kind
        self.side = side
        self.session = session
        self.peer = peer
    }

    /// Fields in a stable order: common ones, then the kind's own.
    public func jsonLine() -> String {
        var out = "{\"ts\":\(JSONText.string(SessionEvent.rfc3339(timestampMs))),\"event\":\(JSONText.string(kind.rawValue))"
        out += ",\"side\":\(JSONText.string(side)),\"session\":\(JSONText.string(session)),\"peer\":\(JSONText.string(peer))"
        func add(_ k: String, _ v: String?) { if let v { out += ",\"\(k)\":\(JSONText.string(v))" } }
        func add(_ k: String, _ v: UInt64?) { if let v { out += ",\"\(k)\":\(v)" } }
        switch kind {
        case .stateChange:
            add("from", from); add("to", to); add("reason", reason); add("state_version", stateVersion)
        case .transportSwitch:
            add("from_path", fromPath); add("to_path", toPath); add("reason", reason); add("recovery_ms", recoveryMs)
        case .security:
            add("reason", reason); add("remote", remote)
        case .audit:
            add("check", check); add("result", result); add("detail", detail)
        case .ownershipChange:
            add("from_node", fromNode); add("to_node", toNode); add("binding_version", bindingVersion); add("reason", reason)
        }
        return out + "}"
    }

    /// Parses one line written by `jsonLine` (or by an older/newer jvpn with extra fields).
    public init?(jsonLine: String) {
        guard let obj = try? JSONValue.parse(jsonLine),
              let ts = obj["ts"]?.stringValue, let ms = SessionEvent.parseRFC3339(ts),
              let ev = obj["event"]?.stringValue, let kind = Kind(rawValue: ev) else { return nil }
        func str(_ k: String) -> String? { obj[k]?.stringValue }
        func num(_ k: String) -> UInt64? { obj[k]?.intValue.flatMap { $0 >= 0 ? UInt64($0) : nil } }
        self.init(timestampMs: ms, kind: kind, side: str("side") ?? "", session: str("session") ?? "", peer: str("peer") ?? "")
        from = str("from"); to = str("to"); reason = str("reason"); stateVersion = num("state_version")
        fromPath = str("from_path"); toPath = str("to_path"); recoveryMs = num("recovery_ms")
        remote = str("remote"); check = str("check"); result = str("result"); detail = str("detail")
        fromNode = str("from_node"); toNode = str("to_node"); bindingVersion = num("binding_version")
    }

    /// One readable timeline line.
    public func humanLine() -> String {
        let head = "\(SessionEvent.rfc3339(timestampMs))  \(side.padding(6))  \(session.isEmpty ? "-" : session)  "
        switch kind {
        case .stateChange:
            return head + "STATE_CHANGE      \(from ?? "?") -> \(to ?? "?")  \(reason ?? "")  v\(stateVersion ?? 0)"
        case .transportSwitch:
            return head + "TRANSPORT_SWITCH  \(fromPath ?? "?") => \(toPath ?? "?")  \(reason ?? "")  recovery \(recoveryMs ?? 0) ms"
        case .security:
            return head + "SECURITY_EVENT    \(reason ?? "")  from \(remote ?? "?")"
        case .audit:
            return head + "AUDIT_EVENT       \(check ?? "") \(result ?? "")  \(detail ?? "")"
        case .ownershipChange:
            let to = toNode.map { $0.isEmpty ? "(released)" : $0 } ?? "?"
            return head + "OWNERSHIP_CHANGE  \(fromNode ?? "?") => \(to)  \(reason ?? "")  binding_version \(bindingVersion ?? 0)"
        }
    }

    // MARK: time

    /// RFC 3339 UTC with milliseconds, from Unix milliseconds (civil-from-days, no Foundation).
    public static func rfc3339(_ ms: UInt64) -> String {
        let secs = Int64(ms / 1000)
        let days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400
        let rem = secs - days * 86400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func p(_ v: Int64, _ w: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, w - s.count)) + s }
        return "\(p(y, 4))-\(p(m, 2))-\(p(d, 2))T\(p(rem / 3600, 2)):\(p(rem % 3600 / 60, 2)):\(p(rem % 60, 2)).\(p(Int64(ms % 1000), 3))Z"
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.mmm]Z` back to Unix milliseconds.
    public static func parseRFC3339(_ s: String) -> UInt64? {
        let c = Array(s.utf8)
        guard c.count >= 20, c[4] == 45, c[7] == 45, c[10] == 84 || c[10] == 116, c[13] == 58, c[16] == 58 else { return nil }
        func n(_ r: Range<Int>) -> Int64? {
            var v: Int64 = 0
            for i in r { guard c[i] >= 48 && c[i] <= 57 else { return nil }; v = v * 10 + Int64(c[i] - 48) }
            return v
        }
        guard let y = n(0..<4), let mo = n(5..<7), let d = n(8..<10), let h = n(11..<13), let mi = n(14..<16), let se = n(17..<19),
              (1...12).contains(mo), (1...31).contains(d), h < 24, mi < 60, se < 61 else { return nil }
        var ms: Int64 = 0
        var i = 19
        if i < c.count && c[i] == 46 {
            i += 1
            var digits = 0
            while i < c.count, c[i] >= 48 && c[i] <= 57 {
                if digits < 3 { ms = ms * 10 + Int64(c[i] - 48) }
                digits += 1
                i += 1
            }
            for _ in digits..<3 where digits < 3 { ms *= 10 }
        }
        guard i == c.count - 1, c[i] == 90 || c[i] == 122 else { return nil }
        let yy = mo <= 2 ? y - 1 : y
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        let total = ((days * 86400 + h * 3600 + mi * 60 + se) * 1000) + ms
        return total >= 0 ? UInt64(total) : nil
    }
}

private extension String {
    func padding(_ n: Int) -> String { count >= n ? self : self + String(repeating: " ", count: n - count) }
}
