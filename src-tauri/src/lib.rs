//! Vigil's desktop console: a thin Tauri 2 shell over `pipeline_core::api::Console`.
//!
//! The shell only wires: it starts the console (the demo site unless `VIGIL_CONFIG` names a site),
//! keeps it as the one managed state, exposes one command per console operation, pushes live values
//! over a `Channel` and the board as a `status` event. Every decision lives in pipeline-core.
//!
//! # Layout
//! - `commands/`: the IPC commands, grouped per domain (board, session, live, alarms, quarantine,
//!   devices, outbox, settings).
//! - this file: the managed state, where the site comes from, and `run_app`.

mod commands;

use std::path::{Path, PathBuf};
use std::time::Duration;

use pipeline_core::api::{ApiError, Console, ConsoleOptions, DemoFiles, ErrorCode, demo_listen, system_clock};
use tauri::{Emitter, Manager, RunEvent, Runtime};
use tokio::sync::{Mutex, RwLock, RwLockReadGuard};
use tokio_util::sync::CancellationToken;

/// How often the board is pushed to the window.
const STATUS_EVERY: Duration = Duration::from_secs(2);

/// The one managed state: the running console (absent while Settings restarts it), why it did not
/// start if it did not, and the live feed's stop switch.
pub struct ConsoleState {
    console: RwLock<Option<Console>>,
    failed: Option<ApiError>,
    live: Mutex<Option<CancellationToken>>,
}

impl ConsoleState {
    /// State around a started console.
    pub fn new(console: Console) -> ConsoleState {
        ConsoleState { console: RwLock::new(Some(console)), failed: None, live: Mutex::new(None) }
    }

    /// State of a console that did not start: the window still opens and says why, and how to
    /// recover (a damaged database names its restore steps), instead of vanishing.
    pub fn failed(error: ApiError) -> ConsoleState {
        ConsoleState { console: RwLock::new(None), failed: Some(error), live: Mutex::new(None) }
    }

    /// The running console, the start failure, or `restarting` while Settings restarts it.
    pub async fn get(&self) -> Result<RwLockReadGuard<'_, Console>, ApiError> {
        if let Some(failed) = &self.failed {
            return Err(failed.clone());
        }
        RwLockReadGuard::try_map(self.console.read().await, Option::as_ref).map_err(|_| {
            ApiError::new(ErrorCode::Restarting, "the pipeline is restarting with new settings; try again in a moment")
        })
    }

    /// Stops the pipeline (on exit), storing everything already accepted.
    pub async fn stop(&self) {
        if let Some(console) = self.console.write().await.take() {
            console.stop().await;
        }
    }
}

/// Registers every command on a builder; the app and the `tauri::test` tests share this.
pub fn with_commands<R: Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![
        commands::board::board,
        commands::session::session,
        commands::session::sign_in,
        commands::session::create_first_admin,
        commands::session::lock,
        commands::session::unlock,
        commands::session::sign_out,
        commands::live::live_values,
        commands::live::subscribe_live,
        commands::live::unsubscribe_live,
        commands::live::chart,
        commands::live::bed_chart,
        commands::fleet::fleet,
        commands::fleet::pairing_history,
        commands::alarms::alarms,
        commands::alarms::ack_alarm,
        commands::alarms::silence_alarm,
        commands::alarms::ack_alarms,
        commands::quarantine::quarantine,
        commands::quarantine::release_quarantine,
        commands::quarantine::release_held,
        commands::quarantine::discard_quarantine,
        commands::quarantine::quarantine_groups,
        commands::quarantine::quarantine_page,
        commands::quarantine::pair_and_release,
        commands::quarantine::discard_group,
        commands::quarantine::held,
        commands::quarantine::rejected,
        commands::devices::devices,
        commands::devices::profiles,
        commands::devices::register_device,
        commands::devices::lookup_patient,
        commands::devices::pair_device,
        commands::devices::unpair_device,
        commands::devices::set_consent,
        commands::outbox::outbox,
        commands::outbox::resend,
        commands::settings::settings,
        commands::settings::save_settings,
        commands::settings::test_connection,
    ])
}

/// Starts the console for the site the environment names, then runs the window until it closes.
pub fn run_app<R: Runtime>(builder: tauri::Builder<R>, context: tauri::Context<R>) -> Result<(), tauri::Error> {
    let app = with_commands(builder)
        .setup(|app| {
            let options = site_options(app.path().resource_dir().ok());
            match tauri::async_runtime::block_on(Console::start(options)) {
                Ok(console) => app.manage(ConsoleState::new(console)),
                Err(e) => {
                    tracing::error!(error = %e, "the console did not start; its window says why");
                    app.manage(ConsoleState::failed(e))
                }
            };
            tauri::async_runtime::spawn(status_feed(app.handle().clone()));
            Ok(())
        })
        .build(context)?;
    app.run(|app, event| {
        if let RunEvent::Exit = event {
            tauri::async_runtime::block_on(app.state::<ConsoleState>().stop());
        }
    });
    Ok(())
}

/// The desktop entry point.
pub fn run() {
    pipeline_core::api::restrict_umask();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run_app(tauri::Builder::default(), tauri::generate_context!()) {
        eprintln!("vigil-console: {e}");
        std::process::exit(1);
    }
}

/// Pushes the board to the window as the `status` event.
async fn status_feed<R: Runtime>(app: tauri::AppHandle<R>) {
    loop {
        if let Ok(console) = app.state::<ConsoleState>().get().await {
            let board = console.board().await;
            drop(console);
            if let Err(e) = app.emit("status", &board) {
                tracing::warn!(error = %e, "could not send the board to the window");
            }
        }
        tokio::time::sleep(STATUS_EVERY).await;
    }
}

/// Where the site comes from: `VIGIL_CONFIG` names a site's vigil.toml; otherwise the demo site in
/// `VIGIL_DATA_DIR` (default: the user's data dir), from the fixtures in `VIGIL_FIXTURES`, the
/// source tree, or the installed package's resources.
fn site_options(resources: Option<PathBuf>) -> ConsoleOptions {
    let env = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let listen = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    let demo_listen =
        (listen("VIGIL_DEMO_MQTT_LISTEN", demo_listen::MQTT), listen("VIGIL_DEMO_STATUS_LISTEN", demo_listen::STATUS));
    if let Some(config_path) = env("VIGIL_CONFIG") {
        return ConsoleOptions { config_path, demo: None, demo_listen, clock: system_clock() };
    }
    let data = env("VIGIL_DATA_DIR")
        .or_else(|| env("XDG_DATA_HOME").map(|d| d.join("vigil-console")))
        .or_else(|| env("HOME").map(|h| h.join(".local/share/vigil-console")))
        .unwrap_or_else(|| PathBuf::from("vigil-console-data"));
    let source_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
    let fixtures = env("VIGIL_FIXTURES")
        .or_else(|| source_tree.is_dir().then_some(source_tree))
        .or_else(|| resources.map(|r| r.join("fixtures")))
        .unwrap_or_else(|| PathBuf::from("fixtures"));
    ConsoleOptions {
        config_path: data.join("vigil.toml"),
        demo: Some(DemoFiles::in_fixtures(&fixtures)),
        demo_listen,
        clock: system_clock(),
    }
}

#[cfg(test)]
mod tests;
