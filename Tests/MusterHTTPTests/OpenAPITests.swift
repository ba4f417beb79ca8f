// Keeps Sources/MusterHTTP/openapi.json true: the router's routes are exactly the document's
// operations, and live responses (successes and errors) match the documented status codes,
// content types and schemas. Request bodies sent here validate against the documented ones.
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import MusterHTTP
import MusterTestSupport
import Testing

nonisolated(unsafe) private let document: [String: Any] = {  // read-only after loading
    let url = repositoryRoot.appendingPathComponent("Sources/MusterHTTP/openapi.json")
    guard let data = try? Data(contentsOf: url), let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
    return object
}()

@Suite("OpenAPI document")
struct OpenAPITests {
    @Test("the router's routes are exactly the document's operations")
    func routes() async throws {
        try await withService(.sqlite) { harness, _ in
            let router = harness.server.makeRouter()
            // The web pages are HTML for people (docs/web.md), not operations of the API.
            let pages = ["/", "/raise", "/incidents/", "/board", "/mine", "/inbox", "/sign-in", "/sign-out", "/assets/", "/coordinator", "/auditor", "/admin", "/contacts"]
            let api = router.routes.filter { route in
                let path = "/" + route.path.description.split(separator: "/").joined(separator: "/")
                return !pages.contains { $0 == "/" ? path == "/" : path == $0 || path.hasPrefix($0.hasSuffix("/") ? $0 : $0 + "/") }
            }
            let served = Set(api.map { route in
                "\(route.method.rawValue) " + route.path.description.split(separator: "/").map { part in
                    part.hasPrefix(":") ? "{\(part.dropFirst())}" : String(part)
                }.reduce("") { $0 + "/" + $1 }
            })
            let paths = try #require(document["paths"] as? [String: [String: Any]])
            let documented = Set(paths.flatMap { path, operations in operations.keys.map { "\($0.uppercased()) \(path)" } })
            #expect(served == documented, "served but undocumented: \(served.subtracting(documented).sorted()); documented but not served: \(documented.subtracting(served).sorted())")
        }
    }

