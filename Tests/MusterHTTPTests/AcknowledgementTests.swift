// One-tap acknowledgement as people use it: the signed link in a page (GET only shows, POST
// acknowledges, a used, changed or expired link is refused) and an SMS reply through the
// provider's signed webhook. Live service, both stores.
import Foundation
import HTTPTypes
import HummingbirdTesting
import MusterCore
import MusterNotify
import MusterStore
import MusterTestSupport
import Testing

@Suite("Acknowledgement by link and SMS")
struct AcknowledgementTests {
    /// Reports an incident and waits for its first page to a person; returns the incident number and that page.
    func pagedIncident(_ harness: Harness, _ client: some TestClientProtocol, subject: String, channel: String? = nil) async throws
        -> (number: Int, page: [String: String]) {
        let created = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("reporter-lincoln"),
                                            json: reportJSON(summary: "Student said they have a plan", subject: subject))
        #expect(created.status == .created)
        let number = try #require((created.object["incident"] as? [String: Any])?["number"] as? Int)
        var page: [String: String]?
        _ = await eventually(10) {
            page = harness.deliveries().first { line in
                line["number"] == "\(number)" && line["kind"] == "page" && line["recipient"]?.hasPrefix("person:") == true
                    && (channel == nil || line["channel"] == channel)
            }
            return page != nil
        }
        return (number, try #require(page, "no page for incident #\(number) was delivered"))
    }

    func state(_ harness: Harness, _ number: Int) async throws -> IncidentState {
        let id = try #require(try await harness.store.incidentID(number: number))
        return try #require(try await harness.store.incident(id))
    }

    @Test("a page's link: GET only shows a confirmation; POST acknowledges as the paged person; the link never acknowledges twice",
          arguments: Backend.allCases)
    func linkAcknowledges(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let (number, page) = try await pagedIncident(harness, client, subject: "S-LINK")
            let link = try #require(page["ack_url"].flatMap { $0.isEmpty ? nil : $0 })
            #expect(link.hasPrefix(testPublicURL + "/ack/"))
            let path = String(link.dropFirst(testPublicURL.count))
            let shown = try await client.call(.get, path)
            #expect(shown.status == .ok)
            #expect(shown.headers[.contentType]?.hasPrefix("text/html") == true)
            #expect(shown.text.contains("Take ownership of incident #\(number)?"))
            #expect(shown.text.contains("<form method=\"post\" action=\"\(path)\">"))
            #expect(!shown.text.contains("Student said"), "the page shows no more than an SMS would")
            #expect(try await state(harness, number).phase != .acknowledged, "a GET (a mail scanner) acknowledges nothing")

            let taken = try await client.call(.post, path)
            #expect(taken.status == .ok)
            #expect(taken.text.contains("Incident #\(number) is yours"))
            let after = try await state(harness, number)
            let person = try #require(page["recipient"].flatMap { Actor($0) })
            #expect(after.phase == .acknowledged)
            #expect(after.owner == person)
            let id = after.incident.id
            let ack = try #require(try await harness.store.timeline(id).first { $0.action == .acknowledged })
            #expect(ack.actor == person)
            #expect(ack.detail?.contains("link") == true)

            let replayed = try await client.call(.post, path)
            #expect(replayed.status == .conflict)
            #expect(replayed.text.contains("Already acknowledged"))
            #expect(try await harness.store.timeline(id).filter { $0.action == .acknowledged }.count == 1)
        }
    }

    @Test("changed, foreign, expired and malformed links are refused and change nothing", arguments: Backend.allCases)
    func badLinks(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let (number, page) = try await pagedIncident(harness, client, subject: "S-FORGED")
            let token = try #require(page["ack_url"]?.split(separator: "/").last.map(String.init))
            let id = try #require(NotificationID(page["id"] ?? ""))
            var changed = Array(token)
            changed[3] = changed[3] == "x" ? "y" : "x"
            let foreign = AckLinkSigner(secret: Data(repeating: 1, count: 32)).token(for: id, now: Date())
            let expired = harness.links.token(for: id, now: Date().addingTimeInterval(-2 * 24 * 3600))
            for (bad, status) in [(String(changed), HTTPResponse.Status.forbidden), (foreign, .forbidden), (expired, .gone), ("not-a-token", .forbidden)] {
                for method in [HTTPRequest.Method.get, .post] {
                    let response = try await client.call(method, "/ack/\(bad)")
                    #expect(response.status == status, "\(method) /ack/\(bad.prefix(12))…")
                }
            }
            #expect(try await state(harness, number).phase != .acknowledged)
        }
    }

    @Test("an SMS reply 'ACK N' acknowledges incident N for the person whose phone sent it; a bad signature is refused",
          arguments: Backend.allCases)
    func smsReply(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let (number, page) = try await pagedIncident(harness, client, subject: "S-SMS-1", channel: "sms")
            let (other, _) = try await pagedIncident(harness, client, subject: "S-SMS-2", channel: "sms")
            let phone = try #require(page["address"])
            let path = "/api/v1/integrations/twilio/sms"
            let form = ["From": phone, "To": "+15555550000", "Body": "ack \(number)", "MessageSid": "SM0123456789abcdef", "AccountSid": "AC123"]
            let body = form.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")" }.joined(separator: "&")
            let signature = TwilioSignature.signature(url: testPublicURL + path, parameters: form, authToken: testTwilioAuthToken)

            let forged = try await client.execute(uri: path, method: .post, headers: [.contentType: "application/x-www-form-urlencoded",
                                                                                      HTTPField.Name("X-Twilio-Signature")!: "AAAA" + signature.dropFirst(4)],
                                                  body: .init(string: body))
            #expect(forged.status == .forbidden)
            #expect(try await state(harness, number).phase != .acknowledged)

            let reply = try await client.execute(uri: path, method: .post, headers: [.contentType: "application/x-www-form-urlencoded",
                                                                                     HTTPField.Name("X-Twilio-Signature")!: signature],
                                                 body: .init(string: body))
            #expect(reply.status == .ok)
            #expect(reply.headers[.contentType]?.hasPrefix("text/xml") == true)
            #expect(reply.text.contains("<Response><Message>Muster: incident #\(number) acknowledged. It is yours.</Message></Response>"))
            let acknowledged = try await state(harness, number)
            #expect(acknowledged.phase == .acknowledged)
            #expect(acknowledged.owner == page["recipient"].flatMap { Actor($0) })
            #expect(try await state(harness, other).phase != .acknowledged, "only the incident the reply names")
            let ack = try #require(try await harness.store.timeline(acknowledged.incident.id).first { $0.action == .acknowledged })
            #expect(ack.detail?.contains("sms") == true)
        }
    }
}
