//! `vigil profile try`: what one payload yields under a profile, without a running pipeline. The
//! readings, the fields the profile leaves unread, and every problem, each naming its field: what an
//! engineer writing a profile for a new device needs in one round. The console's profile workbench
//! is to call the same function.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::{ApiError, ApiResult, ErrorCode};
use crate::config::MllpSourceConfig;
use crate::model::Reading;
use crate::normalise::pcd01::{self, Refusal};
use crate::normalise::{PayloadLimits, ProfileSet, load_profile, trial};

/// What a payload yields under a profile.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProfileTrial {
    /// The profile's id.
    pub profile: String,
    /// The readings it would store (before identify: pairing decides where they go).
    pub readings: Vec<TrialReading>,
    /// Fields the payload carries that the profile does not read.
    pub unmapped: Vec<String>,
    /// Every problem; any one rejects the whole payload.
    pub problems: Vec<TrialProblem>,
}

/// One reading a payload yields.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrialReading {
    /// The device id as read (EUI-64s normalised).
    pub device_id: String,
    /// The MDC reference id.
    pub metric: String,
    /// The MDC code.
    pub mdc_code: u32,
    /// The value in `unit`.
    pub value: f64,
    /// The canonical UCUM unit.
    pub unit: String,
    /// When measured.
    pub observed_at: DateTime<Utc>,
    /// What the device said of it.
    pub validity: String,
    /// The systems of the patient identifiers it names (the values are PHI, never shown here).
    pub patient_identifier_systems: Vec<String>,
}

/// One problem with a payload.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TrialProblem {
    /// The stable class, as stored with a rejection.
    pub reason: String,
    /// What, where and why.
    pub detail: String,
}

/// Reads `payload` with a profile: `pcd-01` (an HL7 v2 message, on `mllp`'s terms when given), a
/// profile file, or the id of a profile in `profiles_dir`.
pub fn try_profile(
    profile: &str,
    profiles_dir: Option<&Path>,
    mllp: Option<&MllpSourceConfig>,
    payload: &[u8],
) -> ApiResult<ProfileTrial> {
    if profile == pcd01::PROFILE_ID {
        let terms = mllp.map(MllpSourceConfig::terms).unwrap_or_default();
        return Ok(hl7_trial(&pcd01::decode(payload, &terms)));
    }
    let invalid = |e: crate::normalise::ProfileError| ApiError::new(ErrorCode::InvalidInput, e.to_string());
    let loaded;
    let set;
    let chosen = if Path::new(profile).is_file() {
        loaded = load_profile(profile).map_err(invalid)?;
        &loaded
    } else {
        let dir = profiles_dir.ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownProfile,
                format!(
                    "{profile:?} is not a profile file, and no profile directory was given (--config) to find it in"
                ),
            )
        })?;
        set = ProfileSet::load_dir(dir).map_err(invalid)?;
        set.get(profile).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownProfile,
                format!("no profile {profile:?} in {}; loaded: {}", dir.display(), set.ids().join(", ")),
            )
        })?
    };
    let result = trial(chosen, payload, &PayloadLimits::default());
    Ok(ProfileTrial {
        profile: chosen.id.clone(),
        readings: result.readings.iter().map(trial_reading).collect(),
        unmapped: result.unmapped,
        problems: result
            .problems
            .into_iter()
            .map(|p| TrialProblem { reason: p.reason.to_string(), detail: p.detail })
            .collect(),
    })
}

fn hl7_trial(decoded: &pcd01::Decoded) -> ProfileTrial {
    let mut out = ProfileTrial {
        profile: pcd01::PROFILE_ID.into(),
        readings: Vec::new(),
        unmapped: Vec::new(),
        problems: Vec::new(),
    };
    match &decoded.outcome {
        Ok(oru) => {
            out.readings = oru.readings.iter().map(trial_reading).collect();
            out.unmapped.clone_from(&oru.unmapped);
            if !oru.patient_named {
                out.problems.push(TrialProblem {
                    reason: "no_patient_identity".into(),
                    detail: "the message has no PID: its readings would be quarantined, never charted".into(),
                });
            }
        }
        Err(Refusal::Malformed(problems)) => {
            out.problems = problems
                .iter()
                .map(|p| TrialProblem { reason: p.reason.to_string(), detail: format!("{}: {}", p.at, p.detail) })
                .collect();
        }
        Err(refusal) => {
            let rejection = refusal.rejection();
            out.problems.push(TrialProblem { reason: rejection.reason.to_string(), detail: rejection.detail });
        }
    }
    out
}

fn trial_reading(r: &Reading) -> TrialReading {
    TrialReading {
        device_id: r.device_id.clone(),
        metric: r.metric.mdc_ref.to_string(),
        mdc_code: r.metric.mdc_code,
        value: r.value,
        unit: r.metric.unit.to_string(),
        observed_at: r.observed_at,
        validity: r.validity.as_str().to_string(),
        patient_identifier_systems: r.patient_hints.iter().map(|h| h.system.clone()).collect(),
    }
}
