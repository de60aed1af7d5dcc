//! The EHR outbox.

use pipeline_core::api::dto::{OutboxStatus, OutboxView};
use tauri::State;

use super::Answer;
use crate::ConsoleState;

/// Outbox rows, newest first, of one status when given.
#[tauri::command]
pub async fn outbox(state: State<'_, ConsoleState>, status: Option<OutboxStatus>) -> Answer<Vec<OutboxView>> {
    state.get().await?.outbox(status).await
}

/// Queues a dead-letter or held event again after its cause was fixed.
#[tauri::command]
pub async fn resend(state: State<'_, ConsoleState>, id: i64) -> Answer<()> {
    let console = state.get().await?;
    console.admin().requeue(&console.actor()?, id).await
}
