//! An in-memory store for unit tests of the tasks (ingest writer, outbox, alert circuit,
//! supervisor) under `tokio::time::pause`. It keeps what those tasks read and write with the same
//! meaning as the SQLite backend, and lets a test make writes fail to play a broken disk. It keeps
//! no quarantine and does not chain its audit entries: the SQLite tests cover those.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::*;
use crate::accounts::{AccountRecord, Role, SessionRecord};
use crate::identify::{PairingRecord, PatientRecord};
use crate::model::alarm::{AlarmKind, Firing};

/// An in-memory store; see the module doc for what it keeps.
#[derive(Debug)]
pub struct FakeStore {
    clock: SharedClock,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    failing: bool,
    batches: Vec<Vec<ProcessedPayload>>,
    registry: Registry,
    next_id: i64,
    outbox: Vec<(OutboxEntry, DateTime<Utc>)>,
    sandbox: Vec<(i64, String)>,
    alarms: Vec<AlarmEntry>,
    audit: Vec<AuditEntry>,
    credentials: Vec<Credential>,
    credential_changes: i64,
    accounts: Vec<AccountRecord>,
    sessions: Vec<([u8; 32], SessionRecord)>,
    config_snapshot: Option<String>,
}

impl FakeStore {
    /// An empty store stamping rows with `clock`.
    pub fn new(clock: SharedClock) -> FakeStore {
        FakeStore { clock, state: Mutex::new(State::default()) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes every write fail (as a full or broken disk does) until called with `false`.
    pub fn fail_writes(&self, failing: bool) {
        self.state().failing = failing;
    }

    /// The batches written so far.
    pub fn batches(&self) -> Vec<Vec<ProcessedPayload>> {
        self.state().batches.clone()
    }

    /// Registers a device paired with a new verified patient since `from`, consenting to every
    /// flow; returns the patient's store key.
    pub fn pair_new_patient(&self, device_id: &str, from: DateTime<Utc>) -> i64 {
        let mut s = self.state();
        s.next_id += 1;
        let (patient, pairing) = (s.next_id, s.next_id + 1);
        s.next_id += 1;
        let r = &mut s.registry;
        r.generation += 1;
        r.devices.insert(device_id.to_string());
        let record = PatientRecord {
            id: patient,
            id_system: "urn:test".into(),
            id_value: format!("P{patient}"),
            verified: true,
        };
        r.patients.insert(patient, record);
        let pairing = PairingRecord { id: pairing, patient_id: patient, valid_from: from, valid_to: None };
        r.pairings.entry(device_id.to_string()).or_default().push(pairing);
        for flow in Flow::ALL {
            r.consents.insert((patient, flow), true);
        }
        patient
    }

    /// Records the patient's decision for a flow.
    pub fn consent(&self, patient_id: i64, flow: Flow, granted: bool) {
        let mut s = self.state();
        s.registry.generation += 1;
        s.registry.consents.insert((patient_id, flow), granted);
    }

    fn write(&self) -> Result<std::sync::MutexGuard<'_, State>, StoreError> {
        let s = self.state();
        if s.failing {
            return Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut));
        }
        Ok(s)
    }
}

/// The fake's key for the secrets' hash: fixed, since nothing it keeps is real.
const FAKE_KEY: [u8; 32] = [7; 32];

#[async_trait]
impl CredentialStore for FakeStore {
    async fn credential_key(&self) -> Result<[u8; 32], StoreError> {
        Ok(FAKE_KEY)
    }

    async fn credentials_generation(&self) -> Result<i64, StoreError> {
        Ok(self.state().credential_changes)
    }

    async fn credentials(&self) -> Result<Vec<Credential>, StoreError> {
        Ok(self.state().credentials.clone())
    }

    async fn add_credential(
        &self,
        username: &str,
        secret_hash: &[u8; 32],
        allowed: &DeviceAcl,
        _actor: &str,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut s = self.write()?;
        if s.credentials.iter().any(|c| c.username == username) {
            return Err(StoreError::Refused(format!("a credential named {username:?} exists")));
        }
        s.credentials.push(Credential {
            username: username.into(),
            secret_hash: *secret_hash,
            allowed: allowed.clone(),
            created_at: now,
            rotated_at: None,
            revoked_at: None,
        });
        s.credential_changes += 1;
        Ok(())
    }

