//! What the console shows, shaped for it (snake_case JSON; `ui/src/backend/types.ts` mirrors it).
//! Patient labels and raw payloads are PHI: they cross only to the console, never to logs or pages.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

pub use crate::alerts::deliveries::{DeliveryState, PageDelivery};
use crate::config::{BrokerMode, EhrAuth, EhrEnvironment, EhrKind};
pub use crate::identify::Flow;
pub use crate::model::Validity;
pub use crate::status::Status;
pub use crate::store::{
    AlarmEntry, DeviceEntry, HeldEntry, OutboxStatus, PairingEntry, QuarantineCursor, QuarantineEntry, QuarantineGroup,
    QuarantinePage, RejectedEntry,
};

/// The latest value of one stream.
#[derive(Debug, Clone, Serialize, PartialEq, TS)]
#[ts(export)]
pub struct LiveValue {
    /// Device id.
    pub device_id: String,
    /// The device's label, e.g. "Bed 1 oximeter".
    pub device_label: Option<String>,
    /// Patient store key.
    pub patient_id: Option<i64>,
    /// Patient name or identifier, for the console.
    pub patient_label: Option<String>,
    /// MDC code.
    pub mdc_code: u32,
    /// Display name, e.g. "SpO2".
    pub metric: String,
    /// Its place in the clinical order of a device's values (heart rate, pulse, SpO2, respiration,
    /// temperature, then systolic, diastolic and mean pressure).
    pub order: u32,
    /// Decimals the metric is shown with (36.8 °C, 97 %).
    pub decimals: u8,
    /// The value.
    pub value: f64,
    /// UCUM unit.
    pub unit: String,
    /// When measured.
    pub observed_at: DateTime<Utc>,
    /// Seconds since it was measured.
    pub age_secs: f64,
    /// Older than [`super::STALE_AFTER_SECS`]: shown, but marked as not current.
    pub stale: bool,
    /// Valid, questionable, invalid (no number to trust: probe off) or demo.
    pub validity: Validity,
}

/// An alarm, with its patient's label.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct AlarmView {
    /// The stored alarm.
    #[serde(flatten)]
    pub alarm: crate::store::AlarmEntry,
    /// Patient name or identifier, for the console.
    pub patient_label: Option<String>,
    /// The value's UCUM unit, for a physiological alarm.
    pub unit: Option<String>,
    /// The longest silence of its escalation the site would still accept, in minutes: 0 when a
    /// silence would change nothing (acknowledged, cleared) or the alarm's silence limits are spent.
    pub silence_minutes_left: u32,
    /// Where its pages went and whether each was taken, since this console started (first pages
    /// and escalations).
    pub pages: Vec<PageDelivery>,
    /// When it escalated (re-paged, unacknowledged in time), if it did.
    pub escalated_at: Option<DateTime<Utc>>,
    /// An infrastructure alarm (technical, about no patient): it may be acknowledged with others
    /// in one action. Patient-level alarms are acknowledged one bed at a time.
    pub bulk_ack: bool,
}

/// Where a released reading went.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseResult {
    /// Stored as telemetry.
    Stored,
    /// Held: the patient has not consented to this use yet.
    Held,
    /// The same reading was already stored.
    Duplicate,
    /// Still not identifiable: left in quarantine.
    Quarantined,
}

/// What releasing a quarantined reading did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, TS)]
#[ts(export)]
pub struct ReleaseOutcome {
    /// Where the reading went.
    pub outcome: ReleaseResult,
    /// In words, for the operator.
    pub detail: String,
}

/// A device with its pairing and the paired patient's label.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct DeviceView {
    /// The device and its pairing.
    #[serde(flatten)]
    pub device: crate::store::DeviceEntry,
    /// Patient name or identifier, for the console.
    pub patient_label: Option<String>,
}

/// A patient as verified before pairing: what the operator confirms.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, TS)]
#[ts(export)]
pub struct VerifiedPatient {
    /// Identifier system.
    pub system: String,
    /// Identifier value.
    pub value: String,
    /// Name as the EHR (or the registry) gives it.
    pub display: String,
    /// Birth date, when known.
    pub birth_date: Option<String>,
    /// The EHR's Patient id, when verified there.
    pub fhir_id: Option<String>,
    /// Who vouches for the identity: the EHR, or the local registry.
    pub verified_by: String,
}

