import XCTest
@testable import JVPNCore
final class VocabularyTests: XCTestCase {
    func testWireCodesRoundTrip() {
        for r in ReasonCode.allCases { XCTAssertEqual(ReasonCode(wireCode: r.wireCode), r) }
        XCTAssertNil(ReasonCode(wireCode: 0))
        XCTAssertEqual(ReasonCode(wireCode: 27), .storeUnavailable)
        XCTAssertNil(ReasonCode(wireCode: 28))
        XCTAssertEqual(Set(ReasonCode.allCases.map(\.wireCode)).count, ReasonCode.allCases.count, "codes are unique")
    }

    /// The numbers are part of the wire format (docs/PROTOCOL.md): pin a few so a reorder cannot move them.
    func testWireCodesArePinned() {
        XCTAssertEqual(ReasonCode.handshakeOK.wireCode, 1)
        XCTAssertEqual(ReasonCode.linkDown.wireCode, 6)
        XCTAssertEqual(ReasonCode.peerClosed.wireCode, 19)
        XCTAssertEqual(ReasonCode.staleVersion.wireCode, 24)
        XCTAssertEqual(ReasonCode.rateLimited.wireCode, 26)
    }
}
