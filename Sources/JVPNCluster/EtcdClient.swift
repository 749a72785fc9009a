import AsyncHTTPClient
import JVPNCore
import JVPNSystem
import NIOCore
import NIOHTTP1

/// Why an etcd request failed.
public enum EtcdError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No endpoint answered in time (refused, reset, timed out): the outcome of a write is unknown.
    case unreachable(String)
    /// An endpoint answered with something that is not the etcd v3 JSON we expect.
    case badResponse(String)

    public var description: String {
        switch self {
        case .unreachable(let s): return "etcd unreachable: \(s)"
        case .badResponse(let s): return "unexpected answer from etcd: \(s)"
        }
    }
}

/// One key as etcd returns it.
public struct EtcdKeyValue: Equatable, Sendable {
    public var key: String
    public var value: [UInt8]
    public var modRevision: UInt64
    public var createRevision: UInt64
}

/// A condition of a transaction (etcd's `Compare`).
public enum EtcdCompare: Equatable, Sendable {
    /// The key does not exist (its create_revision is 0).
    case absent(String)
    /// The key's mod_revision equals this.
    case modRevision(String, UInt64)
}

/// An operation of a transaction.
public enum EtcdOperation: Equatable, Sendable {
    case put(String, [UInt8], lease: Int64?)
    case delete(String)
    case get(String)
}

public struct EtcdTxnResult: Equatable, Sendable {
    public var succeeded: Bool
    /// The store's revision after the transaction (the revision of its write when it succeeded).
    public var revision: UInt64
    /// Keys read by `get` operations of the branch that ran.
    public var read: [EtcdKeyValue]
}

/// One change seen by a watch.
public struct EtcdWatchEvent: Equatable, Sendable {
    public var key: String
    /// nil for a deletion.
    public var value: [UInt8]?
    public var modRevision: UInt64
}

/// etcd's own v3 API through its JSON gateway (`/v3/...`, served by etcd 3.4 and later), spoken
/// with AsyncHTTPClient. Endpoints are tried in order from the last one that answered; each
/// request has a deadline per endpoint, so a dead member costs one deadline, not a hang.
public final class EtcdClient: @unchecked Sendable {
    public let endpoints: [Endpoint]
    private let http: HTTPClient
    private let lock = Lock()
    private var preferred = 0
    /// Per endpoint and request: etcd on a LAN answers in milliseconds; a member that does not is
    /// left for the next one.
    public let attemptTimeoutMs: Int64

