// The embedded store: SQLite through GRDB, in WAL mode with one writer. One instance only;
// PostgreSQL is the store for several instances.
import Foundation
import GRDB
import MusterAudit
import MusterCore

public final class SQLiteStore: Store {
    let pool: DatabasePool
    /// Wraps each incident's data key, which seals its student text (docs/audit.md).
    public let masterKey: MasterKey

    /// Opens (creating if needed) the database file.
    public init(path: String, masterKey: MasterKey) throws {
        self.masterKey = masterKey
        var configuration = Configuration()
        configuration.prepareDatabase { db in
            // Freed pages are overwritten, so purged text does not linger in the file.
            try db.execute(sql: "PRAGMA secure_delete = ON")
            // Readers map the file instead of copying each page through read(2): `audit verify` reads the
            // whole log, and a third of its time went to copying pages. SQLite caps it at its own limit.
            // The writer keeps plain I/O (mapping slowed commits by about a tenth).
            if db.configuration.readonly { try db.execute(sql: "PRAGMA mmap_size = 4294967296") }
        }
        configuration.busyMode = .timeout(10)
        pool = try DatabasePool(path: path, configuration: configuration)
    }

    public func migrate() async throws {
        try SQLiteSchema.migrator.migrate(pool)
    }

    public func schemaVersion() async throws -> (applied: Int, known: Int) {
        let applied = try await pool.read { db in try SQLiteSchema.migrator.appliedIdentifiers(db) }
        return (applied.compactMap(SQLiteSchema.number).max() ?? 0, SQLiteSchema.migrations.count)
    }

    // MARK: Commit

    public func commit<Answer: Sendable>(reading needs: CommitNeeds, now: Date,
                                         decide: @escaping @Sendable (CommitSnapshot) -> (BatchWrites, Answer)) async throws -> Answer {
        let masterKey = masterKey
        do {
            return try await pool.write { db in
                let snapshot = try Self.prefetch(needs, db: db, now: now, masterKey: masterKey)
                let (writes, answer) = decide(snapshot)
                try Self.write(writes, db: db, now: now, masterKey: masterKey)
                return answer
            }
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw CommitRefused(String(describing: error))
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.unavailable(String(describing: error))
        }
    }

    private static func placeholders(_ count: Int) -> String {
        Array(repeating: "?", count: count).joined(separator: ",")
    }

    private static func prefetch(_ needs: CommitNeeds, db: Database, now: Date, masterKey: MasterKey) throws -> CommitSnapshot {
        var prefetched = CommitSnapshot()
        var ids = Set(needs.incidentIDs)
        if !needs.idempotencyKeys.isEmpty {
            let rows = try Row.fetchAll(db, sql: """
                SELECT r.idempotency_key, i.id, i.number FROM reports r JOIN incidents i ON i.id = r.incident_id
                WHERE r.idempotency_key IN (\(placeholders(needs.idempotencyKeys.count)))
                """, arguments: StatementArguments(needs.idempotencyKeys))
            // A retried report is answered with its incident as it stands: read it too.
            for row in rows {
                let ref = IncidentRef(id: IncidentID(row[1] as String), number: row[2])
                prefetched.idempotent[row[0]] = ref
                ids.insert(ref.id)
            }
        }
        if !needs.groupKeyHashes.isEmpty {
            // Stored keyed (MasterKey.groupKeyMAC): looked up by the stored form, handed back by the runtime's.
            let stored = Dictionary(needs.groupKeyHashes.map { (masterKey.groupKeyMAC($0), $0) }, uniquingKeysWith: { first, _ in first })
            let rows = try Row.fetchAll(db, sql: """
                SELECT group_key_hash, id FROM incidents
                WHERE group_key_hash IN (\(placeholders(stored.count))) AND phase <> 'resolved' AND group_until >= ?
                ORDER BY number
                """, arguments: StatementArguments(Array(stored.keys)) + [now.milliseconds])
            for row in rows {
                let id = IncidentID(row[1] as String)
                guard let hash = stored[row[0] as String] else { continue }
                prefetched.openByGroup[hash] = id
                ids.insert(id)
            }
        }
        if !ids.isEmpty {
            let list = ids.map(\.rawValue)
            let rows = try Row.fetchAll(db, sql: incidentRowColumns + "WHERE i.id IN (\(placeholders(list.count)))", arguments: StatementArguments(list))
            for row in rows { try prefetched.add(incidentRow(row), keys: masterKey) }
        }
        if needs.newNumbers > 0 {
            let highest = try Int.fetchOne(db, sql: "SELECT COALESCE(MAX(number), 0) FROM incidents") ?? 0
            prefetched.numbers = Array((highest + 1)...(highest + needs.newNumbers))
        }
        prefetched.recordedDeliveries = try recordAttempts(needs.deliveryAttempts, db: db, at: now)
        for message in needs.inboundMessages {
            try db.cachedStatement(sql: "INSERT INTO inbound_messages (message_id, incident_id, received_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING")
                .execute(arguments: [message.id, message.incident.rawValue, now.milliseconds])
            if db.changesCount > 0 { prefetched.newInboundMessages.insert(message.id) }
        }
        return prefetched
    }

