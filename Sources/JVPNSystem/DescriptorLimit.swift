import Glibc

/// The process's limit on open descriptors. A gateway holds a socket per TCP connection (up to 8
/// per peer plus the unauthenticated ones), and the usual soft limit of 1,024 would be reached
/// with about a hundred peers on TCP; the hard limit is what the administrator allows.
public enum DescriptorLimit {
    /// Raises the soft limit to the hard one; returns the limit in force afterwards.
    @discardableResult
    public static func raiseToHard() throws(SystemError) -> UInt64 {
        var l = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &l) == 0 else { throw SystemError("getrlimit(RLIMIT_NOFILE)", errno: errno) }
        guard l.rlim_cur < l.rlim_max else { return UInt64(l.rlim_cur) }
        l.rlim_cur = l.rlim_max
        guard setrlimit(Int32(RLIMIT_NOFILE.rawValue), &l) == 0 else { throw SystemError("setrlimit(RLIMIT_NOFILE)", errno: errno) }
        return UInt64(l.rlim_cur)
    }
}
