//! Normalise: turn one vendor payload into canonical [`Reading`]s with a device [`Profile`].
//!
//! Invariant: a reading leaves this module only with a known MDC code, a value converted into the
//! code's canonical UCUM unit, a device id and an observed time; a payload that cannot give that is
//! rejected whole, with a [`Rejection`] saying what, where and why (and never a patient identifier).
//!
//! # Layout
//! - `codes`: the MDC/LOINC code table ([`codes::Metric`]).
//! - `units`: UCUM units, vendor spellings and conversion.
//! - `path`: the path expressions profiles use to point into payloads.
//! - `profile`: the TOML profile format, loading and checking ([`Profile`], [`ProfileSet`]).
//! - here: [`normalise`], the per-message step, a plain function of a profile and bytes.
//!
//! # Payload rules
//! - Not JSON: `not_json`. No device id or no time where the profile says: `missing_field`.
//! - A mapped value that is absent or `null` is skipped (monitors omit parameters they do not
//!   measure); a present value that is not a number is `bad_value`. A string holding a number
//!   (`"97"`) is accepted, because some vendors quote every value; `"NaN"`, `"inf"` are not.
//! - A unit read from the payload must be one the profile lists for that mapping (`bad_unit`).
//! - A payload that yields no reading at all is `no_readings`.
//! - Times are kept at millisecond precision in UTC (finer digits are truncated). An RFC 3339 time
//!   without an offset is refused: local time cannot be placed safely.
//! - A device id may be a string or an integer; a patient identifier too (absent, `null` or `""`
//!   means none). A validity flag that is absent means the device flagged nothing: valid.
//! - A value with its own flag takes the worse of the payload's flag and its own; a value equal to
//!   the mapping's `no_value` sentinel is kept as invalid (the device had no measurement).

mod path;
pub mod pcd01;
pub mod profile;

use std::fmt;

use chrono::{DateTime, Utc};
use serde_json::Value;
use thiserror::Error;

use crate::model::units::{self, convert, parse_unit};
use crate::model::{PatientHint, Reading, Validity};
use path::JsonPath;
pub use profile::{DEFAULT_INTERVAL_SECS, Delivery, Profile, ProfileError, ProfileProblem, ProfileSet, load_profile};
use profile::{Mapping, PatientSystem, TimeFormat, UnitSource, ValidityField};

/// Why a payload was rejected: a stable, machine-readable class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// No profile serves the topic the payload came on.
    NoProfile,
    /// The payload is not valid JSON.
    NotJson,
    /// A required field (device id, time, a batch array, a value's unit) is absent.
    MissingField,
    /// A field is present but of the wrong type or not a finite number.
    BadValue,
    /// The observed time does not parse in the profile's format.
    BadTime,
    /// A unit in the payload is unknown, of the wrong dimension, or not accepted by the profile.
    BadUnit,
    /// The payload is well formed but none of the profile's mappings found a value.
    NoReadings,
    /// The payload is over the source's size limit (kept truncated, with its size and hash).
    TooLarge,
    /// The payload carries more than its source allows: a device id too long, too many batch
    /// elements or readings. The detail names the limit and its setting.
    OverLimit,
    /// The publisher may not speak for the device the payload names (its credential's access list,
    /// or, through an external broker, the topic's device level).
    NotAuthorised,
    /// Not an HL7 v2 message (no MSH segment, or bad delimiters).
    NotHl7,
    /// An HL7 message Vigil does not take (not ORU^R01, or a version outside 2.3-2.8).
    UnsupportedMessage,
}

impl RejectReason {
    /// The stable snake_case name stored with the quarantined payload and shown in the console.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NoProfile => "no_profile",
            RejectReason::NotJson => "not_json",
            RejectReason::MissingField => "missing_field",
            RejectReason::BadValue => "bad_value",
            RejectReason::BadTime => "bad_time",
            RejectReason::BadUnit => "bad_unit",
            RejectReason::NoReadings => "no_readings",
            RejectReason::TooLarge => "too_large",
            RejectReason::OverLimit => "over_limit",
            RejectReason::NotAuthorised => "not_authorised",
            RejectReason::NotHl7 => "not_hl7",
            RejectReason::UnsupportedMessage => "unsupported_message",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A payload that yields no readings, and why. The detail names the path and the offending value,
/// except a patient identifier's, which is PHI.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}: {detail}")]
pub struct Rejection {
    /// The class of problem.
    pub reason: RejectReason,
    /// What, where (the path) and why, for the operator.
    pub detail: String,
}

impl Rejection {
    fn new(reason: RejectReason, detail: String) -> Rejection {
        Rejection { reason, detail }
    }

