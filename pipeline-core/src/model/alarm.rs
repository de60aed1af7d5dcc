//! The alarm vocabulary every stage speaks: priority, kind, the firing of a condition and its key.
//!
//! Invariant: a condition's key is a pure function of what it is about and when it began, so the
//! rules, the alert circuit, the store and the console name the same alarm the same way.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::model::codes::Metric;
use crate::model::{ContentHash, Validity};

/// Alarm priority per IEC 60601-1-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Immediate response: failure can cause death or irreversible injury.
    High,
    /// Prompt response: reversible injury.
    Medium,
    /// Awareness: discomfort or minor injury.
    Low,
}

impl Priority {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }

    /// The priority a stored name stands for.
    pub fn parse(name: &str) -> Option<Priority> {
        [Priority::High, Priority::Medium, Priority::Low].into_iter().find(|p| p.as_str() == name)
    }

    /// One level more urgent (an unacknowledged alarm's escalation).
    pub fn raised(self) -> Priority {
        match self {
            Priority::Low => Priority::Medium,
            _ => Priority::High,
        }
    }
}

/// Who an alarm pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// The ward (nurse call): a patient's alarm, or a technical one that leaves one patient
    /// unmonitored (no valid signal, device offline, device clock off).
    Clinical,
    /// Biomed / IT: the infrastructure (EHR, sinks, an unknown device), nobody's bedside.
    Technical,
    /// Both: a fault that stops or threatens monitoring for many patients (storage failing, the
    /// rules or the alert circuit stopped).
    Both,
}

impl Audience {
    /// Whether the ward is paged.
    pub fn clinical(self) -> bool {
        matches!(self, Audience::Clinical | Audience::Both)
    }
}

/// IEC 60601-1-8 keeps alarms about the patient apart from alarms about the equipment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// About the patient's physiology (a threshold, a trend).
    Physiological,
    /// About the monitoring itself (a device offline or unpaired, an adapter down).
    Technical,
}

impl AlarmKind {
    /// The kind a stored name stands for.
    pub fn parse(name: &str) -> Option<AlarmKind> {
        [AlarmKind::Physiological, AlarmKind::Technical].into_iter().find(|k| k.as_str() == name)
    }

    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmKind::Physiological => "physiological",
            AlarmKind::Technical => "technical",
        }
    }
}

/// A condition that started: raise its alarm and/or event. Technical conditions (and the
/// supervisor's) use it too, without patient, metric or value.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// The condition's identity: what it is about, the rule, the version and the start. The alarm's key.
    pub key: ContentHash,
    /// Physiological or technical.
    pub kind: AlarmKind,
    /// The rule's id.
    pub rule_id: String,
    /// The rule set's version (`builtin` for the supervisor's).
    pub rule_version: String,
    /// What it means, in words.
    pub description: String,
    /// Alarm priority.
    pub priority: Priority,
    /// Whether to raise an alarm.
    pub alarm: bool,
    /// Whether to raise a clinical event.
    pub event: bool,
    /// When to escalate if not acknowledged.
    pub escalate_after: Option<Duration>,
    /// The patient's store key, when it is about a patient.
    pub patient_id: Option<i64>,
    /// The device, or the component for an adapter's alarm.
    pub device_id: String,
    /// The metric.
    pub metric: Option<&'static Metric>,
    /// The reading that completed the condition.
    pub value: Option<f64>,
    /// What the readings behind it were: questionable when the device doubted one (the alarm still
    /// sounds, and says so), demo when one was demo data.
    pub validity: Validity,
    /// When the condition began.
    pub since: DateTime<Utc>,
    /// When it was complete.
    pub at: DateTime<Utc>,
}

/// The identity of a condition: blake3 over its parts, length-prefixed.
pub fn condition_key(parts: &[&[u8]], since: DateTime<Utc>) -> ContentHash {
    let mut h = blake3::Hasher::new();
    h.update(b"vigil.condition.v2\0");
    for part in parts {
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(&since.timestamp_millis().to_be_bytes());
    ContentHash(*h.finalize().as_bytes())
}