    async fn rotate_credential(&self, username: &str, secret_hash: &[u8; 32], _actor: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut s = self.write()?;
        let c = s.credentials.iter_mut().find(|c| c.username == username && c.revoked_at.is_none());
        let c = c.ok_or_else(|| StoreError::Refused(format!("no live credential is named {username:?}")))?;
        (c.secret_hash, c.rotated_at) = (*secret_hash, Some(now));
        s.credential_changes += 1;
        Ok(())
    }

    async fn revoke_credential(&self, username: &str, _actor: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut s = self.write()?;
        let c = s.credentials.iter_mut().find(|c| c.username == username && c.revoked_at.is_none());
        c.ok_or_else(|| StoreError::Refused(format!("no live credential is named {username:?}")))?.revoked_at =
            Some(now);
        s.credential_changes += 1;
        Ok(())
    }
}

#[async_trait]
impl Inbox for FakeStore {
    async fn write_batch(&self, batch: &[ProcessedPayload]) -> Result<BatchTally, StoreError> {
        let mut s = self.write()?;
        let mut tally = BatchTally { payloads: batch.len() as u64, ..BatchTally::default() };
        for p in batch {
            match &p.outcome {
                PayloadOutcome::Rejected(_) => tally.rejected += 1,
                PayloadOutcome::Readings(ds) => {
                    for d in ds {
                        match d {
                            Disposition::Accepted { .. } => tally.stored += 1,
                            Disposition::Held { .. } => tally.held += 1,
                            Disposition::Quarantined { .. } => tally.quarantined += 1,
                        }
                    }
                }
            }
        }
        s.batches.push(batch.to_vec());
        Ok(tally)
    }

    async fn purge_before(&self, _cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        self.write().map(|_| 0)
    }

    /// The fake keeps no forensic records: nothing to purge.
    async fn purge_forensic(&self, _policy: &crate::config::RetentionConfig) -> Result<Vec<PurgeSummary>, StoreError> {
        self.write().map(|_| Vec::new())
    }

    async fn forensic_fill(&self) -> Result<(u64, u64), StoreError> {
        Ok((0, 0))
    }

    async fn purge_summaries(&self, _limit: u32) -> Result<Vec<PurgeSummary>, StoreError> {
        Ok(Vec::new())
    }

    async fn counts(&self) -> Result<StoreCounts, StoreError> {
        let s = self.state();
        let payloads = s.batches.iter().map(Vec::len).sum::<usize>() as i64;
        Ok(StoreCounts { payloads, ..StoreCounts::default() })
    }

    async fn readings(&self, _q: &ReadingQuery) -> Result<Vec<StoredReading>, StoreError> {
        Ok(Vec::new())
    }

    async fn rejected(&self, _limit: u32) -> Result<Vec<RejectedEntry>, StoreError> {
        Ok(Vec::new())
    }

    async fn held(&self, _limit: u32) -> Result<Vec<HeldEntry>, StoreError> {
        Ok(Vec::new())
    }

    async fn device_status(&self) -> Result<Vec<DeviceHeard>, StoreError> {
        let all: Vec<ProcessedPayload> = self.state().batches.iter().flatten().cloned().collect();
        Ok(DeviceHeard::of_batch(&all))
    }

    /// The fake keeps no held readings: nothing to move.
    async fn release_held(&self, _patient_id: i64, _operator: &str, _reason: &str) -> Result<u64, StoreError> {
        Ok(0)
    }
}

#[async_trait]
impl RegistryStore for FakeStore {
    async fn registry_generation(&self) -> Result<i64, StoreError> {
        Ok(self.state().registry.generation)
    }

    async fn load_registry(&self) -> Result<Registry, StoreError> {
        Ok(self.state().registry.clone())
    }

