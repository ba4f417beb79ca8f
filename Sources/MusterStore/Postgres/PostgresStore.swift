// The production store: PostgreSQL through PostgresNIO's pooled client. Several Muster instances
// may share one database: grouping and idempotency keys are serialised by advisory locks, touched
// incidents by row locks, and workers claim timers and deliveries with SKIP LOCKED and a lease.
import Foundation
import Logging
import MusterAudit
import MusterCore
import NIOCore
import PostgresNIO
import Synchronization

public final class PostgresStore: Store {
    let client: PostgresClient
    /// For the workers' claims and releases: asynchronous commit (no WAL flush wait). Losing the last of
    /// these to a database crash only means a claim is taken again or a notification is sent again under
    /// the same id. Reports, events and delivery attempts (with the engine's reaction to them) always
    /// commit synchronously on `client`.
    let workClient: PostgresClient
    let logger: Logger
    private let runner: Task<Void, Never>
    /// Wraps each incident's data key, which seals its student text (docs/audit.md).
    public let masterKey: MasterKey
    /// The key generations data keys are wrapped under (KeyRing.swift).
    let keyRing: KeyRing
    /// The longest any call may take before the caller is told the database is unavailable.
    public let timeout: TimeInterval
    /// The channel NOTIFY wakes workers on when timers or deliveries are queued.
    public static let workChannel = "muster_work"

    /// The settings this store connects with (another instance on the same database uses them too).
    public let settings: PostgresSettings
    /// Wakes other instances' workers after commits that queued work (coalesced: one NOTIFY at a time).
    private let notifier: WorkNotifier
    /// Relays connections to the listed host that accepts writes, for a host list; nil for one host.
    private let forwarder: PrimaryForwarder?

    public init(settings: PostgresSettings, masterKey: MasterKey, logger: Logger = Logger(label: "muster.postgres"), timeout: TimeInterval = 3) {
        self.timeout = timeout
        self.masterKey = masterKey
        keyRing = KeyRing(masterKey: masterKey)
        self.settings = settings
        // A host list (libpq's h1:p1,h2:p2 and target_session_attrs) goes through the host chooser.
        forwarder = settings.choosesHost ? PrimaryForwarder(settings: settings, logger: logger) : nil
        if settings.choosesHost, forwarder == nil { logger.error("the database host chooser did not start; connecting to the first host only") }
        let configuration = settings.clientConfiguration(via: forwarder?.endpoint)
        let client = PostgresClient(configuration: configuration, backgroundLogger: logger)
        self.client = client
        self.logger = logger
        var workConfiguration = configuration
        workConfiguration.options.additionalStartupParameters.append(("synchronous_commit", "off"))
        // Claims take the first due rows in order: walking the due index and stopping after them is
        // the only plan that does not grow with the backlog. Statistics lag exactly when a backlog
        // builds (an outage, a burst), and the planner then sorted every due row per claim (27 ms a
        // claim at 8,000 queued pages). These connections run claims and releases only.
        workConfiguration.options.additionalStartupParameters.append(("enable_sort", "off"))
        let workClient = PostgresClient(configuration: workConfiguration, backgroundLogger: logger)
        self.workClient = workClient
        notifier = WorkNotifier(client: workClient, channel: Self.workChannel, logger: logger)
        runner = Task {
            await withDiscardingTaskGroup { group in
                group.addTask { await client.run() }
                group.addTask { await workClient.run() }
            }
        }
    }

    /// Stops the connection pool.
    public func shutdown() { runner.cancel() }

    deinit { runner.cancel() }

    // MARK: Migrations

    private static let migrationLock: Int64 = 0x6D75_7374_6572_0001  // "muster" + 1

