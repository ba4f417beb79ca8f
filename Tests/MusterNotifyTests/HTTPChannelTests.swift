// The HTTP channels (webhook, Slack, Teams, Twilio SMS and voice) against real servers on 127.0.0.1:
// what arrives (paths, headers, signatures, bodies) and how each failure is classified.
import AsyncHTTPClient
import Crypto
import Foundation
import MusterCore
@testable import MusterNotify
import NIOCore
import NIOHTTP1
import NIOPosix
import Testing

#if canImport(FoundationXML)
import FoundationXML
#endif

// MARK: - Fixtures

private let ackURL = "https://muster.example/ack/4821?s=sig&e=1700000000"
private let incidentURL = "https://muster.example/incidents/4821"

private func sampleMessage(address: String, channel: ChannelKind, ackURL: String? = ackURL, subject: String? = nil,
                           speech: String = "Muster alert. Incident 4821, high severity, at Lincoln High School.") -> Message {
    let id = NotificationID(incident: IncidentID("inc-1"), cycle: 0, kind: .page, qualifier: .step(1, round: 1),
                            recipient: .person(PersonID("ann")), channel: channel)
    let notification = QueuedNotification(id: id, incidentNumber: 4821, type: IncidentTypeID("suicide-risk"), severity: .high,
                                          site: SiteID("lincoln-high"), address: address)
    let facts = MessageFacts(number: 4821, category: "Student at risk of suicide or self-harm", type: "suicide-risk",
                             site: "Lincoln High School", siteID: "lincoln-high", severity: "high", kind: "page", step: 2, task: nil)
    return Message(notification: notification, facts: facts, incidentURL: incidentURL, ackURL: ackURL,
                   subject: subject ?? "Incident #4821 (high): Student at risk of suicide or self-harm at Lincoln High School",
                   text: "Incident #4821 (high) at Lincoln High School.\nAcknowledge: \(ackURL ?? "-")",
                   html: "<p>Incident #4821</p>", sms: "Muster #4821 HIGH Lincoln High School. Reply ACK 4821 or open https://m.example/a/x",
                   speech: speech)
}

/// Runs `body` with a fresh client built from `settings`, and shuts the client down afterwards.
func withDelivery<T>(_ settings: HTTPDeliverySettings = HTTPDeliverySettings(connectTimeout: 5, totalTimeout: 10),
                             _ body: (HTTPDelivery) async throws -> T) async throws -> T {
    let client = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton, configuration: settings.clientConfiguration())
    do {
        let result = try await body(HTTPDelivery(client: client, settings: settings))
        try await client.shutdown()
        return result
    } catch {
        try? await client.shutdown()
        throw error
    }
}

/// Starts a server, runs `body` with it, stops it.
private func withServer<T>(tls: Bool = false, respond: @escaping @Sendable (RecordedRequest) -> Reply?,
                           _ body: (LocalHTTPServer) async throws -> T) async throws -> T {
    let server = try await LocalHTTPServer.start(tls: tls ? try SelfSignedCertificate.makeServerContext() : nil, respond: respond)
    do {
        let result = try await body(server)
        await server.stop()
        return result
    } catch {
        await server.stop()
        throw error
    }
}

/// The failure a delivery ends in, or nil when it succeeds.
private func failure(of channel: some MusterNotify.Channel, _ message: Message) async -> DeliveryFailure? {
    do {
        _ = try await channel.deliver(message)
        return nil
    } catch {
        return error
    }
}

// MARK: - Webhook

/// A webhook channel allowed to reach the test servers on 127.0.0.1, signing with `testWebhookSecret`.
private func localWebhook(_ http: HTTPDelivery, now: @escaping @Sendable () -> Date = { Date() }) -> WebhookChannel {
    WebhookChannel(http: http, signing: WebhookSigning(defaultSecrets: [testWebhookSecret]), egress: EgressPolicy(allowedHosts: ["127.0.0.1"]), now: now)
}

private let testWebhookSecretText = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
private let testWebhookSecret = (try? WebhookSecret.parse(testWebhookSecretText).get()) ?? WebhookSecret(key: [])

@Suite("HTTPChannel webhook")
struct WebhookChannelTests {
    @Test func postsStandardWebhooksSignedJSONWithTheDocumentedBody() async throws {
        let sentAt = Date(timeIntervalSince1970: 1_796_000_000)
        try await withServer(respond: { _ in .status(.ok) }) { server in
            let message = sampleMessage(address: server.baseURL + "/hooks/muster?district=7", channel: .webhook)
            let receipt = try await withDelivery { http in try await localWebhook(http, now: { sentAt }).deliver(message) }
            #expect(receipt.reference == message.id)

            let requests = server.requests
            try #require(requests.count == 1)
            let request = requests[0]
            #expect(request.method == .POST)
            #expect(request.uri == "/hooks/muster?district=7")
            #expect(request.header("Content-Type") == "application/json")
            #expect(request.header("User-Agent") == "Muster")
            #expect(request.header("webhook-id") == "inc-1/c0/page/s2r1/person:ann/webhook")
            #expect(request.header("webhook-timestamp") == "1796000000")

            // The signature, recomputed here from Standard Webhooks' recipe: base64 HMAC-SHA256 of "id.timestamp.body",
            // keyed by the bytes the whsec_ secret encodes.
            let expected = HMAC<SHA256>.authenticationCode(for: Array("inc-1/c0/page/s2r1/person:ann/webhook.1796000000.".utf8) + request.body,
                                                           using: SymmetricKey(data: testWebhookSecret.key))
            #expect(request.header("webhook-signature") == "v1," + Data(expected).base64EncodedString())
            let signature = try #require(request.header("webhook-signature"))
            #expect(WebhookSignature.verify(id: message.id, timestamp: "1796000000", body: request.body, signature: signature,
                                            secret: testWebhookSecret, now: sentAt.addingTimeInterval(30)))

