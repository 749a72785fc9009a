import CUDP
import Glibc

/// A Linux capability by its number in linux/capability.h.
public struct Capability: Hashable, Sendable, CustomStringConvertible {
    public let number: Int32

    public init(_ number: Int32) { self.number = number }

    public static let setpcap = Capability(8)
    public static let netBindService = Capability(10)
    public static let netAdmin = Capability(12)
    public static let netRaw = Capability(13)

    public var description: String {
        switch number {
        case 8: return "CAP_SETPCAP"
        case 10: return "CAP_NET_BIND_SERVICE"
        case 12: return "CAP_NET_ADMIN"
        case 13: return "CAP_NET_RAW"
        default: return "capability \(number)"
        }
    }
}

/// A set of capabilities as the kernel's 64-bit mask (bit N = capability N), the form
/// /proc/PID/status shows (CapEff: 0000000000003000 = CAP_NET_ADMIN, CAP_NET_RAW).
public struct CapabilitySet: Equatable, Sendable, CustomStringConvertible {
    public var mask: UInt64

    public init(mask: UInt64) { self.mask = mask }

    public init(_ capabilities: [Capability]) {
        mask = capabilities.reduce(0) { $0 | (1 << UInt64($1.number)) }
    }

    public func contains(_ c: Capability) -> Bool { mask & (1 << UInt64(c.number)) != 0 }
    public func intersection(_ other: CapabilitySet) -> CapabilitySet { CapabilitySet(mask: mask & other.mask) }
    public var members: [Capability] { (0..<64).filter { mask & (1 << UInt64($0)) != 0 }.map { Capability(Int32($0)) } }

    public var description: String { members.isEmpty ? "none" : members.map(\.description).joined(separator: ", ") }
}

public enum CapabilityError: Error, Equatable, CustomStringConvertible {
    /// Capabilities are per thread: with other threads running, they would keep what this one drops.
    case otherThreadsRunning(Int)
    case read(errno: Int32)
    case boundingDrop(Capability, errno: Int32)
    case set(errno: Int32)
    case noNewPrivileges(errno: Int32)

    public var description: String {
        func why(_ e: Int32) -> String { String(cString: strerror(e)) }
        switch self {
        case .otherThreadsRunning(let n):
            return "cannot drop capabilities with \(n) threads running (drop them before starting threads)"
        case .read(let e): return "cannot read the process capabilities: \(why(e))"
        case .boundingDrop(let c, let e):
            return "cannot drop \(c) from the capability bounding set: \(why(e)) (needs CAP_SETPCAP, or a bounding set already limited to what the daemon keeps)"
        case .set(let e): return "cannot lower the process capabilities (capset): \(why(e))"
        case .noNewPrivileges(let e): return "cannot set no_new_privs: \(why(e))"
        }
    }
}

/// The calling process's capabilities (as seen by the calling thread).
public struct ProcessCapabilities: Equatable, Sendable {
    public var effective: CapabilitySet
    public var permitted: CapabilitySet
    public var inheritable: CapabilitySet
    public var bounding: CapabilitySet

    public static func current() throws(CapabilityError) -> ProcessCapabilities {
        var sets = cprocess_caps()
        let rc = cprocess_capget(&sets)
        guard rc == 0 else { throw .read(errno: -rc) }
        var bounding: UInt64 = 0
        // PR_CAPBSET_READ answers EINVAL past the kernel's last capability.
        for cap in Int32(0)..<64 {
            let has = cprocess_bounding_has(cap)
            if has < 0 { break }
            if has == 1 { bounding |= 1 << UInt64(cap) }
        }
        return ProcessCapabilities(effective: CapabilitySet(mask: sets.effective), permitted: CapabilitySet(mask: sets.permitted),
                                   inheritable: CapabilitySet(mask: sets.inheritable), bounding: CapabilitySet(mask: bounding))
    }

    /// Keeps only `keep` (those of it the process has): every other capability leaves the
    /// bounding, permitted and effective sets, the inheritable set is emptied (which clears the
    /// ambient set too), and no_new_privs is set, so that nothing this process or a child runs can
    /// gain a capability back. Call it while the process has a single thread.
    /// A set that is already that small is left alone: under systemd's CapabilityBoundingSet and
    /// SystemCallFilter=~@privileged, capset is refused even when it would change nothing.
    public static func restrict(to keep: CapabilitySet) throws(CapabilityError) {
        let threads = FileIO.list("/proc/self/task").count
        guard threads <= 1 else { throw .otherThreadsRunning(threads) }
        let now = try current()
        // Bounding first: dropping from it needs CAP_SETPCAP, which capset removes below.
        for c in now.bounding.members where !keep.contains(c) {
            let rc = cprocess_bounding_drop(c.number)
            guard rc == 0 else { throw .boundingDrop(c, errno: -rc) }
        }
        let wanted = cprocess_caps(effective: now.effective.intersection(keep).mask,
                                   permitted: now.permitted.intersection(keep).mask, inheritable: 0)
        if wanted.effective != now.effective.mask || wanted.permitted != now.permitted.mask || now.inheritable.mask != 0 {
            var sets = wanted
            let rc = cprocess_capset(&sets)
            guard rc == 0 else { throw .set(errno: -rc) }
        }
        let rc = cprocess_set_no_new_privs()
        guard rc == 0 else { throw .noNewPrivileges(errno: -rc) }
    }

    /// Whether no_new_privs is set (execve cannot grant privileges).
    public static var noNewPrivileges: Bool { cprocess_no_new_privs() == 1 }
}
