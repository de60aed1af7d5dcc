//! The inbox and telemetry: the batch writer (one transaction per batch), retention, counts and queries.

use super::*;
use crate::dedup::first_of_each;

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

/// Rows one purge removes at most; a larger excess goes in the next runs.
const PURGE_MAX: u64 = 50_000;

/// Deletes forensic rows (`id, reason, created_at, payload_hash, inbox_id`, oldest first) from
/// `what`, and the payloads nothing refers to any more; writes one summary and one audit entry per
/// reason.
async fn purge_rows(
    tx: &mut SqliteConnection,
    what: &str,
    why: &str,
    rows: Vec<sqlx::sqlite::SqliteRow>,
    now: DateTime<Utc>,
    key: &crate::audit::AuditKey,
) -> Result<Vec<PurgeSummary>, StoreError> {
    let mut by_reason: Vec<(String, Vec<sqlx::sqlite::SqliteRow>)> = Vec::new();
    for row in rows {
        let reason: String = row.get(1);
        match by_reason.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, rows)) => rows.push(row),
            None => by_reason.push((reason, vec![row])),
        }
    }
    let mut summaries = Vec::new();
    for (reason, rows) in by_reason {
        let mut digest = blake3::Hasher::new();
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        for row in &rows {
            digest.update(&row.get::<Vec<u8>, _>(3));
            let at: i64 = row.get(2);
            (first, last) = (first.min(at), last.max(at));
        }
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut delete = QueryBuilder::<Sqlite>::new(format!("DELETE FROM {what} WHERE id IN ("));
            let mut ids = delete.separated(", ");
            for row in chunk {
                ids.push_bind(row.get::<i64, _>(0));
            }
            delete.push(")");
            delete.build().execute(&mut *tx).await?;
            let mut orphans = QueryBuilder::<Sqlite>::new(
                "DELETE FROM inbox WHERE outcome != 'accepted' \
                 AND NOT EXISTS (SELECT 1 FROM rejected WHERE inbox_id = inbox.id) \
                 AND NOT EXISTS (SELECT 1 FROM quarantine WHERE inbox_id = inbox.id) \
                 AND NOT EXISTS (SELECT 1 FROM held WHERE inbox_id = inbox.id) AND id IN (",
            );
            let mut ids = orphans.separated(", ");
            for row in chunk {
                ids.push_bind(row.get::<i64, _>(4));
            }
            orphans.push(")");
            orphans.build().execute(&mut *tx).await?;
        }
        let summary = PurgeSummary {
            at: now,
            what: what.to_string(),
            reason,
            why: why.to_string(),
            rows: rows.len() as u64,
            first_seen: from_millis(first),
            last_seen: from_millis(last),
            digest: digest.finalize().to_hex().to_string(),
        };
        sqlx::query(
            "INSERT INTO purge_summaries (at, what, reason, why, rows, first_seen, last_seen, digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(millis(now))
        .bind(&summary.what)
        .bind(&summary.reason)
        .bind(&summary.why)
        .bind(summary.rows as i64)
        .bind(millis(summary.first_seen))
        .bind(millis(summary.last_seen))
        .bind(&summary.digest)
        .execute(&mut *tx)
        .await?;
        let detail = format!(
            "{} {} rows ({}), recorded {} to {}, {}; blake3 of their payload hashes {}",
            summary.rows,
            summary.what,
            summary.reason,
            summary.first_seen.to_rfc3339(),
            summary.last_seen.to_rfc3339(),
            summary.why,
            summary.digest
        );
        append_audit(tx, now, ["retention", "retention.purge", what, &detail], key).await?;
        summaries.push(summary);
    }
    Ok(summaries)
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
impl Inbox for SqliteStore {
    async fn write_batch(&self, batch: &[ProcessedPayload]) -> Result<BatchTally, StoreError> {
        let mut tally = BatchTally::default();
        let now = millis(self.clock.now());
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
        // An MLLP message id seen before with other content: a gateway that reset its counter. The
        // new message is stored all the same; the board counts it.
        for p in payloads.iter().filter(|p| p.source == "mllp" && inbox_ids.contains_key(&p.payload_hash)) {
            let reused: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM inbox WHERE source = 'mllp' AND origin = ? AND payload_hash <> ?)",
            )
            .bind(p.origin.as_str())
            .bind(&p.payload_hash.0[..])
            .fetch_one(&mut *tx)
            .await?;
            tally.control_id_reused += u64::from(reused);
        }

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

        // 5. The fleet: when each device was last heard, and what it says of itself.
        for chunk in DeviceHeard::of_batch(batch).chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO device_status (device_id, origin, profile_id, last_heard, validity, battery_pct, firmware, messages) ",
            );
            q.push_values(chunk, |mut row, h| {
                row.push_bind(h.device_id.as_str())
                    .push_bind(h.origin.as_str())
                    .push_bind(h.profile_id.as_deref())
                    .push_bind(millis(h.last_heard))
                    .push_bind(h.validity.as_str())
                    .push_bind(h.battery_pct)
                    .push_bind(h.firmware.as_deref())
                    .push_bind(h.messages as i64);
            });
            // A batch older than what is kept (a resent payload) moves nothing back.
            q.push(
                " ON CONFLICT (device_id) DO UPDATE SET
                   origin = CASE WHEN excluded.last_heard >= last_heard THEN excluded.origin ELSE origin END,
                   profile_id = CASE WHEN excluded.last_heard >= last_heard THEN excluded.profile_id ELSE profile_id END,
                   validity = CASE WHEN excluded.last_heard >= last_heard THEN excluded.validity ELSE validity END,
                   last_heard = MAX(last_heard, excluded.last_heard),
                   battery_pct = COALESCE(excluded.battery_pct, battery_pct),
                   firmware = COALESCE(excluded.firmware, firmware),
                   messages = messages + excluded.messages",
            );
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(tally)
    }

    async fn device_status(&self) -> Result<Vec<DeviceHeard>, StoreError> {
        let rows = sqlx::query(
            "SELECT device_id, origin, profile_id, last_heard, validity, battery_pct, firmware, messages
             FROM device_status ORDER BY device_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| DeviceHeard {
                device_id: r.get(0),
                origin: r.get(1),
                profile_id: r.get(2),
                last_heard: from_millis(r.get(3)),
                validity: Validity::parse(r.get::<&str, _>(4)).unwrap_or(Validity::Invalid),
                battery_pct: r.get(5),
                firmware: r.get(6),
                messages: r.get::<i64, _>(7).max(0) as u64,
            })
            .collect())
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
        // A sender nobody registered and not heard within retention leaves the fleet.
        sqlx::query(
            "DELETE FROM device_status WHERE last_heard < ? AND device_id NOT IN (SELECT device_id FROM devices)",
        )
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(removed)
    }

    async fn purge_forensic(&self, policy: &crate::config::RetentionConfig) -> Result<Vec<PurgeSummary>, StoreError> {
        let now = self.clock.now();
        let days = |d: u32| millis(now - chrono::Duration::days(i64::from(d)));
        let mut tx = self.write_tx().await?;
        let mut summaries = Vec::new();
        let rejected = "SELECT r.id, r.reason, r.created_at, i.payload_hash, r.inbox_id FROM rejected r \
                        JOIN inbox i ON i.id = r.inbox_id";
        let quarantined = "SELECT q.id, q.reason, q.created_at, i.payload_hash, q.inbox_id FROM quarantine q \
                           JOIN inbox i ON i.id = q.inbox_id";
        let aged = [
            (
                "rejected",
                format!("{rejected} WHERE r.created_at < ? ORDER BY r.id LIMIT {PURGE_MAX}"),
                policy.rejected_days,
            ),
            (
                "quarantine",
                format!("{quarantined} WHERE q.created_at < ? ORDER BY q.id LIMIT {PURGE_MAX}"),
                policy.quarantine_days,
            ),
        ];
        for (what, select, d) in aged {
            let rows = sqlx::query(sqlx::AssertSqlSafe(select)).bind(days(d)).fetch_all(&mut *tx).await?;
            summaries
                .extend(purge_rows(&mut tx, what, &format!("older than {d} days"), rows, now, &self.seal.key).await?);
        }
        let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
        let over = count("SELECT COUNT(*) FROM rejected").fetch_one(&mut *tx).await? as u64;
        if over > policy.max_rejected {
            let excess = (over - policy.max_rejected).min(PURGE_MAX);
            let select =
                format!("{rejected} WHERE r.reason IN ('not_authorised', 'no_profile') ORDER BY r.id LIMIT {excess}");
            let rows = sqlx::query(sqlx::AssertSqlSafe(select)).fetch_all(&mut *tx).await?;
            let why = format!("over the bound of {} rejected payloads", policy.max_rejected);
            summaries.extend(purge_rows(&mut tx, "rejected", &why, rows, now, &self.seal.key).await?);
        }
        let over =
            count("SELECT COUNT(*) FROM quarantine WHERE reason = 'unknown_device'").fetch_one(&mut *tx).await? as u64;
        if over > policy.max_unknown_quarantine {
            let excess = (over - policy.max_unknown_quarantine).min(PURGE_MAX);
            let select = format!("{quarantined} WHERE q.reason = 'unknown_device' ORDER BY q.id LIMIT {excess}");
            let rows = sqlx::query(sqlx::AssertSqlSafe(select)).fetch_all(&mut *tx).await?;
            let why = format!("over the bound of {} unknown-device readings", policy.max_unknown_quarantine);
            summaries.extend(purge_rows(&mut tx, "quarantine", &why, rows, now, &self.seal.key).await?);
        }
        self.commit_audited(tx).await?;
        Ok(summaries)
    }

    async fn forensic_fill(&self) -> Result<(u64, u64), StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM rejected), (SELECT COUNT(*) FROM quarantine WHERE reason = 'unknown_device')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.get::<i64, _>(0) as u64, row.get::<i64, _>(1) as u64))
    }

    async fn purge_summaries(&self, limit: u32) -> Result<Vec<PurgeSummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, what, reason, why, rows, first_seen, last_seen, digest FROM purge_summaries ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| PurgeSummary {
                at: from_millis(r.get(0)),
                what: r.get(1),
                reason: r.get(2),
                why: r.get(3),
                rows: r.get::<i64, _>(4) as u64,
                first_seen: from_millis(r.get(5)),
                last_seen: from_millis(r.get(6)),
                digest: r.get(7),
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

    async fn release_held(&self, patient_id: i64, operator: &str, reason: &str) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let granted: Option<i64> =
            sqlx::query_scalar("SELECT granted FROM consents WHERE patient_id = ? AND flow = 'store'")
                .bind(patient_id)
                .fetch_optional(&mut *tx)
                .await?;
        if granted.is_none_or(|g| g == 0) {
            return Err(StoreError::Refused(format!(
                "patient {patient_id} has no recorded consent for store: record it before releasing held readings"
            )));
        }
        // Held readings already passed dedup when they arrived: each is new telemetry.
        let moved = sqlx::query(
            "INSERT INTO readings (hash, inbox_id, device_id, patient_id, mdc_code, value, unit, observed_at, validity)
             SELECT hash, inbox_id, device_id, patient_id, mdc_code, value, unit, observed_at, validity
             FROM held WHERE patient_id = ? AND flow = 'store' ORDER BY observed_at",
        )
        .bind(patient_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("DELETE FROM held WHERE patient_id = ? AND flow = 'store'")
            .bind(patient_id)
            .execute(&mut *tx)
            .await?;
        append_audit(
            &mut tx,
            self.clock.now(),
            [operator, "held.release", &format!("patient {patient_id}"), &format!("{moved} readings: {reason}")],
            &self.seal.key,
        )
        .await?;
        self.commit_audited(tx).await?;
        Ok(moved)
    }

    async fn held(&self, limit: u32) -> Result<Vec<HeldEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT h.device_id, h.patient_id, h.mdc_code, h.value, h.observed_at, h.flow, h.reason, h.unit, i.payload
             FROM held h LEFT JOIN inbox i ON i.id = h.inbox_id ORDER BY h.created_at DESC LIMIT ?",
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
                metric: metric_name(r.get::<i64, _>(2) as u32),
                value: r.get(3),
                observed_at: from_millis(r.get(4)),
                flow: r.get(5),
                reason: r.get(6),
                unit: r.get(7),
                payload: r
                    .get::<Option<Vec<u8>>, _>(8)
                    .map(|p| String::from_utf8_lossy(&p).into_owned())
                    .unwrap_or_default(),
            })
            .collect())
    }
}