    async fn register_device(
        &self,
        device_id: &str,
        _profile_id: Option<&str>,
        _label: Option<&str>,
        _actor: &str,
    ) -> Result<(), StoreError> {
        let mut s = self.write()?;
        s.registry.generation += 1;
        s.registry.devices.insert(device_id.to_string());
        Ok(())
    }

    async fn upsert_patient(
        &self,
        id: &PatientIdentifier,
        _display_name: Option<&str>,
        verified_by: Option<&str>,
        _actor: &str,
    ) -> Result<i64, StoreError> {
        self.verify_patient(id, verified_by.unwrap_or_default(), None).await
    }

    async fn find_patient(&self, id: &PatientIdentifier) -> Result<Option<i64>, StoreError> {
        let s = self.state();
        Ok(s.registry.patients.values().find(|p| p.id_system == id.system && p.id_value == id.value).map(|p| p.id))
    }

    async fn patient(&self, id: i64) -> Result<Option<PatientEntry>, StoreError> {
        Ok(self.state().registry.patients.get(&id).map(|p| PatientEntry {
            id: p.id,
            organisation: "test".into(),
            system: p.id_system.clone(),
            value: p.id_value.clone(),
            verified: p.verified,
            fhir_id: None,
            display_name: None,
        }))
    }

    async fn verify_patient(
        &self,
        id: &PatientIdentifier,
        verified_by: &str,
        _fhir_id: Option<&str>,
    ) -> Result<i64, StoreError> {
        if let Some(key) = self.find_patient(id).await? {
            return Ok(key);
        }
        let mut s = self.write()?;
        s.next_id += 1;
        let key = s.next_id;
        let record = PatientRecord {
            id: key,
            id_system: id.system.clone(),
            id_value: id.value.clone(),
            verified: !verified_by.is_empty(),
        };
        s.registry.patients.insert(key, record);
        s.registry.generation += 1;
        Ok(key)
    }

    async fn pair(&self, new: &NewPairing<'_>, _actor: &str) -> Result<PairingOpened, StoreError> {
        let mut s = self.write()?;
        let pairings = s.registry.pairings.entry(new.device_id.to_string()).or_default();
        let replaced = new.check(pairings).map_err(|conflict| StoreError::Refused(conflict.to_string()))?;
        if let Some(old) = &replaced {
            pairings.iter_mut().filter(|p| p.id == old.id).for_each(|p| p.valid_to = Some(new.from));
        }
        s.next_id += 1;
        let id = s.next_id;
        let pairing = PairingRecord { id, patient_id: new.patient_id, valid_from: new.from, valid_to: new.until };
        s.registry.pairings.entry(new.device_id.to_string()).or_default().push(pairing);
        s.registry.generation += 1;
        Ok(PairingOpened { id, replaced })
    }

    async fn unpair(&self, device_id: &str, at: DateTime<Utc>, _actor: &str) -> Result<i64, StoreError> {
        let mut s = self.write()?;
        let open = s.registry.pairings.get_mut(device_id).and_then(|ps| ps.iter_mut().find(|p| p.valid_to.is_none()));
        let Some(open) = open else {
            return Err(StoreError::Refused(format!("device {device_id} has no open pairing")));
        };
        open.valid_to = Some(at);
        let id = open.id;
        s.registry.generation += 1;
        Ok(id)
    }

    async fn set_device_demo(&self, device_id: &str, demo: bool, _actor: &str) -> Result<(), StoreError> {
        let mut s = self.state();
        if !s.registry.devices.contains(device_id) {
            return Err(StoreError::Refused(format!("device {device_id} is not registered")));
        }
        s.registry.generation += 1;
        if demo {
            s.registry.demo_devices.insert(device_id.to_string());
        } else {
            s.registry.demo_devices.remove(device_id);
        }
        Ok(())
    }

    async fn set_consent(&self, patient_id: i64, flow: Flow, granted: bool, _actor: &str) -> Result<(), StoreError> {
        drop(self.write()?);
        self.consent(patient_id, flow, granted);
        Ok(())
    }

