//! The alert circuit: the path that pages people, kept apart from everything else.
//!
//! Invariant: the circuit runs on its own OS thread with its own tokio runtime and its own bounded
//! queue, and its sinks (HTTP webhook to nurse call or paging, an MQTT alert topic on its own broker
//! connection) share nothing with the EHR outbox, so an EHR outage cannot delay an alarm. An alarm
//! not acknowledged in time is notified once more, marked escalated, with its priority raised; an
//! operator's silence defers that until the silence ends. The circuit watches the supervisor's
//! heartbeat, as the supervisor watches the circuit's: if either stops, the other raises a technical
//! alarm.

mod sinks;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::{Now, SharedClock};
use crate::config::AlertsConfig;
use crate::health::{HealthRegistry, HealthState, Heartbeat};
use crate::model::ContentHash;
use crate::model::alarm::{AlarmKind, Firing, Priority, condition_key};
use crate::store::{AlarmStore, StoreError};

/// What the sinks receive about an alarm. No patient identifier: the patient's store key only.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    /// The condition's key (hex): the alarm's identity in the store and at every sink.
    pub alarm_key: String,
    /// `physiological` or `technical`.
    pub kind: AlarmKind,
    /// The rule that raised it.
    pub rule_id: String,
    /// What it means, in words.
    pub description: String,
    /// Priority (raised one level when escalated).
    pub priority: Priority,
    /// The device, or the component for an adapter's alarm.
    pub device_id: String,
    /// The patient's store key (look it up in the console), when it is about a patient.
    pub patient_id: Option<i64>,
    /// MDC code of the metric, for a physiological alarm.
    pub mdc_code: Option<u32>,
    /// The value that completed the condition.
    pub value: Option<f64>,
    /// When the condition began.
    pub since: DateTime<Utc>,
    /// Whether this is the escalation of an unacknowledged alarm.
    pub escalated: bool,
    /// Who is paged: the ward, biomed/IT, or both.
    pub audience: Audience,
    /// Escalate if not acknowledged by then.
    #[serde(skip)]
    pub escalate_at: Option<DateTime<Utc>>,
}

impl Notice {
    /// The notice of a condition that started, paged `now`.
    pub fn of(f: &Firing, now: DateTime<Utc>) -> Notice {
        Notice {
            alarm_key: f.key.to_hex(),
            kind: f.kind,
            rule_id: f.rule_id.clone(),
            description: f.description.clone(),
            priority: f.priority,
            device_id: f.device_id.clone(),
            patient_id: f.patient_id,
            mdc_code: f.metric.map(|m| m.mdc_code),
            value: f.value,
            since: f.since,
            escalated: false,
            audience: Audience::of(f),
            escalate_at: f.escalate_after.map(|d| now + d),
        }
    }
}

/// Who an alarm pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// The ward (nurse call): a patient's alarm, or a technical one that leaves one patient
    /// unmonitored (no valid signal, device offline, device clock off).
    Clinical,
    /// Biomed / IT: the infrastructure (EHR, sinks, an unknown device), nobody's bedside.
    Technical,
    /// Both: a fault that stops or threatens monitoring for many patients (device data not
    /// arriving, storage failing, the rules or the alert circuit stopped): the technical alarms
    /// without a patient at medium or high priority.
    Both,
}

impl Audience {
    /// The audience of a condition.
    pub fn of(f: &Firing) -> Audience {
        match (f.kind, f.patient_id, f.priority) {
            (AlarmKind::Physiological, _, _) | (AlarmKind::Technical, Some(_), _) => Audience::Clinical,
            (AlarmKind::Technical, None, Priority::Low) => Audience::Technical,
            (AlarmKind::Technical, None, _) => Audience::Both,
        }
    }
}

/// Where the rules and the supervisor hand alarms in.
#[derive(Clone)]
pub struct AlertHandle {
    tx: mpsc::Sender<Notice>,
}

impl AlertHandle {
    /// Queues a notice for every sink (waits while the circuit's queue is full).
    pub async fn raise(&self, notice: Notice) {
        if self.tx.send(notice).await.is_err() {
            tracing::error!("the alert circuit has stopped; alarm recorded but not sent");
        }
    }
}

