// Release-mode benchmarks: figures for the issue notes, never assertions.
//   swift run -c release muster-bench engine [PLAYBOOKS]
//   swift run -c release muster-bench store sqlite|postgres [--incidents N] [--in-flight 4] [--no-keys]   (Benchmarks/run-store-benchmarks provisions PostgreSQL)
//   swift run -c release muster-bench timers sqlite|postgres [--rate 1000 --seconds 10]
//   swift run -c release muster-bench timeline sqlite|postgres [--incidents 1000000]
//   swift run -c release muster-bench http URL TOKEN [--rate 1000] [--seconds 10] [--connections 16]   (Benchmarks/run-http-benchmarks)
//   swift run -c release muster-bench fanout sqlite|postgres [--incidents 1000] [--people 2]
//   swift run -c release muster-bench page-latency URL TOKEN --sink-port P [--rate 200] [--seconds 20]   (Benchmarks/run-page-benchmarks)
//   swift run -c release muster-bench fanout-playbooks DIR SINK_URL [--people 2]
//   swift run -c release muster-bench board sqlite|postgres [--incidents 500] [--requests 100]
//   swift run -c release muster-bench hoax-wave sqlite|postgres [--reports 1000] [--sites 50] [--window 60] [--rate 10]   (Benchmarks/run-store-benchmarks hoax-wave)
import Foundation
import MusterAudit
import MusterStore

struct BenchmarkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

func iso8601(_ text: String) -> Date {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    return formatter.date(from: text) ?? Date(timeIntervalSince1970: 0)
}

func option(_ name: String, default value: Int) -> Int {
    let arguments = CommandLine.arguments
    guard let index = arguments.firstIndex(of: name), index + 1 < arguments.count, let number = Int(arguments[index + 1]) else { return value }
    return number
}

/// A fresh store: a new SQLite file, or a new database in the PostgreSQL at MUSTER_BENCH_DATABASE_URL.
func benchmarkStore(_ backend: String) async throws -> any Store {
    switch backend {
    case "sqlite":
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("muster-bench-\(UUID().uuidString).sqlite").path
        let store = try SQLiteStore(path: path, masterKey: MasterKey.generate())
        try await store.migrate()
        print("store: \(path)")
        return store
    case "postgres":
        guard let url = ProcessInfo.processInfo.environment["MUSTER_BENCH_DATABASE_URL"] else {
            throw BenchmarkError("set MUSTER_BENCH_DATABASE_URL (Benchmarks/run-store-benchmarks does)")
        }
        let name = "muster_bench_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(12)
        let psql = Process()
        psql.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
        psql.arguments = [url, "-q", "-c", "CREATE DATABASE \(name)"]
        try psql.run()
        psql.waitUntilExit()
        var settings = try PostgresSettings(url: url)
        settings.database = String(name)
        let store = PostgresStore(settings: settings, masterKey: MasterKey.generate(), timeout: 60)
        try await store.migrate()
        print("store: PostgreSQL database \(name)")
        return store
    default:
        throw BenchmarkError("unknown store '\(backend)': sqlite or postgres")
    }
}

let arguments = Array(CommandLine.arguments.dropFirst())
do {
    switch arguments.first ?? "engine" {
    case "engine": try engineBenchmark(folder: arguments.dropFirst().first ?? "playbooks")
    case "store": try await storeBenchmark(backend: arguments.dropFirst().first ?? "sqlite", incidents: option("--incidents", default: 20_000),
                                          inFlight: option("--in-flight", default: 4))
    case "timers": try await timerBenchmark(backend: arguments.dropFirst().first ?? "sqlite", rate: option("--rate", default: 1000),
                                            seconds: option("--seconds", default: 10))
    case "http":
        guard arguments.count >= 3 else { throw BenchmarkError("usage: muster-bench http URL TOKEN [--rate N] [--seconds S] [--connections C]") }
        try await httpBenchmark(url: arguments[1], token: arguments[2], rate: option("--rate", default: 1000), seconds: option("--seconds", default: 10),
                                connections: option("--connections", default: 16))
    case "hoax-wave":
        try await hoaxWaveBenchmark(backend: arguments.dropFirst().first ?? "sqlite", reports: option("--reports", default: 1000),
                                    sites: option("--sites", default: 50), window: option("--window", default: 60), rate: option("--rate", default: 10))
    case "audit-sequence": try await auditSequenceBenchmark(backend: arguments.dropFirst().first ?? "sqlite", location: arguments.dropFirst(2).first ?? "")
    case "audit-verify": try await auditVerifyBenchmark(backend: arguments.dropFirst().first ?? "sqlite", location: arguments.dropFirst(2).first ?? "")
    case "audit": try await auditBenchmark(backend: arguments.dropFirst().first ?? "sqlite", entries: option("--entries", default: 1_000_000),
                                           rate: option("--rate", default: 10_000), seconds: option("--seconds", default: 20))
    case "fanout": try await fanoutBenchmark(backend: arguments.dropFirst().first ?? "sqlite", incidents: option("--incidents", default: 1000),
                                             people: option("--people", default: 2))
    case "page-latency":
        guard arguments.count >= 3 else { throw BenchmarkError("usage: muster-bench page-latency URL TOKEN --sink-port P [--rate N] [--seconds S]") }
        try await pageLatencyBenchmark(url: arguments[1], token: arguments[2], sinkPort: option("--sink-port", default: 0),
                                       rate: option("--rate", default: 200), seconds: option("--seconds", default: 20))
    case "fanout-playbooks":
        guard arguments.count >= 3 else { throw BenchmarkError("usage: muster-bench fanout-playbooks DIR SINK_URL [--people N]") }
        try fanoutPlaybooksCommand(folder: arguments[1], sink: arguments[2], people: option("--people", default: 2))
    case "board": try await boardBenchmark(backend: arguments.dropFirst().first ?? "sqlite", incidents: option("--incidents", default: 500),
                                           requests: option("--requests", default: 100))
    case "timeline": try await timelineBenchmark(backend: arguments.dropFirst().first ?? "sqlite", incidents: option("--incidents", default: 1_000_000))
    default: throw BenchmarkError("unknown benchmark '\(arguments[0])': engine, store, timers, timeline, audit, http, fanout or page-latency")
    }
} catch {
    FileHandle.standardError.write(Data("muster-bench: \(error)\n".utf8))
    exit(1)
}
