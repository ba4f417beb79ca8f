// The transparency log on SQLite: the single instance is the sequencer, and SQLite's one writer
// serialises its passes with everything else.
import Foundation
import GRDB
import MusterAudit
import MusterCore

extension SQLiteStore {
    public func appendToLog(limit: Int, now: Date, extend: @escaping @Sendable (LogBatch) throws -> LogExtension) async throws -> SequencerPass? {
        try await pool.write { db in
            let size = try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(log_index) + 1, 0) FROM audit_log") ?? 0
            // The batch is numbered into the log in SQL, in commit order; only the leaf hashes come back.
            guard let last = try Int64.fetchOne(db, sql: "SELECT id FROM audit_pending ORDER BY id LIMIT 1 OFFSET ?", arguments: [limit - 1])
                ?? Int64.fetchOne(db, sql: "SELECT MAX(id) FROM audit_pending") else {
                return SequencerPass(integrated: 0, checkpoint: nil, oldestCommittedAt: nil)
            }
            try db.execute(sql: """
                INSERT INTO audit_log (log_index, incident_id, sequence, leaf_hash)
                SELECT ? + row_number() OVER (ORDER BY id) - 1, incident_id, sequence, leaf_hash FROM audit_pending WHERE id <= ? ORDER BY id
                """, arguments: [size, last])
            let oldest = try Int64.fetchOne(db, sql: "SELECT MIN(committed_at) FROM audit_pending WHERE id <= ?", arguments: [last]) ?? 0
            try db.execute(sql: "DELETE FROM audit_pending WHERE id <= ?", arguments: [last])
            var leaves: [LogHash] = []
            try RawRow.each(db, sql: "SELECT leaf_hash FROM audit_log WHERE log_index >= ? ORDER BY log_index", arguments: [size]) { row in
                guard let leaf = row.hash(0) else { throw StoreError.unavailable("an audit entry has a malformed leaf hash") }
                leaves.append(leaf)
            }
            let added = try extend(LogBatch(size: size, frontier: try Self.treeHashes(CompactRange.frontierIndices(size: size), db: db), leaves: leaves))
            let insert = try db.cachedStatement(sql: "INSERT INTO audit_tree (stored_index, hash) VALUES (?, ?)")
            let firstStored = MerkleTree.storedHashCount(size: size)
            for (offset, hash) in added.storedHashes.enumerated() {
                try insert.execute(arguments: [firstStored + Int64(offset), Data(hash.bytes)])
            }
            try db.execute(sql: "INSERT INTO audit_checkpoints (size, note, signed_at) VALUES (?, ?, ?)", arguments: [added.size, added.note, now.milliseconds])
            return SequencerPass(integrated: leaves.count, checkpoint: StoredCheckpoint(size: added.size, note: added.note, signedAt: now),
                                 oldestCommittedAt: Date(milliseconds: oldest))
        }
    }

    private static func treeHashes(_ indices: [Int64], db: Database) throws -> [Int64: LogHash] {
        guard !indices.isEmpty else { return [:] }
        var hashes: [Int64: LogHash] = [:]
        let rows = try Row.fetchAll(db, sql: "SELECT stored_index, hash FROM audit_tree WHERE stored_index IN (\(indices.map { _ in "?" }.joined(separator: ",")))",
                                    arguments: StatementArguments(indices))
        for row in rows {
            let index: Int64 = row[0]
            guard let hash = LogHash(bytes: Array(row[1] as Data)) else { throw StoreError.unavailable("stored tree hash \(index) is malformed") }
            hashes[index] = hash
        }
        return hashes
    }

    public func pendingAuditEntries() async throws -> Int {
        try await pool.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit_pending") ?? 0 }
    }

    private static func checkpoint(_ row: Row) -> StoredCheckpoint {
        StoredCheckpoint(size: row[0], note: row[1], signedAt: Date(milliseconds: row[2]))
    }

    public func checkpoints(fromSize size: Int64, limit: Int) async throws -> [StoredCheckpoint] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT size, note, signed_at FROM audit_checkpoints WHERE size >= ? ORDER BY size LIMIT ?",
                             arguments: [size, limit]).map(Self.checkpoint)
        }
    }

    public func latestCheckpoint() async throws -> StoredCheckpoint? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: "SELECT size, note, signed_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1").map(Self.checkpoint)
        }
    }

    public func treeHashes(_ indices: [Int64]) async throws -> [Int64: LogHash] {
        try await pool.read { db in try Self.treeHashes(indices, db: db) }
    }

    public func treeHashes(from: Int64, limit: Int) async throws -> [LogHash] {
        try await pool.read { db in
            try Self.consecutive(db, sql: "SELECT stored_index, hash FROM audit_tree WHERE stored_index >= ? ORDER BY stored_index LIMIT ?",
                                 from: from, limit: limit, what: "stored tree hash")
        }
    }

    public func auditLogSize() async throws -> Int64 {
        try await pool.read { db in try Int64.fetchOne(db, sql: "SELECT COALESCE(MAX(log_index) + 1, 0) FROM audit_log") ?? 0 }
    }

    public func logLeaves(from: Int64, limit: Int) async throws -> [LogHash] {
        try await pool.read { db in
            try Self.consecutive(db, sql: "SELECT log_index, leaf_hash FROM audit_log WHERE log_index >= ? ORDER BY log_index LIMIT ?",
                                 from: from, limit: limit, what: "log entry")
        }
    }

    /// Hashes numbered from `from` with no gap (a gap is a deleted row: verification names it).
    private static func consecutive(_ db: Database, sql: String, from: Int64, limit: Int, what: String) throws -> [LogHash] {
        var result: [LogHash] = []
        result.reserveCapacity(limit)
        try RawRow.each(db, sql: sql, arguments: [from, limit]) { row in
            let index = row.int64(0), expected = from + Int64(result.count)
            guard index == expected else { throw AuditLogGap(description: "\(what) \(expected) is missing (the next stored is \(index))") }
            guard let hash = row.hash(1) else { throw AuditLogGap(description: "\(what) \(index) is not a 32-byte hash") }
            result.append(hash)
        }
        return result
    }

    private static let entryColumns = """
        SELECT e.incident_id, e.sequence, e.action, e.body, e.leaf_hash, l.log_index, l.leaf_hash
        FROM audit_entries e LEFT JOIN audit_log l ON l.incident_id = e.incident_id AND l.sequence = e.sequence

        """

    private static func entries(_ db: Database, sql: String, arguments: StatementArguments) throws -> [StoredAuditEntry] {
        var result: [StoredAuditEntry] = []
        try RawRow.each(db, sql: sql, arguments: arguments) { row in
            result.append(StoredAuditEntry(incident: IncidentID(row.text(0)), sequence: Int(row.int64(1)), action: row.text(2),
                                           body: row.bytes(3) ?? [], leafHash: row.bytes(4), logIndex: row.isNull(5) ? nil : row.int64(5),
                                           logLeafHash: row.bytes(6)))
        }
        return result
    }

    public func auditEntries(after: (incident: IncidentID, sequence: Int)?, limit: Int) async throws -> [StoredAuditEntry] {
        try await pool.read { db in
            try Self.entries(db, sql: Self.entryColumns + "WHERE (e.incident_id, e.sequence) > (?, ?) ORDER BY e.incident_id, e.sequence LIMIT ?",
                             arguments: [after?.incident.rawValue ?? "", after?.sequence ?? 0, limit])
        }
    }

    public func auditEntries(of incident: IncidentID) async throws -> [StoredAuditEntry] {
        try await pool.read { db in
            try Self.entries(db, sql: Self.entryColumns + "WHERE e.incident_id = ? ORDER BY e.sequence", arguments: [incident.rawValue])
        }
    }

    public func dataKey(of incident: IncidentID) async throws -> DataKey? {
        try await openIncident(incident)?.key
    }

    public func purgeCandidates(closedBefore date: Date, limit: Int) async throws -> [IncidentID] {
        try await pool.read { db in
            var result: [IncidentID] = []
            let rows = try Data.fetchAll(db, sql: """
                SELECT i.state FROM incidents i JOIN incident_keys k ON k.incident_id = i.id
                WHERE i.phase = 'resolved' AND i.reported_at < ? ORDER BY i.number
                """, arguments: [date.milliseconds])
            for bytes in rows where result.count < limit {
                let state = try StateCodec.decode(Array(bytes), summary: "", subject: nil)
                if let resolved = state.resolvedAt, resolved < date { result.append(state.incident.id) }
            }
            return result
        }
    }

    public func scrubDestroyedKeys() async throws {
        // secure_delete zeroes deleted rows in the database file; the WAL still holds the pages as
        // they were until a checkpoint copies them back and truncates it.
        try await pool.writeWithoutTransaction { db in
            _ = try Row.fetchAll(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
    }
}