/// Raises a condition's alarm: the page first (neither the row's commit nor anything else may delay
/// it), then the latched row, keyed by the same hash so a repeat is one alarm.
pub async fn raise(
    f: &Firing,
    store: &dyn AlarmStore,
    alerts: Option<&AlertHandle>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if let Some(alerts) = alerts {
        alerts.raise(Notice::of(f, now)).await;
    }
    if store.raise_alarm(f).await?.is_some() {
        tracing::warn!(rule = %f.rule_id, kind = f.kind.as_str(), priority = f.priority.as_str(), source = %f.device_id, "alarm raised");
    }
    Ok(())
}

/// A technical alarm about a component (an adapter down, the supervisor or the circuit stopped).
pub fn component_alarm(
    rule_id: &str,
    component: &str,
    description: &str,
    priority: Priority,
    now: DateTime<Utc>,
) -> Firing {
    let parts: [&[u8]; 2] = [rule_id.as_bytes(), component.as_bytes()];
    Firing {
        key: condition_key(&parts, now),
        kind: AlarmKind::Technical,
        rule_id: rule_id.into(),
        rule_version: "builtin".into(),
        description: description.into(),
        priority,
        alarm: true,
        event: false,
        escalate_after: None,
        patient_id: None,
        device_id: component.into(),
        metric: None,
        value: None,
        validity: crate::model::Validity::Valid,
        since: now,
        at: now,
    }
}

/// How often the circuit beats and looks for escalations.
pub const TICK: Duration = Duration::from_millis(500);

/// With no alert sink configured, says so on the board (`alert-sinks` down) until `shutdown`:
/// alarms are recorded and shown, but page nobody, and that must not pass in silence.
pub async fn nobody_paged(heartbeat: Heartbeat, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => heartbeat.beat(
                HealthState::Down,
                "no alert sink is configured ([alerts] webhook_url or mqtt_url): alarms page nobody",
            ),
        }
    }
}

/// A sink's last result, re-beaten on every tick.
type SinkState = Arc<Mutex<(HealthState, String)>>;

/// Starts the circuit on its own thread. Returns `None` when no sink is configured. `drill` stops
/// the circuit as a crash would (for the drill that proves the supervisor notices).
pub fn start(
    config: &AlertsConfig,
    store: Arc<dyn AlarmStore>,
    health: &HealthRegistry,
    clock: SharedClock,
    shutdown: CancellationToken,
    drill: CancellationToken,
) -> std::io::Result<Option<AlertHandle>> {
    if config.webhook_url.is_none() && config.mqtt_url.is_none() && config.technical_webhook_url.is_none() {
        return Ok(None);
    }
    let (tx, rx) = mpsc::channel(1024);
    let config = config.clone();
    let health = health.clone();
    std::thread::Builder::new().name("vigil-alerts".into()).spawn(move || {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(run(config, store, health, clock, rx, shutdown, drill)),
            Err(e) => tracing::error!(error = %e, "the alert circuit could not start its runtime"),
        }
    })?;
    Ok(Some(AlertHandle { tx }))
}

async fn run(
    config: AlertsConfig,
    store: Arc<dyn AlarmStore>,
    health: HealthRegistry,
    clock: SharedClock,
    mut rx: mpsc::Receiver<Notice>,
    shutdown: CancellationToken,
    drill: CancellationToken,
) {
    let circuit = health.register("alerts", TICK);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(config.timeout_secs)).build().unwrap_or_default();
    let mut beats: Vec<(Heartbeat, SinkState)> = Vec::new();
    let webhook = config.webhook_url.clone().map(|url| {
        let state: SinkState = Arc::new(Mutex::new((HealthState::Up, "ready".into())));
        beats.push((health.register("alert-webhook", TICK), state.clone()));
        (url, state)
    });
    let technical = config.technical_webhook_url.clone().map(|url| {
        let state: SinkState = Arc::new(Mutex::new((HealthState::Up, "ready".into())));
        beats.push((health.register("alert-technical-webhook", TICK), state.clone()));
        (url, state)
    });
    let mqtt = match &config.mqtt_url {
        None => None,
        Some(url) => {
            let state: SinkState = Arc::new(Mutex::new((HealthState::Degraded, "connecting".into())));
            beats.push((health.register("alert-mqtt", TICK), state.clone()));
            sinks::connect_mqtt(url, state.clone()).map(|client| (client, state))
        }
    };
    let sinks = sinks::Sinks { webhook, technical, mqtt, http, config };
    let mut escalations = Escalations::default();
    let mut supervisor_alarm: Option<ContentHash> = None;
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = drill.cancelled() => {
                tracing::error!("drill: the alert circuit stops as if it had crashed");
                break;
            }
            notice = rx.recv() => {
                let Some(notice) = notice else { break };
                escalations.watch(&notice, clock.read());
                sinks.send(&notice);
            }
            _ = tick.tick() => {
                circuit.beat(HealthState::Up, "watching");
                for (heartbeat, state) in &beats {
                    let (s, reason) = state.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    heartbeat.beat(s, &reason);
                }
                let now = clock.read();
                for notice in escalations.due(store.as_ref(), now).await {
                    sinks.send(&notice);
                }
                watch_supervisor(&health, &mut supervisor_alarm, &sinks, store.as_ref(), now.wall).await;
            }
        }
    }
}

