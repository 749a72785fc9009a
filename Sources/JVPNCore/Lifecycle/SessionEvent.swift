/// One line of the event log (JSON Lines), with the contract's field names.
public struct SessionEvent: Equatable, Sendable {
    public enum Kind: String, Sendable {
        case stateChange = "STATE_CHANGE"
        case transportSwitch = "TRANSPORT_SWITCH"
        case security = "SECURITY_EVENT"
        case audit = "AUDIT_EVENT"
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
        }
        return out + "}"
    }

    /// Parses one line written by `jsonLine` (or by an older/newer jvpn with extra fields).
    public init?(jsonLine: String) {
        guard let obj = JSONText.parseFlatObject(jsonLine),
              case .string(let ts)? = obj["ts"], let ms = SessionEvent.parseRFC3339(ts),
              case .string(let ev)? = obj["event"], let kind = Kind(rawValue: ev) else { return nil }
        func str(_ k: String) -> String? { if case .string(let s)? = obj[k] { return s }; return nil }
        func num(_ k: String) -> UInt64? { if case .number(let n)? = obj[k] { return n }; return nil }
        self.init(timestampMs: ms, kind: kind, side: str("side") ?? "", session: str("session") ?? "", peer: str("peer") ?? "")
        from = str("from"); to = str("to"); reason = str("reason"); stateVersion = num("state_version")
        fromPath = str("from_path"); toPath = str("to_path"); recoveryMs = num("recovery_ms")
        remote = str("remote"); check = str("check"); result = str("result"); detail = str("detail")
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

/// Minimal JSON text helpers for flat event objects (strings and unsigned numbers).
public enum JSONText {
    public enum Value: Equatable { case string(String), number(UInt64), other }

    public static func string(_ s: String) -> String {
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if u.value < 0x20 {
                    let h = String(u.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    /// Parses `{"k":"v","n":1,...}` with string and non-negative integer values; nested values
    /// are skipped as `.other`. Nil on malformed input.
    public static func parseFlatObject(_ text: String) -> [String: Value]? {
        var it = Array(text.unicodeScalars)[...]
        func skipWS() { while let f = it.first, f == " " || f == "\t" || f == "\n" || f == "\r" { it.removeFirst() } }
        func parseString() -> String? {
            guard it.first == "\"" else { return nil }
            it.removeFirst()
            var s = String.UnicodeScalarView()
            while let ch = it.popFirst() {
                if ch == "\"" { return String(s) }
                if ch == "\\" {
                    guard let e = it.popFirst() else { return nil }
                    switch e {
                    case "n": s.append("\n")
                    case "r": s.append("\r")
                    case "t": s.append("\t")
                    case "b": s.append("\u{08}")
                    case "f": s.append("\u{0C}")
                    case "u":
                        guard it.count >= 4, let v = UInt32(String(String.UnicodeScalarView(it.prefix(4))), radix: 16) else { return nil }
                        it.removeFirst(4)
                        s.append(Unicode.Scalar(v) ?? "\u{FFFD}")
                    default: s.append(e)
                    }
                } else {
                    s.append(ch)
                }
            }
            return nil
        }
        func skipValue() -> Bool {
            var depth = 0
            while let ch = it.first {
                if ch == "\"" { guard parseString() != nil else { return false }; if depth == 0 { return true }; continue }
                if ch == "{" || ch == "[" { depth += 1 } else if ch == "}" || ch == "]" {
                    if depth == 0 { return true }
                    depth -= 1
                    if depth == 0 { it.removeFirst(); return true }
                } else if ch == "," && depth == 0 { return true }
                it.removeFirst()
            }
            return depth == 0
        }
        skipWS()
        guard it.popFirst() == "{" else { return nil }
        var obj: [String: Value] = [:]
        skipWS()
        if it.first == "}" { return obj }
        while true {
            skipWS()
            guard let key = parseString() else { return nil }
            skipWS()
            guard it.popFirst() == ":" else { return nil }
            skipWS()
            if it.first == "\"" {
                guard let v = parseString() else { return nil }
                obj[key] = .string(v)
            } else if let f = it.first, f.properties.numericType != nil {
                var digits = ""
                while let d = it.first, d.properties.numericType != nil { digits.unicodeScalars.append(d); it.removeFirst() }
                if let f2 = it.first, f2 == "." || f2 == "e" || f2 == "E" || f2 == "-" {
                    guard skipValue() else { return nil }
                    obj[key] = .other
                } else {
                    obj[key] = UInt64(digits).map(Value.number) ?? .other
                }
            } else {
                guard skipValue() else { return nil }
                obj[key] = .other
            }
            skipWS()
            guard let sep = it.popFirst() else { return nil }
            if sep == "}" { return obj }
            guard sep == "," else { return nil }
        }
    }
}