    async fn consents_to(&self, patient_id: i64, flow: Flow) -> Result<bool, StoreError> {
        Ok(self.state().registry.consents_to(patient_id, flow))
    }

    async fn devices(&self) -> Result<Vec<DeviceEntry>, StoreError> {
        let s = self.state();
        Ok(s.registry
            .devices
            .iter()
            .map(|d| {
                let open = s.registry.pairings.get(d).and_then(|ps| ps.iter().find(|p| p.valid_to.is_none()));
                DeviceEntry {
                    device_id: d.clone(),
                    profile_id: None,
                    label: None,
                    pairing_id: open.map(|p| p.id),
                    patient_id: open.map(|p| p.patient_id),
                    paired_since: open.map(|p| p.valid_from),
                    paired_until: None,
                    demo: s.registry.demo_devices.contains(d),
                }
            })
            .collect())
    }

    /// The fake does not record who paired: `created_by` is empty, `created_at` the start.
    async fn pairings_of(&self, device_id: &str) -> Result<Vec<PairingEntry>, StoreError> {
        let s = self.state();
        let mut out: Vec<PairingEntry> = s
            .registry
            .pairings
            .get(device_id)
            .into_iter()
            .flatten()
            .map(|p| PairingEntry {
                id: p.id,
                patient_id: p.patient_id,
                valid_from: p.valid_from,
                valid_to: p.valid_to,
                created_by: String::new(),
                created_at: p.valid_from,
            })
            .collect();
        out.sort_by_key(|p| std::cmp::Reverse(p.valid_from));
        Ok(out)
    }
}

#[async_trait]
impl QuarantineStore for FakeStore {
    async fn quarantine(&self, _limit: u32) -> Result<Vec<QuarantineEntry>, StoreError> {
        Ok(Vec::new())
    }

    async fn quarantine_entry(&self, _id: i64) -> Result<Option<QuarantineEntry>, StoreError> {
        Ok(None)
    }

    async fn resolve_quarantine(
        &self,
        id: i64,
        _resolution: &Resolution,
        _operator: &str,
        _reason: &str,
    ) -> Result<bool, StoreError> {
        Err(StoreError::Refused(format!("quarantined reading {id} does not exist or is already resolved")))
    }

    async fn resolve_quarantine_many(
        &self,
        _device_id: &str,
        resolutions: &[(i64, Resolution)],
        _operator: &str,
        _reason: &str,
    ) -> Result<u64, StoreError> {
        match resolutions.first() {
            None => Ok(0),
            Some((id, _)) => {
                Err(StoreError::Refused(format!("quarantined reading {id} does not exist or is already resolved")))
            }
        }
    }

    async fn quarantine_groups(&self) -> Result<Vec<QuarantineGroup>, StoreError> {
        Ok(Vec::new())
    }

    async fn quarantine_page(
        &self,
        _device_id: Option<&str>,
        _reason: Option<&str>,
        _older_than: Option<QuarantineCursor>,
        _limit: u32,
    ) -> Result<QuarantinePage, StoreError> {
        Ok(QuarantinePage { entries: Vec::new(), total: 0, newer: 0 })
    }

    async fn quarantine_within(
        &self,
        _device_id: &str,
        _from: DateTime<Utc>,
        _until: Option<DateTime<Utc>>,
    ) -> Result<Vec<QuarantineEntry>, StoreError> {
        Ok(Vec::new())
    }

    async fn discard_quarantine_group(
        &self,
        _device_id: &str,
        _reason_code: &str,
        _operator: &str,
        _why: &str,
    ) -> Result<u64, StoreError> {
        Ok(0)
    }
}

