import JVPNCore
import JVPNSystem
import NIOCore
import NIOHTTP1
import NIOPosix

/// HTTP/1.1 POSTs on swift-nio's codec, one per connection (`Connection: close`): all the HTTP the
/// etcd client needs. etcd is on the LAN, so a connection per request costs one local round trip,
/// not worth the state of a pool. The client owns one event-loop thread, started in init; `shutdown`
/// first ends the exchanges under way, then stops it: a channel used after its event loop stopped
/// would never complete what it was asked.
final class HTTP1Client: @unchecked Sendable {
    /// Why an exchange failed.
    enum Failure: Error, Equatable, CustomStringConvertible {
        /// The deadline passed before the connection, or the part of the answer it covers, came.
        case timedOut(ms: Int64)
        /// The connection ended before the answer did.
        case closedEarly
        /// The answer's body is larger than the caller accepts.
        case tooLarge(limit: Int)
        /// Not an HTTP/1.1 answer to one request.
        case malformed(String)
        /// `shutdown` was called.
        case shutDown

        var description: String {
            switch self {
            case .timedOut(let ms): return "no answer within \(ms) ms"
            case .closedEarly: return "connection closed before the answer ended"
            case .tooLarge(let limit): return "answer larger than \(limit) bytes"
            case .malformed(let s): return "malformed HTTP answer: \(s)"
            case .shutDown: return "client shut down"
            }
        }
    }

    /// What the deadline bounds: the connection and the whole answer (a request), or the
    /// connection and the answer's head only (a stream that lasts as long as the server sends).
    enum DeadlineCovers {
        case wholeAnswer
        case head
    }

    /// The answer, read by the caller: its status, then its body piece by piece.
    struct Answer {
        let status: HTTPResponseStatus
        fileprivate var parts: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
        /// nil once the deadline no longer covers the answer.
        fileprivate let deadline: Deadline?
        fileprivate var ended = false

        /// The next piece of the body; nil at its end.
        mutating func nextBodyPart() async throws -> ByteBuffer? {
            guard !ended else { return nil }
            let part: HTTPClientResponsePart?
            do { part = try await parts.next() } catch { throw deadline?.explain(error) ?? error }
            switch part {
            case .body(let bytes):
                return bytes
            case .end:
                ended = true
                return nil
            case .head:
                throw Failure.malformed("a second response head")
            case nil:
                throw deadline?.explain(Failure.closedEarly) ?? Failure.closedEarly
            }
        }

        /// The whole body, refused past `limit` bytes.
        mutating func collect(upTo limit: Int) async throws -> ByteBuffer {
            var all = ByteBuffer()
            while var piece = try await nextBodyPart() {
                guard all.readableBytes + piece.readableBytes <= limit else { throw Failure.tooLarge(limit: limit) }
                all.writeBuffer(&piece)
            }
            return all
        }
    }

    /// The deadline closes the connection, so what waits on it fails or ends in whatever way the
    /// close surfaces there: past the deadline, that is reported as the deadline.
    fileprivate struct Deadline {
        let at: NIODeadline
        let ms: Int64

        func explain(_ error: Error) -> Error { NIODeadline.now() >= at ? Failure.timedOut(ms: ms) : error }
    }

    private let group: MultiThreadedEventLoopGroup
    private let lock = Lock()
    private var isShutDown = false
    /// Exchanges under way, and the connections they have open.
    private var running = 0
    private var open: [ObjectIdentifier: Channel] = [:]
    /// `shutdown` waiting for `running` to reach 0.
    private var drained: [CheckedContinuation<Void, Never>] = []

    init() {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    /// Refuses new exchanges, closes the open connections, waits for the exchanges to end (each
    /// does promptly once its connection is closed), then stops the event-loop thread.
    func shutdown() async {
        let channels = lock.withLock { () -> [Channel] in
            isShutDown = true
            return Array(open.values)
        }
        for channel in channels { channel.close(promise: nil) }
        await withCheckedContinuation { (k: CheckedContinuation<Void, Never>) in
            let idle = lock.withLock { () -> Bool in
                if running == 0 { return true }
                drained.append(k)
                return false
            }
            if idle { k.resume() }
        }
        try? await group.shutdownGracefully()
    }

    /// Dropped without `shutdown` (the daemon failing during start-up): no exchange is under way
    /// (each holds the client), so the thread is stopped without waiting, whatever thread this is.
    deinit {
        if !isShutDown { group.shutdownGracefully(queue: .global()) { _ in } }
    }

    private func begin() throws {
        try lock.withLock {
            guard !isShutDown else { throw Failure.shutDown }
            running += 1
        }
    }

    private func end() {
        let waiting = lock.withLock { () -> [CheckedContinuation<Void, Never>] in
            running -= 1
            guard running == 0 else { return [] }
            defer { drained = [] }
            return drained
        }
        for k in waiting { k.resume() }
    }

    /// POSTs `json` to `path` on `endpoint` and hands the answer to `read`, whose result it
    /// returns (errors thrown by `read` pass unchanged).
    func post<Result>(to endpoint: Endpoint, path: String, json: String, timeoutMs: Int64, deadlineCovers: DeadlineCovers,
                      _ read: (inout Answer) async throws -> Result) async throws -> Result {
        try begin()
        defer { end() }
        let deadline = Deadline(at: NIODeadline.now() + .milliseconds(timeoutMs), ms: timeoutMs)
        let address = try SocketAddress(ipAddress: "\(endpoint.address)", port: Int(endpoint.port))
        let connection: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            connection = try await ClientBootstrap(group: group)
                .connectTimeout(.milliseconds(timeoutMs))
                .connect(to: address) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw deadline.explain(error)
        }
        let channel = connection.channel
        let id = ObjectIdentifier(channel)
        let admitted = lock.withLock { () -> Bool in
            if isShutDown { return false }
            open[id] = channel
            return true
        }
        defer { lock.withLock { _ = open.removeValue(forKey: id) } }
        let expiry = channel.eventLoop.scheduleTask(deadline: deadline.at) { channel.close(promise: nil) }
        defer { expiry.cancel() }
        return try await connection.executeThenClose { inbound, outbound in
            // Shut down between connect and here: `shutdown` did not see this connection.
            guard admitted else { throw Failure.shutDown }
            var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
            let body = ByteBuffer(string: json)
            head.headers.add(name: "Host", value: "\(endpoint)")
            head.headers.add(name: "Content-Type", value: "application/json")
            head.headers.add(name: "Content-Length", value: String(body.readableBytes))
            head.headers.add(name: "Connection", value: "close")
            var parts = inbound.makeAsyncIterator()
            let first: HTTPClientResponsePart?
            do {
                try await outbound.write(contentsOf: [.head(head), .body(.byteBuffer(body)), .end(nil)])
                first = try await parts.next()
            } catch {
                throw deadline.explain(error)
            }
            let status: HTTPResponseStatus
            switch first {
            case .head(let h): status = h.status
            case .body, .end: throw Failure.malformed("body before the response head")
            case nil: throw deadline.explain(Failure.closedEarly)
            }
            switch deadlineCovers {
            case .wholeAnswer:
                var answer = Answer(status: status, parts: parts, deadline: deadline)
                return try await read(&answer)
            case .head:
                expiry.cancel()
                var answer = Answer(status: status, parts: parts, deadline: nil)
                return try await read(&answer)
            }
        }
    }
}
