/// Milliseconds from `since` to `now`, zero if `since` is later (two threads read the clock in
/// either order; an unsigned subtraction would trap).
@inlinable
public func elapsedMs(_ now: UInt64, since: UInt64) -> UInt64 { now > since ? now - since : 0 }