#[async_trait]
impl OutboxStore for FakeStore {
    async fn enqueue_event(
        &self,
        event: &ClinicalEvent,
        status: OutboxStatus,
        reason: Option<&str>,
        _submitted_by: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        let now = self.clock.now();
        let mut s = self.write()?;
        let hash = event.content_hash().to_hex();
        if s.outbox.iter().any(|(e, _)| e.hash == hash) {
            return Ok(None);
        }
        s.next_id += 1;
        let id = s.next_id;
        let entry = OutboxEntry {
            id,
            hash,
            patient_id: event.patient_id,
            status,
            reason: reason.map(Into::into),
            attempts: 0,
            ehr_ref: None,
            event: serde_json::to_value(event).map_err(|e| StoreError::Refused(e.to_string()))?,
            created_at: now,
            delivered_at: None,
        };
        s.outbox.push((entry, now));
        Ok(Some(id))
    }

    async fn outbox_due(
        &self,
        now: DateTime<Utc>,
        per_patient: u32,
        limit: u32,
    ) -> Result<Vec<OutboxItem>, StoreError> {
        let s = self.state();
        let mut taken: HashMap<i64, u32> = HashMap::new();
        let mut due = Vec::new();
        for (e, next_at) in s.outbox.iter().filter(|(e, _)| e.status == OutboxStatus::Pending) {
            let n = taken.entry(e.patient_id).or_insert(0);
            // Per-patient order: a patient's later events wait behind its first pending one.
            if *n == 0 && *next_at > now {
                *n = per_patient;
            }
            if *n >= per_patient || due.len() as u32 >= limit {
                continue;
            }
            *n += 1;
            let p = s.registry.patients.get(&e.patient_id);
            let device_id = e.event["device_id"].as_str().unwrap_or_default().to_string();
            due.push(OutboxItem {
                id: e.id,
                device: DeviceIdentity { id: device_id, ..Default::default() },
                event: serde_json::from_value(e.event.clone()).map_err(|e| StoreError::Refused(e.to_string()))?,
                hash: e.hash.clone(),
                patient: PatientRef {
                    fhir_id: None,
                    system: p.map(|p| p.id_system.clone()).unwrap_or_default(),
                    value: p.map(|p| p.id_value.clone()).unwrap_or_default(),
                },
                attempts: e.attempts,
                consented: s.registry.consents_to(e.patient_id, Flow::EhrWrite),
            });
        }
        Ok(due)
    }

    async fn outbox_settle(&self, outcomes: &[(i64, Settlement)]) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut s = self.write()?;
        for (id, settlement) in outcomes {
            let Some((e, next_at)) = s.outbox.iter_mut().find(|(e, _)| e.id == *id) else { continue };
            e.attempts += 1;
            match settlement {
                Settlement::Delivered { ehr_ref } => {
                    (e.status, e.ehr_ref, e.delivered_at) = (OutboxStatus::Delivered, ehr_ref.clone(), Some(now))
                }
                Settlement::Retry { next_at: at, error } => (*next_at, e.reason) = (*at, Some(error.clone())),
                Settlement::Held { reason } => (e.status, e.reason) = (OutboxStatus::Held, Some(reason.clone())),
                Settlement::Dead { reason } => (e.status, e.reason) = (OutboxStatus::Dead, Some(reason.clone())),
            }
        }
        Ok(())
    }

    async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let mut counts: HashMap<&'static str, i64> = HashMap::new();
        for (e, _) in &self.state().outbox {
            *counts.entry(e.status.as_str()).or_default() += 1;
        }
        Ok(counts.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    async fn outbox_entry(&self, id: i64) -> Result<Option<OutboxEntry>, StoreError> {
        Ok(self.state().outbox.iter().find(|(e, _)| e.id == id).map(|(e, _)| e.clone()))
    }

    async fn outbox(&self, status: Option<OutboxStatus>, limit: u32) -> Result<Vec<OutboxEntry>, StoreError> {
        let s = self.state();
        let rows = s.outbox.iter().rev().filter(|(e, _)| status.is_none_or(|st| e.status == st));
        Ok(rows.take(limit as usize).map(|(e, _)| e.clone()).collect())
    }

    async fn outbox_requeue(&self, id: i64, _actor: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut s = self.write()?;
        match s
            .outbox
            .iter_mut()
            .find(|(e, _)| e.id == id && matches!(e.status, OutboxStatus::Dead | OutboxStatus::Held))
        {
            Some((e, next_at)) => {
                (e.status, *next_at) = (OutboxStatus::Pending, now);
                Ok(())
            }
            None => Err(StoreError::Refused(format!("outbox event {id} is not dead or held"))),
        }
    }

    async fn sandbox_record(&self, outbox_id: i64, body: &str) -> Result<(), StoreError> {
        self.write()?.sandbox.push((outbox_id, body.to_string()));
        Ok(())
    }

    async fn sandbox(&self, limit: u32) -> Result<Vec<(i64, String)>, StoreError> {
        Ok(self.state().sandbox.iter().rev().take(limit as usize).cloned().collect())
    }
}