            // The body: exactly the documented keys, snake_case, sorted.
            let json = try #require(request.json)
            #expect(Set(json.keys) == ["id", "incident", "kind", "step", "task", "links", "sent_at"])
            #expect(json["id"] as? String == message.id)
            #expect(json["kind"] as? String == "page")
            #expect(json["step"] as? Int == 2)
            #expect(json["task"] is NSNull)
            #expect(json["sent_at"] as? String == "2026-11-30T00:53:20Z")
            let incident = try #require(json["incident"] as? [String: Any])
            #expect(Set(incident.keys) == ["number", "category", "type", "site", "site_id", "severity", "drill"])
            #expect(incident["number"] as? Int == 4821)
            #expect(incident["category"] as? String == "Student at risk of suicide or self-harm")
            #expect(incident["type"] as? String == "suicide-risk")
            #expect(incident["site"] as? String == "Lincoln High School")
            #expect(incident["site_id"] as? String == "lincoln-high")
            #expect(incident["severity"] as? String == "high")
            let links = try #require(json["links"] as? [String: Any])
            #expect(links["incident"] as? String == incidentURL)
            #expect(links["acknowledge"] is NSNull, "a webhook never carries a personal acknowledgement link")
            #expect(!request.text.contains("/ack/"))
            #expect(request.text.hasPrefix("{\"id\":\"inc-1\\/c0") == false)  // slashes are not escaped
            #expect(request.text.hasPrefix("{\"id\":\"inc-1/c0/page/s2r1/person:ann/webhook\",\"incident\":{\"category\""))
            #expect(!request.text.contains("<p>"))  // the HTML part never goes out on this channel
        }
    }

    @Test func theSignatureMatchesStandardWebhooksTestVector() throws {
        // standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py (test_sign_function).
        let body = Array(#"{"test": 2432232314}"#.utf8)
        #expect(WebhookSignature.sign(id: "msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp: "1614265330", body: body, secrets: [testWebhookSecret])
                == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
    }

    @Test func secretsAreWhsecBase64OfTwentyFourToSixtyFourBytes() {
        #expect((try? WebhookSecret.parse(testWebhookSecretText).get())?.key.count == 24)
        #expect(throws: WebhookSecretError.self) { try WebhookSecret.parse("cli-secret").get() }
        #expect(throws: WebhookSecretError.self) { try WebhookSecret.parse("whsec_not*base64").get() }
        #expect(throws: WebhookSecretError.self) { try WebhookSecret.parse("whsec_" + Data(count: 16).base64EncodedString()).get() }
        #expect(throws: WebhookSecretError.self) { try WebhookSecret.parse("whsec_" + Data(count: 65).base64EncodedString()).get() }
        let two = try? WebhookSecret.parseList(testWebhookSecretText + " whsec_" + Data(count: 32).base64EncodedString()).get()
        #expect(two?.count == 2)
    }

    @Test func signatureVerificationRefusesTamperingWrongSecretsAndReplays() throws {
        let body = Array("{\"id\":\"x\"}".utf8)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let timestamp = "1800000000"
        let other = try WebhookSecret.parse("whsec_" + Data(repeating: 7, count: 32).base64EncodedString()).get()
        let signature = WebhookSignature.sign(id: "msg_1", timestamp: timestamp, body: body, secrets: [testWebhookSecret])
        #expect(signature.hasPrefix("v1,") && signature.count == 3 + 44)
        func verify(_ id: String = "msg_1", _ time: String = timestamp, body: [UInt8] = body, header: String? = nil,
                    secret: WebhookSecret = testWebhookSecret, at moment: Date = now) -> Bool {
            WebhookSignature.verify(id: id, timestamp: time, body: body, signature: header ?? signature, secret: secret, now: moment)
        }
        #expect(verify())
        #expect(!verify(body: Array("{\"id\":\"y\"}".utf8)))
        #expect(!verify("msg_2"))
        #expect(!verify(secret: other))
        #expect(!verify("msg_1", "1800000001"))
        // Replay protection: five minutes either way by default.
        #expect(verify(at: now.addingTimeInterval(299)))
        #expect(!verify(at: now.addingTimeInterval(301)))
        #expect(!verify(at: now.addingTimeInterval(-301)))
        // Rotation: both secrets sign, each verifies alone; junk is ignored.
        let rotated = WebhookSignature.sign(id: "msg_1", timestamp: timestamp, body: body, secrets: [other, testWebhookSecret])
        #expect(rotated.split(separator: " ").count == 2)
        #expect(verify(header: rotated) && verify(header: rotated, secret: other))
        #expect(!verify(header: "v1,nothex"))
        #expect(!verify("msg_1", "soon"))
    }

    @Test func eachReceiverIsSignedWithItsOwnSecrets() throws {
        let bridge = try WebhookSecret.parse("whsec_" + Data(repeating: 1, count: 32).base64EncodedString()).get()
        let bridgeOld = try WebhookSecret.parse("whsec_" + Data(repeating: 2, count: 32).base64EncodedString()).get()
        let signing = WebhookSigning(defaultSecrets: [testWebhookSecret],
                                     receivers: [("https://bridge.example/", [bridge, bridgeOld]), ("https://bridge.example/radio/", [bridgeOld])])
        #expect(signing.secrets(for: "https://bridge.example/hooks") == [bridge, bridgeOld])
        #expect(signing.secrets(for: "https://bridge.example/radio/1") == [bridgeOld])  // the longest prefix wins
        #expect(signing.secrets(for: "https://other.example/") == [testWebhookSecret])
    }

    @Test func anUnsetSecretIsNotConfiguredAndABadURLIsABadAddress() async throws {
        try await withDelivery { http in
            let unset = await failure(of: WebhookChannel(http: http, signing: WebhookSigning()), sampleMessage(address: "https://127.0.0.1:9/x", channel: .webhook))
            #expect(unset?.reason == .notConfigured)
            let bad = await failure(of: localWebhook(http), sampleMessage(address: "mailto:ann@example.org", channel: .webhook))
            #expect(bad?.reason == .badAddress)
            #expect(bad?.retryable == false)
        }
    }
}

