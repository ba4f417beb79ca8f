// The transparency log on PostgreSQL. One sequencer at a time: each pass runs in a transaction that
// first takes a transaction-scoped advisory lock without waiting, so an instance that dies mid-pass
// holds nothing and the next pass of any instance takes over.
import Foundation
import MusterAudit
import MusterCore
import NIOCore
import PostgresNIO

extension PostgresStore {
    private static let sequencerLock: Int64 = 0x6D75_7374_6572_0002  // "muster" + 2

    public func integrateAuditEntries(limit: Int, now: Date,
                                      sign: @escaping @Sendable (_ size: Int64, _ root: LogHash) throws -> String) async throws -> SequencerPass? {
        try await database { [self] in
            try await client.withTransaction(logger: logger) { connection -> SequencerPass? in
                var leader = false
                for try await locked in try await connection.query("SELECT pg_try_advisory_xact_lock(\(Self.sequencerLock))", logger: logger)
                    .decode(Bool.self) { leader = locked }
                guard leader else { return nil }
                var size: Int64 = 0
                for try await next in try await connection.query("SELECT COALESCE(MAX(log_index) + 1, 0)::int8 FROM audit_log", logger: logger)
                    .decode(Int64.self) { size = next }
                var pending: [(id: Int64, incident: String, sequence: Int64, leaf: ByteBuffer, committedAt: Date)] = []
                let rows = try await connection.query("""
                    DELETE FROM audit_pending WHERE id IN (SELECT id FROM audit_pending ORDER BY id LIMIT \(limit))
                    RETURNING id, incident_id, sequence, leaf_hash, committed_at
                    """, logger: logger)
                for try await row in rows.decode((Int64, String, Int64, ByteBuffer, Date).self) { pending.append(row) }
                guard !pending.isEmpty else { return SequencerPass(integrated: 0, checkpoint: nil, oldestCommittedAt: nil) }
                pending.sort { $0.id < $1.id }

                let frontier = try await treeHashes(CompactRange.frontierIndices(size: size), on: connection)
                var tree = try CompactRange(size: size, hashes: frontier)
                let firstStored = MerkleTree.storedHashCount(size: size)
                var indices: [Int64] = [], incidents: [String] = [], sequences: [Int64] = [], leaves: [ByteBuffer] = []
                var stored: [ByteBuffer] = []
                for entry in pending {
                    guard let leaf = LogHash(bytes: Array(buffer: entry.leaf)) else {
                        throw StoreError.unavailable("audit entry \(entry.incident)#\(entry.sequence) has a malformed leaf hash")
                    }
                    indices.append(tree.size)
                    incidents.append(entry.incident)
                    sequences.append(entry.sequence)
                    leaves.append(entry.leaf)
                    stored += tree.append(leaf).map { ByteBuffer(bytes: $0.bytes) }
                }
                let storedIndices = (0..<Int64(stored.count)).map { firstStored + $0 }
                try await connection.query("""
                    INSERT INTO audit_log (log_index, incident_id, sequence, leaf_hash)
                    SELECT * FROM unnest(\(indices)::int8[], \(incidents)::text[], \(sequences)::int8[], \(leaves)::bytea[])
                    """, logger: logger)
                try await connection.query("INSERT INTO audit_tree (stored_index, hash) SELECT * FROM unnest(\(storedIndices)::int8[], \(stored)::bytea[])",
                                           logger: logger)
                let note = try sign(tree.size, tree.root())
                try await connection.query("INSERT INTO audit_checkpoints (size, note, signed_at) VALUES (\(tree.size), \(note), \(now))", logger: logger)
                return SequencerPass(integrated: pending.count, checkpoint: StoredCheckpoint(size: tree.size, note: note, signedAt: now),
                                     oldestCommittedAt: pending.map(\.committedAt).min())
            }
        }
    }

