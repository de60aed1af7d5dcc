//! Clinical events submitted by an operator, and resending what the outbox held or dead-lettered.

use chrono::{DateTime, Utc};

use super::Admin;
use crate::accounts::Action;
use crate::api::actor::Actor;
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::clinical::{self, Admission};
use crate::model::Validity;
use crate::model::codes::metric_by_ref;
use crate::model::event::{ClinicalEvent, Effective, EventContent, Observation};

/// A clinical event as an operator writes it (the CLI's `vigil event`).
#[derive(Debug, Clone, Default)]
pub struct EventRequest {
    /// The device that measured.
    pub device_id: String,
    /// The patient's identifier system.
    pub system: String,
    /// The patient's identifier value.
    pub value: String,
    /// Observations as `MDC_CODE=VALUE` in the code's canonical unit, e.g. `150456=97`.
    pub observations: Vec<String>,
    /// A blood pressure panel as `SYS/DIA` or `SYS/DIA/MEAN` in `mm[Hg]`.
    pub blood_pressure: Option<String>,
    /// When it was measured (default now).
    pub at: Option<DateTime<Utc>>,
    /// Groups the observations in a DiagnosticReport with this title.
    pub report: Option<String>,
    /// `valid`, `questionable`, `invalid` or `demo`.
    pub validity: String,
}

impl Admin {
    /// Validates an event for the configured EHR and queues it; returns its outbox id, or `None`
    /// when the same event is already queued. An event that fails validation or consent is kept as
    /// held, and the error (`held`) says why.
    pub async fn submit_event(&self, actor: &Actor, request: &EventRequest) -> ApiResult<Option<i64>> {
        self.permit(actor, Action::SubmitEvent).await?;
        let patient = self.local_patient(&self.identifier(&request.system, &request.value)?).await?;
        let mut event = build_event(patient.id, request, self.clock.now())?;
        if self.policy.demo_site {
            event.mark_demo();
        }
        match clinical::submit(
            self.store.as_ref(),
            &event,
            self.config.ehr.target(),
            Some(actor.name()),
            self.clock.now(),
        )
        .await?
        {
            Admission::Queued(id) => Ok(Some(id)),
            Admission::Duplicate => Ok(None),
            Admission::Held(id, reasons) => {
                Err(ApiError::new(ErrorCode::Held, format!("held as outbox {id}: {}", reasons.join("; "))))
            }
        }
    }

    /// Puts a dead-lettered or held event back in the queue (held ones are validated again first).
    pub async fn requeue(&self, actor: &Actor, id: i64) -> ApiResult<()> {
        self.permit(actor, Action::Requeue).await?;
        Ok(clinical::requeue(self.store.as_ref(), id, self.config.ehr.target(), actor.name(), self.clock.now()).await?)
    }
}

/// Builds an event from an operator's observations.
pub fn build_event(patient_id: i64, r: &EventRequest, now: DateTime<Utc>) -> ApiResult<ClinicalEvent> {
    let invalid = |why: String| ApiError::new(ErrorCode::InvalidInput, why);
    let validity: Validity = serde_json::from_value(serde_json::json!(r.validity))
        .map_err(|_| invalid(format!("validity {:?}: use valid, questionable, invalid or demo", r.validity)))?;
    let effective = Effective::At { at: r.at.unwrap_or(now) };
    let mut obs = Vec::new();
    for o in &r.observations {
        let (code, value) = o.split_once('=').ok_or_else(|| invalid(format!("observation {o:?}: write CODE=VALUE")))?;
        let metric =
            metric_by_ref(code).ok_or_else(|| invalid(format!("observation {o:?}: unknown MDC code {code}")))?;
        let value: f64 = value.parse().map_err(|_| invalid(format!("observation {o:?}: {value:?} is not a number")))?;
        obs.push(Observation::Vital { metric, value, effective, validity, method: None });
    }
    if let Some(bp) = &r.blood_pressure {
        let malformed = || invalid(format!("blood pressure {bp:?}: write SYS/DIA or SYS/DIA/MEAN"));
        let parts: Vec<f64> = bp.split('/').map(str::parse).collect::<Result<_, _>>().map_err(|_| malformed())?;
        let [systolic, diastolic, rest @ ..] = parts.as_slice() else { return Err(malformed()) };
        if rest.len() > 1 {
            return Err(malformed());
        }
        obs.push(Observation::BloodPressure {
            systolic: *systolic,
            diastolic: *diastolic,
            mean: rest.first().copied(),
            effective,
            validity,
        });
    }
    let content = match &r.report {
        _ if obs.is_empty() => return Err(invalid("give at least one observation or a blood pressure".into())),
        Some(title) => EventContent::Report { title: title.clone(), effective, observations: obs },
        None if obs.len() == 1 => EventContent::Single { observation: obs.remove(0) },
        None => return Err(invalid("several observations make a report: give it a title".into())),
    };
    Ok(ClinicalEvent { patient_id, device_id: r.device_id.trim().to_string(), origin: "manual".into(), content })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(observations: &[&str], bp: Option<&str>, report: Option<&str>) -> EventRequest {
        EventRequest {
            device_id: "MX-00A0".into(),
            observations: observations.iter().map(|s| s.to_string()).collect(),
            blood_pressure: bp.map(Into::into),
            report: report.map(Into::into),
            validity: "valid".into(),
            ..EventRequest::default()
        }
    }

    #[test]
    fn one_observation_is_a_single_event() {
        let e = build_event(7, &request(&["150456=88"], None, None), Utc::now()).unwrap();
        assert!(
            matches!(e.content, EventContent::Single { observation: Observation::Vital { value, .. } } if value == 88.0)
        );
    }

    #[test]
    fn several_observations_need_a_report_title() {
        let e = build_event(7, &request(&["150456=88"], Some("120/80"), None), Utc::now()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidInput);
        let e = build_event(7, &request(&["150456=88"], Some("120/80/93"), Some("Spot check")), Utc::now()).unwrap();
        assert!(matches!(e.content, EventContent::Report { observations, .. } if observations.len() == 2));
    }

    #[test]
    fn malformed_input_is_refused_with_what_and_why() {
        for (obs, bp, expected) in [
            (vec!["150456"], None, "write CODE=VALUE"),
            (vec!["999999=1"], None, "unknown MDC code"),
            (vec!["150456=high"], None, "is not a number"),
            (vec![], Some("120"), "SYS/DIA"),
            (vec![], Some("120/80/90/1"), "SYS/DIA"),
            (vec![], None, "at least one"),
        ] {
            let e = build_event(7, &request(&obs, bp, None), Utc::now()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidInput);
            assert!(e.message.contains(expected), "{obs:?} {bp:?}: {}", e.message);
        }
    }
}
