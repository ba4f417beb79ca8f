// Rate limits that never silence a person. An integration key over its budget is answered 429 with
// Retry-After, as PagerDuty answers a flood on /v2/enqueue: a leaked key cannot page the district as
// often as it likes. A person's report is never refused for rate: past the budget, that account's
// reports are still taken, but grouped into one incident per site and type (paged once), and the
// district's admins see it on their page, in the log and in a metric.
import Foundation
import MusterCore
import MusterRuntime
import Synchronization

/// A token bucket's refill and size: `perMinute` requests a minute on average, `burst` at once.
public struct RateLimit: Sendable, Hashable {
    public var perMinute: Double
    public var burst: Double

    public init(perMinute: Double, burst: Double) {
        self.perMinute = perMinute
        self.burst = burst
    }
}

/// The `rate_limits` section of the configuration.
public struct RateLimitSettings: Sendable, Hashable {
    /// Per integration key: PagerDuty's own budget for one routing key is 120 events a minute.
    public var integration = RateLimit(perMinute: 120, burst: 120)
    /// Per person's account (token or web session): a person raising more than this is almost surely
    /// scripted or compromised, but every report is still taken.
    public var account = RateLimit(perMinute: 20, burst: 20)
    /// How long an over-budget account's reports keep joining the incident the first of them opened.
    public var groupWithin = TimeSpan.minutes(30)

    public init() {}
}

/// Token buckets by key (an account id), on the service's clock.
final class TokenBuckets: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: Date
    }

    private let limit: RateLimit
    private let buckets = Mutex<[String: Bucket]>([:])

    init(_ limit: RateLimit) {
        self.limit = limit
    }

    /// Takes one token for `key`: nil when there was one, else the seconds until there will be.
    func take(_ key: String, now: Date) -> TimeInterval? {
        buckets.withLock { buckets in
            var bucket = buckets[key] ?? Bucket(tokens: limit.burst, updated: now)
            let elapsed = max(0, now.timeIntervalSince(bucket.updated))
            bucket.tokens = min(limit.burst, bucket.tokens + elapsed * limit.perMinute / 60)
            bucket.updated = now
            defer { buckets[key] = bucket }
            guard bucket.tokens >= 1 else { return (1 - bucket.tokens) * 60 / max(limit.perMinute, 0.001) }
            bucket.tokens -= 1
            return nil
        }
    }
}

/// The limits in force, and the accounts that went over their report budget (for the admin page).
final class RateLimiter: Sendable {
    let settings: RateLimitSettings
    private let integrations: TokenBuckets
    private let accounts: TokenBuckets
    private let over = Mutex<[String: Date]>([:])

    init(_ settings: RateLimitSettings) {
        self.settings = settings
        integrations = TokenBuckets(settings.integration)
        accounts = TokenBuckets(settings.account)
    }

    /// Refuses an integration over its budget: 429 with Retry-After.
    func admitIntegration(_ account: UserAccount, now: Date) throws(Problem) {
        guard let wait = integrations.take(account.id, now: now) else { return }
        let seconds = Int(wait.rounded(.up))
        throw Problem(.tooManyRequests, "rate-limited", "Too many requests",
                      detail: "integration key '\(account.id)' is over its budget of \(Int(settings.integration.perMinute)) events a minute; retry in \(seconds) s",
                      headers: [.retryAfter: String(max(1, seconds))])
    }

    /// How a person's report is taken: as it is, or, past the account's budget, grouped with that
    /// account's other reports at the same site and of the same type.
    func grouping(for report: Report, by account: UserAccount, now: Date) -> ReportGrouping? {
        guard accounts.take(account.id, now: now) != nil else { return nil }
        over.withLock { $0[account.id] = now }
        // A drill never joins a real incident, over budget or not.
        return ReportGrouping(key: "over-budget:\(account.id):\(report.site.rawValue):\(report.type.rawValue)" + (report.drill ? ":drill" : ""),
                              within: settings.groupWithin)
    }

    /// The accounts that went over their report budget, and when last; the last day's only.
    func accountsOverBudget(now: Date) -> [(account: String, last: Date)] {
        over.withLock { over in
            over = over.filter { now.timeIntervalSince($0.value) < 86_400 }
            return over.map { ($0.key, $0.value) }.sorted { $0.last > $1.last }
        }
    }
}
