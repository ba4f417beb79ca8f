// A hoax wave (issue 21): N reports from S sites within a window, into an in-process runtime, against
// an SMS provider of the benchmark's own (a Hummingbird server speaking Twilio's Messages resource)
// that takes `rate` messages a second and answers 429 with Retry-After beyond. Every page must be
// delivered, none twice, none given up; the more severe incidents first. Prints each severity's time
// from report to first page (p50, p99, max).
//   swift run -c release muster-bench hoax-wave sqlite|postgres [--reports 1000] [--sites 50] [--window 60] [--rate 10]
import AsyncHTTPClient
import Foundation
import Hummingbird
import Logging
import MusterCore
import MusterNotify
import MusterPlaybooks
import MusterRuntime
import MusterStore
import NIOCore

/// One counsellor per site, reached by SMS; one step with a long window, so the wave's pages are the
/// first pages only, and each report is an incident of its own (no grouping: the worst case).
private func hoaxFiles(sites: Int) -> (directory: String, playbook: String) {
    let siteLines = (1...sites).map { """
          - { id: s\($0), name: School \($0), time_zone: America/Chicago, school_hours: { days: [mon, tue, wed, thu, fri], from: "07:30", to: "15:30" } }
        """ }
    let people = (1...sites).map { "  - { id: c\($0), name: Counsellor \($0), roles: [counselor], sites: [s\($0)], contacts: [ { sms: \"+1555555\(String(format: "%04d", $0))\" } ] }" }
    let directory = """
        district: { id: bench, name: Bench District, time_zone: America/Chicago }
        incident_types:
          - { id: threat-of-violence, title: Threat of violence }
        roles:
          - { id: counselor, title: Counselor }
        sites:
        \(siteLines.joined(separator: "\n"))
        people:
        \(people.joined(separator: "\n"))
        """
    let playbook = """
        id: threat-of-violence
        title: Threat of violence
        match: { types: [threat-of-violence] }
        steps:
          - { notify: [role:counselor@site], via: [sms], ack_within: 2h }
        fallback: { notify: [role:counselor@site], via: [sms], repeat_every: 2h }
        """
    return (directory, playbook)
}

/// Twilio's Messages resource with a rate limit: a token bucket of `rate` a second (burst of one
/// second's worth); beyond it, 429 with Twilio's error body and `Retry-After: 1`.
private final class RateLimitedSMSProvider: Sendable {
    private let state = Locked((tokens: 0.0, refilled: ContinuousClock.now, accepted: [String: Int](), refused: 0,
                                first: [String: ContinuousClock.Instant]()))
    let port: Int
    private let task: Task<Void, any Error>

    var accepted: [String: Int] { state.withLock { $0.accepted } }
    var refused: Int { state.withLock { $0.refused } }
    func firstMessage(to number: String) -> ContinuousClock.Instant? { state.withLock { $0.first[number] } }

