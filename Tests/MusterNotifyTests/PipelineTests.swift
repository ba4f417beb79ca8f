// The notifier's stages one by one (render, de-duplicate, rate-limit, circuit breaker) and the
// acknowledgement link, with an injected clock and a channel that counts what it was given.
import Foundation
import MusterCore
import NIOHTTP1
@testable import MusterNotify
import Synchronization
import Testing

let sampleNames = DisplayNames(types: [IncidentTypeID("suicide-risk"): "Student at risk of suicide or self-harm"],
                               sites: [SiteID("lincoln-high"): "Lincoln High School"])
let epoch = Date(timeIntervalSince1970: 1_796_000_000)

func sampleNotification(kind: NotificationKind = .page, channel: ChannelKind = .sms, address: String = "+15555550101",
                        recipient: Recipient = .person("frahman"), qualifier: NotificationID.Qualifier = .step(0, round: 0)) -> QueuedNotification {
    QueuedNotification(id: NotificationID(incident: IncidentID("0d6c1a5e-2f4b-4f7e-9a51-7d1c2b3a4e5f"), cycle: 0, kind: kind,
                                          qualifier: qualifier, recipient: recipient, channel: channel),
                       incidentNumber: 4821, type: IncidentTypeID("suicide-risk"), severity: .high, site: SiteID("lincoln-high"), address: address)
}

func sampleRenderer(links: AckLinkSigner? = AckLinkSigner(secret: Data(repeating: 7, count: 32))) throws -> MessageRenderer {
    try MessageRenderer(publicURL: "https://muster.example/", links: links, names: { sampleNames })
}

/// Remembers every message; fails with the queued failures first.
final class RecordingChannel: Channel {
    let sent = Mutex<[Message]>([])
    let failures = Mutex<[DeliveryFailure]>([])
    let inFlight = Mutex((now: 0, most: 0))
    let pause: Duration

    init(failures: [DeliveryFailure] = [], pause: Duration = .zero) {
        self.failures.withLock { $0 = failures }
        self.pause = pause
    }

    func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt {
        inFlight.withLock { $0.now += 1; $0.most = max($0.most, $0.now) }
        defer { inFlight.withLock { $0.now -= 1 } }
        if pause > .zero { try? await Task.sleep(for: pause) }
        if let failure = failures.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) { throw failure }
        sent.withLock { $0.append(message) }
        return DeliveryReceipt(reference: "ref-\(message.id)")
    }
}

