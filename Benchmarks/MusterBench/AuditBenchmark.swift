// The audit log's figures: the sequencer's throughput, commit-to-checkpoint latency under a steady
// entry rate, `verify` over the whole log, and one incident's export with proofs among many entries.
import Foundation
import MusterAudit
import MusterCore
import MusterPlaybooks
import MusterRuntime
import MusterStore

func auditBenchmark(backend: String, entries target: Int, rate: Int, seconds: Int) async throws {
    let catalog = try shippedCatalog()
    let store = try await benchmarkStore(backend)
    let signer = CheckpointSigner(try NoteSigner.generate(name: "bench.muster.local/audit-log"))
    // Kept so that `muster-bench audit-verify` can check this log again without filling another.
    try signer.signer.privateKey.write(toFile: auditBenchmarkKeyPath, atomically: true, encoding: .utf8)
    let sign: @Sendable (Int64, LogHash) throws -> String = { try signer.sign(size: $0, root: $1) }
    let at = iso8601("2026-12-02T19:00:00-06:00")

    // 1. Fill: reports in batches of 1,000 until the log holds `target` entries.
    var ids: [IncidentID] = []
    var pending = 0, number = 0
    let fillStart = Date()
    while pending < target {
        let commands = (0..<1000).map { _ in
            number += 1
            return IncidentCommand.report(ReportIntake(report: Report(type: "other-concern", severity: .high, site: "lincoln-high",
                                                                   reporter: .person("aokafor"), summary: "incident \(number)",
                                                                   subject: "L-\(number)", receivedAt: at)))
        }
        for result in try await Dispatcher(catalog: catalog).outcomes(commands, to: store, now: at) {
            if case .success(let outcome) = result { ids.append(outcome.incident.id) }
        }
        pending = try await store.pendingAuditEntries()
    }
    let perReport = Double(pending) / Double(ids.count)
    print(String(format: "audit %@: %d entries of %d incidents committed in %.1f s", backend, pending, ids.count, Date().timeIntervalSince(fillStart)))

    // 2. The sequencer integrating the whole backlog, 20,000 entries a pass.
    let sequenceStart = Date()
    var integrated = 0, passes = 0
    while let pass = try await store.integrateAuditEntries(limit: 20_000, now: at, sign: sign), pass.integrated > 0 {
        integrated += pass.integrated
        passes += 1
    }
    let sequenced = Date().timeIntervalSince(sequenceStart)
    print(String(format: "audit %@: sequencer integrated %d entries in %.2f s: %.0f entries/s (%d passes, each one transaction and one signed checkpoint)",
                 backend, integrated, sequenced, Double(integrated) / sequenced, passes))

    // 3. One incident's export with its proofs, among all those entries.
    let exporter = AuditExporter(store: store, verifierKey: signer.verifierKey)
    var exportTimes: [Double] = []
    for _ in 0..<200 {
        guard let id = ids.randomElement() else { break }
        let began = Date()
        let bytes = try await exporter.export(id).export.encoded()
        exportTimes.append(Date().timeIntervalSince(began) * 1000)
        if bytes.isEmpty { throw BenchmarkError("empty export") }
    }
    exportTimes.sort()
    print(String(format: "audit %@: export with proofs of one incident among %d entries: p50 %.2f ms, p99 %.2f ms",
                 backend, integrated, percentile(exportTimes, 0.5), percentile(exportTimes, 0.99)))

    // 4. verify: every leaf, chain, stored hash and checkpoint.
    let verifyStart = Date()
    let summary = try await AuditLogVerifier(store: store, verifiers: [signer.signer.verifier]).verify()
    let verified = Date().timeIntervalSince(verifyStart)
    print(String(format: "audit %@: verify checked %d entries and %d checkpoints in %.2f s: %.0f entries/s",
                 backend, summary.entries, summary.checkpoints, verified, Double(summary.entries) / verified))

    // 5. Commit to signed checkpoint under a steady load of `rate` entries/s, the sequencer as the service runs it.
    let reportsPerTick = max(1, Int((Double(rate) * 0.05 / perReport).rounded()))
    let settings = AuditLogSettings(signer: signer)
    let latencies = LatencyCollector()
    let sequencer = Task {
        while !Task.isCancelled {
            if let pass = try? await store.integrateAuditEntries(limit: settings.batch, now: Date(), sign: sign), let oldest = pass.oldestCommittedAt {
                latencies.add(Date().timeIntervalSince(oldest) * 1000)
                if pass.integrated >= settings.batch { continue }
            }
            try? await Task.sleep(for: .milliseconds(Int(settings.interval * 1000)))
        }
    }
    // Producers (four unless --producers says), as concurrent requests would be; each commits its share
    // every 50 ms. The printed rate is what they reached: more producers when four cannot keep up.
    let producers = max(1, option("--producers", default: 4))
    let perProducer = max(1, reportsPerTick / producers)
    let loadStart = Date()
    let ticks = try await withThrowingTaskGroup(of: Int.self) { group in
        for producer in 0..<producers {
            group.addTask {
                var tick = 0
                while Date().timeIntervalSince(loadStart) < Double(seconds) {
                    let commands = (0..<perProducer).map { n in
                        IncidentCommand.report(ReportIntake(report: Report(type: "other-concern", severity: .high, site: "lincoln-high",
                                                                        reporter: .person("aokafor"), summary: "load \(producer).\(tick).\(n)",
                                                                        subject: "P-\(producer)-\(tick)-\(n)", receivedAt: Date())))
                    }
                    _ = try await Dispatcher(catalog: catalog).outcomes(commands, to: store, now: Date())
                    tick += 1
                    let next = loadStart.addingTimeInterval(Double(tick) * 0.05)
                    if next > Date() { try await Task.sleep(for: .milliseconds(Int(next.timeIntervalSinceNow * 1000))) }
                }
                return tick
            }
        }
        return try await group.reduce(0, +)
    }
    let elapsed = Date().timeIntervalSince(loadStart)
    try await Task.sleep(for: .seconds(1))
    sequencer.cancel()
    let samples = latencies.sorted()
    print(String(format: "audit %@: at %.0f entries/s for %.0f s, commit to signed checkpoint (oldest entry of each pass): p50 %.0f ms, p99 %.0f ms, max %.0f ms (%d passes)",
                 backend, Double(ticks * perProducer) * perReport / elapsed, elapsed, percentile(samples, 0.5), percentile(samples, 0.99),
                 samples.last ?? 0, samples.count))
    (store as? PostgresStore)?.shutdown()
}

