import XCTest
@testable import JVPNCore
final class VocabularyTests: XCTestCase {
    func testWireCodesRoundTrip() {
        for r in ReasonCode.allCases { XCTAssertEqual(ReasonCode(wireCode: r.wireCode), r) }
        XCTAssertNil(ReasonCode(wireCode: 0))
    }
}
