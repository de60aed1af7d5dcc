//! SQLite backend: one file in WAL mode with `synchronous=FULL`, so a committed batch survives a
//! power cut, and multi-row statements so one transaction carries thousands of payloads.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::*;
use crate::identify::{PairingRecord, PatientRecord};
use crate::rules::Firing;

/// Rows per multi-row statement: well under SQLite's 32766 bound parameters at 12 columns.
const ROWS_PER_STATEMENT: usize = 500;

/// The SQLite store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://PATH`) and migrates it.
    pub async fn open(url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Dedup keys are random hashes: a larger page cache keeps their B-tree in memory.
            .pragma("cache_size", "-65536")
            // Statement journals of the multi-row upserts stay in memory instead of temp files.
            .pragma("temp_store", "memory");
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore { pool })
    }

    /// A write transaction that takes the write lock up front. A deferred one that reads first and
    /// writes later fails at once with SQLITE_BUSY if another connection wrote in between (the busy
    /// timeout cannot help there), which would make operator commands fail at random while the
    /// pipeline ingests.
    async fn write_tx(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// The underlying pool, for tests that inspect tables directly.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

/// An audit entry's hash: blake3 over the previous entry's hash and this entry's fields,
/// length-prefixed, so changing, removing or reordering any entry breaks every hash after it.
fn audit_hash(prev: &[u8], at: i64, parts: [&str; 4]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(&at.to_be_bytes());
    for part in parts {
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    *h.finalize().as_bytes()
}

/// Appends one entry to the audit chain inside the caller's transaction.
async fn append_audit(
    conn: &mut SqliteConnection,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> Result<(), StoreError> {
    let prev: Vec<u8> = sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY id DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?
        .unwrap_or_else(|| vec![0u8; 32]);
    let at = millis(Utc::now());
    let hash = audit_hash(&prev, at, [actor, action, subject, detail]);
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, subject, detail, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(subject)
    .bind(detail)
    .bind(&prev)
    .bind(&hash[..])
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The outbox columns `outbox_entry` reads, followed by a static clause (sqlx wants static SQL).
/// The quarantine columns, with the payload and topic it came in on, and a filter.
macro_rules! quarantine_select {
    ($rest:literal) => {
        concat!(
            "SELECT q.id, q.device_id, q.mdc_code, q.value, q.unit, q.observed_at, q.reason, q.detail, i.payload, i.origin
             FROM quarantine q JOIN inbox i ON i.id = q.inbox_id ",
            $rest
        )
    };
}

fn quarantine_entry(r: &sqlx::sqlite::SqliteRow) -> QuarantineEntry {
    QuarantineEntry {
        id: r.get(0),
        device_id: r.get(1),
        mdc_code: r.get::<i64, _>(2) as u32,
        value: r.get(3),
        unit: r.get(4),
        observed_at: from_millis(r.get(5)),
        reason: r.get(6),
        detail: r.get(7),
        payload: String::from_utf8_lossy(r.get::<&[u8], _>(8)).into_owned(),
        origin: r.get(9),
    }
}

macro_rules! outbox_select {
    ($clause:literal) => {
        concat!(
            "SELECT id, event_hash, patient_id, status, reason, attempts, ehr_ref, event_json, created_at, delivered_at FROM outbox ",
            $clause
        )
    };
}

fn outbox_entry(r: &sqlx::sqlite::SqliteRow) -> OutboxEntry {
    OutboxEntry {
        id: r.get(0),
        hash: blake3::Hash::from_slice(r.get::<&[u8], _>(1)).map(|h| h.to_hex().to_string()).unwrap_or_default(),
        patient_id: r.get(2),
        status: match r.get::<&str, _>(3) {
            "held" => OutboxStatus::Held,
            "delivered" => OutboxStatus::Delivered,
            "dead" => OutboxStatus::Dead,
            _ => OutboxStatus::Pending,
        },
        reason: r.get(4),
        attempts: r.get::<i64, _>(5) as u32,
        ehr_ref: r.get(6),
        event: serde_json::from_str(r.get::<&str, _>(7)).unwrap_or_default(),
        created_at: from_millis(r.get(8)),
        delivered_at: r.get::<Option<i64>, _>(9).map(from_millis),
    }
}

/// What a payload's readings came to, for the inbox's `outcome` column.
fn outcome_name(outcome: &PayloadOutcome) -> &'static str {
    match outcome {
        PayloadOutcome::Rejected(_) => "rejected",
        PayloadOutcome::Readings(ds) => {
            let kind = |d: &Disposition| match d {
                Disposition::Accepted { .. } => "accepted",
                Disposition::Held { .. } => "held",
                Disposition::Quarantined { .. } => "quarantined",
            };
            let first = ds.first().map(kind).unwrap_or("accepted");
            if ds.iter().all(|d| kind(d) == first) { first } else { "mixed" }
        }
    }
}

/// Counts the repeats of each key and keeps the first of each.
fn first_of_each<T, K: std::hash::Hash + Eq + Copy>(
    items: impl IntoIterator<Item = T>,
    key: impl Fn(&T) -> K,
) -> (Vec<T>, HashMap<K, i64>) {
    let mut seen: HashMap<K, i64> = HashMap::new();
    let mut firsts = Vec::new();
    for item in items {
        let count = seen.entry(key(&item)).or_insert(0);
        if *count == 0 {
            firsts.push(item);
        }
        *count += 1;
    }
    seen.retain(|_, n| {
        *n -= 1;
        *n > 0
    });
    (firsts, seen)
}

/// Reading rows waiting for their dedup verdict.
struct Pending<'a> {
    reading: &'a Reading,
    hash: ContentHash,
    patient_id: i64,
    inbox_id: i64,
    held_for: Option<Flow>,
}

#[async_trait]
impl Store for SqliteStore {
    async fn write_batch(&self, batch: &[ProcessedPayload]) -> Result<BatchTally, StoreError> {
        let mut tally = BatchTally::default();
        let now = millis(Utc::now());
        let mut tx = self.write_tx().await?;

        // 1. The inbox: new payloads get an id; a payload seen before only bumps its repeat count.
        let (payloads, in_batch_repeats) = first_of_each(batch.iter(), |p| p.payload_hash);
        let mut inbox_ids: HashMap<ContentHash, i64> = HashMap::new();
        for chunk in payloads.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO inbox (payload_hash, source, origin, received_at, payload, profile_id, outcome) ",
            );
            q.push_values(chunk, |mut row, p| {
                row.push_bind(&p.payload_hash.0[..])
                    .push_bind(p.source)
                    .push_bind(p.origin.as_str())
                    .push_bind(millis(p.received_at))
                    .push_bind(&p.payload[..])
                    .push_bind(p.profile_id.as_deref())
                    .push_bind(outcome_name(&p.outcome));
            });
            q.push(
                " ON CONFLICT (payload_hash) DO UPDATE SET repeats = repeats + 1 RETURNING id, payload_hash, repeats",
            );
            for row in q.build().fetch_all(&mut *tx).await? {
                let hash: Vec<u8> = row.get(1);
                if row.get::<i64, _>(2) == 0 {
                    inbox_ids.insert(ContentHash(hash.try_into().unwrap_or_default()), row.get(0));
                } else {
                    tally.duplicate_payloads += 1;
                }
            }
        }
        for (hash, extra) in &in_batch_repeats {
            sqlx::query("UPDATE inbox SET repeats = repeats + ? WHERE payload_hash = ?")
                .bind(extra)
                .bind(&hash.0[..])
                .execute(&mut *tx)
                .await?;
            tally.duplicate_payloads += *extra as u64;
        }
        tally.payloads = inbox_ids.len() as u64;

        // 2. Sort the new payloads' contents by fate.
        let mut pending = Vec::new();
        let mut rejected = Vec::new();
        let mut quarantined = Vec::new();
        for p in payloads {
            let Some(&inbox_id) = inbox_ids.get(&p.payload_hash) else { continue };
            match &p.outcome {
                PayloadOutcome::Rejected(r) => rejected.push((inbox_id, r)),
                PayloadOutcome::Readings(ds) => {
                    for d in ds {
                        match d {
                            Disposition::Accepted { reading, hash, patient_id } => pending.push(Pending {
                                reading,
                                hash: *hash,
                                patient_id: *patient_id,
                                inbox_id,
                                held_for: None,
                            }),
                            Disposition::Held { reading, hash, patient_id, flow } => pending.push(Pending {
                                reading,
                                hash: *hash,
                                patient_id: *patient_id,
                                inbox_id,
                                held_for: Some(*flow),
                            }),
                            Disposition::Quarantined { reading, reason, detail } => {
                                quarantined.push((inbox_id, reading, *reason, detail))
                            }
                        }
                    }
                }
            }
        }

        // 3. Dedup: the content hash decides whether a reading is new.
        let (pending, reading_repeats) = first_of_each(pending, |p| p.hash);
        let mut new_hashes = std::collections::HashSet::new();
        for chunk in pending.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO dedup_index (hash, first_seen_at) ");
            q.push_values(chunk, |mut row, p| {
                row.push_bind(&p.hash.0[..]).push_bind(now);
            });
            q.push(" ON CONFLICT (hash) DO UPDATE SET repeats = repeats + 1 RETURNING hash, repeats");
            for row in q.build().fetch_all(&mut *tx).await? {
                let hash: Vec<u8> = row.get(0);
                if row.get::<i64, _>(1) == 0 {
                    new_hashes.insert(ContentHash(hash.try_into().unwrap_or_default()));
                } else {
                    tally.duplicate_readings += 1;
                }
            }
        }
        for (hash, extra) in &reading_repeats {
            sqlx::query("UPDATE dedup_index SET repeats = repeats + ? WHERE hash = ?")
                .bind(extra)
                .bind(&hash.0[..])
                .execute(&mut *tx)
                .await?;
            tally.duplicate_readings += *extra as u64;
        }
        let (held, stored): (Vec<_>, Vec<_>) =
            pending.into_iter().filter(|p| new_hashes.contains(&p.hash)).partition(|p| p.held_for.is_some());

        // 4. Telemetry, held readings, quarantine, rejections.
        for chunk in stored.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO readings (hash, inbox_id, device_id, patient_id, mdc_code, value, unit, observed_at, validity) ",
            );
            q.push_values(chunk, |mut row, p| {
                row.push_bind(&p.hash.0[..])
                    .push_bind(p.inbox_id)
                    .push_bind(p.reading.device_id.as_str())
                    .push_bind(p.patient_id)
                    .push_bind(p.reading.metric.mdc_code as i64)
                    .push_bind(p.reading.value)
                    .push_bind(p.reading.metric.unit)
                    .push_bind(millis(p.reading.observed_at))
                    .push_bind(p.reading.validity.as_str());
            });
            q.build().execute(&mut *tx).await?;
        }
        tally.stored = stored.len() as u64;
        for chunk in held.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO held (hash, inbox_id, device_id, patient_id, mdc_code, value, unit, observed_at, validity, flow, reason, created_at) ",
            );
            q.push_values(chunk, |mut row, p| {
                let flow = p.held_for.unwrap_or(Flow::Store);
                row.push_bind(&p.hash.0[..])
                    .push_bind(p.inbox_id)
                    .push_bind(p.reading.device_id.as_str())
                    .push_bind(p.patient_id)
                    .push_bind(p.reading.metric.mdc_code as i64)
                    .push_bind(p.reading.value)
                    .push_bind(p.reading.metric.unit)
                    .push_bind(millis(p.reading.observed_at))
                    .push_bind(p.reading.validity.as_str())
                    .push_bind(flow.as_str())
                    .push_bind(format!("no recorded consent for {flow}: record the patient's decision to release"))
                    .push_bind(now);
            });
            q.build().execute(&mut *tx).await?;
        }
        tally.held = held.len() as u64;
        for chunk in quarantined.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO quarantine (inbox_id, device_id, mdc_code, value, unit, observed_at, reason, detail, created_at) ",
            );
            q.push_values(chunk, |mut row, (inbox_id, reading, reason, detail)| {
                row.push_bind(*inbox_id)
                    .push_bind(reading.device_id.as_str())
                    .push_bind(reading.metric.mdc_code as i64)
                    .push_bind(reading.value)
                    .push_bind(reading.metric.unit)
                    .push_bind(millis(reading.observed_at))
                    .push_bind(reason.as_str())
                    .push_bind(detail.as_str())
                    .push_bind(now);
            });
            q.build().execute(&mut *tx).await?;
        }
        tally.quarantined = quarantined.len() as u64;
        for chunk in rejected.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO rejected (inbox_id, reason, detail, created_at) ");
            q.push_values(chunk, |mut row, (inbox_id, r)| {
                row.push_bind(*inbox_id).push_bind(r.reason.as_str()).push_bind(r.detail.as_str()).push_bind(now);
            });
            q.build().execute(&mut *tx).await?;
        }
        tally.rejected = rejected.len() as u64;
        tx.commit().await?;
        Ok(tally)
    }

    async fn registry_generation(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT generation FROM registry_generation WHERE id = 1").fetch_one(&self.pool).await?)
    }

    async fn load_registry(&self) -> Result<Registry, StoreError> {
        // One read transaction, so the snapshot is consistent with its generation.
        let mut tx = self.pool.begin().await?;
        let mut registry = Registry {
            generation: sqlx::query_scalar("SELECT generation FROM registry_generation WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?,
            ..Registry::default()
        };
        registry.devices =
            sqlx::query_scalar("SELECT device_id FROM devices").fetch_all(&mut *tx).await?.into_iter().collect();
        for row in sqlx::query("SELECT id, id_system, id_value, verified_at FROM patients").fetch_all(&mut *tx).await? {
            let id: i64 = row.get(0);
            registry.patients.insert(
                id,
                PatientRecord {
                    id,
                    id_system: row.get(1),
                    id_value: row.get(2),
                    verified: row.get::<Option<i64>, _>(3).is_some(),
                },
            );
        }
        for row in
            sqlx::query("SELECT id, device_id, patient_id, valid_from, valid_to FROM pairings ORDER BY valid_from")
                .fetch_all(&mut *tx)
                .await?
        {
            registry.pairings.entry(row.get(1)).or_default().push(PairingRecord {
                id: row.get(0),
                patient_id: row.get(2),
                valid_from: from_millis(row.get(3)),
                valid_to: row.get::<Option<i64>, _>(4).map(from_millis),
            });
        }
        for row in sqlx::query("SELECT patient_id, flow, granted FROM consents").fetch_all(&mut *tx).await? {
            if let Some(flow) = Flow::parse(row.get::<&str, _>(1)) {
                registry.consents.insert((row.get(0), flow), row.get::<i64, _>(2) != 0);
            }
        }
        tx.commit().await?;
        Ok(registry)
    }

    async fn register_device(
        &self,
        device_id: &str,
        profile_id: Option<&str>,
        label: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO devices (device_id, profile_id, label, registered_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (device_id) DO UPDATE SET profile_id = COALESCE(excluded.profile_id, profile_id),
             label = COALESCE(excluded.label, label)",
        )
        .bind(device_id)
        .bind(profile_id)
        .bind(label)
        .bind(millis(Utc::now()))
        .execute(&mut *tx)
        .await?;
        append_audit(&mut tx, "system", "device.register", device_id, profile_id.unwrap_or("")).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn upsert_patient(
        &self,
        id: &PatientIdentifier,
        display_name: Option<&str>,
        verified_by: Option<&str>,
    ) -> Result<i64, StoreError> {
        let verified_at = verified_by.map(|_| millis(Utc::now()));
        let key: i64 = sqlx::query_scalar(
            "INSERT INTO patients (organisation, id_system, id_value, display_name, verified_at, verified_by)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (organisation, id_system, id_value) DO UPDATE SET
               display_name = COALESCE(excluded.display_name, display_name),
               verified_at = COALESCE(excluded.verified_at, verified_at),
               verified_by = COALESCE(excluded.verified_by, verified_by)
             RETURNING id",
        )
        .bind(&id.organisation)
        .bind(&id.system)
        .bind(&id.value)
        .bind(display_name)
        .bind(verified_at)
        .bind(verified_by)
        .fetch_one(&self.pool)
        .await?;
        Ok(key)
    }

    async fn find_patient(&self, id: &PatientIdentifier) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar("SELECT id FROM patients WHERE organisation = ? AND id_system = ? AND id_value = ?")
            .bind(&id.organisation)
            .bind(&id.system)
            .bind(&id.value)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn pair(
        &self,
        device_id: &str,
        patient_id: i64,
        from: DateTime<Utc>,
        actor: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write_tx().await?;
        let known: Option<i64> = sqlx::query_scalar("SELECT 1 FROM devices WHERE device_id = ?")
            .bind(device_id)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            return Err(StoreError::Refused(format!("device {device_id} is not registered")));
        }
        let patient: Option<Option<i64>> = sqlx::query_scalar("SELECT verified_at FROM patients WHERE id = ?")
            .bind(patient_id)
            .fetch_optional(&mut *tx)
            .await?;
        match patient {
            None => return Err(StoreError::Refused(format!("patient {patient_id} is not in the registry"))),
            Some(None) => {
                return Err(StoreError::Refused(format!(
                    "patient {patient_id} is not verified; verify before pairing"
                )));
            }
            Some(Some(_)) => {}
        }
        let open: Option<(i64, i64)> =
            sqlx::query_as("SELECT id, valid_from FROM pairings WHERE device_id = ? AND valid_to IS NULL")
                .bind(device_id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some((open_id, open_from)) = open {
            if millis(from) < open_from {
                return Err(StoreError::Refused(format!(
                    "pairing {open_id} of device {device_id} starts after {}: unpair first",
                    from.to_rfc3339()
                )));
            }
            sqlx::query("UPDATE pairings SET valid_to = ? WHERE id = ?")
                .bind(millis(from))
                .bind(open_id)
                .execute(&mut *tx)
                .await?;
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO pairings (device_id, patient_id, valid_from, created_by, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(device_id)
        .bind(patient_id)
        .bind(millis(from))
        .bind(actor)
        .bind(millis(Utc::now()))
        .fetch_one(&mut *tx)
        .await?;
        append_audit(
            &mut tx,
            actor,
            "pairing.open",
            device_id,
            &format!("pairing {id}, patient {patient_id}, from {}", from.to_rfc3339()),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn unpair(&self, device_id: &str, at: DateTime<Utc>, actor: &str) -> Result<i64, StoreError> {
        let mut tx = self.write_tx().await?;
        let open: Option<(i64, i64)> =
            sqlx::query_as("SELECT id, valid_from FROM pairings WHERE device_id = ? AND valid_to IS NULL")
                .bind(device_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((id, from)) = open else {
            return Err(StoreError::Refused(format!("device {device_id} has no open pairing")));
        };
        let end = millis(at).max(from);
        sqlx::query("UPDATE pairings SET valid_to = ? WHERE id = ?").bind(end).bind(id).execute(&mut *tx).await?;
        append_audit(
            &mut tx,
            actor,
            "pairing.close",
            device_id,
            &format!("pairing {id}, until {}", from_millis(end).to_rfc3339()),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn set_consent(&self, patient_id: i64, flow: Flow, granted: bool, actor: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO consents (patient_id, flow, granted, recorded_at, recorded_by) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (patient_id, flow) DO UPDATE SET granted = excluded.granted,
               recorded_at = excluded.recorded_at, recorded_by = excluded.recorded_by",
        )
        .bind(patient_id)
        .bind(flow.as_str())
        .bind(granted)
        .bind(millis(Utc::now()))
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        let decision = if granted { "granted" } else { "refused" };
        append_audit(&mut tx, actor, "consent.record", &format!("patient {patient_id}"), &format!("{flow} {decision}"))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn devices(&self) -> Result<Vec<DeviceEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.device_id, d.profile_id, d.label, p.id, p.patient_id, p.valid_from, p.valid_to
             FROM devices d LEFT JOIN pairings p ON p.device_id = d.device_id
                 AND p.valid_from <= ?1 AND (p.valid_to IS NULL OR p.valid_to > ?1)
             ORDER BY d.device_id",
        )
        .bind(millis(Utc::now()))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| DeviceEntry {
                device_id: r.get(0),
                profile_id: r.get(1),
                label: r.get(2),
                pairing_id: r.get(3),
                patient_id: r.get(4),
                paired_since: r.get::<Option<i64>, _>(5).map(from_millis),
                paired_until: r.get::<Option<i64>, _>(6).map(from_millis),
            })
            .collect())
    }

    async fn readings(&self, query: &ReadingQuery) -> Result<Vec<StoredReading>, StoreError> {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT hash, device_id, patient_id, mdc_code, value, unit, observed_at, validity FROM readings WHERE 1 = 1",
        );
        if let Some(p) = query.patient_id {
            q.push(" AND patient_id = ").push_bind(p);
        }
        if let Some(d) = &query.device_id {
            q.push(" AND device_id = ").push_bind(d.as_str());
        }
        if let Some(c) = query.mdc_code {
            q.push(" AND mdc_code = ").push_bind(c as i64);
        }
        if let Some(f) = query.from {
            q.push(" AND observed_at >= ").push_bind(millis(f));
        }
        if let Some(t) = query.to {
            q.push(" AND observed_at < ").push_bind(millis(t));
        }
        q.push(" ORDER BY observed_at DESC LIMIT ").push_bind(query.limit.map_or(-1, i64::from));
        let rows = q.build().fetch_all(&self.pool).await?;
        Ok(rows
            .into_iter()
            .map(|r| StoredReading {
                hash: blake3::Hash::from_slice(r.get::<&[u8], _>(0))
                    .map(|h| h.to_hex().to_string())
                    .unwrap_or_default(),
                device_id: r.get(1),
                patient_id: r.get(2),
                mdc_code: r.get::<i64, _>(3) as u32,
                value: r.get(4),
                unit: r.get(5),
                observed_at: from_millis(r.get(6)),
                validity: r.get(7),
            })
            .collect())
    }

    async fn quarantine(&self, limit: u32) -> Result<Vec<QuarantineEntry>, StoreError> {
        let rows = sqlx::query(quarantine_select!("WHERE q.resolved_at IS NULL ORDER BY q.id DESC LIMIT ?"))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(quarantine_entry).collect())
    }

    async fn quarantine_entry(&self, id: i64) -> Result<Option<QuarantineEntry>, StoreError> {
        let row = sqlx::query(quarantine_select!("WHERE q.id = ?")).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(quarantine_entry))
    }

    async fn resolve_quarantine(
        &self,
        id: i64,
        resolution: &Resolution,
        operator: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let inbox_id: Option<i64> =
            sqlx::query_scalar("SELECT inbox_id FROM quarantine WHERE id = ? AND resolved_at IS NULL")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(inbox_id) = inbox_id else {
            return Err(StoreError::Refused(format!("quarantined reading {id} does not exist or is already resolved")));
        };
        let now = millis(Utc::now());
        let (name, fresh) = match resolution {
            Resolution::Discard => ("discarded", false),
            Resolution::Release { reading, hash, patient_id, held_for } => {
                // As in write_batch: a reading is new when its hash had not been seen.
                let repeats: i64 = sqlx::query_scalar(
                    "INSERT INTO dedup_index (hash, first_seen_at) VALUES (?, ?)
                     ON CONFLICT (hash) DO UPDATE SET repeats = repeats + 1 RETURNING repeats",
                )
                .bind(&hash.0[..])
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                let fresh = repeats == 0;
                if fresh {
                    let table = if held_for.is_some() { "held" } else { "readings" };
                    let extra = if held_for.is_some() { ", flow, reason, created_at" } else { "" };
                    let mut q = QueryBuilder::<Sqlite>::new(format!(
                        "INSERT INTO {table} (hash, inbox_id, device_id, patient_id, mdc_code, value, unit, observed_at, validity{extra}) VALUES ("
                    ));
                    let mut v = q.separated(", ");
                    v.push_bind(&hash.0[..])
                        .push_bind(inbox_id)
                        .push_bind(reading.device_id.as_str())
                        .push_bind(*patient_id)
                        .push_bind(reading.metric.mdc_code as i64)
                        .push_bind(reading.value)
                        .push_bind(reading.metric.unit)
                        .push_bind(millis(reading.observed_at))
                        .push_bind(reading.validity.as_str());
                    if let Some(flow) = held_for {
                        v.push_bind(flow.as_str())
                            .push_bind(format!(
                                "no recorded consent for {flow}: record the patient's decision to release"
                            ))
                            .push_bind(now);
                    }
                    q.push(")");
                    q.build().execute(&mut *tx).await?;
                }
                ("released", fresh)
            }
        };
        sqlx::query(
            "UPDATE quarantine SET resolved_at = ?, resolution = ?, resolved_by = ?, resolution_reason = ? WHERE id = ?",
        )
        .bind(now)
        .bind(name)
        .bind(operator)
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        append_audit(&mut tx, operator, &format!("quarantine.{name}"), &format!("quarantine {id}"), reason).await?;
        tx.commit().await?;
        Ok(fresh)
    }

    async fn rejected(&self, limit: u32) -> Result<Vec<RejectedEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, i.source, i.origin, r.reason, r.detail, i.payload, i.received_at
             FROM rejected r JOIN inbox i ON i.id = r.inbox_id ORDER BY r.id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| RejectedEntry {
                id: r.get(0),
                source: r.get(1),
                origin: r.get(2),
                reason: r.get(3),
                detail: r.get(4),
                payload: String::from_utf8_lossy(r.get::<&[u8], _>(5)).into_owned(),
                received_at: from_millis(r.get(6)),
            })
            .collect())
    }

    async fn held(&self, limit: u32) -> Result<Vec<HeldEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT device_id, patient_id, mdc_code, value, observed_at, flow, reason FROM held ORDER BY created_at DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| HeldEntry {
                device_id: r.get(0),
                patient_id: r.get(1),
                mdc_code: r.get::<i64, _>(2) as u32,
                value: r.get(3),
                observed_at: from_millis(r.get(4)),
                flow: r.get(5),
                reason: r.get(6),
            })
            .collect())
    }

    async fn counts(&self) -> Result<StoreCounts, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM inbox),
                    (SELECT COUNT(*) FROM readings),
                    (SELECT COALESCE(SUM(repeats), 0) FROM inbox) + (SELECT COALESCE(SUM(repeats), 0) FROM dedup_index),
                    (SELECT COUNT(*) FROM rejected),
                    (SELECT COUNT(*) FROM quarantine),
                    (SELECT COUNT(*) FROM held)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(StoreCounts {
            payloads: row.get(0),
            readings: row.get(1),
            duplicates: row.get(2),
            rejected: row.get(3),
            quarantined: row.get(4),
            held: row.get(5),
        })
    }

    async fn purge_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let cutoff = millis(cutoff);
        let mut tx = self.write_tx().await?;
        let mut removed = 0;
        // Per device, so the delete walks the (device_id, observed_at) index; a separate index on
        // observed_at alone would cost every insert for the sake of an hourly job.
        let devices: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT device_id FROM readings").fetch_all(&mut *tx).await?;
        for device in devices {
            removed += sqlx::query("DELETE FROM readings WHERE device_id = ? AND observed_at < ?")
                .bind(device)
                .bind(cutoff)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        for sql in [
            "DELETE FROM dedup_index WHERE first_seen_at < ?",
            // Payloads behind quarantine, rejections or held readings are forensic evidence: kept.
            "DELETE FROM inbox WHERE received_at < ? AND outcome = 'accepted'",
        ] {
            removed += sqlx::query(sql).bind(cutoff).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn patient(&self, id: i64) -> Result<Option<PatientEntry>, StoreError> {
        let row = sqlx::query(
            "SELECT id, organisation, id_system, id_value, verified_at, fhir_id, display_name FROM patients WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| PatientEntry {
            id: r.get(0),
            organisation: r.get(1),
            system: r.get(2),
            value: r.get(3),
            verified: r.get::<Option<i64>, _>(4).is_some(),
            fhir_id: r.get(5),
            display_name: r.get(6),
        }))
    }

    async fn verify_patient(
        &self,
        id: &PatientIdentifier,
        verified_by: &str,
        fhir_id: Option<&str>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write_tx().await?;
        let key: i64 = sqlx::query_scalar(
            "INSERT INTO patients (organisation, id_system, id_value, verified_at, verified_by, fhir_id)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (organisation, id_system, id_value) DO UPDATE SET
               verified_at = excluded.verified_at, verified_by = excluded.verified_by,
               fhir_id = COALESCE(excluded.fhir_id, fhir_id)
             RETURNING id",
        )
        .bind(&id.organisation)
        .bind(&id.system)
        .bind(&id.value)
        .bind(millis(Utc::now()))
        .bind(verified_by)
        .bind(fhir_id)
        .fetch_one(&mut *tx)
        .await?;
        append_audit(&mut tx, verified_by, "patient.verify", &format!("patient {key}"), fhir_id.unwrap_or("")).await?;
        tx.commit().await?;
        Ok(key)
    }

    async fn enqueue_event(
        &self,
        event: &ClinicalEvent,
        status: OutboxStatus,
        reason: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        let now = millis(Utc::now());
        let json =
            serde_json::to_string(event).map_err(|e| StoreError::Refused(format!("event cannot be encoded: {e}")))?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO outbox (event_hash, patient_id, event_json, status, reason, next_attempt_at, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_hash) DO NOTHING RETURNING id",
        )
        .bind(&event.content_hash().0[..])
        .bind(event.patient_id)
        .bind(json)
        .bind(status.as_str())
        .bind(reason)
        .bind(now)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(id)
    }

    async fn outbox_due(
        &self,
        now: DateTime<Utc>,
        per_patient: u32,
        limit: u32,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        // Per-patient order: only a patient whose oldest pending event is due takes part, and then
        // with its oldest events first, so a retrying event is never overtaken by a later one.
        let rows = sqlx::query(
            "WITH q AS (SELECT id, patient_id, next_attempt_at,
                               ROW_NUMBER() OVER (PARTITION BY patient_id ORDER BY id) AS rn
                        FROM outbox WHERE status = 'pending'),
                  due AS (SELECT patient_id FROM q WHERE rn = 1 AND next_attempt_at <= ?)
             SELECT o.id, o.event_hash, o.event_json, o.attempts, p.id_system, p.id_value, p.fhir_id,
                    COALESCE((SELECT granted FROM consents c WHERE c.patient_id = o.patient_id AND c.flow = 'ehr-write'), 0)
             FROM q JOIN due ON due.patient_id = q.patient_id
                    JOIN outbox o ON o.id = q.id JOIN patients p ON p.id = o.patient_id
             WHERE q.rn <= ? ORDER BY o.id LIMIT ?",
        )
        .bind(millis(now))
        .bind(per_patient)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        for r in rows {
            let event: ClinicalEvent = serde_json::from_str(r.get::<&str, _>(2)).map_err(|e| {
                StoreError::Refused(format!("outbox event {} cannot be decoded: {e}", r.get::<i64, _>(0)))
            })?;
            items.push(OutboxItem {
                id: r.get(0),
                hash: blake3::Hash::from_slice(r.get::<&[u8], _>(1))
                    .map(|h| h.to_hex().to_string())
                    .unwrap_or_default(),
                event,
                patient: PatientRef { fhir_id: r.get(6), system: r.get(4), value: r.get(5) },
                attempts: r.get::<i64, _>(3) as u32,
                consented: r.get::<i64, _>(7) != 0,
            });
        }
        Ok(items)
    }

    async fn outbox_settle(&self, outcomes: &[(i64, Settlement)]) -> Result<(), StoreError> {
        let now = millis(Utc::now());
        let mut tx = self.write_tx().await?;
        for (id, outcome) in outcomes {
            let q = match outcome {
                Settlement::Delivered { ehr_ref } => sqlx::query(
                    "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = ?, ehr_ref = ?, reason = NULL
                     WHERE id = ? AND status = 'pending'",
                )
                .bind(now)
                .bind(ehr_ref.as_deref()),
                Settlement::Retry { next_at, error } => sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, reason = ? WHERE id = ? AND status = 'pending'",
                )
                .bind(millis(*next_at))
                .bind(error.as_str()),
                Settlement::Dead { reason } => sqlx::query(
                    "UPDATE outbox SET status = 'dead', attempts = attempts + 1, reason = ? WHERE id = ? AND status = 'pending'",
                )
                .bind(reason.as_str()),
                Settlement::Held { reason } => {
                    sqlx::query("UPDATE outbox SET status = 'held', reason = ? WHERE id = ? AND status = 'pending'")
                        .bind(reason.as_str())
                }
            };
            let changed = q.bind(id).execute(&mut *tx).await?.rows_affected();
            // PHI left (or was refused at) the boundary: both are audited.
            match outcome {
                Settlement::Delivered { ehr_ref } if changed > 0 => {
                    append_audit(
                        &mut tx,
                        "outbox",
                        "ehr.deliver",
                        &format!("outbox {id}"),
                        ehr_ref.as_deref().unwrap_or(""),
                    )
                    .await?
                }
                Settlement::Dead { reason } if changed > 0 => {
                    append_audit(&mut tx, "outbox", "ehr.refuse", &format!("outbox {id}"), reason).await?
                }
                _ => {}
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn outbox(&self, status: Option<OutboxStatus>, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query(outbox_select!("WHERE ?1 IS NULL OR status = ?1 ORDER BY id DESC LIMIT ?2"))
            .bind(status.map(OutboxStatus::as_str))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(outbox_entry).collect())
    }

    async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(sqlx::query_as("SELECT status, COUNT(*) FROM outbox GROUP BY status ORDER BY status")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn outbox_entry(&self, id: i64) -> Result<Option<OutboxEntry>, StoreError> {
        let row = sqlx::query(outbox_select!("WHERE id = ?")).bind(id).fetch_optional(&self.pool).await?;
        Ok(row.as_ref().map(outbox_entry))
    }

    async fn consents_to(&self, patient_id: i64, flow: Flow) -> Result<bool, StoreError> {
        let granted: Option<i64> = sqlx::query_scalar("SELECT granted FROM consents WHERE patient_id = ? AND flow = ?")
            .bind(patient_id)
            .bind(flow.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(granted.is_some_and(|g| g != 0))
    }

    async fn outbox_requeue(&self, id: i64, actor: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, reason = NULL
             WHERE id = ? AND status IN ('dead', 'held')",
        )
        .bind(millis(Utc::now()))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::Refused(format!("outbox event {id} is not dead or held")));
        }
        append_audit(&mut tx, actor, "outbox.requeue", &format!("outbox {id}"), "").await?;
        tx.commit().await?;
        Ok(())
    }

    async fn sandbox_record(&self, outbox_id: i64, body: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sandbox (outbox_id, body, delivered_at) VALUES (?, ?, ?)")
            .bind(outbox_id)
            .bind(body)
            .bind(millis(Utc::now()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn sandbox(&self, limit: u32) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(sqlx::query_as("SELECT outbox_id, body FROM sandbox ORDER BY id DESC LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn raise_alarm(&self, f: &Firing) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO alarms (key, kind, rule_id, rule_version, description, priority, patient_id, device_id,
                                 mdc_code, value, since, raised_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING RETURNING id",
        )
        .bind(&f.key.0[..])
        .bind(f.kind.as_str())
        .bind(&f.rule_id)
        .bind(&f.rule_version)
        .bind(&f.description)
        .bind(f.priority.as_str())
        .bind(f.patient_id)
        .bind(&f.device_id)
        .bind(f.metric.map(|m| m.mdc_code as i64))
        .bind(f.value)
        .bind(millis(f.since))
        .bind(millis(Utc::now()))
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn clear_alarm(&self, key: &ContentHash) -> Result<(), StoreError> {
        sqlx::query("UPDATE alarms SET cleared_at = ? WHERE key = ? AND cleared_at IS NULL")
            .bind(millis(Utc::now()))
            .bind(&key.0[..])
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn clear_technical_alarms(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query("UPDATE alarms SET cleared_at = ? WHERE kind = 'technical' AND cleared_at IS NULL")
            .bind(millis(Utc::now()))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn alarms(&self, active_only: bool, limit: u32) -> Result<Vec<AlarmEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, key, kind, rule_id, rule_version, description, priority, patient_id, device_id, mdc_code, value,
                    since, raised_at, cleared_at, acked_at, acked_by, ack_reason, silenced_until, silenced_by,
                    silence_reason
             FROM alarms WHERE NOT ? OR cleared_at IS NULL ORDER BY id DESC LIMIT ?",
        )
        .bind(active_only)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| AlarmEntry {
                id: r.get(0),
                key: blake3::Hash::from_slice(r.get::<&[u8], _>(1)).map(|h| h.to_hex().to_string()).unwrap_or_default(),
                kind: r.get(2),
                rule_id: r.get(3),
                rule_version: r.get(4),
                description: r.get(5),
                priority: r.get(6),
                patient_id: r.get(7),
                device_id: r.get(8),
                mdc_code: r.get::<Option<i64>, _>(9).map(|c| c as u32),
                value: r.get(10),
                since: from_millis(r.get(11)),
                raised_at: from_millis(r.get(12)),
                cleared_at: r.get::<Option<i64>, _>(13).map(from_millis),
                acked_at: r.get::<Option<i64>, _>(14).map(from_millis),
                acked_by: r.get(15),
                ack_reason: r.get(16),
                silenced_until: r.get::<Option<i64>, _>(17).map(from_millis),
                silenced_by: r.get(18),
                silence_reason: r.get(19),
            })
            .collect())
    }

    async fn ack_alarm(&self, id: i64, operator: &str, reason: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query(
            "UPDATE alarms SET acked_at = ?, acked_by = ?, ack_reason = ? WHERE id = ? AND acked_at IS NULL",
        )
        .bind(millis(Utc::now()))
        .bind(operator)
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::Refused(format!("alarm {id} does not exist or is already acknowledged")));
        }
        append_audit(&mut tx, operator, "alarm.ack", &format!("alarm {id}"), reason).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn silence_alarm(
        &self,
        id: i64,
        until: DateTime<Utc>,
        operator: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query(
            "UPDATE alarms SET silenced_until = ?, silenced_by = ?, silence_reason = ? WHERE id = ? AND cleared_at IS NULL",
        )
        .bind(millis(until))
        .bind(operator)
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::Refused(format!("alarm {id} does not exist or has already cleared")));
        }
        let detail = format!("until {}: {reason}", until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        append_audit(&mut tx, operator, "alarm.silence", &format!("alarm {id}"), &detail).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn verify_audit(&self) -> Result<AuditVerdict, StoreError> {
        let rows =
            sqlx::query("SELECT id, at, actor, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        let mut prev = vec![0u8; 32];
        for r in &rows {
            let id: i64 = r.get(0);
            let recorded_prev: Vec<u8> = r.get(6);
            let recorded: Vec<u8> = r.get(7);
            let parts = [r.get::<&str, _>(2), r.get(3), r.get(4), r.get(5)];
            if recorded_prev != prev || recorded[..] != audit_hash(&prev, r.get(1), parts)[..] {
                return Ok(AuditVerdict { entries: rows.len() as u64, first_broken: Some(id) });
            }
            prev = recorded;
        }
        Ok(AuditVerdict { entries: rows.len() as u64, first_broken: None })
    }

    async fn audit_entries(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query("SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT ?")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| AuditEntry {
                id: r.get(0),
                at: from_millis(r.get(1)),
                actor: r.get(2),
                action: r.get(3),
                subject: r.get(4),
                detail: r.get(5),
            })
            .collect())
    }

    async fn audit(&self, actor: &str, action: &str, subject: &str, detail: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        append_audit(&mut tx, actor, action, subject, detail).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Validity;
    use crate::normalise::codes::metric_by_code;

    async fn store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(&format!("sqlite://{}", dir.path().join("t.db").display())).await.unwrap()
    }

    fn reading(device: &str, observed_at: DateTime<Utc>) -> Reading {
        Reading {
            device_id: device.into(),
            metric: metric_by_code(150456).unwrap(),
            value: 97.0,
            observed_at,
            patient_hint: None,
            validity: Validity::Valid,
        }
    }

    fn payload(n: u8, received_at: DateTime<Utc>, readings: Vec<Reading>) -> ProcessedPayload {
        let dispositions = readings
            .into_iter()
            .map(|reading| Disposition::Accepted { hash: reading.content_hash(), reading, patient_id: 1 })
            .collect();
        ProcessedPayload {
            source: "mqtt",
            origin: "vigil/devices/OX-1/oximeter".into(),
            received_at,
            payload: bytes::Bytes::from(vec![n]),
            payload_hash: ContentHash([n; 32]),
            profile_id: Some("acme-ox100".into()),
            outcome: PayloadOutcome::Readings(dispositions),
        }
    }

    #[tokio::test]
    async fn dedup_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let batch = vec![payload(1, now, vec![reading("OX-1", now)])];
        let first = store(&dir).await.write_batch(&batch).await.unwrap();
        assert_eq!((first.payloads, first.stored), (1, 1));
        // Reopened: the same payload is a repeat; the same reading inside another payload too.
        let reopened = store(&dir).await;
        let again = reopened.write_batch(&batch).await.unwrap();
        assert_eq!((again.payloads, again.duplicate_payloads, again.stored), (0, 1, 0));
        let other_payload = reopened.write_batch(&[payload(2, now, vec![reading("OX-1", now)])]).await.unwrap();
        assert_eq!((other_payload.payloads, other_payload.duplicate_readings, other_payload.stored), (1, 1, 0));
        let counts = reopened.counts().await.unwrap();
        assert_eq!((counts.payloads, counts.readings, counts.duplicates), (2, 1, 2));
    }

    #[tokio::test]
    async fn repeats_within_one_batch_are_counted_once_stored() {
        let dir = tempfile::tempdir().unwrap();
        let now = Utc::now();
        let p = payload(1, now, vec![reading("OX-1", now), reading("OX-1", now)]);
        let tally = store(&dir).await.write_batch(&[p.clone(), p]).await.unwrap();
        assert_eq!((tally.payloads, tally.duplicate_payloads, tally.stored, tally.duplicate_readings), (1, 1, 1, 1));
    }

    #[tokio::test]
    async fn purge_removes_old_telemetry_and_keeps_forensics() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let old = Utc::now() - chrono::Duration::days(40);
        let recent = Utc::now() - chrono::Duration::hours(1);
        let mut quarantined = payload(3, old, vec![]);
        quarantined.outcome = PayloadOutcome::Readings(vec![Disposition::Quarantined {
            reading: reading("OX-9", old),
            reason: crate::identify::QuarantineReason::UnknownDevice,
            detail: "device OX-9 is not registered".into(),
        }]);
        s.write_batch(&[
            payload(1, old, vec![reading("OX-1", old)]),
            payload(2, recent, vec![reading("OX-1", recent)]),
            quarantined,
        ])
        .await
        .unwrap();
        let removed = s.purge_before(Utc::now() - chrono::Duration::days(30)).await.unwrap();
        // The dedup entry was first seen just now, so it stays for the whole retention period: a late
        // resend of the purged reading is still recognised as a repeat.
        assert_eq!(removed, 2, "the old reading and its payload");
        let left = s.readings(&ReadingQuery::default()).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].observed_at.timestamp_millis(), recent.timestamp_millis());
        let q = s.quarantine(10).await.unwrap();
        assert_eq!(q.len(), 1, "quarantine is forensic: kept");
        assert_eq!(q[0].payload, "\u{3}", "with its raw payload");
    }

    #[tokio::test]
    async fn pairing_rules_and_audit_chain() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let id = PatientIdentifier { organisation: "o".into(), system: "urn:mrn".into(), value: "M1".into() };
        let unverified = s.upsert_patient(&id, None, None).await.unwrap();
        let refused = s.pair("OX-1", unverified, Utc::now(), "ann").await.unwrap_err();
        assert!(refused.to_string().contains("not registered"), "{refused}");
        s.register_device("OX-1", Some("acme-ox100"), None).await.unwrap();
        let refused = s.pair("OX-1", unverified, Utc::now(), "ann").await.unwrap_err();
        assert!(refused.to_string().contains("not verified"), "{refused}");
        let patient = s.upsert_patient(&id, None, Some("ward clerk")).await.unwrap();
        assert_eq!(patient, unverified, "same identifier, same patient");
        let t1 = Utc::now() - chrono::Duration::hours(2);
        let first = s.pair("OX-1", patient, t1, "ann").await.unwrap();
        let refused = s.pair("OX-1", patient, t1 - chrono::Duration::hours(1), "ann").await.unwrap_err();
        assert!(refused.to_string().contains("unpair first"), "{refused}");
        let t2 = Utc::now() - chrono::Duration::hours(1);
        let second = s.pair("OX-1", patient, t2, "bob").await.unwrap();
        let registry = s.load_registry().await.unwrap();
        let pairings = &registry.pairings["OX-1"];
        assert_eq!(pairings.len(), 2);
        assert_eq!(
            (pairings[0].id, pairings[0].valid_to.map(|t| t.timestamp_millis())),
            (first, Some(t2.timestamp_millis()))
        );
        assert_eq!((pairings[1].id, pairings[1].valid_to), (second, None));
        assert_eq!(s.unpair("OX-1", Utc::now(), "bob").await.unwrap(), second);

        // Every operator action is in the audit log, each entry chained to the one before.
        let rows: Vec<(String, String, Vec<u8>, Vec<u8>)> =
            sqlx::query_as("SELECT actor, action, prev_hash, hash FROM audit_log ORDER BY id")
                .fetch_all(s.pool())
                .await
                .unwrap();
        let actions: Vec<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
        assert_eq!(
            actions,
            [("system", "device.register"), ("ann", "pairing.open"), ("bob", "pairing.open"), ("bob", "pairing.close")]
        );
        assert_eq!(rows[0].2, vec![0u8; 32]);
        for pair in rows.windows(2) {
            assert_eq!(pair[1].2, pair[0].3, "chain broken");
        }
        assert_eq!(s.verify_audit().await.unwrap(), AuditVerdict { entries: 4, first_broken: None });
        // Tampering with an entry, or removing one, is detected where it happened.
        sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE id = 2").execute(s.pool()).await.unwrap();
        assert_eq!(s.verify_audit().await.unwrap().first_broken, Some(2));
        sqlx::query("UPDATE audit_log SET actor = 'ann' WHERE id = 2").execute(s.pool()).await.unwrap();
        sqlx::query("DELETE FROM audit_log WHERE id = 3").execute(s.pool()).await.unwrap();
        assert_eq!(s.verify_audit().await.unwrap().first_broken, Some(4));
    }

    #[tokio::test]
    async fn outbox_keeps_per_patient_order_and_lets_other_patients_pass() {
        use crate::model::event::{ClinicalEvent, Effective, EventContent, Observation};
        let dir = tempfile::tempdir().unwrap();
        let s = store(&dir).await;
        let mut keys = Vec::new();
        for v in ["A", "B"] {
            let id = PatientIdentifier { organisation: "o".into(), system: "urn:mrn".into(), value: v.into() };
            keys.push(s.verify_patient(&id, "test", Some(v)).await.unwrap());
        }
        let at = Utc::now() - chrono::Duration::minutes(1);
        let event = |patient_id, value| ClinicalEvent {
            patient_id,
            device_id: "OX-1".into(),
            origin: "test".into(),
            content: EventContent::Single {
                observation: Observation::Vital {
                    metric: metric_by_code(150456).unwrap(),
                    value,
                    effective: Effective::At { at },
                    validity: Validity::Valid,
                },
            },
        };
        let mut ids = Vec::new();
        for (patient, value) in [(keys[0], 90.0), (keys[1], 91.0), (keys[0], 92.0), (keys[0], 93.0), (keys[1], 94.0)] {
            ids.push(s.enqueue_event(&event(patient, value), OutboxStatus::Pending, None).await.unwrap().unwrap());
        }
        assert_eq!(
            s.enqueue_event(&event(keys[0], 90.0), OutboxStatus::Pending, None).await.unwrap(),
            None,
            "same event twice"
        );
        let due: Vec<i64> = s.outbox_due(Utc::now(), 2, 10).await.unwrap().iter().map(|i| i.id).collect();
        assert_eq!(due, [ids[0], ids[1], ids[2], ids[4]], "two per patient, oldest first");

        // A's oldest must be retried later: none of A's later events may overtake it; B goes on.
        let later = Utc::now() + chrono::Duration::minutes(5);
        s.outbox_settle(&[(ids[0], Settlement::Retry { next_at: later, error: "HTTP 503".into() })]).await.unwrap();
        let due: Vec<i64> = s.outbox_due(Utc::now(), 10, 10).await.unwrap().iter().map(|i| i.id).collect();
        assert_eq!(due, [ids[1], ids[4]]);

        // A dead-lettered head no longer blocks its patient.
        s.outbox_settle(&[(ids[0], Settlement::Dead { reason: "HTTP 422".into() })]).await.unwrap();
        let due: Vec<i64> = s.outbox_due(Utc::now(), 10, 10).await.unwrap().iter().map(|i| i.id).collect();
        assert_eq!(due, [ids[1], ids[2], ids[3], ids[4]]);
        let dead = s.outbox(Some(OutboxStatus::Dead), 10).await.unwrap();
        assert_eq!((dead.len(), dead[0].reason.as_deref()), (1, Some("HTTP 422")));
    }
}
