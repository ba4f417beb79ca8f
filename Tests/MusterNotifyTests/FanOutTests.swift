// The whole fan-out, end to end: a report with a student's words in it goes through the runtime
// (SQLite store, workers, the notifier's stages) and reaches real servers on 127.0.0.1 over every
// channel: a webhook receiver, Slack and Teams webhooks, a Twilio-compatible API (SMS and voice)
// and an SMTP server. What arrives carries the incident number, category, site, severity and
// links, and never the student's name, reference or the description.
import AsyncHTTPClient
import Foundation
import MusterAudit
import MusterCore
import MusterNotify
import MusterPlaybooks
import MusterRuntime
import MusterStore
import NIOCore
import NIOHTTP1
import Synchronization
import Testing

@Suite("Fan-out to real servers")
struct FanOutTests {
    static let summary = "Jamie Quinlan-Ortiz told me she has pills saved up"
    static let subject = "student 88217 Jamie Quinlan-Ortiz"
    static let secret = WebhookSecret(key: Array("webhook-secret-for-the-fan-out-test".utf8))

    static func catalog(sink: String) throws -> Catalog {
        let directory = """
            district: { id: fan, name: Fan District, time_zone: America/Chicago }
            incident_types:
              - { id: suicide-risk, title: Student at risk of suicide or self-harm }
            roles:
              - { id: counselor, title: Counselor }
            sites:
              - id: lincoln-high
                name: Lincoln High School
                time_zone: America/Chicago
                school_hours: { days: [mon, tue, wed, thu, fri], from: "07:30", to: "15:30" }
            people:
              - id: ann
                name: Ann Archer
                roles: [counselor]
                sites: [lincoln-high]
                contacts:
                  - { webhook: "\(sink)/hook" }
                  - { chat: "slack+\(sink)/slack" }
                  - { sms: "+15555550111" }
                  - { voice: "+15555550111" }
                  - { email: ann@school.example }
              - id: ben
                name: Ben Brook
                roles: [counselor]
                sites: [lincoln-high]
                contacts:
                  - { chat: "teams+\(sink)/teams" }
              - id: cal
                name: Cal Cope
                roles: [counselor]
                sites: [lincoln-high]
                contacts:
                  - { sms: "+15555550999" }
                  - { email: cal@school.example }
            """
        let playbook = """
            id: suicide-risk
            title: Student at risk of suicide or self-harm
            match: { types: [suicide-risk] }
            steps:
              - { notify: [person:ann, person:ben], via: [webhook, chat, sms, voice, email], ack_within: 10m }
              - { notify: [person:cal], via: [sms], ack_within: 10m }
            fallback: { notify: [person:ann], via: [email] }
            """
        let loaded = PlaybookLoader.load(directory: ("directory.yaml", directory), playbooks: [("suicide-risk.yaml", playbook)])
        return try #require(loaded.catalog, "\(loaded.diagnostics)")
    }

