import CUDP
import Glibc

/// Whether the kernel may write a core dump of this process (and let other users ptrace it or
/// read its /proc memory files).
public enum CoreDumps {
    /// PR_SET_DUMPABLE 0: a crash leaves no core file with keys in it.
    public static func disable() throws(SystemError) {
        let rc = cprocess_set_dumpable(0)
        guard rc == 0 else { throw SystemError("prctl(PR_SET_DUMPABLE, 0)", negativeErrno: rc) }
    }

    public static var enabled: Bool { cprocess_dumpable() != 0 }
}
