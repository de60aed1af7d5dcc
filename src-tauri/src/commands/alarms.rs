//! Alarms: list, acknowledge, silence.

use pipeline_core::api::dto::AlarmView;
use tauri::State;

use super::Answer;
use crate::ConsoleState;

/// Alarms, newest first.
#[tauri::command]
pub async fn alarms(state: State<'_, ConsoleState>, active_only: bool) -> Answer<Vec<AlarmView>> {
    state.get().await?.alarms(active_only).await
}

/// Acknowledges an alarm.
#[tauri::command]
pub async fn ack_alarm(state: State<'_, ConsoleState>, id: i64, reason: String) -> Answer<()> {
    let console = state.get().await?;
    console.admin().ack_alarm(&console.actor()?, id, &reason).await
}

/// Silences an alarm's re-notification for a while.
#[tauri::command]
pub async fn silence_alarm(state: State<'_, ConsoleState>, id: i64, reason: String, minutes: u32) -> Answer<()> {
    let console = state.get().await?;
    console.admin().silence_alarm(&console.actor()?, id, &reason, minutes).await.map(drop)
}

/// Acknowledges several infrastructure alarms with one reason (patient-level ones are refused).
#[tauri::command]
pub async fn ack_alarms(state: State<'_, ConsoleState>, ids: Vec<i64>, reason: String) -> Answer<u32> {
    let console = state.get().await?;
    console.admin().ack_alarms(&console.actor()?, &ids, &reason).await
}