@Suite("Webhook egress policy")
struct EgressPolicyTests {
    @Test func targetsMustBeHTTPSUnlessTheirHostIsAllowed() {
        let policy = EgressPolicy(allowedHosts: ["Bridge.District.Internal"])
        #expect(policy.problem(with: "https://pager.example/hook") == nil)
        #expect(policy.problem(with: "http://pager.example/hook")?.contains("https://") == true)
        #expect(policy.problem(with: "http://bridge.district.internal:8080/hook") == nil)
        #expect(policy.problem(with: "ftp://pager.example/x") != nil)
        #expect(policy.problem(with: "/relative") != nil)
    }

    @Test func privateLoopbackLinkLocalAndReservedAddressesAreNotPublic() throws {
        for text in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
                     "224.0.0.1", "255.255.255.255", "198.18.0.1", "::1", "::", "fe80::1", "fd00::1", "fc00::2", "ff02::1", "2001:db8::1",
                     "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe"] {
            #expect(try #require(IPAddress(text)).isPublic == false, "\(text)")
        }
        for text in ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            #expect(try #require(IPAddress(text)).isPublic, "\(text)")
        }
    }

    @Test func aTargetResolvingToAPrivateAddressIsRefusedAsABadAddress() async throws {
        let resolver: @Sendable (String) async -> [IPAddress] = { host in
            host == "metadata.example" ? [IPAddress("169.254.169.254")].compactMap { $0 } : [IPAddress("93.184.216.34")].compactMap { $0 }
        }
        let policy = EgressPolicy(resolve: resolver)
        await #expect(throws: DeliveryFailure.self) { try await policy.check("https://metadata.example/latest") }
        do {
            try await policy.check("https://metadata.example/latest")
        } catch {
            #expect(error.reason == .badAddress && !error.retryable)
            #expect(error.detail.contains("169.254.169.254"))
        }
        try await policy.check("https://pager.example/hook")
        // Literal addresses are judged without a lookup; localhost resolves to loopback.
        await #expect(throws: DeliveryFailure.self) { try await EgressPolicy().check("https://127.0.0.1:8443/x") }
        await #expect(throws: DeliveryFailure.self) { try await EgressPolicy().check("https://[::1]/x") }
        await #expect(throws: DeliveryFailure.self) { try await EgressPolicy().check("https://localhost/x") }
    }

    @Test func aPageIsNeverSentToARefusedTarget() async throws {
        try await withServer(respond: { _ in .status(.ok) }) { server in
            let https = server.baseURL.replacingOccurrences(of: "http://", with: "https://")
            let outcome = try await withDelivery { http in
                await failure(of: WebhookChannel(http: http, signing: WebhookSigning(defaultSecrets: [testWebhookSecret])),
                              sampleMessage(address: https + "/hook", channel: .webhook))
            }
            #expect(outcome?.reason == .badAddress)
            #expect(server.requests.isEmpty)
        }
    }
}

// MARK: - Failure modes (shared by every HTTP channel through HTTPDelivery)

@Suite("HTTPChannel failures")
struct HTTPFailureTests {
    struct StatusCase: Sendable, CustomTestStringConvertible {
        var status: UInt
        var body: String
        var reason: DeliveryFailure.Reason
        var retryable: Bool
        var testDescription: String { "HTTP \(status) → \(reason.rawValue)" }
    }

    static let statusCases: [StatusCase] = [
        StatusCase(status: 500, body: "boom", reason: .serverError, retryable: true),
        StatusCase(status: 503, body: "", reason: .serverError, retryable: true),
        StatusCase(status: 400, body: "invalid_payload", reason: .clientError, retryable: false),
        StatusCase(status: 403, body: "action_prohibited", reason: .clientError, retryable: false),
        StatusCase(status: 404, body: "no_service", reason: .clientError, retryable: false),
        StatusCase(status: 410, body: "channel_is_archived", reason: .clientError, retryable: false),
        StatusCase(status: 429, body: "rate_limited", reason: .rateLimited, retryable: true),
        StatusCase(status: 408, body: "", reason: .timeout, retryable: true),
        StatusCase(status: 302, body: "", reason: .clientError, retryable: false),
    ]

