// One-tap acknowledgement as people use it: the signed link in a page (GET only shows, POST
// acknowledges, a used, changed or expired link is refused) and an SMS reply through the
// provider's signed webhook. Live service, both stores.
import Foundation
import HTTPTypes
import HummingbirdTesting
import MusterCore
import MusterNotify
import MusterRuntime
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
            let metrics = try await client.call(.get, "/metrics", headers: harness.auth("prometheus")).text
            #expect(metrics.contains("muster_time_to_acknowledge_seconds_count 1"), "an SMS acknowledgement is timed like any other")
        }
    }

    @Test("a reminder to a reporter who owes a task is no page: 'ACK N' in answer to it takes nothing", arguments: [Backend.sqlite])
    func reminderIsNoPage(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            // Joy Mwangi, a teacher, owes the mandated report personally; the steps page others.
            let report = Report(type: "abuse-disclosure", severity: .high, site: "washington-elementary", reporter: .person("jmwangi"),
                                summary: "Disclosed at recess", receivedAt: Date())
            guard case .success(.created(let ref, _)) = try await harness.server.runtime.report(ReportIntake(report: report)).map(\.outcome) else {
                Issue.record("no incident was created")
                return
            }
            _ = try await harness.server.runtime.apply(.timerFired(.taskReminder("mandated-report", index: 0)), to: ref.id)
            let timeline = try await harness.store.timeline(ref.id)
            #expect(timeline.contains { $0.action == .paged && $0.notification?.kind == .taskReminder && $0.recipient == .person("jmwangi")
                && $0.channel == .sms })
            let answer = try await sms(client, from: "+15555550131", "ACK \(ref.number)", sid: "SMreminder\(backend)")
            #expect(answer.reply.contains("you were not paged by SMS for incident #\(ref.number)"), "\(answer.reply)")
            #expect(try await state(harness, ref.number).phase != .acknowledged)
            #expect(try await sms(client, from: "+15555550131", "ACK", sid: "SMreminder2\(backend)").reply.contains("no page waiting"))
        }
    }

    // MARK: SMS replies: a grammar, not a keyword search (issue 20)

    /// Posts an inbound SMS as Twilio does, signed with the test auth token; returns the status and the TwiML's message.
    func sms(_ client: some TestClientProtocol, from phone: String, _ body: String, sid: String) async throws -> (status: HTTPResponse.Status, reply: String) {
        let path = "/api/v1/integrations/twilio/sms"
        let response = try await client.twilio(path, ["From": phone, "To": "+15555550000", "Body": body, "MessageSid": sid,
                                                      "AccountSid": "AC123", "NumSegments": "1"])
        let text = response.text
        guard let start = text.range(of: "<Message>"), let end = text.range(of: "</Message>") else { return (response.status, text) }
        return (response.status, String(text[start.upperBound..<end.lowerBound]))
    }

    @Test("replies that only contain a keyword acknowledge nothing: the sender gets the accepted forms, the reply is kept sealed on the timeline",
          arguments: Backend.allCases)
    func notAnAcknowledgement(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let (number, page) = try await pagedIncident(harness, client, subject: "S-SMS-NO", channel: "sms")
            let phone = try #require(page["address"])
            let replies = ["No, not ok", "Cannot take \(number) - in a meeting", "ok", "yes", "A", "ACK \(number) later", "ack \(number) \(number)"]
            for (index, body) in replies.enumerated() {
                let answer = try await sms(client, from: phone, body, sid: "SMnot\(index)\(backend)")
                #expect(answer.status == .ok)
                #expect(answer.reply.contains("ACK 4821"), "'\(body)' is answered with the accepted forms: \(answer.reply)")
                #expect(!answer.reply.contains("acknowledged"), "'\(body)'")
            }
            let state = try await state(harness, number)
            #expect(state.phase != .acknowledged)
            let kept = try await harness.store.timeline(state.incident.id).filter { $0.action == .replyReceived }
            #expect(kept.map(\.sensitive) == replies.map { Optional($0) })
            #expect(kept.allSatisfy { $0.actor == page["recipient"].flatMap { Actor($0) } && $0.detail?.contains("in a meeting") != true })
        }
    }

    @Test("each MessageSid is taken once: a replayed '1' acknowledges nothing new, though a newer page is waiting then",
          arguments: Backend.allCases)
    func replayedMessage(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let (first, page) = try await pagedIncident(harness, client, subject: "S-REPLAY-1", channel: "sms")
            let phone = try #require(page["address"])
            let taken = try await sms(client, from: phone, "1", sid: "SMreplay\(backend)")
            #expect(taken.reply == "Muster: incident #\(first) acknowledged. It is yours.")
            // A later incident pages the same person; the same signed request, replayed, must not take it.
            let (second, secondPage) = try await pagedIncident(harness, client, subject: "S-REPLAY-2", channel: "sms")
            try #require(secondPage["address"] == phone, "the test needs both incidents paged to one phone")
            let replayed = try await sms(client, from: phone, "1", sid: "SMreplay\(backend)")
            #expect(replayed.status == .ok)
            #expect(replayed.reply.contains("already received"))
            #expect(try await state(harness, second).phase != .acknowledged)
            let acknowledgements = try await harness.store.timeline(try await state(harness, first).incident.id).filter { $0.action == .acknowledged }
            #expect(acknowledgements.count == 1)
            // A new message (a new sid) with the same words does take the newer page.
            let fresh = try await sms(client, from: phone, "ack #\(second)", sid: "SMreplay2\(backend)")
            #expect(fresh.reply == "Muster: incident #\(second) acknowledged. It is yours.")
        }
    }

    @Test("a reply that acted on nothing is taken too: replayed once a page is waiting, it still acts on nothing", arguments: Backend.allCases)
    func replayOfAReplyThatDidNothing(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let (first, page) = try await pagedIncident(harness, client, subject: "S-LATE-1", channel: "sms")
            let phone = try #require(page["address"])
            #expect(try await client.call(.post, "/api/v1/incidents/\(first)/acknowledge", headers: harness.auth("admin")).status == .ok)
            let late = try await sms(client, from: phone, "1", sid: "SMlate\(backend)")
            #expect(late.reply.hasPrefix("Muster: you have no page waiting for an answer."))
            let (second, secondPage) = try await pagedIncident(harness, client, subject: "S-LATE-2", channel: "sms")
            try #require(secondPage["address"] == phone, "the test needs both incidents paged to one phone")
            let replayed = try await sms(client, from: phone, "1", sid: "SMlate\(backend)")
            #expect(replayed.reply == "Muster: this message was already received.")
            #expect(try await state(harness, second).phase != .acknowledged)
            let stranger = try await sms(client, from: "+15550000000", "ACK \(second)", sid: "SMstranger-late\(backend)")
            #expect(stranger.reply == "Muster does not know this number.")
            #expect(try await sms(client, from: "+15550000000", "ACK \(second)", sid: "SMstranger-late\(backend)").reply.contains("already received"))
        }
    }

    @Test("'NO N' from everyone paged in step 1 starts step 2 at once; a person not paged by SMS for N is told so and changes nothing",
          arguments: Backend.allCases)
    func everyoneDeclines(backend: Backend) async throws {
        try await withService(backend) { harness, client in
            let (number, _) = try await pagedIncident(harness, client, subject: "S-DECLINE", channel: "sms")
            let id = try await state(harness, number).incident.id
            let stepOne = try await harness.store.timeline(id).filter { $0.action == .paged && $0.step == 0 }
            let smsPages = stepOne.filter { $0.channel == .sms }
            let recipients = Set(stepOne.compactMap(\.recipient))
            try #require(!recipients.isEmpty && Set(smsPages.compactMap(\.recipient)) == recipients, "everyone in step 1 is paged by SMS")
            let directory = shippedCatalog.directory
            func phone(of recipient: Recipient) -> String? {
                guard case .person(let person) = recipient else { return nil }
                return directory.people[person]?.contacts.first { $0.channel == .sms }?.address
            }
            // Someone with a phone who was not paged for this incident.
            let stranger = try #require(directory.people.values.first { person in
                !recipients.contains(.person(person.id)) && person.contacts.contains { $0.channel == .sms }
            })
            let strangerPhone = try #require(stranger.contacts.first { $0.channel == .sms }?.address)
            let refused = try await sms(client, from: strangerPhone, "NO \(number)", sid: "SMstranger\(backend)")
            #expect(refused.reply.hasPrefix("Muster: you were not paged by SMS for incident #\(number)."))
            #expect(try await harness.store.timeline(id).contains { $0.action == .declined } == false)

            for (index, recipient) in recipients.sorted(by: { $0.description < $1.description }).enumerated() {
                #expect(try await state(harness, number).phase == .escalating(step: 0, round: 0), "step 1 waits for everyone paged in it")
                let answer = try await sms(client, from: try #require(phone(of: recipient)), index == 0 ? "no \(number)" : "PASS #\(number)",
                                           sid: "SMdecline\(index)\(backend)")
                #expect(answer.reply == "Muster: noted, you cannot take incident #\(number). Escalation goes on.")
            }
            let after = try await state(harness, number)
            #expect(after.phase == .escalating(step: 1, round: 0), "step 2 started without waiting for step 1's deadline")
            let timeline = try await harness.store.timeline(id)
            #expect(timeline.filter { $0.action == .declined }.count == recipients.count)
            #expect(timeline.contains { $0.action == .stepUnreachable && $0.detail?.contains("declined") == true })
            #expect(timeline.contains { $0.action == .paged && $0.step == 1 })
        }
    }
}

