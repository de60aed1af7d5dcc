//! Devices, verified pairing and consent.

use chrono::{DateTime, Utc};
use pipeline_core::api::dto::{DeviceView, VerifiedPatient};
use pipeline_core::identify::Flow;
use tauri::State;

use super::Answer;
use crate::ConsoleState;

/// Registered devices with their pairing.
#[tauri::command]
pub async fn devices(state: State<'_, ConsoleState>) -> Answer<Vec<DeviceView>> {
    state.get().await?.devices().await
}

/// The loaded device profiles.
#[tauri::command]
pub async fn profiles(state: State<'_, ConsoleState>) -> Answer<Vec<String>> {
    Ok(state.get().await?.profiles())
}

/// Registers a device.
#[tauri::command]
pub async fn register_device(
    state: State<'_, ConsoleState>,
    device_id: String,
    profile_id: String,
    label: String,
    operator: String,
) -> Answer<()> {
    state.get().await?.register_device(&device_id, &profile_id, &label, &operator).await
}

/// Looks a patient up (at the EHR when one is configured), for the operator to confirm.
#[tauri::command]
pub async fn lookup_patient(state: State<'_, ConsoleState>, system: String, value: String) -> Answer<VerifiedPatient> {
    state.get().await?.lookup_patient(&system, &value).await
}

/// Pairs a device with a verified patient, for a period when `until` is given.
#[tauri::command]
pub async fn pair_device(
    state: State<'_, ConsoleState>,
    device_id: String,
    system: String,
    value: String,
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    operator: String,
) -> Answer<()> {
    state.get().await?.pair_device(&device_id, &system, &value, from, until, &operator).await
}

/// Ends a device's pairing now.
#[tauri::command]
pub async fn unpair_device(state: State<'_, ConsoleState>, device_id: String, operator: String) -> Answer<()> {
    state.get().await?.unpair_device(&device_id, &operator).await
}

/// Records a patient's consent decision for one flow.
#[tauri::command]
pub async fn set_consent(
    state: State<'_, ConsoleState>,
    system: String,
    value: String,
    flow: Flow,
    granted: bool,
    operator: String,
) -> Answer<()> {
    state.get().await?.set_consent(&system, &value, flow, granted, &operator).await
}
