//! Quarantined readings: list, release after the pairing is fixed, discard.

use pipeline_core::api::dto::{QuarantineEntry, ReleaseOutcome};
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
