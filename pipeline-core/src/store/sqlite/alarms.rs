//! Alarm rows: raised once per condition, cleared, acknowledged and silenced (audited).

use super::*;

#[async_trait]
impl AlarmStore for SqliteStore {
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
        .bind(millis(self.clock.now()))
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn clear_alarm(&self, key: &ContentHash) -> Result<(), StoreError> {
        sqlx::query("UPDATE alarms SET cleared_at = ? WHERE key = ? AND cleared_at IS NULL")
            .bind(millis(self.clock.now()))
            .bind(&key.0[..])
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn clear_technical_alarms(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query("UPDATE alarms SET cleared_at = ? WHERE kind = 'technical' AND cleared_at IS NULL")
            .bind(millis(self.clock.now()))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn alarms(&self, active_only: bool, limit: u32) -> Result<Vec<AlarmEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, key, kind, rule_id, rule_version, description, priority, patient_id, device_id, mdc_code, value,
                    since, raised_at, cleared_at, acked_at, acked_by, ack_reason, silenced_until, silenced_by,
                    silence_reason, silence_count, silenced_minutes
             FROM alarms WHERE NOT ? OR cleared_at IS NULL ORDER BY id DESC LIMIT ?",
        )
        .bind(active_only)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let corrupt = |what: &str| StoreError::Corrupt(format!("alarm {}: {what}", r.get::<i64, _>(0)));
                Ok(AlarmEntry {
                    id: r.get(0),
                    key: blake3::Hash::from_slice(r.get::<&[u8], _>(1))
                        .map(|h| h.to_hex().to_string())
                        .unwrap_or_default(),
                    kind: AlarmKind::parse(r.get(2)).ok_or_else(|| corrupt("kind"))?,
                    rule_id: r.get(3),
                    rule_version: r.get(4),
                    description: r.get(5),
                    priority: Priority::parse(r.get(6)).ok_or_else(|| corrupt("priority"))?,
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
                    silence_count: r.get::<i64, _>(20).max(0) as u32,
                    silenced_minutes: r.get::<i64, _>(21).max(0) as u32,
                })
            })
            .collect()
    }

    async fn ack_alarm(&self, id: i64, operator: &str, reason: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query(
            "UPDATE alarms SET acked_at = ?, acked_by = ?, ack_reason = ? WHERE id = ? AND acked_at IS NULL",
        )
        .bind(millis(self.clock.now()))
        .bind(operator)
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::Refused(format!("alarm {id} does not exist or is already acknowledged")));
        }
        append_audit(
            &mut tx,
            self.clock.now(),
            [operator, "alarm.ack", &format!("alarm {id}"), reason],
            &self.seal.key,
        )
        .await?;
        self.commit_audited(tx).await?;
        Ok(())
    }

    async fn silence_alarm(
        &self,
        id: i64,
        silence: &SilenceRequest,
        operator: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let used: Option<(i64, i64)> =
            sqlx::query_as("SELECT silence_count, silenced_minutes FROM alarms WHERE id = ? AND cleared_at IS NULL")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((count, minutes)) = used else {
            return Err(StoreError::Refused(format!("alarm {id} does not exist or has already cleared")));
        };
        silence.allows(count.max(0) as u32, minutes.max(0) as u32).map_err(StoreError::Refused)?;
        sqlx::query(
            "UPDATE alarms SET silenced_until = ?, silenced_by = ?, silence_reason = ?,
                    silence_count = silence_count + 1, silenced_minutes = silenced_minutes + ?
             WHERE id = ?",
        )
        .bind(millis(silence.until))
        .bind(operator)
        .bind(reason)
        .bind(silence.minutes)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let detail = format!(
            "until {} (silence {} of {}): {reason}",
            silence.until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            count + 1,
            silence.max_silences
        );
        append_audit(
            &mut tx,
            self.clock.now(),
            [operator, "alarm.silence", &format!("alarm {id}"), &detail],
            &self.seal.key,
        )
        .await?;
        self.commit_audited(tx).await?;
        Ok(())
    }
}