    /// One rejection for several problems: the first one's class, and every detail (the first
    /// [`MAX_PROBLEMS_SHOWN`]), so one round of fixes can fix them all.
    pub fn combined(problems: Vec<Rejection>) -> Rejection {
        let Some(first) = problems.first() else {
            return Rejection::new(RejectReason::NoReadings, "the payload yields nothing".into());
        };
        let mut details: Vec<&str> = problems.iter().take(MAX_PROBLEMS_SHOWN).map(|p| p.detail.as_str()).collect();
        let more = problems.len().saturating_sub(MAX_PROBLEMS_SHOWN);
        let tail = format!("and {more} more");
        if more > 0 {
            details.push(&tail);
        }
        Rejection::new(first.reason, details.join("; "))
    }

    /// The rejection for a payload on a topic no profile serves.
    pub fn no_profile(topic: &str) -> Rejection {
        Rejection::new(
            RejectReason::NoProfile,
            format!("no device profile serves topic {topic:?}: add a profile whose topics match it"),
        )
    }
}

/// Problems a rejection's detail lists; a batch of 2000 bad elements says how many more there are.
pub const MAX_PROBLEMS_SHOWN: usize = 20;

/// What one payload may carry; each source configures its own (`[sources.mqtt]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadLimits {
    /// Longest device id, in bytes (`max_device_id_bytes`).
    pub max_device_id_bytes: usize,
    /// Most elements of a batch (`max_batch_elements`).
    pub max_batch_elements: usize,
    /// Most readings in one payload (`max_readings_per_payload`).
    pub max_readings: usize,
    /// Where an operator changes them, for the rejection's detail: `[sources.mqtt]`.
    pub section: &'static str,
}

impl Default for PayloadLimits {
    fn default() -> Self {
        PayloadLimits {
            max_device_id_bytes: 64,
            max_batch_elements: 2000,
            max_readings: 10_000,
            section: "[sources.mqtt]",
        }
    }
}

/// Characters a device id may hold: letters, digits and `- _ . :` (serial numbers, EUI-64s), so an
/// id cannot forge a log line, a path or a topic level.
fn device_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
}

/// The readings a payload carries, as the profile maps them, in mapping order (per element with
/// `each`). The whole payload is rejected if any part of it is wrong: half a payload could hide the
/// reading that mattered. It is rejected too when it carries more than `limits` allow, before the
/// readings are made. The rejection names every problem, not only the first.
pub fn normalise(profile: &Profile, payload: &[u8], limits: &PayloadLimits) -> Result<Vec<Reading>, Rejection> {
    let trial = trial(profile, payload, limits);
    if trial.problems.is_empty() { Ok(trial.readings) } else { Err(Rejection::combined(trial.problems)) }
}

/// Everything one payload yields under a profile: what `vigil profile try` prints, and what ingest
/// stores and counts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trial {
    /// The readings; meaningful only when there is no problem.
    pub readings: Vec<Reading>,
    /// Every problem, each naming its field; any one rejects the whole payload.
    pub problems: Vec<Rejection>,
    /// Fields the payload carries that the profile does not read, as paths (`/batch/*/pi` for
    /// every element of an array).
    pub unmapped: Vec<String>,
    /// The battery and firmware the payload reports, where the profile maps them.
    pub status: DeviceStatus,
}

/// What a device says of itself besides its measurements: shown on the fleet view, never stored
/// as a reading and never sent to the EHR.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceStatus {
    /// Battery charge, percent (0 to 100).
    pub battery_pct: Option<f64>,
    /// Firmware version.
    pub firmware: Option<String>,
}