    public func migrate() async throws {
        // No deadline: another instance may hold the migration lock while it migrates.
        try await unbounded { [self] in
            try await client.withConnection { connection in
                try await connection.query("SELECT pg_advisory_lock(\(Self.migrationLock))", logger: logger)
                do {
                    try await connection.query("""
                        CREATE TABLE IF NOT EXISTS muster_schema_migrations (
                          version INT PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                        """, logger: logger)
                    var applied = Set<Int>()
                    for try await version in try await connection.query("SELECT version FROM muster_schema_migrations", logger: logger).decode(Int.self) {
                        applied.insert(version)
                    }
                    for (index, migration) in PostgresSchema.migrations.enumerated() where !applied.contains(index + 1) {
                        try await connection.withTransaction(logger: logger) { transaction in
                            for statement in migration.statements {
                                try await transaction.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                            }
                            try await transaction.query("INSERT INTO muster_schema_migrations (version, name) VALUES (\(index + 1), \(migration.name))",
                                                        logger: logger)
                        }
                    }
                } catch {
                    _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger)
                    throw error
                }
                try await connection.query("SELECT pg_advisory_unlock(\(Self.migrationLock))", logger: logger)
            }
        }
    }

    public func schemaVersion() async throws -> (applied: Int, known: Int) {
        try await database { [self] in
            let rows = try await client.query("SELECT COALESCE(MAX(version), 0) FROM muster_schema_migrations", logger: logger)
            var applied = 0
            for try await version in rows.decode(Int.self) { applied = version }
            return (applied, PostgresSchema.migrations.count)
        }
    }

    /// A maintenance statement (VACUUM and the like), with no deadline and outside any transaction.
    func unboundedQuery(_ sql: String) async throws {
        try await unbounded { [self] in
            try await client.query(PostgresQuery(unsafeSQL: sql), logger: logger)
            return ()
        }
    }

    func unbounded<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws -> T {
        do {
            return try await work()
        } catch {
            throw Self.storeError(error)
        }
    }

    /// Runs database work within the timeout; a failure to reach or use the database becomes `StoreError.unavailable`.
    func database<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws -> T {
        do {
            return try await Deadline.run(timeout, what: "the database call", work)
        } catch {
            throw Self.storeError(error)
        }
    }

    /// Errors that say what the database holds pass through; anything else means it could not be used.
    private static func storeError(_ error: any Error) -> any Error {
        switch error {
        case is StoreError, is AuditLogGap: error
        default: StoreError.unavailable(String(reflecting: error))
        }
    }

    // MARK: Commit

    public func commit<Answer: Sendable>(reading needs: CommitNeeds, now: Date,
                                         decide: @escaping @Sendable (CommitSnapshot) -> (BatchWrites, Answer)) async throws -> Answer {
        do {
            let (answer, wake) = try await withCurrentKeys { [self] in
                try await Deadline.run(timeout, what: "the commit") { [self] in
                    try await client.withTransaction(logger: logger) { connection in
                        let snapshot = try await self.prefetch(needs, connection: connection, now: now)
                        let (writes, answer) = decide(snapshot)
                        let queuedWork = try await self.write(writes, connection: connection, now: now)
                        return (answer, queuedWork)
                    }
                }
            }
            // Never NOTIFY inside the commit: PostgreSQL serialises the commits of notifying transactions
            // (a global lock held through the WAL flush), which ends group commit. The notifier sends it after.
            if wake { notifier.poke() }
            return answer
        } catch let error where Self.serverRefused(error) != nil {
            throw CommitRefused(Self.serverRefused(error) ?? "")
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError.unavailable(String(reflecting: error))
        }
    }

    /// Runs `work`, and once more after reloading the key generations when it met one this instance
    /// has not loaded, or wrapped a key under one a purge is retiring. The first call loads them.
    func withCurrentKeys<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws -> T {
        if !keyRing.isLoaded { try await reloadKeys() }
        do {
            return try await work()
        } catch where KeyGenerationsStale.matches(error) {
            try await reloadKeys()
            return try await work()
        }
    }

    private func reloadKeys() async throws {
        try await Deadline.run(timeout, what: "loading the key generations") { [self] in try await keyRing.reload(client, logger: logger) }
    }

    /// The server's message when it answered with an error (as opposed to not answering at all).
    private static func serverRefused(_ error: any Error) -> String? {
        if let error = error as? PSQLError { return error.serverInfo?[.message] }
        if let error = error as? PostgresTransactionError {
            for inner in [error.closureError, error.commitError, error.beginError].compactMap({ $0 }) {
                if let message = serverRefused(inner) { return message }
            }
        }
        return nil
    }

    private func prefetch(_ needs: CommitNeeds, connection: PostgresConnection, now: Date) async throws -> CommitSnapshot {
        var prefetched = CommitSnapshot()
        // Reports with the same grouping or idempotency key are serialised, so two simultaneous
        // reports make one incident. Locks are taken in one order, so batches cannot deadlock on them.
        let lockIDs = Set(needs.groupKeyHashes.map { GroupKey.lockID("group:" + $0) } + needs.idempotencyKeys.map { GroupKey.lockID("idem:" + $0) }).sorted()
        if !lockIDs.isEmpty {
            try await connection.query("SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(\(lockIDs)::int8[]) AS k ORDER BY 1) AS locks",
                                       logger: logger)
        }
        // One round trip for what the locks protect: reports already taken by idempotency key, open
        // incidents for the grouping keys, and fresh incident numbers.
        var ids = Set(needs.incidentIDs)
        // Grouping keys are stored keyed (MasterKey.groupKeyMAC): looked up by the stored form, handed back by the runtime's.
        let storedGroups = Dictionary(needs.groupKeyHashes.map { (masterKey.groupKeyMAC($0), $0) }, uniquingKeysWith: { first, _ in first })
        if !needs.idempotencyKeys.isEmpty || !needs.groupKeyHashes.isEmpty || needs.newNumbers > 0 {
            let rows = try await connection.query("""
                SELECT 'idempotent', r.idempotency_key, i.id, i.number FROM reports r JOIN incidents i ON i.id = r.incident_id
                  WHERE r.idempotency_key = ANY(\(needs.idempotencyKeys)::text[])
                UNION ALL
                SELECT 'group', group_key_hash, id, number FROM incidents
                  WHERE group_key_hash = ANY(\(Array(storedGroups.keys))::text[]) AND phase <> 'resolved' AND group_until >= \(now)
                UNION ALL
                SELECT 'number', '', '', nextval('incident_numbers') FROM generate_series(1, \(needs.newNumbers))
                """, logger: logger)
            var groups: [(hash: String, id: String, number: Int)] = []
            for try await (kind, key, id, number) in rows.decode((String, String, String, Int).self) {
                switch kind {
                case "idempotent":
                    // A retried report is answered with its incident as it stands: read it too.
                    prefetched.idempotent[key] = IncidentRef(id: IncidentID(id), number: number)
                    ids.insert(IncidentID(id))
                case "group": if let hash = storedGroups[key] { groups.append((hash, id, number)) }
                default: prefetched.numbers.append(number)
                }
            }
            // The newest open incident of a group takes its reports.
            for group in groups.sorted(by: { $0.number < $1.number }) {
                prefetched.openByGroup[group.hash] = IncidentID(group.id)
                ids.insert(IncidentID(group.id))
            }
            prefetched.numbers.sort()
        }
        if !ids.isEmpty {
            let rows = try await connection.query(PostgresQuery(unsafeSQL: Self.lockedIncidentRows,
                                                                binds: Self.binds(ids.map(\.rawValue).sorted())), logger: logger)
            for try await row in rows { try prefetched.add(try Self.incidentRow(row), keys: keyRing) }
        }
        // After the incidents' locks, in the order every commit takes them (incidents, then outbox rows).
        if !needs.deliveryAttempts.isEmpty {
            prefetched.recordedDeliveries = try await recordAttempts(needs.deliveryAttempts, connection: connection, at: now)
        }
        if !needs.inboundMessages.isEmpty {
            // A concurrent commit of the same id waits for this one, then inserts nothing: taken once.
            let ids = needs.inboundMessages.map(\.id), incidents = needs.inboundMessages.map(\.incident.rawValue)
            let rows = try await connection.query("""
                INSERT INTO inbound_messages (message_id, incident_id, received_at)
                SELECT u.id, u.incident, \(now) FROM unnest(\(ids)::text[], \(incidents)::text[]) AS u(id, incident)
                ON CONFLICT DO NOTHING RETURNING message_id
                """, logger: logger)
            for try await id in rows.decode(String.self) { prefetched.newInboundMessages.insert(id) }
        }
        return prefetched
    }

    /// Records delivery attempts in one statement: updates each outbox row its worker still holds, and
    /// writes each attempt's row. The rows are reached by key (= ANY): joined with the input, the queue was scanned.
    private func recordAttempts(_ records: [DeliveryRecord], connection: PostgresConnection, at: Date) async throws -> Set<NotificationID> {
        let absent = Date(timeIntervalSince1970: 0)
        var ids: [String] = [], owners: [String] = [], statuses: [String] = [], results: [String] = [], retries: [Date] = [], details: [String] = []
        for record in records {
            ids.append(record.id.description)
            owners.append(record.owner)
            switch record.outcome {
            case .delivered(let receipt):
                statuses.append("sent"); results.append("delivered"); retries.append(absent); details.append(receipt ?? "")
            case .accepted(let receipt):
                statuses.append("sent"); results.append("accepted"); retries.append(absent); details.append(receipt ?? "")
            case .demonstrated:
                statuses.append("demonstrated"); results.append("demonstrated"); retries.append(absent); details.append("")
            case .failed(let reason, let detail, let retryAt):
                statuses.append(retryAt == nil ? "failed" : "queued"); results.append(retryAt == nil ? "failed" : "retry")
                retries.append(retryAt ?? absent); details.append(detail ?? reason)
            }
        }
        let rows = try await connection.query("""
            WITH input AS (
              SELECT * FROM unnest(\(ids)::text[], \(owners)::text[], \(statuses)::text[], \(results)::text[], \(retries)::timestamptz[], \(details)::text[])
                AS u(id, owner, status, result, retry_at, detail)
            ), updated AS (
              UPDATE outbox AS o SET status = i.status, attempts = o.attempts + 1,
                next_attempt_at = COALESCE(NULLIF(i.retry_at, \(absent)), o.next_attempt_at),
                finished_at = CASE WHEN i.status = 'queued' THEN NULL ELSE \(at) END,
                receipt = CASE WHEN i.status = 'sent' THEN NULLIF(i.detail, '') END,
                last_error = CASE WHEN i.status <> 'sent' THEN i.detail END, claimed_by = NULL, lease_until = NULL
              FROM input AS i WHERE o.id = ANY(\(ids)::text[]) AND o.id = i.id AND o.claimed_by = i.owner AND o.status = 'queued'
              RETURNING o.id, o.attempts, i.result, i.detail
            ), attempts AS (
              INSERT INTO delivery_attempts (notification_id, attempt, at, outcome, detail)
              SELECT id, attempts, \(at), result, NULLIF(detail, '') FROM updated
            )
            SELECT id FROM updated
            """, logger: logger)
        var recorded = Set<NotificationID>()
        for try await id in rows.decode(String.self) {
            if let id = NotificationID(id) { recorded.insert(id) }
        }
        return recorded
    }

    /// Writes a batch in at most two statements, whatever its size (BatchWriteStatement.swift); true
    /// when it queued notifications or timers (workers elsewhere should hear of it).
    private func write(_ writes: BatchWrites, connection: PostgresConnection, now: Date) async throws -> Bool {
        guard !writes.isEmpty else { return false }
        let absent = Date(timeIntervalSince1970: 0)  // unnest carries no NULLs: this stands for one
        var new = IncidentRows(), changed = IncidentRows()
        for id in writes.incidentOrder {
            guard let write = writes.incidents[id], !write.auditOnly else { continue }
            if write.isNew {
                try new.append(write, masterKey: masterKey, keys: keyRing, absent: absent)
            } else {
                try changed.append(write, masterKey: masterKey, keys: keyRing, absent: absent)
            }
        }
        var scheduled = TimerRows(), removed = TimerRows()
        for (row, write) in writes.timers {
            switch write {
            case .upsert(let due): scheduled.append(row, due: due)
            case .delete: removed.append(row)
            }
        }
        let changes = BatchChanges(changed: changed, purged: writes.purgedKeys.map(\.rawValue), now: now, removedTimers: removed,
                                   cancelPages: writes.cancelPages.subtracting(writes.cancelAll).map(\.rawValue),
                                   cancelAll: writes.cancelAll.map(\.rawValue))
        if let query = try changes.query() { try await connection.query(query, logger: logger) }
        guard !new.isEmpty || !writes.reports.isEmpty || !writes.audits.isEmpty || !scheduled.isEmpty || !writes.outbox.isEmpty else { return false }
        var reports = ReportRows(), audits = AuditEntryRows(), outbox = OutboxRows()
        for report in writes.reports { reports.append(report) }
        for audit in writes.audits { audits.append(audit) }
        for notification in writes.outbox { outbox.append(notification) }
        let statement = BatchInsertStatement(incidents: new, reports: reports, audits: audits, timers: scheduled, outbox: outbox,
                                             absent: absent, now: now)
        for try await _ in try await connection.execute(statement, logger: logger) {}
        return !writes.outbox.isEmpty || !scheduled.isEmpty
    }

    /// Holds a connection that LISTENs for queued work and calls `wake` on each notification;
    /// returns or throws when the connection ends.
    public func listenForWork(_ wake: @escaping @Sendable () -> Void) async throws {
        try await client.withConnection { connection in
            try await connection.listen(on: Self.workChannel) { notifications in
                for try await _ in notifications { wake() }
            }
        }
    }

    // MARK: Reads

    /// The columns `incidentRow` reads, from `incidents i` joined with its key and its last audit entry
    /// (migration 007's function): the entry's leaf hash is the incident's audit head, and its sequence
    /// the last one used (entries added without rewriting the incident's row, such as receipts, count).
    private static func incidentRows(from incidents: String) -> String {
        """
        SELECT i.id, i.state, i.summary, i.subject, i.summary_sealed, i.subject_sealed,
          COALESCE(last.last_head, i.audit_head), k.wrapped, k.generation, i.purged_at, last.last_sequence
        FROM \(incidents) i LEFT JOIN incident_keys k ON k.incident_id = i.id
          CROSS JOIN LATERAL muster_last_audit_entry(i.id) last

        """
    }

    static let incidentRowColumns = incidentRows(from: "incidents")

    /// The rows of the incidents `$1` names, locked in id order. The function reads the last entry after
    /// each lock is taken, with a snapshot of its own: a statement that waited for a lock sees the locked
    /// row's newest version but anything else it joined as of before the wait, and the entries a receipt
    /// added without touching the row must be seen too.
    static let lockedIncidentRows = incidentRows(from: "(SELECT * FROM incidents WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE)")

    static func incidentRow(_ row: PostgresRow) throws -> StoredIncidentRow {
        let (id, state, summary, subject, summarySealed, subjectSealed, head, wrapped, generation, purgedAt, lastSequence) =
            try row.decode((String, ByteBuffer, String, String?, ByteBuffer?, ByteBuffer?, ByteBuffer?, ByteBuffer?, Int64?, Date?, Int?).self)
        return StoredIncidentRow(id: IncidentID(id), state: Array(buffer: state), legacySummary: summary, legacySubject: subject,
                                 summarySealed: summarySealed.map { Array(buffer: $0) }, subjectSealed: subjectSealed.map { Array(buffer: $0) },
                                 auditHead: head.map { Array(buffer: $0) }, lastAuditSequence: lastSequence,
                                 wrappedKey: wrapped.map { Array(buffer: $0) }, keyGeneration: generation, purgedAt: purgedAt)
    }

    static func binds(_ value: some PostgresNonThrowingEncodable) -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(value)
        return bindings
    }

    static func binds(_ text: String, _ first: Int64, _ second: Int64) -> PostgresBindings {
        var bindings = PostgresBindings()
        bindings.append(text)
        bindings.append(first)
        bindings.append(second)
        return bindings
    }

    /// The incident's row with its text opened, and its data key.
    func openIncident(_ id: IncidentID) async throws -> (state: IncidentState, key: DataKey?, purgedAt: Date?)? {
        try await database { [self] in
            try await withCurrentKeys { [self] in
                let rows = try await client.query(PostgresQuery(unsafeSQL: Self.incidentRowColumns + "WHERE i.id = $1", binds: Self.binds(id.rawValue)),
                                                  logger: logger)
                for try await row in rows {
                    let stored = try Self.incidentRow(row)
                    let (state, key) = try stored.open(keys: keyRing)
                    return (state, key, stored.purgedAt)
                }
                return nil
            }
        }
    }

    public func incident(_ id: IncidentID) async throws -> IncidentState? {
        try await openIncident(id)?.state
    }

    public func incidentID(number: Int) async throws -> IncidentID? {
        try await database { [self] in
            let rows = try await client.query("SELECT id FROM incidents WHERE number = \(Int64(number))", logger: logger)
            for try await id in rows.decode(String.self) { return IncidentID(id) }
            return nil
        }
    }

    public func takeInboundMessage(_ id: String, at: Date) async throws -> Bool {
        try await database { [self] in
            let rows = try await client.query("""
                INSERT INTO inbound_messages (message_id, incident_id, received_at) VALUES (\(id), NULL, \(at))
                ON CONFLICT DO NOTHING RETURNING message_id
                """, logger: logger)
            for try await _ in rows.decode(String.self) { return true }
            return false
        }
    }

    public func inboundMessageTaken(_ id: String) async throws -> Bool {
        try await database { [self] in
            let rows = try await client.query("SELECT EXISTS (SELECT 1 FROM inbound_messages WHERE message_id = \(id))", logger: logger)
            for try await taken in rows.decode(Bool.self) { return taken }
            return false
        }
    }

    public func incidentID(idempotencyKey: String) async throws -> IncidentID? {
        try await database { [self] in
            let rows = try await client.query("SELECT incident_id FROM reports WHERE idempotency_key = \(idempotencyKey)", logger: logger)
            for try await id in rows.decode(String.self) { return IncidentID(id) }
            return nil
        }
    }

    public func incidents(_ filter: IncidentFilter) async throws -> [IncidentSummary] {
        try await database { [self] in
            // Absent filters are passed as values that match everything, so the statement stays one prepared shape.
            let phases = filter.phases.sorted()
            let scope = filter.scope.map { $0.map(\.rawValue).sorted() }
            let reporter = filter.reporter?.description
            let rows = try await client.query("""
                SELECT id, number, type, severity, site, phase, playbook, reported_at, report_count FROM incidents
                WHERE (cardinality(\(phases)::text[]) = 0 OR phase = ANY(\(phases)::text[]))
                  AND (\(filter.site?.rawValue ?? "")::text = '' OR site = \(filter.site?.rawValue ?? ""))
                  AND (\(scope == nil)::bool OR site = ANY(\(scope ?? [])::text[]))
                  AND (\(reporter ?? "")::text = '' OR id IN (SELECT incident_id FROM reports WHERE reporter = \(reporter ?? "")))
                  AND (\(filter.type?.rawValue ?? "")::text = '' OR type = \(filter.type?.rawValue ?? ""))
                  AND reported_at >= \(filter.reportedFrom ?? Date(timeIntervalSince1970: 0))
                  AND reported_at < \(filter.reportedBefore ?? Date(timeIntervalSince1970: 32_503_680_000))
                  AND number < \(Int64(filter.before ?? Int.max))
                ORDER BY number DESC LIMIT \(max(1, min(filter.limit, 500)))
                """, logger: logger)
            var result: [IncidentSummary] = []
            for try await (id, number, type, severity, site, phase, playbook, reportedAt, count)
                in rows.decode((String, Int, String, String, String, String, String, Date, Int).self) {
                result.append(IncidentSummary(ref: IncidentRef(id: IncidentID(id), number: number), type: IncidentTypeID(type),
                                              severity: Severity(rawValue: severity) ?? .low, site: SiteID(site), phase: phase,
                                              playbook: PlaybookID(playbook), reportedAt: reportedAt, reportCount: count))
            }
            return result
        }
    }

    public func timeline(_ id: IncidentID) async throws -> [AuditRecord] {
        guard let (_, key, purgedAt) = try await openIncident(id) else { return [] }
        return try await database { [self] in
            let rows = try await client.query("SELECT body, sensitive FROM audit_entries WHERE incident_id = \(id.rawValue) ORDER BY sequence",
                                              logger: logger)
            var records: [AuditRecord] = []
            for try await (body, sensitive) in rows.decode((ByteBuffer, String?).self) {
                records.append(try AuditText.record(Array(buffer: body), legacy: sensitive, key: key, purgedAt: purgedAt))
            }
            return records
        }
    }

    public func auditBytes(_ id: IncidentID) async throws -> [[UInt8]] {
        try await database { [self] in
            let rows = try await client.query("SELECT body FROM audit_entries WHERE incident_id = \(id.rawValue) ORDER BY sequence", logger: logger)
            var result: [[UInt8]] = []
            for try await body in rows.decode(ByteBuffer.self) { result.append(Array(buffer: body)) }
            return result
        }
    }

    public func reports(_ id: IncidentID) async throws -> [Report] {
        guard let (_, key, purgedAt) = try await openIncident(id) else { return [] }
        return try await database { [self] in
            let rows = try await client.query("""
                SELECT received_at, reporter, type, severity, site, flags, summary, subject, summary_sealed, subject_sealed, flags_sealed
                FROM reports WHERE incident_id = \(id.rawValue) ORDER BY id
                """, logger: logger)
            var result: [Report] = []
            for try await (receivedAt, reporter, type, severity, site, flags, summary, subject, summarySealed, subjectSealed, flagsSealed)
                in rows.decode((Date, String, String, String, String, String, String, String?, ByteBuffer?, ByteBuffer?, ByteBuffer?).self) {
                let text = try SealedText.open(summarySealed.map { Array(buffer: $0) }, legacy: summary, key: key,
                                               context: SealedText.reportSummary(id), purgedAt: purgedAt)
                let reference = try SealedText.open(subjectSealed.map { Array(buffer: $0) }, legacy: subject, key: key,
                                                    context: SealedText.reportSubject(id), purgedAt: purgedAt)
                result.append(Report(type: IncidentTypeID(type), severity: Severity(rawValue: severity) ?? .low, site: SiteID(site),
                                     reporter: Actor(reporter) ?? .system, summary: text ?? "", subject: reference,
                                     flags: try SealedText.openFlags(flagsSealed.map { Array(buffer: $0) }, legacy: flags, key: key,
                                                                     context: SealedText.reportFlags(id)),
                                     receivedAt: receivedAt))
            }
            return result
        }
    }

    // MARK: Workers

    public func claimDueTimers(now: Date, limit: Int, owner: String, lease: TimeInterval) async throws -> [ClaimedTimer] {
        // The rows are picked once (ARRAY of ctids, an init plan) and updated by TID: a join of the whole
        // table with the picked rows is what the planner chose otherwise, a scan per claim.
        try await database { [self] in
            let rows = try await workClient.query("""
                UPDATE timers SET claimed_by = \(owner), lease_until = \(now.addingTimeInterval(lease))
                WHERE ctid = ANY(ARRAY(
                  SELECT ctid FROM timers WHERE due_at <= \(now) AND (lease_until IS NULL OR lease_until < \(now))
                  ORDER BY due_at LIMIT \(limit) FOR UPDATE SKIP LOCKED))
                RETURNING incident_id, key, due_at
                """, logger: logger)
            var claimed: [ClaimedTimer] = []
            for try await (incident, key, due) in rows.decode((String, String, Date).self) {
                if let key = TimerKey(key) { claimed.append(ClaimedTimer(incident: IncidentID(incident), key: key, due: due)) }
            }
            return claimed
        }
    }

    public func nextTimerDue(now: Date) async throws -> Date? {
        try await database { [self] in
            // The earliest due time of a timer free to claim, or the earliest end of a lease held now.
            let rows = try await client.query("""
                SELECT LEAST(
                  (SELECT due_at FROM timers WHERE claimed_by IS NULL OR lease_until < \(now) ORDER BY due_at LIMIT 1),
                  (SELECT min(lease_until) FROM timers WHERE claimed_by IS NOT NULL AND lease_until >= \(now)))
                """, logger: logger)
            for try await due in rows.decode(Date?.self) { return due }
            return nil
        }
    }

    public func claimDeliveries(now: Date, limit: Int, owner: String, lease: TimeInterval,
                                skipping: Set<ChannelKind>) async throws -> [ClaimedDelivery] {
        // As with timers: the rows are picked once (an init plan) and updated by key. Joined with the
        // picked rows, the whole queue was scanned per claim.
        let skipped = skipping.map(\.rawValue).sorted()
        return try await database { [self] in
            let rows = try await workClient.query("""
                UPDATE outbox SET claimed_by = \(owner), lease_until = \(now.addingTimeInterval(lease))
                WHERE id = ANY(ARRAY(
                  SELECT id FROM outbox WHERE status = 'queued' AND next_attempt_at <= \(now) AND (lease_until IS NULL OR lease_until < \(now))
                    AND channel <> ALL(\(skipped)::text[])
                  ORDER BY priority DESC, next_attempt_at LIMIT \(limit) FOR UPDATE SKIP LOCKED))
                RETURNING notification, attempts
                """, logger: logger)
            var claimed: [ClaimedDelivery] = []
            for try await (notification, attempts) in rows.decode((ByteBuffer, Int).self) {
                claimed.append(ClaimedDelivery(notification: try BinaryCodec.decodeNotification(Array(buffer: notification)),
                                               attempts: attempts))
            }
            // RETURNING gives no order: claims are sent in the queue's order.
            return claimed.sorted { $0.notification.deliveryPriority > $1.notification.deliveryPriority }
        }
    }

    public func deferDeliveries(_ deferrals: [NotificationID: Date], owner: String) async throws {
        guard !deferrals.isEmpty else { return }
        let pairs = Array(deferrals)
        let ids = pairs.map(\.key.description), untils = pairs.map(\.value)
        try await database { [self] in
            try await workClient.query("""
                UPDATE outbox o SET next_attempt_at = d.until, claimed_by = NULL, lease_until = NULL
                FROM unnest(\(ids)::text[], \(untils)::timestamptz[]) AS d(id, until)
                WHERE o.id = d.id AND o.claimed_by = \(owner) AND o.status = 'queued'
                """, logger: logger)
            return ()
        }
    }

    public func keepPlaybooks(_ playbooks: [KeptPlaybook], at: Date) async throws {
        guard !playbooks.isEmpty else { return }
        let versions = playbooks.map(\.version), ids = playbooks.map(\.id.rawValue), files = playbooks.map(\.file), sources = playbooks.map(\.source)
        try await database { [self] in
            try await client.query("""
                INSERT INTO kept_playbooks (version, playbook_id, file, source, kept_at)
                SELECT version, playbook_id, file, source, \(at) FROM unnest(\(versions)::text[], \(ids)::text[], \(files)::text[], \(sources)::text[])
                  AS u(version, playbook_id, file, source)
                ON CONFLICT (version) DO NOTHING
                """, logger: logger)
            return ()
        }
    }

    public func keptPlaybooks() async throws -> [KeptPlaybook] {
        try await database { [self] in
            let rows = try await client.query("SELECT version, playbook_id, file, source FROM kept_playbooks ORDER BY kept_at, version", logger: logger)
            var kept: [KeptPlaybook] = []
            for try await (version, id, file, source) in rows.decode((String, String, String, String).self) {
                kept.append(KeptPlaybook(version: version, id: PlaybookID(id), file: file, source: source))
            }
            return kept
        }
    }

    public func releaseClaims(owner: String) async throws {
        try await database { [self] in
            try await workClient.query("UPDATE timers SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = \(owner)", logger: logger)
            try await workClient.query("UPDATE outbox SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = \(owner) AND status = 'queued'",
                                   logger: logger)
        }
    }

    public func outboxCounts() async throws -> [String: Int] {
        try await database { [self] in
            let rows = try await client.query("SELECT status, COUNT(*)::int8 FROM outbox GROUP BY status", logger: logger)
            var counts: [String: Int] = [:]
            for try await (status, count) in rows.decode((String, Int).self) { counts[status] = count }
            return counts
        }
    }
}

/// Sends NOTIFY on the work channel after commits, outside them. Pokes while one is under way
/// fold into one more, so a burst of commits costs a couple of notifications, not one each.
final class WorkNotifier: Sendable {
    private let client: PostgresClient
    private let channel: String
    private let logger: Logger
    private let state = Mutex<(inFlight: Bool, again: Bool)>((false, false))

    init(client: PostgresClient, channel: String, logger: Logger) {
        self.client = client
        self.channel = channel
        self.logger = logger
    }

    func poke() {
        let start = state.withLock { state -> Bool in
            if state.inFlight {
                state.again = true
                return false
            }
            state.inFlight = true
            return true
        }
        guard start else { return }
        Task {
            repeat {
                // Best effort: the other instances poll every second anyway.
                _ = try? await client.query("SELECT pg_notify(\(channel), '')", logger: logger)
            } while state.withLock { state -> Bool in
                if state.again {
                    state.again = false
                    return true
                }
                state.inFlight = false
                return false
            }
        }
    }
}
