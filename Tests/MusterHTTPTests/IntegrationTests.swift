// The integrations with payloads as their public documentation gives them: Prometheus
// Alertmanager's webhook (version 4, docs "webhook_config") and PagerDuty's Events API v2
// ("Send an Alert Event": trigger, acknowledge, resolve, dedup_key, routing_key).
import Foundation
import HTTPTypes
import HummingbirdTesting
import MusterCore
import MusterStore
import MusterTestSupport
import Testing

/// Alertmanager's documented webhook body, with two alerts of one group.
private func alertmanagerPayload(status: String, site: String = "lincoln-high", endsAt: String = "0001-01-01T00:00:00Z") -> String {
    """
    {
      "version": "4",
      "groupKey": "{}/{muster_type=\\"medical-emergency\\"}:{alertname=\\"NurseCallButton\\"}",
      "truncatedAlerts": 0,
      "status": "\(status)",
      "receiver": "muster",
      "groupLabels": {"alertname": "NurseCallButton"},
      "commonLabels": {"alertname": "NurseCallButton", "muster_type": "medical-emergency", "severity": "critical"},
      "commonAnnotations": {"summary": "Nurse call button pressed"},
      "externalURL": "http://alertmanager.example:9093",
      "alerts": [
        {
          "status": "\(status)",
          "labels": {"alertname": "NurseCallButton", "muster_type": "medical-emergency", "severity": "critical", "site": "\(site)", "room": "gym"},
          "annotations": {"summary": "Nurse call button pressed in the gym"},
          "startsAt": "2026-11-23T14:02:11.123Z",
          "endsAt": "\(endsAt)",
          "generatorURL": "http://prometheus.example:9090/graph?g0.expr=nurse_call_pressed",
          "fingerprint": "6f2b7c0d9e1a4b35"
        },
        {
          "status": "\(status)",
          "labels": {"alertname": "NurseCallButton", "muster_type": "medical-emergency", "severity": "warning", "site": "washington-elementary", "room": "office"},
          "annotations": {"summary": "Nurse call button pressed in the office"},
          "startsAt": "2026-11-23T14:02:40.000Z",
          "endsAt": "\(endsAt)",
          "generatorURL": "http://prometheus.example:9090/graph?g0.expr=nurse_call_pressed",
          "fingerprint": "0a1b2c3d4e5f6789"
        }
      ]
    }
    """
}

@Suite("Integrations", .serialized)
struct IntegrationTests {
    @Test("Alertmanager: firing alerts open incidents once, resolved alerts add a note, bad labels are refused whole", arguments: Backend.allCases)
    func alertmanager(_ backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let headers = harness.auth("monitoring")
            let first = try await client.call(.post, "/api/v1/integrations/alertmanager", headers: headers, json: alertmanagerPayload(status: "firing"))
            #expect(first.status == .accepted)
            let incidents = try await harness.store.incidents(IncidentFilter())
            #expect(incidents.count == 2)
            #expect(Set(incidents.map(\.site.rawValue)) == ["lincoln-high", "washington-elementary"])
            #expect(incidents.allSatisfy { $0.type.rawValue == "medical-emergency" })
            #expect(Set(incidents.map(\.severity)) == [.high, .moderate])  // critical → high, warning → moderate

            // Alertmanager repeats firing alerts (repeat_interval) and retries failed posts: nothing new.
            let repeated = try await client.call(.post, "/api/v1/integrations/alertmanager", headers: headers, json: alertmanagerPayload(status: "firing"))
            #expect(repeated.status == .accepted)
            #expect(try await harness.store.incidents(IncidentFilter()).count == 2)

            let resolved = try await client.call(.post, "/api/v1/integrations/alertmanager", headers: headers,
                                                 json: alertmanagerPayload(status: "resolved", endsAt: "2026-11-23T14:09:00Z"))
            #expect(resolved.status == .accepted)
            for incident in incidents {
                let timeline = try await harness.store.timeline(incident.ref.id)
                #expect(timeline.first?.actor == .integration("monitoring"))
                #expect(timeline.contains { $0.action == .noteAdded && $0.sensitive?.contains("resolved at 2026-11-23T14:09:00Z") == true })
                // Still open: a person decides when a crisis is over.
                #expect(incident.phase != "resolved")
            }

            let unknownSite = try await client.call(.post, "/api/v1/integrations/alertmanager", headers: headers,
                                                    json: alertmanagerPayload(status: "firing", site: "lincoln").replacingOccurrences(of: "6f2b7c0d9e1a4b35", with: "new1"))
            #expect(unknownSite.status == .unprocessableContent)
            #expect(unknownSite.text.contains("/alerts/0/labels/site"))
            #expect(unknownSite.text.contains("expected one of: lincoln-high"))
            // Nothing of that payload was committed, not even its valid second alert's new key.
            #expect(try await harness.store.incidents(IncidentFilter()).count == 2)

            let notWebhook = try await client.call(.post, "/api/v1/integrations/alertmanager", headers: headers, json: #"{"hello":"world"}"#)
            #expect(notWebhook.status == .badRequest)
        }
    }