    /// Records each delivery attempt whose worker still holds the notification: its outbox row and the attempt's row.
    private static func recordAttempts(_ records: [DeliveryRecord], db: Database, at: Date) throws -> Set<NotificationID> {
        var recorded = Set<NotificationID>()
        for record in records {
            let key = record.id.description
            guard let attempts = try Int.fetchOne(db.cachedStatement(sql: "SELECT attempts FROM outbox WHERE id = ? AND claimed_by = ? AND status = 'queued'"),
                                                  arguments: [key, record.owner]) else { continue }
            let attempt = attempts + 1
            let (status, retryAt, receipt, error): (String, Date?, String?, String?) = switch record.outcome {
            case .delivered(let receipt), .accepted(let receipt): ("sent", nil, receipt, nil)
            case .demonstrated: ("demonstrated", nil, nil, nil)
            case .failed(let reason, let detail, let retryAt): (retryAt == nil ? "failed" : "queued", retryAt, nil, detail ?? reason)
            }
            try db.cachedStatement(sql: """
                UPDATE outbox SET status = ?, attempts = ?, next_attempt_at = COALESCE(?, next_attempt_at),
                  finished_at = CASE WHEN ? = 'queued' THEN NULL ELSE ? END, receipt = ?, last_error = ?, claimed_by = NULL, lease_until = NULL
                WHERE id = ?
                """).execute(arguments: [status, attempt, retryAt?.milliseconds, status, at.milliseconds, receipt, error, key])
            let result = switch record.outcome {
            case .delivered: "delivered"
            case .accepted: "accepted"
            case .demonstrated: "demonstrated"
            case .failed: status == "queued" ? "retry" : "failed"
            }
            try db.cachedStatement(sql: "INSERT INTO delivery_attempts (notification_id, attempt, at, outcome, detail) VALUES (?, ?, ?, ?, ?)")
                .execute(arguments: [key, attempt, at.milliseconds, result, receipt ?? error])
            recorded.insert(record.id)
        }
        return recorded
    }

