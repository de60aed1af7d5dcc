//! The supervisor: turns the board into degradation modes and says so in the log when one starts or
//! ends. It beats too (`supervisor` on the board); the alert circuit, when it exists, watches it.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::modes::active;
use super::{HealthRegistry, HealthState};

/// How often the supervisor looks.
pub const PERIOD: Duration = Duration::from_secs(1);

/// Runs until `shutdown`.
pub async fn run(health: HealthRegistry, shutdown: CancellationToken) {
    let heartbeat = health.register("supervisor", PERIOD);
    let mut tick = tokio::time::interval(PERIOD);
    let mut previous: BTreeSet<&'static str> = BTreeSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now: BTreeSet<&'static str> = active(&health.board(chrono::Utc::now())).iter().map(|m| m.id).collect();
        for started in now.difference(&previous) {
            tracing::warn!(mode = started, "degradation mode active");
        }
        for ended in previous.difference(&now) {
            tracing::info!(mode = ended, "degradation mode cleared");
        }
        previous = now;
        heartbeat.beat(HealthState::Up, "watching");
    }
}
