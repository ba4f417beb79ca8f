// Never silent, against real servers on 127.0.0.1: a Twilio-compatible server of the tests' own that
// refuses (503), answers 429 with Retry-After, or takes the message; an SMTP server that accepts the
// connection and never says a word. The runtime runs on a real store (both backends where it matters).
import Foundation
import MusterCore
import MusterNotify
import MusterPlaybooks
import MusterRuntime
import MusterStore
import MusterTestSupport
import NIOCore
import Synchronization
import Testing

/// One site's people, each with an SMS number (ann has an email address too).
private let outageDirectory = """
    district: { id: d, name: District, time_zone: America/Chicago }
    incident_types:
      - { id: suicide-risk, title: Suicide risk }
      - { id: threat-of-violence, title: Threat }
    roles:
      - { id: counselor, title: Counselor }
    sites:
      - { id: north, name: North, time_zone: America/Chicago, school_hours: { days: [mon, fri], from: "08:00", to: "15:00" } }
      - { id: south, name: South, time_zone: America/Chicago, school_hours: { days: [mon, fri], from: "08:00", to: "15:00" } }
    people:
      - { id: ann, name: Ann, roles: [counselor], sites: [north, south], contacts: [ { sms: "+15555550100" }, { email: ann@school.example } ] }
      - { id: bo, name: Bo, roles: [counselor], sites: [north], contacts: [ { sms: "+15555550101" } ] }
      - { id: cy, name: Cy, roles: [counselor], sites: [north], contacts: [ { sms: "+15555550102" } ] }
      - { id: di, name: Di, roles: [counselor], sites: [north], contacts: [ { sms: "+15555550103" } ] }
      - { id: ed, name: Ed, roles: [counselor], sites: [north], contacts: [ { sms: "+15555550104" } ] }
    """

/// Two one-minute steps by SMS, then a fallback paged again every minute.
private let outagePlaybook = """
    id: suicide-risk
    title: Suicide risk
    match: { types: [suicide-risk] }
    steps:
      - notify: [person:ann]
        via: [sms]
        ack_within: 1m
      - notify: [person:bo]
        via: [sms]
        ack_within: 1m
    fallback: { notify: [person:cy], via: [sms], repeat_every: 1m }
    """

private func catalog(playbooks: [(String, String)]) throws -> Catalog {
    let result = PlaybookLoader.load(directory: ("directory.yaml", outageDirectory), playbooks: playbooks)
    return try #require(result.catalog, "\(result.diagnostics.map(\.description))")
}

/// A Twilio-compatible Messages endpoint: refuses with 503 while down, answers 429 (Retry-After: 1)
/// to the first `rateLimited` requests, and otherwise creates the message.
private final class FakeTwilio: Sendable {
    let down = Mutex(false)
    let rateLimited = Mutex(0)
    let created = Mutex<[String]>([])
    let server: LocalHTTPServer

    private init(server: LocalHTTPServer) { self.server = server }

    static func start() async throws -> FakeTwilio {
        let box = Mutex<FakeTwilio?>(nil)
        let server = try await LocalHTTPServer.start { request in
            guard let twilio = box.withLock({ $0 }) else { return .status(.serviceUnavailable) }
            return twilio.answer(request)
        }
        let twilio = FakeTwilio(server: server)
        box.withLock { $0 = twilio }
        return twilio
    }