    @Test(arguments: statusCases)
    func statusesBecomeTypedFailures(_ expected: StatusCase) async throws {
        let status = HTTPResponseStatus(statusCode: Int(expected.status))
        try await withServer(respond: { _ in
            .status(status, expected.body, headers: [("Retry-After", "30"), ("Location", "https://elsewhere.example/x")])
        }) { server in
            let message = sampleMessage(address: server.baseURL + "/hook", channel: .webhook)
            let outcome = try await withDelivery { http in await failure(of: localWebhook(http), message) }
            let got = try #require(outcome)
            #expect(got.reason == expected.reason)
            #expect(got.retryable == expected.retryable)
            #expect(got.detail.contains("HTTP \(expected.status)"))
            if !expected.body.isEmpty { #expect(got.detail.contains(expected.body)) }
            if expected.status == 429 { #expect(got.detail.contains("Retry-After: 30")) }
            // Redirects are not followed: the signed request went to the configured host only.
            #expect(server.requests.count == 1)
        }
    }

    @Test func aServerThatIsDownIsUnreachable() async throws {
        // A port that was just listening and is now closed.
        let server = try await LocalHTTPServer.start(respond: { _ in .status(.ok) })
        let url = server.baseURL + "/hook"
        await server.stop()
        // The client retries a refused connection until its connect timeout, then says unreachable; the
        // total deadline must be longer than that, with room for a busy machine (a CI run with every
        // suite in parallel on two cores took 23 s here, and a 10 s deadline passed first).
        let outcome = try await withDelivery(HTTPDeliverySettings(connectTimeout: 1, totalTimeout: 60)) { http in
            await failure(of: localWebhook(http), sampleMessage(address: url, channel: .webhook))
        }
        let got = try #require(outcome)
        #expect(got.reason == .unreachable)
        #expect(got.retryable)
    }

    @Test func aServerThatNeverAnswersTimesOut() async throws {
        try await withServer(respond: { _ in nil }) { server in
            let started = ContinuousClock.now
            let outcome = try await withDelivery(HTTPDeliverySettings(connectTimeout: 1, totalTimeout: 0.5)) { http in
                await failure(of: localWebhook(http), sampleMessage(address: server.baseURL + "/slow", channel: .webhook))
            }
            let got = try #require(outcome)
            #expect(got.reason == .timeout)
            #expect(got.retryable)
            #expect(ContinuousClock.now - started < .seconds(30))  // it gave up rather than hung
            #expect(server.requests.count == 1)  // the request did arrive; only the answer was missing
        }
    }

    @Test func anUntrustedCertificateIsUnreachableAndSaysTLS() async throws {
        try await withServer(tls: true, respond: { _ in .status(.ok) }) { server in
            #expect(server.baseURL.hasPrefix("https://"))
            let outcome = try await withDelivery(HTTPDeliverySettings(connectTimeout: 5, totalTimeout: 10)) { http in
                await failure(of: localWebhook(http), sampleMessage(address: server.baseURL + "/hook", channel: .webhook))
            }
            let got = try #require(outcome)
            #expect(got.reason == .unreachable)
            #expect(got.retryable)
            #expect(got.detail.contains("TLS"))
            #expect(server.requests.isEmpty)  // nothing was sent over the untrusted connection
        }
    }

    @Test func responseBodiesAreBounded() async throws {
        let big = String(repeating: "x", count: 200_000)
        try await withServer(respond: { _ in .status(.ok, big) }) { server in
            let response = try await withDelivery(HTTPDeliverySettings(connectTimeout: 5, totalTimeout: 10, maxResponseBytes: 1024)) { http in
                try await http.post(server.baseURL + "/big", headers: HTTPHeaders(), body: [])
            }
            #expect(response.status == .ok)
            #expect(response.body.count == 1024)
        }
    }
}

// MARK: - Slack and Teams

@Suite("HTTPChannel chat")
struct ChatChannelTests {
    @Test func slackGetsBlockKitWithTheFactsAndAFallbackText() async throws {
        try await withServer(respond: { _ in .status(.ok, "ok") }) { server in
            let message = sampleMessage(address: "slack+" + server.baseURL + "/services/T000/B000/XXXX", channel: .chat)
            _ = try await withDelivery { http in try await ChatChannel(http: http).deliver(message) }
            let request = try #require(server.requests.first)
            #expect(request.uri == "/services/T000/B000/XXXX")  // the slack+ prefix is not sent
            #expect(request.header("Content-Type")?.hasPrefix("application/json") == true)
            let json = try #require(request.json)
            #expect(Set(json.keys) == ["text", "blocks"])
            let text = try #require(json["text"] as? String)
            #expect(text.contains("#4821") && text.contains(incidentURL))
            let blocks = try #require(json["blocks"] as? [[String: Any]])
            #expect(blocks.map { $0["type"] as? String } == ["header", "section", "context", "actions"])

            let header = try #require(blocks[0]["text"] as? [String: Any])
            #expect(header["type"] as? String == "plain_text")
            #expect(header["text"] as? String == message.subject)

            let fields = try #require(blocks[1]["fields"] as? [[String: Any]])
            #expect(fields.allSatisfy { $0["type"] as? String == "mrkdwn" })
            #expect(fields.compactMap { $0["text"] as? String } == [
                "*Incident*\n#4821", "*Category*\nStudent at risk of suicide or self-harm", "*Site*\nLincoln High School", "*Severity*\nhigh",
            ])
            let context = try #require((blocks[2]["elements"] as? [[String: Any]])?.first?["text"] as? String)
            #expect(context.contains(message.id))

            let buttons = try #require(blocks[3]["elements"] as? [[String: Any]])
            #expect(buttons.allSatisfy { $0["type"] as? String == "button" })
            #expect(buttons.compactMap { $0["url"] as? String } == [incidentURL], "a shared channel links to the incident, never acts as the person")
            #expect(buttons.compactMap { ($0["text"] as? [String: Any])?["text"] as? String } == ["Open incident"])
        }
    }

