//! The store interface and its rows. One backend today (SQLite, [`sqlite`]); PostgreSQL can follow
//! behind the same trait.
//!
//! Invariant: [`Store::write_batch`] is one transaction. When it returns `Ok`, every payload of the
//! batch and everything derived from it is durable, so the sources may acknowledge; when it fails,
//! nothing of it is, and no source acknowledges.

#[cfg(any(test, feature = "test-util"))]
pub mod fake;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use ts_rs::TS;

use crate::access::{Credential, DeviceAcl};
use crate::accounts::{AccountRecord, Role, SessionRecord};
use crate::audit::{AuditEntry, AuditVerdict};
use crate::clock::SharedClock;
use crate::fhir::PatientRef;
use crate::identify::{Flow, NewPairing, PairingRecord, QuarantineReason, Registry};
use crate::model::alarm::{AlarmKind, Firing, Priority};
use crate::model::event::ClinicalEvent;
use crate::model::{ContentHash, DeviceIdentity, Reading, Validity};
use crate::normalise::Rejection;

/// Opens the store a URL names (`sqlite://PATH` today), migrated and ready; rows are stamped with
/// `clock`.
pub async fn open(url: &str, clock: SharedClock) -> Result<Arc<dyn Store>, StoreError> {
    open_limited(url, clock, PageLimit::default(), None).await
}

/// [`open`], with a test-only ceiling on the database's size, and the site's syslog for the audit
/// checkpoints.
pub async fn open_limited(
    url: &str,
    clock: SharedClock,
    limit: PageLimit,
    syslog: Option<Arc<crate::audit::syslog::Syslog>>,
) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(sqlite::SqliteStore::open_limited(url, clock, limit).await?.with_syslog(syslog)));
    }
    Err(StoreError::Refused(format!(
        "no store backend serves {:?}: use sqlite://PATH",
        url.split(':').next().unwrap_or(url)
    )))
}

/// A test-only ceiling on the database's size in pages (`[store] test_max_pages`): SQLite then
/// answers SQLITE_FULL as a full disk would, and `POST /drill/store/space` lifts it. 0: none.
#[derive(Debug, Clone, Default)]
pub struct PageLimit(pub Arc<std::sync::atomic::AtomicU32>);

impl PageLimit {
    /// SQLite's own largest page count: no ceiling.
    pub const LIFTED: u32 = 1_073_741_823;

    /// A ceiling of `pages`.
    pub fn of(pages: u32) -> PageLimit {
        PageLimit(Arc::new(pages.into()))
    }

    /// The ceiling now (0: none set).
    pub fn get(&self) -> u32 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Lifts the ceiling: space returns.
    pub fn lift(&self) {
        self.0.store(Self::LIFTED, std::sync::atomic::Ordering::Relaxed);
    }
}

/// What went wrong in the store. Details are logged once; the user sees the summary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or failed; usually transient (locked, disk full, I/O).
    #[error("the store is unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("the store's schema could not be migrated: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored row cannot be read back (a value no version of Vigil writes).
    #[error("the store holds a row it cannot read: {0}")]
    Corrupt(String),
    /// An operator request that cannot be carried out as asked.
    #[error("{0}")]
    Refused(String),
    /// The database file is damaged (not a database, or failing its integrity check).
    #[error(
        "the database {path} is damaged ({detail}). Vigil will not run on it: the device-patient pairings \
         it holds are what alarms are attributed by. To restore: stop every Vigil on this store, move \
         {path} and its -wal and -shm files aside (keep them for review), copy your newest backup \
         (made by vigil backup) to {path} and its .checkpoint file to audit.checkpoint beside it (the \
         audit trail then ends where the backup does), and start again. Call clinical engineering if \
         there is no backup."
    )]
    Damaged {
        /// The database file.
        path: String,
        /// What SQLite said.
        detail: String,
    },
}

/// One received payload and what the pipeline made of it, written in one batch.
#[derive(Debug, Clone)]
pub struct ProcessedPayload {
    /// `mqtt`, `mllp`, `http`, `file`.
    pub source: &'static str,
    /// Where it came from within the source (the MQTT topic...).
    pub origin: String,
    /// When the source received it.
    pub received_at: DateTime<Utc>,
    /// The raw bytes, kept whatever happens to them.
    pub payload: bytes::Bytes,
    /// blake3 over source, origin and payload: a resent payload is recognised.
    pub payload_hash: ContentHash,
    /// The profile that read it, if one matched.
    pub profile_id: Option<String>,
    /// The result of normalise and identify.
    pub outcome: PayloadOutcome,
    /// Fields it carries that its profile does not read (counted on the board).
    pub unmapped: Vec<String>,
    /// Battery and firmware, where its profile maps them (device status, not readings).
    pub status: crate::normalise::DeviceStatus,
}

