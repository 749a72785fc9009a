@testable import JVPNCore

/// A deterministic simulation at microsecond resolution for RTT-based detection: the real
/// `ClientOrchestrator` and the real `GatewayCore` (through `GatewayModel`), paths with their own
/// delay and jitter per direction, and an application that sends data through the tunnel. The
/// client is ticked as the daemon ticks it: at the interval the orchestrator asks for, after
/// sampling the data counters.
struct RttSim {
    /// One path: one-way delay per direction (uniform in the range), and a blackhole.
    struct Link {
        var oneWayUs: ClosedRange<UInt64>
        var blackholed = false
        var rttMs: Double { Double(oneWayUs.lowerBound + oneWayUs.upperBound) / 1000 }
    }

    /// What the application does.
    enum Traffic: Equatable {
        /// A packet every `everyUs`, each answered by the far side (an echo, or TCP's ACK clock).
        case echo(everyUs: UInt64)
        /// A packet every `everyUs`, never answered (an upload the gateway side does not answer).
        case oneWay(everyUs: UInt64)
        /// Requests of 1-20 packets, answered with 1-40 packets after a server think time of
        /// 0-`serverThinkMs`; the client thinks 0-500 ms between requests.
        case bursty(serverThinkMs: UInt64)
        case idle
    }

    private enum Item {
        case data
        /// Answer with `replies` packets after `thinkUs` (bursty requests; 0 = echo at once).
        case request(replies: Int, thinkUs: UInt64)
        case control(ControlMessage)
    }

    private struct Delivery {
        let atUs: UInt64
        let order: UInt64
        let path: UInt32
        let toGateway: Bool
        let item: Item
    }

    var o: ClientOrchestrator
    var gateway: GatewayModel
    var links: [UInt32: Link]
    var traffic: Traffic
    private(set) var nowUs: UInt64
    private var rng: SeededRandom
    private var heap: [Delivery] = []
    private var order: UInt64 = 0
    private var nextTickUs: UInt64
    private var nextAppUs: UInt64
    /// Application packets the gateway side owes the client (bursty answers), and when.
    private var pendingAnswers: [(atUs: UInt64, count: Int)] = []
    private(set) var dataSent: UInt64 = 0
    private(set) var dataReceived: UInt64 = 0
    /// Every action with the time it was taken (µs).
    private(set) var log: [(us: UInt64, action: OrchestratorAction)] = []

    var nowMs: UInt64 { nowUs / 1000 }

    init(policy: PolicyConfig, links: [UInt32: Link], traffic: Traffic, seed: UInt64) {
        let paths = links.keys.sorted()
        let startMs: UInt64 = 1_000
        nowUs = startMs * 1000
        nextTickUs = nowUs
        nextAppUs = nowUs
        self.links = links
        self.traffic = traffic
        rng = SeededRandom(seed: seed)
        o = ClientOrchestrator(policy: policy, paths: paths.map { PathCandidate(id: $0, priority: Int($0 / 16)) },
                               noncePrefix: seed, nowMs: startMs)
        gateway = GatewayModel(bound: paths[0], policy: policy, nowMs: startMs)
        perform(o.handshakeCompleted(path: paths[0], nowMs: startMs))
    }

    private mutating func uniform(_ r: ClosedRange<UInt64>) -> UInt64 {
        r.lowerBound + rng.next() % (r.upperBound - r.lowerBound + 1)
    }

    // MARK: the network

    private mutating func send(_ item: Item, path: UInt32, toGateway: Bool) {
        guard let link = links[path], !link.blackholed else { return }
        order += 1
        push(Delivery(atUs: nowUs + uniform(link.oneWayUs), order: order, path: path, toGateway: toGateway, item: item))
    }

