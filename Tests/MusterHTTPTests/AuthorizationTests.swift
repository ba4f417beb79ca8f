// Every role against every endpoint, on an incident at the account's own site and at another
// site. The expected table is written out by hand from the access rules (docs/api.md), not
// computed from the code under test.
import Foundation
import HTTPTypes
import HummingbirdTesting
import MusterCore
import MusterStore
import MusterTestSupport
import NIOCore
import Testing

/// What each role gets from an endpoint: (own site, other site). "own" for a reporter means an
/// incident they reported.
private let expected: [String: [String: (own: Int, other: Int)]] = [
    "create": ["reporter-lincoln": (201, 403), "responder-lincoln": (201, 403), "coordinator-lincoln": (201, 403),
               "auditor": (403, 403), "admin": (201, 201), "monitoring": (403, 403), "prometheus": (403, 403)],
    "list": ["reporter-lincoln": (200, 200), "responder-lincoln": (200, 200), "coordinator-lincoln": (200, 200),
             "auditor": (200, 200), "admin": (200, 200), "monitoring": (403, 403), "prometheus": (403, 403)],
    "detail": ["reporter-lincoln": (200, 404), "responder-lincoln": (200, 404), "coordinator-lincoln": (200, 404),
               "auditor": (200, 200), "admin": (200, 200), "monitoring": (403, 403), "prometheus": (403, 403)],
    "acknowledge": ["reporter-lincoln": (403, 403), "responder-lincoln": (200, 404), "coordinator-lincoln": (200, 404),
                    "auditor": (403, 403), "admin": (200, 200), "monitoring": (403, 403), "prometheus": (403, 403)],
    "resolve": ["reporter-lincoln": (403, 403), "responder-lincoln": (200, 404), "coordinator-lincoln": (200, 404),
                "auditor": (403, 403), "admin": (200, 200), "monitoring": (403, 403), "prometheus": (403, 403)],
    "escalate": ["reporter-lincoln": (403, 403), "responder-lincoln": (200, 404), "coordinator-lincoln": (200, 404),
                 "auditor": (403, 403), "admin": (200, 200), "monitoring": (403, 403), "prometheus": (403, 403)],
    "task": ["reporter-lincoln": (403, 403), "responder-lincoln": (200, 404), "coordinator-lincoln": (200, 404),
             "auditor": (403, 403), "admin": (200, 200), "monitoring": (403, 403), "prometheus": (403, 403)],
    "notes": ["reporter-lincoln": (200, 404), "responder-lincoln": (200, 404), "coordinator-lincoln": (200, 404),
              "auditor": (403, 403), "admin": (200, 200), "monitoring": (403, 403), "prometheus": (403, 403)],
    "reassign": ["reporter-lincoln": (403, 403), "responder-lincoln": (403, 403), "coordinator-lincoln": (200, 404),
                 "auditor": (403, 403), "admin": (200, 200), "monitoring": (403, 403), "prometheus": (403, 403)],
    "flag": ["reporter-lincoln": (403, 403), "responder-lincoln": (200, 404), "coordinator-lincoln": (200, 404),
             "auditor": (403, 403), "admin": (200, 200), "monitoring": (403, 403), "prometheus": (403, 403)],
    "join": ["reporter-lincoln": (403, 403), "responder-lincoln": (200, 404), "coordinator-lincoln": (200, 404),
             "auditor": (403, 403), "admin": (200, 200), "monitoring": (403, 403), "prometheus": (403, 403)],
    "reopen": ["reporter-lincoln": (403, 403), "responder-lincoln": (403, 403), "coordinator-lincoln": (200, 404),
               "auditor": (403, 403), "admin": (200, 200), "monitoring": (403, 403), "prometheus": (403, 403)],
    "oncall": ["reporter-lincoln": (200, 403), "responder-lincoln": (200, 403), "coordinator-lincoln": (200, 403),
               "auditor": (200, 200), "admin": (200, 200), "monitoring": (403, 403), "prometheus": (403, 403)],
    "playbooks": ["reporter-lincoln": (200, 200), "responder-lincoln": (200, 200), "coordinator-lincoln": (200, 200),
                  "auditor": (200, 200), "admin": (200, 200), "monitoring": (403, 403), "prometheus": (403, 403)],
    "reload": ["reporter-lincoln": (403, 403), "responder-lincoln": (403, 403), "coordinator-lincoln": (403, 403),
               "auditor": (403, 403), "admin": (200, 200), "monitoring": (403, 403), "prometheus": (403, 403)],
    "alertmanager": ["reporter-lincoln": (403, 403), "responder-lincoln": (403, 403), "coordinator-lincoln": (403, 403),
                     "auditor": (403, 403), "admin": (403, 403), "monitoring": (202, 202), "prometheus": (403, 403)],
]