/// What became of a payload.
#[derive(Debug, Clone)]
pub enum PayloadOutcome {
    /// No canonical reading could be read from it.
    Rejected(Rejection),
    /// Readings, each with its own fate.
    Readings(Vec<Disposition>),
}

/// Where one reading goes.
#[derive(Debug, Clone)]
pub enum Disposition {
    /// To the telemetry store (unless it is a duplicate).
    Accepted {
        /// The reading.
        reading: Reading,
        /// Its identity.
        hash: ContentHash,
        /// Its patient.
        patient_id: i64,
    },
    /// Held for want of consent.
    Held {
        /// The reading.
        reading: Reading,
        /// Its identity.
        hash: ContentHash,
        /// Its patient.
        patient_id: i64,
        /// The flow without consent.
        flow: Flow,
    },
    /// To quarantine.
    Quarantined {
        /// The reading.
        reading: Reading,
        /// Why.
        reason: QuarantineReason,
        /// Operator-facing detail, without PHI.
        detail: String,
    },
}

impl Disposition {
    /// The reading, whatever its fate.
    pub fn reading(&self) -> &Reading {
        match self {
            Disposition::Accepted { reading, .. }
            | Disposition::Held { reading, .. }
            | Disposition::Quarantined { reading, .. } => reading,
        }
    }
}

/// Counts of what one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct BatchTally {
    /// Payloads newly written to the inbox.
    pub payloads: u64,
    /// Payloads that were already in the inbox (resent or redelivered), not processed again.
    pub duplicate_payloads: u64,
    /// New readings stored as telemetry.
    pub stored: u64,
    /// Readings suppressed as repeats of one already seen.
    pub duplicate_readings: u64,
    /// Payloads rejected.
    pub rejected: u64,
    /// Readings quarantined.
    pub quarantined: u64,
    /// Readings held for consent.
    pub held: u64,
    /// MLLP messages whose control id (with MSH-3 and MSH-4) came before with other content.
    pub control_id_reused: u64,
}

impl BatchTally {
    /// Adds another tally into this one.
    pub fn add(&mut self, o: &BatchTally) {
        self.payloads += o.payloads;
        self.duplicate_payloads += o.duplicate_payloads;
        self.stored += o.stored;
        self.duplicate_readings += o.duplicate_readings;
        self.rejected += o.rejected;
        self.quarantined += o.quarantined;
        self.held += o.held;
        self.control_id_reused += o.control_id_reused;
    }
}

/// Totals over the whole store, for the board and the tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StoreCounts {
    /// Payloads in the inbox.
    pub payloads: i64,
    /// Readings in the telemetry store.
    pub readings: i64,
    /// Payload and reading repeats suppressed.
    pub duplicates: i64,
    /// Rejected payloads.
    pub rejected: i64,
    /// Quarantined readings.
    pub quarantined: i64,
    /// Readings held for consent.
    pub held: i64,
}

/// What one purge of forensic records removed, by table and reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurgeSummary {
    /// When.
    pub at: DateTime<Utc>,
    /// `rejected` or `quarantine`.
    pub what: String,
    /// The rows' reason.
    pub reason: String,
    /// The rule that removed them.
    pub why: String,
    /// How many.
    pub rows: u64,
    /// When the oldest of them was recorded.
    pub first_seen: DateTime<Utc>,
    /// When the newest of them was recorded.
    pub last_seen: DateTime<Utc>,
    /// blake3 over the removed payloads' hashes, in order, hex.
    pub digest: String,
}

/// A stored reading, as queries return it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredReading {
    /// Content hash, hex.
    pub hash: String,
    /// Device id.
    pub device_id: String,
    /// Patient store key.
    pub patient_id: i64,
    /// MDC code.
    pub mdc_code: u32,
    /// Value in `unit`.
    pub value: f64,
    /// UCUM unit.
    pub unit: String,
    /// Observed time.
    pub observed_at: DateTime<Utc>,
    /// Validity flag.
    pub validity: String,
}

/// Which readings to return; every field narrows.
#[derive(Debug, Clone, Default)]
pub struct ReadingQuery {
    /// Only this patient.
    pub patient_id: Option<i64>,
    /// Only this device.
    pub device_id: Option<String>,
    /// Only this MDC code.
    pub mdc_code: Option<u32>,
    /// Observed at or after.
    pub from: Option<DateTime<Utc>>,
    /// Observed before.
    pub to: Option<DateTime<Utc>>,
    /// At most this many, newest first.
    pub limit: Option<u32>,
}

/// A quarantined reading, with its reason and the raw payload it came from.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct QuarantineEntry {
    /// Store key.
    pub id: i64,
    /// Device id.
    pub device_id: String,
    /// MDC code.
    pub mdc_code: u32,
    /// What it measures, e.g. "SpO2" (the MDC code when the code table does not know it).
    pub metric: String,
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: String,
    /// Observed time.
    pub observed_at: DateTime<Utc>,
    /// Reason code.
    pub reason: String,
    /// Reason, for the operator.
    pub detail: String,
    /// The raw payload (console only: may hold PHI).
    pub payload: String,
    /// The topic (or other origin) it came in on, which chose its profile.
    pub origin: String,
}

