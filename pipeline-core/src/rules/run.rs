//! The rules task: fed every identified reading (and every reading from an unpaired device) by the
//! ingest writer, and woken every second for conditions of silence and for charting periods. It
//! raises and clears alarms and queues clinical events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use tokio::sync::mpsc;

use super::clock::DeviceClocksBoard;
use super::engine::Paired;
use super::recover::recover;
use super::{Decision, Engine, RuleInput};
use crate::alerts::{AlertHandle, Notice};
use crate::clinical;
use crate::config::EhrTarget;
use crate::health::{HealthRegistry, HealthState, Heartbeat};
use crate::model::alarm::Firing;
use crate::model::event::{ClinicalEvent, Effective, EventContent, Observation};
use crate::store::{Store, StoreError};

/// Readings waiting for the rules at most; beyond it the ingest writer waits (pushback).
pub const QUEUE: usize = 65_536;

/// How often the clock conditions are checked.
const TICK: Duration = Duration::from_secs(1);

/// The registry's pairings are re-read this often (pairing is an operator action, not a hot path).
const PAIRINGS_EVERY: u32 = 5;

/// How long the start waits to rebuild rule state before it evaluates with empty windows.
const RECOVERY_WAIT: Duration = Duration::from_secs(30);

/// Decisions waiting to be recorded at most; beyond it evaluation waits (pushback).
const RECORD_QUEUE: usize = 4096;

/// What the rules task works with besides the engine and its input.
pub struct RulesTask {
    /// Where decisions are recorded.
    pub store: Arc<dyn Store>,
    /// Where clinical events go.
    pub ehr: EhrTarget,
    /// The alert circuit, if configured.
    pub alerts: Option<AlertHandle>,
    /// Where "now" comes from.
    pub clock: SharedClock,
    /// Where each live device's clock offset is published for the board.
    pub device_clocks: DeviceClocksBoard,
    /// Where the task (`rules`) and its recorder (`rules-recorder`) beat: a stuck one goes stale
    /// within three beats.
    pub health: HealthRegistry,
    /// A failure drill that blocks the task as if it were stuck (`[status] drills`).
    pub drill: tokio_util::sync::CancellationToken,
}

/// Runs until the ingest writer drops its sender, then records what is left and returns.
///
/// Evaluation and paging never wait for SQLite: each new alarm is paged here, at once, and the
/// decisions (alarm rows, clears, clinical events) go to a recorder task that writes them in order.
/// Waiting on the store here made one alarm's page wait for the previous alarm's row, which waited
/// for the ingest commit.
pub async fn run(mut engine: Engine, task: RulesTask, mut rx: mpsc::Receiver<RuleInput>) {
    let RulesTask { store, ehr, alerts, clock, device_clocks, health, drill } = task;
    match tokio::time::timeout(RECOVERY_WAIT, recover(&mut engine, store.as_ref(), clock.now())).await {
        Ok(Ok(r)) => tracing::info!(
            readings = r.readings,
            alarms_kept = r.kept,
            alarms_cleared = r.cleared,
            "rule state rebuilt from the store"
        ),
        Ok(Err(e)) => tracing::error!(error = %e, "rule state not rebuilt from the store; windows start empty"),
        Err(_) => tracing::error!("rule state not rebuilt: the store did not answer in time; windows start empty"),
    }
    let heartbeat = health.register("rules", TICK);
    let (record_tx, record_rx) = mpsc::channel(RECORD_QUEUE);
    let recorder =
        tokio::spawn(record(store.clone(), ehr, clock.clone(), record_rx, health.register("rules-recorder", TICK)));
    let mut tick = tokio::time::interval(TICK);
    let mut ticks = 0u32;
    loop {
        if drill.is_cancelled() {
            // Evaluates and beats no more, as if stuck; still lets the pipeline shut down.
            tracing::error!("drill: the rules task stops evaluating as if it were stuck");
            while rx.recv().await.is_some() {}
            break;
        }
        let decisions = tokio::select! {
            input = rx.recv() => match input {
                None => break,
                Some(RuleInput::Reading(r)) => engine.observe(&r, clock.read()),
                Some(RuleInput::Unpaired { device_id }) => engine.unpaired_data(&device_id, clock.read()),
                Some(RuleInput::Unknown { device_id }) => engine.unknown_data(&device_id, clock.read()),
                Some(RuleInput::Implausible { device_id, metric }) => engine.implausible(&device_id, metric, clock.read()),
            },
            _ = tick.tick() => {
                heartbeat.beat(HealthState::Up, "evaluating");
                let paired = if ticks.is_multiple_of(PAIRINGS_EVERY) { pairings(store.as_ref()).await } else { None };
                ticks = ticks.wrapping_add(1);
                *device_clocks.lock().unwrap_or_else(|e| e.into_inner()) = engine.device_clocks();
                engine.tick(clock.read(), paired)
            }
        };
        for decision in decisions {
            match (&decision, &alerts) {
                (Decision::Started(f), Some(alerts)) if f.alarm => alerts.raise(Notice::of(f, clock.now())).await,
                (Decision::Cleared(key), Some(alerts)) => alerts.cleared(key).await,
                _ => {}
            }
            if record_tx.send(decision).await.is_err() {
                tracing::error!("the rule recorder stopped; decisions are no longer recorded");
            }
        }
    }
    drop(record_tx);
    let _ = recorder.await;
}

