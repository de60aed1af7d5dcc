//! Whether the workstation's clock is synchronised (NTP), on the board: records are stamped with it,
//! and devices' clock offsets are measured against it. Asked of `timedatectl` (systemd), then of
//! `chronyc`; a host where neither can say shows that it cannot tell, which is a warning too.

use std::time::Duration;

use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::{HealthState, Heartbeat};
use crate::config::ClockSync;

/// How often the clock's state is asked.
pub const HEARTBEAT: Duration = Duration::from_secs(30);

/// How long one question may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Beats the workstation clock's state until `shutdown`. `forced` (a test-only setting) replaces the
/// host's answer, so tests never depend on the machine they run on.
pub async fn run(heartbeat: Heartbeat, forced: Option<ClockSync>, shutdown: CancellationToken) {
    let mut every = tokio::time::interval(HEARTBEAT);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = every.tick() => {
                let state = match forced {
                    Some(state) => state,
                    None => ask().await,
                };
                let (health, reason) = match state {
                    ClockSync::Synchronised => (HealthState::Up, "NTP-synchronised"),
                    ClockSync::Unsynchronised => (HealthState::Degraded, "not NTP-synchronised"),
                    ClockSync::Unknown => (HealthState::Degraded, "cannot tell whether it is NTP-synchronised"),
                };
                heartbeat.beat(health, reason);
            }
        }
    }
}

/// The host's answer: systemd's `NTPSynchronized`, else chrony's leap status.
async fn ask() -> ClockSync {
    if let Some(out) = output("timedatectl", &["show", "--property=NTPSynchronized", "--value"]).await {
        match out.trim() {
            "yes" => return ClockSync::Synchronised,
            "no" => return ClockSync::Unsynchronised,
            _ => {}
        }
    }
    if let Some(out) = output("chronyc", &["-n", "tracking"]).await
        && let Some(leap) =
            out.lines().find_map(|l| l.strip_prefix("Leap status").map(|r| r.trim_start_matches([' ', ':'])))
    {
        return if leap.trim() == "Normal" { ClockSync::Synchronised } else { ClockSync::Unsynchronised };
    }
    ClockSync::Unknown
}

/// A command's stdout when it ran and succeeded in time.
async fn output(program: &str, args: &[&str]) -> Option<String> {
    let run = Command::new(program).args(args).kill_on_drop(true).output();
    let out = tokio::time::timeout(ASK_TIMEOUT, run).await.ok()?.ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}
