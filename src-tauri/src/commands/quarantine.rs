//! Quarantined readings: by group and by page, released after the pairing is fixed (one by one,
//! or a group with its pairing), discarded; readings held for consent; rejected payloads.

use pipeline_core::api::dto::{
    GroupReleaseOutcome, HeldView, PairRequest, QuarantineEntry, QuarantineFilter, QuarantineGroup, QuarantinePage,
    RejectedEntry, ReleaseOutcome,
};
use tauri::State;

use super::Answer;
use crate::ConsoleState;

/// Readings still in quarantine.
#[tauri::command]
pub async fn quarantine(state: State<'_, ConsoleState>) -> Answer<Vec<QuarantineEntry>> {
    state.get().await?.quarantine().await
}

/// Re-identifies a quarantined reading against the registry as it is now.
#[tauri::command]
pub async fn release_quarantine(state: State<'_, ConsoleState>, id: i64, reason: String) -> Answer<ReleaseOutcome> {
    let console = state.get().await?;
    console.admin().release_quarantine(&console.actor()?, id, &reason).await
}

/// Discards a quarantined reading (kept for forensics).
#[tauri::command]
pub async fn discard_quarantine(state: State<'_, ConsoleState>, id: i64, reason: String) -> Answer<()> {
    let console = state.get().await?;
    console.admin().discard_quarantine(&console.actor()?, id, &reason).await
}

/// Stores a patient's readings held for want of `store` consent, once it is recorded.
#[tauri::command]
pub async fn release_held(
    state: State<'_, ConsoleState>,
    system: String,
    value: String,
    reason: String,
) -> Answer<u64> {
    let console = state.get().await?;
    console.admin().release_held(&console.actor()?, &system, &value, &reason).await
}

/// Quarantined readings by device and reason, largest group first.
#[tauri::command]
pub async fn quarantine_groups(state: State<'_, ConsoleState>) -> Answer<Vec<QuarantineGroup>> {
    let console = state.get().await?;
    console.admin().quarantine_groups(&console.actor()?).await
}

/// A page of quarantined readings, newest first.
#[tauri::command]
pub async fn quarantine_page(state: State<'_, ConsoleState>, filter: QuarantineFilter) -> Answer<QuarantinePage> {
    let console = state.get().await?;
    console.admin().quarantine_page(&console.actor()?, &filter).await
}

/// Pairs a device with a verified patient from a time, then releases its readings quarantined
/// inside the pairing.
#[tauri::command]
pub async fn pair_and_release(
    state: State<'_, ConsoleState>,
    request: PairRequest,
    reason: String,
) -> Answer<GroupReleaseOutcome> {
    let console = state.get().await?;
    console.admin().pair_and_release(&console.actor()?, &request, &reason).await
}

/// Discards every quarantined reading of a device for one reason.
#[tauri::command]
pub async fn discard_group(
    state: State<'_, ConsoleState>,
    device_id: String,
    reason_code: String,
    why: String,
) -> Answer<u64> {
    let console = state.get().await?;
    console.admin().discard_group(&console.actor()?, &device_id, &reason_code, &why).await
}

/// Readings held for want of consent, with the patient's label and raw payload.
#[tauri::command]
pub async fn held(state: State<'_, ConsoleState>) -> Answer<Vec<HeldView>> {
    state.get().await?.held_readings().await
}

/// Rejected payloads, newest first, with their raw payload.
#[tauri::command]
pub async fn rejected(state: State<'_, ConsoleState>) -> Answer<Vec<RejectedEntry>> {
    let console = state.get().await?;
    console.admin().rejected(&console.actor()?, 500).await
}
