//! The alert circuit: the path that pages people, kept apart from everything else.
//!
//! Invariant: the circuit runs on its own OS thread with its own tokio runtime and its own bounded
//! queue, and its sinks (HTTP webhook to nurse call or paging, an MQTT alert topic on its own broker
//! connection) share nothing with the EHR outbox, so an EHR outage cannot delay an alarm. An alarm
//! not acknowledged in time is notified once more, marked escalated, with its priority raised; an
//! operator's silence defers that until the silence ends. The circuit watches the supervisor's
//! heartbeat, as the supervisor watches the circuit's: if either stops, the other raises a technical
//! alarm.
//!
//! The circuit never reads or waits on the main store: what operators did reaches it as a view
//! published by a task on the pipeline's runtime ([`ledger`]), and pages owed survive a restart in
//! its own ring file ([`queue`]).

pub mod deliveries;
mod escalation;
pub mod ledger;
pub mod queue;
mod sinks;
mod topic_acks;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::AlertsConfig;
use crate::health::{HealthRegistry, HealthState, Heartbeat};
use crate::model::ContentHash;
pub use crate::model::alarm::Audience;
use crate::model::alarm::{AlarmKind, Firing, Priority, condition_key};
use escalation::Escalations;
use ledger::{AlarmView, Ledger};
use queue::{AlertQueue, Kept, QueueError, RingFile, Slot};

/// What the sinks receive about an alarm. No patient identifier: the patient's store key only.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notice {
    /// The page's stable id, `<alarm key>/<step>` (0 the first page, 1 its escalation): a receiver
    /// that sees an id twice (a page resent after a restart) can drop the repeat.
    pub page_id: String,
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
    /// Sent late: kept across a restart of Vigil, and sent after it (see `since` for when the
    /// condition began).
    pub late: bool,
    /// The condition had already cleared when this page left.
    pub cleared: bool,
    /// Escalate if not acknowledged by then.
    #[serde(skip)]
    pub escalate_at: Option<DateTime<Utc>>,
}

impl Notice {
    /// The notice of a condition that started, paged `now`.
    pub fn of(f: &Firing, now: DateTime<Utc>) -> Notice {
        Notice {
            page_id: Notice::page_id(&f.key.to_hex(), 0),
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
            audience: crate::config::AlarmRoutes::default().audience(f.kind, f.patient_id.is_some(), f.priority),
            late: false,
            cleared: false,
            escalate_at: f.escalate_after.map(|d| now + d),
        }
    }

    /// The id of an alarm's page at `step`.
    pub fn page_id(alarm_key: &str, step: u8) -> String {
        format!("{alarm_key}/{step}")
    }
}

/// What reaches the circuit.
#[derive(Debug)]
enum Signal {
    /// A new alarm to page.
    Page(Notice),
    /// A condition ended: its escalation is moot, and a page still owed says so.
    Cleared(String),
}

/// Where the rules and the supervisor hand alarms in. The circuit stops once every handle is gone.
#[derive(Clone)]
pub struct AlertHandle {
    tx: mpsc::Sender<Signal>,
}

impl AlertHandle {
    /// Queues a notice for its sinks (waits while the circuit's queue is full).
    pub async fn raise(&self, notice: Notice) {
        if self.tx.send(Signal::Page(notice)).await.is_err() {
            tracing::error!("the alert circuit has stopped; alarm recorded but not sent");
        }
    }