/// A row's place in the quarantine's newest-first order. Pages start after a row, not at a row
/// count, so rows arriving or being released meanwhile neither repeat nor skip a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, TS)]
#[ts(export)]
pub struct QuarantineCursor {
    /// The row's observed time.
    pub observed_at: DateTime<Utc>,
    /// The row's store key (orders rows observed at the same time).
    pub id: i64,
}

/// A page of quarantined readings, newest first, and where it lies among all that match.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct QuarantinePage {
    /// The rows, newest first.
    pub entries: Vec<QuarantineEntry>,
    /// How many match the filter.
    pub total: u64,
    /// How many that match are newer than this page's first row.
    pub newer: u64,
}

/// Quarantined readings of one device for one reason.
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
#[ts(export)]
pub struct QuarantineGroup {
    /// Device id.
    pub device_id: String,
    /// Reason code, e.g. `unknown_device`, `unpaired`.
    pub reason: String,
    /// The newest reading's reason, for the operator.
    pub detail: String,
    /// The topic (or other origin) the newest came in on.
    pub origin: String,
    /// How many readings.
    pub count: u64,
    /// The oldest reading's observed time.
    pub first_observed: DateTime<Utc>,
    /// The newest reading's observed time.
    pub last_observed: DateTime<Utc>,
    /// Whether the device is registered (else Register comes before pairing).
    pub registered: bool,
    /// The registered profile, or the one its topic suggests.
    pub profile_id: Option<String>,
}

/// What the store keeps of a device heard: see [`Inbox::device_status`].
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceHeard {
    /// Device id.
    pub device_id: String,
    /// The topic (or other origin) of its newest payload.
    pub origin: String,
    /// The profile that read it.
    pub profile_id: Option<String>,
    /// When its newest payload arrived.
    pub last_heard: DateTime<Utc>,
    /// The worst validity among its newest payload's readings.
    pub validity: Validity,
    /// The battery charge it last reported.
    pub battery_pct: Option<f64>,
    /// The firmware it last reported.
    pub firmware: Option<String>,
    /// Payloads of it stored in all.
    pub messages: u64,
}

impl DeviceHeard {
    /// Each device a batch heard from, with its newest payload's facts and how many payloads.
    pub fn of_batch(batch: &[ProcessedPayload]) -> Vec<DeviceHeard> {
        let mut heard: std::collections::BTreeMap<&str, DeviceHeard> = std::collections::BTreeMap::new();
        for p in batch {
            let PayloadOutcome::Readings(ds) = &p.outcome else { continue };
            let mut worst: std::collections::BTreeMap<&str, Validity> = std::collections::BTreeMap::new();
            for d in ds {
                let reading = d.reading();
                let v = worst.entry(reading.device_id.as_str()).or_insert(reading.validity);
                *v = v.worst(reading.validity);
            }
            for (device_id, validity) in worst {
                let entry = heard.entry(device_id).or_insert_with(|| DeviceHeard {
                    device_id: device_id.to_string(),
                    origin: p.origin.clone(),
                    profile_id: p.profile_id.clone(),
                    last_heard: p.received_at,
                    validity,
                    battery_pct: None,
                    firmware: None,
                    messages: 0,
                });
                entry.messages += 1;
                if p.received_at >= entry.last_heard {
                    entry.origin.clone_from(&p.origin);
                    entry.profile_id.clone_from(&p.profile_id);
                    entry.last_heard = p.received_at;
                    entry.validity = validity;
                }
                entry.battery_pct = p.status.battery_pct.or(entry.battery_pct);
                entry.firmware = p.status.firmware.clone().or(entry.firmware.take());
            }
        }
        heard.into_values().collect()
    }
}

/// One pairing of a device, past or current, for its history.
#[derive(Debug, Clone, Serialize)]
pub struct PairingEntry {
    /// Store key.
    pub id: i64,
    /// Patient store key.
    pub patient_id: i64,
    /// Start (inclusive).
    pub valid_from: DateTime<Utc>,
    /// End (exclusive); none while open.
    pub valid_to: Option<DateTime<Utc>>,
    /// Who made it.
    pub created_by: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// What an MDC code measures, as the console names it ("MDC 150456" for a code not in the table).
pub fn metric_name(mdc_code: u32) -> String {
    crate::model::codes::metric_by_code(mdc_code).map_or_else(|| format!("MDC {mdc_code}"), |m| m.display.to_string())
}

/// How an operator resolves a quarantined reading.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// Re-identified after the pairing was fixed: stored as telemetry, or held for consent.
    Release {
        /// The reading, normalised again from its payload.
        reading: crate::model::Reading,
        /// Its content hash (dedup).
        hash: ContentHash,
        /// The patient it now identifies.
        patient_id: i64,
        /// The flow it lacks consent for, when held.
        held_for: Option<Flow>,
    },
    /// Kept for forensics, never charted.
    Discard,
}

