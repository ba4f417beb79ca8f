// The parts every route uses: the runtime (every change goes through it; its plain reads), the metrics,
// the clock, and how to reload the playbooks.
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MusterCore
import MusterPlaybooks
import MusterRuntime
import NIOCore

public final class MusterServer: Sendable {
    public let runtime: Runtime
    /// The plain reads the runtime hands the service.
    let reads: IncidentReads
    public let metrics: MusterMetrics
    public let clock: any MusterClock
    public let authenticator: Authenticator
    /// The folder the playbooks and directory.yaml are reloaded from; nil when they came from elsewhere.
    public let playbookFolder: String?
    /// Checks a reloaded set before it is used (its contact points have providers); errors refuse it.
    let checkCatalog: @Sendable (LoadResult) -> [Diagnostic]
    public let integrations: IntegrationSettings
    /// The audit log's verifier key, published at /audit/key.
    public let auditVerifierKey: String?
    /// Acknowledgement by link, SMS reply and voice key press.
    public let acknowledgement: AcknowledgementSettings
    /// The web pages: sessions, sign-in links, the demonstration inbox.
    public let web: WebSettings
    /// Reverse proxies whose X-Forwarded-For names the client (for access entries and attempt limits).
    public let trustedProxies: Set<String>
    let webSessions: WebSessions
    let signInLimiter = SignInLimiter()
    let rateLimiter: RateLimiter
    let logger: Logger

    public init(runtime: Runtime, metrics: MusterMetrics, clock: any MusterClock, playbookFolder: String?,
                integrations: IntegrationSettings = IntegrationSettings(), auditVerifierKey: String? = nil,
                acknowledgement: AcknowledgementSettings = AcknowledgementSettings(links: nil, publicURL: "http://127.0.0.1:8080"),
                checkCatalog: @escaping @Sendable (LoadResult) -> [Diagnostic] = { _ in [] },
                web: WebSettings = WebSettings(), trustedProxies: Set<String> = [], rateLimits: RateLimitSettings = RateLimitSettings(),
                logger: Logger = Logger(label: "muster.http")) {
        rateLimiter = RateLimiter(rateLimits)
        self.web = web
        self.trustedProxies = trustedProxies
        self.webSessions = WebSessions(accounts: runtime.accounts)
        self.checkCatalog = checkCatalog
        self.auditVerifierKey = auditVerifierKey
        self.acknowledgement = acknowledgement
        self.runtime = runtime
        reads = runtime.reads
        self.metrics = metrics
        self.clock = clock
        self.authenticator = Authenticator(reads: runtime.reads)
        self.playbookFolder = playbookFolder
        self.integrations = integrations
        self.logger = logger
    }

    var catalog: Catalog {
        get async { await runtime.committer.currentCatalog }
    }

    /// Loads the playbook folder again; an invalid set changes nothing and its diagnostics are returned.
    public func reloadPlaybooks() async -> Result<Catalog, ReloadFailure> {
        guard let folder = playbookFolder else { return .failure(ReloadFailure(diagnostics: [], reason: "the service was not started from a playbook folder")) }
        let loaded = PlaybookLoader.load(folder: URL(fileURLWithPath: folder), displayPath: folder)
        guard let catalog = loaded.catalog else {
            return .failure(ReloadFailure(diagnostics: loaded.diagnostics.errors, reason: "the new playbooks or directory have errors; the loaded set is unchanged"))
        }
        let refused = checkCatalog(loaded)
        guard refused.isEmpty else {
            return .failure(ReloadFailure(diagnostics: refused, reason: "the new directory has contact points no provider serves; the loaded set is unchanged"))
        }
        await runtime.reload(catalog)
        do {
            try await runtime.keepPlaybooks(loaded.kept)
        } catch {
            // In use all the same: this instance keeps the versions in memory; only a restart would lose them.
            logger.error("the reloaded playbook files were not kept in the database", metadata: ["error": "\(error)"])
        }
        logger.info("playbooks reloaded", metadata: ["playbooks": "\(catalog.playbooks.playbooks.count)"])
        return .success(catalog)
    }

    /// Finds an incident by id or number, as the caller may see it; anything else is "not found",
    /// so the API never tells who is outside their scope which incidents exist.
    func visibleIncident(_ text: String, account: UserAccount) async throws -> IncidentState {
        // Incident ids are UUIDs (or numbers): anything else names no incident, and never reaches the database.
        let id: IncidentID?
        if let number = Int(text) {
            id = try await reads.incidentID(number: number)
        } else if UUID(uuidString: text) != nil {
            id = IncidentID(text.lowercased())
        } else {
            id = nil
        }
        guard let id, let state = try await reads.incident(id), account.serves(state.incident.site) else {
            throw Problem.notFound("no incident '\(text)'")
        }
        if account.role == .reporter {
            let reports = try await reads.reports(id)
            guard reports.contains(where: { $0.reporter == account.actor }) else { throw Problem.notFound("no incident '\(text)'") }
        }
        return state
    }

    /// The account behind the request's bearer token (401 without a valid one).
    func bearerAccount(_ request: Request) async throws -> UserAccount {
        try await authenticator.account(of: request, now: clock.now())
    }

