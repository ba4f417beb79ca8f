// The stores under test: every conformance case runs against SQLite and PostgreSQL. PostgreSQL comes
// from scripts/test (MUSTER_TEST_DATABASE_URL); without it these tests fail, never skip.
import Foundation
import MusterAudit
import GRDB
import Logging
import MusterCore
import MusterPlaybooks
import MusterStore
import MusterTestSupport
import PostgresNIO
import Testing

/// A store on a database of its own, plus raw SQL access to that database for checks the store does not offer.
struct TestStore: Sendable {
    let backend: Backend
    let store: any Store
    /// Runs one SQL statement directly.
    let execute: @Sendable (String) async throws -> Void
    /// Runs a query and returns its first column as text.
    let strings: @Sendable (String) async throws -> [String]
    /// Opens another store instance on the same database (a second Muster instance).
    let another: @Sendable () async throws -> any Store
    let close: @Sendable () async -> Void
}

func withStore(_ backend: Backend, _ body: (TestStore) async throws -> Void) async throws {
    let store = try await makeTestStore(backend)
    do {
        try await store.store.migrate()
        try await body(store)
    } catch {
        await store.close()
        throw error
    }
    await store.close()
}

func makeTestStore(_ backend: Backend) async throws -> TestStore {
    switch backend {
    case .sqlite:
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("muster-test-\(UUID().uuidString).sqlite").path
        let key = MasterKey.generate()
        let store = try SQLiteStore(path: path, masterKey: key)
        let raw = try DatabasePool(path: path)
        return TestStore(
            backend: .sqlite, store: store,
            execute: { sql in try await raw.write { try $0.execute(sql: sql) } },
            strings: { sql in
                try await raw.read { db in
                    try Row.fetchAll(db, sql: sql).map { row -> String in
                        switch (row[0] as DatabaseValue).storage {
                        case .null: "NULL"
                        case .int64(let value): String(value)
                        case .double(let value): String(value)
                        case .string(let value): value
                        case .blob(let data): String(decoding: data, as: UTF8.self)
                        }
                    }
                }
            },
            another: { try SQLiteStore(path: path, masterKey: key) },
            close: {
                try? raw.close()
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
            })
    case .postgres:
        let settings = try await freshPostgresDatabase(prefix: "muster_test_")
        let key = MasterKey.generate()
        let store = PostgresStore(settings: settings, masterKey: key, timeout: testDatabaseTimeout)
        let rawClient = PostgresClient(configuration: settings.clientConfigurationForTests, backgroundLogger: testLogger)
        let runner = Task { await rawClient.run() }
        return TestStore(
            backend: .postgres, store: store,
            execute: { sql in try await rawClient.query(PostgresQuery(unsafeSQL: sql), logger: testLogger) },
            strings: { sql in
                var values: [String] = []
                let query = PostgresQuery(unsafeSQL: "SELECT q.value::text FROM (\(sql)) AS q(value)")
                for try await value in try await rawClient.query(query, logger: testLogger).decode(String?.self) {
                    values.append(value ?? "NULL")
                }
                return values
            },
            another: { PostgresStore(settings: settings, masterKey: key, timeout: testDatabaseTimeout) },
            close: {
                store.shutdown()
                runner.cancel()
            })
    }
}

func report(_ type: String = "suicide-risk", severity: Severity = .high, site: String = "lincoln-high", subject: String? = "S-1042",
            summary: String = "Student wrote a goodbye note in class", at: Date = schoolMorning, reporter: String = "aokafor") -> Report {
    Report(type: IncidentTypeID(type), severity: severity, site: SiteID(site), reporter: .person(PersonID(reporter)),
           summary: summary, subject: subject, receivedAt: at)
}