/// A rejected payload with its reason.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct RejectedEntry {
    /// Store key.
    pub id: i64,
    /// Source kind.
    pub source: String,
    /// Topic or other origin.
    pub origin: String,
    /// Reason code.
    pub reason: String,
    /// What, where, why.
    pub detail: String,
    /// The raw payload (console only).
    pub payload: String,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
}

/// A held reading and the flow it lacks consent for.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct HeldEntry {
    /// Device id.
    pub device_id: String,
    /// Patient store key.
    pub patient_id: i64,
    /// MDC code.
    pub mdc_code: u32,
    /// What it measures, e.g. "SpO2".
    pub metric: String,
    /// Value.
    pub value: f64,
    /// UCUM unit.
    pub unit: String,
    /// Observed time.
    pub observed_at: DateTime<Utc>,
    /// The flow without consent.
    pub flow: String,
    /// Why it is held.
    pub reason: String,
    /// The raw payload it came in (console only: may hold PHI).
    pub payload: String,
}

/// A registered device and its current pairing, for `vigil devices`.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct DeviceEntry {
    /// Device id.
    pub device_id: String,
    /// Profile id, if known.
    pub profile_id: Option<String>,
    /// Free label.
    pub label: Option<String>,
    /// The open pairing's id, if paired now.
    pub pairing_id: Option<i64>,
    /// The paired patient's store key, if paired now.
    pub patient_id: Option<i64>,
    /// Since when.
    pub paired_since: Option<DateTime<Utc>>,
    /// Until when, if the pairing was made for a period.
    pub paired_until: Option<DateTime<Utc>>,
    /// Its readings are demo or test data.
    pub demo: bool,
}

/// What [`RegistryStore::pair`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingOpened {
    /// The new pairing's store key.
    pub id: i64,
    /// The other patient's open pairing it ended, when the operator confirmed the replacement.
    pub replaced: Option<PairingRecord>,
}

/// A patient identifier, as an operator types it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientIdentifier {
    /// Issuing organisation.
    pub organisation: String,
    /// Identifier system.
    pub system: String,
    /// Identifier value. PHI.
    pub value: String,
}

/// Where an event stands in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, clap::ValueEnum, TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum OutboxStatus {
    /// Failed validation or consent: kept with its reason, not sent.
    Held,
    /// Waiting for delivery.
    Pending,
    /// Confirmed by the EHR.
    Delivered,
    /// Refused by the EHR for good: kept with its answer for an operator.
    Dead,
}

impl OutboxStatus {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxStatus::Held => "held",
            OutboxStatus::Pending => "pending",
            OutboxStatus::Delivered => "delivered",
            OutboxStatus::Dead => "dead",
        }
    }
}

/// An event due for delivery, with what a sink needs to send it.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    /// Outbox key.
    pub id: i64,
    /// The event.
    pub event: ClinicalEvent,
    /// Its content hash, hex: the idempotency key.
    pub hash: String,
    /// Its patient as the EHR knows it.
    pub patient: PatientRef,
    /// Its device: the store gives the id and the registered profile; the outbox completes the
    /// rest from the profile before a sink names the device.
    pub device: DeviceIdentity,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Whether the patient's consent to `ehr-write` is recorded now (checked again at the hop).
    pub consented: bool,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// The EHR confirmed it.
    Delivered {
        /// Where the EHR put it (e.g. `Observation/123`), if it said.
        ehr_ref: Option<String>,
    },
    /// A retryable failure: try again at `next_at`.
    Retry {
        /// When.
        next_at: DateTime<Utc>,
        /// What went wrong.
        error: String,
    },
    /// Not sent: held with a reason (consent withdrawn since it was queued).
    Held {
        /// Why.
        reason: String,
    },
    /// A permanent refusal: to the dead-letter list with the EHR's answer.
    Dead {
        /// The EHR's answer (OperationOutcome text, ERR segment...).
        reason: String,
    },
}

/// An outbox row, for the console and `vigil outbox`.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxEntry {
    /// Outbox key.
    pub id: i64,
    /// Content hash, hex.
    pub hash: String,
    /// Patient store key.
    pub patient_id: i64,
    /// Status.
    pub status: OutboxStatus,
    /// Why held or dead, or the last error while pending.
    pub reason: Option<String>,
    /// Attempts so far.
    pub attempts: u32,
    /// Where the EHR put it.
    pub ehr_ref: Option<String>,
    /// The event.
    pub event: serde_json::Value,
    /// When queued.
    pub created_at: DateTime<Utc>,
    /// When delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// A patient row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PatientEntry {
    /// Store key.
    pub id: i64,
    /// Organisation.
    pub organisation: String,
    /// Identifier system.
    pub system: String,
    /// Identifier value. PHI.
    pub value: String,
    /// Whether verified.
    pub verified: bool,
    /// The EHR's resource id, when verified there.
    pub fhir_id: Option<String>,
    /// The name, as the registry or the EHR gave it. PHI: console only.
    pub display_name: Option<String>,
}