    @Test("live responses match the documented statuses, content types and schemas", arguments: Backend.allCases)
    func responses(_ backend: Backend) async throws {
        try await withService(backend) { harness, client in
            var checked = 0
            func check(_ method: HTTPRequest.Method, _ template: String, _ uri: String, as account: String? = "admin", json body: String? = nil,
                       headers extra: HTTPFields = [:]) async throws -> TestResponse {
                var headers = account.map { harness.auth($0) } ?? [.contentType: "application/json"]
                for field in extra { headers[field.name] = field.value }
                let response = try await client.call(method, uri, headers: headers, json: body)
                let problems = validate(method: method, template: template, status: Int(response.status.code),
                                        contentType: response.headers[.contentType] ?? "", body: response.body, requestBody: body)
                #expect(problems.isEmpty, "\(method) \(uri) → \(response.status.code): \(problems.joined(separator: "; "))")
                checked += 1
                return response
            }
            let created = try await check(.post, "/api/v1/incidents", "/api/v1/incidents", json: reportJSON(subject: "api-1"))
            #expect(created.status == .created)
            let id = try #require((created.object["incident"] as? [String: Any])?["id"] as? String)
            _ = try await check(.post, "/api/v1/incidents", "/api/v1/incidents", json: reportJSON(subject: "api-1"))  // merged
            _ = try await check(.post, "/api/v1/incidents", "/api/v1/incidents", json: reportJSON(severity: "imminent", site: "washington-elementary"))
            _ = try await check(.post, "/api/v1/incidents", "/api/v1/incidents", json: #"{"type":1}"#)
            _ = try await check(.post, "/api/v1/incidents", "/api/v1/incidents", json: reportJSON(site: "nowhere"))
            _ = try await check(.post, "/api/v1/incidents", "/api/v1/incidents", as: nil, json: reportJSON())
            _ = try await check(.post, "/api/v1/incidents", "/api/v1/incidents", as: "auditor", json: reportJSON())
            _ = try await check(.get, "/api/v1/incidents", "/api/v1/incidents?status=open&limit=1")
            _ = try await check(.get, "/api/v1/incidents", "/api/v1/incidents?limit=x")
            _ = try await check(.get, "/api/v1/incidents/{id}", "/api/v1/incidents/\(id)")
            _ = try await check(.get, "/api/v1/incidents/{id}", "/api/v1/incidents/424242")
            _ = try await check(.post, "/api/v1/incidents/{id}/tasks/{task}/complete", "/api/v1/incidents/\(id)/tasks/supervision/complete")
            _ = try await check(.post, "/api/v1/incidents/{id}/tasks/{task}/complete", "/api/v1/incidents/\(id)/tasks/nope/complete")
            _ = try await check(.post, "/api/v1/incidents/{id}/escalate", "/api/v1/incidents/\(id)/escalate", json: #"{"reason":"no answer"}"#)
            _ = try await check(.post, "/api/v1/incidents/{id}/acknowledge", "/api/v1/incidents/\(id)/acknowledge")
            _ = try await check(.post, "/api/v1/incidents/{id}/acknowledge", "/api/v1/incidents/\(id)/acknowledge")
            _ = try await check(.post, "/api/v1/incidents/{id}/notes", "/api/v1/incidents/\(id)/notes", json: #"{"text":"with the nurse"}"#)
            _ = try await check(.post, "/api/v1/incidents/{id}/notes", "/api/v1/incidents/\(id)/notes", json: #"{"txt":"x"}"#)
            _ = try await check(.post, "/api/v1/incidents/{id}/reassign", "/api/v1/incidents/\(id)/reassign", json: #"{"to":"dchen"}"#)
            _ = try await check(.post, "/api/v1/incidents/{id}/reassign", "/api/v1/incidents/\(id)/reassign", json: #"{"to":"nobody"}"#)
            _ = try await check(.post, "/api/v1/incidents/{id}/resolve", "/api/v1/incidents/\(id)/resolve", json: #"{"outcome":"false-alarm","note":"done"}"#)
            _ = try await check(.post, "/api/v1/incidents/{id}/reopen", "/api/v1/incidents/\(id)/reopen", json: #"{"reason":"again"}"#)
            _ = try await check(.get, "/api/v1/incidents/{id}", "/api/v1/incidents/\(id)")
            _ = try await check(.get, "/api/v1/oncall", "/api/v1/oncall")
            _ = try await check(.get, "/api/v1/reports/compliance", "/api/v1/reports/compliance?from=2026-12-01&to=2026-12-31", as: "auditor")
            _ = try await check(.get, "/api/v1/reports/compliance", "/api/v1/reports/compliance?from=2026-12-01", as: "auditor")
            _ = try await check(.get, "/api/v1/reports/compliance", "/api/v1/reports/compliance?from=2026-12-01&to=2026-12-31", as: "responder-lincoln")
            _ = try await check(.get, "/api/v1/oncall", "/api/v1/oncall?site=mesa-academy&from=2026-03-07T00:00:00Z&to=2026-03-09T12:00:00Z")
            _ = try await check(.get, "/api/v1/oncall", "/api/v1/oncall?from=2026-03-07T00:00:00Z")
            _ = try await check(.get, "/api/v1/playbooks", "/api/v1/playbooks")
            _ = try await check(.post, "/api/v1/playbooks/reload", "/api/v1/playbooks/reload")
            _ = try await check(.post, "/api/v1/playbooks/reload", "/api/v1/playbooks/reload", as: "responder-lincoln")
            let alert = #"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"muster_type":"medical-emergency","site":"lincoln-high"},"annotations":{},"startsAt":"2026-11-23T10:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":"f1"}]}"#
            _ = try await check(.post, "/api/v1/integrations/alertmanager", "/api/v1/integrations/alertmanager", as: "monitoring", json: alert)
            _ = try await check(.post, "/api/v1/integrations/alertmanager", "/api/v1/integrations/alertmanager", as: "monitoring",
                                json: alert.replacingOccurrences(of: "lincoln-high", with: "x"))
            let key = harness.tokens["monitoring"] ?? ""
            _ = try await check(.post, "/v2/enqueue", "/v2/enqueue", as: nil,
                                json: #"{"routing_key":"\#(key)","event_action":"trigger","payload":{"summary":"s","source":"x","severity":"info","group":"lincoln-high"}}"#)
            _ = try await check(.post, "/v2/enqueue", "/v2/enqueue", as: nil, json: #"{"routing_key":"\#(key)","event_action":"explode"}"#)
            _ = try await check(.get, "/api/v1/openapi.json", "/api/v1/openapi.json", as: nil)
            _ = try await check(.get, "/health/live", "/health/live", as: nil)
            _ = try await check(.get, "/health/ready", "/health/ready", as: nil)
            _ = try await check(.get, "/metrics", "/metrics", as: "prometheus")
            _ = try await check(.get, "/metrics", "/metrics", as: nil)
            _ = try await check(.get, "/metrics", "/metrics", as: "auditor")
            #expect(checked == 42)
        }
    }
}

/// Problems with a response (and the request body) against the document; empty when it conforms.
private func validate(method: HTTPRequest.Method, template: String, status: Int, contentType: String, body: ByteBuffer,
                      requestBody: String?) -> [String] {
    guard let paths = document["paths"] as? [String: Any], let operations = paths[template] as? [String: Any],
          let operation = operations[method.rawValue.lowercased()] as? [String: Any],
          let responses = operation["responses"] as? [String: Any] else { return ["\(method) \(template) is not documented"] }
    var problems: [String] = []
    if let requestBody, let schema = (((operation["requestBody"] as? [String: Any])?["content"] as? [String: Any])?["application/json"] as? [String: Any])?["schema"],
       let value = try? JSONSerialization.jsonObject(with: Data(requestBody.utf8)), status < 300 {
        problems += SchemaCheck.check(value, against: schema, at: "request")
    }
    guard let response = responses[String(status)] as? [String: Any] else { return problems + ["status \(status) is not documented"] }
    guard let content = response["content"] as? [String: Any] else { return problems }
    let mediaType = contentType.split(separator: ";").first.map(String.init) ?? ""
    guard let media = content[mediaType] as? [String: Any] else { return problems + ["content type '\(contentType)' is not documented for \(status)"] }
    guard mediaType.hasSuffix("json"), let schema = media["schema"] else { return problems }
    guard let value = try? JSONSerialization.jsonObject(with: Data(buffer: body), options: [.fragmentsAllowed]) else {
        return problems + ["the body is not JSON"]
    }
    return problems + SchemaCheck.check(value, against: schema, at: "")
}

/// The JSON Schema keywords the document uses: $ref, type, properties, required,
/// additionalProperties, items, enum, const, minLength, maxLength, minimum, maximum, format date-time.
private enum SchemaCheck {
    static func check(_ value: Any, against schemaValue: Any, at pointer: String) -> [String] {
        guard var schema = schemaValue as? [String: Any] else { return [] }
        if let ref = schema["$ref"] as? String {
            let name = ref.replacingOccurrences(of: "#/components/schemas/", with: "")
            guard let resolved = ((document["components"] as? [String: Any])?["schemas"] as? [String: Any])?[name] as? [String: Any] else {
                return ["\(pointer): unresolved \(ref)"]
            }
            schema = resolved
        }
        var problems: [String] = []
        if let type = schema["type"] as? String, !matches(value, type: type) {
            return ["\(pointer.isEmpty ? "/" : pointer): expected \(type), found \(Swift.type(of: value))"]
        }
        if let options = schema["enum"] as? [Any], !options.contains(where: { "\($0)" == "\(value)" }) {
            problems.append("\(pointer): '\(value)' is not one of \(options)")
        }
        if let constant = schema["const"], "\(constant)" != "\(value)" { problems.append("\(pointer): expected \(constant)") }
        if let text = value as? String {
            if let min = schema["minLength"] as? Int, text.count < min { problems.append("\(pointer): shorter than \(min)") }
            if let max = schema["maxLength"] as? Int, text.count > max { problems.append("\(pointer): longer than \(max)") }
            if schema["format"] as? String == "date-time", InstantCheck.parse(text) == nil { problems.append("\(pointer): '\(text)' is not a date-time") }
        }
        if let number = value as? NSNumber, !(value is String), !isBool(value) {
            if let min = schema["minimum"] as? Double, number.doubleValue < min { problems.append("\(pointer): below \(min)") }
            if let max = schema["maximum"] as? Double, number.doubleValue > max { problems.append("\(pointer): above \(max)") }
        }
        if let object = value as? [String: Any] {
            let properties = schema["properties"] as? [String: Any] ?? [:]
            for name in schema["required"] as? [String] ?? [] where object[name] == nil { problems.append("\(pointer)/\(name): required") }
            for (name, item) in object {
                if let property = properties[name] {
                    problems += check(item, against: property, at: "\(pointer)/\(name)")
                } else if schema["additionalProperties"] as? Bool == false {
                    problems.append("\(pointer)/\(name): not in the schema")
                } else if let additional = schema["additionalProperties"] as? [String: Any] {
                    problems += check(item, against: additional, at: "\(pointer)/\(name)")
                }
            }
        }
        if let array = value as? [Any], let items = schema["items"] {
            for (index, item) in array.enumerated() { problems += check(item, against: items, at: "\(pointer)/\(index)") }
        }
        return problems
    }

    static func matches(_ value: Any, type: String) -> Bool {
        let isBoolean = isBool(value)
        switch type {
        case "object": return value is [String: Any]
        case "array": return value is [Any]
        case "string": return value is String
        case "boolean": return isBoolean
        case "integer": return !isBoolean && (value as? NSNumber).map { $0.doubleValue.rounded() == $0.doubleValue } == true && !(value is String)
        case "number": return !isBoolean && value is NSNumber && !(value is String)
        default: return true
        }
    }

    /// JSONSerialization gives booleans as a boolean NSNumber subclass (Linux) or Bool.
    static func isBool(_ value: Any) -> Bool {
        String(describing: Swift.type(of: value)).contains("Bool")
    }
}

private enum InstantCheck {
    static func parse(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: text) ?? ISO8601DateFormatter().date(from: text)
    }
}
