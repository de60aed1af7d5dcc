//! Heartbeats, the supervisor's board, and degradation modes.
//!
//! Invariant: every running component beats into one [`HealthRegistry`]; a component whose last beat
//! is older than three of its intervals is `stale`, whatever it last said. The board is derived from
//! the beats and the clock, never stored, so it cannot disagree with them.

pub mod clock_sync;
pub mod latency;
pub mod modes;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use ts_rs::TS;

use crate::clock::{Now, SharedClock};

/// Stops the alert circuit or the supervisor as a crash would, for failure drills (`[status] drills`).
#[derive(Debug, Clone, Default)]
pub struct Drills {
    /// Stops the alert circuit.
    pub alerts: tokio_util::sync::CancellationToken,
    /// Stops the supervisor.
    pub supervisor: tokio_util::sync::CancellationToken,
    /// Blocks the rules task as if it were stuck.
    pub rules: tokio_util::sync::CancellationToken,
    /// The store's test-only page ceiling (`[store] test_max_pages`), lifted when space returns.
    pub page_limit: crate::store::PageLimit,
}

/// What a component says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    /// Working.
    Up,
    /// Working with reduced function (retrying, backing off).
    Degraded,
    /// Not working.
    Down,
    /// Silent for longer than three heartbeat intervals.
    Stale,
}

#[derive(Debug, Clone)]
struct Beat {
    state: HealthState,
    reason: String,
    /// When, on the wall clock (shown).
    at: DateTime<Utc>,
    /// When, on the monotonic clock (staleness: a wall-clock jump makes nothing stale).
    mono: tokio::time::Instant,
    interval: Duration,
}

/// One row of the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct ComponentHealth {
    /// Component name, e.g. `mqtt`, `store`, `ehr`.
    pub name: String,
    /// Its state now.
    pub state: HealthState,
    /// Why (no PHI).
    pub reason: String,
    /// When it last beat.
    pub last_beat: DateTime<Utc>,
}

/// Where every component's heartbeat goes. Cheap to clone.
#[derive(Debug, Clone)]
pub struct HealthRegistry {
    beats: Arc<Mutex<BTreeMap<String, Beat>>>,
    clock: SharedClock,
}

impl Default for HealthRegistry {
    fn default() -> Self {
        HealthRegistry::with_clock(crate::clock::system())
    }
}

/// A component's handle for beating.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    name: String,
    interval: Duration,
    registry: HealthRegistry,
}

impl HealthRegistry {
    /// The registry's clock, for the components that beat into it.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// An empty registry whose beats are stamped by `clock`.
    pub fn with_clock(clock: SharedClock) -> HealthRegistry {
        HealthRegistry { beats: Arc::default(), clock }
    }

    /// Registers a component that promises to beat at least every `interval`.
    pub fn register(&self, name: &str, interval: Duration) -> Heartbeat {
        let heartbeat = Heartbeat { name: name.to_string(), interval, registry: self.clone() };
        heartbeat.beat(HealthState::Up, "starting");
        heartbeat
    }

    /// The board now: every component with its state, stale ones marked so.
    pub fn board(&self) -> Vec<ComponentHealth> {
        let now = self.clock.instant();
        let beats = self.beats.lock().unwrap_or_else(|e| e.into_inner());
        beats
            .iter()
            .map(|(name, b)| {
                let silent = now.saturating_duration_since(b.mono);
                let stale = silent > b.interval * 3;
                ComponentHealth {
                    name: name.clone(),
                    state: if stale { HealthState::Stale } else { b.state },
                    reason: if stale { format!("no heartbeat for {} s", silent.as_secs()) } else { b.reason.clone() },
                    last_beat: b.at,
                }
            })
            .collect()
    }
}

impl Heartbeat {
    /// The clock its beats are stamped with.
    pub fn clock(&self) -> &SharedClock {
        self.registry.clock()
    }

    /// Records the component's state now.
    pub fn beat(&self, state: HealthState, reason: &str) {
        let mut beats = self.registry.beats.lock().unwrap_or_else(|e| e.into_inner());
        let Now { wall: at, mono } = self.registry.clock.read();
        let beat = Beat { state, reason: reason.to_string(), at, mono, interval: self.interval };
        if let Some(old) = beats.get(&self.name)
            && old.state != state
        {
            tracing::info!(component = %self.name, ?state, reason, "component state changed");
        }
        beats.insert(self.name.clone(), beat);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn silence_makes_a_component_stale_whatever_it_last_said_and_a_clock_jump_does_not() {
        let (clock, jump) = crate::clock::TokioClock::with_jumps(Utc::now());
        let registry = HealthRegistry::with_clock(clock);
        let beat = registry.register("store", Duration::from_secs(1));
        beat.beat(HealthState::Up, "committed");
        assert_eq!(registry.board()[0].state, HealthState::Up);
        jump.by(chrono::Duration::hours(1));
        assert_eq!(registry.board()[0].state, HealthState::Up, "an hour's jump of the wall clock is no silence");
        tokio::time::advance(Duration::from_secs(4)).await;
        let row = &registry.board()[0];
        assert_eq!(row.state, HealthState::Stale);
        assert!(row.reason.contains("no heartbeat"), "{}", row.reason);
        beat.beat(HealthState::Down, "disk full");
        assert_eq!(registry.board()[0].state, HealthState::Down);
    }
}
