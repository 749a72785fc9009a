/// Fragments an IPv4 packet without DF into packets of at most `maxPacket` bytes, as a router does
/// (RFC 791 3.2): the payload is cut at multiples of 8 bytes, MF is set on all but the last
/// fragment (which keeps the original's MF), offsets continue the original's own, and options
/// whose "copied" flag is set repeat in every fragment while the others stay in the first. Pure;
/// writes into caller-provided buffers, allocates nothing.
public enum IPv4Fragmenter {
    /// Fragments `p` into `destination(i)` (each with room for `maxPacket` bytes); calls `emit(i,
    /// length)` per fragment and returns the count. Throws when the packet is not IPv4, has DF
    /// set, does not add up, or needs more than `maxFragments` fragments.
    public static func fragment(_ p: UnsafeRawPointer, length: Int, maxPacket: Int, maxFragments: Int,
                                destination: (Int) -> UnsafeMutableRawPointer, emit: (Int, Int) -> Void) throws(Segmenter.Failure) -> Int {
        guard length >= 20, p.load(as: UInt8.self) >> 4 == 4 else { throw .malformed }
        let ihl = Int(p.load(as: UInt8.self) & 0x0f) * 4
        let total = Int(UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
        let field = UInt16(bigEndian: p.loadUnaligned(fromByteOffset: 6, as: UInt16.self))
        guard ihl >= 20, total >= ihl, total <= length, field & 0x4000 == 0 else { throw .malformed }
        // The options of the fragments after the first: only the copied ones (type bit 7).
        var copied = 0
        var i = 20
        while i < ihl {
            let kind = p.load(fromByteOffset: i, as: UInt8.self)
            if kind == 0 { break }
            if kind == 1 {
                i += 1
                continue
            }
            guard i + 1 < ihl else { throw .malformed }
            let len = Int(p.load(fromByteOffset: i + 1, as: UInt8.self))
            guard len >= 2, i + len <= ihl else { throw .malformed }
            if kind & 0x80 != 0 { copied += len }
            i += len
        }
        let laterIhl = 20 + (copied + 3) / 4 * 4
        let firstData = (maxPacket - ihl) & ~7, laterData = (maxPacket - laterIhl) & ~7
        guard firstData >= 8, laterData >= 8 else { throw .unsupported }
        let payload = total - ihl
        let count = payload <= firstData ? 1 : 1 + (payload - firstData + laterData - 1) / laterData
        guard count <= maxFragments else { throw .unsupported }
        let baseOffset = Int(field & 0x1fff) * 8
        // A fragment's offset field holds at most 65,528: a fragment reaching past 65,535 is not
        // a packet any host reassembles (its pieces would carry offsets that spill into the flags).
        guard baseOffset + payload <= 65535 else { throw .malformed }
        let lastMF = field & 0x2000
        var off = 0
        for k in 0..<count {
            let d = destination(k)
            let hdr: Int
            if k == 0 {
                d.copyMemory(from: p, byteCount: ihl)
                hdr = ihl
            } else {
                d.copyMemory(from: p, byteCount: 20)
                var w = 20
                var j = 20
                while j < ihl {
                    let kind = p.load(fromByteOffset: j, as: UInt8.self)
                    if kind == 0 { break }
                    if kind == 1 {
                        j += 1
                        continue
                    }
                    let len = Int(p.load(fromByteOffset: j + 1, as: UInt8.self))
                    if kind & 0x80 != 0 {
                        (d + w).copyMemory(from: p + j, byteCount: len)
                        w += len
                    }
                    j += len
                }
                (d + w).initializeMemory(as: UInt8.self, repeating: 0, count: laterIhl - w) // end of options
                hdr = laterIhl
                d.storeBytes(of: UInt8(0x40 | (laterIhl / 4)), as: UInt8.self)
            }
            let data = min(k == 0 ? firstData : laterData, payload - off)
            (d + hdr).copyMemory(from: p + ihl + off, byteCount: data)
            let mf: UInt16 = k == count - 1 ? lastMF : 0x2000
            d.storeBytes(of: UInt16(hdr + data).bigEndian, toByteOffset: 2, as: UInt16.self)
            d.storeBytes(of: (mf | UInt16((baseOffset + off) / 8)).bigEndian, toByteOffset: 6, as: UInt16.self)
            d.storeBytes(of: UInt16(0), toByteOffset: 10, as: UInt16.self)
            d.storeBytes(of: Checksum.finish(Checksum.sum(d, hdr)).bigEndian, toByteOffset: 10, as: UInt16.self)
            emit(k, hdr + data)
            off += data
        }
        return count
    }
}
