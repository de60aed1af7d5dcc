//! Devices, patients, pairings and consents; every change audited in its own transaction.

use super::*;

#[async_trait]
impl RegistryStore for SqliteStore {
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
        for row in sqlx::query("SELECT device_id, demo FROM devices").fetch_all(&mut *tx).await? {
            let device: String = row.get(0);
            if row.get::<i64, _>(1) != 0 {
                registry.demo_devices.insert(device.clone());
            }
            registry.devices.insert(device);
        }
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
        actor: &str,
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
        .bind(millis(self.clock.now()))
        .execute(&mut *tx)
        .await?;
        append_audit(
            &mut tx,
            self.clock.now(),
            [actor, "device.register", device_id, &format!("profile {}", profile_id.unwrap_or("-"))],
            &self.seal.key,
        )
        .await?;
        self.commit_audited(tx).await?;
        Ok(())
    }

    async fn set_device_demo(&self, device_id: &str, demo: bool, actor: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query("UPDATE devices SET demo = ? WHERE device_id = ?")
            .bind(i64::from(demo))
            .bind(device_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::Refused(format!("device {device_id} is not registered")));
        }
        let detail = if demo { "its readings are demo data" } else { "its readings are real" };
        append_audit(&mut tx, self.clock.now(), [actor, "device.demo", device_id, detail], &self.seal.key).await?;
        self.commit_audited(tx).await?;
        Ok(())
    }

    async fn upsert_patient(
        &self,
        id: &PatientIdentifier,
        display_name: Option<&str>,
        verified_by: Option<&str>,
        actor: &str,
    ) -> Result<i64, StoreError> {
        let mut tx = self.write_tx().await?;
        let verified_at = verified_by.map(|_| millis(self.clock.now()));
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
        .fetch_one(&mut *tx)
        .await?;
        let verified = if verified_by.is_some() { "verified" } else { "unverified" };
        append_audit(
            &mut tx,
            self.clock.now(),
            [actor, "patient.register", &format!("patient {key}"), verified],
            &self.seal.key,
        )
        .await?;
        self.commit_audited(tx).await?;
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
        .bind(millis(self.clock.now()))
        .bind(verified_by)
        .bind(fhir_id)
        .fetch_one(&mut *tx)
        .await?;
        append_audit(
            &mut tx,
            self.clock.now(),
            [verified_by, "patient.verify", &format!("patient {key}"), fhir_id.unwrap_or("")],
            &self.seal.key,
        )
        .await?;
        self.commit_audited(tx).await?;
        Ok(key)
    }

    async fn pair(&self, new: &NewPairing<'_>, actor: &str) -> Result<PairingOpened, StoreError> {
        let (device_id, patient_id, from, until) = (new.device_id, new.patient_id, new.from, new.until);
        if until.is_some_and(|u| u <= from) {
            return Err(StoreError::Refused("the pairing must end after it starts".into()));
        }
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
        let existing: Vec<PairingRecord> =
            sqlx::query("SELECT id, patient_id, valid_from, valid_to FROM pairings WHERE device_id = ?")
                .bind(device_id)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|row| PairingRecord {
                    id: row.get(0),
                    patient_id: row.get(1),
                    valid_from: from_millis(row.get(2)),
                    valid_to: row.get::<Option<i64>, _>(3).map(from_millis),
                })
                .collect();
        let replaced = new.check(&existing).map_err(|conflict| StoreError::Refused(conflict.to_string()))?;
        if let Some(old) = &replaced {
            sqlx::query("UPDATE pairings SET valid_to = ? WHERE id = ?")
                .bind(millis(from))
                .bind(old.id)
                .execute(&mut *tx)
                .await?;
            let detail = format!(
                "pairing {}, patient {}, until {}, replaced by patient {patient_id}",
                old.id,
                old.patient_id,
                from.to_rfc3339()
            );
            append_audit(&mut tx, self.clock.now(), [actor, "pairing.close", device_id, &detail], &self.seal.key)
                .await?;
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO pairings (device_id, patient_id, valid_from, valid_to, created_by, created_at)
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(device_id)
        .bind(patient_id)
        .bind(millis(from))
        .bind(until.map(millis))
        .bind(actor)
        .bind(millis(self.clock.now()))
        .fetch_one(&mut *tx)
        .await?;
        let mut detail = period(id, patient_id, from, until);
        if let Some(old) = &replaced {
            detail.push_str(&format!(", replacing patient {} (pairing {})", old.patient_id, old.id));
        }
        if let Some(reason) = new.reason {
            detail.push_str(&format!(", reason: {reason}"));
        }
        append_audit(&mut tx, self.clock.now(), [actor, "pairing.open", device_id, &detail], &self.seal.key).await?;
        self.commit_audited(tx).await?;
        Ok(PairingOpened { id, replaced })
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
            self.clock.now(),
            [actor, "pairing.close", device_id, &format!("pairing {id}, until {}", from_millis(end).to_rfc3339())],
            &self.seal.key,
        )
        .await?;
        self.commit_audited(tx).await?;
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
        .bind(millis(self.clock.now()))
        .bind(actor)
        .execute(&mut *tx)
        .await?;
        let decision = if granted { "granted" } else { "refused" };
        append_audit(
            &mut tx,
            self.clock.now(),
            [actor, "consent.record", &format!("patient {patient_id}"), &format!("{flow} {decision}")],
            &self.seal.key,
        )
        .await?;
        self.commit_audited(tx).await?;
        Ok(())
    }

    async fn consents_to(&self, patient_id: i64, flow: Flow) -> Result<bool, StoreError> {
        let granted: Option<i64> = sqlx::query_scalar("SELECT granted FROM consents WHERE patient_id = ? AND flow = ?")
            .bind(patient_id)
            .bind(flow.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(granted.is_some_and(|g| g != 0))
    }

    async fn devices(&self) -> Result<Vec<DeviceEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT d.device_id, d.profile_id, d.label, p.id, p.patient_id, p.valid_from, p.valid_to, d.demo
             FROM devices d LEFT JOIN pairings p ON p.device_id = d.device_id
                 AND p.valid_from <= ?1 AND (p.valid_to IS NULL OR p.valid_to > ?1)
             ORDER BY d.device_id",
        )
        .bind(millis(self.clock.now()))
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
                demo: r.get::<i64, _>(7) != 0,
            })
            .collect())
    }

    async fn pairings_of(&self, device_id: &str) -> Result<Vec<PairingEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, patient_id, valid_from, valid_to, created_by, created_at FROM pairings
             WHERE device_id = ? ORDER BY valid_from DESC, id DESC",
        )
        .bind(device_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| PairingEntry {
                id: r.get(0),
                patient_id: r.get(1),
                valid_from: from_millis(r.get(2)),
                valid_to: r.get::<Option<i64>, _>(3).map(from_millis),
                created_by: r.get(4),
                created_at: from_millis(r.get(5)),
            })
            .collect())
    }
}

/// A pairing's audit detail: store keys and its period, never an identifier.
fn period(id: i64, patient_id: i64, from: DateTime<Utc>, until: Option<DateTime<Utc>>) -> String {
    match until {
        Some(until) => {
            format!("pairing {id}, patient {patient_id}, from {} until {}", from.to_rfc3339(), until.to_rfc3339())
        }
        None => format!("pairing {id}, patient {patient_id}, from {}", from.to_rfc3339()),
    }
}
