//! The store interface and its rows. One backend today (SQLite, [`sqlite`]); PostgreSQL can follow
//! behind the same trait.
//!
//! Invariant: [`Store::write_batch`] is one transaction. When it returns `Ok`, every payload of the
//! batch and everything derived from it is durable, so the sources may acknowledge; when it fails,
//! nothing of it is, and no source acknowledges.

pub mod sqlite;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::identify::{Flow, QuarantineReason, Registry};
use crate::model::{ContentHash, Reading};
use crate::normalise::Rejection;

/// What went wrong in the store. Details are logged once; the user sees the summary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or failed; usually transient (locked, disk full, I/O).
    #[error("the store is unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("the store's schema could not be migrated: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// An operator request that cannot be carried out as asked.
    #[error("{0}")]
    Refused(String),
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

/// Counts of what one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineEntry {
    /// Store key.
    pub id: i64,
    /// Device id.
    pub device_id: String,
    /// MDC code.
    pub mdc_code: u32,
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
}

/// A rejected payload with its reason.
#[derive(Debug, Clone, Serialize)]
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
#[derive(Debug, Clone, Serialize)]
pub struct HeldEntry {
    /// Device id.
    pub device_id: String,
    /// Patient store key.
    pub patient_id: i64,
    /// MDC code.
    pub mdc_code: u32,
    /// Value.
    pub value: f64,
    /// Observed time.
    pub observed_at: DateTime<Utc>,
    /// The flow without consent.
    pub flow: String,
    /// Why it is held.
    pub reason: String,
}

/// A registered device and its current pairing, for `vigil devices`.
#[derive(Debug, Clone, Serialize)]
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

/// Everything the pipeline keeps. Implementations must make `write_batch` atomic and durable.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes a processed batch in one transaction, suppressing repeated payloads and readings.
    async fn write_batch(&self, batch: &[ProcessedPayload]) -> Result<BatchTally, StoreError>;
    /// The registry's change counter; cheap, polled before each batch.
    async fn registry_generation(&self) -> Result<i64, StoreError>;
    /// A full snapshot of devices, patients, pairings and consents.
    async fn load_registry(&self) -> Result<Registry, StoreError>;
    /// Registers a device (idempotent; updates profile and label).
    async fn register_device(
        &self,
        device_id: &str,
        profile_id: Option<&str>,
        label: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Adds or updates a patient and returns its store key.
    async fn upsert_patient(
        &self,
        id: &PatientIdentifier,
        display_name: Option<&str>,
        verified_by: Option<&str>,
    ) -> Result<i64, StoreError>;
    /// Finds a patient's store key by identifier.
    async fn find_patient(&self, id: &PatientIdentifier) -> Result<Option<i64>, StoreError>;
    /// Opens a pairing from `from`, closing the device's open pairing at that instant. Refuses an
    /// unregistered device, an unknown patient, or a start before the open pairing's start.
    async fn pair(&self, device_id: &str, patient_id: i64, from: DateTime<Utc>, actor: &str)
    -> Result<i64, StoreError>;
    /// Closes the device's open pairing at `at`; returns the pairing closed.
    async fn unpair(&self, device_id: &str, at: DateTime<Utc>, actor: &str) -> Result<i64, StoreError>;
    /// Records a consent decision.
    async fn set_consent(&self, patient_id: i64, flow: Flow, granted: bool, actor: &str) -> Result<(), StoreError>;
    /// Registered devices with their current pairing.
    async fn devices(&self) -> Result<Vec<DeviceEntry>, StoreError>;
    /// Telemetry matching the query, newest first.
    async fn readings(&self, q: &ReadingQuery) -> Result<Vec<StoredReading>, StoreError>;
    /// Quarantined readings, newest first.
    async fn quarantine(&self, limit: u32) -> Result<Vec<QuarantineEntry>, StoreError>;
    /// Rejected payloads, newest first.
    async fn rejected(&self, limit: u32) -> Result<Vec<RejectedEntry>, StoreError>;
    /// Readings held for consent, newest first.
    async fn held(&self, limit: u32) -> Result<Vec<HeldEntry>, StoreError>;
    /// Totals for the board.
    async fn counts(&self) -> Result<StoreCounts, StoreError>;
    /// Deletes raw payloads and telemetry received/observed before `cutoff`; returns rows removed.
    /// Quarantine, rejected and held entries are forensic records and are kept.
    async fn purge_before(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Appends an operator action to the hash-chained audit log.
    async fn audit(&self, actor: &str, action: &str, subject: &str, detail: &str) -> Result<(), StoreError>;
}
