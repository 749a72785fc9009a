import JVPNCore
import Synchronization

/// Status JSON `mtu` of a session: what the data plane did to fit packets to a smaller path, and
/// (client) what the MTU searches did.
enum PathFitCounters {
    static func json(_ c: PeerCounters, blackHoles: Int? = nil, probes: Int? = nil) -> JSONValue {
        func n(_ a: borrowing Atomic<UInt64>) -> JSONValue { JSONValue(a.load(ordering: .relaxed)) }
        var o: [String: JSONValue] = ["mss_clamped": n(c.mssClamped), "resegmented": n(c.resegmented), "fragmented": n(c.fragmented),
                                      "dropped_too_big": n(c.droppedTooBig), "too_big_sent": n(c.tooBigSent)]
        if let blackHoles { o["black_holes"] = JSONValue(blackHoles) }
        if let probes { o["probes"] = JSONValue(probes) }
        return .object(o)
    }
}
