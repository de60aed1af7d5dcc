//! Releasing and discarding quarantined readings, and releasing readings held for consent.

use std::collections::HashMap;

use super::{Admin, reason};
use crate::accounts::Action;
use crate::api::actor::Actor;
use crate::api::dto::{
    GroupReleaseOutcome, PairRequest, QuarantineFilter, QuarantinePage, ReleaseOutcome, ReleaseResult,
};
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::identify::Registry;
use crate::identify::{Verdict, identify};
use crate::normalise::normalise;
use crate::store::{QuarantineEntry, QuarantineGroup, Resolution};

/// Readings released per transaction: a big group commits in steps, each audited with its count.
const RELEASE_CHUNK: usize = 500;

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
        let registry = self.store.load_registry().await?;
        let (resolution, held) = match self.reidentify(&entry, &registry)? {
            Ok(found) => found,
            Err(detail) => {
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

    /// Reads a quarantined reading again from its payload and identifies it against `registry`:
    /// the release that stores (or holds, `true`) it, or why it still does not check out.
    fn reidentify(
        &self,
        entry: &QuarantineEntry,
        registry: &Registry,
    ) -> ApiResult<Result<(Resolution, bool), String>> {
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
        self.policy.stamp(&mut reading, registry);
        let hash = reading.content_hash();
        Ok(match identify(&reading, registry, &self.policy, self.clock.now()) {
            Verdict::Accept { patient_id } => {
                Ok((Resolution::Release { reading, hash, patient_id, held_for: None }, false))
            }
            Verdict::Hold { patient_id, flow } => {
                Ok((Resolution::Release { reading, hash, patient_id, held_for: Some(flow) }, true))
            }
            Verdict::Quarantine { detail, .. } => Err(detail),
        })
    }

    /// Pairs a device with a verified patient from `request.from` (as [`Admin::pair_device`] does,
    /// back-dating reason and all), then releases every reading of the device quarantined inside
    /// that pairing, each re-identified against the registry with the new pairing in it: one action
    /// for the hours an unpaired monitor sent. Readings that still do not check out stay.
    pub async fn pair_and_release(
        &self,
        actor: &Actor,
        request: &PairRequest,
        why: &str,
    ) -> ApiResult<GroupReleaseOutcome> {
        self.permit(actor, Action::ResolveQuarantine).await?;
        let why = reason(why)?;
        let from = request.from.unwrap_or_else(|| self.clock.now());
        let request = PairRequest { from: Some(from), ..request.clone() };
        self.pair_device(actor, &request).await?;
        let device_id = self.registered_id(&request.device_id).await?;
        let entries = self.store.quarantine_within(&device_id, from, request.until).await?;
        let registry = self.store.load_registry().await?;
        let (mut accepted, mut held, mut outcome) = (Vec::new(), Vec::new(), GroupReleaseOutcome::default());
        for entry in &entries {
            match self.reidentify(entry, &registry) {
                Ok(Ok((resolution, false))) => accepted.push((entry.id, resolution)),
                Ok(Ok((resolution, true))) => held.push((entry.id, resolution)),
                Ok(Err(_)) | Err(_) => outcome.still_quarantined += 1,
            }
        }
        for (list, fresh) in [(&accepted, &mut outcome.stored), (&held, &mut outcome.held)] {
            for chunk in list.chunks(RELEASE_CHUNK) {
                *fresh += self.store.resolve_quarantine_many(&device_id, chunk, actor.name(), why).await?;
            }
        }
        outcome.duplicate = (accepted.len() + held.len()) as u64 - outcome.stored - outcome.held;
        outcome.detail = format!(
            "paired from {}; of {} quarantined readings inside the pairing, {} stored under the patient, {} held \
             for consent, {} already stored, {} still quarantined",
            from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            entries.len(),
            outcome.stored,
            outcome.held,
            outcome.duplicate,
            outcome.still_quarantined
        );
        Ok(outcome)
    }

    /// Discards every quarantined reading of a device for one reason, with a reason (kept for
    /// forensics, never charted); returns how many.
    pub async fn discard_group(&self, actor: &Actor, device_id: &str, reason_code: &str, why: &str) -> ApiResult<u64> {
        self.permit(actor, Action::ResolveQuarantine).await?;
        let why = reason(why)?;
        Ok(self.store.discard_quarantine_group(device_id, reason_code, actor.name(), why).await?)
    }

    /// Quarantined readings by device and reason, largest group first, each saying whether its
    /// device is registered and which profile it has or its topic suggests.
    pub async fn quarantine_groups(&self, actor: &Actor) -> ApiResult<Vec<QuarantineGroup>> {
        self.permit(actor, Action::View).await?;
        let devices: HashMap<String, Option<String>> =
            self.store.devices().await?.into_iter().map(|d| (d.device_id, d.profile_id)).collect();
        let mut groups = self.store.quarantine_groups().await?;
        for g in &mut groups {
            g.registered = devices.contains_key(&g.device_id);
            g.profile_id = devices
                .get(&g.device_id)
                .cloned()
                .flatten()
                .or_else(|| self.profiles.for_topic(&g.origin).map(|p| p.id.clone()));
        }
        Ok(groups)
    }

    /// A page of quarantined readings with their raw payloads, newest first.
    pub async fn quarantine_page(&self, actor: &Actor, filter: &QuarantineFilter) -> ApiResult<QuarantinePage> {
        self.permit(actor, Action::View).await?;
        self.audit_view(actor, "quarantined readings with their raw payloads").await;
        let limit = filter.limit.clamp(1, 500);
        let store = &self.store;
        Ok(store
            .quarantine_page(filter.device_id.as_deref(), filter.reason.as_deref(), filter.older_than, limit)
            .await?)
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
