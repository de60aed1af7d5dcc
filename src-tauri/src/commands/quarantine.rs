//! Quarantined readings: list, release after the pairing is fixed, discard.

use pipeline_core::api::Actor;
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
pub async fn release_quarantine(
    state: State<'_, ConsoleState>,
    id: i64,
    operator: String,
    reason: String,
) -> Answer<ReleaseOutcome> {
    state.get().await?.admin().release_quarantine(&Actor::named(&operator)?, id, &reason).await
}

/// Discards a quarantined reading (kept for forensics).
#[tauri::command]
pub async fn discard_quarantine(
    state: State<'_, ConsoleState>,
    id: i64,
    operator: String,
    reason: String,
) -> Answer<()> {
    state.get().await?.admin().discard_quarantine(&Actor::named(&operator)?, id, &reason).await
}

/// Stores a patient's readings held for want of `store` consent, once it is recorded.
#[tauri::command]
pub async fn release_held(
    state: State<'_, ConsoleState>,
    system: String,
    value: String,
    operator: String,
    reason: String,
) -> Answer<u64> {
    state.get().await?.admin().release_held(&Actor::named(&operator)?, &system, &value, &reason).await
}
