// `muster migrate`: applies the numbered schema migrations that are missing.
import ArgumentParser
import Foundation

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply the database migrations that are missing.",
        discussion: "Uses PostgreSQL when MUSTER_DATABASE_URL is set, otherwise SQLite in the data directory. Safe to run from several instances."
    )

    @OptionGroup var storeOptions: StoreOptions

    func run() async throws {
        let (store, description) = try storeOptions.open(create: true)
        let before = try? await store.schemaVersion()
        try await store.migrate()
        let after = try await store.schemaVersion()
        let applied = after.applied - (before?.applied ?? 0)
        print("\(description): schema version \(after.applied) of \(after.known)" + (applied > 0 ? " (\(applied) applied now)" : " (up to date)"))
    }
}