impl DeviceStatus {
    /// The status a payload reports, under its profile's `battery` and `firmware` paths. A value
    /// of the wrong kind, or a charge outside 0 to 100, is left out: status never rejects a payload.
    fn of(profile: &Profile, doc: &Value, used: &mut Used) -> DeviceStatus {
        // A field counts as read only when its value was taken: one of the wrong kind stays listed
        // as unmapped, so the profile's author sees it.
        let mut take = |path: &Option<JsonPath>, fits: fn(&Value) -> bool| {
            let value = path.as_ref()?.resolve(doc, doc).filter(|v| fits(v))?;
            used.mark(value);
            Some(value)
        };
        let battery_pct =
            take(&profile.battery, |v| v.as_f64().is_some_and(|b| (0.0..=100.0).contains(&b))).and_then(Value::as_f64);
        let firmware = take(&profile.firmware, |v| v.is_string() || v.is_number()).map(|v| match v {
            Value::String(s) => s.chars().take(64).collect(),
            other => other.to_string(),
        });
        DeviceStatus { battery_pct, firmware }
    }
}

/// Reads a payload with a profile, collecting every problem and every unmapped field.
pub fn trial(profile: &Profile, payload: &[u8], limits: &PayloadLimits) -> Trial {
    let doc: Value = match serde_json::from_slice(payload) {
        Ok(doc) => doc,
        Err(e) => {
            let problem = Rejection::new(RejectReason::NotJson, format!("payload is not JSON: {e}"));
            return Trial { problems: vec![problem], ..Trial::default() };
        }
    };
    let mut trial = Trial::default();
    let mut used = Used::default();
    trial.status = DeviceStatus::of(profile, &doc, &mut used);
    match &profile.each {
        None => {
            let scope = Scope { profile, root: &doc, here: &doc, element: None, limits };
            scope.readings(&mut trial, &mut used);
            if trial.readings.is_empty() && trial.problems.is_empty() {
                trial.problems.push(Rejection::new(
                    RejectReason::NoReadings,
                    format!("none of the profile's {} mapped values is in the payload", profile.mappings.len()),
                ));
            }
        }
        Some(each) => {
            let items = match each.resolve(&doc, &doc) {
                Some(Value::Array(items)) => items,
                Some(other) => {
                    trial.problems.push(Rejection::new(
                        RejectReason::BadValue,
                        format!("batch at {each} is {}, expected an array", describe(other)),
                    ));
                    return trial;
                }
                None => {
                    trial.problems.push(Rejection::new(
                        RejectReason::MissingField,
                        format!("batch is missing: nothing at {each}"),
                    ));
                    return trial;
                }
            };
            if items.len() > limits.max_batch_elements {
                trial.problems.push(Rejection::new(
                    RejectReason::OverLimit,
                    format!(
                        "batch at {each} has {} elements, over the limit of {} ({} max_batch_elements)",
                        items.len(),
                        limits.max_batch_elements,
                        limits.section
                    ),
                ));
                return trial;
            }
            for (i, item) in items.iter().enumerate() {
                let scope = Scope { profile, root: &doc, here: item, element: Some(i), limits };
                scope.readings(&mut trial, &mut used);
                if trial.readings.len() > limits.max_readings {
                    trial.problems.push(Rejection::new(
                        RejectReason::OverLimit,
                        format!(
                            "the payload carries more than {} readings ({} max_readings_per_payload)",
                            limits.max_readings, limits.section
                        ),
                    ));
                    return trial;
                }
            }
            if trial.readings.is_empty() && trial.problems.is_empty() {
                trial.problems.push(Rejection::new(
                    RejectReason::NoReadings,
                    format!(
                        "none of the {} elements of {each} holds any of the profile's {} mapped values",
                        items.len(),
                        profile.mappings.len()
                    ),
                ));
            }
        }
    }
    trial.unmapped = used.unmapped(&doc);
    trial
}

/// The parts of a payload a profile read, by address, to find what it left unread.
#[derive(Default)]
struct Used(std::collections::HashSet<usize>);

impl Used {
    fn mark(&mut self, value: &Value) {
        self.0.insert(std::ptr::from_ref(value) as usize);
    }

    fn mark_path(&mut self, path: &JsonPath, root: &Value, scope: &Value) {
        path.visit(root, scope, |v| self.mark(v));
    }

