// A batch's writes in at most two round trips.
//
// The rows it adds go as one prepared statement: a data-modifying CTE per table, fed by arrays
// through unnest, parsed and planned once per connection. Inserts from arrays have one plan, so a
// cached generic plan costs nothing.
//
// The rows it changes (incidents, destroyed keys, fired timers, cancelled pages) go first, and only
// when there are any, as an unnamed statement planned for its arguments each time. A generic plan
// for them is made from the statistics of the moment, often while the tables are nearly empty, and
// then kept: it scanned whole tables on every commit as they grew. Going first, they see the rows as
// they were before this batch, as one statement would: a page queued in this batch is not cancelled.
//
// Parameters are named in the SQL (`{reports.received_at}`) and bound from one row type per table
// (`ReportRows`, …), whose arrays carry the values by the same names. Arrays carry no NULLs: an empty
// string or byte string (or `absent`, for instants) stands for one.
import Foundation
import MusterAudit
import MusterCore
import NIOCore
import PostgresNIO

/// A value a named parameter takes: one array per column, or a single instant.
typealias ParameterValue = any PostgresNonThrowingEncodable & Sendable

/// SQL whose parameters are named `{name}`: each name becomes `$n` in the order it first appears, and
/// the bindings are appended in that order from the values given by name.
struct NamedParameters: Sendable {
    let sql: String
    let names: [String]

    init(_ template: String) {
        var sql = "", names: [String] = [], rest = Substring(template)
        while let open = rest.firstIndex(of: "{"), let close = rest[open...].firstIndex(of: "}") {
            let name = String(rest[rest.index(after: open)..<close])
            if !names.contains(name) { names.append(name) }
            sql += rest[..<open] + "$\((names.firstIndex(of: name) ?? 0) + 1)"
            rest = rest[rest.index(after: close)...]
        }
        self.sql = sql + rest
        self.names = names
    }

    /// The bindings for `values`; a name the SQL uses and `values` lacks is a fault in this file, named in the error.
    func bindings(_ values: [String: ParameterValue]) throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: names.count)
        for name in names {
            guard let value = values[name] else { throw MissingParameter(name: name) }
            bindings.append(value)
        }
        return bindings
    }

    struct MissingParameter: Error, CustomStringConvertible {
        var name: String
        var description: String { "the batch statement names {\(name)}, which no row type binds" }
    }
}

/// Incidents to insert or update, with their wrapped data keys.
struct IncidentRows {
    var id: [String] = [], number: [Int64] = [], type: [String] = [], severity: [String] = [], site: [String] = []
    var playbook: [String] = [], playbookVersion: [String] = [], phase: [String] = [], reportedAt: [Date] = [], reportCount: [Int64] = []
    var groupKeyHash: [String] = [], groupUntil: [Date] = [], state: [ByteBuffer] = []
    var summarySealed: [ByteBuffer] = [], subjectSealed: [ByteBuffer] = [], auditHead: [ByteBuffer] = [], wrappedKey: [ByteBuffer] = []
    var keyGeneration: [Int64] = []

    var isEmpty: Bool { id.isEmpty }

    mutating func append(_ write: IncidentWrite, masterKey: MasterKey, keys: KeyRing, absent: Date) throws {
        let state = write.state, incident = state.incident
        id.append(incident.id.rawValue)
        number.append(Int64(incident.number))
        type.append(incident.type.rawValue)
        severity.append(incident.severity.rawValue)
        site.append(incident.site.rawValue)
        playbook.append(state.playbook.rawValue)
        playbookVersion.append(state.playbookVersion)
        phase.append(state.phase.name)
        reportedAt.append(incident.reportedAt)
        reportCount.append(Int64(state.reportCount))
        groupKeyHash.append(write.groupKeyHash.map(masterKey.groupKeyMAC) ?? "")
        groupUntil.append(write.groupUntil ?? absent)
        self.state.append(ByteBuffer(bytes: StateCodec.encode(state, sealedFlags: write.flagsSealed).bytes))
        summarySealed.append(ByteBuffer(bytes: write.summarySealed ?? []))
        subjectSealed.append(ByteBuffer(bytes: write.subjectSealed ?? []))
        auditHead.append(ByteBuffer(bytes: write.auditHead ?? []))
        let wrapped = try write.dataKey.map { try keys.wrap($0, incident: incident.id) }
        wrappedKey.append(ByteBuffer(bytes: wrapped?.wrapped ?? []))
        keyGeneration.append(wrapped?.generation ?? 0)
    }

