// Pages through the real notifier to a local webhook sink (a Hummingbird server in this process):
//   fanout: N incidents reported at once into an in-process runtime; pages per second until the
//           sink has every page (each incident pages its site's counsellors over a signed webhook).
//   page-latency: against a running `muster serve` (Benchmarks/run-page-benchmarks), reports at a
//           fixed rate; time from each report's POST to its first page arriving at the sink.
//   fanout-playbooks DIR SINK: writes the directory and playbook both use, pointing at SINK.
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
import Synchronization

/// The directory: one site, `people` counsellors whose only contact point is the sink's webhook.
func fanoutFiles(sink: String, people: Int) -> (directory: String, playbook: String) {
    let members = (1...people).map { "          - { id: c\($0), name: Counsellor \($0), roles: [counselor], sites: [lincoln-high], contacts: [ { webhook: \"\(sink)/hook\" } ] }" }
    let directory = """
        district: { id: bench, name: Bench District, time_zone: America/Chicago }
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
        \(members.joined(separator: "\n"))
        """
    let playbook = """
        id: suicide-risk
        title: Student at risk of suicide or self-harm
        match: { types: [suicide-risk] }
        steps:
          - { notify: [role:counselor@site], via: [webhook], ack_within: 10m }
        fallback: { notify: [role:counselor@site], via: [webhook] }
        """
    return (directory, playbook)
}

/// A webhook receiver that notes when each incident's first page arrived, and how many pages came.
final class PageSink: Sendable {
    private let state = Locked((pages: 0, first: [Int: ContinuousClock.Instant](), last: ContinuousClock.Instant?.none))
    let port: Int
    private let task: Task<Void, any Error>

    var pages: Int { state.withLock { $0.pages } }
    var lastArrival: ContinuousClock.Instant? { state.withLock { $0.last } }
    func firstArrival(_ number: Int) -> ContinuousClock.Instant? { state.withLock { $0.first[number] } }

    init(port: Int) async throws {
        let state = self.state
        let router = Router()
        router.post("hook") { request, _ -> HTTPResponse.Status in
            let body = try await request.body.collect(upTo: 64 * 1024)
            let now = ContinuousClock.now
            let object = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any]
            let number = (object?["incident"] as? [String: Any])?["number"] as? Int ?? -1
            state.withLock { state in
                state.pages += 1
                state.last = now
                if state.first[number] == nil { state.first[number] = now }
            }
            return .ok
        }
        (self.port, task) = try await serveLocally(router, port: port, label: "muster-bench.sink")
    }

    deinit { task.cancel() }
}

/// Runs `router` on 127.0.0.1 (`port` 0: a free one) until the returned task is cancelled.
func serveLocally(_ router: Router<BasicRequestContext>, port: Int, label: String) async throws -> (port: Int, task: Task<Void, any Error>) {
    let bound = AsyncStream<Int>.makeStream()
    var logger = Logger(label: label)
    logger.logLevel = .warning
    let app = Application(router: router, configuration: ApplicationConfiguration(address: .hostname("127.0.0.1", port: port)),
                          onServerRunning: { channel in bound.continuation.yield(channel.localAddress?.port ?? 0) }, logger: logger)
    let task = Task { try await app.run() }
    var iterator = bound.stream.makeAsyncIterator()
    guard let port = await iterator.next(), port > 0 else {
        task.cancel()
        throw BenchmarkError("\(label) did not start")
    }
    return (port, task)
}

func fanoutPlaybooksCommand(folder: String, sink: String, people: Int) throws {
    let files = fanoutFiles(sink: sink, people: people)
    try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    try files.directory.write(toFile: (folder as NSString).appendingPathComponent("directory.yaml"), atomically: true, encoding: .utf8)
    try files.playbook.write(toFile: (folder as NSString).appendingPathComponent("suicide-risk.yaml"), atomically: true, encoding: .utf8)
}

