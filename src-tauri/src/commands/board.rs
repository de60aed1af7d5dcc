//! The heartbeat board.

use pipeline_core::api::dto::Status;
use tauri::State;

use super::Answer;
use crate::ConsoleState;

/// Components, degradation modes, queues, totals and rates.
#[tauri::command]
pub async fn board(state: State<'_, ConsoleState>) -> Answer<Status> {
    Ok(state.get().await?.board().await)
}
