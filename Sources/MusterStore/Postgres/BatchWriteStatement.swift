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
// Arrays carry no NULLs: an empty string or byte string (or `absent`, for instants) stands for one.
import Foundation
import NIOCore
import PostgresNIO

struct BatchInsertStatement: PostgresPreparedStatement {
    static let name = "muster_batch_insert_v1"

    static let sql = """
        WITH new_incidents AS (
          INSERT INTO incidents (id, number, type, severity, site, playbook, playbook_version, phase, reported_at, report_count,
            group_key_hash, group_until, state, summary, subject, summary_sealed, subject_sealed, audit_head, updated_at)
          SELECT id, number, type, severity, site, playbook, version, phase, reported_at, report_count,
            NULLIF(group_key_hash, ''), NULLIF(group_until, $18), state, '', NULL, summary_sealed, NULLIF(subject_sealed, ''::bytea),
            NULLIF(audit_head, ''::bytea), $19
          FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[],
            $10::int8[], $11::text[], $12::timestamptz[], $13::bytea[], $14::bytea[], $15::bytea[], $16::bytea[])
            AS u(id, number, type, severity, site, playbook, version, phase, reported_at, report_count, group_key_hash, group_until,
                 state, summary_sealed, subject_sealed, audit_head)
        ), new_keys AS (
          INSERT INTO incident_keys (incident_id, wrapped) SELECT * FROM unnest($1::text[], $17::bytea[])
        ), new_reports AS (
          INSERT INTO reports (incident_id, idempotency_key, received_at, reporter, type, severity, site, flags, summary, subject,
            summary_sealed, subject_sealed)
          SELECT incident_id, NULLIF(idempotency_key, ''), received_at, reporter, type, severity, site, flags, '', NULL,
            summary_sealed, NULLIF(subject_sealed, ''::bytea)
          FROM unnest($20::text[], $21::text[], $22::timestamptz[], $23::text[], $24::text[], $25::text[], $26::text[], $27::text[],
            $28::bytea[], $29::bytea[])
            AS u(incident_id, idempotency_key, received_at, reporter, type, severity, site, flags, summary_sealed, subject_sealed)
        ), new_audit_entries AS (
          INSERT INTO audit_entries (incident_id, sequence, at, actor, action, body, leaf_hash)
          SELECT * FROM unnest($30::text[], $31::int8[], $32::timestamptz[], $33::text[], $34::text[], $35::bytea[], $36::bytea[])
        ), pending_audit_entries AS (
          INSERT INTO audit_pending (incident_id, sequence, leaf_hash, committed_at)
          SELECT incident_id, sequence, leaf_hash, $19 FROM unnest($30::text[], $31::int8[], $36::bytea[]) AS u(incident_id, sequence, leaf_hash)
        ), scheduled_timers AS (
          INSERT INTO timers (incident_id, key, due_at)
          SELECT * FROM unnest($37::text[], $38::text[], $39::timestamptz[])
          ON CONFLICT (incident_id, key) DO UPDATE SET due_at = EXCLUDED.due_at, claimed_by = NULL, lease_until = NULL
        )
        INSERT INTO outbox (id, incident_id, channel, notification, next_attempt_at, created_at)
        SELECT id, incident_id, channel, notification, $19, $19
        FROM unnest($40::text[], $41::text[], $42::text[], $43::bytea[]) AS u(id, incident_id, channel, notification)
        ON CONFLICT (id) DO NOTHING
        """

    typealias Row = Void

    var new: PostgresStore.IncidentColumns
    var absent: Date
    var now: Date
    var reports: ([String], [String], [Date], [String], [String], [String], [String], [String], [ByteBuffer], [ByteBuffer])
    var audits: ([String], [Int64], [Date], [String], [String], [ByteBuffer], [ByteBuffer])
    var upserts: ([String], [String], [Date])
    var outbox: ([String], [String], [String], [ByteBuffer])

    func makeBindings() throws -> PostgresBindings {
        var b = PostgresBindings(capacity: 43)
        b.append(new.ids); b.append(new.numbers); b.append(new.types); b.append(new.severities); b.append(new.sites)
        b.append(new.playbooks); b.append(new.versions); b.append(new.phases); b.append(new.reportedAt); b.append(new.reportCounts)
        b.append(new.groupKeyHashes); b.append(new.groupUntil.map { $0 ?? absent }); b.append(new.states); b.append(new.summariesSealed)
        b.append(new.subjectsSealed); b.append(new.auditHeads); b.append(new.wrappedKeys)
        b.append(absent); b.append(now)
        b.append(reports.0); b.append(reports.1); b.append(reports.2); b.append(reports.3); b.append(reports.4)
        b.append(reports.5); b.append(reports.6); b.append(reports.7); b.append(reports.8); b.append(reports.9)
        b.append(audits.0); b.append(audits.1); b.append(audits.2); b.append(audits.3); b.append(audits.4); b.append(audits.5); b.append(audits.6)
        b.append(upserts.0); b.append(upserts.1); b.append(upserts.2)
        b.append(outbox.0); b.append(outbox.1); b.append(outbox.2); b.append(outbox.3)
        return b
    }

    func decodeRow(_ row: PostgresRow) throws -> Void {}
}

/// The rows a batch changes or removes; `query` is nil when it changes none.
struct BatchChanges {
    var changed: PostgresStore.IncidentColumns
    var purged: [String]
    var now: Date
    var deletes: ([String], [String])
    /// Incidents whose queued pages are cancelled (acknowledged), and whose every queued notification is (resolved).
    var cancelPages: [String]
    var cancelAll: [String]

    var query: PostgresQuery? {
        guard !changed.ids.isEmpty || !purged.isEmpty || !deletes.0.isEmpty || !cancelPages.isEmpty || !cancelAll.isEmpty else { return nil }
        var b = PostgresBindings(capacity: 13)
        b.append(changed.ids); b.append(changed.severities); b.append(changed.phases); b.append(changed.reportCounts)
        b.append(changed.states); b.append(changed.auditHeads); b.append(purged); b.append(now)
        b.append(deletes.0); b.append(deletes.1)
        b.append(cancelPages); b.append(cancelAll)
        return PostgresQuery(unsafeSQL: """
            WITH changed_incidents AS (
              UPDATE incidents AS i SET severity = u.severity, phase = u.phase, report_count = u.report_count, state = u.state,
                audit_head = COALESCE(NULLIF(u.audit_head, ''::bytea), i.audit_head),
                purged_at = CASE WHEN u.id = ANY($7::text[]) THEN $8 ELSE i.purged_at END, updated_at = $8
              FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::bytea[], $6::bytea[])
                AS u(id, severity, phase, report_count, state, audit_head)
              WHERE i.id = ANY($1::text[]) AND i.id = u.id
            ), destroyed_keys AS (
              DELETE FROM incident_keys WHERE incident_id = ANY($7::text[])
            ), removed_timers AS (
              DELETE FROM timers AS t USING unnest($9::text[], $10::text[]) AS d(incident_id, key)
              WHERE t.incident_id = ANY($9::text[]) AND t.incident_id = d.incident_id AND t.key = d.key
            )
            UPDATE outbox SET status = 'cancelled', finished_at = $8
            WHERE status = 'queued' AND incident_id = ANY($11::text[] || $12::text[])
              AND (incident_id = ANY($12::text[]) OR id LIKE '%/page/%' OR id LIKE '%/fallback/%')
            """, binds: b)
    }
}
