/// Buffers for whole packets the kernel copies into (TUN reads) or out of (TUN writes).
///
/// The kernel keeps a large packet's data in pages, from offset 0. When a copy's destination lies
/// a little past its source modulo 4 KiB (up to about 64 bytes), each load waits on an earlier
/// store to the same 4 KiB alias (4K aliasing). Where a 64-byte-aligned allocation happened to
/// land was thus worth 6x the time per byte of the gateway's TUN-write copy (9 % of both daemons'
/// samples against 1.5 %, BENCHMARKS.md). These buffers start half a page in: the packet data,
/// after a virtio_net_hdr and some dozens of bytes of headers, lies about 2 KiB from any page's
/// offset 0, in both directions.
public enum KernelCopyBuffer {
    static let pageSize = 4096
    static let offset = 2048

    /// `byteCount` bytes starting half a page in. Free with `deallocate`.
    public static func allocate(byteCount: Int) -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer.allocate(byteCount: byteCount + offset, alignment: pageSize) + offset
    }

    public static func deallocate(_ p: UnsafeMutableRawPointer) {
        (p - offset).deallocate()
    }
}
