// When to try a failed delivery again: exponential back-off with full jitter, for retryable
// failures only, up to a number of attempts (pages: for as long as they matter).
import Foundation

public struct RetryPolicy: Sendable, Hashable {
    public var maxAttempts: Int
    public var base: TimeInterval
    public var cap: TimeInterval

    public init(maxAttempts: Int = 6, base: TimeInterval = 1, cap: TimeInterval = 60) {
        self.maxAttempts = maxAttempts
        self.base = base
        self.cap = cap
    }

    /// The delay before attempt `attempt + 1` (attempts counted from 1), or nil when no attempt is left.
    /// `untilCancelled`: the message is tried for as long as it matters (a page: until it is acknowledged
    /// or its incident closes, when the outbox cancels it), so only a failure no retry can cure ends it.
    /// `random` is a number in 0..<1 (injected, so tests are deterministic).
    public func delay(afterAttempt attempt: Int, failure: DeliveryFailure, untilCancelled: Bool = false, random: Double) -> TimeInterval? {
        guard failure.retryable, untilCancelled || attempt < maxAttempts else { return nil }
        let ceiling = min(cap, base * pow(2, Double(min(attempt, 32) - 1)))
        return max(0.05, ceiling * random)
    }
}
