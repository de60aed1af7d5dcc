//! The outbox: queueing, due items in per-patient order, settlement, requeue, and the sandbox EHR's record.

use super::*;

/// The outbox columns `outbox_entry` reads, followed by a static clause (sqlx wants static SQL).
macro_rules! outbox_select {
    ($clause:literal) => {
        concat!(
            "SELECT id, event_hash, patient_id, status, reason, attempts, ehr_ref, event_json, created_at, delivered_at FROM outbox ",
            $clause
        )
    };
}

pub(super) fn outbox_entry(r: &sqlx::sqlite::SqliteRow) -> OutboxEntry {
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

#[async_trait]
impl OutboxStore for SqliteStore {
    async fn enqueue_event(
        &self,
        event: &ClinicalEvent,
        status: OutboxStatus,
        reason: Option<&str>,
        submitted_by: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.write_tx().await?;
        let now = millis(self.clock.now());
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
        .fetch_optional(&mut *tx)
        .await?;
        if let (Some(id), Some(actor)) = (id, submitted_by) {
            let subject = format!("outbox {id}");
            append_audit(&mut tx, self.clock.now(), [actor, "event.submit", &subject, status.as_str()], &self.seal.key)
                .await?;
        }
        self.commit_audited(tx).await?;
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
                    COALESCE((SELECT granted FROM consents c WHERE c.patient_id = o.patient_id AND c.flow = 'ehr-write'), 0),
                    (SELECT d.profile_id FROM devices d WHERE d.device_id = json_extract(o.event_json, '$.device_id'))
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
            let device = DeviceIdentity { id: event.device_id.clone(), profile_id: r.get(8), ..Default::default() };
            items.push(OutboxItem {
                id: r.get(0),
                device,
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
        let now = millis(self.clock.now());
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
                        self.clock.now(),
                        ["outbox", "ehr.deliver", &format!("outbox {id}"), ehr_ref.as_deref().unwrap_or("")],
                        &self.seal.key,
                    )
                    .await?
                }
                Settlement::Dead { reason } if changed > 0 => {
                    append_audit(
                        &mut tx,
                        self.clock.now(),
                        ["outbox", "ehr.refuse", &format!("outbox {id}"), reason],
                        &self.seal.key,
                    )
                    .await?
                }
                _ => {}
            }
        }
        self.commit_audited(tx).await?;
        Ok(())
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

    async fn outbox(&self, status: Option<OutboxStatus>, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let rows = sqlx::query(outbox_select!("WHERE ?1 IS NULL OR status = ?1 ORDER BY id DESC LIMIT ?2"))
            .bind(status.map(OutboxStatus::as_str))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(outbox_entry).collect())
    }

    async fn outbox_requeue(&self, id: i64, actor: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = ?, reason = NULL
             WHERE id = ? AND status IN ('dead', 'held')",
        )
        .bind(millis(self.clock.now()))
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::Refused(format!("outbox event {id} is not dead or held")));
        }
        append_audit(&mut tx, self.clock.now(), [actor, "outbox.requeue", &format!("outbox {id}"), ""], &self.seal.key)
            .await?;
        self.commit_audited(tx).await?;
        Ok(())
    }

    async fn sandbox_record(&self, outbox_id: i64, body: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO sandbox (outbox_id, body, delivered_at) VALUES (?, ?, ?)")
            .bind(outbox_id)
            .bind(body)
            .bind(millis(self.clock.now()))
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
}
