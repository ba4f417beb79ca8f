// Durable ingest through the real service: POST /api/v1/incidents, each report a new incident
// (its own subject and Idempotency-Key), at a fixed rate (open loop: a request's latency counts
// from when it was due, so a stall is not hidden by sending less) or, with --rate 0, as fast as
// `connections` concurrent clients go (closed loop).
import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

func httpBenchmark(url: String, token: String, rate: Int, seconds: Int, connections: Int) async throws {
    var configuration = HTTPClient.Configuration()
    configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: connections)
    let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    defer { _ = client.shutdown() }
    let run = UUID().uuidString.prefix(8)
    let sites = ["lincoln-high", "washington-elementary", "mesa-academy"]

    let failureLog = FailureLog()
    @Sendable func post(_ index: Int) async -> Bool {
        var request = HTTPClientRequest(url: url + "/api/v1/incidents")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Idempotency-Key", value: "bench-\(run)-\(index)")
        let body = #"{"type":"suicide-risk","severity":"high","site":"\#(sites[index % 3])","summary":"load test report","subject":"bench-\#(run)-\#(index)"}"#
        request.body = .bytes(ByteBuffer(string: body))
        do {
            let response = try await client.execute(request, timeout: .seconds(30))
            _ = try await response.body.collect(upTo: 1 << 20)
            if response.status != .created { failureLog.note("HTTP \(response.status.code)") }
            return response.status == .created
        } catch {
            failureLog.note("\(error)")
            return false
        }
    }

    let clock = ContinuousClock()
    let start = clock.now
    let total = rate > 0 ? rate * seconds : Int.max
    let deadline = start + .seconds(seconds)
    let counter = Counter()
    await withTaskGroup(of: Void.self) { group in
        if rate > 0 {
            // Open loop: request i is due at start + i/rate.
            for index in 0..<total {
                let due = start + .nanoseconds(Int64(index) * 1_000_000_000 / Int64(rate))
                if due > clock.now { try? await clock.sleep(until: due) }
                group.addTask {
                    let ok = await post(index)
                    counter.record(milliseconds(clock.now - due), ok)
                }
            }
        } else {
            for _ in 0..<connections {
                group.addTask {
                    while clock.now < deadline {
                        let index = counter.next()
                        let began = clock.now
                        let ok = await post(index)
                        counter.record(milliseconds(clock.now - began), ok)
                    }
                }
            }
        }
    }
    let results = counter.results
    let elapsed = milliseconds(clock.now - start) / 1000
    let latencies = results.map { $0.0 }.sorted()
    let failures = results.filter { !$0.1 }.count
    func percentile(_ q: Double) -> Double { latencies.isEmpty ? 0 : latencies[min(latencies.count - 1, Int(Double(latencies.count) * q))] }
    if let first = failureLog.first { print("first failure: \(first)") }
    let mode = rate > 0 ? "rate \(rate)/s" : "closed loop, \(connections) connections"
    print(String(format: "http ingest (%@): %d reports in %.1f s = %.0f reports/s, %d failed; latency p50 %.2f ms, p99 %.2f ms, max %.2f ms",
                 mode, results.count, elapsed, Double(results.count - failures) / elapsed, failures, percentile(0.5), percentile(0.99),
                 latencies.last ?? 0))
}

/// Shared by the closed-loop clients.
private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var index = 0
    private(set) var results: [(Double, Bool)] = []

    func next() -> Int { lock.withLock { index += 1; return index } }
    func record(_ latency: Double, _ ok: Bool) { lock.withLock { results.append((latency, ok)) } }
}

/// The first failure, to say why requests failed.
private final class FailureLog: @unchecked Sendable {
    private let lock = NSLock()
    private var value: String?
    var first: String? { lock.withLock { value } }
    func note(_ text: String) { lock.withLock { if value == nil { value = text } } }
}
