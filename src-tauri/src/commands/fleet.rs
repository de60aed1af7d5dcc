//! The fleet: every device registered or heard, and each device's pairing history.

use pipeline_core::api::dto::{FleetDevice, PairingView};
use tauri::State;

use super::Answer;
use crate::ConsoleState;

/// Every registered device and every unknown sender, with how each stands.
#[tauri::command]
pub async fn fleet(state: State<'_, ConsoleState>) -> Answer<Vec<FleetDevice>> {
    state.get().await?.fleet().await
}

/// A device's pairings, past and current, newest first.
#[tauri::command]
pub async fn pairing_history(state: State<'_, ConsoleState>, device_id: String) -> Answer<Vec<PairingView>> {
    state.get().await?.pairing_history(&device_id).await
}