    func values(_ table: String) -> [String: ParameterValue] {
        ["\(table).id": id, "\(table).number": number, "\(table).type": type, "\(table).severity": severity, "\(table).site": site,
         "\(table).playbook": playbook, "\(table).playbook_version": playbookVersion, "\(table).phase": phase,
         "\(table).reported_at": reportedAt, "\(table).report_count": reportCount, "\(table).group_key_hash": groupKeyHash,
         "\(table).group_until": groupUntil, "\(table).state": state, "\(table).summary_sealed": summarySealed,
         "\(table).subject_sealed": subjectSealed, "\(table).audit_head": auditHead, "\(table).wrapped_key": wrappedKey,
         "\(table).key_generation": keyGeneration]
    }
}

struct ReportRows {
    var incidentID: [String] = [], idempotencyKey: [String] = [], receivedAt: [Date] = [], reporter: [String] = [], type: [String] = []
    var severity: [String] = [], site: [String] = [], flagsSealed: [ByteBuffer] = [], summarySealed: [ByteBuffer] = [], subjectSealed: [ByteBuffer] = []

    mutating func append(_ write: ReportWrite) {
        let report = write.report
        incidentID.append(write.incident.rawValue)
        idempotencyKey.append(write.idempotencyKey ?? "")
        receivedAt.append(report.receivedAt)
        reporter.append(report.reporter.description)
        type.append(report.type.rawValue)
        severity.append(report.severity.rawValue)
        site.append(report.site.rawValue)
        flagsSealed.append(ByteBuffer(bytes: write.flagsSealed ?? []))
        summarySealed.append(ByteBuffer(bytes: write.summarySealed))
        subjectSealed.append(ByteBuffer(bytes: write.subjectSealed ?? []))
    }

    var values: [String: ParameterValue] {
        ["reports.incident_id": incidentID, "reports.idempotency_key": idempotencyKey, "reports.received_at": receivedAt,
         "reports.reporter": reporter, "reports.type": type, "reports.severity": severity, "reports.site": site, "reports.flags_sealed": flagsSealed,
         "reports.summary_sealed": summarySealed, "reports.subject_sealed": subjectSealed]
    }
}

struct AuditEntryRows {
    var incidentID: [String] = [], sequence: [Int64] = [], at: [Date] = [], actor: [String] = [], action: [String] = []
    var body: [ByteBuffer] = [], leafHash: [ByteBuffer] = []

    mutating func append(_ write: AuditWrite) {
        incidentID.append(write.incident.rawValue)
        sequence.append(Int64(write.record.sequence))
        at.append(write.record.at)
        actor.append(write.record.actor.description)
        action.append(write.record.action.rawValue)
        body.append(ByteBuffer(bytes: write.body))
        leafHash.append(ByteBuffer(bytes: write.leafHash))
    }

    var values: [String: ParameterValue] {
        ["audit_entries.incident_id": incidentID, "audit_entries.sequence": sequence, "audit_entries.at": at,
         "audit_entries.actor": actor, "audit_entries.action": action, "audit_entries.body": body, "audit_entries.leaf_hash": leafHash]
    }
}

/// Timer rows to insert or move, or (for `BatchChanges`) to delete.
struct TimerRows {
    var incidentID: [String] = [], key: [String] = [], dueAt: [Date] = []

    var isEmpty: Bool { incidentID.isEmpty }

    mutating func append(_ row: TimerRowKey, due: Date? = nil) {
        incidentID.append(row.incident.rawValue)
        key.append(row.key.description)
        if let due { dueAt.append(due) }
    }

    func values(_ table: String) -> [String: ParameterValue] {
        ["\(table).incident_id": incidentID, "\(table).key": key, "\(table).due_at": dueAt]
    }
}

struct OutboxRows {
    var id: [String] = [], incidentID: [String] = [], channel: [String] = [], notification: [ByteBuffer] = [], priority: [Int32] = []

    mutating func append(_ queued: QueuedNotification) {
        id.append(queued.id.description)
        incidentID.append(queued.incident.rawValue)
        channel.append(queued.channel.rawValue)
        notification.append(ByteBuffer(bytes: BinaryCodec.encode(queued)))
        priority.append(Int32(queued.deliveryPriority))
    }