    private static func write(_ writes: BatchWrites, db: Database, now: Date, masterKey: MasterKey) throws {
        let nowMS = now.milliseconds
        for id in writes.incidentOrder {
            guard let write = writes.incidents[id], !write.auditOnly else { continue }
            let state = write.state, stored = StateCodec.encode(state, sealedFlags: write.flagsSealed).bytes
            if write.isNew {
                try db.cachedStatement(sql: """
                    INSERT INTO incidents (id, number, type, severity, site, playbook, playbook_version, phase, reported_at,
                      report_count, group_key_hash, group_until, state, summary, subject, summary_sealed, subject_sealed, audit_head, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', NULL, ?, ?, ?, ?)
                    """).execute(arguments: [id.rawValue, state.incident.number, state.incident.type.rawValue, state.incident.severity.rawValue,
                                     state.incident.site.rawValue, state.playbook.rawValue, state.playbookVersion, state.phase.name,
                                     state.incident.reportedAt.milliseconds, state.reportCount, write.groupKeyHash.map(masterKey.groupKeyMAC),
                                     write.groupUntil?.milliseconds, Data(stored), write.summarySealed.map { Data($0) },
                                     write.subjectSealed.map { Data($0) }, write.auditHead.map { Data($0) }, nowMS])
                if let key = write.dataKey {
                    let wrapped = masterKey.wrap(key, incident: id.rawValue)
                    try db.cachedStatement(sql: "INSERT INTO incident_keys (incident_id, wrapped) VALUES (?, ?)").execute(arguments: [id.rawValue, Data(wrapped)])
                }
            } else {
                try db.cachedStatement(sql: """
                    UPDATE incidents SET severity = ?, phase = ?, report_count = ?, state = ?, audit_head = COALESCE(?, audit_head),
                      purged_at = CASE WHEN ? THEN ? ELSE purged_at END, updated_at = ?,
                      group_key_hash = CASE WHEN ? = 'resolved' THEN NULL ELSE group_key_hash END
                    WHERE id = ?
                    """).execute(arguments: [state.incident.severity.rawValue, state.phase.name, state.reportCount, Data(stored),
                                     write.auditHead.map { Data($0) }, writes.purgedKeys.contains(id), nowMS, nowMS, state.phase.name, id.rawValue])
            }
        }
        for id in writes.purgedKeys {
            try db.cachedStatement(sql: "DELETE FROM incident_keys WHERE incident_id = ?").execute(arguments: [id.rawValue])
            // Providers' own words (a phone number in an error) go with the student's text.
            try db.cachedStatement(sql: "UPDATE delivery_attempts SET detail = NULL WHERE notification_id IN (SELECT id FROM outbox WHERE incident_id = ?)")
                .execute(arguments: [id.rawValue])
            try db.cachedStatement(sql: "UPDATE outbox SET last_error = NULL, receipt = NULL WHERE incident_id = ?").execute(arguments: [id.rawValue])
            // Reports from before flags were sealed kept them in clear.
            try db.cachedStatement(sql: "UPDATE reports SET flags = '' WHERE incident_id = ? AND flags <> ''").execute(arguments: [id.rawValue])
        }
        for report in writes.reports {
            let r = report.report
            try db.cachedStatement(sql: """
                INSERT INTO reports (incident_id, idempotency_key, received_at, reporter, type, severity, site, flags, summary, subject,
                  summary_sealed, subject_sealed, flags_sealed)
                VALUES (?, ?, ?, ?, ?, ?, ?, '', '', NULL, ?, ?, ?)
                """).execute(arguments: [report.incident.rawValue, report.idempotencyKey, r.receivedAt.milliseconds, r.reporter.description,
                                 r.type.rawValue, r.severity.rawValue, r.site.rawValue, Data(report.summarySealed),
                                 report.subjectSealed.map { Data($0) }, report.flagsSealed.map { Data($0) }])
        }
        for audit in writes.audits {
            try db.cachedStatement(sql: """
                INSERT INTO audit_entries (incident_id, sequence, at, actor, action, body, leaf_hash) VALUES (?, ?, ?, ?, ?, ?, ?)
                """).execute(arguments: [audit.incident.rawValue, audit.record.sequence, audit.record.at.milliseconds,
                                 audit.record.actor.description, audit.record.action.rawValue, Data(audit.body), Data(audit.leafHash)])
            try db.cachedStatement(sql: "INSERT INTO audit_pending (incident_id, sequence, leaf_hash, committed_at) VALUES (?, ?, ?, ?)")
                .execute(arguments: [audit.incident.rawValue, audit.record.sequence, Data(audit.leafHash), nowMS])
        }
        for (row, write) in writes.timers {
            switch write {
            case .upsert(let due):
                try db.cachedStatement(sql: """
                    INSERT INTO timers (incident_id, key, due_at) VALUES (?, ?, ?)
                    ON CONFLICT (incident_id, key) DO UPDATE SET due_at = excluded.due_at, claimed_by = NULL, lease_until = NULL
                    """).execute(arguments: [row.incident.rawValue, row.key.description, due.milliseconds])
            case .delete:
                try db.cachedStatement(sql: "DELETE FROM timers WHERE incident_id = ? AND key = ?").execute(arguments: [row.incident.rawValue, row.key.description])
            }
        }
        for id in writes.cancelPages.subtracting(writes.cancelAll) {
            try db.cachedStatement(sql: """
                UPDATE outbox SET status = 'cancelled', finished_at = ? WHERE incident_id = ? AND status = 'queued'
                  AND (id LIKE '%/page/%' OR id LIKE '%/fallback/%')
                """).execute(arguments: [nowMS, id.rawValue])
        }
        for id in writes.cancelAll {
            try db.cachedStatement(sql: "UPDATE outbox SET status = 'cancelled', finished_at = ? WHERE incident_id = ? AND status = 'queued'")
                .execute(arguments: [nowMS, id.rawValue])
        }
        for notification in writes.outbox {
            try db.cachedStatement(sql: """
                INSERT INTO outbox (id, incident_id, channel, notification, next_attempt_at, created_at, priority) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (id) DO NOTHING
                """).execute(arguments: [notification.id.description, notification.incident.rawValue, notification.channel.rawValue,
                                 Data(BinaryCodec.encode(notification)), nowMS, nowMS, notification.deliveryPriority])
        }
    }

