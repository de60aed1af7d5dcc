//! Devices, patients, pairing and consent.

use std::path::Path;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};

use super::Admin;
use crate::accounts::Action;
use crate::api::actor::Actor;
use crate::api::dto::{PairRequest, VerifiedPatient};
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::clinical;
use crate::config::EhrKind;
use crate::identify::{Flow, NewPairing, PairingRecord};
use crate::normalise::pcd01;
use crate::registry_import;
use crate::sinks::fhir::PatientLookup;

/// How far before now a pairing may start without counting as back-dated: a "now" typed by a
/// person is a little late by the time it arrives.
const BACKDATING_TOLERANCE: TimeDelta = TimeDelta::seconds(60);

/// A pairing made: its store key and the patient's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pairing {
    /// The pairing's store key.
    pub id: i64,
    /// The patient's store key.
    pub patient_id: i64,
    /// The other patient's open pairing it ended, when the operator confirmed the replacement.
    pub replaced: Option<PairingRecord>,
}

impl Admin {
    /// Flags a registered device as sending demo or test data, or clears the flag: its readings are
    /// then stamped demo at ingest, so they alarm and chart, marked, but never reach a production EHR.
    pub async fn set_device_demo(&self, actor: &Actor, device_id: &str, demo: bool) -> ApiResult<()> {
        self.permit(actor, Action::RegisterDevice).await?;
        let device_id = self.registered_id(device_id).await?;
        Ok(self.store.set_device_demo(&device_id, demo, actor.name()).await?)
    }

    /// Registers (or relabels) a device with a loaded profile.
    pub async fn register_device(
        &self,
        actor: &Actor,
        device_id: &str,
        profile_id: &str,
        label: &str,
    ) -> ApiResult<()> {
        self.permit(actor, Action::RegisterDevice).await?;
        let device_id = device_id.trim();
        if device_id.is_empty() {
            return Err(ApiError::new(ErrorCode::InvalidInput, "a device id is required"));
        }
        let profile_id = profile_id.trim();
        // HL7 v2 devices are known by their EUI-64 in one form, whatever the label said.
        let normalised = (profile_id == pcd01::PROFILE_ID).then(|| pcd01::eui64(device_id)).flatten();
        let device_id = normalised.as_deref().unwrap_or(device_id);
        if !self.profiles.knows(profile_id) {
            return Err(ApiError::new(
                ErrorCode::UnknownProfile,
                format!("no device profile {profile_id:?} is loaded; loaded: {}", self.profiles().join(", ")),
            ));
        }
        let label = Some(label.trim()).filter(|l| !l.is_empty());
        Ok(self.store.register_device(device_id, Some(profile_id), label, actor.name()).await?)
    }

    /// Adds or updates a patient of the local registry; `verified_by` names who checked the identity
    /// (without it the patient cannot be paired). Returns the patient's store key.
    pub async fn register_patient(
        &self,
        actor: &Actor,
        system: &str,
        value: &str,
        name: Option<&str>,
        verified_by: Option<&str>,
    ) -> ApiResult<i64> {
        self.permit(actor, Action::RegisterPatient).await?;
        let id = self.identifier(system, value)?;
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        let verified_by = verified_by.map(str::trim).filter(|v| !v.is_empty());
        Ok(self.store.upsert_patient(&id, name, verified_by, actor.name()).await?)
    }

    /// Looks a patient up: at the EHR when one is configured for FHIR, else in the local registry
    /// (verified patients only).
    pub async fn lookup_patient(&self, actor: &Actor, system: &str, value: &str) -> ApiResult<VerifiedPatient> {
        self.permit(actor, Action::RegisterPatient).await?;
        self.audit_view(actor, &format!("patient lookup in {}", system.trim())).await;
        let id = self.identifier(system, value)?;
        if self.config.ehr.kind == EhrKind::Fhir {
            return match self.fhir().await?.find_patient(&id.system, &id.value).await {
                Err(e) => Err(ApiError::new(ErrorCode::EhrUnreachable, format!("the EHR did not answer: {e}"))),
                Ok(PatientLookup::Unknown) => Err(ApiError::new(
                    ErrorCode::PatientNotFound,
                    format!("the EHR knows no patient with that identifier in {}", id.system),
                )),
                Ok(PatientLookup::Ambiguous(n)) => Err(ApiError::new(
                    ErrorCode::AmbiguousPatient,
                    format!("the EHR knows {n} patients with that identifier in {}; it must identify one", id.system),
                )),
                Ok(PatientLookup::One(found)) => Ok(VerifiedPatient {
                    display: found.name.unwrap_or_else(|| "(the EHR gives no name)".into()),
                    birth_date: found.birth_date,
                    fhir_id: Some(found.id),
                    verified_by: format!("EHR {}", self.config.ehr.base_url.clone().unwrap_or_default()),
                    system: id.system,
                    value: id.value,
                }),
            };
        }
        let patient = self.verified_locally(&id).await?;
        Ok(VerifiedPatient {
            display: patient.display_name.unwrap_or_else(|| patient.value.clone()),
            birth_date: None,
            fhir_id: patient.fhir_id,
            verified_by: "the local registry (verified identity)".into(),
            system: patient.system,
            value: patient.value,
        })
    }