/// An alarm row.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct AlarmEntry {
    /// Store key.
    pub id: i64,
    /// The condition's key (hex), as pages carry it.
    pub key: String,
    /// About the patient or about the monitoring.
    pub kind: AlarmKind,
    /// The rule that raised it.
    pub rule_id: String,
    /// The rule set's version.
    pub rule_version: String,
    /// What it means, in words.
    pub description: String,
    /// Its priority.
    pub priority: Priority,
    /// Patient store key, when it is about a patient.
    pub patient_id: Option<i64>,
    /// Device, or the component for an adapter's alarm.
    pub device_id: String,
    /// MDC code, for a physiological alarm.
    pub mdc_code: Option<u32>,
    /// The value that completed the condition.
    pub value: Option<f64>,
    /// When the condition began.
    pub since: DateTime<Utc>,
    /// When the alarm was raised.
    pub raised_at: DateTime<Utc>,
    /// When the condition cleared.
    pub cleared_at: Option<DateTime<Utc>>,
    /// When acknowledged.
    pub acked_at: Option<DateTime<Utc>>,
    /// Who acknowledged.
    pub acked_by: Option<String>,
    /// Why.
    pub ack_reason: Option<String>,
    /// Re-notification held back until then.
    pub silenced_until: Option<DateTime<Utc>>,
    /// Who silenced it.
    pub silenced_by: Option<String>,
    /// Why.
    pub silence_reason: Option<String>,
    /// How many times its escalation was silenced.
    pub silence_count: u32,
    /// For how many minutes in all.
    pub silenced_minutes: u32,
}

/// The durable inbox and the telemetry derived from it: what the ingest writer and retention use.
/// Implementations must make `write_batch` atomic and durable.
#[async_trait]
pub trait Inbox: Send + Sync + 'static {
    /// Writes a processed batch in one transaction, suppressing repeated payloads and readings.
    async fn write_batch(&self, batch: &[ProcessedPayload]) -> Result<BatchTally, StoreError>;
    /// Deletes raw payloads and telemetry received/observed before `cutoff` (returns how many rows),
    /// and the fleet's rows of unregistered senders last heard before it. Quarantine, rejected and
    /// held entries are forensic records and are kept.
    async fn purge_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Purges the forensic records retention allows (by age; past their bounds, the oldest from
    /// senders no known device stands for), each purge summarised in `purge_summaries` and audited,
    /// in one transaction. Returns the summaries written.
    async fn purge_forensic(&self, policy: &crate::config::RetentionConfig) -> Result<Vec<PurgeSummary>, StoreError>;
    /// The fill of the bounded forensic tables: (rejected, unknown-device quarantine).
    async fn forensic_fill(&self) -> Result<(u64, u64), StoreError>;
    /// What retention purged, newest first.
    async fn purge_summaries(&self, limit: u32) -> Result<Vec<PurgeSummary>, StoreError>;
    /// Totals for the board.
    async fn counts(&self) -> Result<StoreCounts, StoreError>;
    /// Telemetry matching the query, newest first.
    async fn readings(&self, q: &ReadingQuery) -> Result<Vec<StoredReading>, StoreError>;
    /// Rejected payloads, newest first.
    async fn rejected(&self, limit: u32) -> Result<Vec<RejectedEntry>, StoreError>;
    /// Every device heard, registered or not, with its newest payload's facts.
    async fn device_status(&self) -> Result<Vec<DeviceHeard>, StoreError>;
    /// Readings held for consent, newest first.
    async fn held(&self, limit: u32) -> Result<Vec<HeldEntry>, StoreError>;
    /// Moves a patient's readings held for want of `store` consent into telemetry, once that
    /// consent is recorded (refused before), audited with the operator and reason in the same
    /// transaction. Returns how many readings moved.
    async fn release_held(&self, patient_id: i64, operator: &str, reason: &str) -> Result<u64, StoreError>;
}