@Suite("No token in any log line")
struct TokenLoggingTests {
    @Test("acknowledgement links and the voice call's key-press URL are logged with their tokens left out, at every level",
          arguments: Backend.allCases)
    func tokensStayOutOfLogs(backend: Backend) async throws {
        let logs = LogCapture()
        try await withService(backend, logs: logs) { harness, client in
            let (_, page) = try await AcknowledgementTests().pagedIncident(harness, client, subject: "S-LOG")
            let link = try #require(page["ack_url"].flatMap { $0.isEmpty ? nil : $0 })
            let token = try #require(link.split(separator: "/").last.map(String.init))
            let path = "/ack/\(token)"
            #expect(try await client.call(.get, path).status == .ok)
            #expect(try await client.call(.post, path).status == .ok)
            let voice = "/api/v1/integrations/twilio/voice?n=\(page["id"]?.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")&t=\(token)"
            _ = try await client.twilio(voice, ["Digits": "1", "CallSid": "CA1", "From": "+15555550000"])
            let lines = logs.captured
            #expect(lines.contains { $0.contains("/ack/[token]") }, "the requests were logged")
            #expect(lines.contains { $0.contains("twilio/voice?") && $0.contains("t=[token]") })
            #expect(!lines.contains { $0.contains(token) }, "no line carries the token")
        }
    }
}

