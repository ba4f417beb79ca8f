// The board with N open incidents: the time `GET /board` takes, measured from a client on
// loopback (so it bounds the server's time from above), for a responder at the site of them all.
// Nothing is paged: the runtime's workers are not started, so the incidents stay open and unowned.
import AsyncHTTPClient
import Foundation
import MusterCore
import MusterHTTP
import MusterNotify
import MusterRuntime
import NIOCore

func boardBenchmark(backend: String, incidents: Int, requests: Int) async throws {
    let catalog = try shippedCatalog()
    let store = try await benchmarkStore(backend)
    let runtime = try Runtime(store: store, catalog: catalog, channel: FileChannel(path: "/dev/null"))
    let now = Date()
    for index in 0..<incidents {
        // A distinct student each, so none groups with another: N incidents.
        let report = Report(type: IncidentTypeID("suicide-risk"), severity: .high, site: SiteID("lincoln-high"), reporter: .integration("bench"),
                            summary: "Board benchmark \(index)", subject: "S-\(index)", receivedAt: now.addingTimeInterval(Double(index)))
        _ = try await runtime.report(ReportIntake(report: report, idempotencyKey: "board-\(index)")).get()
    }
    try await runtime.accounts.addUser(UserAccount(id: "bench-responder", name: "Bench Responder", role: .responder,
                                                   sites: [SiteID("lincoln-high")], createdAt: now))
    let token = AccountRecords.newToken()
    try await runtime.accounts.startSession(token: token, user: "bench-responder", at: now, expires: now.addingTimeInterval(3600))
    let server = MusterServer(runtime: runtime, metrics: MusterMetrics(), clock: SystemClock(), playbookFolder: nil)
    let port = 18_000 + Int.random(in: 0..<2000)
    let app = server.makeApplication(host: "127.0.0.1", port: port)
    let serving = Task { try await app.runService() }
    defer { serving.cancel() }
    try await Task.sleep(for: .milliseconds(500))
    var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/board")
    request.headers.add(name: "Cookie", value: "muster_session=\(token); muster_browser=\(AccountRecords.newToken())")
    var samples: [Double] = []
    var bytes = 0
    let clock = ContinuousClock()
    for round in 0..<(requests + 5) {
        let start = clock.now
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 10 << 20)
        let elapsed = milliseconds(clock.now - start)
        guard response.status == .ok else { throw BenchmarkError("GET /board answered \(response.status)") }
        if round >= 5 { samples.append(elapsed) }  // the first few warm the caches
        bytes = body.readableBytes
    }
    let open = try await runtime.reads.incidents(IncidentFilter(phases: ["escalating", "unowned", "acknowledged"], limit: 500)).count
    samples.sort()
    func percentile(_ p: Double) -> Double { samples[min(samples.count - 1, Int(Double(samples.count) * p))] }
    print(String(format: "board (%@): %d open incidents, %d requests, page %d bytes: p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                 backend, open, samples.count, bytes, percentile(0.5), percentile(0.99), samples.last ?? 0))
}
