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
}
