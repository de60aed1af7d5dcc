-- A device whose readings are demo or test data, whatever its profile says (a training monitor, a
-- simulator on a production site): they alarm and chart like valid ones, marked demo, and never
-- reach a production EHR.
ALTER TABLE devices ADD COLUMN demo INTEGER NOT NULL DEFAULT 0;
