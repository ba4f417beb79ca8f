// The store and the runtime: group-commit throughput, timer lateness, timeline reads at scale.
import Foundation
import MusterCore
import MusterNotify
import MusterPlaybooks
import MusterRuntime
import MusterStore

func shippedCatalog() throws -> Catalog {
    guard let catalog = PlaybookLoader.load(folder: URL(fileURLWithPath: "playbooks")).catalog else {
        throw BenchmarkError("run from the repository root: the shipped playbooks must load")
    }
    return catalog
}

func percentile(_ sorted: [Double], _ q: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]
}

/// Channels that accept everything at once, so the benchmarks measure Muster, not a provider.
private struct AcceptAll: Channel {
    func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt { DeliveryReceipt() }
}

private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var commits = 0, commands = 0
    func add(_ batch: Int) { lock.withLock { commits += 1; commands += batch } }
    var averageBatch: Double { lock.withLock { commits == 0 ? 0 : Double(commands) / Double(commits) } }
}

/// New incidents through the Committer from many concurrent callers, as the API will submit them
/// (each with an idempotency key and a grouping key); figures per shape of incident.
func storeBenchmark(backend: String, incidents: Int, inFlight: Int) async throws {
    let catalog = try shippedCatalog()
    // Wednesday 19:00 in Chicago: the catch-all's after-hours first step pages one person over two channels.
    let shapes: [(name: String, type: IncidentTypeID, at: Date)] = [
        ("reference: catch-all after hours", "other-concern", iso8601("2026-12-02T19:00:00-06:00")),
        ("suicide risk in school hours", "suicide-risk", iso8601("2026-12-02T10:00:00-06:00")),
    ]
    for shape in shapes {
        let store = try await benchmarkStore(backend)
        let counter = Counter()
        let committer = Committer(store: store, catalog: catalog, clock: ManualClock(shape.at), maxInFlight: inFlight) { _, results in counter.add(results.count) }
        let callers = 256
        let latencies = LatencySamples()
        let start = Date()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for caller in 0..<callers {
                group.addTask {
                    for index in stride(from: caller, to: incidents, by: callers) {
                        let report = Report(type: shape.type, severity: .high, site: "lincoln-high", reporter: .person("aokafor"),
                                            summary: "benchmark report \(index)", subject: "S-\(index)", receivedAt: shape.at)
                        let sent = Date()
                        let key = CommandLine.arguments.contains("--no-keys") ? nil : "bench-\(index)"
                        let result = try await committer.submit(.report(ReportIntake(report: report, idempotencyKey: key)))
                        latencies.record(Date().timeIntervalSince(sent))
                        guard case .success(.created) = result.map(\.outcome) else { throw BenchmarkError("report \(index): \(result)") }
                    }
                }
            }
            try await group.waitForAll()
        }
        let elapsed = Date().timeIntervalSince(start)
        guard let first = try await store.incidents(IncidentFilter(limit: 1)).first else { throw BenchmarkError("no incident was stored") }
        let sample = try await store.timeline(first.ref.id)
        let outbox = try await store.outboxCounts()["queued", default: 0]
        print(String(format: "store %@, %@: %d incidents in %.2f s = %.0f incidents/s (%d audit entries, %d outbox rows each; %.0f per group commit; latency p50 %.1f ms, p99 %.1f ms)",
                     backend, shape.name, incidents, elapsed, Double(incidents) / elapsed, sample.count, outbox / incidents,
                     counter.averageBatch, (latencies.quantile(0.5) ?? 0) * 1000, (latencies.quantile(0.99) ?? 0) * 1000))
        (store as? PostgresStore)?.shutdown()
    }
}

