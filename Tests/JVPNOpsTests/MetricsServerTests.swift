import Foundation
import Glibc
import JVPNCore
import XCTest
@testable import JVPNOps

final class MetricsServerTests: XCTestCase {
    func makeServer(_ listen: String = "127.0.0.1:0", ioTimeoutMs: Int = 2000) throws -> (MetricsServer, JVPNMetrics) {
        let metrics = JVPNMetrics(interface: "jvpn0")
        metrics.setSessionState(session: "9f3c", peer: "peer=", state: .attached)
        metrics.recordSwitch(reason: .linkDown, recoveryMs: 41)
        let server = try MetricsServer(listen: listen, metrics: metrics, ioTimeoutMs: ioTimeoutMs)
        try server.start()
        return (server, metrics)
    }

    func split(_ response: String) -> (status: String, headers: String, body: String) {
        guard let r = response.range(of: "\r\n\r\n") else { return (response, "", "") }
        let head = String(response[..<r.lowerBound])
        let status = head.split(separator: "\r\n").first.map(String.init) ?? ""
        return (status, head, String(response[r.upperBound...]))
    }

    func testGetMetricsOverLoopbackTCP() throws {
        let (server, metrics) = try makeServer()
        defer { server.stop() }
        XCTAssertNotEqual(server.port, 0)
        let r = split(try TestSockets.http(port: server.port,
                                           request: "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: test\r\n\r\n"))
        XCTAssertEqual(r.status, "HTTP/1.1 200 OK")
        XCTAssertTrue(r.headers.contains("Content-Type: text/plain; version=0.0.4"), r.headers)
        XCTAssertTrue(r.headers.contains("Content-Length: \(r.body.utf8.count)"), r.headers)
        let s = parseExposition(r.body)
        XCTAssertEqual(s[#"jvpn_session_state{interface="jvpn0",session="9f3c",peer="peer=",state="ATTACHED"}"#], 1, r.body)
        XCTAssertEqual(s[#"jvpn_switches_total{interface="jvpn0",reason="LINK_DOWN"}"#], 1)

        // Later changes show up in the next scrape, and a query string is ignored.
        metrics.recordReject(reason: .rateLimited)
        let r2 = split(try TestSockets.http(port: server.port, request: "GET /metrics?x=1 HTTP/1.0\r\n\r\n"))
        XCTAssertEqual(parseExposition(r2.body)[#"jvpn_rejects_total{interface="jvpn0",reason="RATE_LIMITED"}"#], 1)
        XCTAssertEqual(server.requestsServed, 2)

        let head = split(try TestSockets.http(port: server.port, request: "HEAD /metrics HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(head.status, "HTTP/1.1 200 OK")
        XCTAssertEqual(head.body, "")
    }

    func testIPv6Listen() throws {
        let server: MetricsServer
        do { (server, _) = try makeServer("[::1]:0") } catch { throw XCTSkip("no IPv6 loopback: \(error)") }
        defer { server.stop() }
        let r = split(try TestSockets.http(port: server.port, request: "GET /metrics HTTP/1.1\r\n\r\n", ipv6: true))
        XCTAssertEqual(r.status, "HTTP/1.1 200 OK")
    }

    func testOtherPathsMethodsAndGarbage() throws {
        let (server, _) = try makeServer()
        defer { server.stop() }
        XCTAssertEqual(split(try TestSockets.http(port: server.port, request: "GET / HTTP/1.1\r\n\r\n")).status,
                       "HTTP/1.1 404 Not Found")
        XCTAssertEqual(split(try TestSockets.http(port: server.port, request: "GET /metricsx HTTP/1.1\r\n\r\n")).status,
                       "HTTP/1.1 404 Not Found")
        let post = split(try TestSockets.http(port: server.port, request: "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"))
        XCTAssertEqual(post.status, "HTTP/1.1 405 Method Not Allowed")
        XCTAssertTrue(post.headers.contains("Allow: GET, HEAD"))
        XCTAssertEqual(split(try TestSockets.http(port: server.port, request: "hello\r\n\r\n")).status,
                       "HTTP/1.1 400 Bad Request")
        XCTAssertEqual(split(try TestSockets.http(port: server.port, request: "\u{ff}\u{fe}\r\n\r\n")).status,
                       "HTTP/1.1 400 Bad Request")
        let huge = "GET /metrics HTTP/1.1\r\nX: " + String(repeating: "a", count: 20000) + "\r\n\r\n"
        XCTAssertEqual(split(try TestSockets.http(port: server.port, request: huge)).status,
                       "HTTP/1.1 431 Request Header Fields Too Large")
        // The server is still fine afterwards.
        XCTAssertEqual(split(try TestSockets.http(port: server.port, request: "GET /metrics HTTP/1.1\r\n\r\n")).status,
                       "HTTP/1.1 200 OK")
    }

    /// A client that connects and says nothing is cut off after the I/O timeout; the next scrape
    /// is answered.
    func testSilentClientTimesOut() throws {
        let (server, _) = try makeServer(ioTimeoutMs: 300)
        defer { server.stop() }
        let silent = try TestSockets.connectTCP(port: server.port)
        defer { close(silent) }
        let start = Date()
        let r = split(try TestSockets.http(port: server.port, request: "GET /metrics HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(r.status, "HTTP/1.1 200 OK")
        XCTAssertLessThan(Date().timeIntervalSince(start), 3)
        var b: UInt8 = 0
        XCTAssertEqual(recv(silent, &b, 1, 0), 0, "the silent client's connection was closed")
    }

    /// Clients that send half a request each hold one slot; a full scrape meanwhile is answered
    /// at once (one connection at a time would make it wait for every one of them to time out).
    func testHalfRequestsDoNotDelayAScrape() throws {
        let (server, _) = try makeServer(ioTimeoutMs: 4000)
        defer { server.stop() }
        var halves: [Int32] = []
        defer { halves.forEach { close($0) } }
        for _ in 0..<10 {
            let fd = try TestSockets.connectTCP(port: server.port)
            halves.append(fd)
            XCTAssertEqual(send(fd, "GET /metrics HTTP/1.1\r\n", 24, 0), 24)
        }
        // TestSockets' 5 s receive timeout is far shorter than 10 clients x 4 s.
        let r = split(try TestSockets.http(port: server.port, request: "GET /metrics HTTP/1.1\r\n\r\n"))
        XCTAssertEqual(r.status, "HTTP/1.1 200 OK")
        XCTAssertEqual(server.requestsServed, 1)
    }

    func testStopClosesAndPortIsReusable() throws {
        let (server, metrics) = try makeServer()
        let port = server.port
        server.stop()
        server.stop()
        XCTAssertThrowsError(try TestSockets.http(port: port, request: "GET /metrics HTTP/1.1\r\n\r\n"))
        let again = try MetricsServer(listen: "127.0.0.1:\(port)", metrics: metrics)
        try again.start()
        defer { again.stop() }
        XCTAssertEqual(split(try TestSockets.http(port: port, request: "GET /metrics HTTP/1.1\r\n\r\n")).status,
                       "HTTP/1.1 200 OK")
    }

    func testPortInUseAndBadAddressesAreErrors() throws {
        let (server, metrics) = try makeServer()
        defer { server.stop() }
        XCTAssertThrowsError(try MetricsServer(listen: "127.0.0.1:\(server.port)", metrics: metrics)) { error in
            guard case OpsError.socket(let op, let e) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(op.hasPrefix("bind"))
            XCTAssertEqual(e, EADDRINUSE)
        }
        for bad in ["", "127.0.0.1", "localhost:9586", "::1:9586", "[::1]9586", "127.0.0.1:99999", "1.2.3:80"] {
            XCTAssertThrowsError(try MetricsServer(listen: bad, metrics: metrics), bad) { error in
                guard case OpsError.badListenAddress(let a, _) = error else { return XCTFail("\(bad): \(error)") }
                XCTAssertEqual(a, bad)
                XCTAssertTrue("\(error)".hasPrefix("MetricsListen = \(bad): "))
            }
        }
    }
}
