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
/// over HTTP/1.1 (HTTP1Client). Endpoints are tried in order from the last one that answered;
/// each request has a deadline per endpoint covering connect and answer, so a dead member costs
/// one deadline, not a hang.
public final class EtcdClient: @unchecked Sendable {
    public let endpoints: [Endpoint]
    private let http: HTTP1Client
    private let lock = Lock()
    private var preferred = 0
    /// Per endpoint and request: etcd on a LAN answers in milliseconds; a member that does not is
    /// left for the next one.
    public let attemptTimeoutMs: Int64
    /// An answer (or one watch line) larger than this is refused (`badResponse`) rather than held:
    /// tens of thousands of session records fit below it.
    static let maxAnswerBytes = 16 << 20

    /// Starts the HTTP client's event-loop thread (the daemon makes the client once it has dropped
    /// capabilities); a client dropped without `shutdown` stops it too.
    public init(endpoints: [Endpoint], attemptTimeoutMs: Int64 = 700) {
        precondition(!endpoints.isEmpty, "etcd endpoints")
        self.endpoints = endpoints
        self.attemptTimeoutMs = attemptTimeoutMs
        http = HTTP1Client()
    }

    /// Ends the requests and watches under way and stops the thread; requests after it fail as
    /// unreachable.
    public func shutdown() async {
        await http.shutdown()
    }

    /// POSTs `body` to `path` on the preferred endpoint, then the others; the parsed JSON answer.
    func call(_ path: String, _ body: JSONValue) async throws -> JSONValue {
        let text = body.text
        let start = lock.withLock { preferred }
        var lastError = "no endpoint"
        for k in 0..<endpoints.count {
            let i = (start + k) % endpoints.count
            do {
                let (status, answer) = try await http.post(to: endpoints[i], path: path, json: text, timeoutMs: attemptTimeoutMs,
                                                           deadlineCovers: .wholeAnswer) { answer in
                    var bytes = try await answer.collect(upTo: EtcdClient.maxAnswerBytes)
                    return (answer.status, bytes.readString(length: bytes.readableBytes) ?? "")
                }
                guard status == .ok else {
                    // A member without quorum answers 503 or similar: another one may have it.
                    lastError = "\(endpoints[i]): HTTP \(status.code) \(answer.prefix(200))"
                    continue
                }
                guard let json = try? JSONValue.parse(answer) else { throw EtcdError.badResponse(String(answer.prefix(200))) }
                lock.withLock { preferred = i }
                return json
            } catch let e as EtcdError {
                throw e
            } catch HTTP1Client.Failure.tooLarge(let limit) {
                throw EtcdError.badResponse("\(endpoints[i]): answer larger than \(limit) bytes")
            } catch HTTP1Client.Failure.shutDown {
                throw EtcdError.unreachable("client shut down")
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
            // Set once a member accepted the watch: from then on a failure ends the watch.
            var streaming = false
            do {
                // The deadline covers the connection and the answer's head, which etcd sends at once
                // with the watch's creation; the stream then lives as long as the watch: a dead member
                // resets it (or the lease logic restarts the watch when etcd stops answering altogether).
                let refusal: String? = try await http.post(to: endpoints[i], path: "/v3/watch", json: body.text,
                                                           timeoutMs: attemptTimeoutMs, deadlineCovers: .head) { answer in
                    guard answer.status == .ok else { return "HTTP \(answer.status.code)" }
                    streaming = true
                    var pending = ByteBuffer()
                    while var piece = try await answer.nextBodyPart() {
                        pending.writeBuffer(&piece)
                        // One JSON object per line (grpc-gateway's stream framing).
                        while let nl = pending.readableBytesView.firstIndex(of: 10) {
                            let line = pending.readString(length: nl - pending.readerIndex) ?? ""
                            pending.moveReaderIndex(forwardBy: 1)
                            try EtcdClient.watched(line, next: &next, onEvents: onEvents)
                        }
                        guard pending.readableBytes <= EtcdClient.maxAnswerBytes else {
                            throw EtcdError.badResponse("watch: a line larger than \(EtcdClient.maxAnswerBytes) bytes")
                        }
                        pending.discardReadBytes()
                    }
                    return nil
                }
                if let refusal {
                    lastError = "\(endpoints[i]): \(refusal)"
                    continue
                }
                return next
            } catch HTTP1Client.Failure.shutDown {
                throw EtcdError.unreachable("client shut down")
            } catch where !streaming {
                lastError = "\(endpoints[i]): \(error)"
            }
        }
        throw EtcdError.unreachable(lastError)
    }

    /// One line of the watch stream: its events go to `onEvents`, `next` moves past them.
    private static func watched(_ line: String, next: inout UInt64, onEvents: @Sendable ([EtcdWatchEvent], UInt64) -> Void) throws {
        guard !line.isEmpty else { return }
        guard let json = try? JSONValue.parse(line) else { throw EtcdError.badResponse("watch: \(line.prefix(200))") }
        if let error = json["error"] { throw EtcdError.badResponse("watch: \(error.text.prefix(200))") }
        guard let result = json["result"] else { return }
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
