// What several test targets share: the two stores under test, fresh databases for them, the shipped
// playbooks, and the instants the tests are set at. PostgreSQL comes from scripts/test
// (MUSTER_TEST_DATABASE_URL); without it the PostgreSQL cases fail, never skip.
import Foundation
import Logging
import MusterAudit
import MusterCore
import MusterPlaybooks
import MusterStore
import PostgresNIO

public enum Backend: String, CaseIterable, Sendable, CustomStringConvertible {
    case sqlite, postgres
    public var description: String { rawValue }
}

public struct MissingPostgres: Error, CustomStringConvertible {
    public init() {}
    public var description: String {
        "MUSTER_TEST_DATABASE_URL is not set: run the tests with scripts/test, which starts a throwaway PostgreSQL"
    }
}

/// The repository's root folder (playbooks, scripts, the built executables' folder).
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// The shipped playbooks and directory.
public let shippedCatalog: Catalog = {
    let result = PlaybookLoader.load(folder: repositoryRoot.appendingPathComponent("playbooks"))
    guard let catalog = result.catalog else { preconditionFailure("the shipped playbooks do not load: \(result.diagnostics)") }
    return catalog
}()

/// An instant given as ISO-8601 with an offset.
public func instant(_ text: String) -> Date {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    guard let date = formatter.date(from: text) else { preconditionFailure("bad test instant \(text)") }
    return date
}

/// Wednesday 2026-12-02, 10:00 in Chicago: school hours at Lincoln High.
public let schoolMorning = instant("2026-12-02T10:00:00-06:00")

/// Longer than any database call takes on a loaded CI machine: a test fails on a wrong answer, not a slow one.
public let testDatabaseTimeout: TimeInterval = 30

public let testLogger = Logger(label: "muster.tests")

extension PostgresSettings {
    public var clientConfigurationForTests: PostgresClient.Configuration {
        PostgresClient.Configuration(host: host, port: port, username: user, password: password, database: database, tls: .disable)
    }
}

/// Runs `body` with a client of its own on `settings`.
public func withPostgresClient<T: Sendable>(_ settings: PostgresSettings, _ body: (PostgresClient) async throws -> T) async throws -> T {
    let client = PostgresClient(configuration: settings.clientConfigurationForTests, backgroundLogger: testLogger)
    let runner = Task { await client.run() }
    defer { runner.cancel() }
    return try await body(client)
}

/// A new, empty PostgreSQL database on the test server, named with `prefix`; the settings to reach it.
public func freshPostgresDatabase(prefix: String) async throws -> PostgresSettings {
    guard let url = ProcessInfo.processInfo.environment["MUSTER_TEST_DATABASE_URL"] else { throw MissingPostgres() }
    let admin = try PostgresSettings(url: url)
    let name = prefix + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
    _ = try await withPostgresClient(admin) { client in
        try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(name)"), logger: testLogger)
    }
    var settings = admin
    settings.database = name
    return settings
}

/// A store on a database (or SQLite file) of its own, not yet migrated, and what removes it.
public func freshStore(_ backend: Backend, prefix: String = "muster_test_") async throws -> (store: any Store, close: @Sendable () async -> Void) {
    switch backend {
    case .sqlite:
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)\(UUID().uuidString).sqlite").path
        let store = try SQLiteStore(path: path, masterKey: MasterKey.generate())
        return (store, { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } })
    case .postgres:
        let store = PostgresStore(settings: try await freshPostgresDatabase(prefix: prefix), masterKey: MasterKey.generate(), timeout: testDatabaseTimeout)
        return (store, { store.shutdown() })
    }
}