    @Test("PagerDuty Events API v2: trigger, dedup, acknowledge, resolve, trigger again; invalid events", arguments: Backend.allCases)
    func pagerDuty(_ backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let key = try #require(harness.tokens["monitoring"])
            #expect(key.count == 32)
            let json: HTTPFields = [.contentType: "application/json"]
            func trigger(_ dedup: String?) -> String {
                """
                {
                  "payload": {
                    "summary": "Door forced open at the north entrance",
                    "timestamp": "2026-11-23T08:42:58.315+0000",
                    "source": "access-control:lincoln-high:north-entrance",
                    "severity": "critical",
                    "component": "north-entrance",
                    "group": "lincoln-high",
                    "class": "threat-of-violence",
                    "custom_details": {"reader": "NE-2", "attempts": 3}
                  },
                  "routing_key": "\(key)",
                  \(dedup.map { "\"dedup_key\": \"\($0)\"," } ?? "")
                  "images": [{"src": "https://example.com/cam.png", "href": "https://example.com/", "alt": "camera"}],
                  "links": [{"href": "https://example.com/", "text": "Camera"}],
                  "event_action": "trigger",
                  "client": "Access Control",
                  "client_url": "https://access.example.com"
                }
                """
            }
            let first = try await client.call(.post, "/v2/enqueue", headers: json, json: trigger("door-ne-1"))
            #expect(first.status == .accepted)
            #expect(first.object["status"] as? String == "success")
            #expect(first.object["message"] as? String == "Event processed")
            #expect(first.object["dedup_key"] as? String == "door-ne-1")
            var incidents = try await harness.store.incidents(IncidentFilter())
            #expect(incidents.count == 1)
            #expect(incidents.first?.type.rawValue == "threat-of-violence")
            #expect(incidents.first?.site.rawValue == "lincoln-high")
            #expect(incidents.first?.severity == .high)

            // A second trigger with the same dedup_key joins the open incident.
            #expect(try await client.call(.post, "/v2/enqueue", headers: json, json: trigger("door-ne-1")).status == .accepted)
            #expect(try await harness.store.incidents(IncidentFilter()).count == 1)

            let ack = #"{"routing_key": "\#(key)", "dedup_key": "door-ne-1", "event_action": "acknowledge"}"#
            #expect(try await client.call(.post, "/v2/enqueue", headers: json, json: ack).status == .accepted)
            let id = try #require(incidents.first?.ref.id)
            #expect(try await harness.store.incident(id)?.phase == .acknowledged)
            let resolve = #"{"routing_key": "\#(key)", "dedup_key": "door-ne-1", "event_action": "resolve"}"#
            #expect(try await client.call(.post, "/v2/enqueue", headers: json, json: resolve).status == .accepted)
            #expect(try await harness.store.incident(id)?.phase == .resolved)
            // Resolving again is dropped, as PagerDuty drops it.
            #expect(try await client.call(.post, "/v2/enqueue", headers: json, json: resolve).status == .accepted)

            // After the resolution the same dedup_key opens a new incident.
            #expect(try await client.call(.post, "/v2/enqueue", headers: json, json: trigger("door-ne-1")).status == .accepted)
            incidents = try await harness.store.incidents(IncidentFilter())
            #expect(incidents.count == 2)
            #expect(incidents.filter { $0.phase != "resolved" }.count == 1)

            // Without a dedup_key a key is made and returned (the report still groups by the playbook's key:
            // a second door alarm at the same school joins the open threat incident).
            let fresh = try await client.call(.post, "/v2/enqueue", headers: json, json: trigger(nil))
            #expect((fresh.object["dedup_key"] as? String)?.isEmpty == false)

            // Invalid events get PagerDuty's error shape.
            let badKey = try await client.call(.post, "/v2/enqueue", headers: json,
                                               json: trigger("x").replacingOccurrences(of: key, with: "00000000000000000000000000000000"))
            #expect(badKey.status == .badRequest)
            #expect(badKey.object["status"] as? String == "invalid event")
            #expect(badKey.object["message"] as? String == "Event object is invalid")
            let missing = try await client.call(.post, "/v2/enqueue", headers: json, json: #"{"routing_key": "\#(key)", "event_action": "trigger"}"#)
            #expect(missing.status == .badRequest)
            #expect((missing.object["errors"] as? [String])?.contains { $0.contains("payload") } == true)
            let noDedup = try await client.call(.post, "/v2/enqueue", headers: json, json: #"{"routing_key": "\#(key)", "event_action": "resolve"}"#)
            #expect(noDedup.status == .badRequest)
            let notJSON = try await client.call(.post, "/v2/enqueue", headers: json, json: "{")
            #expect(notJSON.status == .badRequest)
            #expect(notJSON.object["status"] as? String == "invalid event")
            // A person's API token is not an integration key.
            let person = try await client.call(.post, "/v2/enqueue", headers: json,
                                               json: trigger("y").replacingOccurrences(of: key, with: harness.tokens["admin"] ?? ""))
            #expect(person.status == .badRequest)
            #expect(try await harness.store.incidents(IncidentFilter()).count == 2)
            #expect(try await harness.store.incident(incidents.first { $0.phase != "resolved" }?.ref.id ?? id)?.reportCount == 2)
        }
    }

    // MARK: Integrations own only what they raised (issue 20, item 1)

    /// A PagerDuty Events API v2 event as its documentation gives it: a door alarm at Lincoln High.
    static func doorAlarm(_ action: String, key: String, dedup: String) -> String {
        guard action == "trigger" else {
            return #"{"routing_key": "\#(key)", "dedup_key": "\#(dedup)", "event_action": "\#(action)"}"#
        }
        return """
            {"payload": {"summary": "Door forced open at the north entrance", "source": "access-control:lincoln-high:north-entrance",
                         "severity": "critical", "group": "lincoln-high", "class": "threat-of-violence"},
             "routing_key": "\(key)", "dedup_key": "\(dedup)", "event_action": "trigger"}
            """
    }

    /// A teacher's threat report at Lincoln High; its incident's id and number.
    func teacherReport(_ harness: Harness, _ client: some TestClientProtocol) async throws -> (id: IncidentID, number: Int) {
        let created = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("reporter-lincoln"),
                                            json: reportJSON(type: "threat-of-violence", summary: "A student said he will bring a gun tomorrow"))
        #expect(created.status == .created)
        let incident = try #require(created.object["incident"] as? [String: Any])
        return (IncidentID(try #require(incident["id"] as? String)), try #require(incident["number"] as? Int))
    }

    func incident(forDedup dedup: String, _ harness: Harness) async throws -> IncidentState {
        let id = try #require(try await harness.store.incidentID(idempotencyKey: "pd:monitoring:\(dedup)"))
        return try #require(try await harness.store.incident(id))
    }

    @Test("a door alarm at a teacher's site opens its own incident, and its resolve and acknowledge close only that one", arguments: Backend.allCases)
    func integrationNeverJoinsAPerson(_ backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let key = try #require(harness.tokens["monitoring"])
            let json: HTTPFields = [.contentType: "application/json"]
            let teacher = try await teacherReport(harness, client)
            #expect(try await client.call(.post, "/v2/enqueue", headers: json, json: Self.doorAlarm("trigger", key: key, dedup: "door-1")).status == .accepted)
            let door = try await incident(forDedup: "door-1", harness)
            #expect(door.incident.id != teacher.id, "the alarm does not join the teacher's incident")
            #expect(try await harness.store.reports(teacher.id).map(\.reporter) == [.person("reporter-lincoln")])
            // A second teacher's report at the site still joins the first teacher's, not the alarm's.
            let second = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("admin"),
                                               json: reportJSON(type: "threat-of-violence", summary: "Same threat, another class"))
            #expect(second.object["outcome"] as? String == "merged")
            #expect((second.object["incident"] as? [String: Any])?["number"] as? Int == teacher.number)

            #expect(try await client.call(.post, "/v2/enqueue", headers: json, json: Self.doorAlarm("acknowledge", key: key, dedup: "door-1")).status == .accepted)
            #expect(try await client.call(.post, "/v2/enqueue", headers: json, json: Self.doorAlarm("resolve", key: key, dedup: "door-1")).status == .accepted)
            #expect(try await harness.store.incident(door.incident.id)?.phase == .resolved)
            let teachers = try #require(try await harness.store.incident(teacher.id))
            #expect(teachers.phase == .escalating(step: 0, round: 0), "the teacher's incident still escalates")
            #expect(!teachers.timers.isEmpty)
            #expect(try await harness.store.timeline(teacher.id).allSatisfy { $0.actor != .integration("monitoring") })
        }
    }