    /// Pairs a device with a patient verified as [`Admin::lookup_patient`] does, from `from` (default
    /// now) until `until` (default open), in one transaction with its audit entry. A pairing that
    /// starts in the past needs a reason; one that meets another pairing of the device is refused
    /// ([`NewPairing::check`]), unless it replaces the open pairing of the patient `replacing` names.
    pub async fn pair_device(&self, actor: &Actor, request: &PairRequest) -> ApiResult<Pairing> {
        self.permit(actor, Action::PairDevice).await?;
        let id = self.identifier(&request.system, &request.value)?;
        let device_id = &self.registered_id(&request.device_id).await?;
        let now = self.clock.now();
        let (from, until) = (request.from.unwrap_or(now), request.until);
        if until.is_some_and(|u| u <= from) {
            return Err(ApiError::new(ErrorCode::InvalidInput, "the pairing must end after it starts"));
        }
        let reason = request.reason.as_deref().map(str::trim).filter(|r| !r.is_empty());
        if from < now - BACKDATING_TOLERANCE && reason.is_none() {
            return Err(ApiError::new(
                ErrorCode::InvalidInput,
                format!(
                    "the pairing would start at {}, in the past: give the reason for back-dating it, which the \
                     audit log keeps with it",
                    from.to_rfc3339_opts(SecondsFormat::Secs, true)
                ),
            ));
        }
        let patient_id = if self.config.ehr.kind == EhrKind::Fhir {
            // With an EHR configured, the patient is verified there before the pairing exists.
            clinical::verify_at_ehr(self.store.as_ref(), self.fhir().await?, &id).await?
        } else {
            self.verified_locally(&id).await?.id
        };
        let new = NewPairing { device_id, patient_id, from, until, reason, replacing: request.replacing };
        let opened = self.store.pair(&new, actor.name()).await?;
        Ok(Pairing { id: opened.id, patient_id, replaced: opened.replaced })
    }

    /// Ends a device's open pairing at `at` (default now); returns the pairing closed.
    pub async fn unpair_device(&self, actor: &Actor, device_id: &str, at: Option<DateTime<Utc>>) -> ApiResult<i64> {
        self.permit(actor, Action::PairDevice).await?;
        let at = at.unwrap_or_else(|| self.clock.now());
        let device_id = self.registered_id(device_id).await?;
        Ok(self.store.unpair(&device_id, at, actor.name()).await?)
    }

    /// The registry's id for a device as an operator typed it. An HL7 device's EUI-64 is registered
    /// in one form (16 upper-case hex digits), so `00-1b-c5-0c-00-00-00-01` names it too; an id
    /// registered as typed (a profile that keeps dashes) stays as it is.
    pub(super) async fn registered_id(&self, typed: &str) -> ApiResult<String> {
        let typed = typed.trim();
        let Some(canonical) = pcd01::eui64(typed).filter(|c| c != typed) else {
            return Ok(typed.to_string());
        };
        let devices = self.store.devices().await?;
        let registered = |id: &str, profile: Option<&str>| {
            devices.iter().any(|d| d.device_id == id && profile.is_none_or(|p| d.profile_id.as_deref() == Some(p)))
        };
        let hl7_device = !registered(typed, None) && registered(&canonical, Some(pcd01::PROFILE_ID));
        Ok(if hl7_device { canonical } else { typed.to_string() })
    }

    /// Records a patient's consent decision for one flow; returns the patient's store key.
    pub async fn set_consent(
        &self,
        actor: &Actor,
        system: &str,
        value: &str,
        flow: Flow,
        granted: bool,
    ) -> ApiResult<i64> {
        self.permit(actor, Action::RecordConsent).await?;
        let patient = self.local_patient(&self.identifier(system, value)?).await?;
        self.store.set_consent(patient.id, flow, granted, actor.name()).await?;
        Ok(patient.id)
    }