    fn is_used(&self, value: &Value) -> bool {
        self.0.contains(&(std::ptr::from_ref(value) as usize))
    }

    /// Every leaf not read (nor under a part read), as a path with array indices written `*`.
    fn unmapped(&self, doc: &Value) -> Vec<String> {
        let mut out = std::collections::BTreeSet::new();
        let mut stack = Vec::new();
        self.walk(doc, &mut stack, &mut out);
        out.into_iter().collect()
    }

    fn walk<'v>(&self, value: &'v Value, at: &mut Vec<&'v str>, out: &mut std::collections::BTreeSet<String>) {
        if self.is_used(value) {
            return;
        }
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (key, child) in map {
                    at.push(key);
                    self.walk(child, at, out);
                    at.pop();
                }
            }
            Value::Array(items) if !items.is_empty() => {
                for child in items {
                    at.push("*");
                    self.walk(child, at, out);
                    at.pop();
                }
            }
            _ => {
                let path: String = at.iter().map(|k| format!("/{}", k.replace('~', "~0").replace('/', "~1"))).collect();
                out.insert(path);
            }
        }
    }
}

/// One unit of readings: the whole payload, or one element of the `each` array.
struct Scope<'a> {
    profile: &'a Profile,
    root: &'a Value,
    here: &'a Value,
    element: Option<usize>,
    limits: &'a PayloadLimits,
}

