//! Registry files: patients, their devices and consents in one TOML file, for the demo, tests and a
//! first site set-up. Importing is idempotent: a device with a pairing on record is left as operators
//! paired it (the file pairs only devices never paired), consents are re-recorded.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::identify::{Flow, NewPairing};
use crate::store::{PatientIdentifier, Store, StoreError};

/// A registry file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    /// The organisation issuing the identifiers.
    pub organisation: String,
    /// Who verified the identities (recorded as the verifier).
    pub verified_by: String,
    /// Patients with their devices.
    #[serde(default)]
    pub patients: Vec<PatientEntry>,
    /// Devices registered without a pairing.
    #[serde(default)]
    pub unpaired_devices: Vec<DeviceSeed>,
}

/// One patient in a registry file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientEntry {
    /// Identifier system.
    pub system: String,
    /// Identifier value.
    pub value: String,
    /// Display name (shown in the console only).
    pub name: Option<String>,
    /// Flows consented to: `store`, `ehr-write`; the others are recorded as refused.
    #[serde(default)]
    pub consent: Vec<Flow>,
    /// Devices to pair with this patient from a day before the import, unless paired before.
    #[serde(default)]
    pub devices: Vec<DeviceSeed>,
}

/// One device in a registry file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSeed {
    /// Device id as payloads carry it.
    pub id: String,
    /// Profile id.
    pub profile: Option<String>,
    /// Label for the console.
    pub label: Option<String>,
    /// Its readings are demo or test data (a training monitor, a simulator).
    #[serde(default)]
    pub demo: bool,
}

/// Registers a device from a file, with its demo flag when it has one.
async fn register(store: &dyn Store, d: &DeviceSeed, actor: &str) -> Result<(), SeedError> {
    store.register_device(&d.id, d.profile.as_deref(), d.label.as_deref(), actor).await?;
    if d.demo {
        store.set_device_demo(&d.id, true, actor).await?;
    }
    Ok(())
}

/// Why a registry file could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// Unreadable or invalid file.
    #[error("{file}: {why}")]
    File {
        /// The file.
        file: String,
        /// Why.
        why: String,
    },
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why an imported pairing starts a day before the import, as its audit entry says.
const IMPORT_BACKDATING: &str = "registry import: back-dated a day so the first readings find the pairing";

/// Imports a registry file at `now`; returns how many patients and devices it holds.
pub async fn import(
    store: &dyn Store,
    path: &Path,
    now: DateTime<Utc>,
    actor: &str,
) -> Result<(usize, usize), SeedError> {
    let file_error = |why: String| SeedError::File { file: path.display().to_string(), why };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    let file: RegistryFile = toml::from_str(&text).map_err(|e| file_error(e.to_string()))?;
    let mut devices = 0;
    let paired = store.load_registry().await?.pairings;
    for p in &file.patients {
        let id = PatientIdentifier {
            organisation: file.organisation.clone(),
            system: p.system.clone(),
            value: p.value.clone(),
        };
        let key = store.upsert_patient(&id, p.name.as_deref(), Some(&file.verified_by), actor).await?;
        for flow in Flow::ALL {
            store.set_consent(key, flow, p.consent.contains(&flow), actor).await?;
        }
        for d in &p.devices {
            register(store, d, actor).await?;
            if paired.get(&d.id).is_none_or(Vec::is_empty) {
                let new = NewPairing {
                    device_id: &d.id,
                    patient_id: key,
                    from: now - chrono::Duration::days(1),
                    until: None,
                    reason: Some(IMPORT_BACKDATING),
                    replacing: None,
                };
                store.pair(&new, actor).await?;
            }
            devices += 1;
        }
    }
    for d in &file.unpaired_devices {
        register(store, d, actor).await?;
        devices += 1;
    }
    Ok((file.patients.len(), devices))
}
