import JVPNCore

/// jvpn's records in etcd: `/jvpn/sessions/<hex id>` (a `SessionRecord` as JSON) and
/// `/jvpn/nodes/<node id>` (a member's liveness key, on its lease). Every `StoreRequest` is one
/// transaction that compares the record's revision (or its absence) and reads the record back when
/// the comparison fails, so a lost race answers with the winner's record at once.
public struct SessionStore: Sendable {
    public static let prefix = "/jvpn/"
    public static let sessionPrefix = "/jvpn/sessions/"
    public static let nodePrefix = "/jvpn/nodes/"

    public let client: EtcdClient

    public init(client: EtcdClient) { self.client = client }

    public static func key(_ sid: SessionID) -> String { sessionPrefix + sid.hex }

    /// The session a key names, nil for any other key.
    public static func session(ofKey key: String) -> SessionID? {
        guard key.hasPrefix(sessionPrefix) else { return nil }
        return SessionID(hex: String(key.dropFirst(sessionPrefix.count)))
    }

    public static func record(_ value: [UInt8]) -> SessionRecord? {
        (try? JSONValue.parse(String(decoding: value, as: UTF8.self))).flatMap(SessionRecord.init(json:))
    }

    static func value(_ r: SessionRecord) -> [UInt8] { Array(r.json.text.utf8) }

    public func execute(_ request: StoreRequest) async -> StoreResult {
        let key = SessionStore.key(request.session)
        let compare: EtcdCompare
        let write: EtcdOperation
        switch request {
        case .create(_, let r):
            compare = .absent(key)
            write = .put(key, SessionStore.value(r), lease: nil)
        case .claim(_, let expecting, let r), .update(_, let expecting, let r):
            compare = .modRevision(key, expecting)
            write = .put(key, SessionStore.value(r), lease: nil)
        case .delete(_, let expecting):
            compare = .modRevision(key, expecting)
            write = .delete(key)
        }
        do {
            let t = try await client.txn(compare: [compare], success: [write], failure: [.get(key)])
            if t.succeeded { return .succeeded(revision: t.revision) }
            let current = t.read.first.flatMap { kv in SessionStore.record(kv.value).map { StoredRecord($0, revision: kv.modRevision) } }
            return .conflict(current: current)
        } catch {
            return .unreachable
        }
    }
}