    /// Tells the circuit a condition ended.
    pub async fn cleared(&self, key: &ContentHash) {
        let _ = self.tx.send(Signal::Cleared(key.to_hex())).await;
    }
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

/// How long a stopping circuit waits for deliveries under way.
const DRAIN: Duration = Duration::from_secs(2);

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

/// What the circuit needs from the pipeline: its own queue file, and the far ends of the store.
pub struct Wiring {
    /// The ring file of pages owed.
    pub queue_file: PathBuf,
    /// What operators did about alarms, kept current by [`ledger::watch_handling`].
    pub view: watch::Receiver<AlarmView>,
    /// How many escalations wait (so the view is read only while one does).
    pub wanted: Arc<AtomicUsize>,
    /// Where the circuit's own alarm rows go.
    pub ledger: Ledger,
    /// Where each page's fate is noted for the console.
    pub pages: deliveries::PageLog,
}

/// A running circuit: its handle, and its thread to join once every handle is dropped.
pub struct Circuit {
    /// Where alarms are handed in.
    pub handle: AlertHandle,
    /// The circuit's thread; it ends when every handle is gone (or the drill stops it).
    pub thread: std::thread::JoinHandle<()>,
}

/// Starts the circuit on its own thread. Returns `None` when no sink is configured. `drill` stops
/// the circuit as a crash would (for the drill that proves the supervisor notices).
pub fn start(
    config: &AlertsConfig,
    wiring: Wiring,
    health: &HealthRegistry,
    clock: SharedClock,
    drill: CancellationToken,
) -> std::io::Result<Option<Circuit>> {
    if config.webhook_url.is_none() && config.mqtt_url.is_none() && config.technical_webhook_url.is_none() {
        return Ok(None);
    }
    let (tx, rx) = mpsc::channel(1024);
    let config = config.clone();
    let health = health.clone();
    let thread = std::thread::Builder::new().name("vigil-alerts".into()).spawn(move || {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(run(config, wiring, health, clock, rx, drill)),
            Err(e) => tracing::error!(error = %e, "the alert circuit could not start its runtime"),
        }
    })?;
    Ok(Some(Circuit { handle: AlertHandle { tx }, thread }))
}

async fn run(
    config: AlertsConfig,
    wiring: Wiring,
    health: HealthRegistry,
    clock: SharedClock,
    mut rx: mpsc::Receiver<Signal>,
    drill: CancellationToken,
) {
    let circuit = health.register("alerts", TICK);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(config.timeout_secs))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_default();
    let mut beats: Vec<(Heartbeat, SinkState)> = Vec::new();
    let mut sink_state = |name: &str, initial: (HealthState, &str)| {
        let state: SinkState = Arc::new(Mutex::new((initial.0, initial.1.into())));
        beats.push((health.register(name, TICK), state.clone()));
        state
    };
    let webhook = config.webhook_url.clone().map(|url| (url, sink_state("alert-webhook", (HealthState::Up, "ready"))));
    let technical = config
        .technical_webhook_url
        .clone()
        .map(|url| (url, sink_state("alert-technical-webhook", (HealthState::Up, "ready"))));
    let mqtt = match &config.mqtt_url {
        None => None,
        Some(url) => {
            let state = sink_state("alert-mqtt", (HealthState::Degraded, "connecting"));
            sinks::connect_mqtt(url, state, wiring.pages.clone())
        }
    };
    let durable = sink_state("alert-queue", (HealthState::Up, "opening"));
    let space = sink_state("alert-queue-space", (HealthState::Up, "free slots"));
    let (delivered_tx, delivered_rx) = mpsc::channel(queue::SLOTS * 2);
    let mut pager = Pager {
        sinks: sinks::Sinks { webhook, technical, mqtt, http, config, log: wiring.pages.clone() },
        queue: open_queue(&wiring.queue_file, &durable),
        kept: HashMap::new(),
        escalations: Escalations::default(),
        delivered: delivered_tx,
        durable,
        space,
    };
    pager.resume(clock.read());
    pager.serve(&mut rx, delivered_rx, &wiring, &health, &circuit, &beats, &clock, &drill).await;
}

fn open_queue(path: &std::path::Path, durable: &SinkState) -> Option<Box<dyn AlertQueue>> {
    match RingFile::open(path) {
        Ok(ring) => Some(Box::new(ring)),
        Err(e) => {
            tracing::error!(error = %e, "the alert queue file cannot be opened; pages leave from memory only");
            *durable.lock().unwrap_or_else(|e| e.into_inner()) = (HealthState::Down, format!("not durable: {e}"));
            None
        }
    }
}

/// The circuit's state: sinks, the queue of pages owed, and the escalations waiting.
struct Pager {
    sinks: sinks::Sinks,
    queue: Option<Box<dyn AlertQueue>>,
    /// What the queue keeps, by slot (the queue is written, never read, after the start).
    kept: HashMap<Slot, Kept>,
    escalations: Escalations,
    delivered: mpsc::Sender<Slot>,
    /// `alert-queue`: down while pages cannot be kept durably.
    durable: SinkState,
    /// `alert-queue-space`: degraded while the ring is full.
    space: SinkState,
}

