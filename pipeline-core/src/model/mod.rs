//! Canonical, FHIR-shaped types every stage after `normalise` speaks.
//!
//! A [`Reading`] is one measured value of one metric from one device at one time, already in the
//! metric's canonical UCUM unit. Its [`ContentHash`] is its identity everywhere downstream.

pub mod alarm;
pub mod codes;
pub mod event;
pub mod units;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::model::codes::Metric;

/// One canonical reading, produced by a device profile from a vendor payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// The device's own identity as the payload states it (serial, EUI-64...).
    pub device_id: String,
    /// What was measured: MDC code, LOINC codes and canonical unit.
    pub metric: &'static Metric,
    /// The value, already converted into `metric.unit`.
    pub value: f64,
    /// When the device says it measured, at millisecond precision.
    pub observed_at: DateTime<Utc>,
    /// The patient identifiers found in the payload (a profile maps one; an HL7 PID-3 may repeat);
    /// identify checks them against the pairing. PHI: never log them.
    pub patient_hints: Vec<PatientHint>,
    /// Measurement validity as the device flagged it.
    pub validity: Validity,
}

/// How a device is named at the EHR, as its profile says: an IEEE EUI-64 only when the profile
/// declares one, else a serial number scoped to its profile (two vendors' "SN-1" are two devices).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceIdentity {
    /// The device id as payloads state it.
    pub id: String,
    /// The profile declares the id an EUI-64.
    pub eui64: bool,
    /// The device's profile, which scopes its serial number.
    pub profile_id: Option<String>,
    /// The profile's vendor.
    pub manufacturer: Option<String>,
    /// The profile's model.
    pub model: Option<String>,
}

/// A patient identifier a payload carries: its system as the source names it (a URI, or an alias of
/// `[identity.systems]`) and its value. PHI: never log the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientHint {
    /// The identifier system, as the profile or payload names it.
    pub system: String,
    /// The identifier value.
    pub value: String,
}

/// Measurement validity (PCD-01 OBX-8 / SDC MeasurementValidity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default, TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum Validity {
    /// A normal measurement.
    #[default]
    Valid,
    /// The device doubts it (artefact, low perfusion...): kept, flagged.
    Questionable,
    /// The device says it is wrong: kept for forensics, never charted as a value.
    Invalid,
    /// Test or demo data: never charted as real.
    Demo,
}

impl Validity {
    /// The graver of two flags on one reading (a payload's and its value's own). Invalid beats all;
    /// demo beats questionable, so test data can never pass as real by also being doubtful.
    pub fn worst(self, other: Validity) -> Validity {
        let rank = |v| match v {
            Validity::Valid => 0,
            Validity::Questionable => 1,
            Validity::Demo => 2,
            Validity::Invalid => 3,
        };
        if rank(other) > rank(self) { other } else { self }
    }

    /// Reads a stored name back.
    pub fn parse(name: &str) -> Option<Validity> {
        [Validity::Valid, Validity::Questionable, Validity::Invalid, Validity::Demo]
            .into_iter()
            .find(|v| v.as_str() == name)
    }

    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Validity::Valid => "valid",
            Validity::Questionable => "questionable",
            Validity::Invalid => "invalid",
            Validity::Demo => "demo",
        }
    }
}

/// blake3 of a canonical byte encoding: the identity of a reading, an event or an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// Lower-case hex, as used in identifiers and the console.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// The hash its hex stands for, if it is one.
    pub fn from_hex(hex: &str) -> Option<ContentHash> {
        blake3::Hash::from_hex(hex).ok().map(|h| ContentHash(*h.as_bytes()))
    }
}

impl Reading {
    /// The reading's identity: device, code, value, unit and observed time, length-prefixed so no two
    /// different readings can encode alike. Validity and the patient hint are not part of it: the
    /// same measurement re-sent with another flag is still the same measurement.
    pub fn content_hash(&self) -> ContentHash {
        let mut h = blake3::Hasher::new();
        h.update(b"vigil.reading.v1\0");
        h.update(&(self.device_id.len() as u64).to_be_bytes());
        h.update(self.device_id.as_bytes());
        h.update(&self.metric.mdc_code.to_be_bytes());
        // -0.0 and 0.0 are the same value.
        let value = if self.value == 0.0 { 0.0 } else { self.value };
        h.update(&value.to_bits().to_be_bytes());
        h.update(&(self.metric.unit.len() as u64).to_be_bytes());
        h.update(self.metric.unit.as_bytes());
        h.update(&self.observed_at.timestamp_millis().to_be_bytes());
        ContentHash(*h.finalize().as_bytes())
    }
}
