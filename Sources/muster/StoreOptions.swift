// Which store a command opens: PostgreSQL when MUSTER_DATABASE_URL is set (libpq's conventions),
// otherwise the embedded SQLite database in the data directory.
import ArgumentParser
import Foundation
import MusterCore
import MusterPlaybooks
import MusterStore

struct StoreOptions: ParsableArguments {
    @Option(help: "Where the embedded SQLite database lives (when MUSTER_DATABASE_URL is not set).")
    var dataDir: String = ".muster"

    /// What the store is, for messages ("PostgreSQL db@host:port" or the SQLite path). `create: false` for
    /// commands that only make sense on an existing installation: they never create its keys or database.
    func open(create: Bool = false) throws -> (store: any Store, description: String) {
        try openStore(databaseURL: Settings().string(.databaseURL), dataDir: dataDir, create: create)
    }
}

/// The playbooks and directory of a folder; their diagnostics on stderr and an error when they do not load.
func loadCatalog(_ folder: String) throws -> Catalog {
    try loadFolder(folder).catalog
}

/// The folder's playbooks and directory, with where their parts are written.
func loadFolder(_ folder: String) throws -> (catalog: Catalog, loaded: LoadResult) {
    let loaded = PlaybookLoader.load(folder: URL(fileURLWithPath: folder), displayPath: folder)
    guard let catalog = loaded.catalog else {
        for diagnostic in loaded.diagnostics { printError(diagnostic.description) }
        throw ValidationError("the playbooks in \(folder) have errors; run `muster playbook lint \(folder)`")
    }
    return (catalog, loaded)
}

/// Refuses to run on a database whose schema is behind this build.
func requireCurrentSchema(_ store: any Store, _ description: String) async throws {
    let version = try await store.schemaVersion()
    guard version.applied == version.known else {
        throw ValidationError("\(description) is at schema version \(version.applied) of \(version.known): run `muster migrate`")
    }
}