impl Pager {
    #[allow(clippy::too_many_arguments)]
    async fn serve(
        &mut self,
        rx: &mut mpsc::Receiver<Signal>,
        mut delivered: mpsc::Receiver<Slot>,
        wiring: &Wiring,
        health: &HealthRegistry,
        circuit: &Heartbeat,
        beats: &[(Heartbeat, SinkState)],
        clock: &SharedClock,
        drill: &CancellationToken,
    ) {
        let mut supervisor_alarm: Option<ContentHash> = None;
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                _ = drill.cancelled() => {
                    tracing::error!("drill: the alert circuit stops as if it had crashed");
                    return;
                }
                signal = rx.recv() => match signal {
                    None => {
                        self.drain(&mut delivered).await;
                        return;
                    }
                    Some(Signal::Page(notice)) => {
                        let at = notice.escalate_at;
                        self.page(notice, at, clock);
                    }
                    Some(Signal::Cleared(key)) => self.cleared(&key),
                },
                Some(slot) = delivered.recv() => self.settle(slot, |k| k.undelivered = false),
                _ = tick.tick() => {
                    circuit.beat(HealthState::Up, "watching");
                    for (heartbeat, state) in beats {
                        let (s, reason) = state.lock().unwrap_or_else(|e| e.into_inner()).clone();
                        heartbeat.beat(s, &reason);
                    }
                    let view = wiring.view.borrow().clone();
                    for ended in self.escalations.due(&view, clock.read()) {
                        if let Some(slot) = ended.pending.slot {
                            self.settle(slot, |k| k.escalate_at = None);
                        }
                        if let Some(escalated) = ended.escalated {
                            self.page(escalated, None, clock);
                        }
                    }
                    wiring.wanted.store(self.escalations.len(), Ordering::Relaxed);
                    self.watch_supervisor(health, &mut supervisor_alarm, &wiring.ledger, clock.now());
                }
            }
        }
    }

    /// At shutdown: waits briefly for deliveries under way; what is still owed after that stays in
    /// the queue and leaves, marked late, at the next start.
    async fn drain(&mut self, delivered: &mut mpsc::Receiver<Slot>) {
        let until = tokio::time::Instant::now() + DRAIN;
        while self.kept.values().any(|k| k.undelivered) {
            match tokio::time::timeout_at(until, delivered.recv()).await {
                Ok(Some(slot)) => self.settle(slot, |k| k.undelivered = false),
                _ => return,
            }
        }
    }

    /// Sends the pages a previous run still owed (marked late), and re-arms its escalations.
    fn resume(&mut self, now: crate::clock::Now) {
        let kept = match self.queue.as_mut().map(|q| q.kept()) {
            None => return,
            Some(Ok(kept)) => kept,
            Some(Err(e)) => {
                self.not_durable(&e);
                return;
            }
        };
        if !kept.is_empty() {
            tracing::warn!(pages = kept.len(), "resuming pages owed from before the restart");
        }
        for (slot, mut k) in kept {
            k.notice.late = true;
            if let Some(at) = k.escalate_at {
                self.escalations.watch(&k.notice, at, Some(slot), now);
            }
            if k.undelivered {
                self.deliver(&k.notice, Some(slot));
            }
            self.kept.insert(slot, k);
        }
        self.beat_usage();
    }

    /// Routes a page (`[alerts.routes]`), keeps it in the queue (or says why it could not), then
    /// sends it.
    fn page(&mut self, mut notice: Notice, escalate_at: Option<DateTime<Utc>>, clock: &SharedClock) {
        notice.audience = self.sinks.config.routes.audience(notice.kind, notice.patient_id.is_some(), notice.priority);
        let kept = Kept { notice, escalate_at, undelivered: true };
        let slot = match self.queue.as_mut().map(|q| q.put(&kept)) {
            None => None,
            Some(Ok(slot)) => Some(slot),
            Some(Err(QueueError::Full(n))) => {
                *self.space.lock().unwrap_or_else(|e| e.into_inner()) =
                    (HealthState::Degraded, format!("alert queue full ({n} pages owed): new pages leave from memory"));
                None
            }
            Some(Err(e)) => {
                self.not_durable(&e);
                None
            }
        };
        if let Some(at) = escalate_at {
            self.escalations.watch(&kept.notice, at, slot, clock.read());
        }
        self.deliver(&kept.notice, slot);
        if let Some(slot) = slot {
            self.kept.insert(slot, kept);
            self.beat_usage();
        }
    }

    fn deliver(&self, notice: &Notice, slot: Option<Slot>) {
        let deliveries = self.sinks.send(notice);
        let Some(slot) = slot else { return };
        let done = self.delivered.clone();
        tokio::spawn(async move {
            for d in deliveries {
                let _ = d.await;
            }
            let _ = done.send(slot).await;
        });
    }

    /// A condition cleared: its escalation is moot; a page still owed will say it cleared.
    fn cleared(&mut self, key: &str) {
        if let Some(slot) = self.escalations.cleared(key).and_then(|p| p.slot) {
            self.settle(slot, |k| {
                k.escalate_at = None;
                k.notice.cleared = true;
            });
        }
    }

    /// Applies `change` to a kept page and rewrites it; the slot is freed once nothing is owed.
    fn settle(&mut self, slot: Slot, change: impl FnOnce(&mut Kept)) {
        let Some(k) = self.kept.get_mut(&slot) else { return };
        change(k);
        let k = k.clone();
        if !k.owed() {
            self.kept.remove(&slot);
        }
        if let Some(Err(e)) = self.queue.as_mut().map(|q| q.update(slot, &k)) {
            self.not_durable(&e);
        }
        self.beat_usage();
    }

    fn not_durable(&self, e: &QueueError) {
        tracing::error!(error = %e, "alert queue not durable; pages leave from memory");
        *self.durable.lock().unwrap_or_else(|e| e.into_inner()) = (HealthState::Down, format!("not durable: {e}"));
    }

    /// After a successful write: the queue is durable again, with room or not.
    fn beat_usage(&self) {
        let Some((used, slots)) = self.queue.as_ref().map(|q| q.usage()) else { return };
        let mut durable = self.durable.lock().unwrap_or_else(|e| e.into_inner());
        if durable.0 != HealthState::Down {
            *durable = (HealthState::Up, format!("durable: {used} of {slots} slots owed"));
        }
        if used < slots {
            *self.space.lock().unwrap_or_else(|e| e.into_inner()) =
                (HealthState::Up, format!("{} slots free", slots - used));
        }
    }

    /// The circuit's half of the mutual watch: a silent supervisor means modes and adapter alarms
    /// are no longer raised, so the circuit pages that itself.
    fn watch_supervisor(
        &mut self,
        health: &HealthRegistry,
        alarm: &mut Option<ContentHash>,
        ledger: &Ledger,
        now: DateTime<Utc>,
    ) {
        let stopped = health.board().iter().any(|c| c.name == "supervisor" && c.state == HealthState::Stale);
        match (stopped, *alarm) {
            (true, None) => {
                let f = component_alarm(
                    "supervisor-stopped",
                    "supervisor",
                    "The health supervisor has stopped: degradation modes and adapter alarms are no longer raised",
                    Priority::High,
                    now,
                );
                *alarm = Some(f.key);
                self.deliver(&Notice::of(&f, now), None);
                ledger.raise(&f);
            }
            (false, Some(key)) => {
                *alarm = None;
                ledger.clear(key);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 8, 0, 0).unwrap()
    }

    #[test]
    fn an_alarm_pages_the_ward_biomed_or_both_as_routed() {
        let routes = crate::config::AlarmRoutes::default();
        let of = |f: &Firing| routes.audience(f.kind, f.patient_id.is_some(), f.priority);
        let mut f = component_alarm("ehr_sync_paused", "ehr", "EHR sync paused", Priority::Low, t0());
        assert_eq!(of(&f), Audience::Technical, "infrastructure: biomed/IT");
        f.priority = Priority::High;
        assert_eq!(of(&f), Audience::Both, "a fault that stops monitoring for many patients");
        f.patient_id = Some(7);
        assert_eq!(of(&f), Audience::Clinical, "one patient unmonitored: the ward");
        f.kind = AlarmKind::Physiological;
        f.patient_id = None;
        assert_eq!(of(&f), Audience::Clinical);
        let site = crate::config::AlarmRoutes { technical_low: Audience::Both, ..routes };
        f.kind = AlarmKind::Technical;
        f.priority = Priority::Low;
        assert_eq!(site.audience(f.kind, false, f.priority), Audience::Both, "a site may page the ward too");
    }
}