    init(rate: Double) async throws {
        let state = self.state
        state.withLock { $0.tokens = rate }
        let router = Router()
        router.post("2010-04-01/Accounts/:account/Messages.json") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 64 * 1024)
            let form = String(buffer: body)
            let now = ContinuousClock.now
            let taken = state.withLock { state -> Bool in
                state.tokens = min(rate, state.tokens + rate * milliseconds(now - state.refilled) / 1000)
                state.refilled = now
                guard state.tokens >= 1 else {
                    state.refused += 1
                    return false
                }
                state.tokens -= 1
                return true
            }
            guard taken else {
                return Response(status: .tooManyRequests, headers: [.contentType: "application/json", .retryAfter: "1"],
                                body: .init(byteBuffer: ByteBuffer(string: #"{"code": 20429, "message": "Too Many Requests", "status": 429}"#)))
            }
            // The message's text carries its incident number; one page per incident here.
            let text = form.split(separator: "&").first { $0.hasPrefix("Body=") }.map { String($0.dropFirst(5)) }?.removingPercentEncoding ?? ""
            let number = text.split(separator: "#").dropFirst().first.map { String($0.prefix { $0.isNumber }) } ?? "?"
            let sid = state.withLock { state -> String in
                state.accepted[number, default: 0] += 1
                if state.first[number] == nil { state.first[number] = now }
                return "SM\(state.accepted.count)"
            }
            return Response(status: .created, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(string: #"{"sid": "\#(sid)", "status": "queued"}"#)))
        }
        (port, task) = try await serveLocally(router, port: 0, label: "muster-bench.sms")
    }

    deinit { task.cancel() }
}

func hoaxWaveBenchmark(backend: String, reports: Int, sites: Int, window: Int, rate: Int) async throws {
    let provider = try await RateLimitedSMSProvider(rate: Double(rate))
    let files = hoaxFiles(sites: sites)
    let loaded = PlaybookLoader.load(directory: ("directory.yaml", files.directory), playbooks: [("threat.yaml", files.playbook)])
    guard let catalog = loaded.catalog else { throw BenchmarkError("the benchmark playbooks do not load: \(loaded.diagnostics)") }
    let store = try await benchmarkStore(backend)
    let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPDeliverySettings().clientConfiguration())
    let names = DirectoryNames(catalog)
    let renderer = try MessageRenderer(publicURL: "http://127.0.0.1:8080", links: AckLinkSigner(secret: Data(repeating: 5, count: 32)),
                                       names: { names.current })
    let twilio = TwilioSettings(baseURL: "http://127.0.0.1:\(provider.port)/", accountSID: "ACbench", authToken: "bench", from: "+15005550006")
    let notifier = Notifier(renderer: renderer, channel: ChannelRouter([.sms: TwilioSMSChannel(http: HTTPDelivery(client: http), settings: twilio)]))
    let runtime = Runtime(store: store, catalog: catalog, notifier: notifier, names: names, instance: "bench")
    let workers = Task { await runtime.run() }

    // The wave: reports spread evenly over the window, severities mixed (10% imminent, 20% high,
    // 40% moderate, 30% low), sites in turn.
    let severities: [Severity] = (0..<10).map { $0 == 0 ? .imminent : $0 < 3 ? .high : $0 < 7 ? .moderate : .low }
    let clock = ContinuousClock()
    let start = clock.now
    let reported = Locked([(number: Int, severity: Severity, at: ContinuousClock.Instant)]())
    try await withThrowingTaskGroup(of: Void.self) { group in
        for index in 0..<reports {
            let due = start + .nanoseconds(Int64(index) * Int64(window) * 1_000_000_000 / Int64(reports))
            if due > clock.now { try await clock.sleep(until: due) }
            group.addTask {
                let severity = severities[index % severities.count]
                let report = Report(type: "threat-of-violence", severity: severity, site: SiteID("s\(index % sites + 1)"), reporter: .integration("bench"),
                                    summary: "hoax \(index)", receivedAt: Date())
                let at = clock.now
                if case .success(.created(let ref, _)) = try await runtime.report(ReportIntake(report: report)).map(\.outcome) {
                    reported.withLock { $0.append((ref.number, severity, at)) }
                }
            }
        }
        try await group.waitForAll()
    }
    let incidents = reported.withLock { $0 }
    let deadline = clock.now + .seconds(Int64(reports / max(rate, 1) + 120))
    while provider.accepted.count < incidents.count, clock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
    let drained = clock.now
    let counts = try await store.outboxCounts()
    let accepted = provider.accepted
    print(String(format: "hoax wave %@: %d reports from %d sites in %d s, provider %d/s: %d incidents, %d paged in %.1f s; "
                 + "%d sent twice, outbox %@, %d requests refused with 429",
                 backend, reports, sites, window, rate, incidents.count, accepted.count, milliseconds(drained - start) / 1000,
                 accepted.values.filter { $0 > 1 }.count, counts.description, provider.refused))
    for group in [[Severity.imminent], [.high], [.moderate], [.low]] {
        var waits = incidents.filter { group.contains($0.severity) }.compactMap { incident in
            provider.firstMessage(to: String(incident.number)).map { milliseconds($0 - incident.at) / 1000 }
        }
        waits.sort()
        print(String(format: "  %@: %d incidents, report to first page p50 %.1f s, p99 %.1f s, max %.1f s",
                     group[0].rawValue, waits.count, percentile(waits, 0.5), percentile(waits, 0.99), waits.last ?? 0))
    }
    workers.cancel()
    await workers.value
    try await http.shutdown()
    (store as? PostgresStore)?.shutdown()
}