/// Timers falling due at a steady rate, fired by the real runtime on the system clock: lateness is
/// the time from a timer's due instant to the commit of the engine's step.
func timerBenchmark(backend: String, rate: Int, seconds: Int) async throws {
    let catalog = try shippedCatalog()
    let store = try await benchmarkStore(backend)
    let total = rate * seconds
    let perBatch = max(1, rate / 100)  // timers due together every 10 ms
    guard let playbook = catalog.playbooks.playbook(type: "other-concern", severity: .high, site: "lincoln-high") else {
        throw BenchmarkError("no playbook for other-concern")
    }
    // Time for the set-up and the delivery of its pages (2 ms an incident), so none are left when timers fall due.
    let firstDue = Date().addingTimeInterval(Double(total) / 500 + 5)
    var index = 0
    while index < total {
        let due = firstDue.addingTimeInterval(Double(index) / Double(rate))
        let window = playbook.steps(of: playbook.variant(for: catalog.directory.schoolTime(at: "lincoln-high", instant: due))).first?.ackWithin.seconds ?? 600
        let now = due.addingTimeInterval(-Double(window))
        let commands = (index..<min(index + perBatch, total)).map { n in
            IncidentCommand.report(ReportIntake(report: Report(type: "other-concern", severity: .high, site: "lincoln-high", reporter: .person("aokafor"),
                                                            summary: "timer \(n)", subject: "T-\(n)", receivedAt: now)))
        }
        _ = try await Dispatcher(catalog: catalog).outcomes(commands, to: store, now: now)
        index += perBatch
    }
    guard Date() < firstDue else { throw BenchmarkError("set-up took longer than planned; lower --rate or --seconds") }
    let runtime = try Runtime(store: store, catalog: catalog, channel: AcceptAll(), instance: "bench")
    let workers = Task { await runtime.run() }
    // The set-up's own pages go out before the first timer is due: lateness is measured against the
    // pages the timers themselves queue, not against a backlog.
    try await Task.sleep(for: .seconds(firstDue.timeIntervalSinceNow))
    let backlog = try await store.outboxCounts()["queued", default: 0]
    try await Task.sleep(for: .seconds(Double(seconds) + 2))
    workers.cancel()
    print("timers \(backend): \(backlog) notifications still queued when the first timer fell due")
    let count = runtime.timerLateness.count
    print(String(format: "timers %@: %d due at %d/s over %d s, %d fired; lateness p50 %.1f ms, p99 %.1f ms, max %.1f ms",
                 backend, total, rate, seconds, count, (runtime.timerLateness.quantile(0.5) ?? 0) * 1000,
                 (runtime.timerLateness.quantile(0.99) ?? 0) * 1000, (runtime.timerLateness.quantile(1) ?? 0) * 1000))
    (store as? PostgresStore)?.shutdown()
}

/// One incident's timeline among many: fill the store, then read random timelines.
func timelineBenchmark(backend: String, incidents: Int) async throws {
    let catalog = try shippedCatalog()
    let store = try await benchmarkStore(backend)
    let at = iso8601("2026-12-02T19:00:00-06:00")
    var ids: [IncidentID] = []
    ids.reserveCapacity(incidents)
    let start = Date()
    for batchStart in stride(from: 0, to: incidents, by: 1000) {
        let commands = (batchStart..<min(batchStart + 1000, incidents)).map { n in
            IncidentCommand.report(ReportIntake(report: Report(type: "other-concern", severity: .high, site: "lincoln-high", reporter: .person("aokafor"),
                                                            summary: "incident \(n)", subject: "L-\(n)", receivedAt: at)))
        }
        for result in try await Dispatcher(catalog: catalog).outcomes(commands, to: store, now: at) {
            if case .success(let outcome) = result { ids.append(outcome.incident.id) }
        }
    }
    let filled = Date().timeIntervalSince(start)
    var latencies: [Double] = []
    var entries = 0
    for _ in 0..<1000 {
        guard let id = ids.randomElement() else { break }
        let began = Date()
        entries += try await store.timeline(id).count
        latencies.append(Date().timeIntervalSince(began) * 1000)
    }
    latencies.sort()
    print(String(format: "timeline %@: %d incidents written in %.1f s (%.0f/s in batches of 1000); one timeline (%d entries): p50 %.2f ms, p99 %.2f ms",
                 backend, ids.count, filled, Double(ids.count) / filled, entries / max(latencies.count, 1),
                 percentile(latencies, 0.5), percentile(latencies, 0.99)))
    (store as? PostgresStore)?.shutdown()
}
