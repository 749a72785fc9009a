import Foundation
import XCTest

/// The fenced `key = hex` blocks of docs/PROTOCOL.md that the vector tests recompute.
enum VectorBlock {
    static var protocolDocument: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("docs/PROTOCOL.md")
    }

    /// `name = hex` lines of the first ```TAG block; indented lines continue the previous value.
    static func parse(_ text: String, tag: String) -> [String: String] {
        var out: [String: String] = [:]
        var inBlock = false
        var lastKey: String?
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let line = String(rawLine)
            if line.hasPrefix("```") {
                if inBlock { break }
                inBlock = line.trimmingCharacters(in: .whitespaces) == "```" + tag
                continue
            }
            guard inBlock else { continue }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("#") { continue }
            if line.hasPrefix(" "), let k = lastKey {
                out[k, default: ""] += trimmed
            } else if let eq = trimmed.firstIndex(of: "=") {
                let k = trimmed[..<eq].trimmingCharacters(in: .whitespaces)
                out[k] = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
                lastKey = k
            }
        }
        return out
    }

    /// Fails for every computed value the document disagrees with; on a mismatch, or with
    /// JVPN_PRINT_VECTORS set, prints the computed block ready to paste (64 hex digits per line).
    static func assertMatches(_ doc: [String: String], _ computed: [(String, String)], label: String,
                              file: StaticString = #filePath, line: UInt = #line) {
        var mismatch = false
        for (k, v) in computed where doc[k] != v {
            XCTFail("\(k): document has \(doc[k] ?? "nothing"), code computes \(v)", file: file, line: line)
            mismatch = true
        }
        guard mismatch || ProcessInfo.processInfo.environment["JVPN_PRINT_VECTORS"] != nil else { return }
        var block = ""
        for (k, v) in computed {
            var chunks: [Substring] = []
            var rest = Substring(v)
            while rest.count > 64 { chunks.append(rest.prefix(64)); rest = rest.dropFirst(64) }
            chunks.append(rest)
            block += "\(k) = \(chunks[0])\n" + chunks.dropFirst().map { "    \($0)\n" }.joined()
        }
        print("---- computed \(label) ----\n" + block + "----")
    }
}
