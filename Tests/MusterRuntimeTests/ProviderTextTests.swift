// A provider's own words (a staff phone number in a Twilio error, an address in an SMTP 550) never
// reach the permanent audit log: the log keeps the kind of failure and the provider's code; the
// words go to the outbox and delivery-attempt rows, which a retention purge clears.
import Foundation
import GRDB
import MusterAudit
import MusterCore
import MusterNotify
import MusterRuntime
import MusterStore
import MusterTestSupport
import PostgresNIO
import Testing

/// Refuses every message as Twilio refuses a number it cannot text, naming the number.
private struct RefusesTheNumber: MusterNotify.Channel {
    func deliver(_ message: Message) async throws(DeliveryFailure) -> DeliveryReceipt {
        throw DeliveryFailure(.badAddress, "HTTP 400: {\"code\":21211,\"message\":\"The 'To' number +15555550123 is not a valid phone number.\"}",
                              code: "HTTP 400")
    }
}

@Suite("Provider text stays out of the log")
struct ProviderTextTests {
    static let number = "+15555550123"

    @Test("the log says 'bad_address (HTTP 400)'; the number is only in the attempt rows, and a purge clears them", arguments: Backend.allCases)
    func providerWordsArePurgeable(backend: Backend) async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("muster-provider-\(UUID().uuidString).sqlite").path
        var settings: PostgresSettings?
        let store: any Store
        switch backend {
        case .sqlite: store = try SQLiteStore(path: path, masterKey: MasterKey.generate())
        case .postgres:
            let made = try await freshPostgresDatabase(prefix: "muster_provider_")
            settings = made
            store = PostgresStore(settings: made, masterKey: MasterKey.generate(), timeout: testDatabaseTimeout)
        }
        defer {
            (store as? PostgresStore)?.shutdown()
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
        }
        try await store.migrate()
        /// How many stored provider texts (outbox errors, attempt details) still name the number.
        func stored() async throws -> Int {
            let sql = "SELECT (SELECT count(*) FROM delivery_attempts WHERE detail LIKE '%5555550123%') + (SELECT count(*) FROM outbox WHERE last_error LIKE '%5555550123%')"
            if let settings {
                return try await withPostgresClient(settings) { client in
                    for try await count in try await client.query(PostgresQuery(unsafeSQL: sql), logger: testLogger).decode(Int.self) { return count }
                    return 0
                }
            }
            return try await DatabaseQueue(path: path).read { db in try Int.fetchOne(db, sql: sql) ?? 0 }
        }

        let clock = ManualClock(schoolMorning)
        let runtime = try Runtime(store: store, catalog: shippedCatalog, channel: RefusesTheNumber(), clock: clock, instance: "test")
        let workers = Task { await runtime.run() }
        defer {
            workers.cancel()
            clock.wakeAll()
        }
        let report = Report(type: "suicide-risk", severity: .high, site: "lincoln-high", reporter: .person("aokafor"),
                            summary: "text", receivedAt: schoolMorning)
        let ref = try await runtime.report(ReportIntake(report: report)).get().outcome.incident
        try await eventually("a page to fail for good") { try await store.outboxCounts()["failed", default: 0] >= 1 }
        let failures = try await store.timeline(ref.id).filter { $0.action == .deliveryFailed }
        #expect(!failures.isEmpty)
        #expect(failures.allSatisfy { $0.detail == "gave up: bad_address (HTTP 400)" }, "\(failures.map(\.detail))")
        #expect(try await store.auditBytes(ref.id).allSatisfy { !String(decoding: $0, as: UTF8.self).contains("5555550123") })
        #expect(try await stored() > 0)  // kept where an operator can see why, for now

        _ = try await runtime.apply(.resolved(by: .person("aokafor"), note: nil), to: ref.id).get()
        _ = try await runtime.apply(.purged(policy: "test", closedBefore: schoolMorning.addingTimeInterval(86_400)), to: ref.id).get()
        #expect(try await stored() == 0)
    }
}