#[async_trait]
impl AlarmStore for FakeStore {
    async fn raise_alarm(&self, f: &Firing) -> Result<Option<i64>, StoreError> {
        let now = self.clock.now();
        let mut s = self.write()?;
        let key = f.key.to_hex();
        if s.alarms.iter().any(|a| a.key == key) {
            return Ok(None);
        }
        s.next_id += 1;
        let id = s.next_id;
        s.alarms.push(AlarmEntry {
            id,
            key,
            kind: f.kind,
            rule_id: f.rule_id.clone(),
            rule_version: f.rule_version.clone(),
            description: f.description.clone(),
            priority: f.priority,
            patient_id: f.patient_id,
            device_id: f.device_id.clone(),
            mdc_code: f.metric.map(|m| m.mdc_code),
            value: f.value,
            since: f.since,
            raised_at: now,
            cleared_at: None,
            acked_at: None,
            acked_by: None,
            ack_reason: None,
            silenced_until: None,
            silenced_by: None,
            silence_reason: None,
            silence_count: 0,
            silenced_minutes: 0,
        });
        Ok(Some(id))
    }

    async fn clear_alarm(&self, key: &ContentHash) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut s = self.write()?;
        let key = key.to_hex();
        s.alarms.iter_mut().filter(|a| a.key == key && a.cleared_at.is_none()).for_each(|a| a.cleared_at = Some(now));
        Ok(())
    }

    async fn clear_technical_alarms(&self) -> Result<u64, StoreError> {
        let now = self.clock.now();
        let mut s = self.write()?;
        let open = s.alarms.iter_mut().filter(|a| a.kind == AlarmKind::Technical && a.cleared_at.is_none());
        Ok(open.map(|a| a.cleared_at = Some(now)).count() as u64)
    }

    async fn alarms(&self, active_only: bool, limit: u32) -> Result<Vec<AlarmEntry>, StoreError> {
        let s = self.state();
        let rows = s.alarms.iter().rev().filter(|a| !active_only || a.cleared_at.is_none());
        Ok(rows.take(limit as usize).cloned().collect())
    }

    async fn ack_alarm(&self, id: i64, operator: &str, reason: &str) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut s = self.write()?;
        match s.alarms.iter_mut().find(|a| a.id == id && a.acked_at.is_none()) {
            Some(a) => {
                (a.acked_at, a.acked_by, a.ack_reason) = (Some(now), Some(operator.into()), Some(reason.into()));
                Ok(())
            }
            None => Err(StoreError::Refused(format!("alarm {id} does not exist or is already acknowledged"))),
        }
    }

    async fn silence_alarm(
        &self,
        id: i64,
        silence: &SilenceRequest,
        operator: &str,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut s = self.write()?;
        match s.alarms.iter_mut().find(|a| a.id == id && a.cleared_at.is_none()) {
            Some(a) => {
                silence.allows(a.silence_count, a.silenced_minutes).map_err(StoreError::Refused)?;
                (a.silenced_until, a.silenced_by, a.silence_reason) =
                    (Some(silence.until), Some(operator.into()), Some(reason.into()));
                a.silence_count += 1;
                a.silenced_minutes += silence.minutes;
                Ok(())
            }
            None => Err(StoreError::Refused(format!("alarm {id} does not exist or has already cleared"))),
        }
    }
}