    // MARK: Reads

    /// The columns `incidentRow` reads, from `incidents i` joined with its key and its last audit entry:
    /// the entry's leaf hash is the incident's audit head, and its sequence the last one used (entries
    /// added without rewriting the incident's row, such as receipts, are counted this way).
    static let incidentRowColumns = """
        SELECT i.id, i.state, i.summary, i.subject, i.summary_sealed, i.subject_sealed, i.audit_head, k.wrapped, i.purged_at,
          last.body, last.leaf_hash, last.sequence
        FROM incidents i LEFT JOIN incident_keys k ON k.incident_id = i.id
          LEFT JOIN audit_entries last ON last.incident_id = i.id
            AND last.sequence = (SELECT MAX(sequence) FROM audit_entries e WHERE e.incident_id = i.id)

        """

    static func incidentRow(_ row: Row) -> StoredIncidentRow {
        let id = IncidentID(row[0] as String)
        let head = (row[10] as Data?).map { Array($0) } ?? (row[9] as Data?).map { MerkleTree.leafHash($0).bytes } ?? (row[6] as Data?).map { Array($0) }
        return StoredIncidentRow(id: id, state: Array(row[1] as Data), legacySummary: row[2], legacySubject: row[3],
                                 summarySealed: (row[4] as Data?).map { Array($0) }, subjectSealed: (row[5] as Data?).map { Array($0) },
                                 auditHead: head, lastAuditSequence: row[11], wrappedKey: (row[7] as Data?).map { Array($0) },
                                 purgedAt: (row[8] as Int64?).map { Date(milliseconds: $0) })
    }

    /// The incident's row with its text opened, and its data key.
    func openIncident(_ id: IncidentID) async throws -> (state: IncidentState, key: DataKey?, purgedAt: Date?)? {
        let masterKey = masterKey
        return try await pool.read { db in
            guard let row = try Row.fetchOne(db, sql: Self.incidentRowColumns + "WHERE i.id = ?", arguments: [id.rawValue]) else { return nil }
            let stored = Self.incidentRow(row)
            let (state, key) = try stored.open(keys: masterKey)
            return (state, key, stored.purgedAt)
        }
    }

    public func incident(_ id: IncidentID) async throws -> IncidentState? {
        try await openIncident(id)?.state
    }

