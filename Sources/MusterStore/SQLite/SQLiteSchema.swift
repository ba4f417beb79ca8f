// SQLite migrations, numbered and never edited once released: add a new one instead.
import Foundation
import GRDB
import MusterAudit

enum SQLiteSchema {
    static let migrations: [(name: String, sql: String)] = [
        ("001-incidents-reports-audit-timers-outbox", """
        CREATE TABLE incidents (
          id TEXT PRIMARY KEY,
          number INTEGER NOT NULL UNIQUE,
          type TEXT NOT NULL,
          severity TEXT NOT NULL,
          site TEXT NOT NULL,
          playbook TEXT NOT NULL,
          playbook_version TEXT NOT NULL,
          phase TEXT NOT NULL,
          reported_at INTEGER NOT NULL,
          report_count INTEGER NOT NULL,
          group_key_hash TEXT,
          group_until INTEGER,
          state BLOB NOT NULL,
          summary TEXT NOT NULL,
          subject TEXT,
          updated_at INTEGER NOT NULL
        );
        CREATE INDEX incidents_open_groups ON incidents (group_key_hash) WHERE group_key_hash IS NOT NULL AND phase <> 'resolved';
        CREATE INDEX incidents_by_site ON incidents (site, number);
        CREATE INDEX incidents_by_phase ON incidents (phase, number);
        CREATE TABLE reports (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          incident_id TEXT NOT NULL REFERENCES incidents (id),
          idempotency_key TEXT UNIQUE,
          received_at INTEGER NOT NULL,
          reporter TEXT NOT NULL,
          type TEXT NOT NULL,
          severity TEXT NOT NULL,
          site TEXT NOT NULL,
          flags TEXT NOT NULL,
          summary TEXT NOT NULL,
          subject TEXT
        );
        CREATE INDEX reports_by_incident ON reports (incident_id);
        CREATE TABLE audit_entries (
          incident_id TEXT NOT NULL,
          sequence INTEGER NOT NULL,
          at INTEGER NOT NULL,
          actor TEXT NOT NULL,
          action TEXT NOT NULL,
          body BLOB NOT NULL,
          sensitive TEXT,
          PRIMARY KEY (incident_id, sequence)
        ) WITHOUT ROWID;
        CREATE TRIGGER audit_entries_append_only_update BEFORE UPDATE ON audit_entries
          BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
        CREATE TRIGGER audit_entries_append_only_delete BEFORE DELETE ON audit_entries
          BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END;
        CREATE TABLE timers (
          incident_id TEXT NOT NULL,
          key TEXT NOT NULL,
          due_at INTEGER NOT NULL,
          claimed_by TEXT,
          lease_until INTEGER,
          PRIMARY KEY (incident_id, key)
        );
        CREATE INDEX timers_by_due ON timers (due_at);
        CREATE TABLE outbox (
          id TEXT PRIMARY KEY,
          incident_id TEXT NOT NULL,
          channel TEXT NOT NULL,
          notification BLOB NOT NULL,
          status TEXT NOT NULL DEFAULT 'queued',
          attempts INTEGER NOT NULL DEFAULT 0,
          next_attempt_at INTEGER NOT NULL,
          claimed_by TEXT,
          lease_until INTEGER,
          created_at INTEGER NOT NULL,
          finished_at INTEGER,
          receipt TEXT,
          last_error TEXT
        );
        CREATE INDEX outbox_ready ON outbox (status, next_attempt_at);
        CREATE TABLE delivery_attempts (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          notification_id TEXT NOT NULL,
          attempt INTEGER NOT NULL,
          at INTEGER NOT NULL,
          outcome TEXT NOT NULL,
          detail TEXT
        );
        CREATE INDEX delivery_attempts_by_notification ON delivery_attempts (notification_id);
        """),
        ("002-users-api-tokens", """
        CREATE TABLE users (
          id TEXT PRIMARY KEY,
          name TEXT NOT NULL,
          role TEXT NOT NULL,
          sites TEXT NOT NULL,
          created_at INTEGER NOT NULL
        );
        CREATE TABLE api_tokens (
          id TEXT PRIMARY KEY,
          user_id TEXT NOT NULL REFERENCES users (id),
          label TEXT NOT NULL,
          token_hash TEXT NOT NULL UNIQUE,
          created_at INTEGER NOT NULL,
          revoked_at INTEGER
        );
        CREATE INDEX reports_by_reporter ON reports (reporter, incident_id);
        """),
        // The transparency log (docs/audit.md) and sealed student text; as PostgreSQL's 004.
        ("003-transparency-log-sealed-text", """
        ALTER TABLE incidents ADD COLUMN summary_sealed BLOB;
        ALTER TABLE incidents ADD COLUMN subject_sealed BLOB;
        ALTER TABLE incidents ADD COLUMN audit_head BLOB;
        ALTER TABLE incidents ADD COLUMN purged_at INTEGER;
        ALTER TABLE reports ADD COLUMN summary_sealed BLOB;
        ALTER TABLE reports ADD COLUMN subject_sealed BLOB;
        ALTER TABLE audit_entries ADD COLUMN leaf_hash BLOB;
        CREATE TABLE incident_keys (incident_id TEXT PRIMARY KEY, wrapped BLOB NOT NULL);
        CREATE TABLE audit_pending (
          id INTEGER PRIMARY KEY AUTOINCREMENT,
          incident_id TEXT NOT NULL,
          sequence INTEGER NOT NULL,
          leaf_hash BLOB NOT NULL,
          committed_at INTEGER NOT NULL
        );
        CREATE TABLE audit_log (
          log_index INTEGER PRIMARY KEY,
          incident_id TEXT NOT NULL,
          sequence INTEGER NOT NULL,
          leaf_hash BLOB NOT NULL,
          UNIQUE (incident_id, sequence)
        );
        CREATE TABLE audit_tree (stored_index INTEGER PRIMARY KEY, hash BLOB NOT NULL);
        CREATE TABLE audit_checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL, signed_at INTEGER NOT NULL);
        """ + ["audit_log", "audit_tree", "audit_checkpoints"].map { table in """
        CREATE TRIGGER \(table)_append_only_update BEFORE UPDATE ON \(table) BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER \(table)_append_only_delete BEFORE DELETE ON \(table) BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

        """ }.joined()),
        // Cancelling an incident's queued pages finds them by incident, not by a scan of the queue.
        ("004-queued-outbox-by-incident", """
        CREATE INDEX outbox_queued_by_incident ON outbox (incident_id) WHERE status = 'queued';
        """),
        // Each inbound message (an SMS reply, by its MessageSid) is taken once: a signed request
        // replayed later changes nothing. Kept for good: a provider's signature has no expiry.
        ("005-inbound-messages", """
        CREATE TABLE inbound_messages (
          message_id TEXT PRIMARY KEY,
          incident_id TEXT,
          received_at INTEGER NOT NULL
        );
        """),
        // When more is due than can go at once (a provider back after an outage, a wave of reports),
        // pages go first, the most severe and newest step first: the claim reads this order off an index.
        ("006-outbox-priority", """
        ALTER TABLE outbox ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX outbox_claim_order ON outbox (priority DESC, next_attempt_at) WHERE status = 'queued';
        """),
        // Every playbook file as loaded, by version: an incident runs the version it started with,
        // whatever reloads and restarts change meanwhile.
        ("007-kept-playbooks", """
        CREATE TABLE kept_playbooks (
          version TEXT PRIMARY KEY,
          playbook_id TEXT NOT NULL,
          file TEXT NOT NULL,
          source TEXT NOT NULL,
          kept_at INTEGER NOT NULL
        );
        """),
        // Web sign-in: a bcrypt hash per account, and sessions and one-time links by their SHA-256 only.
        ("008-web-sign-in", """
        ALTER TABLE users ADD COLUMN password_hash TEXT;
        CREATE TABLE web_credentials (
          hash TEXT PRIMARY KEY,
          kind TEXT NOT NULL,
          user_id TEXT NOT NULL REFERENCES users (id),
          created_at INTEGER NOT NULL,
          expires_at INTEGER NOT NULL,
          ended_at INTEGER
        );
        CREATE INDEX web_credentials_by_user ON web_credentials (user_id) WHERE ended_at IS NULL;
        """),
        // Grouping keys were unkeyed SHA-256 of a student reference, kept for ever: they are keyed now
        // (MasterKey.groupKeyMAC) and cleared at resolution. The old ones go; an open incident's group
        // takes no new reports for the rest of its window.
        ("009-keyed-group-keys", """
        UPDATE incidents SET group_key_hash = NULL;
        """),
        // A report's flags ("family may be the source of harm") are sealed like its text. Rows from
        // before keep them in clear until their incident is purged.
        ("010-sealed-report-flags", """
        ALTER TABLE reports ADD COLUMN flags_sealed BLOB;
        """),
    ]

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for (name, sql) in migrations {
            migrator.registerMigration(name) { db in
                try db.execute(sql: sql)
                if name.hasPrefix("003") { try queueLegacyAuditEntries(db) }
            }
        }
        return migrator
    }

    /// Entries written before the log existed join it too, in the order they were written (SQLite
    /// has no SHA-256 of its own, so their leaf hashes are computed here).
    private static func queueLegacyAuditEntries(_ db: Database) throws {
        let rows = try Row.fetchAll(db, sql: "SELECT incident_id, sequence, body, at FROM audit_entries ORDER BY at, incident_id, sequence")
        for row in rows {
            let body: Data = row[2]
            try db.execute(sql: "INSERT INTO audit_pending (incident_id, sequence, leaf_hash, committed_at) VALUES (?, ?, ?, ?)",
                           arguments: [row[0] as String, row[1] as Int64, Data(MerkleTree.leafHash(body).bytes), row[3] as Int64])
        }
    }

    /// "001-…" is migration 1.
    static func number(_ identifier: String) -> Int? { Int(identifier.prefix(3)) }
}
