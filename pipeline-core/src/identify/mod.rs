//! Identify: which verified patient a reading belongs to, and whether it may flow.
//!
//! Invariant: a reading reaches the telemetry store only if its device is registered, a pairing with a
//! verified patient was active at the reading's observed time, any patient identifier in the payload
//! agrees with that pairing, and the patient consented to storage. Anything else is quarantined or
//! held with its reason; nothing is dropped. Unknown consent means no (fail-closed).

mod pairing;

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::model::{Reading, Validity};

pub use pairing::{NewPairing, PairingConflict};

/// A use of a patient's data that needs consent, checked at each hop. Bedside alarms are not one:
/// they are the care the patient receives by wearing the device, and never wait on consent
/// (`docs/decisions.md`, "Alarms do not depend on consent").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[ts(export)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    /// Keeping telemetry in the store.
    Store,
    /// Writing clinical events to the EHR.
    EhrWrite,
}

impl Flow {
    /// Every flow, in a stable order.
    pub const ALL: [Flow; 2] = [Flow::Store, Flow::EhrWrite];

    /// The stable name used in the store and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::Store => "store",
            Flow::EhrWrite => "ehr-write",
        }
    }

    /// Parses a stable name.
    pub fn parse(s: &str) -> Option<Flow> {
        Flow::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a reading went to quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuarantineReason {
    /// The device is not in the registry.
    UnknownDevice,
    /// No pairing of the device was active at the observed time.
    NoActivePairing,
    /// The payload names a patient other than the paired one.
    PatientMismatch,
    /// The paired patient has not been verified.
    UnverifiedPatient,
    /// The observed time is further in the future than the policy allows.
    FutureTime,
    /// The value is outside its metric's physiological range: a unit or scaling mistake.
    Implausible,
    /// The payload names its patient in an identifier system Vigil does not know.
    UnknownIdentifierSystem,
    /// The message names no patient where its source must (an HL7 message without a PID).
    NoPatientIdentity,
}

impl QuarantineReason {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            QuarantineReason::UnknownDevice => "unknown_device",
            QuarantineReason::NoActivePairing => "no_active_pairing",
            QuarantineReason::PatientMismatch => "patient_mismatch",
            QuarantineReason::UnverifiedPatient => "unverified_patient",
            QuarantineReason::FutureTime => "future_time",
            QuarantineReason::Implausible => "implausible",
            QuarantineReason::UnknownIdentifierSystem => "unknown_identifier_system",
            QuarantineReason::NoPatientIdentity => "no_patient_identity",
        }
    }
}

/// A patient as the registry knows it. PHI: never log `id_value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientRecord {
    /// Store key.
    pub id: i64,
    /// Identifier system (a URI or OID).
    pub id_system: String,
    /// Identifier value (an MRN...).
    pub id_value: String,
    /// Whether the identity was verified (at the EHR, or by an operator for a local registry).
    pub verified: bool,
}

/// A device-patient pairing for a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingRecord {
    /// Store key.
    pub id: i64,
    /// The paired patient's store key.
    pub patient_id: i64,
    /// Start of the period (inclusive).
    pub valid_from: DateTime<Utc>,
    /// End of the period (exclusive); `None` while the pairing is open.
    pub valid_to: Option<DateTime<Utc>>,
}

impl PairingRecord {
    /// Whether the pairing covers the instant `t`.
    pub fn covers(&self, t: DateTime<Utc>) -> bool {
        self.valid_from <= t && self.valid_to.is_none_or(|end| t < end)
    }
}

/// An in-memory snapshot of devices, patients, pairings and consents, reloaded when the store's
/// registry generation changes.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    /// The store's generation this snapshot was read at.
    pub generation: i64,
    /// Registered device ids.
    pub devices: HashSet<String>,
    /// Devices flagged as sending demo or test data.
    pub demo_devices: HashSet<String>,
    /// Pairings per device id.
    pub pairings: HashMap<String, Vec<PairingRecord>>,
    /// Patients by store key.
    pub patients: HashMap<i64, PatientRecord>,
    /// Recorded consent decisions; a missing entry means no.
    pub consents: HashMap<(i64, Flow), bool>,
}

impl Registry {
    /// Whether the patient consented to the flow; unknown is no.
    pub fn consents_to(&self, patient_id: i64, flow: Flow) -> bool {
        self.consents.get(&(patient_id, flow)).copied().unwrap_or(false)
    }
}