@Suite("Notification pipeline")
struct PipelineTests {
    @Test("messages carry the number, category, site, severity and links, and nothing else about the incident")
    func rendering() throws {
        let message = try sampleRenderer().render(sampleNotification(), now: epoch)
        #expect(message.subject == "Muster #4821: Student at risk of suicide or self-harm (high) at Lincoln High School")
        #expect(message.sms.hasPrefix("Muster #4821 Student at risk of suicide or self-harm, high, Lincoln High School. Reply ACK 4821 or open https://muster.example/ack/"))
        #expect(message.speech == "This is Muster. Crisis incident 4821: Student at risk of suicide or self-harm, severity high, at Lincoln High School.")
        #expect(message.text.contains("Acknowledge (take ownership): https://muster.example/ack/"))
        #expect(message.text.contains("Details, after signing in: https://muster.example/incidents/4821"))
        #expect(message.html.contains("<a href=\"https://muster.example/ack/"))
        #expect(message.facts == MessageFacts(number: 4821, category: "Student at risk of suicide or self-harm", type: "suicide-risk",
                                              site: "Lincoln High School", siteID: "lincoln-high", severity: "high", kind: "page", step: 1, task: nil))
    }

    @Test("a drill's every text says so first; a real page never does")
    func drillMessages() throws {
        var notification = sampleNotification()
        notification.drill = true
        let drill = try sampleRenderer().render(notification, now: epoch)
        #expect(drill.subject.hasPrefix("DRILL: Muster #4821: "))
        #expect(drill.sms.hasPrefix("DRILL: Muster #4821 "))
        #expect(drill.speech.hasPrefix("This is a drill. This is Muster."))
        #expect(drill.text.hasPrefix("DRILL: this is a drill, not a real incident.\n"))
        #expect(drill.html.contains("<body style=\"font-family: sans-serif; line-height: 1.4\">\n<p><strong>DRILL: this is a drill"))
        #expect(drill.facts.drill)
        #expect(NtfyChannel.body(of: drill).hasPrefix("DRILL. "))
        let real = try sampleRenderer().render(sampleNotification(), now: epoch)
        for text in [real.subject, real.sms, real.speech, real.text, real.html] { #expect(!text.contains("DRILL") && !text.contains("drill")) }
    }

    @Test("only the texts the channel sends are rendered, and those exactly as in a full render")
    func formsPerChannel() async throws {
        let renderer = try sampleRenderer()
        let full = renderer.render(sampleNotification(), now: epoch)
        let smsOnly = renderer.render(sampleNotification(), now: epoch, forms: [.sms])
        #expect(smsOnly.sms == full.sms)
        #expect(smsOnly.subject.isEmpty && smsOnly.text.isEmpty && smsOnly.html.isEmpty && smsOnly.speech.isEmpty)
        let fullEmail = renderer.render(sampleNotification(channel: .email), now: epoch)
        let email = renderer.render(sampleNotification(channel: .email), now: epoch, forms: [.subject, .text, .html])
        #expect(email.subject == fullEmail.subject && email.text == fullEmail.text && email.html == fullEmail.html)
        #expect(email.sms.isEmpty && email.speech.isEmpty)

        // Through the notifier: the router asks the channel configured for the notification's kind.
        let recording = RecordingChannel()
        let router = ChannelRouter([.sms: FileChannel(path: "/dev/null"), .voice: recording])
        #expect(router.forms(for: sampleNotification(channel: .sms)) == [.sms])
        #expect(router.forms(for: sampleNotification(channel: .voice)) == MessageForm.all, "a channel that names none gets every form")
        #expect(router.forms(for: sampleNotification(channel: .email)) == MessageForm.all, "no channel: nothing is left out")
        let notifier = Notifier(renderer: renderer, channel: router)
        _ = try await notifier.send(sampleNotification(channel: .voice, address: "+15555550102"), now: { epoch })
        let voice = renderer.render(sampleNotification(channel: .voice, address: "+15555550102"), now: epoch)
        #expect(recording.sent.withLock { $0.first } == voice)
    }

    @Test("HTML is escaped in the HTML part, and an overdue task or a reminder has no acknowledgement link")
    func escapingAndOverdue() throws {
        let names = DisplayNames(types: [IncidentTypeID("suicide-risk"): "Risk <b>&</b>"], sites: [:])
        let renderer = try MessageRenderer(publicURL: "https://muster.example", links: AckLinkSigner(secret: Data(repeating: 1, count: 32)),
                                           names: { names })
        let page = renderer.render(sampleNotification(), now: epoch)
        #expect(page.html.contains("Risk &lt;b&gt;&amp;&lt;/b&gt;"))
        #expect(page.text.contains("Category: Risk <b>&</b>"), "plain text is not HTML-escaped")
        let overdue = renderer.render(sampleNotification(kind: .taskOverdue, qualifier: .task(TaskID("screening"))), now: epoch)
        #expect(overdue.ackURL == nil)
        #expect(overdue.sms == "Muster #4821 TASK OVERDUE (screening) Risk <b>&</b>, high, lincoln-high.")
        // A reminder before the deadline: it says so, in every form, and acts as nobody.
        let reminder = renderer.render(sampleNotification(kind: .taskReminder, qualifier: .reminder(TaskID("mandated-report"), 1)), now: epoch)
        #expect(reminder.ackURL == nil)
        #expect(reminder.sms == "Muster #4821 TASK DUE SOON (mandated-report) Risk <b>&</b>, high, lincoln-high.")
        #expect(reminder.subject.contains("task due soon"))
        #expect(reminder.text.contains("A protocol task you owe is due soon: mandated-report."))
        #expect(reminder.speech.contains("A protocol task you owe is due soon"))
        #expect(!reminder.text.contains("/ack/") && !reminder.html.contains("/ack/"))
    }

    @Test("a page over one person's own channel carries their acknowledgement link; over a shared chat channel or a webhook only the incident's page")
    func sharedChannelsLinkOnly() throws {
        let renderer = try sampleRenderer()
        for channel in ChannelKind.allCases {
            let page = renderer.render(sampleNotification(channel: channel, address: "addr"), now: epoch)
            if channel == .chat || channel == .webhook {
                #expect(page.ackURL == nil, "\(channel)")
                #expect(!page.text.contains("/ack/") && !page.html.contains("/ack/") && !page.sms.contains("/ack/"), "\(channel)")
                #expect(page.text.contains(page.incidentURL), "\(channel)")
            } else {
                #expect(page.ackURL?.hasPrefix("https://muster.example/ack/") == true, "\(channel)")
            }
        }
    }

    @Test("an acknowledgement link names its notification until it expires; a changed or foreign link is refused")
    func ackLinks() throws {
        let signer = AckLinkSigner(secret: Data(repeating: 9, count: 32), lifetime: 3600)
        let id = sampleNotification().id
        let token = signer.token(for: id, now: epoch)
        #expect(try signer.verify(token, now: epoch.addingTimeInterval(3599)).get().notification == id)
        #expect(throws: AckLinkRejection.expired(epoch.addingTimeInterval(3600))) { try signer.verify(token, now: epoch.addingTimeInterval(3600)).get() }
        let other = AckLinkSigner(secret: Data(repeating: 8, count: 32))
        #expect(throws: AckLinkRejection.forged) { try other.verify(token, now: epoch).get() }
        // Flip one character of the payload: the signature no longer matches.
        var bytes = Array(token)
        bytes[5] = bytes[5] == "A" ? "B" : "A"
        #expect(throws: AckLinkRejection.forged) { try signer.verify(String(bytes), now: epoch).get() }
        for malformed in ["", "abc", "a.b.c", "!!!.???", token + "."] {
            #expect(throws: AckLinkRejection.self) { try signer.verify(malformed, now: epoch).get() }
        }
    }

    @Test("a notification delivered once is not sent again by this instance; the first receipt is returned")
    func deduplication() async throws {
        let channel = RecordingChannel()
        let notifier = Notifier(renderer: try sampleRenderer(), channel: channel)
        let first = try await notifier.send(sampleNotification(), now: { epoch })
        let again = try await notifier.send(sampleNotification(), now: { epoch })
        #expect(first == again)
        #expect(channel.sent.withLock { $0.count } == 1)
        _ = try await notifier.send(sampleNotification(channel: .voice), now: { epoch })
        #expect(channel.sent.withLock { $0.count } == 2, "another channel is another notification")
    }

    @Test("no more sends in flight on a channel than its limit; other channels are not held up")
    func concurrencyLimit() async throws {
        let channel = RecordingChannel(pause: .milliseconds(20))
        let notifier = Notifier(renderer: try sampleRenderer(), channel: channel, limiter: ChannelLimiter(limits: [.sms: 3]))
        try await withThrowingTaskGroup(of: DeliveryReceipt.self) { group in
            for index in 0..<24 {
                group.addTask {
                    try await notifier.send(sampleNotification(qualifier: .step(0, round: index)), now: { epoch })
                }
            }
            for try await _ in group {}
        }
        #expect(channel.inFlight.withLock { $0.most } == 3)
        #expect(channel.sent.withLock { $0.count } == 24)
        #expect(notifier.limiter.load(.sms) == (0, 0))
    }

    @Test("after repeated retryable failures a provider's circuit opens, fails fast, lets one trial through after the cooldown, and closes on success")
    func circuitBreaker() async throws {
        let failures = Array(repeating: DeliveryFailure(.serverError, "HTTP 503"), count: 4)
        let channel = RecordingChannel(failures: failures)
        let breakers = CircuitBreakers(threshold: 3, cooldown: 30)
        let notifier = Notifier(renderer: try sampleRenderer(), channel: channel, breakers: breakers)
        let clock = Mutex(epoch)
        let now: @Sendable () -> Date = { clock.withLock { $0 } }
        func attempt(_ round: Int) async -> DeliveryFailure? {
            do { _ = try await notifier.send(sampleNotification(qualifier: .step(0, round: round)), now: now); return nil } catch { return error }
        }
        for round in 0..<3 { #expect(await attempt(round)?.reason == .serverError) }
        #expect(breakers.phase("sms") == .open(until: epoch.addingTimeInterval(30)))
        let fast = await attempt(3)
        #expect(fast?.deferredUntil == epoch.addingTimeInterval(30), "refused by the open circuit: deferred, no attempt spent")
        #expect(fast?.detail.contains("not sent before") == true)
        #expect(channel.failures.withLock { $0.count } == 1, "the open circuit did not call the provider")
        clock.withLock { $0 = epoch.addingTimeInterval(31) }
        #expect(await attempt(4)?.reason == .serverError, "the trial fails")
        #expect(breakers.phase("sms") == .open(until: epoch.addingTimeInterval(61)))
        clock.withLock { $0 = epoch.addingTimeInterval(62) }
        #expect(await attempt(5) == nil)
        #expect(breakers.phase("sms") == .closed)
    }

    @Test("a 429 with Retry-After holds every send to that provider until then, and spends no attempt; a later send goes through")
    func retryAfterHoldsTheProvider() async throws {
        let channel = RecordingChannel(failures: [DeliveryFailure(.rateLimited, "HTTP 429", retryAfter: .seconds(20))])
        let breakers = CircuitBreakers(threshold: 5, cooldown: 30)
        let notifier = Notifier(renderer: try sampleRenderer(), channel: channel, breakers: breakers)
        let clock = Mutex(epoch)
        let now: @Sendable () -> Date = { clock.withLock { $0 } }
        func attempt(_ round: Int) async -> DeliveryFailure? {
            do { _ = try await notifier.send(sampleNotification(qualifier: .step(0, round: round)), now: now); return nil } catch { return error }
        }
        #expect(await attempt(0)?.deferredUntil == epoch.addingTimeInterval(20), "the provider's own wait")
        #expect(await attempt(1)?.deferredUntil == epoch.addingTimeInterval(20), "another page to the same provider waits too, unsent")
        #expect(channel.sent.withLock { $0.count } == 0)
        clock.withLock { $0 = epoch.addingTimeInterval(20) }
        #expect(await attempt(1) == nil)
        #expect(channel.sent.withLock { $0.count } == 1)
        #expect(breakers.phase("sms") == .closed, "a 429 is no failure of the provider")
    }

    @Test("Retry-After is read as seconds or as an HTTP-date (RFC 9110); anything else is no wait")
    func retryAfterParsing() {
        #expect(DeliveryFailure(httpStatus: .tooManyRequests, headers: ["Retry-After": "120"])?.retryAfter == .seconds(120))
        let date = DeliveryFailure(httpStatus: .tooManyRequests, headers: ["Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"])?.retryAfter
        #expect(date == .date(Date(timeIntervalSince1970: 1_445_412_480)))
        #expect(DeliveryFailure(httpStatus: .tooManyRequests, headers: ["Retry-After": "soon"])?.retryAfter == nil)
        #expect(DeliveryFailure(httpStatus: .tooManyRequests)?.retryAfter == nil)
    }

    @Test("refusals of one message (a bad address) do not open the circuit; webhook hosts have breakers of their own")
    func breakerScope() async throws {
        let breakers = CircuitBreakers(threshold: 2, cooldown: 30)
        for _ in 0..<5 { breakers.record("sms", succeeded: false, countsAgainst: false, now: epoch) }
        #expect(breakers.phase("sms") == .closed)
        #expect(Notifier.provider(of: sampleNotification(channel: .webhook, address: "https://a.example/hook")) == "webhook:a.example")
        #expect(Notifier.provider(of: sampleNotification(channel: .chat, address: "slack+https://hooks.slack.com/services/T/B/X")) == "chat:hooks.slack.com")
        #expect(Notifier.provider(of: sampleNotification(channel: .email, address: "a@b.example")) == "email")
    }
}

@Suite("The demonstration file")
struct DemonstrationFileTests {
    @Test("its lines carry live acknowledgement links, so only its owner may read it, also when it was made readable before")
    func ownerOnly() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("muster-file-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let renderer = try sampleRenderer()
        let fresh = folder.appendingPathComponent("new.jsonl").path
        _ = try await FileChannel(path: fresh).deliver(renderer.render(sampleNotification(), now: epoch))
        #expect((try FileManager.default.attributesOfItem(atPath: fresh)[.posixPermissions] as? Int) == 0o600)
        let old = folder.appendingPathComponent("old.jsonl").path
        #expect(FileManager.default.createFile(atPath: old, contents: nil, attributes: [.posixPermissions: 0o644]))
        _ = try await FileChannel(path: old).deliver(renderer.render(sampleNotification(), now: epoch))
        #expect((try FileManager.default.attributesOfItem(atPath: old)[.posixPermissions] as? Int) == 0o600)
        #expect(try String(contentsOfFile: old, encoding: .utf8).contains("/ack/"))
    }
}
