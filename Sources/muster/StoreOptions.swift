// Which store a command opens: PostgreSQL when MUSTER_DATABASE_URL is set (libpq's conventions),
// otherwise the embedded SQLite database in the data directory.
import ArgumentParser
import Foundation
import MusterStore

struct StoreOptions: ParsableArguments {
    @Option(help: "Where the embedded SQLite database lives (when MUSTER_DATABASE_URL is not set).")
    var dataDir: String = ".muster"

    /// What the store is, for messages ("PostgreSQL db@host:port" or the SQLite path).
    func open() throws -> (store: any Store, description: String) {
        try openStore(databaseURL: ProcessInfo.processInfo.environment["MUSTER_DATABASE_URL"].flatMap { $0.isEmpty ? nil : $0 }, dataDir: dataDir)
    }
}
