/// The `virtio_net_hdr` that precedes every packet on a TUN opened with IFF_VNET_HDR (10 bytes,
/// little-endian fields). It describes a TSO/USO super-packet and a checksum left to compute.
public struct VirtioNetHeader: Equatable, Sendable {
    public static let size = 10
    public static let needsChecksum: UInt8 = 1
    public static let gsoNone: UInt8 = 0
    public static let gsoTCPv4: UInt8 = 1
    public static let gsoUDP: UInt8 = 3
    public static let gsoTCPv6: UInt8 = 4
    public static let gsoUDPL4: UInt8 = 5

    public var flags: UInt8 = 0
    public var gsoType: UInt8 = 0
    public var headerLength: UInt16 = 0
    public var gsoSize: UInt16 = 0
    public var checksumStart: UInt16 = 0
    public var checksumOffset: UInt16 = 0

    public init() {}

    public init(_ p: UnsafeRawPointer) {
        flags = p.load(as: UInt8.self)
        gsoType = p.load(fromByteOffset: 1, as: UInt8.self)
        headerLength = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self))
        gsoSize = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt16.self))
        checksumStart = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        checksumOffset = UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 8, as: UInt16.self))
    }

    public func write(to p: UnsafeMutableRawPointer) {
        p.storeBytes(of: flags, as: UInt8.self)
        p.storeBytes(of: gsoType, toByteOffset: 1, as: UInt8.self)
        p.storeBytes(of: headerLength.littleEndian, toByteOffset: 2, as: UInt16.self)
        p.storeBytes(of: gsoSize.littleEndian, toByteOffset: 4, as: UInt16.self)
        p.storeBytes(of: checksumStart.littleEndian, toByteOffset: 6, as: UInt16.self)
        p.storeBytes(of: checksumOffset.littleEndian, toByteOffset: 8, as: UInt16.self)
    }
}