    @Test("an alarm system's drill says so in custom_details.muster_drill (true, a string or a boolean); anything else is an invalid event")
    func integrationDrill() async throws {
        try await withService(.sqlite) { harness, client in
            let key = try #require(harness.tokens["monitoring"])
            let json: HTTPFields = [.contentType: "application/json"]
            func alarm(_ dedup: String, drill: String) -> String {
                Self.doorAlarm("trigger", key: key, dedup: dedup)
                    .replacingOccurrences(of: #""class": "threat-of-violence"}"#, with: #""class": "threat-of-violence", "custom_details": {"muster_drill": \#(drill)}}"#)
            }
            #expect(try await client.call(.post, "/v2/enqueue", headers: json, json: alarm("drill-1", drill: "true")).status == .accepted)
            #expect(try await incident(forDedup: "drill-1", harness).incident.drill)
            #expect(try await client.call(.post, "/v2/enqueue", headers: json, json: alarm("drill-2", drill: #""true""#)).status == .accepted)
            #expect(try await incident(forDedup: "drill-2", harness).incident.drill)
            #expect(try await client.call(.post, "/v2/enqueue", headers: json, json: alarm("drill-3", drill: "false")).status == .accepted)
            #expect(try await incident(forDedup: "drill-3", harness).incident.drill == false)
            let wrong = try await client.call(.post, "/v2/enqueue", headers: json, json: alarm("drill-4", drill: #""sometimes""#))
            #expect(wrong.status == .badRequest)
            #expect((wrong.object["errors"] as? [String])?.first == "/payload/custom_details/muster_drill: must be true or false, not 'sometimes'")
        }
    }

    @Test("once a responder joins a person's report in, the integration's acknowledge and resolve are refused in PagerDuty's shape and audited",
          arguments: Backend.allCases)
    func joinedIncidentIsBeyondTheIntegration(_ backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let key = try #require(harness.tokens["monitoring"])
            let json: HTTPFields = [.contentType: "application/json"]
            #expect(try await client.call(.post, "/v2/enqueue", headers: json, json: Self.doorAlarm("trigger", key: key, dedup: "door-2")).status == .accepted)
            let door = try await incident(forDedup: "door-2", harness)
            let teacher = try await teacherReport(harness, client)
            #expect(teacher.id != door.incident.id)

            let joined = try await client.call(.post, "/api/v1/incidents/\(teacher.number)/join", headers: harness.auth("responder-lincoln"),
                                               json: #"{"into": \#(door.incident.number)}"#)
            #expect(joined.status == .ok)
            #expect(joined.object["number"] as? Int == door.incident.number)
            #expect(try await harness.store.incident(teacher.id)?.phase == .resolved)
            let reports = try await harness.store.reports(door.incident.id)
            #expect(Set(reports.map(\.reporter)) == [.integration("monitoring"), .person("reporter-lincoln")])
            #expect(reports.contains { $0.summary == "A student said he will bring a gun tomorrow" }, "the report's words come along, sealed again")
            let reopened = try await client.call(.post, "/api/v1/incidents/\(teacher.number)/reopen", headers: harness.auth("coordinator-lincoln"))
            #expect(reopened.status == .conflict, "a joined incident's reports live on in the other: it is not reopened")
            #expect(reopened.text.contains("joined into incident #\(door.incident.number)"))
            let joinedEntries = try await harness.store.timeline(door.incident.id).filter { $0.action == .joined }
            #expect(joinedEntries.count == 1 && joinedEntries.first?.actor == .person("responder-lincoln"))
            #expect(try await harness.store.timeline(teacher.id).contains { $0.action == .joined && $0.detail?.contains("#\(door.incident.number)") == true })

            for action in ["acknowledge", "resolve"] {
                let refused = try await client.call(.post, "/v2/enqueue", headers: json, json: Self.doorAlarm(action, key: key, dedup: "door-2"))
                #expect(refused.status == .badRequest)
                #expect(refused.object["status"] as? String == "invalid event")
                #expect(refused.object["message"] as? String == "Event object is invalid")
                #expect((refused.object["errors"] as? [String])?.first?.contains("\(action) refused") == true)
            }
            let after = try #require(try await harness.store.incident(door.incident.id))
            #expect(after.phase != .resolved && after.phase != .acknowledged)
            let refusals = try await harness.store.timeline(door.incident.id).filter { $0.action == .refused }
            #expect(refusals.map(\.actor) == [.integration("monitoring"), .integration("monitoring")])
        }
    }

    @Test("joining: into itself, into a resolved incident, and without 'into' are refused and change nothing", arguments: Backend.allCases)
    func joinRefusals(_ backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let teacher = try await teacherReport(harness, client)
            let headers = harness.auth("responder-lincoln")
            let itself = try await client.call(.post, "/api/v1/incidents/\(teacher.number)/join", headers: headers, json: #"{"into": \#(teacher.number)}"#)
            #expect(itself.status == .conflict)
            #expect(itself.text.contains("cannot join itself"))
            let missing = try await client.call(.post, "/api/v1/incidents/\(teacher.number)/join", headers: headers, json: "{}")
            #expect(missing.status == .badRequest || missing.status == .unprocessableContent)
            #expect(missing.text.contains("into"))
            let other = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("reporter-lincoln"),
                                              json: reportJSON(summary: "A different concern", subject: "S-77"))
            let otherNumber = try #require((other.object["incident"] as? [String: Any])?["number"] as? Int)
            #expect(try await client.call(.post, "/api/v1/incidents/\(otherNumber)/resolve", headers: headers, json: #"{"outcome":"handled-at-school"}"#).status == .ok)
            let intoResolved = try await client.call(.post, "/api/v1/incidents/\(teacher.number)/join", headers: headers, json: #"{"into": \#(otherNumber)}"#)
            #expect(intoResolved.status == .conflict)
            #expect(try await harness.store.incident(teacher.id)?.phase != .resolved, "a refused join closes nothing")
            #expect(try await harness.store.timeline(teacher.id).contains { $0.action == .joined } == false)
        }
    }
}

