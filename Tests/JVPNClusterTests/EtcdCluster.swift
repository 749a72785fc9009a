import Foundation
import JVPNCluster
import JVPNCore

/// A real three-member etcd cluster on loopback for one test (deploy/cluster/etcd.sh): started in
/// setUp, stopped in tearDown, ports chosen per process so parallel runs do not collide.
final class EtcdCluster {
    let dir: String
    let base: Int
    let endpoints: [Endpoint]
    private static let script: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("deploy/cluster/etcd.sh").path
    }()

    init() throws {
        let b = 21000 + Int(getpid() % 300) * 30
        base = b
        dir = "/dev/shm/jvpn-etcd-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        endpoints = (0..<3).map { Endpoint(address: IPAddress("127.0.0.1")!, port: UInt16(b + $0)) }
        do {
            try EtcdCluster.sh("start", dir, String(base))
        } catch {
            // The members that did start would hold the ports of every later test of this process.
            _ = try? EtcdCluster.sh("stop", dir)
            throw error
        }
    }

    func kill(_ member: Int) throws { try EtcdCluster.sh("kill", dir, "e\(member)") }
    func restart(_ member: Int) throws { try EtcdCluster.sh("restart", dir, "e\(member)") }
    /// SIGSTOP: the member's port still accepts connections, nothing answers on them.
    func freeze(_ member: Int) throws { try EtcdCluster.sh("freeze", dir, "e\(member)") }

    /// The member that leads now: a test that means to lose a follower must not pick it, since
    /// losing the leader costs an election (about a second here) on top.
    func leader() throws -> Int {
        let name = try EtcdCluster.sh("leader", dir).trimmingCharacters(in: .whitespacesAndNewlines)
        guard name.hasPrefix("e"), let i = Int(name.dropFirst()), endpoints.indices.contains(i) else {
            throw Failure(description: "etcd.sh leader: '\(name)'")
        }
        return i
    }

    /// The endpoints starting with member `first`.
    func endpoints(from first: Int) -> [Endpoint] { Array(endpoints[first...] + endpoints[..<first]) }
    func stop() { _ = try? EtcdCluster.sh("stop", dir) }

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    /// Runs etcd.sh with its output in a file, waiting with waitpid (system(3)): the members it
    /// starts inherit every descriptor, so neither a pipe nor Foundation's Process ever sees an end.
    @discardableResult
    private static func sh(_ args: String...) throws -> String {
        let log = "/tmp/jvpn-etcd-sh-\(getpid()).log"
        let quoted = ([script] + args).map { "'\($0)'" }.joined(separator: " ")
        let status = system("/bin/bash \(quoted) >\(log) 2>&1 </dev/null")
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        unlink(log)
        guard status == 0 else {
            throw Failure(description: "etcd.sh \(args.joined(separator: " ")) failed (is etcd-server installed? deploy/install-deps.sh): \(text)")
        }
        return text
    }
}

/// Polls `condition` every 20 ms until it holds or `seconds` pass.
func eventually(_ seconds: Double, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        try? await Task.sleep(nanoseconds: 20_000_000)
    }
    return condition()
}

/// Thread-safe collector for the agent's facts.
final class FactLog: @unchecked Sendable {
    private let lock = NSLock()
    private var answers: [(SessionID, StoreResult)] = []
    private var changes: [(SessionID, StoredRecord?, UInt64)] = []
    private var renewals: [UInt64] = []
    private var losses = 0

    var facts: ClusterAgent.Facts {
        ClusterAgent.Facts(answered: { s, r in self.lock.withLock { self.answers.append((s, r)) } },
                          recordChanged: { s, r, v in self.lock.withLock { self.changes.append((s, r, v)) } },
                          leaseRenewed: { t in self.lock.withLock { self.renewals.append(t) } },
                          leaseLost: { self.lock.withLock { self.losses += 1 } })
    }

    func answer(for sid: SessionID) -> StoreResult? { lock.withLock { answers.last { $0.0 == sid }?.1 } }
    func changes(of sid: SessionID) -> [(StoredRecord?, UInt64)] { lock.withLock { changes.filter { $0.0 == sid }.map { ($0.1, $0.2) } } }
    var renewalCount: Int { lock.withLock { renewals.count } }
    var lossCount: Int { lock.withLock { losses } }
}

/// A value set by a task the test does not await (it may hang if the code under test is wrong).
final class Outcome<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T?

    var value: T? { lock.withLock { stored } }
    func set(_ v: T) { lock.withLock { stored = v } }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0

    var value: Int { lock.withLock { n } }
    func add() { lock.withLock { n += 1 } }
}

/// An etcd member that hangs in the middle of its answer: a loopback TCP server that reads a
/// request, sends an HTTP head and the first byte of the body it announced, and nothing more.
final class StallingHTTPServer: @unchecked Sendable {
    let port: UInt16
    private let listener: Int32
    private let lock = NSLock()
    private var clients: [Int32] = []

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else {
            close(fd)
            throw EtcdCluster.Failure(description: "stalling server: errno \(errno)")
        }
        listener = fd
        port = UInt16(bigEndian: address.sin_port)
        Thread.detachNewThread { [self] in
            while true {
                let c = accept(listener, nil, nil)
                guard c >= 0 else { return }
                var request = [UInt8](repeating: 0, count: 4096)
                _ = read(c, &request, request.count)
                let head = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".utf8)
                _ = write(c, head, head.count)
                lock.withLock { clients.append(c) }
            }
        }
    }

    var endpoint: Endpoint { Endpoint(address: IPAddress("127.0.0.1")!, port: port) }

    /// Ends the accept loop (shutdown wakes it) and every connection.
    func stop() {
        _ = shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        for c in lock.withLock({ clients }) { close(c) }
    }
}