/// Devices, patients, pairings and consents.
#[async_trait]
pub trait RegistryStore: Send + Sync + 'static {
    /// The registry's change counter; cheap, polled before each batch.
    async fn registry_generation(&self) -> Result<i64, StoreError>;
    /// A full snapshot of devices, patients, pairings and consents.
    async fn load_registry(&self) -> Result<Registry, StoreError>;
    /// Registers a device (idempotent; updates profile and label), audited in the same transaction.
    async fn register_device(
        &self,
        device_id: &str,
        profile_id: Option<&str>,
        label: Option<&str>,
        actor: &str,
    ) -> Result<(), StoreError>;
    /// Adds or updates a patient and returns its store key, audited in the same transaction.
    async fn upsert_patient(
        &self,
        id: &PatientIdentifier,
        display_name: Option<&str>,
        verified_by: Option<&str>,
        actor: &str,
    ) -> Result<i64, StoreError>;
    /// Finds a patient's store key by identifier.
    async fn find_patient(&self, id: &PatientIdentifier) -> Result<Option<i64>, StoreError>;
    /// A patient by store key.
    async fn patient(&self, id: i64) -> Result<Option<PatientEntry>, StoreError>;
    /// Marks a patient verified (creating it if new), with the EHR's resource id when the EHR
    /// verified it; returns its store key.
    async fn verify_patient(
        &self,
        id: &PatientIdentifier,
        verified_by: &str,
        fhir_id: Option<&str>,
    ) -> Result<i64, StoreError>;
    /// Opens a pairing by the rules of [`NewPairing::check`]: it overlaps no other pairing of the
    /// device, except the open one of the patient the operator confirmed replacing, which is ended at
    /// `from`. One transaction with an audit entry per pairing changed, the reason included. Refuses
    /// an unregistered device, an unknown or unverified patient, or an end before the start.
    async fn pair(&self, new: &NewPairing<'_>, actor: &str) -> Result<PairingOpened, StoreError>;
    /// Closes the device's open pairing at `at`; returns the pairing closed.
    async fn unpair(&self, device_id: &str, at: DateTime<Utc>, actor: &str) -> Result<i64, StoreError>;
    /// Flags a registered device as sending demo or test data (or not), audited.
    async fn set_device_demo(&self, device_id: &str, demo: bool, actor: &str) -> Result<(), StoreError>;
    /// Records a consent decision.
    async fn set_consent(&self, patient_id: i64, flow: Flow, granted: bool, actor: &str) -> Result<(), StoreError>;
    /// Whether the patient's decision for the flow is recorded as granted (unknown is no).
    async fn consents_to(&self, patient_id: i64, flow: Flow) -> Result<bool, StoreError>;
    /// Registered devices with their current pairing.
    async fn devices(&self) -> Result<Vec<DeviceEntry>, StoreError>;
    /// A device's pairings, past and current, newest first.
    async fn pairings_of(&self, device_id: &str) -> Result<Vec<PairingEntry>, StoreError>;
}

/// Readings whose pairing did not check out, and their resolution by an operator.
#[async_trait]
pub trait QuarantineStore: Send + Sync + 'static {
    /// Quarantined readings not yet released or discarded, newest first.
    async fn quarantine(&self, limit: u32) -> Result<Vec<QuarantineEntry>, StoreError>;
    /// One quarantined reading, resolved or not.
    async fn quarantine_entry(&self, id: i64) -> Result<Option<QuarantineEntry>, StoreError>;
    /// Releases or discards a quarantined reading, audited with the operator's name and reason.
    /// Returns whether a released reading was new (not a repeat of one already stored).
    async fn resolve_quarantine(
        &self,
        id: i64,
        resolution: &Resolution,
        operator: &str,
        reason: &str,
    ) -> Result<bool, StoreError>;
    /// Resolves many quarantined readings of one device in one transaction, audited once with the
    /// count: a pairing that recovers 2,000 readings is one action. Returns how many released
    /// readings were new. Refused, with nothing changed, when any of them is already resolved.
    async fn resolve_quarantine_many(
        &self,
        device_id: &str,
        resolutions: &[(i64, Resolution)],
        operator: &str,
        reason: &str,
    ) -> Result<u64, StoreError>;
    /// Unresolved quarantined readings by device and reason, largest group first.
    async fn quarantine_groups(&self) -> Result<Vec<QuarantineGroup>, StoreError>;
    /// Unresolved quarantined readings, newest first, of one device or reason when given, older
    /// than `older_than` when given, with how many match in all and how many are newer.
    async fn quarantine_page(
        &self,
        device_id: Option<&str>,
        reason: Option<&str>,
        older_than: Option<QuarantineCursor>,
        limit: u32,
    ) -> Result<QuarantinePage, StoreError>;
    /// Unresolved quarantined readings of a device observed in `[from, until)`, oldest first.
    async fn quarantine_within(
        &self,
        device_id: &str,
        from: DateTime<Utc>,
        until: Option<DateTime<Utc>>,
    ) -> Result<Vec<QuarantineEntry>, StoreError>;
    /// Discards every unresolved quarantined reading of a device for a reason (kept for forensics),
    /// audited once with the count. Returns how many.
    async fn discard_quarantine_group(
        &self,
        device_id: &str,
        reason_code: &str,
        operator: &str,
        why: &str,
    ) -> Result<u64, StoreError>;
}