/// A pairing as an operator asks for it, from either face.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, TS)]
#[ts(export)]
pub struct PairRequest {
    /// The device.
    pub device_id: String,
    /// The patient's identifier system.
    pub system: String,
    /// The patient's identifier value.
    pub value: String,
    /// Start (default now).
    pub from: Option<DateTime<Utc>>,
    /// End (default: open until unpaired).
    pub until: Option<DateTime<Utc>>,
    /// Why the pairing starts in the past: required when it does, and audited with it.
    pub reason: Option<String>,
    /// The store key of the patient the device is paired with now, as a refusal names them:
    /// confirms that the new pairing ends theirs where it starts.
    pub replacing: Option<i64>,
}

/// An outbox row with a one-line summary of its event.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct OutboxView {
    /// Outbox key.
    pub id: i64,
    /// Content hash, hex.
    pub hash: String,
    /// Patient store key.
    pub patient_id: i64,
    /// Patient name or identifier, for the console.
    pub patient_label: Option<String>,
    /// Status.
    pub status: crate::store::OutboxStatus,
    /// Why held or dead, or the last error.
    pub reason: Option<String>,
    /// Attempts so far.
    pub attempts: u32,
    /// Where the EHR put it.
    pub ehr_ref: Option<String>,
    /// What the event is, e.g. "SpO2 86 % (rule:spo2-low)".
    pub summary: String,
    /// When queued.
    pub created_at: DateTime<Utc>,
    /// When delivered.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// The EHR settings an operator can change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, TS)]
#[ts(export)]
pub struct EhrSettings {
    /// sandbox, fhir or hl7v2.
    pub kind: EhrKind,
    /// production or test: only a test EHR takes demo data.
    pub environment: EhrEnvironment,
    /// FHIR base URL.
    pub base_url: Option<String>,
    /// FHIR auth.
    pub auth: EhrAuth,
    /// HL7 v2 receiver, host:port.
    pub mllp_addr: Option<String>,
}

/// The broker settings an operator can change.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, TS)]
#[ts(export)]
pub struct BrokerSettings {
    /// embedded or external.
    pub mode: BrokerMode,
    /// External broker URL.
    pub url: Option<String>,
    /// Embedded endpoint address.
    pub listen: Option<String>,
}

/// The settings view.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, TS)]
#[ts(export)]
pub struct Settings {
    /// EHR.
    pub ehr: EhrSettings,
    /// Broker.
    pub broker: BrokerSettings,
    /// Store URL (read-only here).
    pub store_url: String,
    /// The rule set's version (read-only here).
    pub rules_version: Option<String>,
    /// Whether the simulated demo ward is running.
    pub demo: bool,
}

/// What "Test connection" checks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionTarget {
    /// The EHR, with the saved settings.
    Ehr,
    /// The MQTT broker or the embedded endpoint.
    Broker,
}

/// The result of "test connection".
#[derive(Debug, Clone, Serialize, PartialEq, Eq, TS)]
#[ts(export)]
pub struct ConnectionResult {
    /// Whether it answered.
    pub ok: bool,
    /// What it said, or why not.
    pub message: String,
}

/// Who the console is signed in as, and what the window should show.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, TS)]
#[ts(export)]
pub struct SessionView {
    /// The signed-in account; none when nobody is.
    pub account: Option<String>,
    /// Its roles.
    pub roles: Vec<crate::accounts::Role>,
    /// The demo site, signed in as its built-in account.
    pub demo: bool,
    /// Locked: the alarm count and the banner stay, acting needs the password.
    pub locked: bool,
    /// No account exists yet: the window asks for the first administrator.
    pub needs_first_admin: bool,
    /// The window locks after this many seconds without input (0: never).
    pub lock_after_secs: u32,
    /// An emergency admin session.
    pub break_glass: bool,
}

