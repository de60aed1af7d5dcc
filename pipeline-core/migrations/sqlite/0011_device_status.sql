-- What the fleet view knows of every device heard, registered or not: when and where it was last
-- heard, the validity of its newest readings, and what it reports of itself (battery, firmware).
-- Device status, never readings: nothing here is charted or sent to the EHR.
CREATE TABLE device_status (
    device_id   TEXT    PRIMARY KEY,
    origin      TEXT    NOT NULL,
    profile_id  TEXT,
    last_heard  INTEGER NOT NULL,
    validity    TEXT    NOT NULL,
    battery_pct REAL,
    firmware    TEXT,
    messages    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- Quarantine at scale: groups by device and reason, pages through a device's readings.
CREATE INDEX quarantine_device_observed ON quarantine (device_id, observed_at);
