//! Quarantined readings and their release or discard by an operator, audited in the same transaction.

use super::*;

/// The quarantine columns, with the payload and topic it came in on, and a filter.
macro_rules! quarantine_select {
    ($($rest:tt)*) => {
        concat!(
            "SELECT q.id, q.device_id, q.mdc_code, q.value, q.unit, q.observed_at, q.reason, q.detail, i.payload, i.origin
             FROM quarantine q JOIN inbox i ON i.id = q.inbox_id ",
            $($rest)*
        )
    };
}

fn quarantine_entry(r: &sqlx::sqlite::SqliteRow) -> QuarantineEntry {
    QuarantineEntry {
        id: r.get(0),
        device_id: r.get(1),
        mdc_code: r.get::<i64, _>(2) as u32,
        metric: metric_name(r.get::<i64, _>(2) as u32),
        value: r.get(3),
        unit: r.get(4),
        observed_at: from_millis(r.get(5)),
        reason: r.get(6),
        detail: r.get(7),
        payload: String::from_utf8_lossy(r.get::<&[u8], _>(8)).into_owned(),
        origin: r.get(9),
    }
}

#[async_trait]
impl QuarantineStore for SqliteStore {
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
        let now = millis(self.clock.now());
        let (name, fresh) = resolve_in(&mut tx, id, resolution, now, operator, reason).await?;
        append_audit(
            &mut tx,
            self.clock.now(),
            [operator, &format!("quarantine.{name}"), &format!("quarantine {id}"), reason],
            &self.seal.key,
        )
        .await?;
        self.commit_audited(tx).await?;
        Ok(fresh)
    }

    async fn resolve_quarantine_many(
        &self,
        device_id: &str,
        resolutions: &[(i64, Resolution)],
        operator: &str,
        reason: &str,
    ) -> Result<u64, StoreError> {
        if resolutions.is_empty() {
            return Ok(0);
        }
        let mut tx = self.write_tx().await?;
        let now = millis(self.clock.now());
        let (mut fresh, mut released, mut discarded) = (0u64, 0u64, 0u64);
        for (id, resolution) in resolutions {
            let (name, new) = resolve_in(&mut tx, *id, resolution, now, operator, reason).await?;
            fresh += u64::from(new);
            if name == "released" { released += 1 } else { discarded += 1 }
        }
        let first = resolutions.iter().map(|(id, _)| *id).min().unwrap_or_default();
        let last = resolutions.iter().map(|(id, _)| *id).max().unwrap_or_default();
        let detail =
            format!("{released} released ({fresh} new), {discarded} discarded, quarantine {first}..{last}: {reason}");
        append_audit(
            &mut tx,
            self.clock.now(),
            [operator, "quarantine.group_resolved", &format!("device {device_id}"), &detail],
            &self.seal.key,
        )
        .await?;
        self.commit_audited(tx).await?;
        Ok(fresh)
    }

    async fn quarantine_groups(&self) -> Result<Vec<QuarantineGroup>, StoreError> {
        // The newest row of each group names its detail and topic.
        let rows = sqlx::query(
            "SELECT g.device_id, g.reason, q.detail, i.origin, g.n, g.first, g.last
             FROM (SELECT device_id, reason, COUNT(*) AS n, MIN(observed_at) AS first, MAX(observed_at) AS last,
                          MAX(id) AS newest
                   FROM quarantine WHERE resolved_at IS NULL GROUP BY device_id, reason) g
             JOIN quarantine q ON q.id = g.newest JOIN inbox i ON i.id = q.inbox_id
             ORDER BY g.n DESC, g.device_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| QuarantineGroup {
                device_id: r.get(0),
                reason: r.get(1),
                detail: r.get(2),
                origin: r.get(3),
                count: r.get::<i64, _>(4).max(0) as u64,
                first_observed: from_millis(r.get(5)),
                last_observed: from_millis(r.get(6)),
                registered: false,
                profile_id: None,
            })
            .collect())
    }

    async fn quarantine_page(
        &self,
        device_id: Option<&str>,
        reason: Option<&str>,
        older_than: Option<QuarantineCursor>,
        limit: u32,
    ) -> Result<QuarantinePage, StoreError> {
        macro_rules! filter {
            () => {
                "WHERE q.resolved_at IS NULL AND (?1 IS NULL OR q.device_id = ?1) AND (?2 IS NULL OR q.reason = ?2)"
            };
        }
        let at = older_than.map(|c| millis(c.observed_at));
        let id = older_than.map(|c| c.id);
        // How many match, and the page's place among them: the page holds the rows just older than
        // the cursor, so every match at or after the cursor is newer than the page.
        let (total, newer): (i64, i64) = sqlx::query_as(concat!(
            "SELECT COUNT(*),
                    COALESCE(SUM(?3 IS NOT NULL AND (q.observed_at > ?3 OR (q.observed_at = ?3 AND q.id >= ?4))), 0)
             FROM quarantine q ",
            filter!()
        ))
        .bind(device_id)
        .bind(reason)
        .bind(at)
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        let rows = sqlx::query(quarantine_select!(
            filter!(),
            " AND (?3 IS NULL OR q.observed_at < ?3 OR (q.observed_at = ?3 AND q.id < ?4))
             ORDER BY q.observed_at DESC, q.id DESC LIMIT ?5"
        ))
        .bind(device_id)
        .bind(reason)
        .bind(at)
        .bind(id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        let entries = rows.iter().map(quarantine_entry).collect();
        Ok(QuarantinePage { entries, total: total.max(0) as u64, newer: newer.max(0) as u64 })
    }

    async fn quarantine_within(
        &self,
        device_id: &str,
        from: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<QuarantineEntry>, StoreError> {
        let rows = sqlx::query(quarantine_select!(
            "WHERE q.resolved_at IS NULL AND q.device_id = ? AND q.observed_at >= ? AND (? IS NULL OR q.observed_at < ?)
             ORDER BY q.observed_at, q.id"
        ))
        .bind(device_id)
        .bind(millis(from))
        .bind(until.map(millis))
        .bind(until.map(millis))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(quarantine_entry).collect())
    }

    async fn discard_quarantine_group(
        &self,
        device_id: &str,
        reason_code: &str,
        operator: &str,
        why: &str,
    ) -> Result<u64, StoreError> {
        let mut tx = self.write_tx().await?;
        let now = millis(self.clock.now());
        let n = sqlx::query(
            "UPDATE quarantine SET resolved_at = ?, resolution = 'discarded', resolved_by = ?, resolution_reason = ?
             WHERE device_id = ? AND reason = ? AND resolved_at IS NULL",
        )
        .bind(now)
        .bind(operator)
        .bind(why)
        .bind(device_id)
        .bind(reason_code)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let detail = format!("{n} {reason_code} readings discarded: {why}");
        append_audit(
            &mut tx,
            self.clock.now(),
            [operator, "quarantine.group_discarded", &format!("device {device_id}"), &detail],
            &self.seal.key,
        )
        .await?;
        self.commit_audited(tx).await?;
        Ok(n)
    }
}

/// Resolves one unresolved quarantined reading inside `tx`: a release is stored (or held) unless
/// its hash was seen; a discard only marks it. Returns the resolution's name and whether the
/// released reading was new.
async fn resolve_in(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    id: i64,
    resolution: &Resolution,
    now: i64,
    operator: &str,
    reason: &str,
) -> Result<(&'static str, bool), StoreError> {
    let inbox_id: Option<i64> =
        sqlx::query_scalar("SELECT inbox_id FROM quarantine WHERE id = ? AND resolved_at IS NULL")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
    let Some(inbox_id) = inbox_id else {
        return Err(StoreError::Refused(format!("quarantined reading {id} does not exist or is already resolved")));
    };
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
            .fetch_one(&mut **tx)
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
                        .push_bind(format!("no recorded consent for {flow}: record the patient's decision to release"))
                        .push_bind(now);
                }
                q.push(")");
                q.build().execute(&mut **tx).await?;
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
    .execute(&mut **tx)
    .await?;
    Ok((name, fresh))
}
