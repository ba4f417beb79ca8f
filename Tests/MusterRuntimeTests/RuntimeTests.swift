// The runtime end to end on each store: intake, group commit, the timer worker on a virtual clock,
// and the delivery worker over a real file channel.
import Foundation
import MusterAudit
import MusterCore
import MusterNotify
import MusterPlaybooks
import MusterRuntime
import MusterStore
import MusterTestSupport
import Testing

/// A migrated store on a database of its own.
func freshStore(_ backend: Backend) async throws -> any Store {
    let store = try await MusterTestSupport.freshStore(backend, prefix: "muster_rt_").store
    try await store.migrate()
    return store
}

/// Lines the file channel wrote.
func sent(_ path: String) -> [[String: String]] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap { try? JSONDecoder().decode([String: String].self, from: Data($0.utf8)) }
}

/// Waits (in real time, bounded) for the workers to catch up with the virtual clock.
func eventually(_ what: String, timeout: TimeInterval = 15, _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("timed out waiting for \(what)")
}

struct AlwaysFails: Channel {
    func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt {
        throw DeliveryFailure(.badAddress, "number not in service")
    }
}

@Suite("Runtime")
struct RuntimeTests {
    @Test("report, pages delivered, the window runs out on the virtual clock, a repeat, an acknowledgement stops it", arguments: Backend.allCases)
    func escalationLoop(backend: Backend) async throws {
        let store = try await freshStore(backend)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("muster-sent-\(UUID().uuidString).jsonl").path
        let clock = ManualClock(schoolMorning)
        let runtime = try Runtime(store: store, catalog: shippedCatalog, channel: FileChannel(path: file), clock: clock, instance: "test")
        let workers = Task { await runtime.run() }
        defer {
            workers.cancel()
            clock.wakeAll()
        }
        let report = Report(type: "suicide-risk", severity: .high, site: "lincoln-high", reporter: .person("aokafor"),
                            summary: "Student wrote a goodbye note", subject: "S-9", receivedAt: schoolMorning)
        guard case .success(.created(let ref, let queued)) = try await runtime.report(ReportIntake(report: report)).map(\.outcome) else {
            Issue.record("no incident was created")
            return
        }
        try await eventually("step 1's pages") { sent(file).count == queued.count }
        #expect(Set(sent(file).map { $0["id"] ?? "" }) == Set(queued.map(\.id.description)))
        #expect(sent(file).allSatisfy { $0["number"] == String(ref.number) && $0["kind"] == "page" })
        #expect(!sent(file).contains { $0.values.contains { $0.contains("goodbye") || $0.contains("S-9") } }, "no student text leaves")

        // The acknowledgement window (3 minutes) runs out: the step pages again.
        clock.advance(by: 3 * 60)
        try await eventually("the repeat round") { sent(file).count == 2 * queued.count }
        #expect(try await store.incident(ref.id)?.phase == .escalating(step: 0, round: 1))

        _ = try await runtime.apply(.acknowledged(by: .person("dchen"), path: .api, step: 0), to: ref.id)
        let pagesAtAck = sent(file).filter { $0["kind"] == "page" }.count
        clock.advance(by: 30 * 60)
        try await eventually("the timer worker to catch up") { (try await store.nextTimerDue(now: clock.now()) ?? .distantFuture) > clock.now() }
        #expect(sent(file).filter { $0["kind"] == "page" }.count == pagesAtAck, "nothing is paged after the acknowledgement")
        #expect(try await store.incident(ref.id)?.phase == .acknowledged)
        #expect(runtime.timerLateness.count >= 1)
    }

    @Test("on PostgreSQL, work queued by another instance wakes a sleeping worker through LISTEN/NOTIFY")
    func notifyWakesOtherInstances() async throws {
        let store = try await freshStore(.postgres)
        guard let postgres = store as? PostgresStore else { return }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("muster-notify-\(UUID().uuidString).jsonl").path
        // The worker's clock never moves, so its polling never fires: only a notification can wake it.
        let clock = ManualClock(schoolMorning)
        let runtime = try Runtime(store: store, catalog: shippedCatalog, channel: FileChannel(path: file), clock: clock, instance: "sleeper")
        let workers = Task { await runtime.run() }
        defer {
            workers.cancel()
            clock.wakeAll()
        }
        try await Task.sleep(for: .milliseconds(300))  // let the workers go to sleep and the LISTEN start
        // Another instance (its own connection pool, no in-process signal) takes a report.
        let other = PostgresStore(settings: postgres.settings, masterKey: postgres.masterKey, timeout: testDatabaseTimeout)
        defer { other.shutdown() }
        let report = Report(type: "suicide-risk", severity: .high, site: "lincoln-high", reporter: .person("aokafor"),
                            summary: "text", subject: "S-11", receivedAt: schoolMorning)
        let results = try await Dispatcher(catalog: shippedCatalog).outcomes([.report(ReportIntake(report: report))], to: other, now: schoolMorning)
        guard case .success(.created(_, let queued))? = results.first else {
            Issue.record("no incident was created: \(results)")
            return
        }
        try await eventually("the sleeping worker to deliver the other instance's pages", timeout: 10) { sent(file).count == queued.count }
    }

    @Test("pages that fail for good make the engine escalate at once", arguments: Backend.allCases)
    func permanentFailureEscalates(backend: Backend) async throws {
        let store = try await freshStore(backend)
        let clock = ManualClock(schoolMorning)
        let runtime = try Runtime(store: store, catalog: shippedCatalog, channel: AlwaysFails(), clock: clock, instance: "test")
        let workers = Task { await runtime.run() }
        defer {
            workers.cancel()
            clock.wakeAll()
        }
        let report = Report(type: "suicide-risk", severity: .high, site: "lincoln-high", reporter: .person("aokafor"),
                            summary: "text", subject: "S-10", receivedAt: schoolMorning)
        guard case .success(.created(let ref, _)) = try await runtime.report(ReportIntake(report: report)).map(\.outcome) else {
            Issue.record("no incident was created")
            return
        }
        // No virtual time passes: only the failures move the incident on.
        try await eventually("escalation past step 1") {
            if case .escalating(let step, _)? = try await store.incident(ref.id)?.phase { return step >= 1 }
            return try await store.incident(ref.id)?.phase == .unowned
        }
        let timeline = try await store.timeline(ref.id)
        #expect(timeline.contains { $0.action == .stepUnreachable && $0.step == 0 })
        #expect(timeline.contains { $0.action == .deliveryFailed && $0.detail == "gave up: bad_address" })
        #expect(try await store.outboxCounts()["failed", default: 0] >= 1)
    }
}