/// How a device stands, from when it was last heard.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, PartialOrd, Ord, TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Heard from something that is not registered: a device nobody has set up.
    Unknown,
    /// Silent past its offline bound (its no-data rule, or 10 of its intervals).
    Offline,
    /// Silent for more than 3 of its intervals.
    Stale,
    /// Registered, never heard since this console started watching.
    NeverSeen,
    /// Heard within 3 of its intervals.
    Online,
}

/// A device as the fleet view lists it: registered or merely heard.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct FleetDevice {
    /// Device id.
    pub device_id: String,
    /// Online, stale, offline, never seen, or unknown (heard, not registered).
    pub state: DeviceState,
    /// Registered in the device registry.
    pub registered: bool,
    /// The device's label, e.g. "Bed 1 oximeter".
    pub label: Option<String>,
    /// The registered profile; for an unknown sender, the one its topic suggests.
    pub profile_id: Option<String>,
    /// The topic (or other origin) it was last heard on.
    pub origin: Option<String>,
    /// When a payload of it last arrived (the workstation's clock).
    pub last_heard: Option<DateTime<Utc>>,
    /// Seconds since then.
    pub silent_secs: Option<f64>,
    /// How often the profile says it sends, in seconds.
    pub expected_interval_secs: u32,
    /// Stale after this many seconds of silence.
    pub stale_after_secs: u32,
    /// Offline after this many seconds of silence.
    pub offline_after_secs: u32,
    /// Payloads per minute over the last minute.
    pub messages_per_min: f64,
    /// Payloads since the pipeline started.
    pub messages: u64,
    /// The validity of its latest readings: the worst among the newest payload's values.
    pub latest_validity: Option<Validity>,
    /// Battery charge in percent, where the profile maps it (device status, never a reading).
    pub battery_pct: Option<f64>,
    /// Firmware version, where the profile maps it.
    pub firmware: Option<String>,
    /// Arrival minus measured time, in seconds, as the rules last estimated it (the board's device
    /// clock offset): positive when the device's clock is behind.
    pub clock_offset_secs: Option<i64>,
    /// The patient it is paired with now (store key).
    pub patient_id: Option<i64>,
    /// Patient name or identifier, for the console.
    pub patient_label: Option<String>,
    /// Paired since.
    pub paired_since: Option<DateTime<Utc>>,
    /// Its readings waiting in quarantine.
    pub quarantined: u64,
    /// Its readings are demo or test data.
    pub demo: bool,
}

/// One pairing of a device, past or current.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct PairingView {
    /// Store key.
    pub id: i64,
    /// Patient store key.
    pub patient_id: i64,
    /// Patient name or identifier, for the console.
    pub patient_label: Option<String>,
    /// Start (inclusive).
    pub valid_from: DateTime<Utc>,
    /// End (exclusive); none while open.
    pub valid_to: Option<DateTime<Utc>>,
    /// Who made it.
    pub created_by: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// Which quarantined readings to list, a page at a time.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, TS)]
#[ts(export)]
pub struct QuarantineFilter {
    /// Only this device.
    pub device_id: Option<String>,
    /// Only this reason code.
    pub reason: Option<String>,
    /// Only rows older than this one (newest first): the last row of the page before. None for the
    /// newest page.
    pub older_than: Option<QuarantineCursor>,
    /// Rows per page (at most 500).
    pub limit: u32,
}

/// What pairing a device and releasing its quarantined readings inside the pairing did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, TS)]
#[ts(export)]
pub struct GroupReleaseOutcome {
    /// Stored under the patient as telemetry.
    pub stored: u64,
    /// Released, and held: the patient has not consented to storage yet.
    pub held: u64,
    /// Already stored once: nothing new added.
    pub duplicate: u64,
    /// Inside the pairing but still not identifiable (left in quarantine).
    pub still_quarantined: u64,
    /// In words, for the operator.
    pub detail: String,
}

/// A reading held for want of consent, with its patient's label.
#[derive(Debug, Clone, Serialize, TS)]
#[ts(export)]
pub struct HeldView {
    /// The held reading and its raw payload.
    #[serde(flatten)]
    pub entry: HeldEntry,
    /// Patient name or identifier, for the console.
    pub patient_label: Option<String>,
}