@Suite("Authorisation", .serialized)
struct AuthorizationTests {
    @Test("every role x every endpoint x own site and another site", arguments: Backend.allCases)
    func matrix(_ backend: Backend) async throws {
        try await withService(backend) { harness, client in
            var subject = 0
            /// A fresh incident: at lincoln-high reported by the Lincoln reporter, or at Washington by the admin;
            /// resolved first when the endpoint needs that.
            func incident(own: Bool, resolved: Bool) async throws -> String {
                subject += 1
                let response = try await client.call(.post, "/api/v1/incidents", headers: harness.auth(own ? "reporter-lincoln" : "admin"),
                                                     json: reportJSON(site: own ? "lincoln-high" : "washington-elementary", subject: "m-\(subject)"))
                let id = try #require((response.object["incident"] as? [String: Any])?["id"] as? String)
                if resolved {
                    let done = try await client.call(.post, "/api/v1/incidents/\(id)/resolve", headers: harness.auth("admin"), json: #"{"outcome":"handled-at-school"}"#)
                    #expect(done.status == .ok)
                }
                return id
            }
            let alert = #"{"version":"4","status":"firing","receiver":"muster","groupLabels":{},"commonLabels":{},"commonAnnotations":{},"externalURL":"http://am","groupKey":"{}:{}","truncatedAlerts":0,"alerts":[{"status":"firing","labels":{"alertname":"PanicButton","muster_type":"medical-emergency","site":"SITE","severity":"critical"},"annotations":{"summary":"Panic button pressed"},"startsAt":"2026-11-23T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://x","fingerprint":"FP"}]}"#
            var failures: [String] = []
            for (endpoint, roles) in expected.sorted(by: { $0.key < $1.key }) {
                for (account, statuses) in roles.sorted(by: { $0.key < $1.key }) {
                    for own in [true, false] {
                        let want = own ? statuses.own : statuses.other
                        let site = own ? "lincoln-high" : "washington-elementary"
                        let response: TestResponse
                        let headers = harness.auth(account)
                        switch endpoint {
                        case "create":
                            subject += 1
                            response = try await client.call(.post, "/api/v1/incidents", headers: headers, json: reportJSON(site: site, subject: "c-\(subject)"))
                        case "list":
                            response = try await client.call(.get, "/api/v1/incidents?site=\(site)", headers: headers)
                        case "detail":
                            response = try await client.call(.get, "/api/v1/incidents/\(try await incident(own: own, resolved: false))", headers: headers)
                        case "acknowledge", "escalate":
                            response = try await client.call(.post, "/api/v1/incidents/\(try await incident(own: own, resolved: false))/\(endpoint)", headers: headers)
                        case "resolve":
                            response = try await client.call(.post, "/api/v1/incidents/\(try await incident(own: own, resolved: false))/resolve", headers: headers,
                                                             json: #"{"outcome":"handled-at-school"}"#)
                        case "task":
                            response = try await client.call(.post, "/api/v1/incidents/\(try await incident(own: own, resolved: false))/tasks/supervision/complete",
                                                             headers: headers)
                        case "notes":
                            response = try await client.call(.post, "/api/v1/incidents/\(try await incident(own: own, resolved: false))/notes", headers: headers,
                                                             json: #"{"text":"checked in"}"#)
                        case "reassign":
                            response = try await client.call(.post, "/api/v1/incidents/\(try await incident(own: own, resolved: false))/reassign", headers: headers,
                                                             json: #"{"to":"dchen"}"#)
                        case "flag":
                            response = try await client.call(.post, "/api/v1/incidents/\(try await incident(own: own, resolved: false))/flags/guardian-contact-unsafe/confirm",
                                                             headers: headers)
                        case "join":
                            let target = try await incident(own: own, resolved: false)
                            let number = try #require(try await harness.store.incident(IncidentID(target))?.incident.number)
                            response = try await client.call(.post, "/api/v1/incidents/\(try await incident(own: own, resolved: false))/join", headers: headers,
                                                             json: #"{"into":\#(number)}"#)
                        case "reopen":
                            response = try await client.call(.post, "/api/v1/incidents/\(try await incident(own: own, resolved: true))/reopen", headers: headers)
                        case "oncall":
                            response = try await client.call(.get, "/api/v1/oncall?site=\(site)", headers: headers)
                        case "playbooks":
                            response = try await client.call(.get, "/api/v1/playbooks", headers: headers)
                        case "reload":
                            response = try await client.call(.post, "/api/v1/playbooks/reload", headers: headers)
                        case "alertmanager":
                            subject += 1
                            response = try await client.call(.post, "/api/v1/integrations/alertmanager", headers: headers,
                                                             json: alert.replacingOccurrences(of: "SITE", with: site).replacingOccurrences(of: "FP", with: "fp\(subject)"))
                        default:
                            Issue.record("no request for \(endpoint)")
                            continue
                        }
                        if Int(response.status.code) != want {
                            failures.append("\(endpoint) as \(account) at \(own ? "own" : "other") site: \(response.status.code), expected \(want): \(response.text.prefix(160))")
                        }
                    }
                }
            }
            #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")

            // Without a token, or with a revoked one, nothing but health, metrics and the document.
            for (method, uri) in [(HTTPRequest.Method.get, "/api/v1/incidents"), (.post, "/api/v1/incidents"), (.get, "/api/v1/oncall"),
                                  (.get, "/api/v1/playbooks"), (.post, "/api/v1/integrations/alertmanager")] {
                let response = try await client.call(method, uri, json: "{}")
                #expect(response.status == .unauthorized, "\(uri)")
                #expect(response.headers[.wwwAuthenticate] == #"Bearer realm="muster""#)
            }
            let bogus = try await client.call(.get, "/api/v1/incidents", headers: [.authorization: "Bearer mst_not-a-token"])
            #expect(bogus.status == .unauthorized)
        }
    }

    @Test("a revoked token stops working", arguments: [Backend.sqlite])
    func revocation(_ backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let token = APIToken.generate()
            let id = APIToken.generateID()
            try await harness.store.addToken(id: id, user: "auditor", label: "short-lived", hash: APIToken.hash(token), at: Date())
            let before = try await client.call(.get, "/api/v1/playbooks", headers: [.authorization: "Bearer \(token)"])
            #expect(before.status == .ok)
            #expect(try await harness.store.revokeToken(id: id, at: Date()))
            #expect(try await harness.store.account(tokenHash: APIToken.hash(token)) == nil)
            // Tokens are remembered for 5 s at most.
            let refused = await eventually(7) {
                (try? await client.call(.get, "/api/v1/playbooks", headers: [.authorization: "Bearer \(token)"]).status) == .unauthorized
            }
            #expect(refused)
        }
    }
}

@Suite("Without credentials")
struct NoCredentialsTests {
    /// The routes that answer a caller with no token and no session, and why that is safe.
    static let publicRoutes: Set<String> = [
        "GET /health/live", "GET /health/ready",            // liveness and readiness, no data
        "GET /audit/key", "GET /audit/checkpoint",          // the transparency log's public parts (404 before the first checkpoint)
        "GET /api/v1/openapi.json",                         // how the API works, without the directory's ids
        "GET /sign-in", "GET /sign-in/link/{token}",        // the sign-in form; a link's page is a button, nothing more
        "GET /assets/muster.css", "GET /assets/muster.js",
    ]

    @Test("every route, called with no token and no session, answers nothing but the public routes; the served document names nobody")
    func walk() async throws {
        try await withService(.sqlite) { harness, client in
            var answered: [String] = []
            var table: [String] = []
            for route in harness.server.makeRouter().routes {
                let template = "/" + route.path.description.split(separator: "/").map { part in
                    part.hasPrefix(":") ? "{\(part.dropFirst())}" : String(part)
                }.joined(separator: "/")
                let uri = "/" + route.path.description.split(separator: "/").map { $0.hasPrefix(":") || $0.hasPrefix("{") ? "1" : String($0) }.joined(separator: "/")
                let name = "\(route.method.rawValue) \(template == "/" ? "/" : template)"
                let response: TestResponse
                do {
                    // An empty body, not none: the test client sends no length for a POST without one.
                    response = try await client.execute(uri: uri, method: route.method, headers: [:], body: route.method == .post ? ByteBuffer() : nil)
                } catch {
                    Issue.record("\(name): \(error)")
                    continue
                }
                let code = Int(response.status.code)
                table.append("\(name) → \(code)" + (response.headers[.location].map { " \($0)" } ?? ""))
                let refused = [400, 401, 403, 404, 405, 410].contains(code) || (code == 303 && response.headers[.location]?.hasPrefix("/sign-in") == true)
                if !refused { answered.append(name) }
            }
            let unexpected = Set(answered).subtracting(Self.publicRoutes)
            #expect(unexpected.isEmpty, "answered without credentials: \(unexpected.sorted())\n\(table.sorted().joined(separator: "\n"))")
            // The OpenAPI document, read without a token, carries no one's id, no site and no flag.
            let document = try await client.execute(uri: "/api/v1/openapi.json", method: .get, headers: [:], body: nil).text
            for id in ["aokafor", "lincoln-high", "guardian-contact-unsafe", "suicide-risk"] {
                #expect(!document.contains("\"\(id)\""), "\(id) in the public OpenAPI document")
            }
            let withToken = try await client.execute(uri: "/api/v1/openapi.json", method: .get, headers: harness.auth("auditor"), body: nil).text
            #expect(withToken.contains("\"lincoln-high\""))
        }
    }
}

@Suite("The client's address")
struct ClientAddressTests {
    @Test("X-Forwarded-For is believed from a configured proxy only: the access entry names the client, never a spoofed one")
    func forwardedFor() async throws {
        for trusted in [Set<String>(), ["127.0.0.1"]] {
            try await withService(.sqlite, trustedProxies: trusted) { harness, client in
                let created = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("admin"), json: reportJSON(subject: "xff"))
                let id = try #require((created.object["incident"] as? [String: Any])?["id"] as? String)
                var headers = harness.auth("admin")
                headers[HTTPField.Name("X-Forwarded-For")!] = "198.51.100.9, 203.0.113.7"
                #expect(try await client.call(.get, "/api/v1/incidents/\(id)", headers: headers).status == .ok)
                let access = try #require(try await harness.store.timeline(IncidentID(id)).last { $0.action == .accessed })
                // Behind the trusted proxy the client is the last address it forwarded; without one, the header is anyone's.
                #expect(access.detail == (trusted.isEmpty ? "from 127.0.0.1" : "from 203.0.113.7"), "\(access.detail ?? "")")
            }
        }
    }
}