@Suite("Delivery means delivered: Twilio status callbacks")
struct StatusCallbackTests {
    /// Posts a status callback as Twilio does, signed, for the notification `id`.
    func status(_ client: some TestClientProtocol, _ id: String, _ form: [String: String]) async throws -> HTTPResponse.Status {
        try await client.twilio("/api/v1/integrations/twilio/status?n=" + (id.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""),
                                form).status
    }

    static func entries(_ action: AuditAction, of notification: NotificationID, in timeline: [AuditRecord]) -> [AuditRecord] {
        timeline.filter { $0.action == action && $0.notification == notification }
    }

    /// Waits until the provider's acceptance of `id` is on the timeline (`sent`).
    func sent(_ harness: Harness, _ id: NotificationID) async throws {
        let recorded = try await eventually(10) { try await harness.store.timeline(id.incident).contains { $0.action == .sent && $0.notification == id } }
        try #require(recorded, "\(id) was not recorded as sent")
    }

    @Test("an SMS the carrier did not deliver is a failure for good: the person's next contact point is paged; the callback is taken once",
          arguments: Backend.allCases)
    func undeliveredSMS(backend: Backend) async throws {
        try await withService(backend, providerReports: true) { harness, client in
            let (number, page) = try await AcknowledgementTests().pagedIncident(harness, client, subject: "S-UNDELIVERED", channel: "sms")
            let id = try #require(page["id"])
            let notification = try #require(NotificationID(id))
            try await sent(harness, notification)
            let incident = notification.incident
            #expect(try await harness.store.timeline(incident).contains { $0.action == .delivered && $0.notification == notification } == false,
                    "the provider's acceptance is not a delivery")
            let sid = "SID-" + id
            let base = ["MessageSid": sid, "SmsSid": sid, "AccountSid": "AC123", "From": "+15555550000", "To": page["address"] ?? "",
                        "ApiVersion": "2010-04-01"]
            // On its way: nothing to record yet.
            #expect(try await status(client, id, base.merging(["MessageStatus": "sent", "SmsStatus": "sent"]) { $1 }) == .noContent)
            let undelivered = base.merging(["MessageStatus": "undelivered", "SmsStatus": "undelivered", "ErrorCode": "30003"]) { $1 }
            // Refused: no notification, no sid, a sid Twilio never gave this notification, a notification never sent.
            #expect(try await status(client, "not-an-id", undelivered) == .badRequest)
            #expect(try await status(client, id, ["AccountSid": "AC123", "MessageStatus": "undelivered"]) == .badRequest)
            #expect(try await status(client, id, undelivered.merging(["MessageSid": "SMforged", "SmsSid": "SMforged"]) { $1 }) == .notFound)
            let never = NotificationID(incident: notification.incident, cycle: notification.cycle, kind: notification.kind,
                                       qualifier: notification.qualifier, recipient: .person("nobody-paged"), channel: .sms)
            #expect(try await status(client, never.description, undelivered) == .notFound)
            #expect(try await harness.store.timeline(incident).contains { $0.action == .deliveryFailed } == false, "the refused callbacks changed nothing")

            #expect(try await status(client, id, undelivered) == .noContent)
            #expect(try await status(client, id, undelivered) == .noContent, "Twilio's retry is answered")
            let timeline = try await harness.store.timeline(incident)
            let failures = Self.entries(.deliveryFailed, of: notification, in: timeline)
            #expect(failures.count == 1, "the same status is taken once")
            #expect(failures.first?.detail?.contains("undelivered (error 30003)") == true)
            #expect(timeline.contains { $0.action == .channelSubstituted && $0.recipient == notification.recipient && $0.notification == notification },
                    "the person's next contact point is tried")
            let state = try await AcknowledgementTests().state(harness, number)
            #expect(state.currentPages.first { $0.notificationID == notification }?.failed == true)
        }
    }

    @Test("a call answered by a machine, or not answered, is a failure for good; one a person answered is delivered", arguments: Backend.allCases)
    func callOutcomes(backend: Backend) async throws {
        let folder = try PartnerAcknowledgementTests.partnerFirstFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await withService(backend, playbookFolder: folder.path, providerReports: true) { harness, client in
            let partner = PartnerAcknowledgementTests()
            for (index, outcome) in [["CallStatus": "completed", "AnsweredBy": "machine_start"], ["CallStatus": "no-answer"],
                                     ["CallStatus": "completed", "AnsweredBy": "human"]].enumerated() {
                let (number, call) = try await partner.partnerPage(harness, client, channel: "voice")
                let id = try #require(call["id"])
                let notification = try #require(NotificationID(id))
                try await sent(harness, notification)
                let form = ["CallSid": "SID-" + id, "AccountSid": "AC123", "From": "+15555550000", "To": "+15555550190",
                            "ApiVersion": "2010-04-01", "Direction": "outbound-api"].merging(outcome) { $1 }
                #expect(try await status(client, id, form) == .noContent)
                let timeline = try await harness.store.timeline(notification.incident)
                let page = try await AcknowledgementTests().state(harness, number).currentPages.first { $0.notificationID == notification }
                if index < 2 {
                    let detail = timeline.first { $0.action == .deliveryFailed && $0.notification == notification }?.detail ?? ""
                    #expect(detail.contains(index == 0 ? "answered by machine_start, not by a person" : "the call ended no-answer"), "\(detail)")
                    #expect(page?.failed == true, "the round no longer waits on this call")
                } else {
                    #expect(timeline.contains { $0.action == .delivered && $0.notification == notification && $0.detail?.contains("SID-") == true })
                    #expect(page?.failed == false)
                }
            }
        }
    }
}

