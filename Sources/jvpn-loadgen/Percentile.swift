/// Nearest-rank percentiles of a sample (what the benchmark prints as p50 / p99).
enum Percentile {
    /// The smallest value with at least `p` % of the sample at or below it; nil for no sample.
    static func of(_ values: [Double], _ p: Double) -> Double? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }
}
