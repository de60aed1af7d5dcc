-- Device and gateway credentials for the embedded MQTT endpoint. Only the keyed BLAKE3 hash of a
-- secret is kept; the key is the site's own (one row). A revoked credential stays, for the audit.
CREATE TABLE credentials (
    username    TEXT PRIMARY KEY NOT NULL,
    secret_hash BLOB NOT NULL,
    allowed     TEXT NOT NULL,        -- JSON array of device id patterns
    created_at  INTEGER NOT NULL,
    rotated_at  INTEGER,
    revoked_at  INTEGER,
    version     INTEGER NOT NULL DEFAULT 1  -- bumped by every change: the endpoint's change counter
);

CREATE TABLE credential_key (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    key BLOB NOT NULL
);
