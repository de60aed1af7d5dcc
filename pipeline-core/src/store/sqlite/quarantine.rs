//! Quarantined readings and their release or discard by an operator, audited in the same transaction.

use super::*;

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
        let inbox_id: Option<i64> =
            sqlx::query_scalar("SELECT inbox_id FROM quarantine WHERE id = ? AND resolved_at IS NULL")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(inbox_id) = inbox_id else {
            return Err(StoreError::Refused(format!("quarantined reading {id} does not exist or is already resolved")));
        };
        let now = millis(self.clock.now());
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
}