/// The circuit's half of the mutual watch: a silent supervisor means modes and adapter alarms are
/// no longer raised, so the circuit pages that itself.
async fn watch_supervisor(
    health: &HealthRegistry,
    alarm: &mut Option<ContentHash>,
    sinks: &sinks::Sinks,
    store: &dyn AlarmStore,
    now: DateTime<Utc>,
) {
    let board = health.board();
    let stopped = board.iter().any(|c| c.name == "supervisor" && c.state == HealthState::Stale);
    let result = match (stopped, *alarm) {
        (true, None) => {
            let f = component_alarm(
                "supervisor-stopped",
                "supervisor",
                "The health supervisor has stopped: degradation modes and adapter alarms are no longer raised",
                Priority::High,
                now,
            );
            *alarm = Some(f.key);
            sinks.send(&Notice::of(&f, now));
            store.raise_alarm(&f).await.map(|_| ())
        }
        (false, Some(key)) => {
            *alarm = None;
            store.clear_alarm(&key).await
        }
        _ => Ok(()),
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "could not record the supervisor's alarm");
    }
}

/// Escalations waiting for their time, on monotonic time: a wall-clock jump neither escalates an
/// alarm early nor lifts a silence. A silence's end is stored as wall-clock time (it survives a
/// restart) and turned into a monotonic deadline once, when the circuit first sees it.
#[derive(Default)]
struct Escalations {
    pending: HashMap<String, (Notice, Instant)>,
    silences: HashMap<(String, DateTime<Utc>), Instant>,
}

impl Escalations {
    /// Watches a paged notice that escalates if not acknowledged in time.
    fn watch(&mut self, notice: &Notice, now: Now) {
        if let Some(at) = notice.escalate_at {
            self.pending.insert(notice.alarm_key.clone(), (notice.clone(), deadline(at, now)));
        }
    }

    /// Removes and returns the escalations that are due and still unacknowledged (each escalates
    /// once). A silenced alarm's escalation waits until its silence ends. While any escalation is
    /// pending it looks at the alarms on every tick, so a new silence is turned into a monotonic
    /// deadline within a tick of being recorded, before a clock jump can matter.
    async fn due(&mut self, store: &dyn AlarmStore, now: Now) -> Vec<Notice> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let Ok(active) = store.alarms(true, 10_000).await else { return Vec::new() };
        let unacked: HashMap<&str, Option<DateTime<Utc>>> =
            active.iter().filter(|a| a.acked_at.is_none()).map(|a| (a.key.as_str(), a.silenced_until)).collect();
        for (key, until) in &unacked {
            if let Some(until) = until {
                self.silences.entry((key.to_string(), *until)).or_insert_with(|| deadline(*until, now));
            }
        }
        self.silences.retain(|(key, _), _| unacked.contains_key(key.as_str()));
        let due: Vec<String> =
            self.pending.iter().filter(|(_, (_, due))| *due <= now.mono).map(|(k, _)| k.clone()).collect();
        let mut out = Vec::new();
        for key in due {
            let Some((mut n, _)) = self.pending.remove(&key) else { continue };
            let silence = match unacked.get(key.as_str()) {
                None => continue,
                Some(until) => until.and_then(|until| self.silences.get(&(key.clone(), until)).copied()),
            };
            match silence {
                Some(ends) if ends > now.mono => {
                    n.escalate_at = unacked[key.as_str()];
                    self.pending.insert(key, (n, ends));
                }
                _ => {
                    n.escalated = true;
                    n.escalate_at = None;
                    n.priority = n.priority.raised();
                    tracing::warn!(rule = %n.rule_id, device = %n.device_id, "alarm not acknowledged in time; escalating");
                    out.push(n);
                }
            }
        }
        out
    }
}

