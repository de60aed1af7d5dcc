-- An operator resolves a quarantined reading: released (re-identified after the pairing was fixed,
-- then stored or held like any reading) or discarded, with a name and a reason. The row stays for
-- forensic review either way.
ALTER TABLE quarantine ADD COLUMN resolved_at INTEGER;
ALTER TABLE quarantine ADD COLUMN resolution TEXT;
ALTER TABLE quarantine ADD COLUMN resolved_by TEXT;
ALTER TABLE quarantine ADD COLUMN resolution_reason TEXT;
