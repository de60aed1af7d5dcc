//! Signing in, locking and unlocking the window. The session lives in the console, not the window,
//! so the window cannot act under a name it merely typed.

use pipeline_core::api::dto::SessionView;
use tauri::State;

use super::Answer;
use crate::ConsoleState;

/// Who is signed in, whether locked, and whether the site needs its first administrator.
#[tauri::command]
pub async fn session(state: State<'_, ConsoleState>) -> Answer<SessionView> {
    state.get().await?.session().await
}

/// Signs an account in.
#[tauri::command]
pub async fn sign_in(state: State<'_, ConsoleState>, name: String, password: String) -> Answer<SessionView> {
    state.get().await?.sign_in(&name, &password).await
}

/// Creates the first administrator of a site that has no account yet, and signs it in.
#[tauri::command]
pub async fn create_first_admin(state: State<'_, ConsoleState>, name: String, password: String) -> Answer<SessionView> {
    state.get().await?.create_first_admin(&name, &password).await
}

/// Locks the window (idle, or asked).
#[tauri::command]
pub async fn lock(state: State<'_, ConsoleState>) -> Answer<SessionView> {
    state.get().await?.lock().await
}

/// Unlocks the window with the signed-in account's password.
#[tauri::command]
pub async fn unlock(state: State<'_, ConsoleState>, password: String) -> Answer<SessionView> {
    state.get().await?.unlock(&password).await
}

/// Signs out.
#[tauri::command]
pub async fn sign_out(state: State<'_, ConsoleState>) -> Answer<SessionView> {
    state.get().await?.sign_out().await
}