    private func answer(_ request: RecordedRequest) -> Reply {
        if down.withLock({ $0 }) {
            return .status(.serviceUnavailable, #"{"code": 20500, "message": "Internal Server Error", "status": 503}"#)
        }
        let limited = rateLimited.withLock { left -> Bool in
            guard left > 0 else { return false }
            left -= 1
            return true
        }
        if limited {
            return .status(.tooManyRequests, #"{"code": 20429, "message": "Too Many Requests", "status": 429}"#, headers: [("Retry-After", "1")])
        }
        let to = request.form["To"] ?? "?"
        let sid = created.withLock { created -> String in
            created.append(to)
            return "SM\(created.count)"
        }
        return .status(.created, #"{"sid": "\#(sid)", "status": "queued"}"#)
    }

    var settings: TwilioSettings {
        TwilioSettings(baseURL: server.baseURL + "/", accountSID: "AC0123456789abcdef", authToken: "tok-secret", from: "+15005550006")
    }
}

/// Passes each message on, and records in order the notifications its channel took.
private final class RecordingDelivery: MusterNotify.Channel {
    let channel: any MusterNotify.Channel
    let delivered = Mutex<[QueuedNotification]>([])
    let inFlight = Mutex(0)

    init(channel: any MusterNotify.Channel) { self.channel = channel }

    func forms(for notification: QueuedNotification) -> Set<MessageForm> { channel.forms(for: notification) }

    func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt {
        inFlight.withLock { $0 += 1 }
        defer { inFlight.withLock { $0 -= 1 } }
        let receipt = try await channel.deliver(message)
        delivered.withLock { $0.append(message.notification) }
        return receipt
    }
}

/// A runtime over `store` with `channels`, one send at a time per channel unless told otherwise.
private func runtime(_ store: any Store, _ catalog: Catalog, _ channels: [ChannelKind: any MusterNotify.Channel],
                     clock: any MusterClock, perChannel: Int = 1) throws -> Runtime {
    let names = DirectoryNames(catalog)
    let renderer = try MessageRenderer(publicURL: "http://127.0.0.1:8080", links: nil, names: { names.current })
    let notifier = Notifier(renderer: renderer, channel: ChannelRouter(channels), limiter: ChannelLimiter(defaultLimit: perChannel))
    return Runtime(store: store, catalog: catalog, notifier: notifier, names: names, clock: clock, instance: "test", random: { 0 })
}

/// Waits (in real time, bounded) for the workers to catch up.
private func eventually(_ what: String, timeout: TimeInterval = 15, _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("timed out waiting for \(what)")
}

@Suite("Never silent: deliveries against real servers")
struct NeverSilentDeliveryTests {
    @Test("an SMS provider down for 5 minutes during escalation: nothing is given up, and once it is back every page that still matters goes out, newest step first",
          arguments: Backend.allCases)
    func outageIsWaitedOut(backend: Backend) async throws {
        let (store, close) = try await freshStore(backend, prefix: "muster_outage_")
        defer { Task { await close() } }
        try await store.migrate()
        let twilio = try await FakeTwilio.start()
        twilio.down.withLock { $0 = true }
        try await withDelivery { http in
            let sms = RecordingDelivery(channel: TwilioSMSChannel(http: http, settings: twilio.settings))
            let clock = ManualClock(schoolMorning)
            let runtime = try runtime(store, try catalog(playbooks: [("p.yaml", outagePlaybook)]), [.sms: sms], clock: clock)
            let workers = Task { await runtime.run() }
            defer {
                workers.cancel()
                clock.wakeAll()
            }
            let report = Report(type: "suicide-risk", severity: .high, site: "north", reporter: .person("di"),
                                summary: "Student wrote a goodbye note", subject: "S-9", receivedAt: schoolMorning)
            guard case .success(.created(let ref, _)) = try await runtime.report(ReportIntake(report: report)).map(\.outcome) else {
                Issue.record("no incident was created")
                return
            }
            try await eventually("the first refused send") { !twilio.server.requests.isEmpty }

            // Time moves only once the workers are idle: a send in flight is not overtaken by the virtual clock.
            func advance(by seconds: TimeInterval) async throws {
                try await eventually("the sends in flight") { sms.inFlight.withLock { $0 } == 0 }
                clock.advance(by: seconds)
                try await eventually("the timers to catch up") { (try await store.nextTimerDue(now: clock.now()) ?? .distantFuture) > clock.now() }
            }
            // Five minutes of outage, ten seconds at a time: escalation moves on by time.
            for _ in 0..<30 { try await advance(by: 10) }
            #expect(try await store.incident(ref.id)?.phase == .unowned)
            let refusedWhileDown = twilio.server.requests.count
            // A breaker opens after 5 refusals and lets one trial through every 30 s: no page spends an
            // attempt on an open circuit (without it, 5 pages × 6 attempts each would have been sent).
            #expect(refusedWhileDown <= 5 + 10 + 2, "\(refusedWhileDown) requests while the provider was down")
            #expect(sms.delivered.withLock { $0.isEmpty })
            #expect(try await store.outboxCounts()["failed"] == nil, "no page is given up while its provider is down")

            // The provider is back.
            twilio.down.withLock { $0 = false }
            // Within the circuit's cooldown (30 s) and a trial, everything that waited goes out.
            var drained = false
            for _ in 0..<12 where !drained {
                try await advance(by: 5)
                let deadline = Date().addingTimeInterval(1)
                while !drained, Date() < deadline {
                    drained = (try await store.outboxCounts()["queued"] ?? 0) == 0
                    if !drained { try await Task.sleep(for: .milliseconds(20)) }
                }
            }
            #expect(drained, "every queued page went out within a minute of the provider's return")
            let counts = try await store.outboxCounts()
            #expect(counts["failed"] == nil)
            let delivered = sms.delivered.withLock { $0 }
            #expect(counts["sent"] == delivered.count, "each page taken once")
            #expect(Set(delivered.map(\.id)).count == delivered.count, "none twice")
            #expect(Set(delivered.map(\.recipient)) == [.person("ann"), .person("bo"), .person("cy")], "step 1, step 2 and the fallback all went out")
            // What waited went out newest first: the fallback's rounds, then step 2, then step 1. The first
            // send is the circuit's trial, which finds the provider back: it is whichever page was due
            // first (a page refused on an earlier trial retries on its own schedule), so the order is
            // checked on what followed it.
            let order = delivered.map(\.id.description)
            let followed = Array(delivered.dropFirst())
            let rank = { (page: QueuedNotification) -> Int in page.kind == .fallback ? 0 : page.recipient == .person("bo") ? 1 : 2 }
            #expect(followed.map(rank) == followed.map(rank).sorted(), "\(order)")
            #expect(followed.first?.kind == .fallback || delivered.first?.kind == .fallback, "\(order)")

            // Still unowned: the fallback keeps being paged, and now it gets through; an acknowledgement ends it.
            #expect(try await store.incident(ref.id)?.phase == .unowned)
            _ = try await runtime.apply(.acknowledged(by: .person("cy"), path: .sms, step: nil), to: ref.id)
            let afterAck = sms.delivered.withLock { $0.count }
            try await advance(by: 180)
            #expect(sms.delivered.withLock { $0.count } == afterAck, "nothing is paged after the acknowledgement")
        }
        await twilio.server.stop()
    }

    @Test("a mail relay that accepts and never answers holds up no SMS page: each channel has a lane of its own")
    func stalledRelayHoldsUpNoSMS() async throws {
        let (store, close) = try await freshStore(.sqlite, prefix: "muster_stall_")
        defer { Task { await close() } }
        try await store.migrate()
        let relay = try await SMTPSink.start(["--silent"])
        defer { relay.stop() }
        let twilio = try await FakeTwilio.start()
        let playbooks = [("p.yaml", """
            id: suicide-risk
            title: Suicide risk
            match: { types: [suicide-risk] }
            steps:
              - notify: [person:ann]
                via: [email, sms]
                ack_within: 5m
            fallback: { notify: [person:cy], via: [sms] }
            """)]
        try await withDelivery { http in
            let smtp = SMTPSettings(host: "127.0.0.1", port: relay.port, security: .none, fromAddress: "muster@district.example",
                                    connectTimeout: .seconds(5), commandTimeout: .seconds(60))
            let sms = RecordingDelivery(channel: TwilioSMSChannel(http: http, settings: twilio.settings))
            let runtime = try runtime(store, try catalog(playbooks: playbooks), [.sms: sms, .email: EmailChannel(settings: smtp)],
                                      clock: SystemClock(), perChannel: 16)
            let workers = Task { await runtime.run() }
            defer { workers.cancel() }
            for (index, site) in ["north", "south"].enumerated() {
                let report = Report(type: "suicide-risk", severity: .high, site: SiteID(site), reporter: .person("di"),
                                    summary: "Student wrote a goodbye note", subject: "S-\(index)", receivedAt: Date())
                guard case .success(.created) = try await runtime.report(ReportIntake(report: report)).map(\.outcome) else {
                    Issue.record("no incident was created")
                    return
                }
                // Each report's SMS goes out at once, while the relay holds every email (its timeout is 60 s).
                try await eventually("the SMS page of report \(index + 1)", timeout: 5) { sms.delivered.withLock { $0.count } == index + 1 }
            }
            #expect(try relay.messages().isEmpty, "the relay took no mail")
        }
        await twilio.server.stop()
    }

    @Test("a 429 storm: every page waits as the provider's Retry-After says, none spends an attempt or is given up, each goes out once")
    func rateLimitStorm() async throws {
        let (store, close) = try await freshStore(.sqlite, prefix: "muster_429_")
        defer { Task { await close() } }
        try await store.migrate()
        let twilio = try await FakeTwilio.start()
        twilio.rateLimited.withLock { $0 = 6 }
        let playbooks = [("p.yaml", """
            id: suicide-risk
            title: Suicide risk
            match: { types: [suicide-risk] }
            steps:
              - notify: [person:ann, person:bo, person:cy, person:di, person:ed]
                via: [sms]
                ack_within: 5m
            fallback: { notify: [person:cy], via: [sms] }
            """)]
        try await withDelivery { http in
            let sms = RecordingDelivery(channel: TwilioSMSChannel(http: http, settings: twilio.settings))
            let runtime = try runtime(store, try catalog(playbooks: playbooks), [.sms: sms], clock: SystemClock(), perChannel: 4)
            let workers = Task { await runtime.run() }
            defer { workers.cancel() }
            let report = Report(type: "suicide-risk", severity: .imminent, site: "north", reporter: .person("di"),
                                summary: "Student wrote a goodbye note", subject: "S-9", receivedAt: Date())
            guard case .success(.created(let ref, let queued)) = try await runtime.report(ReportIntake(report: report)).map(\.outcome) else {
                Issue.record("no incident was created")
                return
            }
            #expect(queued.count == 5)
            try await eventually("every page", timeout: 20) { sms.delivered.withLock { $0.count } == 5 }
            #expect(Set(twilio.created.withLock { $0 }) == ["+15555550100", "+15555550101", "+15555550102", "+15555550103", "+15555550104"])
            #expect(twilio.created.withLock { $0.count } == 5, "each page taken once")
            try await eventually("every attempt recorded") { try await store.outboxCounts() == ["sent": 5] }
            let entries = try await store.auditEntries(of: ref.id)
            #expect(!entries.contains { $0.action == "delivery_failed" }, "a 429 with Retry-After is a wait, not a failed attempt")
            #expect(twilio.server.requests.count >= 11, "the storm was met: 6 refusals, 5 messages")
        }
        await twilio.server.stop()
    }

    @Test("with the demonstration inbox on, a page on a channel with no provider goes to the owner-only file and is audited as demonstrated, never as delivered")
    func demonstrationIsNotDelivery() async throws {
        let (store, close) = try await freshStore(.sqlite, prefix: "muster_demo_")
        defer { Task { await close() } }
        try await store.migrate()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("muster-demo-\(UUID().uuidString).jsonl").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let catalog = try catalog(playbooks: [("p.yaml", outagePlaybook)])
        let names = DirectoryNames(catalog)
        let renderer = try MessageRenderer(publicURL: "http://127.0.0.1:8080", links: nil, names: { names.current })
        let notifier = Notifier(renderer: renderer, channel: ChannelRouter([:], fallback: FileChannel(path: file, demonstration: true)))
        let runtime = Runtime(store: store, catalog: catalog, notifier: notifier, names: names, clock: SystemClock(), instance: "test")
        let workers = Task { await runtime.run() }
        defer { workers.cancel() }
        let report = Report(type: "suicide-risk", severity: .high, site: "north", reporter: .person("di"),
                            summary: "Student wrote a goodbye note", subject: "S-9", receivedAt: Date())
        guard case .success(.created(let ref, _)) = try await runtime.report(ReportIntake(report: report)).map(\.outcome) else {
            Issue.record("no incident was created")
            return
        }
        try await eventually("the page written to the demonstration file") { try await store.outboxCounts() == ["demonstrated": 1] }
        let entries = try await store.auditEntries(of: ref.id)
        #expect(entries.contains { $0.action == "demonstrated" })
        #expect(!entries.contains { $0.action == "delivered" }, "nobody was reached, so nothing is delivered")
        let attributes = try FileManager.default.attributesOfItem(atPath: file)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
    }
}