/// The clinical events queued for the EHR, and what the sandbox EHR was given.
#[async_trait]
pub trait OutboxStore: Send + Sync + 'static {
    /// Queues an event (pending, or held with a reason). `None` if the same event is already queued.
    /// An event an operator submitted is audited in the same transaction.
    async fn enqueue_event(
        &self,
        event: &ClinicalEvent,
        status: OutboxStatus,
        reason: Option<&str>,
        submitted_by: Option<&str>,
    ) -> Result<Option<i64>, StoreError>;
    /// Pending events whose patient's oldest pending event is due, at most `per_patient` per
    /// patient in queue order, `limit` in all.
    async fn outbox_due(&self, now: DateTime<Utc>, per_patient: u32, limit: u32)
    -> Result<Vec<OutboxItem>, StoreError>;
    /// Records how delivery attempts ended, in one transaction.
    async fn outbox_settle(&self, outcomes: &[(i64, Settlement)]) -> Result<(), StoreError>;
    /// How many outbox events have each status.
    async fn outbox_counts(&self) -> Result<Vec<(String, i64)>, StoreError>;
    /// One outbox row.
    async fn outbox_entry(&self, id: i64) -> Result<Option<OutboxEntry>, StoreError>;
    /// Outbox rows, newest first, optionally of one status.
    async fn outbox(&self, status: Option<OutboxStatus>, limit: u32) -> Result<Vec<OutboxEntry>, StoreError>;
    /// Puts a dead or held event back in the queue (an operator fixed the cause); audited. Callers
    /// re-validate a held event first (`clinical::requeue`).
    async fn outbox_requeue(&self, id: i64, actor: &str) -> Result<(), StoreError>;
    /// Keeps what the sandbox sink was given.
    async fn sandbox_record(&self, outbox_id: i64, body: &str) -> Result<(), StoreError>;
    /// What the sandbox sink kept, newest first: (outbox id, body).
    async fn sandbox(&self, limit: u32) -> Result<Vec<(i64, String)>, StoreError>;
}

/// Alarms raised by the rules and the supervisor, and what operators did about them.
#[async_trait]
pub trait AlarmStore: Send + Sync + 'static {
    /// Records an alarm for a condition that started; its id, or `None` if the condition already has one.
    async fn raise_alarm(&self, firing: &Firing) -> Result<Option<i64>, StoreError>;
    /// Marks a condition's alarm cleared.
    async fn clear_alarm(&self, key: &ContentHash) -> Result<(), StoreError>;
    /// Clears every open technical alarm. At start nothing is known of the previous run's technical
    /// conditions; those that still hold are raised again within seconds.
    async fn clear_technical_alarms(&self) -> Result<u64, StoreError>;
    /// Alarms, newest first; only those not cleared when `active_only`.
    async fn alarms(&self, active_only: bool, limit: u32) -> Result<Vec<AlarmEntry>, StoreError>;
    /// Acknowledges an alarm with the operator's name and reason; audited.
    async fn ack_alarm(&self, id: i64, operator: &str, reason: &str) -> Result<(), StoreError>;
    /// Holds back the escalation of an active alarm until `silence.until`, audited with the
    /// operator's reason; refused past the alarm's silence limits.
    async fn silence_alarm(
        &self,
        id: i64,
        silence: &SilenceRequest,
        operator: &str,
        reason: &str,
    ) -> Result<(), StoreError>;
}

/// One silence of an alarm's escalation, with the limits per alarm it must stay within.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SilenceRequest {
    /// Until when.
    pub until: DateTime<Utc>,
    /// For how many minutes.
    pub minutes: u32,
    /// Silences of one alarm at most.
    pub max_silences: u32,
    /// Minutes of silence of one alarm at most, in all.
    pub max_total_minutes: u32,
}

impl SilenceRequest {
    /// Whether an alarm already silenced `count` times for `minutes` in all may be silenced again.
    pub fn allows(&self, count: u32, minutes: u32) -> Result<(), String> {
        if count >= self.max_silences {
            return Err(format!(
                "this alarm has been silenced {count} times, the most allowed ({}): it escalates until acknowledged",
                self.max_silences
            ));
        }
        let left = self.max_total_minutes.saturating_sub(minutes);
        if self.minutes > left {
            return Err(format!(
                "this alarm has been silenced for {minutes} of the {} minutes allowed in all: at most {left} more",
                self.max_total_minutes
            ));
        }
        Ok(())
    }
}

/// The hash-chained log of operator actions and PHI boundary crossings.
#[async_trait]
pub trait AuditLog: Send + Sync + 'static {
    /// Appends an operator action to the hash-chained audit log.
    async fn audit(&self, actor: &str, action: &str, subject: &str, detail: &str) -> Result<(), StoreError>;
    /// The newest audit entries.
    async fn audit_entries(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
    /// Recomputes the keyed audit chain and compares its head with the checkpoint; names the first
    /// entry that does not match or is missing.
    async fn verify_audit(&self) -> Result<AuditVerdict, StoreError>;
    /// [`AuditLog::verify_audit`] for a backup made by [`AuditLog::backup`], against the
    /// checkpoint stored with it.
    async fn verify_backup(&self, copy: &std::path::Path) -> Result<AuditVerdict, StoreError>;
    /// Writes a consistent copy of the whole store to `to` (a new file) while it runs, with the
    /// sealed checkpoint of its audit chain in `to.checkpoint`. A copy of the PHI leaves the store,
    /// so it is audited, and the copy holds its own audit entry.
    async fn backup(&self, to: &std::path::Path, actor: &str) -> Result<(), StoreError>;
    /// Checks the database's own structure (SQLite `quick_check`); [`StoreError::Damaged`] if it fails.
    async fn check_integrity(&self) -> Result<(), StoreError>;
}

