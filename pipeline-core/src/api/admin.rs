//! [`Admin`]: every operator action that needs no running pipeline, for both faces.
//!
//! Invariant: all validation lives here (operator and reason required and trimmed, a reason for a
//! back-dated pairing, silence 1 to 60 minutes, a known profile, patient identifiers normalised one
//! way), and every audited action writes its audit entry in the same store transaction as the change
//! it records.

mod accounts;
mod alarms;
mod credentials;
mod outbox;
mod quarantine;
mod queries;
mod registry;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::OnceCell;

pub use accounts::{BREAK_GLASS_MINUTES, MAX_TOKEN_HOURS};
pub use alarms::{MAX_SILENCE_MINUTES, bulk_ackable};
pub use credentials::{CredentialView, IssuedSecret};
pub use outbox::EventRequest;
pub use registry::Pairing;

use super::actor::Actor;
use super::error::{ApiError, ApiResult, ErrorCode};
use crate::audit::syslog::Syslog;
use crate::clinical;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::identify::Policy;
use crate::normalise::ProfileSet;
use crate::sinks::fhir::FhirSink;
use crate::store::{self, PatientEntry, PatientIdentifier, Store};

/// The operator facade over one site's store, profiles and EHR.
pub struct Admin {
    config: Config,
    store: Arc<dyn Store>,
    profiles: Arc<ProfileSet>,
    policy: Policy,
    clock: SharedClock,
    /// The FHIR client, built on first use and kept (a SMART client keeps its token).
    ehr: OnceCell<FhirSink>,
    /// When each (account, view) was last audited: a view opened is audited, not each refresh.
    viewed: std::sync::Mutex<HashMap<(String, String), std::time::Instant>>,
}

/// A view of PHI kept open (refreshed) is audited again after this long.
const VIEW_AUDIT_EVERY: std::time::Duration = std::time::Duration::from_secs(15 * 60);

impl Admin {
    /// Opens the site's store and profiles, for a face that runs no pipeline (the CLI).
    pub async fn open(config: Config, clock: SharedClock) -> ApiResult<Admin> {
        let syslog = Syslog::of_site(config.audit.syslog.as_deref())
            .map_err(|e| ApiError::new(ErrorCode::InvalidConfig, format!("audit.syslog: {e}")))?;
        let store = store::open_limited(&config.store.url, clock.clone(), store::PageLimit::default(), syslog).await?;
        let profiles = ProfileSet::load_dir(&config.profiles.dir)
            .map_err(|e| ApiError::new(ErrorCode::InvalidConfig, e.to_string()))?;
        Ok(Admin::over(config, store, Arc::new(profiles), clock))
    }

    /// The facade over parts a running pipeline already holds (the console).
    pub(crate) fn over(config: Config, store: Arc<dyn Store>, profiles: Arc<ProfileSet>, clock: SharedClock) -> Admin {
        let policy = Policy::of(&config);
        Admin { config, store, profiles, policy, clock, ehr: OnceCell::new(), viewed: Default::default() }
    }

    /// The site's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The folder the site's database is in: its data directory.
    pub fn data_dir(&self) -> std::path::PathBuf {
        let db = self.config.store.url.trim_start_matches("sqlite://");
        std::path::Path::new(db.split('?').next().unwrap_or(db))
            .parent()
            .map(std::path::PathBuf::from)
            .unwrap_or_default()
    }

    /// The ids of the device profiles loaded.
    pub fn profiles(&self) -> Vec<String> {
        self.profiles.ids()
    }

    pub(crate) fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub(crate) fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The FHIR client, when the EHR is FHIR.
    async fn fhir(&self) -> ApiResult<&FhirSink> {
        self.ehr
            .get_or_try_init(|| async {
                clinical::fhir_sink(&self.config.ehr, self.clock.clone())
                    .map_err(|e| ApiError::new(ErrorCode::InvalidConfig, e.to_string()))
            })
            .await
    }

    /// Audits that `actor` opened a view of PHI (`what`), once per [`VIEW_AUDIT_EVERY`] while it
    /// stays open. A failed audit write is logged; the store's own fault is on the board already.
    pub(crate) async fn audit_view(&self, actor: &Actor, what: &str) {
        let key = (actor.name().to_string(), what.to_string());
        {
            let mut viewed = self.viewed.lock().unwrap_or_else(|e| e.into_inner());
            let now = std::time::Instant::now();
            if viewed.get(&key).is_some_and(|at| now.duration_since(*at) < VIEW_AUDIT_EVERY) {
                return;
            }
            viewed.insert(key, now);
        }
        if let Err(e) = self.store.audit(actor.name(), "phi.view", what, "").await {
            tracing::error!(error = %e, "could not audit a view of PHI");
        }
    }

    /// A patient identifier as operators type it, trimmed, in the site's organisation.
    fn identifier(&self, system: &str, value: &str) -> ApiResult<PatientIdentifier> {
        let (system, value) = (system.trim(), value.trim());
        if system.is_empty() || value.is_empty() {
            return Err(ApiError::new(ErrorCode::InvalidInput, "give the identifier's system and value"));
        }
        Ok(PatientIdentifier {
            organisation: self.config.identity.organisation.clone(),
            system: system.into(),
            value: value.into(),
        })
    }

    /// A patient of the local registry, by identifier.
    async fn local_patient(&self, id: &PatientIdentifier) -> ApiResult<PatientEntry> {
        let not_found = || {
            ApiError::new(
                ErrorCode::PatientNotFound,
                format!("no patient with that identifier in {} is registered", id.system),
            )
        };
        let key = self.store.find_patient(id).await?.ok_or_else(not_found)?;
        self.store.patient(key).await?.ok_or_else(not_found)
    }

    /// A patient of the local registry whose identity was verified (pairing needs one).
    async fn verified_locally(&self, id: &PatientIdentifier) -> ApiResult<PatientEntry> {
        let patient = self.local_patient(id).await?;
        if !patient.verified {
            return Err(ApiError::new(ErrorCode::UnverifiedPatient, "this patient's identity has not been verified"));
        }
        Ok(patient)
    }
}

/// A reason for the audit trail: trimmed, required.
fn reason(text: &str) -> ApiResult<&str> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ApiError::new(ErrorCode::InvalidInput, "give a reason: it is kept in the audit trail"));
    }
    Ok(text)
}