    @Test func slackKeepsWithinBlockKitLimitsAndEscapesMrkdwn() throws {
        var message = sampleMessage(address: "https://hooks.slack.com/services/x", channel: .chat,
                                    ackURL: nil, subject: String(repeating: "Á", count: 400))
        message.facts.site = "Smith & Jones <Annex>"
        let data = try ChatJSON.encode(SlackChannel.payload(for: message))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(data)) as? [String: Any])
        let blocks = try #require(json["blocks"] as? [[String: Any]])
        let header = try #require((blocks[0]["text"] as? [String: Any])?["text"] as? String)
        #expect(header.utf16.count <= 150)
        #expect(header.hasSuffix("…"))
        let fields = try #require(blocks[1]["fields"] as? [[String: Any]])
        #expect(fields.compactMap { $0["text"] as? String }.contains("*Site*\nSmith &amp; Jones &lt;Annex&gt;"))
        // No acknowledgement link (an overdue-task alert): only the incident button.
        let buttons = try #require(blocks.last?["elements"] as? [[String: Any]])
        #expect(buttons.compactMap { $0["url"] as? String } == [incidentURL])
    }

    @Test func slackRefusalsAreNotRetried() async throws {
        for (status, body) in [(HTTPResponseStatus.gone, "channel_is_archived"), (.notFound, "no_service"), (.badRequest, "invalid_payload")] {
            try await withServer(respond: { _ in .status(status, body) }) { server in
                let message = sampleMessage(address: "slack+" + server.baseURL + "/services/x", channel: .chat)
                let got = try #require(try await withDelivery { http in await failure(of: ChatChannel(http: http), message) })
                #expect(got.reason == .clientError)
                #expect(!got.retryable)
                #expect(got.detail.contains(body))
            }
        }
    }

    @Test func teamsGetsOneAdaptiveCardMessage() async throws {
        try await withServer(respond: { _ in .status(.accepted) }) { server in
            let message = sampleMessage(address: "teams+" + server.baseURL + "/workflows/abc/triggers/manual/paths/invoke?sig=xyz", channel: .chat)
            let receipt = try await withDelivery { http in try await ChatChannel(http: http).deliver(message) }
            #expect(receipt.reference == nil)
            let request = try #require(server.requests.first)
            #expect(request.uri == "/workflows/abc/triggers/manual/paths/invoke?sig=xyz")
            let json = try #require(request.json)
            #expect(json["type"] as? String == "message")
            let attachments = try #require(json["attachments"] as? [[String: Any]])
            try #require(attachments.count == 1)
            #expect(attachments[0]["contentType"] as? String == "application/vnd.microsoft.card.adaptive")
            #expect(attachments[0]["contentUrl"] is NSNull)
            let card = try #require(attachments[0]["content"] as? [String: Any])
            #expect(card["type"] as? String == "AdaptiveCard")
            #expect(card["version"] as? String == "1.4")
            #expect(card["$schema"] as? String == "http://adaptivecards.io/schemas/adaptive-card.json")
            let body = try #require(card["body"] as? [[String: Any]])
            #expect(body.first?["type"] as? String == "TextBlock")
            #expect(body.first?["text"] as? String == message.subject)
            let factSet = try #require(body.first { $0["type"] as? String == "FactSet" })
            let facts = try #require(factSet["facts"] as? [[String: String]])
            #expect(facts == [["title": "Incident", "value": "#4821"], ["title": "Category", "value": "Student at risk of suicide or self-harm"],
                              ["title": "Site", "value": "Lincoln High School"], ["title": "Severity", "value": "high"]])
            #expect(body.contains { ($0["text"] as? String)?.contains(message.id) == true })
            let actions = try #require(card["actions"] as? [[String: Any]])
            #expect(actions.map { $0["type"] as? String } == ["Action.OpenUrl"])
            #expect(actions.map { $0["title"] as? String } == ["Open incident"])
            #expect(actions.map { $0["url"] as? String } == [incidentURL], "a shared channel links to the incident, never acts as the person")
        }
    }

    @Test func chatAddressesNameTheirProvider() {
        #expect(ChatAddress("slack+https://127.0.0.1:8080/services/x") == .slack(url: "https://127.0.0.1:8080/services/x"))
        #expect(ChatAddress("teams+https://hooks.slack.com/services/x") == .teams(url: "https://hooks.slack.com/services/x"))
        #expect(ChatAddress("https://hooks.slack.com/services/T/B/X") == .slack(url: "https://hooks.slack.com/services/T/B/X"))
        #expect(ChatAddress("https://prod-12.westus.logic.azure.com/workflows/abc") == .teams(url: "https://prod-12.westus.logic.azure.com/workflows/abc"))
        #expect(ChatAddress("SLACK+https://x.example/h").url == "https://x.example/h")
    }
}

// MARK: - Twilio

@Suite("HTTPChannel Twilio")
struct TwilioChannelTests {
    private func settings(_ server: LocalHTTPServer) -> TwilioSettings {
        TwilioSettings(baseURL: server.baseURL + "/", accountSID: "AC0123456789abcdef", authToken: "tok-secret", from: "+15005550006")
    }

    private static let callback: TwilioCallbackURL = { message in
        TwilioVoiceChannel.callbackURL(publicBase: "https://muster.example/", notificationID: message.id, token: "t0k+/=")
    }

