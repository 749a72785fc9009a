import Foundation
import XCTest
@testable import JVPNCore

final class JSONValueTests: XCTestCase {
    func testWritesSortedCompactText() {
        let v: JSONValue = ["b": [1, 2.5, "x\"y\n", nil, true], "a": ["z": 0, "k": -3], "c": 0.125]
        XCTAssertEqual(v.text, #"{"a":{"k":-3,"z":0},"b":[1,2.5,"x\"y\n",null,true],"c":0.125}"#)
        XCTAssertEqual(JSONValue.double(12).text, "12")
        XCTAssertEqual(JSONValue.double(.nan).text, "null")
        XCTAssertEqual(JSONValue(UInt64.max).text, String(Int64.max))   // clamped, never a trap
    }

    func testParsesWhatFoundationWrites() throws {
        let obj: [String: Any] = ["s": "ä\u{1F600}\t\"\\/", "i": 42, "neg": -7, "d": 0.293, "arr": [1, [2, [3]]],
                                  "null": NSNull(), "t": true, "f": false, "e": 1.5e-7, "o": [String: Any]()]
        let text = String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self)
        let v = try JSONValue.parse(text)
        XCTAssertEqual(v["s"]?.stringValue, "ä\u{1F600}\t\"\\/")
        XCTAssertEqual(v["i"]?.intValue, 42)
        XCTAssertEqual(v["neg"]?.intValue, -7)
        XCTAssertEqual(v["d"]?.doubleValue, 0.293)
        XCTAssertEqual(v["e"]?.doubleValue, 1.5e-7)
        XCTAssertEqual(v["arr"], [1, [2, [3]]])
        XCTAssertTrue(v["null"]!.isNull)
        XCTAssertEqual(v["t"], true)
        XCTAssertEqual(v["f"], false)
        XCTAssertEqual(v["o"], .object([:]))
        XCTAssertNil(v["missing"])
    }

    func testFoundationReadsWhatWeWrite() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            let v = randomValue(depth: 0, &rng)
            let text = JSONValue.object(["v": v]).text
            let back = try JSONSerialization.jsonObject(with: Data(text.utf8))
            XCTAssertNotNil(back as? [String: Any], text)
            XCTAssertEqual(try JSONValue.parse(text), .object(["v": v]), text)
        }
    }

    func testEscapesAndSurrogatePairs() throws {
        XCTAssertEqual(try JSONValue.parse(#""\ud83d\ude00 \u00e4 \n""#), "\u{1F600} ä \n")
        XCTAssertEqual(try JSONValue.parse(#""\ud83d x""#), "\u{FFFD} x")   // lone surrogate: replaced, not a crash
    }

    func testRejectsMalformedInputWithoutCrashing() {
        let bad = ["", "{", "[1,", #"{"a"}"#, #"{"a":}"#, "[1 2]", "tru", "nul", "01x", "-", "1.", "1e", #""abc"#,
                   #""\x""#, #""\u12""#, "{} {}", "[\"a\u{01}\"]", String(repeating: "[", count: 10_000),
                   String(repeating: "{\"a\":", count: 500) + "1" + String(repeating: "}", count: 500)]
        for text in bad {
            XCTAssertThrowsError(try JSONValue.parse(text), "accepted: \(text.prefix(40))")
        }
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("{}[]\",:0123456789.eE+-truefalsnl \\u".utf8)
        for _ in 0..<5000 {
            let n = Int.random(in: 0..<40, using: &rng)
            let text = String(decoding: (0..<n).map { _ in alphabet.randomElement(using: &rng)! }, as: UTF8.self)
            _ = try? JSONValue.parse(text)   // must return or throw, never trap
        }
    }

    private func randomValue(depth: Int, _ rng: inout SystemRandomNumberGenerator) -> JSONValue {
        switch Int.random(in: 0..<(depth > 3 ? 5 : 7), using: &rng) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &rng))
        case 2: return .int(Int64.random(in: -1_000_000_000_000...1_000_000_000_000, using: &rng))
        // Never integral (an integral double is written as an integer and reads back as .int).
        case 3: return .double(Double(Int.random(in: -1_000_000...1_000_000, using: &rng)) + [0.125, 0.5, 0.875].randomElement(using: &rng)!)
        case 4:
            let scalars = (0..<Int.random(in: 0..<12, using: &rng)).map { _ in
                Unicode.Scalar(UInt32.random(in: 1...0x2FF, using: &rng)) ?? "a"
            }
            return .string(String(String.UnicodeScalarView(scalars)))
        case 5: return .array((0..<Int.random(in: 0..<4, using: &rng)).map { _ in randomValue(depth: depth + 1, &rng) })
        default:
            var o: [String: JSONValue] = [:]
            for i in 0..<Int.random(in: 0..<4, using: &rng) { o["k\(i)"] = randomValue(depth: depth + 1, &rng) }
            return .object(o)
        }
    }
}