/// Writes decisions in order: alarm rows (the page already went), clears, clinical events. Beats as
/// `rules-recorder`, so a recorder stuck on the store shows on the board.
async fn record(
    store: Arc<dyn Store>,
    ehr: EhrTarget,
    clock: SharedClock,
    mut rx: mpsc::Receiver<Decision>,
    heartbeat: Heartbeat,
) {
    let mut tick = tokio::time::interval(TICK);
    let mut failing: Option<String> = None;
    loop {
        let decision = tokio::select! {
            decision = rx.recv() => match decision {
                Some(decision) => decision,
                None => return,
            },
            _ = tick.tick() => {
                match &failing {
                    None => heartbeat.beat(HealthState::Up, "recording"),
                    Some(why) => heartbeat.beat(HealthState::Degraded, why),
                }
                continue;
            }
        };
        failing = match act(&decision, store.as_ref(), ehr, &clock).await {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(error = %e, "could not record a rule decision");
                Some(format!("could not record a decision: {e}"))
            }
        };
    }
}

/// The devices paired now, or `None` when the store cannot say (the engine keeps what it knew).
async fn pairings(store: &dyn Store) -> Option<HashMap<String, Paired>> {
    match store.devices().await {
        Ok(devices) => Some(
            devices
                .into_iter()
                .filter_map(|d| Some((d.device_id, Paired { patient_id: d.patient_id?, profile_id: d.profile_id })))
                .collect(),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "could not read pairings for the no-data rules");
            None
        }
    }
}

async fn act(decision: &Decision, store: &dyn Store, ehr: EhrTarget, clock: &SharedClock) -> Result<(), StoreError> {
    match decision {
        Decision::Cleared(key) => store.clear_alarm(key).await,
        Decision::Event(event) => clinical::submit(store, event, ehr, None, clock.now()).await.map(|_| ()),
        Decision::Started(f) => {
            if f.alarm && store.raise_alarm(f).await?.is_some() {
                tracing::warn!(rule = %f.rule_id, kind = f.kind.as_str(), priority = f.priority.as_str(), source = ?f.device_id, "alarm raised");
            }
            if let Some(event) = event(f).filter(|_| f.event) {
                clinical::submit(store, &event, ehr, None, clock.now()).await?;
            }
            Ok(())
        }
    }
}

/// The clinical event of a physiological condition: the observation that completed it.
fn event(f: &Firing) -> Option<ClinicalEvent> {
    Some(ClinicalEvent {
        patient_id: f.patient_id?,
        device_id: f.device_id.clone(),
        origin: format!("rule:{}@{}", f.rule_id, f.rule_version),
        content: EventContent::Single {
            observation: Observation::Vital {
                metric: f.metric?,
                value: f.value?,
                effective: Effective::At { at: f.at },
                validity: f.validity,
                method: None,
            },
        },
    })
}