    @Test func smsPostsTheFormWithBasicAuthToTheMessagesResource() async throws {
        try await withServer(respond: { _ in .status(.created, #"{"sid": "SM0123456789", "status": "queued"}"#) }) { server in
            let message = sampleMessage(address: "+15551234567", channel: .sms)
            let status: TwilioCallbackURL = { "https://muster.example/api/v1/integrations/twilio/status?n=\(TwilioForm.percentEncoded($0.id))" }
            let receipt = try await withDelivery { http in
                try await TwilioSMSChannel(http: http, settings: settings(server), statusCallback: status).deliver(message)
            }
            #expect(receipt.reference == "SM0123456789")
            #expect(receipt.awaitsStatus, "with a status callback, only the carrier's report counts as delivered")
            let request = try #require(server.requests.first)
            #expect(request.method == .POST)
            #expect(request.uri == "/2010-04-01/Accounts/AC0123456789abcdef/Messages.json")
            #expect(request.header("Authorization") == "Basic " + Data("AC0123456789abcdef:tok-secret".utf8).base64EncodedString())
            #expect(request.header("Content-Type") == "application/x-www-form-urlencoded")
            #expect(request.text.contains("To=%2B15551234567"))  // a plus must not become a space
            let form = request.form
            #expect(Set(form.keys) == ["To", "From", "Body", "StatusCallback"])
            #expect(form["To"] == "+15551234567")
            #expect(form["From"] == "+15005550006")
            #expect(form["Body"] == message.sms)
            #expect(form["StatusCallback"] == "https://muster.example/api/v1/integrations/twilio/status?n=inc-1%2Fc0%2Fpage%2Fs2r1%2Fperson%3Aann%2Fsms")
        }
    }

    @Test func voicePostsTwiMLThatGathersOneDigitForTheCallback() async throws {
        try await withServer(respond: { _ in .status(.created, #"{"sid": "CA0123456789"}"#) }) { server in
            let message = sampleMessage(address: "+15551234567", channel: .voice, speech: "Incident 4821 at Smith & Jones <Annex>.")
            let receipt = try await withDelivery { http in
                try await TwilioVoiceChannel(http: http, settings: settings(server), gatherAction: Self.callback).deliver(message)
            }
            #expect(receipt.reference == "CA0123456789")
            #expect(!receipt.awaitsStatus, "without a status callback nothing else will come")
            let request = try #require(server.requests.first)
            #expect(request.uri == "/2010-04-01/Accounts/AC0123456789abcdef/Calls.json")
            #expect(request.header("Authorization") == "Basic " + Data("AC0123456789abcdef:tok-secret".utf8).base64EncodedString())
            let form = request.form
            #expect(Set(form.keys) == ["To", "From", "Twiml"])
            #expect(form["To"] == "+15551234567")
            let twiml = try #require(form["Twiml"])
            let parsed = try #require(TwiMLSummary(twiml))
            #expect(parsed.gather?["numDigits"] == "1")
            #expect(parsed.gather?["timeout"] == "10")
            #expect(parsed.gather?["action"] == "https://muster.example/api/v1/integrations/twilio/voice?n=inc-1%2Fc0%2Fpage%2Fs2r1%2Fperson%3Aann%2Fvoice&t=t0k%2B%2F%3D")
            #expect(parsed.says.first == "Incident 4821 at Smith & Jones <Annex>. Press 1 to acknowledge.")
            #expect(parsed.says.count == 2)
            #expect(parsed.sayInsideGather)
        }
    }

    @Test("a call with a status callback asks for its end and for answering-machine detection, and is not yet delivered")
    func voiceAsksForItsOutcome() async throws {
        try await withServer(respond: { _ in .status(.created, #"{"sid": "CA0123456789"}"#) }) { server in
            let message = sampleMessage(address: "+15551234567", channel: .voice)
            let status: TwilioCallbackURL = { TwilioVoiceChannel.statusCallbackURL(publicBase: "https://muster.example/", notificationID: $0.id) }
            let receipt = try await withDelivery { http in
                try await TwilioVoiceChannel(http: http, settings: settings(server), gatherAction: Self.callback, statusCallback: status).deliver(message)
            }
            #expect(receipt.awaitsStatus)
            let form = try #require(server.requests.first).form
            #expect(Set(form.keys) == ["To", "From", "Twiml", "StatusCallback", "StatusCallbackEvent", "MachineDetection"])
            #expect(form["StatusCallback"] == "https://muster.example/api/v1/integrations/twilio/status?n=inc-1%2Fc0%2Fpage%2Fs2r1%2Fperson%3Aann%2Fvoice")
            #expect(form["StatusCallbackEvent"] == "completed")
            #expect(form["MachineDetection"] == "Enable")
        }
    }

    @Test func longSpeechIsCutToTwiliosLimit() throws {
        let twiml = TwilioVoiceChannel.twiml(speech: String(repeating: "a & b ", count: 2000), action: "https://m.example/v?n=1&t=2")
        #expect(twiml.count <= 4000)
        #expect(TwiMLSummary(twiml) != nil)  // still well-formed XML
    }

    struct TwilioErrorCase: Sendable, CustomTestStringConvertible {
        var status: UInt
        var code: Int
        var reason: DeliveryFailure.Reason
        var retryable: Bool
        var testDescription: String { "Twilio \(code) / HTTP \(status) → \(reason.rawValue)" }
    }

    static let errorCases: [TwilioErrorCase] = [
        TwilioErrorCase(status: 400, code: 21211, reason: .badAddress, retryable: false),
        TwilioErrorCase(status: 400, code: 21614, reason: .badAddress, retryable: false),
        TwilioErrorCase(status: 400, code: 21602, reason: .clientError, retryable: false),
        TwilioErrorCase(status: 401, code: 20003, reason: .clientError, retryable: false),
        TwilioErrorCase(status: 429, code: 20429, reason: .rateLimited, retryable: true),
        TwilioErrorCase(status: 500, code: 20500, reason: .serverError, retryable: true),
    ]

    @Test(arguments: errorCases)
    func twilioErrorsBecomeTypedFailures(_ expected: TwilioErrorCase) async throws {
        let body = #"{"code": \#(expected.code), "message": "The 'To' number +1555 is not a valid phone number.", "more_info": "https://www.twilio.com/docs/errors/\#(expected.code)", "status": \#(expected.status)}"#
        let status = HTTPResponseStatus(statusCode: Int(expected.status))
        try await withServer(respond: { _ in .status(status, body, headers: [("Content-Type", "application/json")]) }) { server in
            let got = try #require(try await withDelivery { http in
                await failure(of: TwilioSMSChannel(http: http, settings: settings(server)), sampleMessage(address: "+1555", channel: .sms))
            })
            #expect(got.reason == expected.reason)
            #expect(got.retryable == expected.retryable)
            #expect(got.detail.contains("Twilio \(expected.code)"))
            #expect(!got.detail.contains("tok-secret"))
        }
    }

    @Test func missingCredentialsAreNotConfigured() async throws {
        try await withDelivery { http in
            let channel = TwilioSMSChannel(http: http, settings: TwilioSettings(accountSID: "", authToken: "", from: ""))
            #expect(await failure(of: channel, sampleMessage(address: "+15551234567", channel: .sms))?.reason == .notConfigured)
        }
    }
}

// MARK: - Twilio request signatures

@Suite("HTTPChannel Twilio signature")
struct TwilioSignatureTests {
    // Twilio's worked example (docs/usage/webhooks/webhooks-security, "Validating requests"): auth token
    // 12345, this URL and these parameters sign to this value.
    static let documentedURL = "https://example.com/myapp.php?foo=1&bar=2"
    static let documentedParameters = [
        "CallSid": "CA1234567890ABCDE", "Caller": "+14158675310", "Digits": "1234", "From": "+14158675310", "To": "+18005551212",
    ]
    static let documentedSignature = "L/OH5YylLD5NRKLltdqwSvS0BnU="

    @Test func matchesTwiliosDocumentedExample() {
        #expect(TwilioSignature.signature(url: Self.documentedURL, parameters: Self.documentedParameters, authToken: "12345")
            == Self.documentedSignature)
        #expect(TwilioSignature.isValid(signature: Self.documentedSignature, url: Self.documentedURL,
                                        parameters: Self.documentedParameters, authToken: "12345"))
    }

    @Test func matchesTheVectorsInTwiliosHelperLibraries() {
        // twilio-csharp's RequestValidatorTest and the earlier documentation example.
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2"
        let sdk = ["CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234", "From": "+14158675309", "To": "+18005551212"]
        #expect(TwilioSignature.signature(url: url, parameters: sdk, authToken: "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
        let older = ["CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234", "From": "+12349013030", "To": "+18005551212"]
        #expect(TwilioSignature.isValid(signature: "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", url: url, parameters: older, authToken: "12345"))
    }

    @Test func refusesForgeries() {
        var tampered = Self.documentedParameters
        tampered["Digits"] = "1"
        #expect(!TwilioSignature.isValid(signature: Self.documentedSignature, url: Self.documentedURL, parameters: tampered, authToken: "12345"))
        #expect(!TwilioSignature.isValid(signature: Self.documentedSignature, url: Self.documentedURL, parameters: Self.documentedParameters, authToken: "54321"))
        #expect(!TwilioSignature.isValid(signature: Self.documentedSignature, url: "https://example.com/myapp.php?foo=1&bar=3",
                                         parameters: Self.documentedParameters, authToken: "12345"))
        #expect(!TwilioSignature.isValid(signature: "not base64!", url: Self.documentedURL, parameters: Self.documentedParameters, authToken: "12345"))
        #expect(!TwilioSignature.isValid(signature: "", url: Self.documentedURL, parameters: Self.documentedParameters, authToken: "12345"))
        #expect(!TwilioSignature.isValid(signature: Self.documentedSignature, url: Self.documentedURL, parameters: Self.documentedParameters, authToken: ""))
    }
}

