/// Standard padded base64, as etcd's JSON gateway writes keys and values (protobuf `bytes`).
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: some Collection<UInt8>) -> String {
        let b = Array(bytes)
        var out = [UInt8]()
        out.reserveCapacity((b.count + 2) / 3 * 4)
        var i = 0
        while i < b.count {
            let n = Int(b[i]) << 16 | (i + 1 < b.count ? Int(b[i + 1]) << 8 : 0) | (i + 2 < b.count ? Int(b[i + 2]) : 0)
            out.append(alphabet[n >> 18 & 63])
            out.append(alphabet[n >> 12 & 63])
            out.append(i + 1 < b.count ? alphabet[n >> 6 & 63] : UInt8(ascii: "="))
            out.append(i + 2 < b.count ? alphabet[n & 63] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func encode(_ s: String) -> String { encode(Array(s.utf8)) }

    /// nil for anything that is not canonical padded base64.
    static func decode(_ text: String) -> [UInt8]? {
        let u = Array(text.utf8)
        guard u.count % 4 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(u.count / 4 * 3)
        var i = 0
        while i < u.count {
            var n = 0, pad = 0
            for k in 0..<4 {
                let c = u[i + k]
                if c == UInt8(ascii: "=") {
                    guard i + 4 == u.count, k >= 2 else { return nil }
                    pad += 1
                    n <<= 6
                    continue
                }
                guard pad == 0, let v = value(c) else { return nil }
                n = n << 6 | v
            }
            out.append(UInt8(n >> 16 & 255))
            if pad < 2 { out.append(UInt8(n >> 8 & 255)) }
            if pad < 1 { out.append(UInt8(n & 255)) }
            i += 4
        }
        return out
    }

    static func decodeString(_ text: String) -> String? { decode(text).map { String(decoding: $0, as: UTF8.self) } }

    private static func value(_ c: UInt8) -> Int? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return Int(c - UInt8(ascii: "A"))
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return Int(c - UInt8(ascii: "a")) + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(c - UInt8(ascii: "0")) + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
