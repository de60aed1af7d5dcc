//! Clinical events: what the clinical-events plane sends to the EHR. Telemetry never goes to the EHR
//! as such; only an event (a validated threshold crossed, a charting summary, a spot check) does.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::model::codes::Metric;
use crate::model::{ContentHash, Validity};

/// When an observation applies: an instant, or a window (a summary over 15 minutes).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Effective {
    /// One instant.
    At {
        /// The instant.
        at: DateTime<Utc>,
    },
    /// A window, both ends inclusive (FHIR `Period.end` is inclusive: the last millisecond in it).
    Period {
        /// Start.
        start: DateTime<Utc>,
        /// End, inclusive.
        end: DateTime<Utc>,
    },
}

impl Effective {
    /// The time the event is filed under (the instant, or the end of the window).
    pub fn time(&self) -> DateTime<Utc> {
        match self {
            Effective::At { at } => *at,
            Effective::Period { end, .. } => *end,
        }
    }
}

/// One observation of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Observation {
    /// One vital sign with a value in its canonical unit.
    Vital {
        /// What was measured.
        #[serde(serialize_with = "metric_code", deserialize_with = "metric_from_code")]
        metric: &'static Metric,
        /// The value in `metric.unit`.
        value: f64,
        /// When.
        effective: Effective,
        /// The device's validity flag.
        validity: Validity,
        /// How the value was derived from several readings (a charting summary); `None` for one
        /// measurement.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<Statistic>,
    },
    /// A non-invasive blood pressure panel (LOINC 85354-9) with its components.
    BloodPressure {
        /// Systolic, mm[Hg].
        systolic: f64,
        /// Diastolic, mm[Hg].
        diastolic: f64,
        /// Mean, mm[Hg], when measured.
        mean: Option<f64>,
        /// When.
        effective: Effective,
        /// The device's validity flag.
        validity: Validity,
    },
}

/// A charted statistic: the median of a period's valid readings, said in words wherever the value
/// goes, so no reader takes it for one measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statistic {
    /// The period's length in minutes.
    pub minutes: i64,
    /// How many valid readings the median is of.
    pub readings: usize,
}

impl Statistic {
    /// "15-minute median of 42 valid readings" (FHIR `Observation.method.text`, an HL7 NTE).
    pub fn describe(&self) -> String {
        let plural = if self.readings == 1 { "" } else { "s" };
        format!("{}-minute median of {} valid reading{plural}", self.minutes, self.readings)
    }
}

impl Observation {
    /// When the observation applies.
    pub fn effective(&self) -> Effective {
        match self {
            Observation::Vital { effective, .. } | Observation::BloodPressure { effective, .. } => *effective,
        }
    }
}

fn metric_from_code<'de, D: serde::Deserializer<'de>>(d: D) -> Result<&'static Metric, D::Error> {
    let code = u32::deserialize(d)?;
    crate::model::codes::metric_by_code(code)
        .ok_or_else(|| serde::de::Error::custom(format!("unknown MDC code {code}")))
}

fn metric_code<S: serde::Serializer>(metric: &&'static Metric, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u32(metric.mdc_code)
}

/// What an event carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventContent {
    /// One Observation.
    Single {
        /// The observation.
        observation: Observation,
    },
    /// A DiagnosticReport grouping observations (a spot-check set, an episode summary).
    Report {
        /// What the report is, in words ("Spot check", "Desaturation episode").
        title: String,
        /// The window or instant the report covers.
        effective: Effective,
        /// The grouped observations.
        observations: Vec<Observation>,
    },
}

/// A clinically meaningful event for one patient, from one device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClinicalEvent {
    /// The patient's store key.
    pub patient_id: i64,
    /// The device that measured.
    pub device_id: String,
    /// What produced it: a rule id and version, or `manual` for an operator's submission.
    pub origin: String,
    /// The content.
    pub content: EventContent,
}

impl ClinicalEvent {
    /// The event's identity: blake3 over its canonical JSON (fixed field order). It becomes the
    /// idempotency key at the EHR, so the same event sent twice is created once.
    pub fn content_hash(&self) -> ContentHash {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        let mut h = blake3::Hasher::new();
        h.update(b"vigil.event.v1\0");
        h.update(&canonical);
        ContentHash(*h.finalize().as_bytes())
    }

    /// Every observation in the event.
    pub fn observations(&self) -> Vec<&Observation> {
        match &self.content {
            EventContent::Single { observation } => vec![observation],
            EventContent::Report { observations, .. } => observations.iter().collect(),
        }
    }

    /// Marks every observation as demo data (an invalid one stays invalid): on a demo site, even an
    /// operator's event is made-up data.
    pub fn mark_demo(&mut self) {
        let observations = match &mut self.content {
            EventContent::Single { observation } => std::slice::from_mut(observation),
            EventContent::Report { observations, .. } => observations.as_mut_slice(),
        };
        for o in observations {
            let (Observation::Vital { validity, .. } | Observation::BloodPressure { validity, .. }) = o;
            *validity = validity.worst(crate::model::Validity::Demo);
        }
    }

    /// Whether any observation is demo or test data: such an event may only go to the sandbox or a
    /// test EHR.
    pub fn has_demo_data(&self) -> bool {
        self.observations().iter().any(|o| match o {
            Observation::Vital { validity, .. } | Observation::BloodPressure { validity, .. } => {
                *validity == crate::model::Validity::Demo
            }
        })
    }
}
