-- Vigil store, SQLite. Times are epoch milliseconds (UTC); hashes are 32-byte blake3 digests.

-- Every payload a source received, kept raw before it is acknowledged. `repeats` counts identical
-- payloads received again (a device resend, or an MQTT redelivery after a crash).
CREATE TABLE inbox (
    id           INTEGER PRIMARY KEY,
    payload_hash BLOB    NOT NULL UNIQUE,
    source       TEXT    NOT NULL,
    origin       TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    payload      BLOB    NOT NULL,
    profile_id   TEXT,
    outcome      TEXT    NOT NULL,
    repeats      INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX inbox_received ON inbox (received_at);

-- Identity of every reading that got past identify; a repeat bumps `repeats` and goes no further.
CREATE TABLE dedup_index (
    hash          BLOB    PRIMARY KEY,
    first_seen_at INTEGER NOT NULL,
    repeats       INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

CREATE TABLE devices (
    device_id     TEXT    PRIMARY KEY,
    profile_id    TEXT,
    label         TEXT,
    registered_at INTEGER NOT NULL
);

-- Patients by identifier (system + value) within an organisation. PHI: never logged.
CREATE TABLE patients (
    id           INTEGER PRIMARY KEY,
    organisation TEXT    NOT NULL,
    id_system    TEXT    NOT NULL,
    id_value     TEXT    NOT NULL,
    display_name TEXT,
    verified_at  INTEGER,
    verified_by  TEXT,
    fhir_id      TEXT,
    UNIQUE (organisation, id_system, id_value)
);

-- A device paired with a patient for [valid_from, valid_to); valid_to NULL means open.
CREATE TABLE pairings (
    id         INTEGER PRIMARY KEY,
    device_id  TEXT    NOT NULL REFERENCES devices (device_id),
    patient_id INTEGER NOT NULL REFERENCES patients (id),
    valid_from INTEGER NOT NULL,
    valid_to   INTEGER,
    created_by TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX pairings_device ON pairings (device_id, valid_from);

-- Consent per patient and flow (store, alert, ehr-write). No row means no consent.
CREATE TABLE consents (
    patient_id  INTEGER NOT NULL REFERENCES patients (id),
    flow        TEXT    NOT NULL,
    granted     INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    recorded_by TEXT    NOT NULL,
    PRIMARY KEY (patient_id, flow)
);

-- Raw telemetry: accepted readings in canonical units. Uniqueness of `hash` is enforced by
-- dedup_index; a rowid key keeps inserts appending instead of landing at random B-tree pages.
CREATE TABLE readings (
    id          INTEGER PRIMARY KEY,
    hash        BLOB    NOT NULL,
    inbox_id    INTEGER NOT NULL,
    device_id   TEXT    NOT NULL,
    patient_id  INTEGER NOT NULL,
    mdc_code    INTEGER NOT NULL,
    value       REAL    NOT NULL,
    unit        TEXT    NOT NULL,
    observed_at INTEGER NOT NULL,
    validity    TEXT    NOT NULL
);
CREATE INDEX readings_patient ON readings (patient_id, mdc_code, observed_at);
CREATE INDEX readings_device ON readings (device_id, observed_at);

-- Payloads no profile could read, with the reason; the raw bytes stay in the inbox.
CREATE TABLE rejected (
    id         INTEGER PRIMARY KEY,
    inbox_id   INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    detail     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

-- Readings whose device-patient pairing did not check out: forensic only, never clinical data.
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY,
    inbox_id    INTEGER NOT NULL,
    device_id   TEXT    NOT NULL,
    mdc_code    INTEGER NOT NULL,
    value       REAL    NOT NULL,
    unit        TEXT    NOT NULL,
    observed_at INTEGER NOT NULL,
    reason      TEXT    NOT NULL,
    detail      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX quarantine_device ON quarantine (device_id);

-- Readings held because a consent is missing for a flow; released when consent is recorded.
CREATE TABLE held (
    hash        BLOB    PRIMARY KEY,
    inbox_id    INTEGER NOT NULL,
    device_id   TEXT    NOT NULL,
    patient_id  INTEGER NOT NULL,
    mdc_code    INTEGER NOT NULL,
    value       REAL    NOT NULL,
    unit        TEXT    NOT NULL,
    observed_at INTEGER NOT NULL,
    validity    TEXT    NOT NULL,
    flow        TEXT    NOT NULL,
    reason      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- Bumped by every registry change so a running pipeline knows to reload its cache.
CREATE TABLE registry_generation (id INTEGER PRIMARY KEY CHECK (id = 1), generation INTEGER NOT NULL);
INSERT INTO registry_generation (id, generation) VALUES (1, 0);
CREATE TRIGGER devices_gen_i AFTER INSERT ON devices BEGIN UPDATE registry_generation SET generation = generation + 1; END;
CREATE TRIGGER devices_gen_u AFTER UPDATE ON devices BEGIN UPDATE registry_generation SET generation = generation + 1; END;
CREATE TRIGGER patients_gen_i AFTER INSERT ON patients BEGIN UPDATE registry_generation SET generation = generation + 1; END;
CREATE TRIGGER patients_gen_u AFTER UPDATE ON patients BEGIN UPDATE registry_generation SET generation = generation + 1; END;
CREATE TRIGGER pairings_gen_i AFTER INSERT ON pairings BEGIN UPDATE registry_generation SET generation = generation + 1; END;
CREATE TRIGGER pairings_gen_u AFTER UPDATE ON pairings BEGIN UPDATE registry_generation SET generation = generation + 1; END;
CREATE TRIGGER consents_gen_i AFTER INSERT ON consents BEGIN UPDATE registry_generation SET generation = generation + 1; END;
CREATE TRIGGER consents_gen_u AFTER UPDATE ON consents BEGIN UPDATE registry_generation SET generation = generation + 1; END;

-- Operator actions, each entry chained to the previous by blake3 (tamper evidence).
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