final class LatencyCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Double] = []
    func add(_ value: Double) { lock.withLock { values.append(value) } }
    func sorted() -> [Double] { lock.withLock { values.sorted() } }
}

let auditBenchmarkKeyPath = FileManager.default.temporaryDirectory.appendingPathComponent("muster-bench-audit.key").path

/// The sequencer alone over whatever a database has pending (profiling: refill `audit_pending` by hand).
func auditSequenceBenchmark(backend: String, location: String) async throws {
    let store = try existingBenchmarkStore(backend, location)
    let signer = CheckpointSigner(try NoteSigner.generate(name: "bench.muster.local/audit-log"))
    let start = Date()
    var integrated = 0
    while let pass = try await store.integrateAuditEntries(limit: 20_000, now: Date(), sign: { try signer.sign(size: $0, root: $1) }),
          pass.integrated > 0 {
        integrated += pass.integrated
    }
    let seconds = Date().timeIntervalSince(start)
    print(String(format: "audit %@: sequencer integrated %d entries in %.2f s: %.0f entries/s", backend, integrated, seconds, Double(integrated) / seconds))
    (store as? PostgresStore)?.shutdown()
}

/// `verify` again over a log an earlier `audit` run filled (its SQLite file or PostgreSQL database), for profiling.
func auditVerifyBenchmark(backend: String, location: String) async throws {
    let signer = try NoteSigner(privateKey: String(contentsOfFile: auditBenchmarkKeyPath, encoding: .utf8))
    let store = try existingBenchmarkStore(backend, location)
    let start = Date()
    let summary = try await AuditLogVerifier(store: store, verifiers: [signer.verifier]).verify()
    let seconds = Date().timeIntervalSince(start)
    print(String(format: "audit %@: verify checked %d entries and %d checkpoints in %.2f s: %.0f entries/s",
                 backend, summary.entries, summary.checkpoints, seconds, Double(summary.entries) / seconds))
    (store as? PostgresStore)?.shutdown()
}

/// A store an earlier run filled: its SQLite file, or its PostgreSQL database's name.
func existingBenchmarkStore(_ backend: String, _ location: String) throws -> any Store {
    if backend == "sqlite" { return try SQLiteStore(path: location, masterKey: MasterKey.generate()) }
    guard let url = ProcessInfo.processInfo.environment["MUSTER_BENCH_DATABASE_URL"] else { throw BenchmarkError("set MUSTER_BENCH_DATABASE_URL") }
    var settings = try PostgresSettings(url: url)
    settings.database = location
    return PostgresStore(settings: settings, masterKey: MasterKey.generate(), timeout: 600)
}
