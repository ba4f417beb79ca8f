// The HTTP application: the API under /api/v1 (bearer tokens), the PagerDuty-compatible
// /v2/enqueue, the operations endpoints (/metrics, /health/live, /health/ready) and the audit log's
// public key and checkpoint (/audit/key, /audit/checkpoint).
import Foundation
import Hummingbird
import Logging
import MusterAudit
import MusterCore
import MusterPlaybooks
import NIOCore

extension MusterServer {
    /// The router with every route and middleware.
    public func makeRouter() -> Router<MusterRequestContext> {
        let router = Router(context: MusterRequestContext.self)
        let routes = RouteTableBox()
        router.add(middleware: ClientAddressMiddleware(trusted: trustedProxies))
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: RequestLogMiddleware())
        router.add(middleware: PeopleErrorPageMiddleware())
        router.add(middleware: ProblemMiddleware(routes: routes))

        router.get("health/live") { _, _ in try json(["status": "ok"]) }
        router.get("health/ready") { _, _ in try await self.readiness() }
        router.get("metrics") { request, _ in
            // Counts of incidents and pages say what is happening in a district: for Prometheus's token only.
            let account = try await self.bearerAccount(request)
            try account.require(.readMetrics)
            let text = await self.metrics.render(self.reads, now: self.clock.now())
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }
        // The transparency log's public parts, for witnesses and verifiers (docs/audit.md).
        router.get("audit/key") { _, _ in
            guard let key = self.auditVerifierKey else { throw Problem.notFound("this instance has no audit signing key configured") }
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: key + "\n")))
        }
        router.get("audit/checkpoint") { _, _ in
            let checkpoint: StoredCheckpoint?
            do { checkpoint = try await self.reads.latestCheckpoint() } catch { throw Problem.unavailable("the database did not answer; retry") }
            guard let checkpoint else { throw Problem.notFound("no checkpoint has been signed yet") }
            return Response(status: .ok, headers: [.contentType: "text/plain; charset=utf-8"], body: ResponseBody(byteBuffer: ByteBuffer(string: checkpoint.note)))
        }
        router.get("api/v1/openapi.json") { request, _ in
            // Anyone may read how the API works; the directory's ids (people, sites, flags) only with a token.
            let signedIn = (try? await self.bearerAccount(request)).map { $0.role != .scrape } ?? false
            let bytes = signedIn ? OpenAPIDocument.served(for: await self.catalog) : OpenAPIDocument.bytes
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
        }
        router.group("api/v1").add(middleware: AuthMiddleware(authenticator: authenticator, clock: { [clock] in clock.now() }))
            .addRoutes(incidentRoutes)
            .addRoutes(directoryRoutes)
            .addRoutes(complianceRoutes)
            .addRoutes(integrationRoutes)
        router.addRoutes(eventsAPIRoutes)
        router.addRoutes(acknowledgementRoutes)
        // The web pages: a session cookie instead of a token, and a CSRF token on every form.
        router.addRoutes(assetRoutes)
        router.group().add(middleware: WebSessionMiddleware(sessions: webSessions, clock: { [web] in web.wallClock.now() }))
            .addRoutes(signInRoutes)
            .addRoutes(incidentPages)
            .addRoutes(liveRoutes)
            .addRoutes(inboxRoutes)
            .addRoutes(auditorPages)
            .addRoutes(coordinatorPages)
            .addRoutes(adminPages)
        routes.table = RouteTable(router.routes.map { ($0.path.description, $0.method.rawValue) })
        return router
    }

    public func makeApplication(host: String = "127.0.0.1", port: Int = 8080, limits: ConnectionLimits = ConnectionLimits(),
                                logger: Logger = Logger(label: "muster.http")) -> some ApplicationProtocol {
        Application(router: makeRouter(), server: limits.http1(),
                    configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "Muster"), logger: logger)
    }

    private func readiness() async throws -> Response {
        let version: (applied: Int, known: Int)
        do {
            version = try await reads.schemaVersion()
        } catch {
            throw Problem.unavailable("the database is not reachable")
        }
        guard version.applied == version.known else {
            throw Problem.unavailable("the database is at schema version \(version.applied) of \(version.known): run `muster migrate`")
        }
        return try json(["status": "ready", "schema_version": "\(version.applied)"])
    }
}

/// The OpenAPI document (docs/openapi.json), compiled in so the binary serves it wherever it runs.
enum OpenAPIDocument {
    static let bytes: [UInt8] = {
        guard let url = Bundle.module.url(forResource: "openapi", withExtension: "json"), let data = try? Data(contentsOf: url) else {
            return Array(#"{"openapi":"3.1.0","info":{"title":"Muster","version":"missing"},"paths":{}}"#.utf8)
        }
        return Array(data)
    }()

    /// The document as this instance serves it: the identifiers of its loaded directory become enums,
    /// so a client (or a fuzzer) knows which incident types, sites, roles, flags and people exist.
    static func served(for catalog: Catalog) -> [UInt8] {
        guard var document = (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] else { return bytes }
        let directory = catalog.directory
        let types = directory.incidentTypes.map(\.id.rawValue).sorted()
        let sites = directory.sites.keys.map(\.rawValue).sorted()
        let roles = directory.roles.map(\.id.rawValue).sorted()
        let people = directory.people.keys.map(\.rawValue).sorted()
        let flags = Set(catalog.playbooks.playbooks.flatMap { $0.flags.keys.map(\.rawValue) }).sorted()
        func set(_ values: [String], at path: [String]) {
            document = setting(document, path: path) { var schema = $0; schema["enum"] = values; return schema }
        }
        let schemas = ["components", "schemas"]
        set(types, at: schemas + ["ReportRequest", "properties", "type"])
        set(sites, at: schemas + ["ReportRequest", "properties", "site"])
        set(flags, at: schemas + ["ReportRequest", "properties", "flags", "items"])
        set(people, at: schemas + ["ReassignRequest", "properties", "to"])
        if var paths = document["paths"] as? [String: Any] {
            for (path, names) in [("/api/v1/incidents", ["site": sites + [""], "type": types + [""]]),
                                  ("/api/v1/oncall", ["site": sites + [""], "role": roles + [""]])] {
                guard var item = paths[path] as? [String: Any], var get = item["get"] as? [String: Any],
                      let parameters = get["parameters"] as? [[String: Any]] else { continue }
                get["parameters"] = parameters.map { parameter in
                    guard let name = parameter["name"] as? String, let values = names[name], var schema = parameter["schema"] as? [String: Any] else {
                        return parameter
                    }
                    var parameter = parameter
                    schema["enum"] = values
                    parameter["schema"] = schema
                    return parameter
                }
                item["get"] = get
                paths[path] = item
            }
            document["paths"] = paths
        }
        return (try? Array(JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes]))) ?? bytes
    }

    /// `object` with the dictionary at `path` replaced by `change(it)`.
    private static func setting(_ object: [String: Any], path: [String], _ change: ([String: Any]) -> [String: Any]) -> [String: Any] {
        guard let key = path.first, let inner = object[key] as? [String: Any] else { return object }
        var copy = object
        copy[key] = path.count == 1 ? change(inner) : setting(inner, path: Array(path.dropFirst()), change)
        return copy
    }
}

/// The route table, filled once the router has all its routes (before the first request).
final class RouteTableBox: @unchecked Sendable {
    var table = RouteTable([])
}
