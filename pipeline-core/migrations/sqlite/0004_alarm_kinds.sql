-- Technical alarms (a device offline or unpaired, an adapter down) sit beside physiological ones:
-- they have no metric or value, and some no patient. Silencing is an audited operator action that
-- holds back re-notification until a time.
CREATE TABLE alarms_v2 (
    id             INTEGER PRIMARY KEY,
    key            BLOB    NOT NULL UNIQUE,
    kind           TEXT    NOT NULL,
    rule_id        TEXT    NOT NULL,
    rule_version   TEXT    NOT NULL,
    description    TEXT    NOT NULL,
    priority       TEXT    NOT NULL,
    patient_id     INTEGER,
    device_id      TEXT    NOT NULL,
    mdc_code       INTEGER,
    value          REAL,
    since          INTEGER NOT NULL,
    raised_at      INTEGER NOT NULL,
    cleared_at     INTEGER,
    acked_at       INTEGER,
    acked_by       TEXT,
    ack_reason     TEXT,
    silenced_until INTEGER,
    silenced_by    TEXT,
    silence_reason TEXT
);
INSERT INTO alarms_v2 (id, key, kind, rule_id, rule_version, description, priority, patient_id, device_id, mdc_code,
                       value, since, raised_at, cleared_at, acked_at, acked_by, ack_reason)
    SELECT id, key, 'physiological', rule_id, rule_version, rule_id, priority, patient_id, device_id, mdc_code,
           value, since, raised_at, cleared_at, acked_at, acked_by, ack_reason FROM alarms;
DROP TABLE alarms;
ALTER TABLE alarms_v2 RENAME TO alarms;
CREATE INDEX alarms_open ON alarms (cleared_at, priority);