/// Device and gateway credentials for the embedded MQTT endpoint: hashes only.
#[async_trait]
pub trait CredentialStore: Send + Sync + 'static {
    /// The site's key for the secrets' hash, made at first use.
    async fn credential_key(&self) -> Result<[u8; 32], StoreError>;
    /// A change counter over the credentials; cheap, polled by the endpoint.
    async fn credentials_generation(&self) -> Result<i64, StoreError>;
    /// Every credential, revoked ones included, by user name.
    async fn credentials(&self) -> Result<Vec<Credential>, StoreError>;
    /// Adds a credential (refused if the name exists, even revoked), audited.
    async fn add_credential(
        &self,
        username: &str,
        secret_hash: &[u8; 32],
        allowed: &DeviceAcl,
        actor: &str,
    ) -> Result<(), StoreError>;
    /// Replaces a live credential's secret, audited.
    async fn rotate_credential(&self, username: &str, secret_hash: &[u8; 32], actor: &str) -> Result<(), StoreError>;
    /// Revokes a live credential, audited.
    async fn revoke_credential(&self, username: &str, actor: &str) -> Result<(), StoreError>;
}

/// Operator accounts and their sessions: argon2 hashes and token hashes only, every change audited
/// in its own transaction.
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    /// How many accounts exist.
    async fn account_count(&self) -> Result<i64, StoreError>;
    /// An account by name.
    async fn account(&self, name: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// Every account, by name.
    async fn accounts(&self) -> Result<Vec<AccountRecord>, StoreError>;
    /// Adds an account (refused if the name exists; with `only_if_none`, refused if any account
    /// exists, in the same transaction), audited.
    async fn add_account(
        &self,
        name: &str,
        password_hash: &str,
        roles: &[Role],
        actor: &str,
        only_if_none: bool,
    ) -> Result<(), StoreError>;
    /// Replaces an account's roles, audited.
    async fn set_roles(&self, name: &str, roles: &[Role], actor: &str) -> Result<(), StoreError>;
    /// Replaces an account's password, audited.
    async fn set_password(&self, name: &str, password_hash: &str, actor: &str) -> Result<(), StoreError>;
    /// Records a sign-in: success resets the failures; a failure counts and sets the next allowed
    /// attempt. Audited either way (`how` says by what: password, console).
    async fn record_sign_in(
        &self,
        name: &str,
        ok: bool,
        retry_after: Option<DateTime<Utc>>,
        how: &str,
    ) -> Result<(), StoreError>;
    /// Opens a session (a token's hash), audited with its reason.
    async fn open_session(
        &self,
        token_hash: &[u8; 32],
        session: &SessionRecord,
        actor: &str,
        reason: &str,
    ) -> Result<(), StoreError>;
    /// A live session by its token's hash (expired ones are not returned).
    async fn session(&self, token_hash: &[u8; 32]) -> Result<Option<SessionRecord>, StoreError>;
    /// The keys and values of the configuration as last started (secrets redacted), if any.
    async fn config_snapshot(&self) -> Result<Option<String>, StoreError>;
    /// Keeps the configuration as started, auditing what changed since the last start.
    async fn save_config_snapshot(&self, snapshot: &str, changes: &str) -> Result<(), StoreError>;
}

/// Everything the pipeline keeps. Each task takes only the capability it uses; the facade and the
/// pipeline hold the whole store.
pub trait Store:
    Inbox + RegistryStore + QuarantineStore + OutboxStore + AlarmStore + AuditLog + CredentialStore + AccountStore
{
}

impl<T: Inbox + RegistryStore + QuarantineStore + OutboxStore + AlarmStore + AuditLog + CredentialStore + AccountStore>
    Store for T
{
}

#[cfg(test)]
mod silence_tests {
    use super::SilenceRequest;

    #[test]
    fn silences_stop_at_the_count_or_the_minutes_whichever_comes_first() {
        let ask =
            |minutes| SilenceRequest { until: chrono::Utc::now(), minutes, max_silences: 4, max_total_minutes: 120 };
        assert!(ask(60).allows(1, 60).is_ok());
        assert!(ask(61).allows(1, 60).unwrap_err().contains("at most 60 more"));
        assert!(ask(1).allows(4, 4).unwrap_err().contains("the most allowed (4)"));
        assert!(ask(1).allows(3, 119).is_ok());
    }
}