    /// How a person's report is taken: past their account's budget it is grouped with their other reports
    /// at the site and of the type (one incident, paged once), and the admins are told.
    func intake(_ report: Report, by account: UserAccount, idempotencyKey: String?, source: String) -> ReportIntake {
        let grouping = rateLimiter.grouping(for: report, by: account, now: clock.now())
        if grouping != nil {
            metrics.reportOverBudget(source: source)
            logger.error("reports from an account are over their budget: taken and grouped into one incident per site and type",
                         metadata: ["account": "\(account.id)", "site": "\(report.site.rawValue)", "type": "\(report.type.rawValue)"])
        }
        return ReportIntake(report: report, idempotencyKey: idempotencyKey, grouping: grouping)
    }

    /// Commits an event and returns the incident's state as the commit left it.
    func apply(_ event: IncidentEvent, to id: IncidentID) async throws -> IncidentState {
        switch try await runtime.apply(event, to: id) {
        case .failure(let error): throw Problem.from(error)
        case .success(let committed): return committed.state
        }
    }
}

public struct ReloadFailure: Error, Sendable {
    public var diagnostics: [Diagnostic]
    public var reason: String
}

/// A JSON response.
func json(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws -> Response {
    let data = try APIJSON.encoder.encode(value)
    var fields = headers
    fields[.contentType] = "application/json"
    return Response(status: status, headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: data)))
}

/// Turns every error into a problem document: store errors by kind, Hummingbird's own errors
/// (unknown route, wrong method) with their status, anything unexpected as a 500 that is logged.
struct ProblemMiddleware<Context: RequestContext>: RouterMiddleware {
    let routes: RouteTableBox

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let problem as Problem {
            throw problem
        } catch let error as StoreError {
            throw Problem.from(error)
        } catch let error as HTTPError where error.status == .notFound && !routes.table.methods(for: request.uri.path).isEmpty {
            // The path exists, the method does not: 405 with the methods it has.
            let allowed = routes.table.methods(for: request.uri.path).sorted().joined(separator: ", ")
            throw Problem(.methodNotAllowed, "method-not-allowed", "Method not allowed",
                          detail: "\(request.method) is not allowed on \(request.uri.path); allowed: \(allowed)", headers: [.allow: allowed])
        } catch let error as HTTPError {
            throw Problem(error.status, error.status == .notFound ? "not-found" : "http-\(error.status.code)", error.status.reasonPhrase,
                          detail: error.body ?? (error.status == .notFound ? "no such endpoint: \(request.method) \(request.uri.path)" : error.status.reasonPhrase),
                          headers: error.headers)
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            throw Problem(.internalServerError, "internal", "Internal error", detail: "the server failed; the request id is \(context.id)")
        }
    }
}

/// Echoes the request id so a caller can quote it, and logs each request without personal data.
struct RequestIDMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            var response = try await next(request, context)
            response.headers[.requestID] = context.id
            return response
        } catch let error as HTTPResponseError {
            var response = try error.response(from: request, context: context)
            response.headers[.requestID] = context.id
            return response
        }
    }
}

/// Logs each request's method and path, with every acknowledgement token left out: a token in a
/// log line acts as the person it was sent to for as long as it is valid (the link's path segment
/// after /ack/, and the `t` of the voice call's key-press URL). Headers are never logged.
struct RequestLogMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        context.logger.info("Request", metadata: ["hb.request.path": .string(Self.redacted(path: request.uri.path, query: request.uri.query)),
                                                  "hb.request.method": .string(request.method.rawValue)])
        return try await next(request, context)
    }

    static func redacted(path: String, query: String?) -> String {
        var segments = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for index in segments.indices.dropFirst() where segments[index - 1] == "ack" && !segments[index].isEmpty {
            segments[index] = "[token]"
        }
        var text = segments.joined(separator: "/")
        guard let query, !query.isEmpty else { return text }
        let pairs: [String] = query.split(separator: "&", omittingEmptySubsequences: false).map { pair -> String in
            pair.split(separator: "=", maxSplits: 1).first == "t" ? "t=[token]" : String(pair)
        }
        text += "?" + pairs.joined(separator: "&")
        return text
    }
}

extension HTTPField.Name {
    static let requestID = Self("X-Request-Id")!
    static let idempotencyKey = Self("Idempotency-Key")!
    static let idempotentReplayed = Self("Idempotent-Replayed")!
}

/// The router's paths and their methods, to tell "no such path" (404) from "no such method" (405).
struct RouteTable: Sendable {
    private let routes: [(segments: [Substring], method: String)]

    init(_ routes: [(path: String, method: String)]) {
        self.routes = routes.map { (($0.path.split(separator: "/")), $0.method) }
    }

    func methods(for path: String) -> Set<String> {
        let parts = path.split(separator: "/")
        return Set(routes.filter { route in
            route.segments.count == parts.count && zip(route.segments, parts).allSatisfy { $0.hasPrefix(":") || $0.hasPrefix("{") || $0 == $1 }
        }.map(\.method))
    }
}
