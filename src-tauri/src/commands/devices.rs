//! Devices, verified pairing and consent.

use pipeline_core::api::dto::{DeviceView, Flow, PairRequest, VerifiedPatient};
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
    Ok(state.get().await?.admin().profiles())
}

/// Registers a device.
#[tauri::command]
pub async fn register_device(
    state: State<'_, ConsoleState>,
    device_id: String,
    profile_id: String,
    label: String,
) -> Answer<()> {
    let console = state.get().await?;
    console.admin().register_device(&console.actor()?, &device_id, &profile_id, &label).await
}

/// Looks a patient up (at the EHR when one is configured), for the operator to confirm.
#[tauri::command]
pub async fn lookup_patient(state: State<'_, ConsoleState>, system: String, value: String) -> Answer<VerifiedPatient> {
    let console = state.get().await?;
    console.admin().lookup_patient(&console.actor()?, &system, &value).await
}

/// Pairs a device with a verified patient, for a period when `until` is given.
#[tauri::command]
pub async fn pair_device(state: State<'_, ConsoleState>, request: PairRequest) -> Answer<()> {
    let console = state.get().await?;
    console.admin().pair_device(&console.actor()?, &request).await.map(drop)
}

/// Ends a device's pairing now.
#[tauri::command]
pub async fn unpair_device(state: State<'_, ConsoleState>, device_id: String) -> Answer<()> {
    let console = state.get().await?;
    console.admin().unpair_device(&console.actor()?, &device_id, None).await.map(drop)
}

/// Records a patient's consent decision for one flow.
#[tauri::command]
pub async fn set_consent(
    state: State<'_, ConsoleState>,
    system: String,
    value: String,
    flow: Flow,
    granted: bool,
) -> Answer<()> {
    let console = state.get().await?;
    console.admin().set_consent(&console.actor()?, &system, &value, flow, granted).await.map(drop)
}