func fanoutBenchmark(backend: String, incidents: Int, people: Int) async throws {
    let sink = try await PageSink(port: 0)
    let files = fanoutFiles(sink: "http://127.0.0.1:\(sink.port)", people: people)
    let loaded = PlaybookLoader.load(directory: ("directory.yaml", files.directory), playbooks: [("suicide-risk.yaml", files.playbook)])
    guard let catalog = loaded.catalog else { throw BenchmarkError("the benchmark playbooks do not load: \(loaded.diagnostics)") }
    let store = try await benchmarkStore(backend)
    let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPDeliverySettings().clientConfiguration())
    let names = DirectoryNames(catalog)
    let renderer = try MessageRenderer(publicURL: "http://127.0.0.1:8080", links: AckLinkSigner(secret: Data(repeating: 5, count: 32)),
                                       names: { names.current })
    let notifier = Notifier(renderer: renderer, channel: ChannelRouter([.webhook: WebhookChannel(http: HTTPDelivery(client: http),
                                                                                        signing: WebhookSigning(defaultSecrets: [WebhookSecret(key: Array(repeating: 9, count: 32))]),
                                                                                        egress: EgressPolicy(allowedHosts: ["127.0.0.1"]))]),
                            limiter: ChannelLimiter(limits: [.webhook: 64]))
    let runtime = Runtime(store: store, catalog: catalog, notifier: notifier, names: names, instance: "bench")
    let workers = Task { await runtime.run() }
    let expected = incidents * people
    let clock = ContinuousClock()
    let start = clock.now
    try await withThrowingTaskGroup(of: Void.self) { group in
        for index in 0..<incidents {
            group.addTask {
                let report = Report(type: "suicide-risk", severity: .high, site: "lincoln-high", reporter: .person("c1"),
                                    summary: "fan-out \(index)", subject: "F-\(index)", receivedAt: Date())
                _ = try await runtime.report(ReportIntake(report: report))
            }
        }
        try await group.waitForAll()
    }
    let committed = clock.now
    while sink.pages < expected, clock.now - start < .seconds(120) { try await Task.sleep(for: .milliseconds(5)) }
    let end = sink.lastArrival ?? clock.now
    let seconds = milliseconds(end - start) / 1000
    print(String(format: "fanout %@: %d incidents reported at once, %d of %d pages at the webhook sink in %.2f s = %.0f pages/s (all committed after %.2f s)",
                 backend, incidents, sink.pages, expected, seconds, Double(sink.pages) / seconds, milliseconds(committed - start) / 1000))
    workers.cancel()
    await workers.value
    try await http.shutdown()
    (store as? PostgresStore)?.shutdown()
}

func pageLatencyBenchmark(url: String, token: String, sinkPort: Int, rate: Int, seconds: Int) async throws {
    let sink = try await PageSink(port: sinkPort)
    let client = HTTPClient(eventLoopGroupProvider: .singleton)
    let run = UUID().uuidString.prefix(8)
    let clock = ContinuousClock()
    let start = clock.now
    let posted = Locked([(number: Int, at: ContinuousClock.Instant)]())
    let failures = Locked(0)
    await withTaskGroup(of: Void.self) { group in
        for index in 0..<(rate * seconds) {
            let due = start + .nanoseconds(Int64(index) * 1_000_000_000 / Int64(rate))
            if due > clock.now { try? await clock.sleep(until: due) }
            group.addTask {
                var request = HTTPClientRequest(url: url + "/api/v1/incidents")
                request.method = .POST
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
                request.headers.add(name: "Content-Type", value: "application/json")
                request.headers.add(name: "Idempotency-Key", value: "pages-\(run)-\(index)")
                request.body = .bytes(ByteBuffer(string: #"{"type":"suicide-risk","severity":"high","site":"lincoln-high","summary":"latency probe","subject":"P-\#(run)-\#(index)"}"#))
                let sent = clock.now
                do {
                    let response = try await client.execute(request, timeout: .seconds(30))
                    let body = try await response.body.collect(upTo: 1 << 20)
                    let object = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any]
                    guard response.status == .created, let number = (object?["incident"] as? [String: Any])?["number"] as? Int else {
                        failures.withLock { $0 += 1 }
                        return
                    }
                    posted.withLock { $0.append((number, sent)) }
                } catch {
                    failures.withLock { $0 += 1 }
                }
            }
        }
    }
    let reports = posted.withLock { $0 }
    let waitUntil = clock.now + .seconds(10)
    while reports.contains(where: { sink.firstArrival($0.number) == nil }), clock.now < waitUntil { try? await Task.sleep(for: .milliseconds(10)) }
    var latencies = reports.compactMap { report in sink.firstArrival(report.number).map { milliseconds($0 - report.at) } }
    latencies.sort()
    print(String(format: "report to first page at the webhook sink, %d reports/s for %d s: %d reports (%d failed), %d first pages; p50 %.2f ms, p99 %.2f ms, max %.2f ms",
                 rate, seconds, reports.count, failures.withLock { $0 }, latencies.count, percentile(latencies, 0.5), percentile(latencies, 0.99),
                 latencies.last ?? 0))
    try await client.shutdown()
}

/// A value behind a lock that closures can share (a Mutex itself cannot be captured).
final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    init(_ value: Value) { mutex = Mutex(value) }
    func withLock<T: Sendable>(_ body: (inout Value) -> T) -> T { mutex.withLock { body(&$0) } }
}
