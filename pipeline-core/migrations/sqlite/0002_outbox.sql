-- The clinical-events plane: the durable outbox to the EHR, and the sandbox sink.

-- One row per clinical event. status: held (failed validation or consent; reason says why),
-- pending (waiting for delivery), delivered, dead (permanently refused by the EHR; reason holds
-- its answer). An event leaves pending only after the EHR confirmed it, or refused it for good.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    event_hash      BLOB    NOT NULL UNIQUE,
    patient_id      INTEGER NOT NULL REFERENCES patients (id),
    event_json      TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    reason          TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    ehr_ref         TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER
);
CREATE INDEX outbox_pending ON outbox (status, patient_id, id);

-- What the sandbox sink "delivered": the exact Bundle that would have gone to an EHR.
CREATE TABLE sandbox (
    id           INTEGER PRIMARY KEY,
    outbox_id    INTEGER NOT NULL,
    body         TEXT    NOT NULL,
    delivered_at INTEGER NOT NULL
);
