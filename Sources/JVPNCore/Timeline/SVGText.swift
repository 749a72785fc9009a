/// Text and numbers as SVG/XML wants them (no Foundation).
enum SVGText {
    /// Escapes the five XML special characters (for text and attribute values alike).
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default:
                // XML 1.0 forbids most control characters even escaped.
                if c.value < 0x20 && c != "\n" && c != "\t" { out += " " } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }

    /// A coordinate with one decimal ("12", "12.5", "-3.2").
    static func number(_ d: Double) -> String {
        guard d.isFinite else { return "0" }
        let tenths = Int64((d * 10).rounded())
        let sign = tenths < 0 ? "-" : ""
        let a = abs(tenths)
        return a % 10 == 0 ? "\(sign)\(a / 10)" : "\(sign)\(a / 10).\(a % 10)"
    }

    /// A measurement for people: "0.42", "2.5", "5", "41", "1234".
    static func measure(_ d: Double) -> String {
        guard d.isFinite else { return "?" }
        if d >= 10 { return String(Int64(d.rounded())) }
        let hundredths = Int64((d * 100).rounded())
        let frac = hundredths % 100
        if frac == 0 { return String(hundredths / 100) }
        return frac % 10 == 0 ? "\(hundredths / 100).\(frac / 10)" : "\(hundredths / 100).\(frac < 10 ? "0" : "")\(frac)"
    }

    /// "45 s", "12 min 5 s", "1 h 02 min".
    static func duration(_ ms: UInt64) -> String {
        let s = ms / 1000
        if s < 60 { return ms < 10_000 && ms % 1000 != 0 ? "\(measure(Double(ms) / 1000)) s" : "\(s) s" }
        if s < 3600 { return s % 60 == 0 ? "\(s / 60) min" : "\(s / 60) min \(s % 60) s" }
        let m = s / 60 % 60
        return "\(s / 3600) h \(m < 10 ? "0" : "")\(m) min"
    }

    /// HH:MM:SS (UTC) of Unix milliseconds.
    static func clock(_ ms: UInt64) -> String {
        let t = SessionEvent.rfc3339(ms)
        let u = Array(t.utf8)
        return String(decoding: u[11..<19], as: UTF8.self)
    }
}
