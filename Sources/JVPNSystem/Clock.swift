import Glibc

/// Monotonic and wall clocks. The core never reads a clock; the daemon passes these values in.
public enum Clock {
    @inline(__always)
    public static func monotonicNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    @inline(__always)
    public static func monotonicMilliseconds() -> UInt64 { monotonicNanoseconds() / 1_000_000 }

    public static func wallNanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return UInt64(ts.tv_sec) &* 1_000_000_000 &+ UInt64(ts.tv_nsec)
    }

    public static func wallMilliseconds() -> UInt64 { wallNanoseconds() / 1_000_000 }
}