#[async_trait]
impl AuditLog for FakeStore {
    async fn audit(&self, actor: &str, action: &str, subject: &str, detail: &str) -> Result<(), StoreError> {
        let at = self.clock.now();
        let mut s = self.write()?;
        let id = s.audit.len() as i64 + 1;
        let entry = AuditEntry {
            id,
            at,
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            detail: detail.into(),
        };
        s.audit.push(entry);
        Ok(())
    }

    async fn audit_entries(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self.state().audit.iter().rev().take(limit as usize).cloned().collect())
    }

    async fn verify_audit(&self) -> Result<AuditVerdict, StoreError> {
        Ok(AuditVerdict {
            entries: self.state().audit.len() as u64,
            first_broken: None,
            problem: None,
            checkpoint: None,
        })
    }

    async fn verify_backup(&self, _copy: &std::path::Path) -> Result<AuditVerdict, StoreError> {
        Err(StoreError::Refused("the in-memory store makes no backups".into()))
    }

    async fn check_integrity(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn backup(&self, _to: &std::path::Path, _actor: &str) -> Result<(), StoreError> {
        Err(StoreError::Refused("the in-memory store has no file to copy".into()))
    }
}

#[async_trait]
impl AccountStore for FakeStore {
    async fn account_count(&self) -> Result<i64, StoreError> {
        Ok(self.state().accounts.len() as i64)
    }

    async fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        Ok(self.state().accounts.iter().find(|a| a.name == name).cloned())
    }

    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        Ok(self.state().accounts.clone())
    }

    async fn add_account(
        &self,
        name: &str,
        password_hash: &str,
        roles: &[Role],
        _actor: &str,
        only_if_none: bool,
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut s = self.write()?;
        if (only_if_none && !s.accounts.is_empty()) || s.accounts.iter().any(|a| a.name == name) {
            return Err(StoreError::Refused(format!("an account named {name} exists already")));
        }
        s.accounts.push(AccountRecord {
            name: name.into(),
            password_hash: password_hash.into(),
            roles: roles.to_vec(),
            created_at: now,
            failures: 0,
            retry_after: None,
        });
        Ok(())
    }

    async fn set_roles(&self, name: &str, roles: &[Role], _actor: &str) -> Result<(), StoreError> {
        let mut s = self.write()?;
        let a = s.accounts.iter_mut().find(|a| a.name == name).ok_or_else(|| StoreError::Refused(name.into()))?;
        a.roles = roles.to_vec();
        Ok(())
    }

    async fn set_password(&self, name: &str, password_hash: &str, _actor: &str) -> Result<(), StoreError> {
        let mut s = self.write()?;
        let a = s.accounts.iter_mut().find(|a| a.name == name).ok_or_else(|| StoreError::Refused(name.into()))?;
        a.password_hash = password_hash.into();
        Ok(())
    }

    async fn record_sign_in(
        &self,
        name: &str,
        ok: bool,
        retry_after: Option<DateTime<Utc>>,
        _how: &str,
    ) -> Result<(), StoreError> {
        let mut s = self.write()?;
        if let Some(a) = s.accounts.iter_mut().find(|a| a.name == name) {
            a.failures = if ok { 0 } else { a.failures + 1 };
            a.retry_after = retry_after;
        }
        Ok(())
    }

    async fn open_session(
        &self,
        token_hash: &[u8; 32],
        session: &SessionRecord,
        _actor: &str,
        _reason: &str,
    ) -> Result<(), StoreError> {
        self.write()?.sessions.push((*token_hash, session.clone()));
        Ok(())
    }

    async fn session(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError> {
        let now = self.clock.now();
        Ok(self.state().sessions.iter().find(|(h, s)| h == token_hash && s.expires_at > now).map(|(_, s)| s.clone()))
    }

    async fn config_snapshot(&self) -> Result<Option<String>, StoreError> {
        Ok(self.state().config_snapshot.clone())
    }

    async fn save_config_snapshot(&self, snapshot: &str, _changes: &str) -> Result<(), StoreError> {
        self.write()?.config_snapshot = Some(snapshot.into());
        Ok(())
    }
}