@Suite("Partners acknowledge")
struct PartnerAcknowledgementTests {
    /// The shipped playbooks, with the threat playbook's first step paging the county's mobile crisis team.
    static func partnerFirstFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-partner-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: repositoryRoot.appendingPathComponent("playbooks"), to: folder)
        try """
            id: threat-of-violence
            title: Threat of violence (partner first)
            match: { types: [threat-of-violence] }
            steps:
              - { notify: [partner:county-mobile-crisis], via: [sms, voice, email], ack_within: 10m, disclosure_basis: "FERPA health or safety emergency, 34 CFR 99.36" }
            fallback: { notify: [role:principal@site], via: [sms] }
            """.write(to: folder.appendingPathComponent("threat-of-violence.yaml"), atomically: true, encoding: .utf8)
        return folder
    }

    /// Reloads the partner-first playbooks, reports a threat, and waits for the partner's page on `channel`.
    func partnerPage(_ harness: Harness, _ client: some TestClientProtocol, channel: String) async throws -> (number: Int, page: [String: String]) {
        #expect(try await client.call(.post, "/api/v1/playbooks/reload", headers: harness.auth("admin")).status == .ok)
        let created = try await client.call(.post, "/api/v1/incidents", headers: harness.auth("admin"),
                                            json: reportJSON(type: "threat-of-violence", site: "washington-elementary", summary: "Threat written on a wall"))
        let number = try #require((created.object["incident"] as? [String: Any])?["number"] as? Int)
        var page: [String: String]?
        _ = await eventually(10) {
            page = harness.deliveries().first { $0["number"] == "\(number)" && $0["recipient"] == "partner:county-mobile-crisis" && $0["channel"] == channel }
            return page != nil
        }
        return (number, try #require(page, "the partner's \(channel) page was not delivered"))
    }

    @Test("a partner's page carries an acknowledgement link and the district's call-back number; its SMS reply acknowledges as the partner",
          arguments: Backend.allCases)
    func partnerBySMS(backend: Backend) async throws {
        let folder = try Self.partnerFirstFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await withService(backend, playbookFolder: folder.path) { harness, client in
            let (number, page) = try await partnerPage(harness, client, channel: "sms")
            #expect(page["ack_url"]?.hasPrefix(testPublicURL + "/ack/") == true)
            #expect(page["text"]?.contains("District: +15555550100") == true, "\(page["text"] ?? "")")
            let reply = try await AcknowledgementTests().sms(client, from: "+15555550190", "ACK \(number)", sid: "SMpartner\(backend)")
            #expect(reply.reply == "Muster: incident #\(number) acknowledged. It is yours.")
            let state = try await AcknowledgementTests().state(harness, number)
            #expect(state.owner == .partner("county-mobile-crisis"))
            let ack = try #require(try await harness.store.timeline(state.incident.id).first { $0.action == .acknowledged })
            #expect(ack.actor == .partner("county-mobile-crisis"), "the timeline says which partner took ownership")
        }
    }

    @Test("a number the directory gives to a person and a partner is refused at reload, naming both; the loaded set stays", arguments: Backend.allCases)
    func sharedNumberRefused(backend: Backend) async throws {
        let folder = try Self.partnerFirstFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        // The partner's numbers become a person's too: a reply from it could not say who answered.
        let file = folder.appendingPathComponent("directory.yaml")
        let directory = try String(contentsOf: file, encoding: .utf8)
        let phones = shippedCatalog.directory.people.values.compactMap { person in person.contacts.first { $0.channel == .sms }?.address }
        let personPhone = try #require(phones.sorted().first)
        try directory.replacingOccurrences(of: "+15555550190", with: personPhone).write(to: file, atomically: true, encoding: .utf8)
        try await withService(backend, playbookFolder: folder.path) { harness, client in
            let reload = try await client.call(.post, "/api/v1/playbooks/reload", headers: harness.auth("admin"))
            #expect(reload.status == .unprocessableContent)
            #expect(reload.text.contains("\(personPhone) is already person:"), "\(reload.text)")
            #expect(reload.text.contains("give partner:county-mobile-crisis a number of their own"))
            // Still the shipped threat playbook, not the partner-first one the refused folder holds.
            let playbooks = try await client.call(.get, "/api/v1/playbooks", headers: harness.auth("admin"))
            #expect(!playbooks.text.contains("partner first"))
        }
    }

    @Test("a partner acknowledges by its link and by pressing 1 on the call", arguments: Backend.allCases)
    func partnerByLinkAndCall(backend: Backend) async throws {
        let folder = try Self.partnerFirstFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        try await withService(backend, playbookFolder: folder.path) { harness, client in
            let (first, email) = try await partnerPage(harness, client, channel: "email")
            let link = try #require(email["ack_url"].flatMap { $0.isEmpty ? nil : $0 })
            let shown = try await client.call(.get, String(link.dropFirst(testPublicURL.count)))
            #expect(shown.text.contains("High Plains Regional Mobile Crisis Team"))
            let taken = try await client.call(.post, String(link.dropFirst(testPublicURL.count)))
            #expect(taken.status == .ok)
            #expect(try await AcknowledgementTests().state(harness, first).owner == .partner("county-mobile-crisis"))

            // A new report (the first is owned, so this one opens its own incident): the call's key press.
            _ = try await client.call(.post, "/api/v1/incidents/\(first)/resolve", headers: harness.auth("admin"), json: #"{"outcome":"handled-at-school"}"#)
            let (second, call) = try await partnerPage(harness, client, channel: "voice")
            let token = try #require(call["ack_url"]?.split(separator: "/").last.map(String.init))
            let path = "/api/v1/integrations/twilio/voice?n=\(call["id"]?.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")&t=\(token)"
            let pressed = try await client.twilio(path, ["Digits": "1", "CallSid": "CA9", "From": "+15555550000", "To": "+15555550190"])
            #expect(pressed.text.contains("acknowledged. It is yours."))
            #expect(try await AcknowledgementTests().state(harness, second).owner == .partner("county-mobile-crisis"))
        }
    }
}
