// PostgreSQL migrations, numbered and never edited once released: add a new one instead. Each is a
// list of statements (the extended protocol runs one at a time), applied in one transaction.
// Keys are compared byte for byte (COLLATE "C"): they are identifiers, not words to sort for people.
enum PostgresSchema {
    static let migrations: [(name: String, statements: [String])] = [
        ("001-incidents-reports-audit-timers-outbox", [
            "CREATE SEQUENCE incident_numbers",
            """
            CREATE TABLE incidents (
              id TEXT COLLATE "C" PRIMARY KEY,
              number BIGINT NOT NULL UNIQUE,
              type TEXT NOT NULL,
              severity TEXT NOT NULL,
              site TEXT NOT NULL,
              playbook TEXT NOT NULL,
              playbook_version TEXT NOT NULL,
              phase TEXT NOT NULL,
              reported_at TIMESTAMPTZ NOT NULL,
              report_count BIGINT NOT NULL,
              group_key_hash TEXT COLLATE "C",
              group_until TIMESTAMPTZ,
              state BYTEA NOT NULL,
              summary TEXT NOT NULL,
              subject TEXT,
              updated_at TIMESTAMPTZ NOT NULL
            )
            """,
            "CREATE INDEX incidents_open_groups ON incidents (group_key_hash) WHERE group_key_hash IS NOT NULL AND phase <> 'resolved'",
            "CREATE INDEX incidents_by_site ON incidents (site, number)",
            "CREATE INDEX incidents_by_phase ON incidents (phase, number)",
            """
            CREATE TABLE reports (
              id BIGSERIAL PRIMARY KEY,
              incident_id TEXT COLLATE "C" NOT NULL REFERENCES incidents (id),
              idempotency_key TEXT COLLATE "C" UNIQUE,
              received_at TIMESTAMPTZ NOT NULL,
              reporter TEXT NOT NULL,
              type TEXT NOT NULL,
              severity TEXT NOT NULL,
              site TEXT NOT NULL,
              flags TEXT NOT NULL,
              summary TEXT NOT NULL,
              subject TEXT
            )
            """,
            "CREATE INDEX reports_by_incident ON reports (incident_id)",
            """
            CREATE TABLE audit_entries (
              incident_id TEXT COLLATE "C" NOT NULL,
              sequence BIGINT NOT NULL,
              at TIMESTAMPTZ NOT NULL,
              actor TEXT NOT NULL,
              action TEXT NOT NULL,
              body BYTEA NOT NULL,
              sensitive TEXT,
              PRIMARY KEY (incident_id, sequence)
            )
            """,
            """
            CREATE FUNCTION muster_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              RAISE EXCEPTION 'audit entries are append-only: % refused', TG_OP;
            END
            $$
            """,
            """
            CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
              FOR EACH ROW EXECUTE FUNCTION muster_audit_append_only()
            """,
            """
            CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
              FOR EACH STATEMENT EXECUTE FUNCTION muster_audit_append_only()
            """,
            """
            CREATE TABLE timers (
              incident_id TEXT COLLATE "C" NOT NULL,
              key TEXT COLLATE "C" NOT NULL,
              due_at TIMESTAMPTZ NOT NULL,
              claimed_by TEXT,
              lease_until TIMESTAMPTZ,
              PRIMARY KEY (incident_id, key)
            )
            """,
            "CREATE INDEX timers_by_due ON timers (due_at)",
            """
            CREATE TABLE outbox (
              id TEXT COLLATE "C" PRIMARY KEY,
              incident_id TEXT COLLATE "C" NOT NULL,
              channel TEXT NOT NULL,
              notification BYTEA NOT NULL,
              status TEXT NOT NULL DEFAULT 'queued',
              attempts INT NOT NULL DEFAULT 0,
              next_attempt_at TIMESTAMPTZ NOT NULL,
              claimed_by TEXT,
              lease_until TIMESTAMPTZ,
              created_at TIMESTAMPTZ NOT NULL,
              finished_at TIMESTAMPTZ,
              receipt TEXT,
              last_error TEXT
            )
            """,
            "CREATE INDEX outbox_ready ON outbox (next_attempt_at) WHERE status = 'queued'",
            """
            CREATE TABLE delivery_attempts (
              id BIGSERIAL PRIMARY KEY,
              notification_id TEXT COLLATE "C" NOT NULL,
              attempt INT NOT NULL,
              at TIMESTAMPTZ NOT NULL,
              outcome TEXT NOT NULL,
              detail TEXT
            )
            """,
            "CREATE INDEX delivery_attempts_by_notification ON delivery_attempts (notification_id)",
        ]),
        ("002-users-api-tokens", [
            """
            CREATE TABLE users (
              id TEXT COLLATE "C" PRIMARY KEY,
              name TEXT NOT NULL,
              role TEXT NOT NULL,
              sites TEXT NOT NULL,
              created_at TIMESTAMPTZ NOT NULL
            )
            """,
            """
            CREATE TABLE api_tokens (
              id TEXT COLLATE "C" PRIMARY KEY,
              user_id TEXT COLLATE "C" NOT NULL REFERENCES users (id),
              label TEXT NOT NULL,
              token_hash TEXT COLLATE "C" NOT NULL UNIQUE,
              created_at TIMESTAMPTZ NOT NULL,
              revoked_at TIMESTAMPTZ
            )
            """,
            "CREATE INDEX reports_by_reporter ON reports (reporter, incident_id)",
        ]),
        // The timer worker asks for the next moment any timer can be claimed after every commit:
        // claimed timers (few at any time) get an index of their own, so that is two index probes, not a scan.
        ("003-claimed-timers-index", [
            "CREATE INDEX timers_claimed ON timers (lease_until) WHERE claimed_by IS NOT NULL",
        ]),
        // The transparency log (docs/audit.md) and sealed student text. Text columns written before
        // this migration keep their clear text; new rows leave them empty and fill the sealed ones.
        ("004-transparency-log-sealed-text", [
            """
            ALTER TABLE incidents ADD COLUMN summary_sealed BYTEA, ADD COLUMN subject_sealed BYTEA,
              ADD COLUMN audit_head BYTEA, ADD COLUMN purged_at TIMESTAMPTZ
            """,
            "ALTER TABLE reports ADD COLUMN summary_sealed BYTEA, ADD COLUMN subject_sealed BYTEA",
            "ALTER TABLE audit_entries ADD COLUMN leaf_hash BYTEA",
            // Wrapped data keys: the one table rows are deleted from (a retention purge), then vacuumed.
            "CREATE TABLE incident_keys (incident_id TEXT COLLATE \"C\" PRIMARY KEY, wrapped BYTEA NOT NULL)",
            // Entries committed but not yet in the tree: the sequencer takes them in batches.
            """
            CREATE TABLE audit_pending (
              id BIGSERIAL PRIMARY KEY,
              incident_id TEXT COLLATE "C" NOT NULL,
              sequence BIGINT NOT NULL,
              leaf_hash BYTEA NOT NULL,
              committed_at TIMESTAMPTZ NOT NULL
            )
            """,
            """
            CREATE TABLE audit_log (
              log_index BIGINT PRIMARY KEY,
              incident_id TEXT COLLATE "C" NOT NULL,
              sequence BIGINT NOT NULL,
              leaf_hash BYTEA NOT NULL,
              UNIQUE (incident_id, sequence)
            )
            """,
            // Go tlog's dense layout: every hash of the tree, by stored-hash index.
            "CREATE TABLE audit_tree (stored_index BIGINT PRIMARY KEY, hash BYTEA NOT NULL)",
            "CREATE TABLE audit_checkpoints (size BIGINT PRIMARY KEY, note TEXT NOT NULL, signed_at TIMESTAMPTZ NOT NULL)",
        ] + ["audit_log", "audit_tree", "audit_checkpoints"].flatMap { table in [
            "CREATE TRIGGER \(table)_append_only BEFORE UPDATE OR DELETE ON \(table) FOR EACH ROW EXECUTE FUNCTION muster_audit_append_only()",
            "CREATE TRIGGER \(table)_no_truncate BEFORE TRUNCATE ON \(table) FOR EACH STATEMENT EXECUTE FUNCTION muster_audit_append_only()",
        ] } + [
            // Entries written before the log existed join it too, in the order they were written.
            """
            INSERT INTO audit_pending (incident_id, sequence, leaf_hash, committed_at)
            SELECT incident_id, sequence, sha256('\\x00'::bytea || body), at FROM audit_entries ORDER BY at, incident_id, sequence
            """,
        ]),
        // Cancelling an incident's queued pages (acknowledged, resolved) looked through every queued
        // notification of every incident: each commit slowed as the outbox grew.
        ("005-queued-outbox-by-incident", [
            "CREATE INDEX outbox_queued_by_incident ON outbox (incident_id) WHERE status = 'queued'",
        ]),
        // Incident rows change on every step, receipt and acknowledgement, and outbox rows on every
        // claim. With room left on each page, a change that touches no indexed column stays on the
        // page (a heap-only tuple): no new entry in each of the table's indexes. New pages only.
        ("006-room-for-in-place-updates", [
            "ALTER TABLE incidents SET (fillfactor = 70)",
            "ALTER TABLE outbox SET (fillfactor = 70)",
        ]),
        // An incident's last audit entry (its sequence and the chain's head), read with a snapshot of its
        // own: receipts add entries without rewriting the incident's row, and a commit that waited for the
        // row's lock must see the entries the commit before it added (VOLATILE: a fresh snapshot per query).
        ("007-last-audit-entry", [
            """
            CREATE FUNCTION muster_last_audit_entry(incident TEXT, OUT last_sequence BIGINT, OUT last_head BYTEA)
            VOLATILE LANGUAGE plpgsql AS $$
            BEGIN
              SELECT e.sequence, COALESCE(e.leaf_hash, sha256('\\x00'::bytea || e.body)) INTO last_sequence, last_head
              FROM audit_entries e WHERE e.incident_id = incident ORDER BY e.sequence DESC LIMIT 1;
            END
            $$
            """,
        ]),
        // Each inbound message (an SMS reply, by its MessageSid) is taken once: a signed request
        // replayed later changes nothing. Kept for good: a provider's signature has no expiry.
        ("008-inbound-messages", [
            "CREATE TABLE inbound_messages (message_id TEXT PRIMARY KEY, incident_id TEXT, received_at TIMESTAMPTZ NOT NULL)",
        ]),
        // When more is due than can go at once (a provider back after an outage, a wave of reports),
        // pages go first, the most severe and newest step first: the claim reads this order off an index.
        ("009-outbox-priority", [
            "ALTER TABLE outbox ADD COLUMN priority INT NOT NULL DEFAULT 0",
            "CREATE INDEX outbox_claim_order ON outbox (priority DESC, next_attempt_at) WHERE status = 'queued'",
        ]),
        // Every playbook file as loaded, by version: an incident runs the version it started with,
        // whatever reloads and restarts change meanwhile.
        ("010-kept-playbooks", [
            "CREATE TABLE kept_playbooks (version TEXT PRIMARY KEY, playbook_id TEXT NOT NULL, file TEXT NOT NULL, source TEXT NOT NULL, kept_at TIMESTAMPTZ NOT NULL)",
        ]),
        // Web sign-in: a bcrypt hash per account, and sessions and one-time links by their SHA-256 only.
        ("011-web-sign-in", [
            "ALTER TABLE users ADD COLUMN password_hash TEXT",
            """
            CREATE TABLE web_credentials (
              hash TEXT COLLATE "C" PRIMARY KEY,
              kind TEXT NOT NULL,
              user_id TEXT COLLATE "C" NOT NULL REFERENCES users (id),
              created_at TIMESTAMPTZ NOT NULL,
              expires_at TIMESTAMPTZ NOT NULL,
              ended_at TIMESTAMPTZ
            )
            """,
            "CREATE INDEX web_credentials_by_user ON web_credentials (user_id) WHERE ended_at IS NULL",
        ]),
        // Grouping keys were unkeyed SHA-256 of a student reference, kept for ever: they are keyed now
        // (MasterKey.groupKeyMAC) and cleared at resolution. The old ones go; an open incident's group
        // takes no new reports for the rest of its window.
        ("012-keyed-group-keys", [
            "UPDATE incidents SET group_key_hash = NULL",
        ]),
        // Data keys are wrapped under key generations (KeyRing): a purge re-wraps the live keys under a
        // new generation and destroys the old generation's secret, so it never rewrites a table that
        // commits read. Secrets live in a table of their own that only key loads read. Keys written
        // before this (generation NULL, wrapped by the master key itself) need the key table rewritten
        // once after the first purge that rewraps them (`key_table_rewrite_pending`).
        ("013-key-generations", [
            "CREATE TABLE key_generations (generation BIGINT PRIMARY KEY, retiring BOOLEAN NOT NULL DEFAULT false, created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            "CREATE TABLE key_generation_secrets (generation BIGINT PRIMARY KEY, secret BYTEA NOT NULL)",
            "ALTER TABLE incident_keys ADD COLUMN generation BIGINT REFERENCES key_generations (generation)",
            "CREATE INDEX incident_keys_by_generation ON incident_keys (generation)",
            "CREATE TABLE key_table_rewrite_pending (since TIMESTAMPTZ NOT NULL)",
            "INSERT INTO key_table_rewrite_pending SELECT now() WHERE EXISTS (SELECT 1 FROM incident_keys)",
            // An instance that has not yet seen a purge's new generation is refused, reloads and retries. An
            // instance of the version before (a rolling upgrade) still stores keys under the master key:
            // taken, and the key table is owed its one rewrite again.
            """
            CREATE FUNCTION muster_refuse_retiring_generation() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.generation IS NULL THEN
                INSERT INTO key_table_rewrite_pending SELECT now() WHERE NOT EXISTS (SELECT 1 FROM key_table_rewrite_pending);
                RETURN NEW;
              END IF;
              IF EXISTS (SELECT 1 FROM key_generations WHERE generation = NEW.generation AND retiring) THEN
                RAISE EXCEPTION 'data keys are no longer wrapped under key generation %', NEW.generation USING ERRCODE = 'MK001';
              END IF;
              RETURN NEW;
            END $$
            """,
            "CREATE TRIGGER incident_keys_current_generation BEFORE INSERT ON incident_keys FOR EACH ROW EXECUTE FUNCTION muster_refuse_retiring_generation()",
        ]),
        // A report's flags ("family may be the source of harm") are sealed like its text. Rows from
        // before keep them in clear until their incident is purged.
        ("014-sealed-report-flags", [
            "ALTER TABLE reports ADD COLUMN flags_sealed BYTEA",
        ]),
    ]
}