impl<'a> Scope<'a> {
    fn get(&self, path: &JsonPath) -> Option<&'a Value> {
        path.resolve(self.root, self.here).filter(|v| !v.is_null())
    }

    /// Where a path points, as the operator can find it in the payload: `/batch/3/hr`.
    fn locate(&self, path: &JsonPath) -> String {
        match (&self.profile.each, self.element) {
            (Some(each), Some(i)) if !path.is_anchored() => format!("{each}/{i}{path}"),
            _ => path.to_string(),
        }
    }

    fn missing(&self, what: &str, path: &JsonPath) -> Rejection {
        Rejection::new(RejectReason::MissingField, format!("{what} is missing: nothing at {}", self.locate(path)))
    }

    fn bad(&self, reason: RejectReason, what: &str, path: &JsonPath, value: &Value, expected: &str) -> Rejection {
        Rejection::new(reason, format!("{what} at {} is {}, expected {expected}", self.locate(path), describe(value)))
    }

    /// This scope's readings into `trial`, or its problems: every one of them.
    fn readings(&self, trial: &mut Trial, used: &mut Used) {
        let profile = self.profile;
        let problems = &mut trial.problems;
        let device_id = keep(problems, self.device_id());
        let observed_at = keep(problems, self.observed_at());
        let patient_hints = keep(problems, self.patient_hints());
        let validity = keep(problems, self.validity(profile.validity.as_ref()));
        let values: Vec<_> =
            profile.mappings.iter().filter_map(|m| Some((m.metric, keep(problems, self.value(m))??))).collect();
        self.mark_read(used);
        let (Some(device_id), Some(observed_at), Some(patient_hints), Some(validity)) =
            (device_id, observed_at, patient_hints, validity)
        else {
            return;
        };
        for (metric, (value, own)) in values {
            trial.readings.push(Reading {
                device_id: device_id.clone(),
                metric,
                value,
                observed_at,
                patient_hints: patient_hints.clone(),
                validity: validity.worst(own),
            });
        }
    }

    /// Marks every part of the payload this scope's paths point at as read.
    fn mark_read(&self, used: &mut Used) {
        let profile = self.profile;
        let (root, here) = (self.root, self.here);
        let paths = [Some(&profile.device_id), Some(&profile.time.path), profile.patient.as_ref().map(|p| &p.path)]
            .into_iter()
            .chain([profile.validity.as_ref().map(|v| &v.path)])
            .flatten();
        for path in paths {
            used.mark_path(path, root, here);
        }
        for mapping in &profile.mappings {
            used.mark_path(&mapping.value, root, here);
            if let UnitSource::Payload { path, .. } = &mapping.unit {
                used.mark_path(path, root, here);
            }
            if let Some(v) = &mapping.validity {
                used.mark_path(&v.path, root, here);
            }
        }
    }

    fn device_id(&self) -> Result<String, Rejection> {
        let path = &self.profile.device_id;
        let max = self.limits.max_device_id_bytes;
        match self.get(path) {
            Some(Value::String(s)) if s.len() > max => Err(Rejection::new(
                RejectReason::OverLimit,
                format!(
                    "device id at {} is {} bytes, over the limit of {max} ({} max_device_id_bytes)",
                    self.locate(path),
                    s.len(),
                    self.limits.section
                ),
            )),
            Some(Value::String(s)) if !s.is_empty() && !s.chars().all(device_id_char) => Err(self.bad(
                RejectReason::BadValue,
                "device id",
                path,
                &Value::String(s.clone()),
                "letters, digits and - _ . : only",
            )),
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
            Some(other) => {
                Err(self.bad(RejectReason::BadValue, "device id", path, other, "a non-empty string or an integer"))
            }
            None => Err(self.missing("device id", path)),
        }
    }

    fn observed_at(&self) -> Result<DateTime<Utc>, Rejection> {
        let time = &self.profile.time;
        let value = self.get(&time.path).ok_or_else(|| self.missing("observed time", &time.path))?;
        let (parsed, expected) = match time.format {
            TimeFormat::Rfc3339 => (
                value.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()).map(|t| t.timestamp_millis()),
                "an RFC 3339 time with an offset, e.g. \"2026-11-24T10:00:00.120Z\"",
            ),
            TimeFormat::EpochMs => (epoch_millis(value, 1), "epoch milliseconds, e.g. 1795000000000"),
            TimeFormat::EpochS => (epoch_millis(value, 1000), "epoch seconds, e.g. 1795000000"),
        };
        parsed
            .and_then(DateTime::from_timestamp_millis)
            .ok_or_else(|| self.bad(RejectReason::BadTime, "observed time", &time.path, value, expected))
    }

    /// The patient identifier the payload carries, if the profile maps one: a value in the
    /// profile's system, or a `system|value` token (FHIR search style) whose system is named in it.
    fn patient_hints(&self) -> Result<Vec<PatientHint>, Rejection> {
        let Some(patient) = &self.profile.patient else {
            return Ok(Vec::new());
        };
        let path = &patient.path;
        let text = match self.get(path) {
            None => return Ok(Vec::new()),
            Some(Value::String(s)) if s.is_empty() => return Ok(Vec::new()),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
            // PHI: say what kind of value it is, never the value.
            Some(_) => {
                return Err(Rejection::new(
                    RejectReason::BadValue,
                    format!(
                        "patient identifier at {} is not a string or an integer (value withheld: PHI)",
                        self.locate(path)
                    ),
                ));
            }
        };
        let hint = match &patient.system {
            PatientSystem::Fixed(system) => PatientHint { system: system.clone(), value: text },
            PatientSystem::Token => match text.split_once('|') {
                Some((system, value)) if !system.is_empty() && !value.is_empty() => {
                    PatientHint { system: system.to_string(), value: value.to_string() }
                }
                _ => {
                    return Err(Rejection::new(
                        RejectReason::BadValue,
                        format!(
                            "patient identifier at {} is not a system|value token (value withheld: PHI)",
                            self.locate(path)
                        ),
                    ));
                }
            },
        };
        Ok(vec![hint])
    }

    /// What a flag field says; valid when there is no field or the payload leaves the flag out.
    fn validity(&self, field: Option<&ValidityField>) -> Result<Validity, Rejection> {
        let Some(field) = field else {
            return Ok(Validity::Valid);
        };
        let Some(value) = self.get(&field.path) else {
            return Ok(Validity::Valid);
        };
        let flag = match value {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            other => {
                return Err(self.bad(
                    RejectReason::BadValue,
                    "validity flag",
                    &field.path,
                    other,
                    "a string, number or boolean",
                ));
            }
        };
        match field.map.iter().find(|(key, _)| *key == flag) {
            Some((_, validity)) => Ok(*validity),
            None => field.unmapped.ok_or_else(|| {
                Rejection::new(
                    RejectReason::BadValue,
                    format!(
                        "validity flag at {} is {}, which the profile's validity map does not list: add it to the map or set unmapped",
                        self.locate(&field.path),
                        describe(value)
                    ),
                )
            }),
        }
    }

    /// The mapped value in the metric's canonical unit with the value's own validity; `None` when
    /// the payload does not carry it.
    fn value(&self, mapping: &Mapping) -> Result<Option<(f64, Validity)>, Rejection> {
        let metric = mapping.metric;
        let Some(raw) = self.get(&mapping.value) else {
            return Ok(None);
        };
        let what = format!("{} value", metric.mdc_ref);
        let number = match raw {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.parse::<f64>().ok(),
            _ => None,
        }
        .ok_or_else(|| self.bad(RejectReason::BadValue, &what, &mapping.value, raw, "a number"))?;
        if !number.is_finite() {
            return Err(self.bad(RejectReason::BadValue, &what, &mapping.value, raw, "a finite number"));
        }
        let own = self.validity(mapping.validity.as_ref())?;
        // The sentinel is not a measurement: it is kept unconverted, as the device sent it.
        if mapping.no_value == Some(number) {
            return Ok(Some((number, Validity::Invalid)));
        }
        let unit = match &mapping.unit {
            UnitSource::Fixed(unit) => *unit,
            UnitSource::Payload { path, accepted } => self.payload_unit(mapping, path, accepted)?,
        };
        let converted = convert(number, &unit, metric).map_err(|e| {
            Rejection::new(
                RejectReason::BadValue,
                format!("{what} at {} cannot be converted: {e}", self.locate(&mapping.value)),
            )
        })?;
        Ok(Some((converted, own)))
    }

    fn payload_unit(
        &self,
        mapping: &Mapping,
        path: &JsonPath,
        accepted: &[(String, units::Unit)],
    ) -> Result<units::Unit, Rejection> {
        let metric = mapping.metric;
        let what = format!("{} unit", metric.mdc_ref);
        let value = self.get(path).ok_or_else(|| self.missing(&what, path))?;
        let Value::String(spelled) = value else {
            return Err(self.bad(RejectReason::BadUnit, &what, path, value, "a unit string"));
        };
        if let Some((_, unit)) = accepted.iter().find(|(s, _)| s == spelled) {
            return Ok(*unit);
        }
        let listed: Vec<String> = accepted.iter().map(|(s, _)| format!("\"{s}\"")).collect();
        let why = match parse_unit(spelled) {
            None => "a unit Vigil does not know".to_string(),
            Some(unit) if unit.dimension != metric.dimension => format!(
                "a {}, but {} is a {} measured in \"{}\"",
                unit.dimension.name(),
                metric.display,
                metric.dimension.name(),
                metric.unit
            ),
            Some(_) => "not among the profile's accepted units for it; add it to `units` if the device really sends it"
                .to_string(),
        };
        Err(Rejection::new(
            RejectReason::BadUnit,
            format!("{what} at {} is {}: {why} (accepted: {})", self.locate(path), describe(value), listed.join(", ")),
        ))
    }
}

/// The value, or `None` with the problem recorded.
fn keep<T>(problems: &mut Vec<Rejection>, result: Result<T, Rejection>) -> Option<T> {
    result.map_err(|e| problems.push(e)).ok()
}

/// Epoch time in milliseconds from a number or a string holding one, `per_unit` ms per unit.
/// Fractions are rounded to the millisecond, since float digits below that are noise.
fn epoch_millis(value: &Value, per_unit: i64) -> Option<i64> {
    let integer = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse::<i64>().ok(),
        _ => return None,
    };
    if let Some(units) = integer {
        return units.checked_mul(per_unit);
    }
    let float = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.parse::<f64>().ok()?,
        _ => return None,
    };
    let millis = (float * per_unit as f64).round();
    // Beyond this chrono cannot represent the time anyway; checking first keeps the cast exact.
    (millis.is_finite() && millis.abs() < 1e17).then_some(millis as i64)
}

/// A payload value for a rejection detail: short, and never more than a fragment of the payload.
fn describe(value: &Value) -> String {
    const MAX_CHARS: usize = 40;
    match value {
        Value::String(s) if s.chars().count() > MAX_CHARS => {
            let head: String = s.chars().take(MAX_CHARS).collect();
            format!("{}…", Value::String(head))
        }
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