/// The parts of a TwiML document the tests look at, read with a real XML parser (so escaping errors fail).
private struct TwiMLSummary {
    var gather: [String: String]?
    var says: [String] = []
    var sayInsideGather = false

    init?(_ xml: String) {
        let delegate = Collector()
        let parser = XMLParser(data: Data(xml.utf8))
        parser.delegate = delegate
        guard parser.parse(), delegate.root == "Response" else { return nil }
        gather = delegate.gather
        says = delegate.says
        sayInsideGather = delegate.sayInsideGather
    }

    private final class Collector: NSObject, XMLParserDelegate {
        var root: String?
        var gather: [String: String]?
        var says: [String] = []
        var sayInsideGather = false
        private var stack: [String] = []
        private var text = ""

        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            if root == nil { root = name }
            if name == "Gather" { gather = attributes }
            if name == "Say" {
                text = ""
                if stack.last == "Gather" { sayInsideGather = true }
            }
            stack.append(name)
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { text += string }

        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) {
            if name == "Say" { says.append(text) }
            stack.removeLast()
        }
    }
}

// MARK: - ntfy (push)

@Suite("HTTPChannel ntfy")
struct NtfyChannelTests {
    /// An ntfy server as its publishing docs describe it: JSON published to the root URL (`topic`
    /// required, 1-64 of letters, digits, _ and -; `priority` 1-5; `actions` at most 3, each with
    /// `action`, `label` and, for a view action, `url`), behind a bearer token; anything else is
    /// answered as ntfy answers it (400 with a JSON error, 401/403 for credentials).
    private static func ntfy(token: String, answer: Reply? = nil) -> @Sendable (RecordedRequest) -> Reply? {
        { request in
            if let answer { return answer }
            guard request.method == .POST, request.path == "/" else {
                return .status(.notFound, #"{"code":40401,"http":404,"error":"page not found"}"#)
            }
            guard request.header("Authorization") == "Bearer \(token)" else {
                return .status(.forbidden, #"{"code":40301,"http":403,"error":"forbidden"}"#)
            }
            guard let json = request.json, let topic = json["topic"] as? String, (1...64).contains(topic.count),
                  topic.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") }),
                  json["message"] is String, json["title"] is String,
                  let priority = json["priority"] as? Int, (1...5).contains(priority),
                  (json["actions"] as? [[String: Any]] ?? []).count <= 3,
                  (json["actions"] as? [[String: Any]] ?? []).allSatisfy({ $0["action"] as? String == "view" && $0["label"] is String && $0["url"] is String })
            else {
                return .status(.badRequest, #"{"code":40024,"http":400,"error":"invalid request: the publish body is not valid"}"#)
            }
            return .status(.ok, #"{"id":"hwQ2YpKdmg","time":1700000000,"expires":1700043200,"event":"message","topic":"\#(topic)"}"#)
        }
    }

    @Test("a page is published as JSON to the server's root: its topic, title, the incident's facts, max priority, the incident as click URL and an Acknowledge button")
    func publishesAsNtfyDocumentsIt() async throws {
        try await withServer(respond: Self.ntfy(token: "tk_secret")) { server in
            let receipt = try await withDelivery { http in
                try await NtfyChannel(http: http, settings: NtfySettings(serverURL: server.baseURL, token: "tk_secret"))
                    .deliver(sampleMessage(address: server.baseURL + "/muster-ann", channel: .push))
            }
            #expect(receipt.reference == "hwQ2YpKdmg")
            let request = try #require(server.requests.first)
            let json = try #require(request.json)
            #expect(request.header("Content-Type") == "application/json")
            #expect(json["topic"] as? String == "muster-ann")
            #expect(json["title"] as? String == "Incident #4821 (high): Student at risk of suicide or self-harm at Lincoln High School")
            #expect(json["message"] as? String == "Student at risk of suicide or self-harm, high, Lincoln High School. Step 2. Tap Acknowledge to take it, or tap to open the incident.")
            #expect(json["priority"] as? Int == 5)
            #expect(json["click"] as? String == incidentURL)
            let actions = try #require(json["actions"] as? [[String: Any]])
            #expect(actions.count == 1)
            #expect(actions.first?["label"] as? String == "Acknowledge")
            #expect(actions.first?["url"] as? String == ackURL)
            #expect(!request.text.contains("S-") && !request.text.contains("goodbye"), "no student detail")
        }
    }

    @Test("a bare topic is published to the configured server; user and password go as Basic")
    func bareTopicAndBasicAuth() async throws {
        try await withServer(respond: { request in
            request.header("Authorization") == "Basic " + Data("muster:pw".utf8).base64EncodedString()
                ? .status(.ok, #"{"id":"abc","event":"message","topic":"t"}"#) : .status(.forbidden, #"{"code":40301,"http":403,"error":"forbidden"}"#)
        }) { server in
            let receipt = try await withDelivery { http in
                try await NtfyChannel(http: http, settings: NtfySettings(serverURL: server.baseURL, username: "muster", password: "pw"))
                    .deliver(sampleMessage(address: "muster-bo_2", channel: .push))
            }
            #expect(receipt.reference == "abc")
            #expect(server.requests.first?.json?["topic"] as? String == "muster-bo_2")
        }
    }

    @Test("ntfy's refusals are typed: wrong credentials for good, 429 waits as told, 5xx is retried; a topic on another server is never sent the credentials")
    func failures() async throws {
        let cases: [(Reply, DeliveryFailure.Reason)] = [
            (.status(.forbidden, #"{"code":40301,"http":403,"error":"forbidden"}"#), .clientError),
            (.status(.tooManyRequests, #"{"code":42901,"http":429,"error":"limit reached: too many requests"}"#, headers: [("Retry-After", "7")]), .rateLimited),
            (.status(.internalServerError, #"{"code":50001,"http":500,"error":"internal server error"}"#), .serverError),
        ]
        for (reply, reason) in cases {
            try await withServer(respond: Self.ntfy(token: "tk", answer: reply)) { server in
                let failure = await withDeliveryFailure { http in
                    try await NtfyChannel(http: http, settings: NtfySettings(serverURL: server.baseURL, token: "tk"))
                        .deliver(sampleMessage(address: "muster-ann", channel: .push))
                }
                #expect(failure?.reason == reason)
                #expect(failure?.detail.hasPrefix("ntfy ") == true, "\(failure?.detail ?? "")")
                if reason == .rateLimited { #expect(failure?.retryAfter == .seconds(7)) }
            }
        }
        try await withServer(respond: Self.ntfy(token: "tk")) { server in
            let failure = await withDeliveryFailure { http in
                try await NtfyChannel(http: http, settings: NtfySettings(serverURL: server.baseURL, token: "tk"))
                    .deliver(sampleMessage(address: "https://elsewhere.example/muster-ann", channel: .push))
            }
            #expect(failure?.reason == .badAddress)
            #expect(server.requests.isEmpty, "nothing was sent anywhere")
        }
        #expect(NtfySettings(serverURL: "push.example").configurationProblem != nil)
        #expect(NtfySettings(serverURL: "https://push.example", token: "tk", username: "u", password: "p").configurationProblem != nil)
        #expect(NtfySettings(serverURL: "https://push.example", username: "u").configurationProblem != nil)
        #expect(NtfySettings(serverURL: "https://push.example", token: "tk").configurationProblem == nil)
    }
}

/// The failure a delivery through a fresh client ends in, or nil when it succeeded.
private func withDeliveryFailure(_ body: (HTTPDelivery) async throws -> DeliveryReceipt) async -> DeliveryFailure? {
    do {
        _ = try await withDelivery(HTTPDeliverySettings(connectTimeout: 5, totalTimeout: 10), body)
        return nil
    } catch let failure as DeliveryFailure {
        return failure
    } catch {
        Issue.record("unexpected error \(error)")
        return nil
    }
}
