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
        try EtcdCluster.sh("start", dir, String(base))
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
