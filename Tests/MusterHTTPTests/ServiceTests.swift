// The service as its clients use it: live HTTP on 127.0.0.1, workers running, on both stores.
import Foundation
import HTTPTypes
import HummingbirdTesting
import MusterAudit
import MusterCore
import MusterStore
import MusterTestSupport
import Testing

@Suite("The service, live", .serialized)
struct ServiceTests {
    @Test("resolving asks how it ended: no outcome is 400, an unknown one or a false alarm without a reason 422, and nothing changes")
    func resolutionOutcome() async throws {
        try await withService(.sqlite) { harness, client in
            let created = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("responder-lincoln"), json: reportJSON())
            let id = try #require((created.object["incident"] as? [String: Any])?["id"] as? String)
            func resolve(_ body: String) async throws -> (TestResponse, Set<String>) {
                let response = try await client.call(.post, "/api/v1/incidents/\(id)/resolve", headers: harness.auth("responder-lincoln"), json: body)
                return (response, Set(((response.object["errors"] as? [[String: Any]]) ?? []).compactMap { $0["pointer"] as? String }))
            }
            let (missing, missingAt) = try await resolve(#"{"note":"done"}"#)
            #expect(missing.status == .badRequest && missingAt == ["/outcome"], "\(missing.object)")
            let (unknown, unknownAt) = try await resolve(#"{"outcome":"sorted"}"#)
            #expect(unknown.status == .unprocessableContent && unknownAt == ["/outcome"])
            #expect((unknown.object["detail"] as? String)?.contains("handled-at-school, referred, emergency-services, false-alarm, duplicate") == true)
            let (noReason, noReasonAt) = try await resolve(#"{"outcome":"false-alarm"}"#)
            #expect(noReason.status == .unprocessableContent && noReasonAt == ["/note"])
            let still = try await client.call(.get, "/api/v1/incidents/\(id)", headers: harness.auth("responder-lincoln"))
            #expect(still.object["status"] as? String != "resolved", "nothing changed")

            let (done, _) = try await resolve(#"{"outcome":"false-alarm","note":"A misread message"}"#)
            #expect(done.status == .ok && done.object["status"] as? String == "resolved")
            let timeline = try await harness.store.timeline(IncidentID(id))
            #expect(timeline.last?.action == .resolved && timeline.last?.target == "false-alarm")
        }
    }

    @Test("a drill runs the real escalation, every message says DRILL first, and it never joins a real incident", arguments: Backend.allCases)
    func drill(_ backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let real = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("responder-lincoln"), json: reportJSON(subject: "S-1"))
            let realID = try #require((real.object["incident"] as? [String: Any])?["id"] as? String)
            var object = try #require(try JSONSerialization.jsonObject(with: Data(reportJSON(subject: "S-1").utf8)) as? [String: Any])
            object["drill"] = true
            let body = String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
            let drill = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("responder-lincoln"), json: body)
            #expect(drill.status == .created && drill.object["outcome"] as? String == "created", "a drill opens its own incident")
            let incident = try #require(drill.object["incident"] as? [String: Any])
            let id = try #require(incident["id"] as? String)
            #expect(id != realID)
            func isDrill(_ id: String) async throws -> Bool? {
                let detail = try await client.call(.get, "/api/v1/incidents/\(id)", headers: harness.auth("responder-lincoln"))
                return (detail.object["incident"] as? [String: Any])?["drill"] as? Bool
            }
            #expect(try await isDrill(id) == true)
            #expect(try await isDrill(realID) == false)
            let paging = try #require(drill.object["paging"] as? [[String: Any]])
            #expect(!paging.isEmpty, "the real escalation runs")
            #expect(await eventually { harness.deliveries().filter { $0["incident"] == id }.count >= paging.count })
            let texts = harness.deliveries().filter { $0["incident"] == id }.compactMap { $0["text"] }
            #expect(!texts.isEmpty && texts.allSatisfy { $0.hasPrefix("DRILL: ") || $0.hasPrefix("This is a drill.") }, "\(texts)")
            #expect(!harness.deliveries().filter { $0["incident"] == realID }.contains { $0["text"]?.contains("DRILL") == true })
            let first = try await harness.store.timeline(IncidentID(id)).first
            #expect(first?.detail?.hasPrefix("DRILL: ") == true, "the log says so")

            object["drill"] = "yes"
            let wrong = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("responder-lincoln"),
                                              json: String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self))
            #expect(wrong.status == .badRequest)
            #expect(((wrong.object["errors"] as? [[String: Any]]) ?? []).compactMap { $0["pointer"] as? String } == ["/drill"])
        }
    }

    @Test("the compliance report for auditors: JSON or a CSV table for a period, site and type; bad parameters named; others refused")
    func complianceReport() async throws {
        try await withService(.sqlite) { harness, client in
            let created = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("responder-lincoln"), json: reportJSON())
            let number = try #require((created.object["incident"] as? [String: Any])?["number"] as? Int)
            _ = try await client.call(.post, "/api/v1/incidents/\(number)/acknowledge", headers: harness.auth("responder-lincoln"))
            let now = harness.server.clock.now()
            let hour = { (offset: TimeInterval) in now.addingTimeInterval(offset).formatted(.iso8601) }
            let uri = "/api/v1/reports/compliance?from=\(hour(-3600))&to=\(hour(3600))"
            let json = try await client.call(.get, uri, headers: harness.auth("auditor"))
            #expect(json.status == .ok && json.headers[.contentType] == "application/json")
            let rows = try #require(json.object["incidents"] as? [[String: Any]])
            #expect(rows.map { $0["number"] as? Int } == [number])
            #expect(rows.first?["acknowledged_seconds"] as? Double != nil)
            #expect((json.object["summary"] as? [[String: Any]])?.last?["site"] as? String == "all")
            let csv = try await client.call(.get, uri + "&format=csv&table=summary&site=lincoln-high&type=suicide-risk", headers: harness.auth("auditor"))
            #expect(csv.status == .ok && csv.headers[.contentType] == "text/csv; charset=utf-8")
            #expect(csv.text.hasPrefix("site,type,incidents,acknowledged,") && csv.text.contains("\r\nlincoln-high,suicide-risk,1,1,"))
            #expect(try await client.call(.get, uri, headers: harness.auth("responder-lincoln")).status == .forbidden)
            let bad = try await client.call(.get, "/api/v1/reports/compliance?from=2026-02-01&to=2026-02-30&site=lincon-high&format=xml",
                                            headers: harness.auth("auditor"))
            #expect(bad.status == .badRequest)
            let pointers = Set(((bad.object["errors"] as? [[String: Any]]) ?? []).compactMap { $0["pointer"] as? String })
            #expect(pointers == ["to", "site", "format"], "\(bad.object)")
            #expect((bad.object["detail"] as? String)?.contains("did you mean 'lincoln-high'") == true)
        }
    }

    @Test("a test page goes to one contact point through the real channel, says what became of it, and is for the person, their coordinator or an admin")
    func testPage() async throws {
        try await withService(.sqlite) { harness, client in
            let sent = try await client.call(.post, "/api/v1/people/dchen/contacts/2/test", headers: harness.auth("coordinator-lincoln"))
            #expect(sent.status == .ok, "\(sent.object)")
            #expect(sent.object["channel"] as? String == "sms" && sent.object["outcome"] as? String == "delivered")
            let line = try #require(harness.deliveries().last)
            #expect(line["kind"] == "test" && line["address"] == "+15555550111" && line["recipient"] == "person:dchen")
            #expect(line["text"] == "Muster test page: crisis pages reach you at this number. No action needed.")
            #expect(line["ack_url"] == "", "a test page takes no ownership")
            #expect(try await harness.store.incidents(IncidentFilter()).isEmpty, "no incident, nothing in any incident's log")

            let missing = try await client.call(.post, "/api/v1/people/dchen/contacts/9/test", headers: harness.auth("admin"))
            #expect(missing.status == .notFound && (missing.object["detail"] as? String)?.contains("dchen has 4 contact points") == true)
            #expect(try await client.call(.post, "/api/v1/people/nobody/contacts/1/test", headers: harness.auth("admin")).status == .notFound)
            #expect(try await client.call(.post, "/api/v1/people/dchen/contacts/1/test", headers: harness.auth("responder-lincoln")).status == .forbidden)
            #expect(try await client.call(.post, "/api/v1/people/dchen/contacts/1/test", headers: harness.auth("monitoring")).status == .forbidden)
            #expect(harness.deliveries().count == 1)
        }
    }

    @Test("report, page, acknowledge, resolve; the read is audited", arguments: Backend.allCases)
    func lifecycle(_ backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let created = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("responder-lincoln"), json: reportJSON())
            #expect(created.status == .created)
            let incident = try #require(created.object["incident"] as? [String: Any])
            let id = try #require(incident["id"] as? String)
            #expect(created.headers[.location] == "/api/v1/incidents/\(id)")
            let paging = try #require(created.object["paging"] as? [[String: Any]])
            #expect(!paging.isEmpty)
            #expect(created.object["outcome"] as? String == "created")

            // The pages reach the channel, under the incident and carrying no student text.
            let delivered = await eventually { harness.deliveries().filter { $0["incident"] == id }.count >= paging.count }
            #expect(delivered)
            #expect(!harness.deliveries().contains { $0.values.contains { $0.contains("goodbye") } })

            let ack = try await client.call(.post, "/api/v1/incidents/\(id)/acknowledge", headers: harness.auth("responder-lincoln"))
            #expect(ack.status == .ok)
            #expect(ack.object["status"] as? String == "acknowledged")
            #expect(ack.object["owner"] as? String == "person:responder-lincoln")
            let again = try await client.call(.post, "/api/v1/incidents/\(id)/acknowledge", headers: harness.auth("coordinator-lincoln"))
            #expect(again.status == .conflict)
            #expect(again.headers[.contentType] == "application/problem+json")

            let note = try await client.call(.post, "/api/v1/incidents/\(id)/notes", headers: harness.auth("responder-lincoln"),
                                             json: #"{"text":"Student is with the counselor"}"#)
            #expect(note.status == .ok)
            let resolved = try await client.call(.post, "/api/v1/incidents/\(id)/resolve", headers: harness.auth("responder-lincoln"),
                                                 json: #"{"outcome":"handled-at-school","note":"Safety plan in place"}"#)
            #expect(resolved.object["status"] as? String == "resolved")

            let detail = try await client.call(.get, "/api/v1/incidents/\(id)", headers: harness.auth("auditor"))
            #expect(detail.status == .ok)
            #expect(detail.object["summary"] as? String == "Student wrote a goodbye note")
            let timeline = try #require(detail.object["timeline"] as? [[String: Any]])
            let actions = timeline.compactMap { $0["action"] as? String }
            #expect(actions.first == "reported")
            #expect(actions.contains("paged") && actions.contains("acknowledged") && actions.contains("note_added"))
            #expect(actions.contains("resolved"))
            // The auditor's own read is the last entry, with who and from where.
            let last = try #require(timeline.last)
            #expect(last["action"] as? String == "accessed")
            #expect(last["actor"] as? String == "person:auditor")
            #expect((last["detail"] as? String)?.hasPrefix("from 127.0.0.1") == true)

            // By number too; and every read adds an entry.
            let number = try #require(incident["number"] as? Int)
            _ = try await client.call(.get, "/api/v1/incidents/\(number)", headers: harness.auth("admin"))
            let records = try await harness.store.timeline(IncidentID(id))
            #expect(records.filter { $0.action == .accessed }.map(\.actor) == [.person(PersonID("auditor")), .person(PersonID("admin"))])
        }
    }

    @Test("a retried POST with the same Idempotency-Key returns the same incident, also when sent concurrently", arguments: Backend.allCases)
    func idempotency(_ backend: Backend) async throws {
        try await withService(backend) { harness, client in
            var headers = harness.auth("responder-lincoln")
            headers[HTTPField.Name("Idempotency-Key")!] = "retry-1"
            let first = try await client.call(.post, "/api/v1/incidents", headers: headers, json: reportJSON(subject: "s-1"))
            #expect(first.status == .created)
            let id = (first.object["incident"] as? [String: Any])?["id"] as? String
            for _ in 0..<3 {
                let retry = try await client.call(.post, "/api/v1/incidents", headers: headers, json: reportJSON(subject: "s-1"))
                #expect(retry.status == .ok)
                #expect(retry.object["outcome"] as? String == "duplicate")
                #expect(retry.headers[HTTPField.Name("Idempotent-Replayed")!] == "true")
                #expect((retry.object["incident"] as? [String: Any])?["id"] as? String == id)
            }
            // 20 concurrent POSTs with one new key (and subjects that would not group): one incident.
            headers[HTTPField.Name("Idempotency-Key")!] = "burst-1"
            let burst = headers
            let ids = try await withThrowingTaskGroup(of: String?.self) { group in
                for index in 0..<20 {
                    group.addTask {
                        let response = try await client.call(.post, "/api/v1/incidents", headers: burst, json: reportJSON(subject: "burst-\(index)"))
                        return (response.object["incident"] as? [String: Any])?["id"] as? String
                    }
                }
                var ids: [String?] = []
                for try await id in group { ids.append(id) }
                return ids
            }
            #expect(Set(ids).count == 1)
            #expect(ids.allSatisfy { $0 != nil })
            let list = try await client.call(.get, "/api/v1/incidents", headers: harness.auth("admin"))
            #expect((list.object["incidents"] as? [Any])?.count == 2)
            // Keys belong to their account: another account's same key opens its own incident.
            var other = harness.auth("coordinator-lincoln")
            other[HTTPField.Name("Idempotency-Key")!] = "retry-1"
            let foreign = try await client.call(.post, "/api/v1/incidents", headers: other, json: reportJSON(subject: "s-9"))
            #expect(foreign.status == .created)
        }
    }

    @Test("a storm of 200 concurrent reports on one grouping key makes one incident and one page per target", arguments: Backend.allCases)
    func storm(_ backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let outcomes = try await withThrowingTaskGroup(of: (String?, String?).self) { group in
                for _ in 0..<200 {
                    group.addTask {
                        let response = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("reporter-lincoln"),
                                                             json: reportJSON(subject: "student-17"))
                        return (response.object["outcome"] as? String, (response.object["incident"] as? [String: Any])?["id"] as? String)
                    }
                }
                var outcomes: [(String?, String?)] = []
                for try await outcome in group { outcomes.append(outcome) }
                return outcomes
            }
            #expect(Set(outcomes.map(\.1)).count == 1)
            #expect(outcomes.filter { $0.0 == "created" }.count == 1)
            #expect(outcomes.filter { $0.0 == "merged" }.count == 199)
            let id = try #require(outcomes.first?.1)
            let state = try #require(try await harness.store.incident(IncidentID(id)))
            #expect(state.reportCount == 200)
            // One page per target and channel of the first step, not one per report.
            let pages = await eventually { harness.deliveries().count >= 2 }
            #expect(pages)
            try await Task.sleep(for: .milliseconds(200))
            let delivered = harness.deliveries().filter { $0["incident"] == id }
            #expect(delivered.count == state.currentPages.count)
            #expect(Set(delivered.compactMap { $0["id"] }).count == delivered.count)
        }
    }

    @Test("bad input gets a precise problem document and writes nothing", arguments: Backend.allCases)
    func badInput(_ backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let headers = harness.auth("admin")
            func problem(_ method: HTTPRequest.Method = .post, _ uri: String = "/api/v1/incidents", json: String?,
                         headers: HTTPFields? = nil) async throws -> (HTTPResponse.Status, [String: Any]) {
                let response = try await client.call(method, uri, headers: headers ?? harness.auth("admin"), json: json)
                #expect(response.headers[.contentType] == "application/problem+json", "\(uri) \(json ?? "")")
                return (response.status, response.object)
            }
            var (status, body) = try await problem(json: #"{"type": "suicide-risk", "severity": }"#)
            #expect(status == .badRequest)
            #expect((body["detail"] as? String)?.contains("not valid JSON") == true)

            (status, body) = try await problem(json: #"{"type": 7, "severity": "hig", "site": "lincoln-high", "summary": ["x"], "sumary": "y"}"#)
            #expect(status == .badRequest)
            let pointers = Set(((body["errors"] as? [[String: Any]]) ?? []).compactMap { $0["pointer"] as? String })
            #expect(pointers == ["/type", "/severity", "/summary", "/sumary"])
            #expect((body["detail"] as? String)?.contains("did you mean 'summary'") == true)
            #expect((body["detail"] as? String)?.contains("did you mean 'high'") == true)

            (status, body) = try await problem(json: reportJSON(type: "suicide-risc", site: "lincon-high"))
            #expect(status == .unprocessableContent)
            #expect((body["detail"] as? String)?.contains("did you mean 'suicide-risk'") == true)
            #expect((body["detail"] as? String)?.contains("did you mean 'lincoln-high'") == true)

            (status, _) = try await problem(json: reportJSON(summary: String(repeating: "x", count: 70_000)))
            #expect(status == .contentTooLarge)

            (status, _) = try await problem(json: "[1, 2]")
            #expect(status == .badRequest)
            (status, _) = try await problem(json: nil)
            #expect(status == .badRequest)

            (status, body) = try await problem(.get, "/api/v1/incidents/9999", json: nil)
            #expect(status == .notFound)
            (status, body) = try await problem(.post, "/api/v1/incidents/no-such/acknowledge", json: nil)
            #expect(status == .notFound)
            (status, body) = try await problem(.get, "/api/v1/incidents?limt=5", json: nil)
            #expect(status == .badRequest)
            #expect((body["detail"] as? String)?.contains("did you mean 'limit'") == true)
            (status, _) = try await problem(.get, "/api/v1/incidents?limit=0", json: nil)
            #expect(status == .badRequest)
            (status, _) = try await problem(.get, "/api/v1/incidents?from=yesterday", json: nil)
            #expect(status == .badRequest)
            var form = headers
            form[.contentType] = "application/x-www-form-urlencoded"
            (status, _) = try await problem(json: "type=suicide-risk", headers: form)
            #expect(status == .unsupportedMediaType)

            (status, body) = try await problem(.put, "/api/v1/incidents", json: nil)
            #expect(status == .methodNotAllowed)
            #expect((body["detail"] as? String)?.contains("allowed: GET, POST") == true)
            (status, _) = try await problem(.delete, "/api/v1/incidents/\(UUID().uuidString)", json: nil)
            #expect(status == .methodNotAllowed)
            (status, _) = try await problem(.get, "/api/v1/nothing-here", json: nil)
            #expect(status == .notFound)

            // Nothing was written by any of them.
            #expect(try await harness.store.incidents(IncidentFilter()).isEmpty)
        }
    }

    @Test("listing filters by status, site and type, pages with before, and keeps reporters to their own reports", arguments: Backend.allCases)
    func listing(_ backend: Backend) async throws {
        try await withService(backend) { harness, client in
            for index in 0..<3 {
                try await client.call(.post, "/api/v1/incidents", headers: harness.auth("reporter-lincoln"), json: reportJSON(subject: "l-\(index)"))
            }
            try await client.call(.post, "/api/v1/incidents", headers: harness.auth("admin"),
                                  json: reportJSON(type: "medical-emergency", site: "washington-elementary"))
            func numbers(_ query: String, as account: String = "admin") async throws -> [Int] {
                let response = try await client.call(.get, "/api/v1/incidents" + query, headers: harness.auth(account))
                #expect(response.status == .ok, "\(query)")
                return ((response.object["incidents"] as? [[String: Any]]) ?? []).compactMap { $0["number"] as? Int }
            }
            let all = try await numbers("")
            #expect(all.count == 4)
            #expect(all == all.sorted(by: >))
            #expect(try await numbers("?site=washington-elementary").count == 1)
            #expect(try await numbers("?type=suicide-risk").count == 3)
            #expect(try await numbers("?status=resolved").isEmpty)
            #expect(try await numbers("?status=open").count == 4)
            let page = try await client.call(.get, "/api/v1/incidents?limit=2", headers: harness.auth("admin"))
            let next = try #require(page.object["next_before"] as? Int)
            #expect(try await numbers("?limit=2&before=\(next)").count == 2)
            #expect(try await numbers("", as: "reporter-lincoln").count == 3)
            #expect(try await numbers("", as: "responder-lincoln").count == 3)
            #expect(try await numbers("", as: "auditor").count == 4)
        }
    }

    @Test("health, metrics, on-call, playbooks and the OpenAPI document", arguments: [Backend.sqlite])
    func operations(_ backend: Backend) async throws {
        try await withService(backend) { harness, client in
            #expect(try await client.call(.get, "/health/live").status == .ok)
            let ready = try await client.call(.get, "/health/ready")
            #expect(ready.status == .ok)
            try await client.call(.post, "/api/v1/incidents", headers: harness.auth("admin"), json: reportJSON())
            let metrics = try await client.call(.get, "/metrics", headers: harness.auth("prometheus")).text
            #expect(metrics.contains(#"muster_reports_received_total{source="api"} 1"#))
            #expect(metrics.contains(#"muster_incidents_opened_total{type="suicide-risk",severity="high"} 1"#))
            #expect(metrics.contains("muster_time_to_acknowledge_seconds_bucket"))
            #expect(metrics.contains("muster_outbox_notifications"))
            #expect(metrics.contains("muster_audit_entries_pending"))
            #expect(metrics.contains("muster_audit_checkpoint_latency_seconds_bucket"))
            // The open incident waits for an owner: counted by phase, with how long the oldest has waited.
            #expect(metrics.contains(#"muster_incidents_open{phase="escalating"} 1"#), "\(metrics)")
            #expect(metrics.contains(#"muster_incidents_open{phase="unowned"} 0"#))
            #expect(metrics.contains(#"muster_incident_oldest_waiting_seconds{phase="escalating"}"#))

            // The audit log's public parts: the verifier key, and a checkpoint it signed covering the report's entries.
            let key = try await client.call(.get, "/audit/key")
            #expect(key.status == .ok)
            let verifier = try NoteVerifier(verifierKey: key.text.trimmingCharacters(in: .newlines))
            var checkpoint: Checkpoint?
            let deadline = Date().addingTimeInterval(10)
            while Date() < deadline {
                let response = try await client.call(.get, "/audit/checkpoint")
                if response.status == .ok {
                    checkpoint = try Checkpoint.parse(try SignedNote.open(response.text, verifiers: [verifier]).text)
                    if let size = checkpoint?.size, size >= 5 { break }
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect((checkpoint?.size ?? 0) >= 5, "a signed checkpoint covers the report's audit entries")

            let oncall = try await client.call(.get, "/api/v1/oncall?site=lincoln-high&role=counselor&from=2026-12-07T00:00:00Z&to=2026-12-09T00:00:00Z",
                                               headers: harness.auth("reporter-lincoln"))
            #expect(oncall.status == .ok)
            let schedules = try #require(oncall.object["schedules"] as? [[String: Any]])
            #expect(!schedules.isEmpty)
            #expect(schedules.allSatisfy { $0["role"] as? String == "counselor" })
            let shifts = try #require(schedules.first?["shifts"] as? [[String: Any]])
            #expect(shifts.first?["from"] as? String == "2026-12-07T00:00:00.000Z")
            #expect(shifts.last?["to"] as? String == "2026-12-09T00:00:00.000Z")
            let bad = try await client.call(.get, "/api/v1/oncall?site=lincon-high", headers: harness.auth("admin"))
            #expect(bad.status == .unprocessableContent)

            let playbooks = try await client.call(.get, "/api/v1/playbooks", headers: harness.auth("responder-lincoln"))
            let items = try #require(playbooks.object["playbooks"] as? [[String: Any]])
            #expect(Set(items.compactMap { $0["id"] as? String }) == Set(shippedCatalog.playbooks.playbooks.map(\.id.rawValue)))
            #expect(items.allSatisfy { ($0["version"] as? String)?.hasPrefix("sha256:") == true })

            // With a token, the document names the loaded directory's ids (without one, NoCredentialsTests).
            let document = try await client.call(.get, "/api/v1/openapi.json", headers: harness.auth("responder-lincoln"))
            #expect(document.object["openapi"] as? String == "3.1.0")
            let report = ((document.object["components"] as? [String: Any])?["schemas"] as? [String: Any])?["ReportRequest"] as? [String: Any]
            let site = (report?["properties"] as? [String: Any])?["site"] as? [String: Any]
            #expect(site?["enum"] as? [String] == shippedCatalog.directory.sites.keys.map(\.rawValue).sorted())
        }
    }
}

@Suite("Reporters see their own")
struct ReporterVisibilityTests {
    @Test("a report that joins a colleague's incident: its reporter sees only their own report and the status; its flag is proposed until a responder confirms it",
          arguments: Backend.allCases)
    func reporterSeesOwn(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let first = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("admin"),
                                              json: reportJSON(summary: "Colleague's account: the student mentioned pills at home", subject: "S-OWN"))
            let number = try #require((first.object["incident"] as? [String: Any])?["number"] as? Int)
            let mine = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("reporter-lincoln"), json: """
                {"type": "suicide-risk", "severity": "high", "site": "lincoln-high", "subject": "S-OWN",
                 "summary": "My account: she told me not to call her parents", "flags": ["guardian-contact-unsafe"]}
                """)
            #expect(mine.status == .ok)
            #expect(mine.object["outcome"] as? String == "merged")
            #expect((mine.object["incident"] as? [String: Any])?["number"] as? Int == number)
            #expect((mine.object["paging"] as? [Any])?.isEmpty == true, "who is paged for someone else's incident is not the reporter's to see")
            #expect(!mine.text.contains("Colleague's account"))

            let id = try #require(try await harness.store.incidentID(number: number))
            #expect(try await harness.store.incident(id)?.tasks.contains { $0.id == "guardian" } == true, "another person's flag withdraws nothing by itself")
            #expect(try await harness.store.timeline(id).contains { $0.action == .flagProposed && $0.target == "F1" })
            #expect(try await client.call(.post, "/api/v1/incidents/\(number)/notes", headers: harness.auth("responder-lincoln"),
                                          json: #"{"text": "Responder's note: spoke with the nurse"}"#).status == .ok)

            let seen = try await client.call(.get, "/api/v1/incidents/\(number)", headers: harness.auth("reporter-lincoln"))
            #expect(seen.status == .ok)
            let reports = try #require(seen.object["reports"] as? [[String: Any]])
            #expect(reports.count == 1)
            #expect(reports.first?["reporter"] as? String == "person:reporter-lincoln")
            #expect(seen.object["summary"] as? String == "My account: she told me not to call her parents")
            #expect(!seen.text.contains("Colleague's account") && !seen.text.contains("person:admin") && !seen.text.contains("Responder's note"))
            let entries = try #require(seen.object["timeline"] as? [[String: Any]])
            #expect(!entries.isEmpty && entries.allSatisfy { $0["actor"] as? String == "person:reporter-lincoln" })
            #expect((seen.object["incident"] as? [String: Any])?["status"] as? String != nil, "the status is theirs to see")
            // Once a responder owns it, the reporter still sees its status, not who owns it.
            #expect(try await client.call(.post, "/api/v1/incidents/\(number)/acknowledge", headers: harness.auth("responder-lincoln")).status == .ok)
            let owned = try await client.call(.get, "/api/v1/incidents/\(number)", headers: harness.auth("reporter-lincoln"))
            #expect((owned.object["incident"] as? [String: Any])?["status"] as? String == "acknowledged")
            #expect(!owned.text.contains("responder-lincoln"))
            let noted = try await client.call(.post, "/api/v1/incidents/\(number)/notes", headers: harness.auth("reporter-lincoln"),
                                              json: #"{"text": "She came back to class"}"#)
            #expect(noted.status == .ok && !noted.text.contains("responder-lincoln"))
            // The responder still sees everything.
            let full = try await client.call(.get, "/api/v1/incidents/\(number)", headers: harness.auth("responder-lincoln"))
            #expect((full.object["reports"] as? [Any])?.count == 2)

            let confirmed = try await client.call(.post, "/api/v1/incidents/\(number)/flags/guardian-contact-unsafe/confirm",
                                                  headers: harness.auth("responder-lincoln"))
            #expect(confirmed.status == .ok)
            #expect(try await harness.store.incident(id)?.tasks.contains { $0.id == "guardian" } == false)
            let timeline = try await harness.store.timeline(id)
            #expect(timeline.contains { $0.action == .flagConfirmed && $0.actor == .person("responder-lincoln") })
            #expect(timeline.contains { $0.action == .taskWithdrawn && $0.task == "guardian" && $0.actor == .person("responder-lincoln") })
            let unknown = try await client.call(.post, "/api/v1/incidents/\(number)/flags/no-such-flag/confirm", headers: harness.auth("responder-lincoln"))
            #expect(unknown.status == .conflict)
            #expect(unknown.text.contains("no flag 'no-such-flag'"))

            // The decision reversed, with why: the task comes back, and the why is sealed on the timeline.
            let noReason = try await client.call(.post, "/api/v1/incidents/\(number)/flags/guardian-contact-unsafe/clear",
                                                 headers: harness.auth("responder-lincoln"), json: "{}")
            #expect(noReason.status == .badRequest)
            let cleared = try await client.call(.post, "/api/v1/incidents/\(number)/flags/guardian-contact-unsafe/clear",
                                                headers: harness.auth("responder-lincoln"), json: #"{"reason": "Mother is not the concern after all"}"#)
            #expect(cleared.status == .ok)
            #expect(try await harness.store.incident(id)?.tasks.contains { $0.id == "guardian" } == true)
            let after = try await harness.store.timeline(id)
            #expect(after.contains { $0.action == .flagCleared && $0.actor == .person("responder-lincoln") && $0.sensitive == "Mother is not the concern after all" })
            #expect(after.contains { $0.action == .taskRestored && $0.task == "guardian" })
            // A disclosure the responder made outside Muster, on the record with what and why sealed.
            let disclosure = try await client.call(.post, "/api/v1/incidents/\(number)/disclosures", headers: harness.auth("responder-lincoln"),
                                                   json: #"{"recipient": "Riverbend Police Department", "what": "Class schedule and photo", "basis": "Missing, believed at risk"}"#)
            #expect(disclosure.status == .ok)
            let disclosed = try #require(try await harness.store.timeline(id).last { $0.action == .disclosed })
            #expect(disclosed.target == "Riverbend Police Department" && disclosed.actor == .person("responder-lincoln"))
            #expect(disclosed.sensitive == "What: Class schedule and photo\nBasis: Missing, believed at risk")
            #expect(try await client.call(.post, "/api/v1/incidents/\(number)/disclosures", headers: harness.auth("responder-lincoln"),
                                          json: #"{"recipient": "Police"}"#).status == .badRequest, "what and the basis are required")
            // A parent's request: every disclosure concerning the student reference, for an auditor, each read on the record.
            let listed = try await client.call(.get, "/api/v1/disclosures?subject=S-OWN", headers: harness.auth("auditor"))
            #expect(listed.status == .ok)
            let items = try #require(listed.object["disclosures"] as? [[String: Any]])
            #expect(items.contains { $0["recipient"] as? String == "Riverbend Police Department" && $0["incident"] as? Int == number
                && ($0["statement"] as? String)?.contains("Class schedule and photo") == true })
            #expect(try await harness.store.timeline(id).last?.action == .accessed)
            #expect(try await client.call(.get, "/api/v1/disclosures?subject=S-NOBODY", headers: harness.auth("auditor")).object["disclosures"] as? [Any] != nil)
            #expect(try await client.call(.get, "/api/v1/disclosures?subject=S-OWN", headers: harness.auth("responder-lincoln")).status == .forbidden)
            #expect(try await client.call(.get, "/api/v1/disclosures", headers: harness.auth("auditor")).status == .badRequest)
            let again = try await client.call(.post, "/api/v1/incidents/\(number)/flags/guardian-contact-unsafe/clear",
                                              headers: harness.auth("responder-lincoln"), json: #"{"reason": "twice"}"#)
            #expect(again.status == .conflict)
            #expect(try await client.call(.post, "/api/v1/incidents/\(number)/flags/guardian-contact-unsafe/set",
                                          headers: harness.auth("reporter-lincoln"), json: #"{"reason": "x"}"#).status == .forbidden)
        }
    }
}
