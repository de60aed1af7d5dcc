//! The supervisor: turns the board into degradation modes, says so in the log, and raises a
//! technical alarm for each mode that lasts (an adapter down, a sink failing, the alert circuit
//! stopped). It beats too (`supervisor` on the board); the alert circuit watches that beat, as the
//! supervisor watches the circuit's.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use crate::alerts::ledger::Ledger;
use crate::alerts::{self, AlertHandle, Notice};
use crate::clock::SharedClock;
use crate::health::modes::{DegradationMode, active};
use crate::health::{HealthRegistry, HealthState};
use crate::model::ContentHash;

/// How often the supervisor looks.
pub const PERIOD: Duration = Duration::from_secs(1);

/// A mode raises its technical alarm once it has lasted this long (one failed retry is not an alarm),
/// by the monotonic clock.
const ALARM_AFTER: Duration = Duration::from_secs(5);

/// What the supervisor needs besides the board.
pub struct Supervisor {
    /// The heartbeats.
    pub health: HealthRegistry,
    /// Where technical alarms are recorded, without waiting on the store (a stalled store is
    /// itself a mode the supervisor must go on reporting).
    pub ledger: Ledger,
    /// The alert circuit, if configured.
    pub alerts: Option<AlertHandle>,
    /// Where "now" comes from.
    pub clock: SharedClock,
}

/// A mode seen active: since when, and its alarm once raised.
struct Ongoing {
    since: tokio::time::Instant,
    alarm: Option<ContentHash>,
}

/// Runs until `shutdown`, or until `drill` stops it as a crash would.
pub async fn run(s: Supervisor, shutdown: CancellationToken, drill: CancellationToken) {
    let heartbeat = s.health.register("supervisor", PERIOD);
    let mut tick = tokio::time::interval(PERIOD);
    let mut ongoing: HashMap<&'static str, Ongoing> = HashMap::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = drill.cancelled() => {
                tracing::error!("drill: the supervisor stops as if it had crashed");
                return;
            }
            _ = tick.tick() => {}
        }
        let now = s.clock.read();
        let board = s.health.board();
        let modes = active(&board);
        for m in &modes {
            let o = ongoing.entry(m.id).or_insert_with(|| {
                tracing::warn!(mode = m.id, "degradation mode active");
                Ongoing { since: now.mono, alarm: None }
            });
            if o.alarm.is_none() && now.mono.saturating_duration_since(o.since) >= ALARM_AFTER {
                let reason = board.iter().find(|c| c.name == m.component).map(|c| c.reason.as_str()).unwrap_or("");
                o.alarm = Some(raise(&s, m, reason, now.wall).await);
            }
        }
        let ended: Vec<&'static str> =
            ongoing.keys().filter(|id| !modes.iter().any(|m| m.id == **id)).copied().collect();
        for id in ended {
            tracing::info!(mode = id, "degradation mode cleared");
            if let Some(key) = ongoing.remove(id).and_then(|o| o.alarm) {
                s.ledger.clear(key);
                if let Some(alerts) = &s.alerts {
                    alerts.cleared(&key).await;
                }
            }
        }
        heartbeat.beat(HealthState::Up, "watching");
    }
}

/// The mode's technical alarm, naming what its component reports (which page a webhook never took,
/// which answer the EHR gave). A stopped alert circuit cannot carry its own alarm: it is recorded for
/// the console, and the mode's banner says nobody is paged.
async fn raise(s: &Supervisor, m: &DegradationMode, reason: &str, now: DateTime<Utc>) -> ContentHash {
    let what = match reason {
        "" => format!("{}: {}", m.title, m.what_is_off),
        reason => format!("{}: {} ({reason})", m.title, m.what_is_off),
    };
    let f = alerts::component_alarm(m.id, m.component, &what, m.alarm_priority, now);
    if let Some(alerts) = s.alerts.as_ref().filter(|_| m.component != "alerts") {
        alerts.raise(Notice::of(&f, now)).await;
    }
    tracing::warn!(mode = m.id, priority = f.priority.as_str(), "technical alarm raised");
    s.ledger.raise(&f);
    f.key
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use std::sync::Arc;

    use super::*;
    use crate::clock::TokioClock;
    use crate::model::alarm::AlarmKind;
    use crate::store::AlarmStore;
    use crate::store::fake::FakeStore;

    #[tokio::test(start_paused = true)]
    async fn a_mode_that_lasts_raises_one_technical_alarm_and_clears_it_when_it_ends() {
        let clock = TokioClock::starting_at(Utc.with_ymd_and_hms(2026, 12, 2, 8, 0, 0).unwrap());
        let health = HealthRegistry::with_clock(clock.clone());
        let store = Arc::new(FakeStore::new(clock.clone()));
        let (ledger, recorder) = Ledger::new(store.clone());
        tokio::spawn(recorder);
        let ehr = health.register("ehr", PERIOD);
        let supervisor = Supervisor { health, ledger, alerts: None, clock };
        let (shutdown, drill) = (CancellationToken::new(), CancellationToken::new());
        let task = tokio::spawn(run(supervisor, shutdown.clone(), drill));
        let beat_for = async |secs: u64, state: HealthState| {
            for _ in 0..secs {
                ehr.beat(state, "the EHR does not answer");
                tokio::time::sleep(PERIOD).await;
            }
        };
        beat_for(4, HealthState::Down).await;
        assert!(store.alarms(true, 10).await.unwrap().is_empty(), "one failed retry is not an alarm");
        beat_for(3, HealthState::Down).await;
        let active = store.alarms(true, 10).await.unwrap();
        assert_eq!(active.len(), 1);
        assert_eq!((active[0].rule_id.as_str(), active[0].kind), ("ehr_sync_paused", AlarmKind::Technical));
        beat_for(5, HealthState::Down).await;
        assert_eq!(store.alarms(false, 10).await.unwrap().len(), 1, "raised once while the mode lasts");
        beat_for(2, HealthState::Up).await;
        assert!(store.alarms(true, 10).await.unwrap().is_empty(), "cleared when the mode ends");
        shutdown.cancel();
        task.await.unwrap();
    }
}
