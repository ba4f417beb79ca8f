// Who is behind a browser: a session cookie (a random token the database keeps only as its SHA-256),
// and a per-browser secret every form's CSRF token is derived from. Both cookies are Secure,
// HttpOnly and SameSite=Lax; browsers keep Secure cookies on http://localhost and 127.0.0.1, so
// the first run works without TLS.
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import MusterCore
import MusterRuntime
import Synchronization

/// What the web pages need beyond the API's settings.
public struct WebSettings: Sendable {
    /// Sessions last this long from sign-in (a school day and the evening).
    public var sessionLifetime: TimeInterval
    /// Emailed sign-in links work once, within this time.
    public var linkLifetime: TimeInterval
    /// The demonstration inbox's file: set, the inbox page exists and every page says it is a demonstration.
    public var demonstrationInbox: String?
    /// Sends one-time sign-in links by email; nil when no mail relay (or inbox) is configured.
    public var signInMail: (any SignInMailer)?
    /// Timers run this many times faster (`--demo-speed`); the pages say so.
    public var demoSpeed: Double?
    /// Sessions, sign-in links and attempt limits keep wall time, also when timers run faster.
    public var wallClock: any MusterClock
    /// The channels with a provider, for the coverage check on the coordinator's page; nil: not checked there.
    public var providers: Set<ChannelKind>?
    /// How long a live-update stream stays open before the browser reconnects.
    public var eventStreamLifetime: TimeInterval

    public init(sessionLifetime: TimeInterval = 12 * 3600, linkLifetime: TimeInterval = 15 * 60,
                demonstrationInbox: String? = nil, signInMail: (any SignInMailer)? = nil, demoSpeed: Double? = nil,
                wallClock: any MusterClock = SystemClock(), providers: Set<ChannelKind>? = nil, eventStreamLifetime: TimeInterval = 600) {
        self.providers = providers
        self.eventStreamLifetime = eventStreamLifetime
        self.demoSpeed = demoSpeed
        self.wallClock = wallClock
        self.sessionLifetime = sessionLifetime
        self.linkLifetime = linkLifetime
        self.demonstrationInbox = demonstrationInbox
        self.signInMail = signInMail
    }
}

/// Sends a one-time sign-in link to a person's email address.
public protocol SignInMailer: Sendable {
    func sendSignInLink(person: String, name: String, to address: String, link: String) async throws
}

enum WebCookie {
    static let session = "muster_session"
    static let browser = "muster_browser"

    static func make(_ name: String, _ value: String, maxAge: Int?) -> Cookie {
        Cookie(name: name, value: value, maxAge: maxAge, path: "/", secure: true, httpOnly: true, sameSite: .lax)
    }

    /// A cookie that tells the browser to forget one.
    static func clear(_ name: String) -> Cookie {
        Cookie(name: name, value: "", maxAge: 0, path: "/", secure: true, httpOnly: true, sameSite: .lax)
    }

    /// The CSRF token of a browser secret: forms carry it, and a cross-site page can read neither.
    static func csrfToken(_ browserSecret: String) -> String {
        Base64URL.encode(Array(SHA256.hash(data: Array("muster-csrf:\(browserSecret)".utf8))))
    }
}

/// Finds the account behind a session cookie, remembering answers for a few seconds; sign-out
/// forgets at once on this instance (others within `ttl`).
final class WebSessions: Sendable {
    private let accounts: AccountRecords
    private let ttl: TimeInterval
    private let cache = Mutex<[String: (account: UserAccount?, until: Date)]>([:])

    init(accounts: AccountRecords, ttl: TimeInterval = 5) {
        self.accounts = accounts
        self.ttl = ttl
    }

