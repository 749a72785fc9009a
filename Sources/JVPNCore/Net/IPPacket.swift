/// Reads the few IP header fields the data plane needs from a raw packet, without copying or
/// allocating: the version, the addresses (to route a TUN packet to a peer and to check the
/// inner source of a decrypted one) and the length the header claims (to strip padding).
public enum IPPacket {
    public static let ipv4MinHeader = 20
    public static let ipv6Header = 40

    /// 4 or 6 when the packet is long enough to hold that version's header; nil otherwise.
    @inlinable
    public static func version(_ packet: UnsafeRawPointer, length: Int) -> Int? {
        guard length >= 1 else { return nil }
        let b0 = packet.load(as: UInt8.self)
        switch b0 >> 4 {
        case 4:
            let ihl = Int(b0 & 0x0f) * 4
            guard ihl >= ipv4MinHeader, length >= ihl else { return nil }
            return 4
        case 6:
            guard length >= ipv6Header else { return nil }
            return 6
        default:
            return nil
        }
    }

    /// True when the buffer holds a complete IPv4 or IPv6 header.
    @inlinable
    public static func isValid(_ packet: UnsafeRawPointer, length: Int) -> Bool {
        version(packet, length: length) != nil
    }

    @inlinable
    public static func source(_ packet: UnsafeRawPointer, length: Int) -> IPAddress? {
        switch version(packet, length: length) {
        case 4: return IPAddress(v4NetworkBytes: packet + 12)
        case 6: return IPAddress(v6NetworkBytes: packet + 8)
        default: return nil
        }
    }

    @inlinable
    public static func destination(_ packet: UnsafeRawPointer, length: Int) -> IPAddress? {
        switch version(packet, length: length) {
        case 4: return IPAddress(v4NetworkBytes: packet + 16)
        case 6: return IPAddress(v6NetworkBytes: packet + 24)
        default: return nil
        }
    }

    /// The packet length its header claims (IPv4 total length; IPv6 40 + payload length).
    /// nil when the header is incomplete or claims less than its own header or more than
    /// `length` bytes. A decrypted packet is trimmed to this (padding removed).
    @inlinable
    public static func claimedLength(_ packet: UnsafeRawPointer, length: Int) -> Int? {
        switch version(packet, length: length) {
        case 4:
            let total = Int(UInt16(bigEndian: packet.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
            let ihl = Int(packet.load(as: UInt8.self) & 0x0f) * 4
            guard total >= ihl, total <= length else { return nil }
            return total
        case 6:
            let payload = Int(UInt16(bigEndian: packet.loadUnaligned(fromByteOffset: 4, as: UInt16.self)))
            let total = ipv6Header + payload
            guard total <= length else { return nil }
            return total
        default:
            return nil
        }
    }

    /// Everything above in one pass.
    public struct Header: Equatable, Sendable {
        public var version: Int
        public var source: IPAddress
        public var destination: IPAddress
        public var claimedLength: Int?

        @inlinable
        public init(version: Int, source: IPAddress, destination: IPAddress, claimedLength: Int?) {
            self.version = version
            self.source = source
            self.destination = destination
            self.claimedLength = claimedLength
        }
    }

    @inlinable
    public static func header(_ packet: UnsafeRawPointer, length: Int) -> Header? {
        guard let v = version(packet, length: length),
            let s = source(packet, length: length),
            let d = destination(packet, length: length)
        else { return nil }
        return Header(version: v, source: s, destination: d,
                      claimedLength: claimedLength(packet, length: length))
    }
}
