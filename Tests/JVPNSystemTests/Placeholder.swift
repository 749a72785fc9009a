import XCTest
final class PlaceholderSystemTests: XCTestCase { func testNothing() {} }
