import CUDP
import Glibc

public enum Processors {
    /// The CPUs this process may run on (its affinity mask: `taskset`, cpusets), at least 1.
    public static func available() -> Int {
        let n = Int(cprocess_cpu_count())
        return n > 0 ? n : max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
    }
}