    public init(endpoints: [Endpoint], attemptTimeoutMs: Int64 = 700) {
        precondition(!endpoints.isEmpty, "etcd endpoints")
        self.endpoints = endpoints
        self.attemptTimeoutMs = attemptTimeoutMs
        var config = HTTPClient.Configuration()
        config.timeout = HTTPClient.Configuration.Timeout(connect: .milliseconds(attemptTimeoutMs), read: nil)
        config.connectionPool = HTTPClient.Configuration.ConnectionPool(idleTimeout: .seconds(60))
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: config)
    }

    public func shutdown() async {
        lock.withLock { isShutDown = true }
        try? await http.shutdown()
    }

    private var isShutDown = false

    /// A client dropped without `shutdown` (the daemon failing during start-up) must not trap.
    deinit {
        if !isShutDown { try? http.syncShutdown() }
    }

    private static func url(_ e: Endpoint, _ path: String) -> String { "http://\(e)\(path)" }

    /// POSTs `body` to `path` on the preferred endpoint, then the others; the parsed JSON answer.
    func call(_ path: String, _ body: JSONValue) async throws -> JSONValue {
        let text = body.text
        let start = lock.withLock { preferred }
        var lastError = "no endpoint"
        for k in 0..<endpoints.count {
            let i = (start + k) % endpoints.count
            var request = HTTPClientRequest(url: EtcdClient.url(endpoints[i], path))
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: text))
            do {
                let response = try await http.execute(request, timeout: .milliseconds(attemptTimeoutMs))
                var bytes = try await response.body.collect(upTo: 16 << 20)
                let answer = bytes.readString(length: bytes.readableBytes) ?? ""
                guard response.status == .ok else {
                    // A member without quorum answers 503 or similar: another one may have it.
                    lastError = "\(endpoints[i]): HTTP \(response.status.code) \(answer.prefix(200))"
                    continue
                }
                guard let json = try? JSONValue.parse(answer) else { throw EtcdError.badResponse(String(answer.prefix(200))) }
                lock.withLock { preferred = i }
                return json
            } catch let e as EtcdError {
                throw e
            } catch {
                lastError = "\(endpoints[i]): \(error)"
            }
        }
        throw EtcdError.unreachable(lastError)
    }

    // MARK: KV

    /// Every key with `prefix`, and the store revision they were read at.
    public func range(prefix: String) async throws -> (kvs: [EtcdKeyValue], revision: UInt64) {
        let json = try await call("/v3/kv/range", ["key": .string(Base64.encode(prefix)),
                                                    "range_end": .string(Base64.encode(EtcdClient.prefixEnd(prefix)))])
        return (try EtcdClient.keyValues(json["kvs"]), try EtcdClient.revision(json))
    }

    public func txn(compare: [EtcdCompare], success: [EtcdOperation], failure: [EtcdOperation]) async throws -> EtcdTxnResult {
        let body: JSONValue = ["compare": .array(compare.map(EtcdClient.json)), "success": .array(success.map(EtcdClient.json)),
                               "failure": .array(failure.map(EtcdClient.json))]
        let json = try await call("/v3/kv/txn", body)
        var read: [EtcdKeyValue] = []
        for r in json["responses"]?.arrayValue ?? [] {
            if let range = r["response_range"] { read += try EtcdClient.keyValues(range["kvs"]) }
        }
        // proto3 JSON leaves false out.
        return EtcdTxnResult(succeeded: json["succeeded"] == .bool(true), revision: try EtcdClient.revision(json), read: read)
    }

    // MARK: leases

    /// A new lease: its id and the TTL etcd granted.
    public func grantLease(ttlS: Int) async throws -> (id: Int64, ttlS: Int64) {
        let json = try await call("/v3/lease/grant", ["TTL": JSONValue(ttlS)])
        guard let id = EtcdClient.int(json["ID"]), let ttl = EtcdClient.int(json["TTL"]) else {
            throw EtcdError.badResponse("lease grant without ID/TTL: \(json.text.prefix(200))")
        }
        return (id, ttl)
    }

    /// Renews a lease; its remaining TTL, 0 when etcd no longer has it.
    public func keepAlive(lease: Int64) async throws -> Int64 {
        let json = try await call("/v3/lease/keepalive", ["ID": .string(String(lease))])
        return EtcdClient.int(json["result"]?["TTL"]) ?? 0
    }

    public func revoke(lease: Int64) async throws {
        _ = try await call("/v3/lease/revoke", ["ID": .string(String(lease))])
    }

    // MARK: watch

    /// Watches every key with `prefix` from `startRevision` on and calls `onEvents` with each
    /// batch, in revision order, until the stream ends (returns the next revision to watch from) or
    /// fails (throws). A compacted start revision throws `.badResponse("compacted ...")`: reload.
    public func watch(prefix: String, startRevision: UInt64, onEvents: @Sendable ([EtcdWatchEvent], UInt64) -> Void) async throws -> UInt64 {
        let body: JSONValue = ["create_request": ["key": .string(Base64.encode(prefix)),
                                                  "range_end": .string(Base64.encode(EtcdClient.prefixEnd(prefix))),
                                                  "start_revision": .string(String(startRevision))]]
        let start = lock.withLock { preferred }
        var next = startRevision
        var lastError = "no endpoint"
        for k in 0..<endpoints.count {
            let i = (start + k) % endpoints.count
            var request = HTTPClientRequest(url: EtcdClient.url(endpoints[i], "/v3/watch"))
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body.text))
            let response: HTTPClientResponse
            do {
                // The stream lives as long as the watch; a dead member resets it (or the lease
                // logic restarts the watch when etcd stops answering altogether).
                response = try await http.execute(request, deadline: .distantFuture)
            } catch {
                lastError = "\(endpoints[i]): \(error)"
                continue
            }
            guard response.status == .ok else {
                lastError = "\(endpoints[i]): HTTP \(response.status.code)"
                continue
            }
            var pending: [UInt8] = []
            for try await var chunk in response.body {
                pending += chunk.readBytes(length: chunk.readableBytes) ?? []
                // One JSON object per line (grpc-gateway's stream framing).
                while let nl = pending.firstIndex(of: 10) {
                    let line = String(decoding: pending[..<nl], as: UTF8.self)
                    pending.removeSubrange(...nl)
                    guard !line.isEmpty else { continue }
                    guard let json = try? JSONValue.parse(line) else { throw EtcdError.badResponse("watch: \(line.prefix(200))") }
                    if let error = json["error"] { throw EtcdError.badResponse("watch: \(error.text.prefix(200))") }
                    guard let result = json["result"] else { continue }
                    if let compacted = EtcdClient.int(result["compact_revision"]), compacted > 0 {
                        throw EtcdError.badResponse("compacted at \(compacted)")
                    }
                    if result["canceled"] == .bool(true) { throw EtcdError.badResponse("watch canceled: \(result.text.prefix(200))") }
                    let revision = (try? EtcdClient.revision(result)) ?? next
                    var events: [EtcdWatchEvent] = []
                    for e in result["events"]?.arrayValue ?? [] {
                        guard let kv = e["kv"], let key = kv["key"]?.stringValue.flatMap(Base64.decodeString),
                              let mod = EtcdClient.int(kv["mod_revision"]) else { continue }
                        let deleted = e["type"]?.stringValue == "DELETE"
                        let value = deleted ? nil : (kv["value"]?.stringValue.flatMap(Base64.decode) ?? [])
                        events.append(EtcdWatchEvent(key: key, value: value, modRevision: UInt64(mod)))
                        next = max(next, UInt64(mod) + 1)
                    }
                    if !events.isEmpty { onEvents(events, revision) }
                }
            }
            return next
        }
        throw EtcdError.unreachable(lastError)
    }

    // MARK: JSON

    /// The end of a prefix range: the prefix with its last byte incremented.
    static func prefixEnd(_ prefix: String) -> [UInt8] {
        var b = Array(prefix.utf8)
        while let last = b.last {
            if last < 0xff {
                b[b.count - 1] = last + 1
                return b
            }
            b.removeLast()
        }
        return [0]
    }

    /// etcd writes int64 fields as JSON strings.
    static func int(_ v: JSONValue?) -> Int64? {
        guard let v else { return nil }
        if let s = v.stringValue { return Int64(s) }
        return v.intValue
    }

    static func revision(_ json: JSONValue) throws -> UInt64 {
        guard let r = int(json["header"]?["revision"]), r >= 0 else { throw EtcdError.badResponse("no header revision") }
        return UInt64(r)
    }

    static func keyValues(_ v: JSONValue?) throws -> [EtcdKeyValue] {
        try (v?.arrayValue ?? []).map { kv in
            guard let key = kv["key"]?.stringValue.flatMap(Base64.decodeString), let mod = int(kv["mod_revision"]),
                  let created = int(kv["create_revision"]) else { throw EtcdError.badResponse("key without key/revisions") }
            return EtcdKeyValue(key: key, value: kv["value"]?.stringValue.flatMap(Base64.decode) ?? [], modRevision: UInt64(mod),
                                createRevision: UInt64(created))
        }
    }

    static func json(_ c: EtcdCompare) -> JSONValue {
        switch c {
        case .absent(let key):
            return ["target": "CREATE", "key": .string(Base64.encode(key)), "result": "EQUAL", "create_revision": "0"]
        case .modRevision(let key, let r):
            return ["target": "MOD", "key": .string(Base64.encode(key)), "result": "EQUAL", "mod_revision": .string(String(r))]
        }
    }

    static func json(_ op: EtcdOperation) -> JSONValue {
        switch op {
        case .put(let key, let value, let lease):
            var put: [String: JSONValue] = ["key": .string(Base64.encode(key)), "value": .string(Base64.encode(value))]
            if let lease { put["lease"] = .string(String(lease)) }
            return ["request_put": .object(put)]
        case .delete(let key):
            return ["request_delete_range": ["key": .string(Base64.encode(key))]]
        case .get(let key):
            return ["request_range": ["key": .string(Base64.encode(key))]]
        }
    }
}
