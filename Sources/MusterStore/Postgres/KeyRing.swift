// Key generations on PostgreSQL (docs/audit.md, "Retention"). Every incident's data key is stored
// wrapped under a key generation: a key derived from the master key and the generation's random
// secret, which lives in `key_generation_secrets`, a table commits never read. A retention purge
// deletes the purged incidents' keys, re-wraps every other key under a new generation, and then
// destroys the old generations' secrets. The purged keys' bytes may linger in `incident_keys`' free
// space (plain VACUUM does not overwrite it), but nothing opens them any more; only the small secret
// table is rewritten, so the purge never takes an exclusive lock on a table the commit path reads.
import Foundation
import Logging
import MusterAudit
import MusterCore
import PostgresNIO
import Synchronization

/// The key generations this instance knows, loaded from the database when it meets one it does not.
final class KeyRing: DataKeyOpening {
    private let masterKey: MasterKey
    private struct Loaded {
        var keys: [Int64: KeyEncryptionKey] = [:]
        /// The generation new keys are wrapped under: the newest one not being retired.
        var current: Int64?
    }
    private let loaded = Mutex(Loaded())

    init(masterKey: MasterKey) {
        self.masterKey = masterKey
    }

    var isLoaded: Bool { loaded.withLock { $0.current != nil } }

    /// Wraps a new incident's data key under the current generation.
    func wrap(_ key: DataKey, incident: IncidentID) throws -> (generation: Int64, wrapped: [UInt8]) {
        let current = loaded.withLock { loaded in loaded.current.flatMap { generation in loaded.keys[generation].map { (generation, $0) } } }
        guard let (generation, kek) = current else { throw KeyGenerationsStale("no key generation is loaded yet") }
        return (generation, kek.wrap(key, incident: incident.rawValue))
    }

    func openDataKey(_ wrapped: [UInt8], generation: Int64?, incident: IncidentID) throws -> DataKey {
        guard let generation else { return try masterKey.unwrap(wrapped, incident: incident.rawValue) }
        guard let kek = loaded.withLock({ $0.keys[generation] }) else {
            throw KeyGenerationsStale("incident \(incident)'s data key is in key generation \(generation), not yet loaded here")
        }
        return try kek.unwrap(wrapped, incident: incident.rawValue)
    }

    /// Reads every generation from the database, creating the first when there is none.
    func reload(_ client: PostgresClient, logger: Logger) async throws {
        var generations = try await Self.read(client, logger: logger)
        if !generations.contains(where: { !$0.retiring }) {
            try await Self.create(client, retiringOthers: false, logger: logger)
            generations = try await Self.read(client, logger: logger)
        }
        let keys = Dictionary(generations.map { ($0.generation, masterKey.keyEncryptionKey(secret: $0.secret, generation: $0.generation)) },
                              uniquingKeysWith: { first, _ in first })
        let current = generations.filter { !$0.retiring }.map(\.generation).max()
        loaded.withLock { $0 = Loaded(keys: keys, current: current) }
    }

    private static func read(_ client: PostgresClient, logger: Logger) async throws -> [(generation: Int64, retiring: Bool, secret: [UInt8])] {
        let rows = try await client.query("""
            SELECT g.generation, g.retiring, s.secret FROM key_generations g JOIN key_generation_secrets s ON s.generation = g.generation
            """, logger: logger)
        var result: [(Int64, Bool, [UInt8])] = []
        for try await (generation, retiring, secret) in rows.decode((Int64, Bool, ByteBuffer).self) {
            result.append((generation, retiring, Array(buffer: secret)))
        }
        return result
    }

    private static let creationLock: Int64 = 0x6D75_7374_6572_0002  // "muster" + 2

    /// Adds a generation and, for a purge, marks every older one as retiring in the same transaction:
    /// from then on, inserting a key under an older one is refused (the instance reloads and retries).
    /// Without `retiringOthers` nothing is added when a current generation exists (two instances starting).
    @discardableResult
    static func create(_ client: PostgresClient, retiringOthers: Bool, logger: Logger) async throws -> Int64? {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(creationLock))", logger: logger)
            if !retiringOthers {
                let existing = try await connection.query("SELECT 1 FROM key_generations WHERE NOT retiring LIMIT 1", logger: logger)
                for try await _ in existing { return nil }
            }
            var next: Int64 = 1
            for try await newest in try await connection.query("SELECT COALESCE(MAX(generation), 0) + 1 FROM key_generations", logger: logger)
                .decode(Int64.self) { next = newest }
            try await connection.query("INSERT INTO key_generations (generation) VALUES (\(next))", logger: logger)
            try await connection.query("INSERT INTO key_generation_secrets (generation, secret) VALUES (\(next), \(ByteBuffer(bytes: KeyEncryptionKey.generateSecret())))",
                                       logger: logger)
            if retiringOthers {
                try await connection.query("UPDATE key_generations SET retiring = true WHERE generation < \(next)", logger: logger)
            }
            return next
        }
    }
}

/// This instance's key generations are behind the database's (a purge elsewhere started a new one):
/// reload them and try again.
struct KeyGenerationsStale: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }

    /// True for this error, however the driver wrapped it, and for the database's refusal of a key
    /// inserted under a generation that is being retired (migration 013's trigger, or its foreign key
    /// once the generation is gone).
    static func matches(_ error: any Error) -> Bool {
        switch error {
        case is KeyGenerationsStale: return true
        case let error as PSQLError:
            let state = error.serverInfo?[.sqlState]
            return state == "MK001" || (state == "23503" && error.serverInfo?[.constraintName] == "incident_keys_generation_fkey")
        case let error as PostgresTransactionError:
            return [error.closureError, error.commitError, error.beginError].compactMap { $0 }.contains(where: matches)
        default: return false
        }
    }
}
