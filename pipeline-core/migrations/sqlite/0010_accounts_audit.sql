-- Operator accounts: an argon2 PHC string per password, roles as a comma list. Failed sign-ins in
-- a row and the next allowed attempt make the per-account backoff.
CREATE TABLE accounts (
    name          TEXT PRIMARY KEY NOT NULL,
    password_hash TEXT NOT NULL,
    roles         TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    failures      INTEGER NOT NULL DEFAULT 0,
    retry_after   INTEGER
);

-- Sessions of scripts (tokens) and break-glass: only the BLAKE3 hash of the token is kept.
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY NOT NULL,
    account    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- The limits on silencing one alarm's escalation count silences and minutes.
ALTER TABLE alarms ADD COLUMN silence_count   INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alarms ADD COLUMN silenced_minutes INTEGER NOT NULL DEFAULT 0;

-- The configuration's keys as last started (secrets redacted), to audit what changed.
CREATE TABLE config_snapshot (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    snapshot TEXT NOT NULL
);

-- The audit chain becomes keyed (under audit.key, outside the database). The unkeyed entries move
-- aside; the store re-chains them under the key when it next opens, and notes that it did.
ALTER TABLE audit_log RENAME TO audit_log_unkeyed;

CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    subject   TEXT    NOT NULL,
    detail    TEXT    NOT NULL,
    prev_hash BLOB    NOT NULL,
    hash      BLOB    NOT NULL
);

-- Append-only: no change or removal through SQL. (Someone who drops these triggers is caught by the
-- keyed chain and the checkpoint.)
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: entries cannot be changed'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: entries cannot be removed'); END;
