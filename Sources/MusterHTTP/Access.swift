// Who is calling and what they may do. Every request to the API carries a bearer token; the
// account it belongs to has one role, and the site-scoped roles act only at their sites.
import Foundation
import HTTPTypes
import Hummingbird
import MusterCore
import MusterRuntime
import Synchronization

/// The request context: the signed-in account, and where the request came from (for access entries).
public struct MusterRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var account: UserAccount?
    /// The client's address: the connection's, or behind a trusted proxy the one it forwarded.
    public var remoteAddress: String?
    /// Web pages: the browser's secret (its forms' CSRF tokens derive from it), the session token, and the posted form.
    var browserSecret = ""
    var sessionToken: String?
    var form: FormBody?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress?.ipAddress
    }

    /// The signed-in account; the auth middleware guarantees one on API routes.
    func requireAccount() throws(Problem) -> UserAccount {
        guard let account else { throw Problem.unauthenticated }
        return account
    }
}

/// What an endpoint asks of its caller.
enum Permission: String, CaseIterable {
    case report, read, acknowledge, escalate, completeTask, resolve, note, reopen, reassign, join, confirmFlag, readOnCall, readPlaybooks, reload, integrate, export, readMetrics
}

extension AccessRole {
    func allows(_ permission: Permission) -> Bool {
        switch permission {
        case .report: [.reporter, .responder, .coordinator, .admin].contains(self)
        case .read: ![.integration, .scrape].contains(self)
        case .acknowledge, .escalate, .completeTask, .resolve, .join, .confirmFlag: [.responder, .coordinator, .admin].contains(self)
        case .note: [.reporter, .responder, .coordinator, .admin].contains(self)
        case .reopen, .reassign: [.coordinator, .admin].contains(self)
        case .readOnCall, .readPlaybooks: ![.integration, .scrape].contains(self)
        case .reload: self == .admin
        case .integrate: self == .integration
        case .export: self == .auditor || self == .admin
        case .readMetrics: self == .scrape || self == .admin
        }
    }
}

extension UserAccount {
    func require(_ permission: Permission) throws(Problem) {
        guard role.allows(permission) else {
            throw Problem.forbidden("the \(role.rawValue) role may not \(permission.phrase)")
        }
    }

    /// Whether the account works at the site (roles that are not site-scoped work everywhere).
    func serves(_ site: SiteID) -> Bool {
        !role.isSiteScoped || sites.contains(site)
    }
}

extension UserAccount {
    /// Whether the account may complete a task: the roles that complete tasks may, except a task the
    /// reporter owes personally, which only that reporter completes, whatever their role (the engine
    /// refuses anyone else too).
    func mayComplete(_ task: TaskID, of state: IncidentState, playbook: Playbook?) -> Bool {
        let owedByReporter = playbook?.tasks.first { $0.id == task }?.owner == .reporter
        if owedByReporter, case .person = state.incident.reporter { return state.incident.reporter == actor }
        return role.allows(.completeTask)
    }
}

extension IncidentFilter {
    /// The filter narrowed to what `account` may list: its sites, and for a reporter what they reported.
    func limited(to account: UserAccount) -> IncidentFilter {
        var filter = self
        if account.role.isSiteScoped { filter.scope = Set(account.sites) }
        if account.role == .reporter { filter.reporter = account.actor }
        return filter
    }
}

extension Permission {
    var phrase: String {
        switch self {
        case .report: "raise incidents"
        case .read: "read incidents"
        case .acknowledge: "acknowledge incidents"
        case .escalate: "escalate incidents"
        case .completeTask: "complete tasks"
        case .resolve: "resolve incidents"
        case .note: "add notes"
        case .reopen: "reopen incidents"
        case .reassign: "reassign incidents"
        case .join: "join incidents"
        case .confirmFlag: "confirm flags"
        case .readOnCall: "read the on-call schedules"
        case .readPlaybooks: "read the playbooks"
        case .reload: "reload the playbooks and directory"
        case .integrate: "use the integration endpoints"
        case .export: "export incidents"
        case .readMetrics: "read the metrics"
        }
    }
}

/// Finds the account behind a token, remembering answers for a few seconds so that a burst of
/// requests costs one lookup (a revoked token stops working within `ttl`).
public final class Authenticator: Sendable {
    private let reads: IncidentReads
    private let ttl: TimeInterval
    /// By the token's hash, so the cache holds no token.
    private let cache = Mutex<[String: (account: UserAccount?, until: Date)]>([:])

    public init(reads: IncidentReads, ttl: TimeInterval = 5) {
        self.reads = reads
        self.ttl = ttl
    }

    /// The account of a request's `Authorization: Bearer` token; 401 without a valid one.
    func account(of request: Request, now: Date) async throws -> UserAccount {
        guard let header = request.headers[.authorization], header.count > 7, header.prefix(7).lowercased() == "bearer " else {
            throw Problem.unauthenticated
        }
        let token = header.dropFirst(7).trimmingCharacters(in: .whitespaces)
        guard let account = try await account(token: token, now: now) else {
            var problem = Problem.unauthenticated
            problem.detail = "the token is not valid (unknown or revoked)"
            throw problem
        }
        return account
    }

    public func account(token: String, now: Date) async throws -> UserAccount? {
        let hash = IncidentReads.tokenHash(token)
        if let hit = cache.withLock({ $0[hash] }), hit.until > now { return hit.account }
        let account = try await reads.account(tokenHash: hash)
        cache.withLock { entries in
            if entries.count > 10_000 { entries.removeAll() }
            entries[hash] = (account, now.addingTimeInterval(ttl))
        }
        return account
    }
}

/// Requires a valid bearer token on every route it wraps.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = MusterRequestContext
    let authenticator: Authenticator
    let clock: @Sendable () -> Date

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let account = try await authenticator.account(of: request, now: clock())
        var context = context
        context.account = account
        context.logger[metadataKey: "account"] = "\(account.id)"
        return try await next(request, context)
    }
}

/// Behind a reverse proxy every connection comes from the proxy: the client is the address the
/// proxy forwarded, read from the right of X-Forwarded-For past any trusted proxy. The header is
/// believed only from the proxies the configuration names; anyone else could write it.
struct ClientAddressMiddleware: RouterMiddleware {
    typealias Context = MusterRequestContext
    let trusted: Set<String>

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let hops = request.headers[values: Self.forwardedFor].flatMap { $0.split(separator: ",") }
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard let peer = context.remoteAddress, trusted.contains(peer), let client = hops.last(where: { !trusted.contains($0) }) ?? hops.first else {
            return try await next(request, context)
        }
        var context = context
        context.remoteAddress = client
        return try await next(request, context)
    }

    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!
}
