//! Live values and trend charts.

use std::time::Duration;

use pipeline_core::api::dto::LiveValue;
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, Runtime, State};
use tokio_util::sync::CancellationToken;

use super::Answer;
use crate::ConsoleState;

/// How often live values are pushed.
const LIVE_EVERY: Duration = Duration::from_secs(1);

/// The newest value of every stream.
#[tauri::command]
pub async fn live_values(state: State<'_, ConsoleState>) -> Answer<Vec<LiveValue>> {
    state.get().await?.live_values().await
}

/// Pushes the newest values over `on_values` every second until unsubscribed (a new subscription
/// replaces the previous one).
#[tauri::command]
pub async fn subscribe_live<R: Runtime>(app: AppHandle<R>, on_values: Channel<Vec<LiveValue>>) -> Answer<()> {
    let stop = CancellationToken::new();
    if let Some(previous) = app.state::<ConsoleState>().live.lock().await.replace(stop.clone()) {
        previous.cancel();
    }
    tauri::async_runtime::spawn(async move {
        while !stop.is_cancelled() {
            let values = match app.state::<ConsoleState>().get().await {
                Ok(console) => console.live_values().await,
                Err(e) => Err(e),
            };
            if let Ok(values) = values
                && on_values.send(values).is_err()
            {
                break;
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(LIVE_EVERY) => {}
            }
        }
    });
    Ok(())
}

/// Stops the live feed.
#[tauri::command]
pub async fn unsubscribe_live(state: State<'_, ConsoleState>) -> Answer<()> {
    if let Some(stop) = state.live.lock().await.take() {
        stop.cancel();
    }
    Ok(())
}

/// A stream's trend over the last `minutes`, as SVG drawn by plotters.
#[tauri::command]
pub async fn chart(state: State<'_, ConsoleState>, device_id: String, mdc_code: u32, minutes: u32) -> Answer<String> {
    state.get().await?.chart(&device_id, mdc_code, minutes).await
}

/// Every parameter of one patient over the last `minutes`, stacked on one time axis, as SVG.
#[tauri::command]
pub async fn bed_chart(state: State<'_, ConsoleState>, patient_id: i64, minutes: u32) -> Answer<String> {
    state.get().await?.bed_chart(patient_id, minutes).await
}
