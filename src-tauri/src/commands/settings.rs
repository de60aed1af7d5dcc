//! Settings: view, save (restarts the pipeline), test a connection.

use pipeline_core::api::dto::{ConnectionResult, ConnectionTarget, Settings};
use pipeline_core::api::{ApiError, ErrorCode};
use tauri::State;

use super::Answer;
use crate::ConsoleState;

/// The settings in force.
#[tauri::command]
pub async fn settings(state: State<'_, ConsoleState>) -> Answer<Settings> {
    Ok(state.get().await?.settings())
}

/// Saves new settings and restarts the pipeline on them (the previous ones stay when they fail).
#[tauri::command]
pub async fn save_settings(state: State<'_, ConsoleState>, settings: Settings, reason: String) -> Answer<()> {
    let mut slot = state.console.write().await;
    let console =
        slot.take().ok_or_else(|| ApiError::new(ErrorCode::Restarting, "the pipeline is already restarting"))?;
    let (console, applied) = console.apply_settings(&settings, &reason).await?;
    *slot = Some(console);
    applied
}

/// Checks that the EHR or the broker answers.
#[tauri::command]
pub async fn test_connection(state: State<'_, ConsoleState>, target: ConnectionTarget) -> Answer<ConnectionResult> {
    Ok(state.get().await?.test_connection(target).await)
}
