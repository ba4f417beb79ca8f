// Rate limits that never silence a person (issue 26, item 1): an integration key over its budget is
// answered 429 with Retry-After (PagerDuty's throttle on /v2/enqueue); a person's reports past their
// budget are all taken, grouped into one incident per site and type and paged once, and the admins
// see it; a PagerDuty sender is authenticated before its body is decoded, and hostile JSON shapes are
// refused before any decoder runs.
import Foundation
import HTTPTypes
import HummingbirdTesting
import MusterCore
@testable import MusterHTTP
import MusterStore
import MusterTestSupport
import Testing

private func tight() -> RateLimitSettings {
    var limits = RateLimitSettings()
    limits.integration = RateLimit(perMinute: 2, burst: 2)  // the third event within a few seconds is over
    limits.account = RateLimit(perMinute: 2, burst: 2)
    return limits
}

private func pagerDutyEvent(key: String, dedup: String) -> String {
    #"{"routing_key":"\#(key)","event_action":"trigger","dedup_key":"\#(dedup)","payload":{"summary":"Door forced","source":"door","severity":"critical","group":"lincoln-high","class":"threat-of-violence"}}"#
}

@Suite("Rate limits", .serialized)
struct RateLimitTests {
    @Test("an integration key over its budget gets 429 with Retry-After on both integration endpoints, and nothing is opened", arguments: Backend.allCases)
    func integrationsAreThrottled(_ backend: Backend) async throws {
        try await withService(backend, rateLimits: tight()) { harness, client in
            let key = try #require(harness.tokens["monitoring"])
            let json: HTTPFields = [.contentType: "application/json"]
            for dedup in ["a", "b"] {
                #expect(try await client.call(.post, "/v2/enqueue", headers: json, json: pagerDutyEvent(key: key, dedup: dedup)).status == .accepted)
            }
            func reportsTaken() async throws -> Int {
                var count = 0
                for incident in try await harness.store.incidents(IncidentFilter()) { count += try await harness.store.reports(incident.ref.id).count }
                return count
            }
            #expect(try await reportsTaken() == 2)
            let throttled = try await client.call(.post, "/v2/enqueue", headers: json, json: pagerDutyEvent(key: key, dedup: "c"))
            #expect(throttled.status == .tooManyRequests)
            #expect(throttled.object["status"] as? String == "throttle event")
            let retry = try #require(throttled.headers[.retryAfter].flatMap(Int.init))
            #expect((1...30).contains(retry))
            #expect(try await reportsTaken() == 2, "the throttled event was not taken")

            // The same key on Alertmanager's webhook shares the budget.
            var alert = harness.auth("monitoring")
            alert[.contentType] = "application/json"
            let body = #"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Door","site":"lincoln-high","muster_type":"threat-of-violence"},"annotations":{},"startsAt":"2026-12-06T08:00:00Z","fingerprint":"f1"}]}"#
            let refused = try await client.call(.post, "/api/v1/integrations/alertmanager", headers: alert, json: body)
            #expect(refused.status == .tooManyRequests)
            #expect(refused.headers[.retryAfter] != nil)
            #expect((refused.object["detail"] as? String)?.contains("over its budget") == true)
        }
    }

