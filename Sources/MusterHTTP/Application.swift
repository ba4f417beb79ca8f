// The HTTP application: the API under /api/v1 (bearer tokens), the PagerDuty-compatible
// /v2/enqueue, and the operations endpoints (/metrics, /health/live, /health/ready).
import Foundation
import Hummingbird
import Logging
import MusterStore
import NIOCore

extension MusterServer {
    /// The router with every route and middleware.
    public func makeRouter() -> Router<MusterRequestContext> {
        let router = Router(context: MusterRequestContext.self)
        let routes = RouteTableBox()
        router.add(middleware: RequestIDMiddleware())
        router.add(middleware: LogRequestsMiddleware(.info, includeHeaders: .none))
        router.add(middleware: ProblemMiddleware(routes: routes))

        router.get("health/live") { _, _ in try json(["status": "ok"]) }
        router.get("health/ready") { _, _ in try await self.readiness() }
        router.get("metrics") { _, _ in
            let text = await self.metrics.render(store: self.store)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                            body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }
        router.get("api/v1/openapi.json") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: OpenAPIDocument.bytes)))
        }
        let api = router.group("api/v1").add(middleware: AuthMiddleware(authenticator: authenticator, clock: { [clock] in clock.now() }))
        addIncidentRoutes(to: api)
        addDirectoryRoutes(to: api)
        addIntegrationRoutes(api: api, root: router)
        routes.table = RouteTable(router.routes.map { ($0.path.description, $0.method.rawValue) })
        return router
    }

    public func makeApplication(host: String = "127.0.0.1", port: Int = 8080, logger: Logger = Logger(label: "muster.http"))
        -> some ApplicationProtocol {
        Application(router: makeRouter(), configuration: ApplicationConfiguration(address: .hostname(host, port: port), serverName: "Muster"),
                    logger: logger)
    }

    private func readiness() async throws -> Response {
        let version: (applied: Int, known: Int)
        do {
            version = try await store.schemaVersion()
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
}

/// The route table, filled once the router has all its routes (before the first request).
final class RouteTableBox: @unchecked Sendable {
    var table = RouteTable([])
}