    private mutating func push(_ d: Delivery) {
        heap.append(d)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard earlier(heap[i], heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    private mutating func pop() -> Delivery {
        let top = heap[0]
        heap[0] = heap[heap.count - 1]
        heap.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < heap.count, earlier(heap[l], heap[m]) { m = l }
            if r < heap.count, earlier(heap[r], heap[m]) { m = r }
            if m == i { break }
            heap.swapAt(i, m)
            i = m
        }
        return top
    }

    private func earlier(_ a: Delivery, _ b: Delivery) -> Bool { (a.atUs, a.order) < (b.atUs, b.order) }

    private mutating func deliver(_ d: Delivery) {
        // A blackhole also swallows what was already on its way.
        guard links[d.path]?.blackholed == false else { return }
        if d.toGateway {
            switch d.item {
            case .data:
                if case .echo = traffic, let bound = gateway.bound { send(.data, path: bound, toGateway: false) }
            case .request(let replies, let thinkUs):
                pendingAnswers.append((nowUs + thinkUs, replies))
            case .control(let m):
                for (reply, to) in gateway.receive(m, from: d.path, nowMs: nowMs) { send(.control(reply), path: to, toGateway: false) }
            }
            return
        }
        switch d.item {
        case .data, .request:
            dataReceived += 1
        case .control(let m):
            switch m {
            case .probeReply(let seq, let sentAtNs, let pathID):
                let rtt = Double(nowUs * 1000 - sentAtNs) / 1e6
                perform(o.probeReplied(path: pathID, seq: seq, nowMs: nowMs, measuredRttMs: rtt))
            case .reattachAck(_, let version, let nonce):
                perform(o.reattachAcked(nonce: nonce, bindingVersion: version, nowMs: nowMs))
            case .reject(let reason, let nonce, let version):
                perform(o.reattachRejected(reason: reason, nonce: nonce, bindingVersion: version, nowMs: nowMs))
            case .pathChallenge(let data):
                perform(o.pathChallenged(path: d.path, data: data, nowMs: nowMs))
            case .natHint:
                if d.path == o.active { perform(o.natRebindHinted(nowMs: nowMs)) }
            case .close:
                perform(o.closedByPeer(nowMs: nowMs))
            case .pathMtuAck(let pathID, let size):
                o.pathMtuReceipted(path: pathID, maxDatagram: Int(size), nowMs: nowMs)
            case .probe, .reattachRequest, .pathResponse, .pathMtu:
                break
            }
        }
    }

    // MARK: the client host

    private mutating func perform(_ actions: [OrchestratorAction]) {
        for a in actions {
            log.append((nowUs, a))
            switch a {
            case .sendProbe(let path, let seq):
                send(.control(.probe(seq: seq, sentAtNs: nowUs * 1000, pathID: path)), path: path, toGateway: true)
            case .sendReattach(let path, let reason, let version, let nonce):
                send(.control(.reattachRequest(sessionID: GatewayModel.session, bindingVersion: version, pathID: path,
                                               nonce: nonce, reason: reason)), path: path, toGateway: true)
            case .sendPathResponse(let path, let data):
                send(.control(.pathResponse(data: data)), path: path, toGateway: true)
            case .sendMtuProbe(let path, let seq, _):
                send(.control(.probe(seq: seq, sentAtNs: nowUs * 1000, pathID: path)), path: path, toGateway: true)
            case .sendPathMtu(let path, let size):
                send(.control(.pathMtu(pathID: path, maxDatagram: UInt16(size))), path: path, toGateway: true)
            case .sendInitiation, .sendResume, .activate, .stateChanged, .audit, .switched, .presumedDead, .terminated, .pathMtuChanged:
                break
            }
        }
    }

    /// The application's next move: data on the active path (the data plane sends where the
    /// orchestrator activated, and nowhere while it has no active path).
    private mutating func application() {
        switch traffic {
        case .idle:
            nextAppUs = .max
        case .echo(let every), .oneWay(let every):
            if o.active != nil { sendData(.data) }
            nextAppUs = nowUs + every
        case .bursty(let serverThinkMs):
            let packets = Int(uniform(1...20))
            let replies = Int(uniform(1...40))
            let thinkUs = uniform(0...serverThinkMs * 1000)
            for i in 0..<packets { sendData(i == packets - 1 ? .request(replies: replies, thinkUs: thinkUs) : .data) }
            nextAppUs = nowUs + uniform(0...500_000)
        }
    }

    private mutating func sendData(_ item: Item) {
        guard let a = o.active else { return }
        dataSent += 1
        send(item, path: a, toGateway: true)
    }

    private mutating func answerRequests() {
        guard let bound = gateway.bound else { return }
        var i = 0
        while i < pendingAnswers.count {
            if pendingAnswers[i].atUs <= nowUs {
                for _ in 0..<pendingAnswers[i].count { send(.data, path: bound, toGateway: false) }
                pendingAnswers.remove(at: i)
            } else {
                i += 1
            }
        }
    }

    mutating func run(ms: UInt64) {
        let end = nowUs + ms * 1000
        while true {
            let nextAnswer = pendingAnswers.map(\.atUs).min() ?? .max
            let next = min(heap.first?.atUs ?? .max, nextTickUs, nextAppUs, nextAnswer)
            guard next <= end else { break }
            nowUs = max(nowUs, next)
            if let first = heap.first, first.atUs <= nowUs {
                deliver(pop())
            } else if nextAnswer <= nowUs {
                answerRequests()
            } else if nextAppUs <= nowUs {
                application()
            } else {
                o.dataCounted(sentPackets: dataSent, receivedPackets: dataReceived, nowMs: nowMs)
                perform(o.tick(nowMs: nowMs))
                _ = gateway.core.tick(nowMs: nowMs)
                nextTickUs = nowUs + o.tickIntervalMs(nowMs: nowMs) * 1000
            }
        }
        nowUs = end
    }

    // MARK: what happened

    func actions(after us: UInt64) -> [(us: UInt64, action: OrchestratorAction)] { log.filter { $0.us >= us } }

    var switches: [(us: UInt64, from: UInt32?, to: UInt32, reason: ReasonCode)] {
        log.compactMap { if case .switched(let f, let t, let r, _) = $0.action { return ($0.us, f, t, r) }; return nil }
    }

    var presumedDead: [UInt64] {
        log.compactMap { if case .presumedDead = $0.action { return $0.us }; return nil }
    }

    var stateChanges: [StateChange] {
        log.compactMap { if case .stateChanged(let c) = $0.action { return c }; return nil }
    }
}