    private func treeHashes(_ indices: [Int64], on connection: PostgresConnection) async throws -> [Int64: LogHash] {
        guard !indices.isEmpty else { return [:] }
        var hashes: [Int64: LogHash] = [:]
        let rows = try await connection.query("SELECT stored_index, hash FROM audit_tree WHERE stored_index = ANY(\(indices)::int8[])", logger: logger)
        for try await (index, hash) in rows.decode((Int64, ByteBuffer).self) {
            guard let hash = LogHash(bytes: Array(buffer: hash)) else { throw StoreError.unavailable("stored tree hash \(index) is malformed") }
            hashes[index] = hash
        }
        return hashes
    }

    public func pendingAuditEntries() async throws -> Int {
        try await database { [self] in
            var count = 0
            for try await n in try await client.query("SELECT COUNT(*)::int8 FROM audit_pending", logger: logger).decode(Int.self) { count = n }
            return count
        }
    }

    public func checkpoints(fromSize size: Int64, limit: Int) async throws -> [StoredCheckpoint] {
        try await database { [self] in
            let rows = try await client.query("""
                SELECT size, note, signed_at FROM audit_checkpoints WHERE size >= \(size) ORDER BY size LIMIT \(limit)
                """, logger: logger)
            var result: [StoredCheckpoint] = []
            for try await (size, note, at) in rows.decode((Int64, String, Date).self) { result.append(StoredCheckpoint(size: size, note: note, signedAt: at)) }
            return result
        }
    }

    public func latestCheckpoint() async throws -> StoredCheckpoint? {
        try await database { [self] in
            let rows = try await client.query("SELECT size, note, signed_at FROM audit_checkpoints ORDER BY size DESC LIMIT 1", logger: logger)
            for try await (size, note, at) in rows.decode((Int64, String, Date).self) { return StoredCheckpoint(size: size, note: note, signedAt: at) }
            return nil
        }
    }

    public func treeHashes(_ indices: [Int64]) async throws -> [Int64: LogHash] {
        try await database { [self] in
            try await client.withConnection { connection in try await self.treeHashes(indices, on: connection) }
        }
    }

    public func treeHashes(from: Int64, limit: Int) async throws -> [LogHash] {
        try await database { [self] in
            let rows = try await client.query("""
                SELECT stored_index, hash FROM audit_tree WHERE stored_index >= \(from) ORDER BY stored_index LIMIT \(limit)
                """, logger: logger)
            return try await Self.consecutive(rows, from: from, what: "stored tree hash")
        }
    }

    public func logLeaves(from: Int64, limit: Int) async throws -> [LogHash] {
        try await database { [self] in
            let rows = try await client.query("""
                SELECT log_index, leaf_hash FROM audit_log WHERE log_index >= \(from) ORDER BY log_index LIMIT \(limit)
                """, logger: logger)
            return try await Self.consecutive(rows, from: from, what: "log entry")
        }
    }

    /// Hashes numbered from `from` with no gap (a gap is a deleted row: verification names it).
    private static func consecutive(_ rows: PostgresRowSequence, from: Int64, what: String) async throws -> [LogHash] {
        var result: [LogHash] = []
        for try await (index, bytes) in rows.decode((Int64, ByteBuffer).self) {
            let expected = from + Int64(result.count)
            guard index == expected else { throw AuditLogGap(description: "\(what) \(expected) is missing (the next stored is \(index))") }
            guard let hash = LogHash(bytes: Array(buffer: bytes)) else { throw AuditLogGap(description: "\(what) \(index) is not a 32-byte hash") }
            result.append(hash)
        }
        return result
    }

    private static let entryColumns = """
        SELECT e.incident_id, e.sequence, e.action, e.body, e.leaf_hash, l.log_index, l.leaf_hash
        FROM audit_entries e LEFT JOIN audit_log l ON l.incident_id = e.incident_id AND l.sequence = e.sequence

        """