    @Test("a person's reports past the budget are all taken: one incident per site and type, paged once; the admin page says so", arguments: Backend.allCases)
    func aPersonIsNeverRefused(_ backend: Backend) async throws {
        try await withService(backend, rateLimits: tight()) { harness, client in
            var numbers: [Int] = []
            for index in 1...6 {
                // Different students: without the budget each would open an incident of its own.
                let response = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("responder-lincoln"),
                                                     json: reportJSON(summary: "report \(index)", subject: "student-\(index)"))
                #expect(response.status == .created || response.status == .ok, "report \(index) was taken")
                #expect(response.object["outcome"] as? String == (index <= 3 ? "created" : "merged"))
                numbers.append(try #require((response.object["incident"] as? [String: Any])?["number"] as? Int))
            }
            #expect(Set(numbers.prefix(2)).count == 2, "within the budget, two incidents")
            #expect(Set(numbers.dropFirst(2)).count == 1, "past it, one incident for the site and type: \(numbers)")
            #expect(!numbers.prefix(2).contains(numbers[2]))
            let grouped = try #require(try await harness.store.incidentID(number: numbers[2]))
            #expect(try await harness.store.reports(grouped).count == 4, "every report is kept")
            // Paged once: the grouped incident's first step went out as a single report's did, not once per report.
            let timeline = try await harness.store.timeline(grouped)
            #expect(timeline.filter { $0.action == .reportMerged }.count == 3)
            let single = try #require(try await harness.store.incidentID(number: numbers[0]))
            let pagedForOne = try await harness.store.timeline(single).filter { $0.action == .paged }.count
            #expect(pagedForOne > 0)
            #expect(timeline.filter { $0.action == .paged }.count == pagedForOne)
            let started = try #require(try await harness.store.incident(grouped))
            #expect(started.reportCount == 4)

            // Another type at the same site is its own group.
            let other = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("responder-lincoln"),
                                              json: reportJSON(type: "threat-of-violence", summary: "a threat"))
            #expect(other.status == .created)
            #expect((other.object["incident"] as? [String: Any])?["number"] as? Int != numbers[2])

            // The admins are told: on their page, and in a metric.
            let metrics = try await client.call(.get, "/metrics", headers: harness.auth("prometheus"))
            #expect(String(buffer: metrics.body).contains("muster_reports_over_budget"))
            try await WebPageTests.setPasswords(harness)
            let admin = try await WebPageTests.browser(client, as: "admin")
            let page = String(buffer: try await admin.get("/admin").body)
            #expect(page.contains("Accounts over their report budget"))
            #expect(page.contains("responder-lincoln: reports over the budget of 2 a minute"))
        }
    }

    @Test("PagerDuty: the routing key is checked before the body is decoded; deep or huge JSON is refused before any decoder runs")
    func authenticationBeforeParsing() async throws {
        try await withService(.sqlite) { harness, client in
            let json: HTTPFields = [.contentType: "application/json"]
            // A wrong key with a body that is not even valid JSON past it: refused for its key.
            let wrongKey = try await client.call(.post, "/v2/enqueue", headers: json, json: #"{"routing_key":"0123456789abcdef0123456789abcdef","payload": {"#)
            #expect(wrongKey.status == .badRequest)
            #expect((wrongKey.object["errors"] as? [String])?.first?.contains("not a valid integration key") == true, "\(wrongKey.object)")
            // 10,000 levels of nesting, or 50,000 values: refused by their shape.
            let deep = #"{"routing_key":"x","payload":"# + String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000) + "}"
            let tooDeep = try await client.call(.post, "/v2/enqueue", headers: json, json: deep)
            #expect(tooDeep.status == .badRequest)
            #expect((tooDeep.object["errors"] as? [String])?.first?.contains("deeper than") == true)
            let wide = #"{"routing_key":"x","payload":["# + Array(repeating: "1", count: 50_000).joined(separator: ",") + "]}"
            let tooWide = try await client.call(.post, "/v2/enqueue", headers: json, json: wide)
            #expect((tooWide.object["errors"] as? [String])?.first?.contains("more than") == true)
            // The API's own bodies are held to the same shape.
            let nested = #"{"type":"suicide-risk","severity":"high","site":"lincoln-high","summary":"x","flags":"# + String(repeating: "[", count: 100)
                + String(repeating: "]", count: 100) + "}"
            let api = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("responder-lincoln"), json: nested)
            #expect(api.status == .badRequest)
            #expect((api.object["detail"] as? String)?.contains("deeper than") == true)
            // A good event still goes through.
            let key = try #require(harness.tokens["monitoring"])
            #expect(try await client.call(.post, "/v2/enqueue", headers: json, json: pagerDutyEvent(key: key, dedup: "ok")).status == .accepted)
        }
    }

    @Test("the shape check: depth and values counted outside strings; a top-level string read without decoding")
    func shapeScanner() throws {
        func top(_ text: String) -> String? { Array(text.utf8).withUnsafeBytes { JSONShape.topLevelString("routing_key", in: $0) } }
        #expect(top(#"{"routing_key":"abc"}"#) == "abc")
        #expect(top(#"{ "a": {"routing_key": "inner"}, "routing_key" : "outer" }"#) == "outer")
        #expect(top(#"{"a":"routing_key","b":1}"#) == nil)
        #expect(top(#"{"routing_key":"a\"b"}"#) == nil, "escaped: left to the full decode")
        #expect(top(#"{"x":"\"routing_key\":\"fake\"","routing_key":"real"}"#) == "real")
        func check(_ text: String) -> Bool { Array(text.utf8).withUnsafeBytes { (try? JSONShape.check($0)) != nil } }
        #expect(check(#"{"a":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}"#), "brackets in strings do not count")
        #expect(!check(String(repeating: "[", count: 40) + String(repeating: "]", count: 40)))
    }
}

@Suite("Integration payload shapes")
struct IntegrationShapeTests {
    @Test("Alertmanager's envelope must have Alertmanager's shape; NUL characters never reach the database as a 503", arguments: Backend.allCases)
    func shapesAndNUL(_ backend: Backend) async throws {
        try await withService(backend) { harness, client in
            var headers = harness.auth("monitoring")
            headers[.contentType] = "application/json"
            for (body, pointer) in [(#"{"alerts":[],"version":null}"#, "/version"), (#"{"alerts":[],"status":123}"#, "/status"),
                                    (#"{"alerts":[],"status":"bogus"}"#, "/status"), (#"{"alerts":[],"truncatedAlerts":null}"#, "/truncatedAlerts"),
                                    (#"{"alerts":[{"status":"resolved","labels":{},"endsAt":null}]}"#, "/alerts/0/endsAt"), (#"{"alerts":[],"truncatedAlerts":"x"}"#, "/truncatedAlerts"),
                                    (#"{"alerts":[],"commonLabels":{"a":1}}"#, "/commonLabels/a"),
                                    (#"{"alerts":[{"status":"firing"}]}"#, "/alerts/0/labels"),
                                    (#"{"alerts":[{"status":"resolved","labels":{"a":"\u0000"}}]}"#, "/alerts/0/labels/a"),
                                    (#"{"alerts":[{"status":"firing","labels":{"site":"lincoln-high","muster_type":"suicide-risk","x":"\u0000"}}]}"#, "/alerts/0/labels/x")] {
                let response = try await client.call(.post, "/api/v1/integrations/alertmanager", headers: headers, json: body)
                #expect(response.status == .badRequest || response.status == .unprocessableContent, "\(body) → \(response.status)")
                let pointers = (response.object["errors"] as? [[String: Any]])?.compactMap { $0["pointer"] as? String } ?? []
                #expect(pointers.contains(pointer), "\(body): \(pointers)")
            }
            let key = try #require(harness.tokens["monitoring"])
            let nul = #"{"routing_key":"\#(key)","event_action":"resolve","dedup_key":"a\u0000b"}"#
            let refused = try await client.call(.post, "/v2/enqueue", headers: [.contentType: "application/json"], json: nul)
            #expect(refused.status == .badRequest)
            #expect((refused.object["errors"] as? [String])?.contains { $0.contains("NUL") } == true)
        }
    }
}
