/// Tick marks for a time axis: a round step (1 s ... 1 day) that leaves room for the labels.
public enum TimeAxis {
    static let stepsMs: [UInt64] = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
        .map { $0 * 1000 }

    /// Tick times in [startMs, endMs] on multiples of the smallest step that gives at most
    /// `maxTicks` ticks.
    public static func ticks(startMs: UInt64, endMs: UInt64, maxTicks: Int) -> [UInt64] {
        let span = endMs > startMs ? endMs - startMs : 1
        let step = stepsMs.first { span / $0 < UInt64(max(1, maxTicks)) } ?? stepsMs.last!
        var t = (startMs + step - 1) / step * step
        var out: [UInt64] = []
        while t <= endMs {
            out.append(t)
            t += step
        }
        return out
    }

    /// The largest of 1, 2, 5 x 10^n at or above `v` (chart scales: 0 to that).
    public static func niceCeiling(_ v: Double) -> Double {
        guard v.isFinite, v > 0 else { return 1 }
        var p = 1.0
        while p * 10 <= v { p *= 10 }
        while p > v { p /= 10 }
        for m in [1.0, 2.0, 5.0, 10.0] where m * p >= v { return m * p }
        return 10 * p
    }
}
