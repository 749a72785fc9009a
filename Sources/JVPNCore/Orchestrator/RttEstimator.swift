/// Smoothed round-trip time and its variation from probe samples, as TCP (RFC 6298) and QUIC
/// (RFC 9002, section 5.3) keep them. The probe timeout derived from them is how long an answer may
/// take on this path before its silence is suspicious.
public struct RttEstimator: Equatable, Sendable {
    /// Nil until the first sample: a path without one has no timeout to be late against.
    public private(set) var smoothedMs: Double?
    public private(set) var variationMs: Double = 0
    public private(set) var latestMs: Double = 0

    public init() {}

    public mutating func add(sampleMs: Double) {
        latestMs = sampleMs
        guard let smoothed = smoothedMs else {
            smoothedMs = sampleMs
            variationMs = sampleMs / 2
            return
        }
        variationMs = 0.75 * variationMs + 0.25 * abs(smoothed - sampleMs)
        smoothedMs = 0.875 * smoothed + 0.125 * sampleMs
    }

    /// srtt + max(4 rttvar, granularity) + the peer's reply delay; nil before any sample.
    public func probeTimeoutMs(granularityMs: Double, replyDelayMs: Double) -> Double? {
        smoothedMs.map { $0 + max(4 * variationMs, granularityMs) + replyDelayMs }
    }
}
