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

    public func appendToLog(limit: Int, now: Date, extend: @escaping @Sendable (LogBatch) throws -> LogExtension) async throws -> SequencerPass? {
        try await database { [self] in
            try await client.withTransaction(logger: logger) { connection -> SequencerPass? in
                var leader = false
                for try await locked in try await connection.query("SELECT pg_try_advisory_xact_lock(\(Self.sequencerLock))", logger: logger)
                    .decode(Bool.self) { leader = locked }
                guard leader else { return nil }
                var size: Int64 = 0
                for try await next in try await connection.query("SELECT COALESCE(MAX(log_index) + 1, 0)::int8 FROM audit_log", logger: logger)
                    .decode(Int64.self) { size = next }
                // One statement takes the oldest pending entries, numbers them into the log in commit
                // order and hands back only what the tree needs: their leaf hashes, end to end in log
                // order, and when the oldest was committed. Nothing goes to the client and back.
                var leaves = ByteBuffer(), oldest: Date?
                let rows = try await connection.query("""
                    WITH taken AS (
                      -- = ANY(ARRAY(…)): with IN (…) the planner hash-joins against a scan of the whole backlog.
                      DELETE FROM audit_pending WHERE id = ANY (ARRAY(SELECT id FROM audit_pending ORDER BY id LIMIT \(Int64(limit))))
                      RETURNING id, incident_id, sequence, leaf_hash, committed_at
                    ), logged AS (
                      INSERT INTO audit_log (log_index, incident_id, sequence, leaf_hash)
                      SELECT \(size) + row_number() OVER (ORDER BY id) - 1, incident_id, sequence, leaf_hash FROM taken
                      RETURNING log_index, leaf_hash
                    )
                    SELECT (SELECT string_agg(leaf_hash, ''::bytea ORDER BY log_index) FROM logged), (SELECT min(committed_at) FROM taken)
                    """, logger: logger)
                for try await (hashes, at) in rows.decode((ByteBuffer?, Date?).self) {
                    leaves = hashes ?? ByteBuffer()
                    oldest = at
                }
                let count = leaves.readableBytes / 32
                guard count > 0 else { return SequencerPass(integrated: 0, checkpoint: nil, oldestCommittedAt: nil) }
                guard leaves.readableBytes == count * 32 else { throw StoreError.unavailable("an audit entry has a malformed leaf hash") }

                var leafHashes: [LogHash] = []
                leafHashes.reserveCapacity(count)
                while let slice = leaves.readSlice(length: 32), let leaf = slice.withUnsafeReadableBytes({ LogHash(bytes: $0) }) {
                    leafHashes.append(leaf)
                }
                let frontier = try await treeHashes(CompactRange.frontierIndices(size: size), on: connection)
                let added = try extend(LogBatch(size: size, frontier: frontier, leaves: leafHashes))
                let firstStored = MerkleTree.storedHashCount(size: size)
                let storedIndices = (0..<Int64(added.storedHashes.count)).map { firstStored + $0 }
                let hashes = added.storedHashes.map { ByteBuffer(bytes: $0.bytes) }
                try await connection.query("INSERT INTO audit_tree (stored_index, hash) SELECT * FROM unnest(\(storedIndices)::int8[], \(hashes)::bytea[])",
                                           logger: logger)
                try await connection.query("INSERT INTO audit_checkpoints (size, note, signed_at) VALUES (\(added.size), \(added.note), \(now))",
                                           logger: logger)
                return SequencerPass(integrated: count, checkpoint: StoredCheckpoint(size: added.size, note: added.note, signedAt: now),
                                     oldestCommittedAt: oldest)
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
        try await hashPage(table: "audit_tree", index: "stored_index", hash: "hash", from: from, limit: limit, what: "stored tree hash")
    }

    public func auditLogSize() async throws -> Int64 {
        try await database { [self] in
            var size: Int64 = 0
            for try await value in try await client.query("SELECT COALESCE(MAX(log_index) + 1, 0)::int8 FROM audit_log", logger: logger).decode(Int64.self) {
                size = value
            }
            return size
        }
    }

    public func logLeaves(from: Int64, limit: Int) async throws -> [LogHash] {
        try await hashPage(table: "audit_log", index: "log_index", hash: "leaf_hash", from: from, limit: limit, what: "log entry")
    }

    /// A page of hashes numbered densely from `from`, sent by the server as one byte string (a row per
    /// hash cost the client more than the server's reading). When the page has a gap or a malformed
    /// hash, it is read again row by row to name the first one.
    private func hashPage(table: String, index: String, hash: String, from: Int64, limit: Int, what: String) async throws -> [LogHash] {
        try await database { [self] in
            let page = "SELECT \(index) AS i, \(hash) AS h FROM \(table) WHERE \(index) >= \(from) ORDER BY \(index) LIMIT \(limit)"
            var result: [LogHash]?
            let rows = try await client.query(PostgresQuery(unsafeSQL: """
                SELECT count(*)::int8, COALESCE(min(i), -1)::int8, COALESCE(max(i), -1)::int8, COALESCE(bool_and(octet_length(h) = 32), true),
                       string_agg(h, ''::bytea ORDER BY i)
                FROM (\(page)) page
                """), logger: logger)
            for try await (count, low, high, wellFormed, hashes) in rows.decode((Int64, Int64, Int64, Bool, ByteBuffer?).self)
            where count == 0 || (low == from && high - low + 1 == count && wellFormed) {
                var hashes = hashes ?? ByteBuffer()
                var page: [LogHash] = []
                page.reserveCapacity(Int(count))
                while let next = hashes.readSlice(length: 32), let value = next.withUnsafeReadableBytes({ LogHash(bytes: $0) }) { page.append(value) }
                result = page
            }
            if let result { return result }
            return try await Self.consecutive(try await client.query(PostgresQuery(unsafeSQL: page), logger: logger), from: from, what: what)
        }
    }

    /// Hashes numbered from `from` with no gap (a gap is a deleted row: verification names it). Cells are
    /// read as the binary bytes they are: verification reads millions, and generic row decoding cost
    /// more than the reading.
    private static func consecutive(_ rows: PostgresRowSequence, from: Int64, what: String) async throws -> [LogHash] {
        var result: [LogHash] = []
        for try await row in rows {
            var cells = row.makeIterator()
            let index = RawCell.int64(cells.next()) ?? -1, expected = from + Int64(result.count)
            guard index == expected else { throw AuditLogGap(description: "\(what) \(expected) is missing (the next stored is \(index))") }
            guard let hash = RawCell.hash(cells.next()) else { throw AuditLogGap(description: "\(what) \(index) is not a 32-byte hash") }
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
        for try await row in rows {
            var cells = row.makeIterator()
            let incident = RawCell.text(cells.next()), sequence = RawCell.int64(cells.next()) ?? 0, action = RawCell.text(cells.next())
            let body = RawCell.bytes(cells.next()) ?? [], leaf = RawCell.bytes(cells.next()), index = RawCell.int64(cells.next())
            result.append(StoredAuditEntry(incident: IncidentID(incident), sequence: Int(sequence), action: action, body: body,
                                           leafHash: leaf, logIndex: index, logLeafHash: RawCell.bytes(cells.next())))
        }
        return result
    }

    public func auditEntries(after: (incident: IncidentID, sequence: Int)?, limit: Int) async throws -> [StoredAuditEntry] {
        try await database { [self] in
            // The log's side gets the same lower bound: without it the planner merge-joins from the
            // log's first row on every page, and a page near the end costs a scan of the whole log.
            let rows = try await client.query(PostgresQuery(unsafeSQL: """
                SELECT e.incident_id, e.sequence, e.action, e.body, e.leaf_hash, l.log_index, l.leaf_hash
                FROM audit_entries e LEFT JOIN audit_log l ON l.incident_id = e.incident_id AND l.sequence = e.sequence
                  AND (l.incident_id, l.sequence) > ($1::text, $2::int8)
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
        // The purge has deleted the purged incidents' key rows; their bytes may stay in the table's free
        // space. Every other key moves to a new generation, and the generations that wrapped the deleted
        // keys are destroyed with their secrets (KeyRing.swift): row locks only on the key table.
        guard let generation = try await unbounded({ [self] in try await KeyRing.create(client, retiringOthers: true, logger: logger) }) else { return }
        try await unbounded { [self] in try await keyRing.reload(client, logger: logger) }
        var retired = false
        for _ in 0..<10 where !retired {
            try await rewrapKeys(into: generation)
            // A commit that wrapped a key under a retiring generation before this one saw the change can
            // still land; the foreign key then refuses the deletion, and the keys are moved again.
            do {
                try await unbounded { [self] in
                    try await client.withTransaction(logger: logger) { connection in
                        try await connection.query("DELETE FROM key_generation_secrets WHERE generation < \(generation)", logger: logger)
                        try await connection.query("DELETE FROM key_generations WHERE generation < \(generation)", logger: logger)
                    }
                }
                retired = true
            } catch let error as StoreError {
                logger.info("retention purge: a key was written under a retiring generation meanwhile; moving it too", metadata: ["error": "\(error)"])
            }
        }
        guard retired else {
            logger.warning("retention purge: keys kept arriving under the old key generation; it is destroyed by the next purge")
            return
        }
        // Only the small secret table is rewritten (commits never read it), so the destroyed secrets
        // leave its file. Keys from before key generations (migration 013) were wrapped by the master key
        // itself: the key table is rewritten once, after the first purge has moved them all.
        try await rewriteWithoutWaiting("key_generation_secrets")
        let pending = try await unbounded { [self] in
            try await client.query("SELECT 1 FROM key_table_rewrite_pending LIMIT 1", logger: logger).collect().count > 0
        }
        if pending, try await rewriteWithoutWaiting("incident_keys") {
            // Owed again if an instance of the version before stored a key meanwhile (a rolling upgrade).
            try await unboundedQuery("DELETE FROM key_table_rewrite_pending WHERE NOT EXISTS (SELECT 1 FROM incident_keys WHERE generation IS NULL)")
        }
        try await unboundedQuery("VACUUM incident_keys")
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

    /// Moves every key not yet under `generation` to it, in batches: each row is unwrapped with the
    /// generation that wrapped it and wrapped again. Only keys still there are moved (a concurrent purge
    /// may delete one), and only from the generation they were read under.
    private func rewrapKeys(into generation: Int64) async throws {
        while true {
            let rows = try await unbounded { [self] in
                try await client.query("""
                    SELECT incident_id, wrapped, generation FROM incident_keys WHERE generation IS DISTINCT FROM \(generation) LIMIT 500
                    """, logger: logger).collect()
            }
            guard !rows.isEmpty else { return }
            var ids: [String] = [], from: [Int64] = [], wrapped: [ByteBuffer] = []
            for row in rows {
                let (id, old, oldGeneration) = try row.decode((String, ByteBuffer, Int64?).self)
                let incident = IncidentID(id)
                let key = try keyRing.openDataKey(Array(buffer: old), generation: oldGeneration, incident: incident)
                let moved = try keyRing.wrap(key, incident: incident)
                guard moved.generation == generation else { throw KeyGenerationsStale("a newer key generation than \(generation) appeared") }
                ids.append(id)
                from.append(oldGeneration ?? 0)
                wrapped.append(ByteBuffer(bytes: moved.wrapped))
            }
            try await unbounded { [self, ids, from, wrapped] in
                try await client.query("""
                    UPDATE incident_keys AS k SET wrapped = u.wrapped, generation = \(generation)
                    FROM unnest(\(ids)::text[], \(from)::int8[], \(wrapped)::bytea[]) AS u(id, generation, wrapped)
                    WHERE k.incident_id = u.id AND COALESCE(k.generation, 0) = u.generation
                    """, logger: logger)
                return ()
            }
        }
    }

    /// `VACUUM FULL` of `table`, which writes it anew and removes the old file (dead rows with it; plain
    /// VACUUM leaves their bytes in the pages' free space). Its exclusive lock is taken only when free
    /// within 50 ms, so no queue forms behind it; false when the table stayed busy (the next purge tries again).
    @discardableResult
    private func rewriteWithoutWaiting(_ table: String) async throws -> Bool {
        for attempt in 0..<20 {
            do {
                try await unbounded { [self] in
                    try await client.withConnection { connection in
                        // The setting is the session's: put back before the connection returns to the pool.
                        try await connection.query("SET lock_timeout = '50ms'", logger: logger)
                        do {
                            try await connection.query(PostgresQuery(unsafeSQL: "VACUUM FULL \(table)"), logger: logger)
                        } catch {
                            _ = try? await connection.query("RESET lock_timeout", logger: logger)
                            throw error
                        }
                        try await connection.query("RESET lock_timeout", logger: logger)
                    }
                }
                return true
            } catch {
                logger.info("retention purge: \(table) was busy; trying again", metadata: ["attempt": "\(attempt + 1)"])
                try await Task.sleep(for: .milliseconds(500))
            }
        }
        logger.warning("retention purge: \(table) stayed busy; what was deleted from it stays in its free space until the next purge rewrites it")
        return false
    }
}

/// A row missing from a table the log numbers densely.
public struct AuditLogGap: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Binary-format cells read in place (int8, text, bytea), for the verification reads.
enum RawCell {
    static func int64(_ cell: PostgresCell?) -> Int64? {
        guard var bytes = cell?.bytes, bytes.readableBytes == 8 else { return nil }
        return bytes.readInteger(as: Int64.self)
    }

    static func text(_ cell: PostgresCell?) -> String {
        guard let bytes = cell?.bytes else { return "" }
        return String(buffer: bytes)
    }

    static func bytes(_ cell: PostgresCell?) -> [UInt8]? {
        cell?.bytes.map { Array(buffer: $0) }
    }

    static func hash(_ cell: PostgresCell?) -> LogHash? {
        cell?.bytes?.withUnsafeReadableBytes { LogHash(bytes: $0) }
    }
}