    var values: [String: ParameterValue] {
        ["outbox.id": id, "outbox.incident_id": incidentID, "outbox.channel": channel, "outbox.notification": notification,
         "outbox.priority": priority]
    }
}

struct BatchInsertStatement: PostgresPreparedStatement {
    static let name = "muster_batch_insert_v3"

    static let parameters = NamedParameters("""
        WITH new_incidents AS (
          INSERT INTO incidents (id, number, type, severity, site, playbook, playbook_version, phase, reported_at, report_count,
            group_key_hash, group_until, state, summary, subject, summary_sealed, subject_sealed, audit_head, updated_at)
          SELECT id, number, type, severity, site, playbook, version, phase, reported_at, report_count,
            NULLIF(group_key_hash, ''), NULLIF(group_until, {absent}), state, '', NULL, summary_sealed, NULLIF(subject_sealed, ''::bytea),
            NULLIF(audit_head, ''::bytea), {now}
          FROM unnest({incidents.id}::text[], {incidents.number}::int8[], {incidents.type}::text[], {incidents.severity}::text[],
            {incidents.site}::text[], {incidents.playbook}::text[], {incidents.playbook_version}::text[], {incidents.phase}::text[],
            {incidents.reported_at}::timestamptz[], {incidents.report_count}::int8[], {incidents.group_key_hash}::text[],
            {incidents.group_until}::timestamptz[], {incidents.state}::bytea[], {incidents.summary_sealed}::bytea[],
            {incidents.subject_sealed}::bytea[], {incidents.audit_head}::bytea[])
            AS u(id, number, type, severity, site, playbook, version, phase, reported_at, report_count, group_key_hash, group_until,
                 state, summary_sealed, subject_sealed, audit_head)
        ), new_keys AS (
          INSERT INTO incident_keys (incident_id, wrapped, generation)
          SELECT * FROM unnest({incidents.id}::text[], {incidents.wrapped_key}::bytea[], {incidents.key_generation}::int8[])
        ), new_reports AS (
          INSERT INTO reports (incident_id, idempotency_key, received_at, reporter, type, severity, site, flags, summary, subject,
            summary_sealed, subject_sealed, flags_sealed)
          SELECT incident_id, NULLIF(idempotency_key, ''), received_at, reporter, type, severity, site, '', '', NULL,
            summary_sealed, NULLIF(subject_sealed, ''::bytea), NULLIF(flags_sealed, ''::bytea)
          FROM unnest({reports.incident_id}::text[], {reports.idempotency_key}::text[], {reports.received_at}::timestamptz[],
            {reports.reporter}::text[], {reports.type}::text[], {reports.severity}::text[], {reports.site}::text[], {reports.flags_sealed}::bytea[],
            {reports.summary_sealed}::bytea[], {reports.subject_sealed}::bytea[])
            AS u(incident_id, idempotency_key, received_at, reporter, type, severity, site, flags_sealed, summary_sealed, subject_sealed)
        ), new_audit_entries AS (
          INSERT INTO audit_entries (incident_id, sequence, at, actor, action, body, leaf_hash)
          SELECT * FROM unnest({audit_entries.incident_id}::text[], {audit_entries.sequence}::int8[], {audit_entries.at}::timestamptz[],
            {audit_entries.actor}::text[], {audit_entries.action}::text[], {audit_entries.body}::bytea[], {audit_entries.leaf_hash}::bytea[])
        ), pending_audit_entries AS (
          INSERT INTO audit_pending (incident_id, sequence, leaf_hash, committed_at)
          SELECT incident_id, sequence, leaf_hash, {now}
          FROM unnest({audit_entries.incident_id}::text[], {audit_entries.sequence}::int8[], {audit_entries.leaf_hash}::bytea[])
            AS u(incident_id, sequence, leaf_hash)
        ), scheduled_timers AS (
          INSERT INTO timers (incident_id, key, due_at)
          SELECT * FROM unnest({timers.incident_id}::text[], {timers.key}::text[], {timers.due_at}::timestamptz[])
          ON CONFLICT (incident_id, key) DO UPDATE SET due_at = EXCLUDED.due_at, claimed_by = NULL, lease_until = NULL
        )
        INSERT INTO outbox (id, incident_id, channel, notification, next_attempt_at, created_at, priority)
        SELECT id, incident_id, channel, notification, {now}, {now}, priority
        FROM unnest({outbox.id}::text[], {outbox.incident_id}::text[], {outbox.channel}::text[], {outbox.notification}::bytea[],
          {outbox.priority}::int4[])
          AS u(id, incident_id, channel, notification, priority)
        ON CONFLICT (id) DO NOTHING
        """)

