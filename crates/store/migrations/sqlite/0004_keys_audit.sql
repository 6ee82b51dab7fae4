-- Virtual keys (callers of the API) and admin keys (callers of /admin), stored hashed: `hash` is
-- the hex SHA-256 of the secret part, `prefix` the first characters shown in listings. The
-- secret itself is never stored. `routes`, `limits` and `metadata` hold JSON text.
-- `updated_at_ms` moves on every change so replicas pick up revocations by polling it.
CREATE TABLE IF NOT EXISTS api_keys (
    id            TEXT PRIMARY KEY NOT NULL,
    hash          TEXT NOT NULL,
    prefix        TEXT NOT NULL,
    kind          TEXT NOT NULL,
    role          TEXT,
    team          TEXT,
    product       TEXT,
    name          TEXT,
    routes        TEXT NOT NULL,
    limits        TEXT NOT NULL,
    metadata      TEXT NOT NULL,
    created_by    TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT,
    revoked_at_ms BIGINT
);

CREATE INDEX IF NOT EXISTS api_keys_updated_at ON api_keys (updated_at_ms);
CREATE INDEX IF NOT EXISTS api_keys_team ON api_keys (team);

-- The audit log: who changed what, when, with the state before and after (JSON text without
-- secret values). Append-only: updates and deletes are refused by triggers.
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms  BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    team   TEXT,
    before TEXT,
    after  TEXT
);

CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at_ms);

CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
