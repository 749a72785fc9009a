/// How a path carries frames: UDP (one frame per datagram) or TCP (frames on a byte stream with a
/// length prefix, docs/PROTOCOL.md section 10) for networks that block or throttle UDP.
public enum TransportKind: String, Sendable, Equatable, Hashable, CaseIterable {
    case udp
    case tcp
}