    public func incidentID(number: Int) async throws -> IncidentID? {
        try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT id FROM incidents WHERE number = ?", arguments: [number]).map(IncidentID.init)
        }
    }

    public func takeInboundMessage(_ id: String, at: Date) async throws -> Bool {
        try await pool.write { db in
            try db.execute(sql: "INSERT INTO inbound_messages (message_id, incident_id, received_at) VALUES (?, NULL, ?) ON CONFLICT DO NOTHING",
                           arguments: [id, at.milliseconds])
            return db.changesCount > 0
        }
    }

    public func inboundMessageTaken(_ id: String) async throws -> Bool {
        try await pool.read { db in try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM inbound_messages WHERE message_id = ?)", arguments: [id]) ?? false }
    }

    public func incidentID(idempotencyKey: String) async throws -> IncidentID? {
        try await pool.read { db in
            try String.fetchOne(db, sql: "SELECT incident_id FROM reports WHERE idempotency_key = ?", arguments: [idempotencyKey]).map(IncidentID.init)
        }
    }

    public func incidents(_ filter: IncidentFilter) async throws -> [IncidentSummary] {
        try await pool.read { db in
            var conditions: [String] = [], arguments = StatementArguments()
            if !filter.phases.isEmpty {
                conditions.append("phase IN (\(Self.placeholders(filter.phases.count)))")
                arguments += StatementArguments(filter.phases.sorted())
            }
            if let site = filter.site { conditions.append("site = ?"); arguments += [site.rawValue] }
            if let scope = filter.scope {
                conditions.append("site IN (\(Self.placeholders(scope.count)))")
                arguments += StatementArguments(scope.map(\.rawValue).sorted())
                if scope.isEmpty { conditions[conditions.count - 1] = "0" }
            }
            if let reporter = filter.reporter {
                conditions.append("id IN (SELECT incident_id FROM reports WHERE reporter = ?)")
                arguments += [reporter.description]
            }
            if let type = filter.type { conditions.append("type = ?"); arguments += [type.rawValue] }
            if let from = filter.reportedFrom { conditions.append("reported_at >= ?"); arguments += [from.milliseconds] }
            if let before = filter.reportedBefore { conditions.append("reported_at < ?"); arguments += [before.milliseconds] }
            if let number = filter.before { conditions.append("number < ?"); arguments += [number] }
            let whereClause = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ")
            arguments += [max(1, min(filter.limit, 500))]
            return try Row.fetchAll(db, sql: """
                SELECT id, number, type, severity, site, phase, playbook, reported_at, report_count FROM incidents
                \(whereClause) ORDER BY number DESC LIMIT ?
                """, arguments: arguments).map { row in
                IncidentSummary(ref: IncidentRef(id: IncidentID(row[0] as String), number: row[1]), type: IncidentTypeID(row[2] as String),
                                severity: Severity(rawValue: row[3]) ?? .low, site: SiteID(row[4] as String), phase: row[5],
                                playbook: PlaybookID(row[6] as String), reportedAt: Date(milliseconds: row[7]), reportCount: row[8])
            }
        }
    }

    public func timeline(_ id: IncidentID) async throws -> [AuditRecord] {
        guard let (_, key, purgedAt) = try await openIncident(id) else { return [] }
        return try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT body, sensitive FROM audit_entries WHERE incident_id = ? ORDER BY sequence",
                             arguments: [id.rawValue]).map { row in
                try AuditText.record(Array(row[0] as Data), legacy: row[1], key: key, purgedAt: purgedAt)
            }
        }
    }

    public func auditBytes(_ id: IncidentID) async throws -> [[UInt8]] {
        try await pool.read { db in
            try Data.fetchAll(db, sql: "SELECT body FROM audit_entries WHERE incident_id = ? ORDER BY sequence", arguments: [id.rawValue]).map { Array($0) }
        }
    }

    public func reports(_ id: IncidentID) async throws -> [Report] {
        guard let (_, key, purgedAt) = try await openIncident(id) else { return [] }
        return try await pool.read { db in
            try Row.fetchAll(db, sql: """
                SELECT received_at, reporter, type, severity, site, flags, summary, subject, summary_sealed, subject_sealed, flags_sealed
                FROM reports WHERE incident_id = ? ORDER BY id
                """, arguments: [id.rawValue]).map { row in
                let flags = try SealedText.openFlags((row[10] as Data?).map { Array($0) }, legacy: row[5], key: key, context: SealedText.reportFlags(id))
                let summary = try SealedText.open((row[8] as Data?).map { Array($0) }, legacy: row[6], key: key,
                                                  context: SealedText.reportSummary(id), purgedAt: purgedAt)
                let subject = try SealedText.open((row[9] as Data?).map { Array($0) }, legacy: row[7], key: key,
                                                  context: SealedText.reportSubject(id), purgedAt: purgedAt)
                return Report(type: IncidentTypeID(row[2] as String), severity: Severity(rawValue: row[3]) ?? .low, site: SiteID(row[4] as String),
                              reporter: Actor(row[1] as String) ?? .system, summary: summary ?? "", subject: subject,
                              flags: flags, receivedAt: Date(milliseconds: row[0]))
            }
        }
    }

    // MARK: Workers

    public func claimDueTimers(now: Date, limit: Int, owner: String, lease: TimeInterval) async throws -> [ClaimedTimer] {
        try await pool.write { db in
            let rows = try Row.fetchAll(db, sql: """
                UPDATE timers SET claimed_by = ?, lease_until = ?
                WHERE rowid IN (SELECT rowid FROM timers WHERE due_at <= ? AND (lease_until IS NULL OR lease_until < ?) ORDER BY due_at LIMIT ?)
                RETURNING incident_id, key, due_at
                """, arguments: [owner, now.addingTimeInterval(lease).milliseconds, now.milliseconds, now.milliseconds, limit])
            return rows.compactMap { row in
                TimerKey(row[1] as String).map { ClaimedTimer(incident: IncidentID(row[0] as String), key: $0, due: Date(milliseconds: row[2])) }
            }
        }
    }

    public func nextTimerDue(now: Date) async throws -> Date? {
        try await pool.read { db in
            try Int64.fetchOne(db, sql: "SELECT MIN(CASE WHEN lease_until >= ? THEN lease_until ELSE due_at END) FROM timers",
                               arguments: [now.milliseconds]).map { Date(milliseconds: $0) }
        }
    }

    public func claimDeliveries(now: Date, limit: Int, owner: String, lease: TimeInterval,
                                skipping: Set<ChannelKind>) async throws -> [ClaimedDelivery] {
        // Channel names are the enum's raw values, never input: safe to list in the statement.
        let skipped = skipping.isEmpty ? "" : "AND channel NOT IN (" + skipping.map { "'\($0.rawValue)'" }.sorted().joined(separator: ", ") + ")"
        return try await pool.write { db in
            let rows = try Row.fetchAll(db, sql: """
                UPDATE outbox SET claimed_by = ?, lease_until = ?
                WHERE id IN (SELECT id FROM outbox WHERE status = 'queued' AND next_attempt_at <= ?
                             AND (lease_until IS NULL OR lease_until < ?) \(skipped) ORDER BY priority DESC, next_attempt_at LIMIT ?)
                RETURNING notification, attempts
                """, arguments: [owner, now.addingTimeInterval(lease).milliseconds, now.milliseconds, now.milliseconds, limit])
            // RETURNING gives no order: claims are sent in the queue's order.
            return try rows.map { row in
                ClaimedDelivery(notification: try BinaryCodec.decodeNotification(Array(row[0] as Data)), attempts: row[1])
            }.sorted { $0.notification.deliveryPriority > $1.notification.deliveryPriority }
        }
    }

    public func deferDeliveries(_ deferrals: [NotificationID: Date], owner: String) async throws {
        guard !deferrals.isEmpty else { return }
        try await pool.write { db in
            for (id, until) in deferrals {
                try db.cachedStatement(sql: """
                    UPDATE outbox SET next_attempt_at = ?, claimed_by = NULL, lease_until = NULL
                    WHERE id = ? AND claimed_by = ? AND status = 'queued'
                    """).execute(arguments: [until.milliseconds, id.description, owner])
            }
        }
    }

    public func keepPlaybooks(_ playbooks: [KeptPlaybook], at: Date) async throws {
        guard !playbooks.isEmpty else { return }
        try await pool.write { db in
            for kept in playbooks {
                try db.cachedStatement(sql: """
                    INSERT INTO kept_playbooks (version, playbook_id, file, source, kept_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (version) DO NOTHING
                    """).execute(arguments: [kept.version, kept.id.rawValue, kept.file, kept.source, at.milliseconds])
            }
        }
    }

    public func keptPlaybooks() async throws -> [KeptPlaybook] {
        try await pool.read { db in
            try Row.fetchAll(db, sql: "SELECT version, playbook_id, file, source FROM kept_playbooks ORDER BY kept_at, version").map { row in
                KeptPlaybook(version: row[0], id: PlaybookID(row[1] as String), file: row[2], source: row[3])
            }
        }
    }

    public func releaseClaims(owner: String) async throws {
        try await pool.write { db in
            try db.execute(sql: "UPDATE timers SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = ?", arguments: [owner])
            try db.execute(sql: "UPDATE outbox SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = ? AND status = 'queued'", arguments: [owner])
        }
    }

    public func outboxCounts() async throws -> [String: Int] {
        try await pool.read { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT status, COUNT(*) FROM outbox GROUP BY status") { counts[row[0]] = row[1] }
            return counts
        }
    }
}

extension Date {
    /// Milliseconds since 1970, as both stores keep instants.
    var milliseconds: Int64 { Int64((timeIntervalSince1970 * 1000).rounded(.down)) }
    init(milliseconds: Int64) { self.init(timeIntervalSince1970: TimeInterval(milliseconds) / 1000) }
}
