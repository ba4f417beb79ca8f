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
        let environment = ProcessInfo.processInfo.environment
        if let url = environment["MUSTER_DATABASE_URL"], !url.isEmpty {
            let settings = try PostgresSettings(url: url)
            return (PostgresStore(settings: settings), "PostgreSQL \(settings.database) on \(settings.host):\(settings.port)")
        }
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        let path = (dataDir as NSString).appendingPathComponent("muster.sqlite")
        return (try SQLiteStore(path: path), "SQLite \(path)")
    }
}