    private static func entries(_ rows: PostgresRowSequence) async throws -> [StoredAuditEntry] {
        var result: [StoredAuditEntry] = []
        for try await (incident, sequence, action, body, leaf, index, logLeaf)
            in rows.decode((String, Int64, String, ByteBuffer, ByteBuffer?, Int64?, ByteBuffer?).self) {
            result.append(StoredAuditEntry(incident: IncidentID(incident), sequence: Int(sequence), action: action, body: Array(buffer: body),
                                           leafHash: leaf.map { Array(buffer: $0) }, logIndex: index, logLeafHash: logLeaf.map { Array(buffer: $0) }))
        }
        return result
    }

    public func auditEntries(after: (incident: IncidentID, sequence: Int)?, limit: Int) async throws -> [StoredAuditEntry] {
        try await database { [self] in
            let rows = try await client.query(PostgresQuery(unsafeSQL: Self.entryColumns + """
                WHERE (e.incident_id, e.sequence) > ($1::text, $2::int8) ORDER BY e.incident_id, e.sequence LIMIT $3
                """, binds: Self.binds(after?.incident.rawValue ?? "", Int64(after?.sequence ?? 0), Int64(limit))), logger: logger)
            return try await Self.entries(rows)
        }
    }

    public func auditEntries(of incident: IncidentID) async throws -> [StoredAuditEntry] {
        try await database { [self] in
            let rows = try await client.query(PostgresQuery(unsafeSQL: Self.entryColumns + "WHERE e.incident_id = $1 ORDER BY e.sequence",
                                                            binds: Self.binds(incident.rawValue)), logger: logger)
            return try await Self.entries(rows)
        }
    }

    public func dataKey(of incident: IncidentID) async throws -> DataKey? {
        try await openIncident(incident)?.key
    }

    public func purgeCandidates(closedBefore date: Date, limit: Int) async throws -> [IncidentID] {
        try await database { [self] in
            let rows = try await client.query("""
                SELECT i.state FROM incidents i JOIN incident_keys k ON k.incident_id = i.id
                WHERE i.phase = 'resolved' AND i.reported_at < \(date) ORDER BY i.number
                """, logger: logger)
            var result: [IncidentID] = []
            for try await state in rows.decode(ByteBuffer.self) where result.count < limit {
                let state = try StateCodec.decode(Array(buffer: state), summary: "", subject: nil)
                if let resolved = state.resolvedAt, resolved < date { result.append(state.incident.id) }
            }
            return result
        }
    }

    public func scrubDestroyedKeys() async throws {
        // VACUUM FULL writes the table anew and removes the old file, dead key rows with it; plain
        // VACUUM would leave their bytes in the pages' free space. The table is small (one row per incident).
        try await unboundedQuery("VACUUM FULL incident_keys")
        // The write-ahead log still holds the keys as they were written. Finishing the current segment
        // and checkpointing twice lets PostgreSQL remove every segment from before the purge; with
        // wal_recycle = off they are deleted rather than renamed for reuse with their bytes (docs/audit.md).
        // Both need superuser or pg_checkpoint and pg_switch_wal rights; without them the segments go
        // in PostgreSQL's own time, and we say so.
        do {
            for statement in ["SELECT pg_switch_wal()", "CHECKPOINT", "SELECT pg_switch_wal()", "CHECKPOINT"] {
                try await unboundedQuery(statement)
            }
            let rows = try await client.query("SHOW wal_recycle", logger: logger)
            for try await setting in rows.decode(String.self) where setting == "on" {
                logger.warning("retention purge: wal_recycle is on, so PostgreSQL reuses old WAL segments with the destroyed keys' bytes in them until they are overwritten; set wal_recycle = off")
            }
        } catch {
            logger.warning("retention purge: could not rotate the write-ahead log (\(error)); segments from before the purge still hold the destroyed keys until PostgreSQL removes them")
        }
    }
}

/// A row missing from a table the log numbers densely.
public struct AuditLogGap: Error, CustomStringConvertible, Sendable {
    public var description: String
}
