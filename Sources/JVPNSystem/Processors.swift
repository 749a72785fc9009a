import CUDP
import Glibc

public enum Processors {
    /// The CPUs this process may use: its affinity mask (`taskset`, cpusets), lowered to its CPU
    /// quota (a container's `--cpus`: cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`) rounded up; at
    /// least 1.
    public static func available() -> Int {
        let n = Int(cprocess_cpu_count())
        let affinity = n > 0 ? n : max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let cgroups = (try? FileIO.readUTF8("/proc/self/cgroup", maxBytes: 1 << 16)).flatMap { $0 } ?? ""
        return max(1, min(affinity, quotaCores(cgroups: cgroups, read: { path in
            (try? FileIO.readUTF8(path, maxBytes: 4096)).flatMap { $0 }
        }) ?? affinity))
    }

    /// The lowest CPU quota on the way from this process's cgroups (the text of
    /// `/proc/self/cgroup`) up to the root, in whole CPUs rounded up; nil when none is set.
    /// `read` gives a file's text (nil when absent).
    static func quotaCores(cgroups: String, read: (String) -> String?) -> Int? {
        var lowest: Int?
        func consider(_ cores: Int?) {
            if let cores { lowest = min(lowest ?? cores, cores) }
        }
        for line in cgroups.split(separator: "\n") {
            let fields = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard fields.count == 3 else { continue }
            let controllers = fields[1].split(separator: ",")
            for directory in ancestors(String(fields[2])) {
                if fields[0] == "0" && controllers.isEmpty { // v2
                    consider(read("/sys/fs/cgroup\(directory)/cpu.max").flatMap(quotaCores(cpuMax:)))
                } else if controllers.contains("cpu") { // v1
                    let mount = "/sys/fs/cgroup/\(fields[1])\(directory)"
                    if let q = read("\(mount)/cpu.cfs_quota_us").flatMap(firstNumber),
                       let p = read("\(mount)/cpu.cfs_period_us").flatMap(firstNumber) {
                        consider(quotaCores(quota: q, period: p))
                    }
                }
            }
        }
        return lowest
    }

    /// `path` and each directory above it, up to "/".
    private static func ancestors(_ path: String) -> [String] {
        var out: [String] = []
        var p = path.hasPrefix("/") ? path : "/" + path
        while true {
            out.append(p == "/" ? "" : p)
            guard p != "/", let slash = p.lastIndex(of: "/") else { break }
            p = slash == p.startIndex ? "/" : String(p[..<slash])
        }
        return out
    }

    private static func firstNumber(_ text: String) -> Int64? {
        text.split(whereSeparator: \.isWhitespace).first.flatMap { Int64($0) }
    }

    /// cgroup v2 `cpu.max`: "max PERIOD" (no quota) or "QUOTA PERIOD".
    static func quotaCores(cpuMax text: String) -> Int? {
        let parts = text.split(whereSeparator: \.isWhitespace)
        guard parts.count == 2, let q = Int64(parts[0]), let p = Int64(parts[1]) else { return nil }
        return quotaCores(quota: q, period: p)
    }

    /// A quota of `quota` µs per `period` µs: the CPUs it fills, rounded up (nil: none, or -1).
    static func quotaCores(quota: Int64, period: Int64) -> Int? {
        guard quota > 0, period > 0 else { return nil }
        return Int((quota + period - 1) / period)
    }
}
