//! The clinical-events plane's front door: admit an event (validate, then queue it in the outbox),
//! build the configured EHR adapter, and provision pairings verified at the EHR.
//!
//! Invariant (fail-closed): an event reaches `pending` only if its patient is known and verified
//! (at the EHR, when the EHR is FHIR), the patient consented to `store` and `ehr-write`, it is not
//! demo or test data bound for a production EHR, and every resource it becomes passes the structural
//! and vital-signs checks.
//! Anything else is queued as `held` with the reasons, never dropped.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::SharedClock;
use crate::config::{EhrAuth, EhrConfig, EhrKind, EhrTarget};
use crate::fhir::PatientRef;
use crate::fhir::bundle::{EventEnvelope, event_resources};
use crate::fhir::validate::check_resource;
use crate::identify::Flow;
use crate::model::DeviceIdentity;
use crate::model::event::ClinicalEvent;
use crate::sinks::Sink;
use crate::sinks::fhir::{Auth, FhirSink, PatientLookup};
use crate::sinks::hl7v2::{Hl7v2Settings, Hl7v2Sink, MllpTls};
use crate::sinks::sandbox::SandboxSink;
use crate::sinks::smart::SmartClient;
use crate::store::{OutboxStatus, PatientIdentifier, RegistryStore, Store, StoreError};

/// What became of a submitted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Queued for delivery under this outbox id.
    Queued(i64),
    /// Held under this outbox id, with the reasons.
    Held(i64, Vec<String>),
    /// The same event is already in the outbox.
    Duplicate,
}