/// The identify policy: `[identity]` (future skew, identifier systems), `[plausibility]`, and
/// whether this is a demo site.
#[derive(Debug, Clone)]
pub struct Policy {
    /// How far in the future an observed time may be (device clocks drift).
    pub max_future_skew: Duration,
    /// A demo site: every reading is demo data, whatever its profile says.
    pub demo_site: bool,
    /// The identifier system aliases, for comparing a payload's patient with the pairing's.
    pub identity: crate::config::IdentityConfig,
    /// The site's own plausible ranges, by MDC code, where they replace the code table's.
    pub plausible: HashMap<u32, (f64, f64)>,
}

impl Policy {
    /// The policy a site's `[identity]` section describes.
    pub fn of(config: &crate::config::Config) -> Policy {
        let skew = i64::try_from(config.identity.max_future_skew_secs).unwrap_or(i64::MAX);
        Policy {
            max_future_skew: Duration::try_seconds(skew).unwrap_or(Duration::MAX),
            demo_site: config.site.demo,
            identity: config.identity.clone(),
            plausible: config
                .plausibility
                .iter()
                .filter_map(|(m, r)| Some((crate::model::codes::metric_by_ref(m)?.mdc_code, (r.low, r.high))))
                .collect(),
        }
    }

    /// Marks a demo site's reading, or a demo device's, as demo data, so it feeds alarms and charts
    /// like a valid one but can never reach a production EHR. An invalid reading stays invalid: it
    /// must feed nothing.
    pub fn stamp(&self, reading: &mut Reading, registry: &Registry) {
        if self.demo_site || registry.demo_devices.contains(&reading.device_id) {
            reading.validity = reading.validity.worst(Validity::Demo);
        }
    }
}

/// What identify decided for one reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Paired, verified and consented: on to dedup and the store.
    Accept {
        /// The patient's store key.
        patient_id: i64,
    },
    /// Paired and verified, but consent for a flow is missing: kept, not stored as telemetry.
    Hold {
        /// The patient's store key.
        patient_id: i64,
        /// The flow without consent.
        flow: Flow,
    },
    /// The pairing does not check out: forensic only.
    Quarantine {
        /// Why.
        reason: QuarantineReason,
        /// What an operator needs to act, without PHI.
        detail: String,
    },
}

/// Why a value cannot be the patient's, if it cannot: outside its metric's plausible range, with a
/// hint at the usual mistake. A value the device flagged invalid is kept as invalid instead (a probe
/// off often reads 0), and never charted either way.
pub fn implausible(reading: &Reading, policy: &Policy) -> Option<String> {
    let m = reading.metric;
    let range = policy.plausible.get(&m.mdc_code).copied().unwrap_or(m.plausible);
    let (value, (low, high)) = (reading.value, range);
    if reading.validity == Validity::Invalid || (low..=high).contains(&value) {
        return None;
    }
    let hint = match m.unit {
        "Cel" if (77.0..=113.0).contains(&value) => ": a Fahrenheit value labelled Celsius?",
        "%" if value > 0.0 && value <= 1.0 => ": a fraction labelled percent?",
        _ => "",
    };
    Some(format!("{} {value} {} is outside the plausible range {low}-{high} {}{hint}", m.display, m.unit, m.unit))
}

/// Why the patient identifiers a reading carries cannot stand for the paired patient, if they
/// cannot. Only identifiers in the pairing's system are compared (an HL7 PID-3 also lists others):
/// one of them must carry the paired value and none another. A reading whose identifiers are all in
/// other systems disagrees too, unless a system is unknown, which is named instead.
fn hints_disagree(
    reading: &Reading,
    patient: &PatientRecord,
    pairing: i64,
    policy: &Policy,
) -> Option<(QuarantineReason, String)> {
    let device = &reading.device_id;
    if reading.patient_hints.is_empty() {
        return None;
    }
    let paired_system = policy.identity.resolve_system(&patient.id_system).unwrap_or(patient.id_system.clone());
    let mut unknown = None;
    let mut in_paired_system = Vec::new();
    for hint in &reading.patient_hints {
        match policy.identity.resolve_system(&hint.system) {
            None => unknown = unknown.or(Some(&hint.system)),
            Some(system) if system == paired_system => in_paired_system.push(&hint.value),
            Some(_) => {}
        }
    }
    let mismatch = || {
        // The system's name is not PHI; the value is.
        Some((
            QuarantineReason::PatientMismatch,
            format!(
                "device {device} sent a patient identifier that differs from pairing {pairing}: check who wears the device"
            ),
        ))
    };
    if in_paired_system.iter().any(|value| **value != patient.id_value) {
        return mismatch();
    }
    if !in_paired_system.is_empty() {
        return None;
    }
    match unknown {
        Some(system) => Some((
            QuarantineReason::UnknownIdentifierSystem,
            format!(
                "device {device} names its patient in identifier system {system:?}, which is neither an absolute URI \
                 nor an alias in [identity.systems]: add the alias, then release"
            ),
        )),
        None => mismatch(),
    }
}