/// The monotonic deadline of a wall-clock time, read against `now` once.
fn deadline(at: DateTime<Utc>, now: Now) -> Instant {
    match (at - now.wall).to_std() {
        Ok(ahead) => now.mono + ahead,
        Err(_) => now.mono,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::clock::TokioClock;
    use crate::store::fake::FakeStore;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 8, 0, 0).unwrap()
    }

    async fn raised(store: &FakeStore, rule: &str) -> (i64, Notice) {
        let mut f = component_alarm(rule, "OX-1", "SpO2 low", Priority::Medium, t0());
        f.escalate_after = Some(chrono::Duration::seconds(60));
        let id = store.raise_alarm(&f).await.unwrap().unwrap();
        (id, Notice::of(&f, t0()))
    }

    #[test]
    fn an_alarm_pages_the_ward_biomed_or_both() {
        let mut f = component_alarm("ehr_sync_paused", "ehr", "EHR sync paused", Priority::Low, t0());
        assert_eq!(Audience::of(&f), Audience::Technical, "infrastructure: biomed/IT");
        f.priority = Priority::High;
        assert_eq!(Audience::of(&f), Audience::Both, "a fault that stops monitoring for many patients");
        f.patient_id = Some(7);
        assert_eq!(Audience::of(&f), Audience::Clinical, "one patient unmonitored: the ward");
        f.kind = AlarmKind::Physiological;
        f.patient_id = None;
        assert_eq!(Audience::of(&f), Audience::Clinical);
    }

    #[tokio::test(start_paused = true)]
    async fn unacknowledged_alarms_escalate_once_silenced_ones_wait_acknowledged_ones_never() {
        for jump in [chrono::Duration::zero(), chrono::Duration::hours(1), chrono::Duration::hours(-1)] {
            let store = FakeStore::new(TokioClock::starting_at(t0()));
            let mut escalations = Escalations::default();
            let start: Now = t0().into();
            let (_, plain) = raised(&store, "plain").await;
            let (silenced, quiet) = raised(&store, "silenced").await;
            let (acked, seen) = raised(&store, "acked").await;
            for n in [&plain, &quiet, &seen] {
                escalations.watch(n, start);
            }
            let silence_ends = t0() + chrono::Duration::minutes(5);
            store.silence_alarm(silenced, silence_ends, "ana", "at the bedside").await.unwrap();
            store.ack_alarm(acked, "ana", "probe reseated").await.unwrap();
            // `secs` of monotonic time after the start; from 30 s on, the wall clock has jumped.
            let at = |secs: u64| Now {
                wall: t0()
                    + chrono::Duration::seconds(secs as i64)
                    + if secs >= 30 { jump } else { chrono::Duration::zero() },
                mono: start.mono + Duration::from_secs(secs),
            };
            // The circuit sees the silence on its next tick, before the jump.
            assert!(escalations.due(&store, at(0)).await.is_empty());

            assert!(escalations.due(&store, at(30)).await.is_empty(), "jump {jump}: not due yet");
            let escalated = escalations.due(&store, at(61)).await;
            assert_eq!(escalated.len(), 1, "jump {jump}");
            assert_eq!((escalated[0].alarm_key.as_str(), escalated[0].escalated), (plain.alarm_key.as_str(), true));
            assert_eq!(escalated[0].priority, Priority::High, "escalation raises the priority");
            assert_eq!(escalations.pending.len(), 1, "the acknowledged alarm is dropped, the silenced one waits");
            assert!(escalations.due(&store, at(120)).await.is_empty(), "jump {jump}: the silence holds");
            let after_silence = escalations.due(&store, at(302)).await;
            let keys: Vec<&str> = after_silence.iter().map(|n| n.alarm_key.as_str()).collect();
            assert_eq!(keys, [quiet.alarm_key.as_str()], "jump {jump}");
            assert!(escalations.pending.is_empty());
        }
    }
}