    static var sql: String { parameters.sql }

    typealias Row = Void

    var incidents: IncidentRows
    var reports: ReportRows
    var audits: AuditEntryRows
    var timers: TimerRows
    var outbox: OutboxRows
    var absent: Date
    var now: Date

    func makeBindings() throws -> PostgresBindings {
        var values: [String: ParameterValue] = ["absent": absent, "now": now]
        for table in [incidents.values("incidents"), reports.values, audits.values, timers.values("timers"), outbox.values] {
            values.merge(table) { first, _ in first }
        }
        return try Self.parameters.bindings(values)
    }

    func decodeRow(_ row: PostgresRow) throws -> Void {}
}

/// The rows a batch changes or removes; `query()` is nil when it changes none.
struct BatchChanges {
    var changed: IncidentRows
    var purged: [String]
    var now: Date
    var removedTimers: TimerRows
    /// Incidents whose queued pages are cancelled (acknowledged), and whose every queued notification is (resolved).
    var cancelPages: [String]
    var cancelAll: [String]

    static let parameters = NamedParameters("""
        WITH changed_incidents AS (
          UPDATE incidents AS i SET severity = u.severity, phase = u.phase, report_count = u.report_count, state = u.state,
            audit_head = COALESCE(NULLIF(u.audit_head, ''::bytea), i.audit_head),
            purged_at = CASE WHEN u.id = ANY({purged}::text[]) THEN {now} ELSE i.purged_at END, updated_at = {now},
            group_key_hash = CASE WHEN u.phase = 'resolved' THEN NULL ELSE i.group_key_hash END
          FROM unnest({incidents.id}::text[], {incidents.severity}::text[], {incidents.phase}::text[], {incidents.report_count}::int8[],
            {incidents.state}::bytea[], {incidents.audit_head}::bytea[])
            AS u(id, severity, phase, report_count, state, audit_head)
          WHERE i.id = ANY({incidents.id}::text[]) AND i.id = u.id
        ), destroyed_keys AS (
          DELETE FROM incident_keys WHERE incident_id = ANY({purged}::text[])
        ), cleared_attempts AS (
          -- Providers' own words (a phone number in an error) go with the student's text.
          UPDATE delivery_attempts SET detail = NULL
          WHERE notification_id IN (SELECT id FROM outbox WHERE incident_id = ANY({purged}::text[]))
        ), cleared_outbox AS (
          UPDATE outbox SET last_error = NULL, receipt = NULL WHERE incident_id = ANY({purged}::text[])
        ), cleared_report_flags AS (
          -- Reports from before flags were sealed kept them in clear.
          UPDATE reports SET flags = '' WHERE incident_id = ANY({purged}::text[]) AND flags <> ''
        ), removed_timers AS (
          DELETE FROM timers AS t USING unnest({removed_timers.incident_id}::text[], {removed_timers.key}::text[]) AS d(incident_id, key)
          WHERE t.incident_id = ANY({removed_timers.incident_id}::text[]) AND t.incident_id = d.incident_id AND t.key = d.key
        )
        UPDATE outbox SET status = 'cancelled', finished_at = {now}
        WHERE status = 'queued' AND incident_id = ANY({cancel_pages}::text[] || {cancel_all}::text[])
          AND (incident_id = ANY({cancel_all}::text[]) OR id LIKE '%/page/%' OR id LIKE '%/fallback/%')
        """)

    func query() throws -> PostgresQuery? {
        guard !changed.isEmpty || !purged.isEmpty || !removedTimers.isEmpty || !cancelPages.isEmpty || !cancelAll.isEmpty else { return nil }
        var values = changed.values("incidents").merging(removedTimers.values("removed_timers")) { first, _ in first }
        values["purged"] = purged
        values["now"] = now
        values["cancel_pages"] = cancelPages
        values["cancel_all"] = cancelAll
        return PostgresQuery(unsafeSQL: Self.parameters.sql, binds: try Self.parameters.bindings(values))
    }
}
