//! Releasing and discarding quarantined readings, and releasing readings held for consent.

use super::{Admin, reason};
use crate::accounts::Action;
use crate::api::actor::Actor;
use crate::api::dto::{ReleaseOutcome, ReleaseResult};
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::identify::{Verdict, identify};
use crate::normalise::normalise;
use crate::store::Resolution;

impl Admin {
    /// Re-identifies a quarantined reading against the registry as it is now (after the pairing was
    /// fixed): stored or held like any reading when it now checks out, else left in quarantine.
    pub async fn release_quarantine(&self, actor: &Actor, id: i64, why: &str) -> ApiResult<ReleaseOutcome> {
        self.permit(actor, Action::ResolveQuarantine).await?;
        let why = reason(why)?;
        let entry =
            self.store.quarantine_entry(id).await?.ok_or_else(|| {
                ApiError::new(ErrorCode::NotFound, format!("quarantined reading {id} does not exist"))
            })?;
        let profile = self.profiles.for_topic(&entry.origin).ok_or_else(|| {
            ApiError::new(ErrorCode::Refused, format!("no device profile serves topic {:?} any more", entry.origin))
        })?;
        let mut reading = normalise(profile, entry.payload.as_bytes(), &self.config.sources.mqtt.payload_limits())
            .map_err(|r| ApiError::new(ErrorCode::Refused, r.detail))?
            .into_iter()
            .find(|r| {
                r.device_id == entry.device_id
                    && r.metric.mdc_code == entry.mdc_code
                    && r.observed_at == entry.observed_at
            })
            .ok_or_else(|| ApiError::new(ErrorCode::Refused, "the payload no longer yields this reading"))?;
        let registry = self.store.load_registry().await?;
        self.policy.stamp(&mut reading, &registry);
        let hash = reading.content_hash();
        let (resolution, held) = match identify(&reading, &registry, &self.policy, self.clock.now()) {
            Verdict::Accept { patient_id } => {
                (Resolution::Release { reading, hash, patient_id, held_for: None }, false)
            }
            Verdict::Hold { patient_id, flow } => {
                (Resolution::Release { reading, hash, patient_id, held_for: Some(flow) }, true)
            }
            Verdict::Quarantine { detail, .. } => {
                self.store.audit(actor.name(), "quarantine.release_refused", &format!("quarantine {id}"), why).await?;
                return Ok(ReleaseOutcome {
                    outcome: ReleaseResult::Quarantined,
                    detail: format!("still quarantined: {detail}. Fix the pairing, then release again."),
                });
            }
        };
        let fresh = self.store.resolve_quarantine(id, &resolution, actor.name(), why).await?;
        Ok(match (fresh, held) {
            (false, _) => ReleaseOutcome {
                outcome: ReleaseResult::Duplicate,
                detail: "released; the same reading was already stored, so nothing new was added".into(),
            },
            (true, false) => ReleaseOutcome {
                outcome: ReleaseResult::Stored,
                detail: "released: the reading now identifies its patient and is stored as telemetry".into(),
            },
            (true, true) => ReleaseOutcome {
                outcome: ReleaseResult::Held,
                detail: "released, and held: the patient has not consented to this use yet".into(),
            },
        })
    }

    /// Discards a quarantined reading (kept for forensics, never charted).
    pub async fn discard_quarantine(&self, actor: &Actor, id: i64, why: &str) -> ApiResult<()> {
        self.permit(actor, Action::ResolveQuarantine).await?;
        self.store.resolve_quarantine(id, &Resolution::Discard, actor.name(), reason(why)?).await?;
        Ok(())
    }

    /// Stores a patient's readings held for want of `store` consent, once it is recorded: they were
    /// evaluated for alarms on arrival, and now become telemetry. Returns how many were stored.
    pub async fn release_held(&self, actor: &Actor, system: &str, value: &str, why: &str) -> ApiResult<u64> {
        self.permit(actor, Action::ReleaseHeld).await?;
        let why = reason(why)?;
        let patient = self.local_patient(&self.identifier(system, value)?).await?;
        Ok(self.store.release_held(patient.id, actor.name(), why).await?)
    }
}
