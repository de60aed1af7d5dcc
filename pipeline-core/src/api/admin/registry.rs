//! Devices, patients, pairing and consent.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::Admin;
use crate::api::actor::Actor;
use crate::api::dto::VerifiedPatient;
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::clinical;
use crate::config::EhrKind;
use crate::identify::Flow;
use crate::registry_import;
use crate::sinks::fhir::PatientLookup;

/// A pairing made: its store key and the patient's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pairing {
    /// The pairing's store key.
    pub id: i64,
    /// The patient's store key.
    pub patient_id: i64,
}

impl Admin {
    /// Registers (or relabels) a device with a loaded profile.
    pub async fn register_device(
        &self,
        actor: &Actor,
        device_id: &str,
        profile_id: &str,
        label: &str,
    ) -> ApiResult<()> {
        let device_id = device_id.trim();
        if device_id.is_empty() {
            return Err(ApiError::new(ErrorCode::InvalidInput, "a device id is required"));
        }
        let profile_id = profile_id.trim();
        if !self.profiles.iter().any(|p| p.id == profile_id) {
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
        let id = self.identifier(system, value)?;
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        let verified_by = verified_by.map(str::trim).filter(|v| !v.is_empty());
        Ok(self.store.upsert_patient(&id, name, verified_by, actor.name()).await?)
    }

    /// Looks a patient up: at the EHR when one is configured for FHIR, else in the local registry
    /// (verified patients only).
    pub async fn lookup_patient(&self, system: &str, value: &str) -> ApiResult<VerifiedPatient> {
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
    /// now) until `until` (default open), in one transaction with its audit entry.
    pub async fn pair_device(
        &self,
        actor: &Actor,
        device_id: &str,
        system: &str,
        value: &str,
        from: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> ApiResult<Pairing> {
        let id = self.identifier(system, value)?;
        let device_id = device_id.trim();
        let from = from.unwrap_or_else(|| self.clock.now());
        if until.is_some_and(|u| u <= from) {
            return Err(ApiError::new(ErrorCode::InvalidInput, "the pairing must end after it starts"));
        }
        let patient_id = if self.config.ehr.kind == EhrKind::Fhir {
            // With an EHR configured, the patient is verified there before the pairing exists.
            clinical::verify_at_ehr(self.store.as_ref(), self.fhir().await?, &id).await?
        } else {
            self.verified_locally(&id).await?.id
        };
        let pairing = self.store.pair(device_id, patient_id, from, until, actor.name()).await?;
        Ok(Pairing { id: pairing, patient_id })
    }

    /// Ends a device's open pairing at `at` (default now); returns the pairing closed.
    pub async fn unpair_device(&self, actor: &Actor, device_id: &str, at: Option<DateTime<Utc>>) -> ApiResult<i64> {
        let at = at.unwrap_or_else(|| self.clock.now());
        Ok(self.store.unpair(device_id.trim(), at, actor.name()).await?)
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
        let patient = self.local_patient(&self.identifier(system, value)?).await?;
        self.store.set_consent(patient.id, flow, granted, actor.name()).await?;
        Ok(patient.id)
    }

    /// Imports a registry file (patients, devices, pairings, consents); returns how many patients and
    /// devices it held.
    pub async fn import_registry(&self, actor: &Actor, file: &Path) -> ApiResult<(usize, usize)> {
        registry_import::import(self.store.as_ref(), file, self.clock.now(), actor.name()).await.map_err(|e| match e {
            registry_import::SeedError::Store(e) => e.into(),
            other => ApiError::new(ErrorCode::InvalidInput, other.to_string()),
        })
    }
}