    func account(token: String, now: Date) async throws -> UserAccount? {
        let key = WebCookie.csrfToken(token)  // a one-way name for the cache: it holds no token
        if let hit = cache.withLock({ $0[key] }), hit.until > now { return hit.account }
        let account = try await accounts.sessionAccount(token: token, now: now)
        cache.withLock { entries in
            if entries.count > 10_000 { entries.removeAll() }
            entries[key] = (account, now.addingTimeInterval(ttl))
        }
        return account
    }

    func forget(token: String) {
        _ = cache.withLock { $0.removeValue(forKey: WebCookie.csrfToken(token)) }
    }

    func forgetAll() {
        cache.withLock { $0.removeAll() }
    }
}

/// Puts the signed-in account (if any) and the browser's secret in the context of every web page,
/// and refuses a form posted without this browser's CSRF token.
struct WebSessionMiddleware: RouterMiddleware {
    typealias Context = MusterRequestContext
    let sessions: WebSessions
    let clock: @Sendable () -> Date

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        var newSecret: String?
        if let secret = request.cookies[WebCookie.browser]?.value, secret.count >= 40, secret.count <= 100 {
            context.browserSecret = secret
        } else {
            let secret = AccountRecords.newToken()
            context.browserSecret = secret
            newSecret = secret
        }
        if let token = request.cookies[WebCookie.session]?.value, token.count <= 100,
           let account = try await sessions.account(token: token, now: clock()) {
            context.account = account
            context.sessionToken = token
            context.logger[metadataKey: "account"] = "\(account.id)"
        }
        if request.method == .post {
            // The form's token must be this browser's: a page on another site cannot read it. A browser
            // that arrives with no secret cookie cannot have a valid token either.
            guard newSecret == nil, let sent = try await FormBody.csrf(of: request, context: &context),
                  constantTimeEqual(sent, WebCookie.csrfToken(context.browserSecret)) else {
                return WebPage.render(.forbidden, "message", WebPage.message(
                    context, title: "This form has expired",
                    text: "For your safety the form could not be accepted. Go back, reload the page and send it again."))
            }
        }
        var response = try await next(request, context)
        if let newSecret {
            response.setCookie(WebCookie.make(WebCookie.browser, newSecret, maxAge: nil))
        }
        return response
    }
}

func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    guard x.count == y.count else { return false }
    var difference: UInt8 = 0
    for index in x.indices { difference |= x[index] ^ y[index] }
    return difference == 0
}

/// Token buckets for sign-in attempts, per account and per address: a guessing run slows to a
/// trickle while the person themselves can still try a few times. In memory: each instance counts
/// its own attempts.
final class SignInLimiter: Sendable {
    struct Rule {
        var burst: Double
        var perSecond: Double
    }

    private let account: Rule
    private let address: Rule
    private let buckets = Mutex<[String: (tokens: Double, at: Date)]>([:])

    init(account: Rule = Rule(burst: 5, perSecond: 1.0 / 60), address: Rule = Rule(burst: 20, perSecond: 1.0 / 15)) {
        self.account = account
        self.address = address
    }

    /// Takes one attempt for the account and the address; when either is spent, how long to wait.
    func attempt(account id: String, address: String?, now: Date) -> TimeInterval? {
        buckets.withLock { buckets in
            if buckets.count > 50_000 { buckets.removeAll() }
            var keys = [("account:" + id.lowercased(), self.account)]
            if let address { keys.append(("address:" + address, self.address)) }
            // Refill each bucket for the time passed; an attempt takes one token from every bucket, or none.
            let refilled = keys.map { key, rule in
                let previous = buckets[key] ?? (rule.burst, now)
                return (key, rule, min(rule.burst, previous.tokens + max(0, now.timeIntervalSince(previous.at)) * rule.perSecond))
            }
            let wait = refilled.map { _, rule, tokens in tokens >= 1 ? 0 : (1 - tokens) / rule.perSecond }.max() ?? 0
            for (key, _, tokens) in refilled { buckets[key] = (wait > 0 ? tokens : tokens - 1, now) }
            return wait > 0 ? wait.rounded(.up) : nil
        }
    }
}
