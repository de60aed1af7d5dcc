-- Alarms raised by the rules: one row per condition (keyed by its content hash), latched until the
-- condition clears; acknowledgement is an audited operator action.
CREATE TABLE alarms (
    id           INTEGER PRIMARY KEY,
    key          BLOB    NOT NULL UNIQUE,
    rule_id      TEXT    NOT NULL,
    rule_version TEXT    NOT NULL,
    priority     TEXT    NOT NULL,
    patient_id   INTEGER NOT NULL,
    device_id    TEXT    NOT NULL,
    mdc_code     INTEGER NOT NULL,
    value        REAL    NOT NULL,
    since        INTEGER NOT NULL,
    raised_at    INTEGER NOT NULL,
    cleared_at   INTEGER,
    acked_at     INTEGER,
    acked_by     TEXT,
    ack_reason   TEXT
);
CREATE INDEX alarms_open ON alarms (cleared_at, priority);