    @Test("every channel delivers to its real server, carries only the facts a page may, and is audited; a dead number falls back to email")
    func fanOut() async throws {
        // The Twilio-compatible API refuses Cal's number as invalid, as Twilio does (error 21211).
        let api = try await LocalHTTPServer.start { request in
            switch request.path {
            case "/hook": .status(.ok)
            case "/slack": .status(.ok, "ok")
            case "/teams": .status(.accepted)
            case "/2010-04-01/Accounts/ACfanout/Messages.json" where request.form["To"] == "+15555550999":
                .status(.badRequest, #"{"code":21211,"message":"The 'To' number +15555550999 is not a valid phone number.","status":400}"#,
                        headers: [("Content-Type", "application/json")])
            case "/2010-04-01/Accounts/ACfanout/Messages.json": .status(.created, #"{"sid":"SM\#(UUID().uuidString.prefix(8))"}"#)
            case "/2010-04-01/Accounts/ACfanout/Calls.json": .status(.created, #"{"sid":"CA\#(UUID().uuidString.prefix(8))"}"#)
            default: .status(.notFound)
            }
        }
        let smtp = try await SMTPSink.start()
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPDeliverySettings().clientConfiguration())
        let delivery = HTTPDelivery(client: http)
        let catalog = try Self.catalog(sink: api.baseURL)
        let twilio = TwilioSettings(baseURL: api.baseURL, accountSID: "ACfanout", authToken: "fan-out-token", from: "+15555550100")
        let channels: [ChannelKind: any MusterNotify.Channel] = [
            .webhook: WebhookChannel(http: delivery, signing: WebhookSigning(defaultSecrets: [Self.secret]), egress: EgressPolicy(allowedHosts: ["127.0.0.1"])),
            .chat: ChatChannel(http: delivery),
            .sms: TwilioSMSChannel(http: delivery, settings: twilio),
            .voice: TwilioVoiceChannel(http: delivery, settings: twilio, gatherAction: { message in
                TwilioVoiceChannel.callbackURL(publicBase: "https://muster.test", notificationID: message.id, token: "t")
            }),
            .email: EmailChannel(settings: SMTPSettings(host: "127.0.0.1", port: smtp.port, security: .none,
                                                        fromAddress: "muster@district.example", connectTimeout: .seconds(5),
                                                        commandTimeout: .seconds(10))),
        ]
        let names = DirectoryNames(catalog)
        let renderer = try MessageRenderer(publicURL: "https://muster.test", links: AckLinkSigner(secret: Data(repeating: 3, count: 32)),
                                           names: { names.current })
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("muster-fanout-\(UUID().uuidString).sqlite").path
        let store = try SQLiteStore(path: path, masterKey: MasterKey.generate())
        try await store.migrate()
        let runtime = Runtime(store: store, catalog: catalog, notifier: Notifier(renderer: renderer, channel: ChannelRouter(channels)),
                              names: names, instance: "fan-out")
        let workers = Task { await runtime.run() }
        defer {
            workers.cancel()
            smtp.stop()
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        }

        let report = Report(type: "suicide-risk", severity: .high, site: "lincoln-high", reporter: .person("ann"),
                            summary: Self.summary, subject: Self.subject, receivedAt: Date())
        guard case .success(.created(let ref, _)) = try await runtime.report(ReportIntake(report: report)).map(\.outcome) else {
            Issue.record("the report was not taken")
            return
        }
        // Step 1: five messages to Ann (webhook, Slack, SMS, voice, email) and one to Ben (Teams).
        #expect(await waitFor { api.requests.count >= 5 && ((try? smtp.messages().count) ?? 0) >= 1 })
        // Step 2 by hand: Cal's SMS is refused for good, so his next contact point, email, is used.
        _ = try await runtime.apply(.escalatedByHand(by: .person("ann"), reason: nil), to: ref.id)
        #expect(await waitFor { ((try? smtp.messages().count) ?? 0) >= 2 })

        let requests = api.requests
        let mails = try smtp.messages()
        var payloads = requests.map(\.text)
        payloads += try mails.map { String(decoding: try $0.raw(), as: UTF8.self) }
        // Quoted-printable or base64 would hide words from a plain search: check the decoded parts too.
        payloads += mails.flatMap { $0.parsed?.parts.map(\.text) ?? [] }
        for forbidden in ["Jamie", "Quinlan", "pills", "88217"] {
            #expect(!payloads.contains { $0.contains(forbidden) }, "'\(forbidden)' left Muster")
        }
        func request(_ path: String) -> RecordedRequest? { requests.first { $0.path == path } }
        let webhook = try #require(request("/hook"))
        #expect(WebhookSignature.verify(id: webhook.header("webhook-id") ?? "", timestamp: webhook.header("webhook-timestamp") ?? "", body: webhook.body,
                                        signature: webhook.header("webhook-signature") ?? "", secret: Self.secret, now: Date()))
        let incident = try #require(webhook.json?["incident"] as? [String: Any])
        #expect(incident["number"] as? Int == ref.number)
        #expect(incident["site"] as? String == "Lincoln High School")
        #expect(incident["severity"] as? String == "high")
        #expect(request("/slack")?.text.contains("Student at risk of suicide or self-harm") == true)
        #expect(request("/teams")?.text.contains("AdaptiveCard") == true)
        let sms = try #require(requests.first { $0.path.hasSuffix("Messages.json") && $0.form["To"] == "+15555550111" })
        #expect(sms.form["Body"]?.hasPrefix("Muster #\(ref.number) Student at risk of suicide or self-harm, high, Lincoln High School.") == true)
        let call = try #require(request("/2010-04-01/Accounts/ACfanout/Calls.json"))
        #expect(call.form["Twiml"]?.contains("Crisis incident \(ref.number)") == true)
        #expect(Set(mails.flatMap(\.rcptTos)) == ["ann@school.example", "cal@school.example"])

        // The audit trail has every delivery with its receipt, the refusal, and the substitution
        // (written just after each delivery is recorded).
        #expect(await waitFor { ((try? await store.timeline(ref.id)) ?? []).filter { $0.action == .delivered }.count >= 7 })
        let timeline = try await store.timeline(ref.id)
        let delivered = timeline.filter { $0.action == .delivered }
        #expect(Set(delivered.compactMap(\.channel)) == [.webhook, .chat, .sms, .voice, .email])
        #expect(delivered.count == 7)
        #expect(timeline.contains { $0.action == .deliveryFailed && $0.recipient == .person("cal") && $0.detail?.hasPrefix("gave up: bad_address") == true })
        #expect(timeline.contains { $0.action == .channelSubstituted && $0.recipient == .person("cal") && $0.channel == .email })
        try await http.shutdown()
    }
}

/// Polls until `condition` holds, for at most `seconds`.
func waitFor(_ seconds: Double = 15, _ condition: () async -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(25))
    }
    return await condition()
}
