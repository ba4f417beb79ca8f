// The circuit-breaker stage, one breaker per provider (an SMTP relay, the SMS provider, a webhook
// host): after `threshold` consecutive retryable failures the circuit opens and sends fail at once
// for `cooldown`, so a dead provider costs no timeouts and the fallback contact point is tried
// sooner; then one trial send is let through (half-open), and its outcome closes or reopens it.
import Foundation
import Synchronization

public final class CircuitBreakers: Sendable {
    public enum Phase: Sendable, Hashable {
        case closed
        case open(until: Date)
        /// A trial send went out at `since`; another is let through if it has not answered within the cooldown.
        case halfOpen(since: Date)
    }

    private struct Breaker {
        var phase = Phase.closed
        var failures = 0
    }

    private let threshold: Int
    private let cooldown: TimeInterval
    private let trialWait: TimeInterval
    private let breakers = Mutex([String: Breaker]())

    public init(threshold: Int = 5, cooldown: TimeInterval = 30, trialWait: TimeInterval = 2) {
        self.threshold = max(1, threshold)
        self.cooldown = cooldown
        self.trialWait = trialWait
    }

    /// The provider asked every sender to wait (a `429` with Retry-After): nothing is sent to it
    /// before `until`, and the wait counts as no failure.
    public func hold(_ provider: String, until: Date) {
        breakers.withLock { breakers in
            var breaker = breakers[provider] ?? Breaker()
            if case .open(let current) = breaker.phase, current >= until { return }
            breaker.phase = .open(until: until)
            breakers[provider] = breaker
        }
    }

    /// Whether a send to `provider` may go ahead now; nil when it may, else when the circuit closes again.
    public func admit(_ provider: String, now: Date) -> Date? {
        breakers.withLock { breakers in
            var breaker = breakers[provider] ?? Breaker()
            defer { breakers[provider] = breaker }
            switch breaker.phase {
            case .closed: return nil
            case .halfOpen(let since):
                // One trial at a time; the others look again soon, so they follow a trial that succeeds.
                guard now >= since.addingTimeInterval(cooldown) else { return min(since.addingTimeInterval(cooldown), now.addingTimeInterval(trialWait)) }
                breaker.phase = .halfOpen(since: now)
                return nil
            case .open(let until):
                guard now >= until else { return until }
                breaker.phase = .halfOpen(since: now)
                return nil
            }
        }
    }

    /// Records a send's outcome; only failures a retry could cure count against the provider. True
    /// when this outcome opened the circuit.
    @discardableResult
    public func record(_ provider: String, succeeded: Bool, countsAgainst: Bool, now: Date) -> Bool {
        breakers.withLock { breakers in
            var breaker = breakers[provider] ?? Breaker()
            defer { breakers[provider] = breaker }
            if succeeded || !countsAgainst {
                // A refusal of one message (a bad address) says the provider is up.
                breaker = Breaker()
                return false
            }
            breaker.failures += 1
            let trialFailed: Bool = if case .halfOpen = breaker.phase { true } else { false }
            if trialFailed || breaker.failures >= threshold {
                let wasClosed = breaker.phase == .closed
                breaker.phase = .open(until: now.addingTimeInterval(cooldown))
                return wasClosed
            }
            return false
        }
    }

    public func phase(_ provider: String) -> Phase {
        breakers.withLock { $0[provider]?.phase ?? .closed }
    }
}