/// Validates an event for the configured EHR and queues it (pending or held); an operator's
/// submission is audited.
pub async fn submit(
    store: &dyn Store,
    event: &ClinicalEvent,
    ehr: EhrTarget,
    submitted_by: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Admission, StoreError> {
    let problems = problems(store, event, ehr, now).await?;
    let (status, reason) = if problems.is_empty() {
        (OutboxStatus::Pending, None)
    } else {
        (OutboxStatus::Held, Some(problems.join("; ")))
    };
    Ok(match store.enqueue_event(event, status, reason.as_deref(), submitted_by).await? {
        None => Admission::Duplicate,
        Some(id) if problems.is_empty() => Admission::Queued(id),
        Some(id) => Admission::Held(id, problems),
    })
}

async fn problems(
    store: &dyn Store,
    event: &ClinicalEvent,
    ehr: EhrTarget,
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let p = event.patient_id;
    let Some(patient) = store.patient(p).await? else {
        return Ok(vec![format!("patient {p} is not in the registry")]);
    };
    let mut out = Vec::new();
    if !patient.verified {
        out.push(format!("patient {p} is not verified"));
    }
    if ehr.kind == EhrKind::Fhir && patient.fhir_id.is_none() {
        out.push(format!("patient {p} was not verified at the EHR: pair the device again with the EHR configured"));
    }
    // An event is built from telemetry: without consent to keep that, it is held too.
    for flow in Flow::ALL {
        if !store.consents_to(p, flow).await? {
            out.push(format!("no recorded consent of patient {p} for {flow}"));
        }
    }
    if event.has_demo_data() && !ehr.takes_test_data() {
        out.push(
            "demo or test data never goes to a production EHR (set [ehr] environment = \"test\" for a test EHR)".into(),
        );
    }
    let patient_ref = PatientRef { fhir_id: patient.fhir_id, system: patient.system, value: patient.value };
    // The device as far as the store knows it here; the outbox names it fully from its profile.
    let identity = DeviceIdentity { id: event.device_id.clone(), ..Default::default() };
    let envelope = EventEnvelope {
        event,
        hash: event.content_hash().to_hex(),
        patient: &patient_ref,
        issued: now,
        environment: ehr.environment,
        device: &identity,
    };
    let device = crate::fhir::device(&identity);
    out.extend(check_resource(&device).into_iter().map(|problem| format!("Device: {problem}")));
    for (_, resource) in event_resources(&envelope, &serde_json::json!({"reference": "Device/checked"})) {
        let kind = resource["resourceType"].as_str().unwrap_or("resource").to_string();
        out.extend(check_resource(&resource).into_iter().map(|problem| format!("{kind}: {problem}")));
    }
    Ok(out)
}

/// Puts a dead-lettered or held event back in the queue. A held event is validated again first and
/// stays held, with the reasons, while anything is still wrong (fail-closed).
pub async fn requeue(
    store: &dyn Store,
    id: i64,
    ehr: EhrTarget,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), RequeueError> {
    let entry = store.outbox_entry(id).await?.ok_or(RequeueError::NotFound(id))?;
    if entry.status == OutboxStatus::Held {
        let event: ClinicalEvent =
            serde_json::from_value(entry.event).map_err(|e| RequeueError::Undecodable(id, e.to_string()))?;
        let problems = problems(store, &event, ehr, now).await?;
        if !problems.is_empty() {
            return Err(RequeueError::StillHeld { id, reasons: problems });
        }
    }
    store.outbox_requeue(id, actor).await?;
    Ok(())
}

/// Why an event could not be queued again.
#[derive(Debug, thiserror::Error)]
pub enum RequeueError {
    /// No such outbox entry.
    #[error("outbox {0} does not exist")]
    NotFound(i64),
    /// The stored event cannot be read back.
    #[error("outbox {0} cannot be decoded: {1}")]
    Undecodable(i64, String),
    /// Validation still fails.
    #[error("outbox {id} is still held: {}", reasons.join("; "))]
    StillHeld {
        /// The outbox id.
        id: i64,
        /// What is still wrong.
        reasons: Vec<String>,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why the EHR adapter could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EhrSetupError {
    /// A key or setting is unusable.
    #[error("ehr: {0}")]
    Invalid(String),
}

/// The FHIR adapter the config describes (for delivery and for pairing verification).
pub fn fhir_sink(config: &EhrConfig, clock: SharedClock) -> Result<FhirSink, EhrSetupError> {
    let invalid = |s: String| EhrSetupError::Invalid(s);
    let base = config.base_url.as_deref().ok_or_else(|| invalid("base_url is missing".into()))?;
    let auth = match config.auth {
        EhrAuth::None => Auth::None,
        EhrAuth::Bearer => Auth::Bearer(
            config
                .bearer_token
                .resolve()
                .map_err(|e| invalid(format!("ehr.bearer_token ({}): {e}", config.bearer_token)))?,
        ),
        EhrAuth::Smart => Auth::Smart(
            SmartClient::new(
                config.token_url.as_deref().unwrap_or_default(),
                config.client_id.as_deref().unwrap_or_default(),
                &config.scope,
                &config.algorithm,
                config.private_key_file.as_deref().unwrap_or(std::path::Path::new("")),
                clock.clone(),
            )
            .map_err(|e| invalid(e.to_string()))?,
        ),
    };
    FhirSink::new(base, auth, Duration::from_secs(config.timeout_secs), config.environment, clock)
        .map_err(|e| invalid(e.to_string()))
}

/// The sink the config describes.
pub fn sink(config: &EhrConfig, store: Arc<dyn Store>, clock: SharedClock) -> Result<Arc<dyn Sink>, EhrSetupError> {
    Ok(match config.kind {
        EhrKind::Sandbox => Arc::new(SandboxSink::new(store, config.environment, clock)),
        EhrKind::Fhir => Arc::new(fhir_sink(config, clock)?),
        EhrKind::Hl7v2 => {
            let address =
                config.mllp_address.clone().ok_or_else(|| EhrSetupError::Invalid("mllp_address is missing".into()))?;
            Arc::new(Hl7v2Sink::new(
                Hl7v2Settings {
                    address: address.clone(),
                    tls: match config.mllp_tls {
                        true => {
                            let client =
                                config.mllp_client_cert_file.as_deref().zip(config.mllp_client_key_file.as_deref());
                            Some(
                                MllpTls::new(&address, config.mllp_ca_file.as_deref(), client)
                                    .map_err(EhrSetupError::Invalid)?,
                            )
                        }
                        false => None,
                    },
                    sending_application: config.sending_application.clone(),
                    sending_facility: config.sending_facility.clone(),
                    receiving_application: config.receiving_application.clone(),
                    receiving_facility: config.receiving_facility.clone(),
                    timeout: Duration::from_secs(config.timeout_secs),
                    environment: config.environment,
                },
                clock,
            ))
        }
    })
}

/// Why a pairing was refused at provisioning.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The EHR does not know the patient, or knows several.
    #[error("{0}")]
    Refused(String),
    /// The EHR could not be asked.
    #[error("the EHR could not be asked: {0}")]
    Unreachable(String),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Looks the patient up at the EHR and records the verified id; returns the patient's store key.
/// Refused when the EHR knows no such patient, or several. Messages name the identifier system,
/// never the value.
pub async fn verify_at_ehr(
    store: &dyn RegistryStore,
    ehr: &FhirSink,
    id: &PatientIdentifier,
) -> Result<i64, ProvisionError> {
    match ehr.find_patient(&id.system, &id.value).await.map_err(ProvisionError::Unreachable)? {
        PatientLookup::One(found) => Ok(store.verify_patient(id, "ehr", Some(&found.id)).await?),
        PatientLookup::Unknown => Err(ProvisionError::Refused(format!(
            "pairing refused: the EHR knows no patient with that identifier in system {}",
            id.system
        ))),
        PatientLookup::Ambiguous(n) => Err(ProvisionError::Refused(format!(
            "pairing refused: the EHR knows {n} patients with that identifier in system {}; it must identify one",
            id.system
        ))),
    }
}
