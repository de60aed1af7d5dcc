-- What retention removed of the forensic records (rejected payloads, quarantine): one row per
-- purge and reason, so an engineer can still answer "what was there" after the rows are gone.
CREATE TABLE purge_summaries (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    what        TEXT    NOT NULL,   -- 'rejected' or 'quarantine'
    reason      TEXT    NOT NULL,   -- the rows' reason (not_authorised, unknown_device...)
    why         TEXT    NOT NULL,   -- the rule that removed them: age, or the table's bound
    rows        INTEGER NOT NULL,
    first_seen  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,
    digest      TEXT    NOT NULL    -- blake3 over the removed payloads' hashes, in order
);

CREATE INDEX quarantine_reason ON quarantine (reason);