/// Decides where a reading goes. A pure function of the reading, the registry snapshot and the clock.
pub fn identify(reading: &Reading, registry: &Registry, policy: &Policy, now: DateTime<Utc>) -> Verdict {
    let quarantine = |reason, detail: String| Verdict::Quarantine { reason, detail };
    let device = &reading.device_id;
    if let Some(why) = implausible(reading, policy) {
        return quarantine(QuarantineReason::Implausible, format!("device {device}: {why}"));
    }
    if reading.observed_at > now + policy.max_future_skew {
        let ahead = (reading.observed_at - now).num_seconds();
        return quarantine(
            QuarantineReason::FutureTime,
            format!(
                "device {device} reports a time {ahead} s in the future (allowed {} s): check the device clock",
                policy.max_future_skew.num_seconds()
            ),
        );
    }
    if !registry.devices.contains(device) {
        return quarantine(
            QuarantineReason::UnknownDevice,
            format!("device {device} is not registered: register and pair it, then release"),
        );
    }
    let Some(pairing) = registry.pairings.get(device).and_then(|ps| ps.iter().find(|p| p.covers(reading.observed_at)))
    else {
        return quarantine(
            QuarantineReason::NoActivePairing,
            // The row shows when it was measured, in the operator's own time zone.
            format!(
                "device {device} had no active pairing when this was measured: pair it for that time, then release"
            ),
        );
    };
    let Some(patient) = registry.patients.get(&pairing.patient_id) else {
        return quarantine(
            QuarantineReason::NoActivePairing,
            format!("pairing {} of device {device} names a patient missing from the registry", pairing.id),
        );
    };
    if !patient.verified {
        return quarantine(
            QuarantineReason::UnverifiedPatient,
            format!("pairing {} of device {device} is to a patient not yet verified: verify the patient", pairing.id),
        );
    }
    if let Some((reason, detail)) = hints_disagree(reading, patient, pairing.id, policy) {
        return quarantine(reason, detail);
    }
    if !registry.consents_to(patient.id, Flow::Store) {
        return Verdict::Hold { patient_id: patient.id, flow: Flow::Store };
    }
    Verdict::Accept { patient_id: patient.id }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::PatientHint;
    use crate::model::codes::metric_by_code;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn registry() -> Registry {
        let mut r = Registry::default();
        r.devices.insert("OX-1".into());
        r.devices.insert("OX-2".into());
        r.patients
            .insert(7, PatientRecord { id: 7, id_system: "urn:mrn".into(), id_value: "MRN7".into(), verified: true });
        r.pairings.insert(
            "OX-1".into(),
            vec![PairingRecord {
                id: 1,
                patient_id: 7,
                valid_from: at("2026-01-01T00:00:00Z"),
                valid_to: Some(at("2026-06-01T00:00:00Z")),
            }],
        );
        r.consents.insert((7, Flow::Store), true);
        r
    }

    fn reading(device: &str, t: &str, hint: Option<&str>) -> Reading {
        Reading {
            device_id: device.into(),
            metric: metric_by_code(150456).unwrap(),
            value: 97.0,
            observed_at: at(t),
            patient_hints: hint
                .map(|value| PatientHint { system: "urn:mrn".into(), value: value.into() })
                .into_iter()
                .collect(),
            validity: Validity::Valid,
        }
    }

    fn verdict(r: &Reading, reg: &Registry) -> Verdict {
        let policy = Policy {
            max_future_skew: Duration::seconds(300),
            demo_site: false,
            identity: Default::default(),
            plausible: HashMap::new(),
        };
        identify(r, reg, &policy, at("2026-07-01T00:00:00Z"))
    }

    fn reason(v: Verdict) -> Option<QuarantineReason> {
        match v {
            Verdict::Quarantine { reason, .. } => Some(reason),
            _ => None,
        }
    }

    #[test]
    fn of_several_patient_identifiers_those_in_the_pairings_system_decide() {
        let mut reg = registry();
        reg.consents.insert((7, Flow::Store), true);
        let with = |hints: &[(&str, &str)]| {
            let mut r = reading("OX-1", "2026-02-01T00:00:00Z", None);
            r.patient_hints = hints
                .iter()
                .map(|(system, value)| PatientHint { system: (*system).into(), value: (*value).into() })
                .collect();
            reason(verdict(&r, &reg))
        };
        assert_eq!(with(&[("urn:national", "N-1"), ("urn:mrn", "MRN7")]), None, "another system's id is not compared");
        assert_eq!(with(&[("urn:mrn", "MRN7"), ("urn:mrn", "MRN8")]), Some(QuarantineReason::PatientMismatch));
        assert_eq!(
            with(&[("urn:national", "N-1")]),
            Some(QuarantineReason::PatientMismatch),
            "none in the pairing's system"
        );
        assert_eq!(with(&[("NHS", "N-1")]), Some(QuarantineReason::UnknownIdentifierSystem));
        assert_eq!(with(&[("NHS", "N-1"), ("urn:mrn", "MRN7")]), None);
    }

    #[test]
    fn accepts_a_paired_consented_reading() {
        assert_eq!(
            verdict(&reading("OX-1", "2026-02-01T00:00:00Z", Some("MRN7")), &registry()),
            Verdict::Accept { patient_id: 7 }
        );
    }

    #[test]
    fn checks_the_pairing_at_the_observed_time() {
        let reg = registry();
        assert_eq!(
            reason(verdict(&reading("OX-1", "2025-12-31T23:59:59Z", None), &reg)),
            Some(QuarantineReason::NoActivePairing)
        );
        // valid_to is exclusive
        assert_eq!(
            reason(verdict(&reading("OX-1", "2026-06-01T00:00:00Z", None), &reg)),
            Some(QuarantineReason::NoActivePairing)
        );
        assert_eq!(
            reason(verdict(&reading("OX-2", "2026-02-01T00:00:00Z", None), &reg)),
            Some(QuarantineReason::NoActivePairing)
        );
    }

    #[test]
    fn quarantines_unknown_mismatched_unverified_and_future() {
        let mut reg = registry();
        assert_eq!(
            reason(verdict(&reading("OX-9", "2026-02-01T00:00:00Z", None), &reg)),
            Some(QuarantineReason::UnknownDevice)
        );
        let mismatch = verdict(&reading("OX-1", "2026-02-01T00:00:00Z", Some("MRN8")), &reg);
        let Verdict::Quarantine { reason: why, detail } = mismatch else { panic!("not quarantined") };
        assert_eq!(why, QuarantineReason::PatientMismatch);
        assert!(!detail.contains("MRN"), "PHI in detail: {detail}");
        assert_eq!(reason_of_future(&reg), Some(QuarantineReason::FutureTime));
        reg.patients.get_mut(&7).unwrap().verified = false;
        assert_eq!(
            reason(verdict(&reading("OX-1", "2026-02-01T00:00:00Z", None), &reg)),
            Some(QuarantineReason::UnverifiedPatient)
        );
    }

    #[test]
    fn a_payloads_patient_is_compared_by_system_and_value_with_aliases_resolved_on_both_sides() {
        let mut reg = registry();
        let mut policy = Policy {
            max_future_skew: Duration::seconds(300),
            demo_site: false,
            identity: Default::default(),
            plausible: HashMap::new(),
        };
        policy.identity.systems.insert("NORTHCLINIC".into(), "urn:oid:1.2.3".into());
        let now = at("2026-07-01T00:00:00Z");
        let with = |system: &str, value: &str| Reading {
            patient_hints: vec![PatientHint { system: system.into(), value: value.into() }],
            ..reading("OX-1", "2026-02-01T00:00:00Z", None)
        };
        // Same value in another system: not the same patient.
        let other = identify(&with("urn:oid:9.9", "MRN7"), &reg, &policy, now);
        assert_eq!(reason(other), Some(QuarantineReason::PatientMismatch));
        // An unknown namespace is named in the detail (a system is not PHI), never the value.
        let unknown = identify(&with("SOUTHCLINIC", "MRN7"), &reg, &policy, now);
        let Verdict::Quarantine { reason: why, detail } = unknown else { panic!("not quarantined") };
        assert_eq!(why, QuarantineReason::UnknownIdentifierSystem);
        assert!(detail.contains("\"SOUTHCLINIC\"") && !detail.contains("MRN7"), "{detail}");
        // The alias on the payload's side and the URI on the pairing's are one system, and the other
        // way round.
        reg.patients.get_mut(&7).unwrap().id_system = "urn:oid:1.2.3".into();
        assert_eq!(identify(&with("NORTHCLINIC", "MRN7"), &reg, &policy, now), Verdict::Accept { patient_id: 7 });
        reg.patients.get_mut(&7).unwrap().id_system = "NORTHCLINIC".into();
        assert_eq!(identify(&with("urn:oid:1.2.3", "MRN7"), &reg, &policy, now), Verdict::Accept { patient_id: 7 });
    }

    fn reason_of_future(reg: &Registry) -> Option<QuarantineReason> {
        reason(verdict(&reading("OX-1", "2026-07-01T00:10:00Z", None), reg))
    }

    #[test]
    fn unknown_or_refused_consent_holds() {
        let mut reg = registry();
        reg.consents.clear();
        let r = reading("OX-1", "2026-02-01T00:00:00Z", None);
        assert_eq!(verdict(&r, &reg), Verdict::Hold { patient_id: 7, flow: Flow::Store });
        reg.consents.insert((7, Flow::Store), false);
        assert_eq!(verdict(&r, &reg), Verdict::Hold { patient_id: 7, flow: Flow::Store });
    }

    #[test]
    fn implausible_values_are_refused_with_a_hint_and_real_zeros_pass() {
        let now = at("2026-03-01T00:00:10Z");
        let of = |code: u32, value: f64, validity: Validity| Reading {
            metric: metric_by_code(code).unwrap(),
            value,
            validity,
            ..reading("OX-1", "2026-03-01T00:00:00Z", None)
        };
        let policy = Policy {
            max_future_skew: Duration::seconds(300),
            demo_site: false,
            identity: Default::default(),
            plausible: HashMap::new(),
        };
        let refused = |r: &Reading| match identify(r, &registry(), &policy, now) {
            Verdict::Quarantine { reason: QuarantineReason::Implausible, detail } => Some(detail),
            _ => None,
        };
        let fahrenheit = refused(&of(150364, 98.6, Validity::Valid)).unwrap();
        assert!(
            fahrenheit
                .ends_with("98.6 Cel is outside the plausible range 25-45 Cel: a Fahrenheit value labelled Celsius?"),
            "{fahrenheit}"
        );
        let fraction = refused(&of(150456, 0.97, Validity::Valid)).unwrap();
        assert!(
            fraction.ends_with("0.97 % is outside the plausible range 1-100 %: a fraction labelled percent?"),
            "{fraction}"
        );
        assert!(refused(&of(150456, 0.0, Validity::Valid)).is_some(), "SpO2 0 flagged valid is not a patient");
        // Asystole and apnoea are real: an ECG heart rate or a respiratory rate of 0 reaches the rules.
        assert_eq!(verdict(&of(147842, 0.0, Validity::Valid), &registry()), Verdict::Accept { patient_id: 7 });
        assert_eq!(verdict(&of(151562, 0.0, Validity::Valid), &registry()), Verdict::Accept { patient_id: 7 });
        // A probe-off 0 flagged invalid is kept as invalid, not refused.
        assert_eq!(verdict(&of(150456, 0.0, Validity::Invalid), &registry()), Verdict::Accept { patient_id: 7 });
        // A site treating severe accidental hypothermia lowers the temperature floor.
        let cold = of(150364, 21.5, Validity::Valid);
        assert!(refused(&cold).unwrap().contains("outside the plausible range 25-45 Cel"));
        let site = Policy { plausible: HashMap::from([(150364, (15.0, 45.0))]), ..policy.clone() };
        assert_eq!(identify(&cold, &registry(), &site, now), Verdict::Accept { patient_id: 7 });
    }
}