    /// Imports a registry file (patients, devices, pairings, consents); returns how many patients and
    /// devices it held.
    pub async fn import_registry(&self, actor: &Actor, file: &Path) -> ApiResult<(usize, usize)> {
        self.permit(actor, Action::ImportRegistry).await?;
        registry_import::import(self.store.as_ref(), file, self.clock.now(), actor.name()).await.map_err(|e| match e {
            registry_import::SeedError::Store(e) => e.into(),
            other => ApiError::new(ErrorCode::InvalidInput, other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::accounts::Role;

    use super::*;
    use crate::clock::TokioClock;
    use crate::config::Config;
    use crate::normalise::ProfileSet;
    use crate::store;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The facade over a SQLite store whose clock reads 2026-12-02T10:00:00Z, with devices OX-1
    /// and OX-2 and verified patients M1 and M2; returns it with the patients' keys.
    async fn site(dir: &tempfile::TempDir) -> (Admin, i64, i64) {
        let clock = TokioClock::starting_at(at("2026-12-02T10:00:00Z"));
        let store =
            store::open(&format!("sqlite://{}", dir.path().join("v.db").display()), clock.clone()).await.unwrap();
        let admin = Admin::over(Config::default(), store, Arc::new(ProfileSet::default()), clock);
        for device in ["OX-1", "OX-2"] {
            admin.store().register_device(device, Some("acme-ox100"), None, "biomed").await.unwrap();
        }
        let clerk = Actor::for_tests("clerk", &[Role::Admin]);
        let m1 = admin.register_patient(&clerk, "urn:mrn", "M1", None, Some("ward clerk")).await.unwrap();
        let m2 = admin.register_patient(&clerk, "urn:mrn", "M2", None, Some("ward clerk")).await.unwrap();
        (admin, m1, m2)
    }

    fn request(device: &str, patient: &str, from: Option<&str>) -> PairRequest {
        PairRequest {
            device_id: device.into(),
            system: "urn:mrn".into(),
            value: patient.into(),
            from: from.map(at),
            ..PairRequest::default()
        }
    }

    async fn audit_count(admin: &Admin) -> usize {
        admin.audit_entries(&Actor::for_tests("auditor", &[Role::Viewer]), 1000).await.unwrap().len()
    }

    #[tokio::test]
    async fn a_back_dated_pairing_needs_a_reason_and_the_audit_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let (admin, _, _) = site(&dir).await;
        let nurse = Actor::for_tests("nurse-ann", &[Role::Clinician, Role::Biomed]);
        // A "now" typed by a person half a minute late is not back-dating.
        admin.pair_device(&nurse, &request("OX-1", "M1", Some("2026-12-02T09:59:30Z"))).await.unwrap();

        let before = audit_count(&admin).await;
        let mut back_dated = request("OX-2", "M2", Some("2026-12-02T09:00:00Z"));
        for reason in [None, Some(" ")] {
            back_dated.reason = reason.map(str::to_string);
            let refused = admin.pair_device(&nurse, &back_dated).await.unwrap_err();
            assert_eq!(refused.code, ErrorCode::InvalidInput, "{refused:?}");
            assert!(
                refused.message.contains("2026-12-02T09:00:00Z") && refused.message.contains("reason"),
                "{refused}"
            );
        }
        assert_eq!(audit_count(&admin).await, before, "a refusal leaves no entry");
        back_dated.reason = Some(" spare monitor sent before it was paired ".into());
        admin.pair_device(&nurse, &back_dated).await.unwrap();
        let entry = &admin.audit_entries(&Actor::for_tests("auditor", &[Role::Viewer]), 1).await.unwrap()[0];
        assert_eq!((entry.actor.as_str(), entry.action.as_str()), ("nurse-ann", "pairing.open"));
        assert!(entry.detail.ends_with("reason: spare monitor sent before it was paired"), "{}", entry.detail);
    }

    #[tokio::test]
    async fn re_pairing_needs_an_unpair_or_a_confirmation_naming_the_patient_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (admin, m1, m2) = site(&dir).await;
        let nurse = Actor::for_tests("nurse-ann", &[Role::Clinician, Role::Biomed]);
        let first = admin.pair_device(&nurse, &request("OX-1", "M1", None)).await.unwrap();

        let before = audit_count(&admin).await;
        let again = admin.pair_device(&nurse, &request("OX-1", "M1", None)).await.unwrap_err();
        assert_eq!(again.code, ErrorCode::Refused);
        assert!(again.message.contains(&format!("already paired with patient {m1} (pairing {}", first.id)), "{again}");
        let mut other = request("OX-1", "M2", None);
        let unconfirmed = admin.pair_device(&nurse, &other).await.unwrap_err();
        assert_eq!(unconfirmed.code, ErrorCode::Refused);
        assert!(unconfirmed.message.contains(&format!("patient {m1} replaced by patient {m2}")), "{unconfirmed}");
        other.replacing = Some(m2);
        let misnamed = admin.pair_device(&nurse, &other).await.unwrap_err();
        assert!(misnamed.message.contains(&format!("not with patient {m2}")), "{misnamed}");
        assert_eq!(audit_count(&admin).await, before, "refusals leave no entry");

        other.replacing = Some(m1);
        let second = admin.pair_device(&nurse, &other).await.unwrap();
        assert_eq!(second.replaced.map(|p| (p.id, p.patient_id)), Some((first.id, m1)));
        let entries = admin.audit_entries(&Actor::for_tests("auditor", &[Role::Viewer]), 2).await.unwrap();
        let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["pairing.open", "pairing.close"], "newest first: both pairings changed, audited");
        assert!(entries[0].detail.contains(&format!("patient {m2}, from")), "{}", entries[0].detail);
        assert!(entries[0].detail.contains(&format!("replacing patient {m1}")), "{}", entries[0].detail);
        assert!(entries[1].detail.contains(&format!("replaced by patient {m2}")), "{}", entries[1].detail);
    }
}
