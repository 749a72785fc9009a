/// Groups time-ordered marks that would land within `binPx` pixels of each other into one mark,
/// so a picture of an hour with hundreds of switches stays readable: the group is drawn once with
/// its count, and its tooltip lists what it holds.
public enum TimelineBins {
    /// Indices of `times` (ascending), grouped: a group spans at most `binPx` pixels from its first
    /// member at `pxPerMs` pixels per millisecond.
    public static func group(_ times: [UInt64], pxPerMs: Double, binPx: Double) -> [[Int]] {
        var groups: [[Int]] = []
        var groupStart: UInt64 = 0
        for (i, t) in times.enumerated() {
            if let last = groups.indices.last, Double(t - min(t, groupStart)) * pxPerMs < binPx {
                groups[last].append(i)
            } else {
                groups.append([i])
                groupStart = t
            }
        }
        return groups
    }
}
