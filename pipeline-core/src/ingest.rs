//! The ingest writer: the one place where received payloads become durable.
//!
//! Invariant: a [`Receipt`] resolves `Ok` only after the payload, and everything normalise and
//! identify made of it, is committed in the store. Sources acknowledge on that and nothing else.
//! The queue in front of the writer is bounded; when it is full, `submit` waits, so sources stop
//! reading from their peers (pushback) instead of dropping.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::access::Publisher;
use crate::clock::{SharedClock, Steady};
use crate::config::IngestConfig;
use crate::health::latency::Latencies;
use crate::health::{HealthState, Heartbeat};
use crate::identify::{Policy, QuarantineReason, Registry, Verdict, identify};
use crate::model::Reading;
use crate::model::{ContentHash, Validity};
use crate::normalise::pcd01::{self, Pcd01Terms};
use crate::normalise::{Delivery, DeviceStatus, PayloadLimits, Profile, ProfileSet, RejectReason, Rejection, trial};
use crate::rules::{Observed, RuleInput};
use crate::store::{BatchTally, Disposition, PayloadOutcome, ProcessedPayload, Store};

/// A payload as a source received it.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The source kind: `mqtt`, `mllp`, `http`, `file`.
    pub source: &'static str,
    /// Where within the source (the MQTT topic...).
    pub origin: String,
    /// When it was received.
    pub received_at: DateTime<Utc>,
    /// The raw bytes (only the first [`KEPT_OF_OVERSIZED`] of an oversized payload).
    pub payload: Bytes,
    /// Set when the payload was over the source's limit: it is kept truncated and rejected.
    pub oversized: Option<Oversized>,
    /// Who published it: what binds the device ids it may carry.
    pub publisher: Publisher,
    /// What it may carry (device id size, batch elements, readings), as its source configures.
    pub limits: PayloadLimits,
    /// How it is read.
    pub format: Format,
}

/// How a source's payloads are read.
#[derive(Debug, Clone, Default)]
pub enum Format {
    /// JSON, by the device profile whose topics match the origin.
    #[default]
    Profiles,
    /// HL7 v2 ORU^R01 (IHE PCD-01), on the source's terms.
    Pcd01(Arc<Pcd01Terms>),
}

/// A source's terms for what it receives: its kind, who is publishing, and its bounds.
#[derive(Debug, Clone)]
pub struct SourceTerms {
    /// The source kind: `mqtt`, `mllp`, `http`, `file`.
    pub source: &'static str,
    /// Who is publishing on this connection.
    pub publisher: Publisher,
    /// Largest payload processed, in bytes.
    pub max_bytes: usize,
    /// Where an operator sets `max_bytes`, for the rejection of a larger one.
    pub max_bytes_setting: &'static str,
    /// What one payload may carry.
    pub limits: PayloadLimits,
    /// How its payloads are read.
    pub format: Format,
}

/// What is kept of a payload over the source's limit besides its first bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oversized {
    /// Its size as received.
    pub bytes: usize,
    /// The limit it broke.
    pub limit: usize,
    /// blake3 of the whole payload, hex: what an engineer matches against the device's log.
    pub blake3: String,
    /// Where the limit is set, e.g. `[sources.mqtt] max_packet_bytes`.
    pub setting: &'static str,
}

/// Bytes kept of a payload over the source's limit.
pub const KEPT_OF_OVERSIZED: usize = 64 * 1024;

impl Envelope {
    /// A payload as a source received it, on its terms. One over `terms.max_bytes` is kept as its
    /// first [`KEPT_OF_OVERSIZED`] bytes, its size and its hash, and is rejected as `too_large`: it
    /// is acknowledged once that is stored, so it never blocks the payloads behind it.
    pub fn received(terms: &SourceTerms, origin: String, received_at: DateTime<Utc>, payload: Bytes) -> Envelope {
        let limit = terms.max_bytes;
        if payload.len() <= limit {
            return Envelope::on_terms(terms, origin, received_at, payload, None);
        }
        let blake3 = blake3::hash(&payload).to_hex().to_string();
        let head = payload.slice(..KEPT_OF_OVERSIZED.min(payload.len()));
        Envelope::oversized(terms, origin, received_at, head, payload.len(), blake3)
    }

    /// What is kept of a payload over the source's limit that the source read only in part: its
    /// first bytes, its size and its hash.
    pub fn oversized(
        terms: &SourceTerms,
        origin: String,
        received_at: DateTime<Utc>,
        head: Bytes,
        bytes: usize,
        blake3: String,
    ) -> Envelope {
        let oversized = Oversized { bytes, limit: terms.max_bytes, blake3, setting: terms.max_bytes_setting };
        Envelope::on_terms(terms, origin, received_at, head, Some(oversized))
    }

    fn on_terms(
        terms: &SourceTerms,
        origin: String,
        received_at: DateTime<Utc>,
        payload: Bytes,
        oversized: Option<Oversized>,
    ) -> Envelope {
        Envelope {
            source: terms.source,
            origin,
            received_at,
            payload,
            oversized,
            publisher: terms.publisher.clone(),
            limits: terms.limits,
            format: terms.format.clone(),
        }
    }
}

/// Why a payload was not stored (and so must not be acknowledged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// The writer stopped (shutdown, or the store gave up); the source should not acknowledge.
    #[error("the ingest writer has stopped; the payload was not stored")]
    Closed,
}

struct Submission {
    envelope: Envelope,
    done: oneshot::Sender<()>,
}

/// Where sources hand payloads in. Cheap to clone; the writer stops once every clone is dropped.
#[derive(Clone)]
pub struct IngestHandle {
    tx: mpsc::Sender<Submission>,
    unstored: Arc<AtomicUsize>,
}

/// Resolves once the submitted payload is durably stored.
#[derive(Debug)]
pub struct Receipt(oneshot::Receiver<()>);

impl Receipt {
    /// Waits for the durable write.
    pub async fn stored(self) -> Result<(), IngestError> {
        self.0.await.map_err(|_| IngestError::Closed)
    }

    /// The outcome if it is already known, without waiting.
    pub fn try_stored(&mut self) -> Option<Result<(), IngestError>> {
        match self.0.try_recv() {
            Ok(()) => Some(Ok(())),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(IngestError::Closed)),
        }
    }
}

impl IngestHandle {
    /// Queues a payload, waiting while the queue is full (pushback).
    pub async fn submit(&self, envelope: Envelope) -> Result<Receipt, IngestError> {
        let (done, receipt) = oneshot::channel();
        self.tx.send(Submission { envelope, done }).await.map_err(|_| IngestError::Closed)?;
        Ok(Receipt(receipt))
    }

    /// Payloads waiting for the writer now.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Payloads the writer has taken (and the rules have seen) but not yet stored: each one is an
    /// acknowledgement withheld.
    pub fn unstored(&self) -> usize {
        self.unstored.load(Ordering::Relaxed)
    }
}

/// Running totals of what the writer did since start.
pub type IngestTally = Arc<Mutex<BatchTally>>;

/// Starts the writer task. It ends when every [`IngestHandle`] is dropped and the queue is drained.
///
/// One task batches, processes and commits in turn. Everything that arrives during a commit makes
/// the next batch, so batches grow with load and commits (each an fsync) stay few; splitting
/// processing and committing into two pipelined tasks measured slower (smaller batches, more fsyncs).
pub fn spawn(
    store: Arc<dyn Store>,
    profiles: Arc<ProfileSet>,
    policy: Policy,
    config: &IngestConfig,
    heartbeat: Heartbeat,
    outputs: Outputs,
    clock: SharedClock,
) -> (IngestHandle, IngestTally, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(config.queue_capacity);
    let tally = IngestTally::default();
    let unstored = Arc::new(AtomicUsize::new(0));
    let writer = Writer {
        store,
        profiles,
        policy,
        registry: Registry { generation: -1, ..Registry::default() },
        batch_max: config.batch_max,
        unstored_max: config.unstored_max.max(1),
        unstored: unstored.clone(),
        linger: Duration::from_millis(config.batch_linger_ms),
        tally: tally.clone(),
        attention: Attention::default(),
        heartbeat,
        rules: outputs.rules,
        latest: outputs.latest,
        arrivals: outputs.arrivals,
        latencies: outputs.latencies,
        unmapped: Unmapped { heartbeat: outputs.unmapped, counts: BTreeMap::new() },
        steady: Steady::new(clock.read()),
        clock,
    };
    (IngestHandle { tx, unstored }, tally, tokio::spawn(writer.run(rx)))
}

struct Writer {
    store: Arc<dyn Store>,
    profiles: Arc<ProfileSet>,
    policy: Policy,
    registry: Registry,
    batch_max: usize,
    /// Payloads taken but not yet stored at most; beyond it the writer stops taking (pushback).
    unstored_max: usize,
    unstored: Arc<AtomicUsize>,
    linger: Duration,
    tally: IngestTally,
    attention: Attention,
    heartbeat: Heartbeat,
    /// Where stored readings go next, if rules run.
    rules: Option<mpsc::Sender<RuleInput>>,
    /// The newest value of each stream, for the console.
    latest: LatestValues,
    /// When each device's payloads arrived, for the fleet's message rate.
    arrivals: Arrivals,
    /// Where arrival-to-durable latency is recorded.
    latencies: Arc<Latencies>,
    /// Fields no profile reads, counted for the board.
    unmapped: Unmapped,
    clock: SharedClock,
    /// What devices' times are compared with: the wall clock at start, moved on monotonically.
    steady: Steady,
}

/// Where the writer's results go besides the store.
pub struct Outputs {
    /// The rules task, if rules run.
    pub rules: Option<mpsc::Sender<RuleInput>>,
    /// The newest value of each stream, for the console.
    pub latest: LatestValues,
    /// When each device's payloads arrived, for the fleet's message rate.
    pub arrivals: Arrivals,
    /// Latency histograms for `/metrics`.
    pub latencies: Arc<Latencies>,
    /// The board's `profiles` row: fields payloads carry that their profile does not read.
    pub unmapped: Heartbeat,
}

/// The newest stored value of one (device, metric), for the console's live view.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Latest {
    /// The patient's store key.
    pub patient_id: i64,
    /// The value in `unit`.
    pub value: f64,
    /// The canonical UCUM unit.
    pub unit: &'static str,
    /// When it was measured.
    pub observed_at: DateTime<Utc>,
    /// What the device (or a demo site) said of it: the console marks what is not valid.
    pub validity: Validity,
}

/// When each device's stored payloads arrived over the last minute, for the fleet view's message
/// rate. Kept by the writer after each commit; a device silent for a minute drops out.
#[derive(Clone, Default)]
pub struct Arrivals(Arc<Mutex<HashMap<String, VecDeque<DateTime<Utc>>>>>);

/// The window the message rate is measured over.
const RATE_WINDOW: chrono::Duration = chrono::Duration::seconds(60);

impl Arrivals {
    fn record(&self, processed: &[ProcessedPayload]) {
        let mut arrivals = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for p in processed {
            let PayloadOutcome::Readings(ds) = &p.outcome else { continue };
            let mut devices: Vec<&str> = ds.iter().map(|d| d.reading().device_id.as_str()).collect();
            devices.dedup();
            for device in devices {
                let times = arrivals.entry(device.to_string()).or_default();
                times.push_back(p.received_at);
                while times.front().is_some_and(|t| p.received_at - *t > RATE_WINDOW) {
                    times.pop_front();
                }
            }
        }
        // Many ids heard once (a misconfigured gateway) must not grow the map without end.
        if let Some(newest) = processed.iter().map(|p| p.received_at).max()
            && arrivals.len() > 10_000
        {
            arrivals.retain(|_, times| times.back().is_some_and(|t| newest - *t <= RATE_WINDOW));
        }
    }

    /// Payloads per minute of each device heard in the last minute: measured between its first and
    /// last arrival in the window, so a device heard for a few seconds already shows its true rate.
    pub fn per_minute(&self, now: DateTime<Utc>) -> HashMap<String, f64> {
        let mut arrivals = self.0.lock().unwrap_or_else(|e| e.into_inner());
        arrivals.retain(|_, times| times.back().is_some_and(|t| now - *t <= RATE_WINDOW));
        arrivals
            .iter()
            .map(|(device, times)| {
                let recent: Vec<&DateTime<Utc>> = times.iter().filter(|t| now - **t <= RATE_WINDOW).collect();
                let span = match (recent.first(), recent.last()) {
                    (Some(first), Some(last)) => (**last - **first).num_milliseconds() as f64 / 60_000.0,
                    _ => 0.0,
                };
                let rate = if span > 0.0 { (recent.len() - 1) as f64 / span } else { recent.len() as f64 };
                (device.clone(), rate)
            })
            .collect()
    }
}

#[cfg(test)]
mod arrival_tests {
    use super::*;

    #[test]
    fn the_rate_is_measured_over_what_was_heard_within_the_last_minute() {
        let t0 = Utc::now();
        let arrivals = Arrivals::default();
        let at = |secs: i64| t0 + chrono::Duration::seconds(secs);
        for secs in 0..5 {
            arrivals.0.lock().unwrap().entry("OX-1".into()).or_default().push_back(at(secs));
        }
        arrivals.0.lock().unwrap().entry("WB-1".into()).or_default().push_back(at(0));
        let rates = arrivals.per_minute(at(4));
        assert_eq!(rates["OX-1"], 60.0, "one a second, heard for 4 s");
        assert_eq!(rates["WB-1"], 1.0, "heard once this minute");
        assert!(arrivals.per_minute(at(200)).is_empty(), "silent for a minute: dropped");
    }
}

/// The newest value of each (device id, MDC code), kept in memory by the writer after each commit:
/// the live view reads it without touching the store.
pub type LatestValues = Arc<Mutex<HashMap<(String, u32), Latest>>>;

/// How often the writer beats for the store (`store` on the board).
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// How long identification waits for the store to say whether the registry changed.
const REGISTRY_WAIT: Duration = Duration::from_millis(500);

/// A payload processed and forwarded to the rules, waiting for its commit.
type Held = (ProcessedPayload, Submission);

/// A commit running beside the intake: its task gives the payloads back with the result.
struct Commit {
    task: JoinHandle<(Vec<ProcessedPayload>, Result<BatchTally, crate::store::StoreError>)>,
    flight: Vec<Submission>,
    started: Instant,
}

impl Writer {
    /// Takes payloads in, normalises, identifies and forwards them to the rules at once, and commits
    /// them one batch at a time behind that. A commit runs beside the intake, so a store that is slow,
    /// locked or full delays acknowledgements but never the rules: the writer keeps taking payloads
    /// (each connection up to its unacknowledged window, all of them up to `unstored_max`) and only
    /// then stops reading, which pushes back on the sources.
    async fn run(mut self, mut rx: mpsc::Receiver<Submission>) {
        let mut held: VecDeque<Held> = VecDeque::new();
        let mut commit: Option<Commit> = None;
        let mut failing: Option<(String, Instant)> = None;
        let mut backoff = Backoff::default();
        let mut beat = tokio::time::interval(HEARTBEAT);
        let mut closed = false;
        // Read now, so a store that fails before the first payload still leaves one to identify by.
        if let Err(e) = self.refresh_registry().await {
            tracing::warn!(error = %e, "the registry could not be read at start; it is read again with the first payload");
        }
        loop {
            let room = !closed && self.unstored.load(Ordering::Relaxed) < self.unstored_max;
            let retry_at = failing.as_ref().map_or_else(Instant::now, |(_, at)| *at);
            tokio::select! {
                done = async { (&mut commit.as_mut().expect("guarded").task).await }, if commit.is_some() => {
                    let Commit { flight, .. } = commit.take().expect("guarded");
                    match done {
                        Ok((processed, Ok(tally))) => {
                            backoff = Backoff::default();
                            failing = None;
                            self.heartbeat.beat(HealthState::Up, "storing");
                            self.stored(processed, flight, &tally);
                        }
                        Ok((processed, Err(e))) => {
                            let wait = backoff.next(&e.to_string());
                            failing = Some((e.to_string(), Instant::now() + wait));
                            for held_back in processed.into_iter().zip(flight).rev() {
                                held.push_front(held_back);
                            }
                        }
                        Err(panic) => {
                            tracing::error!(error = %panic, "an ingest commit panicked; its payloads stay unacknowledged");
                            return;
                        }
                    }
                    self.beat_unstored(&held, &failing);
                }
                first = rx.recv(), if room => match first {
                    None => closed = true,
                    Some(first) => {
                        let room = self.unstored_max - self.unstored.load(Ordering::Relaxed);
                        let batch = self.gather(first, &mut rx, room.min(self.batch_max), commit.is_none()).await;
                        let processed = self.process(&batch).await;
                        self.forward(&processed).await;
                        held.extend(processed.into_iter().zip(batch));
                    }
                },
                _ = tokio::time::sleep_until(retry_at), if commit.is_none() && !held.is_empty() && failing.is_some() => {
                    if let Some((_, at)) = &mut failing { *at = Instant::now(); }
                }
                _ = beat.tick() => {
                    self.unmapped.beat();
                    match (&commit, &failing) {
                    (Some(c), _) if c.started.elapsed() > HEARTBEAT * 2 => self.heartbeat.beat(
                        HealthState::Down,
                        &format!(
                            "store has not finished a commit for {} s; {} payloads unacknowledged, still evaluated by the rules",
                            c.started.elapsed().as_secs(),
                            held.len() + c.flight.len()
                        ),
                    ),
                    (None, Some(_)) => self.beat_unstored(&held, &failing),
                    (None, None) if held.is_empty() => self.idle_check().await,
                    _ => self.heartbeat.beat(HealthState::Up, "storing"),
                }},
            }
            let in_flight = commit.as_ref().map_or(0, |c| c.flight.len());
            self.unstored.store(held.len() + in_flight, Ordering::Relaxed);
            let due = failing.as_ref().is_none_or(|(_, at)| *at <= Instant::now());
            if commit.is_none() && !held.is_empty() && due {
                commit = Some(self.start_commit(&mut held));
            }
            if closed && held.is_empty() && commit.is_none() {
                break;
            }
        }
        tracing::info!("ingest writer drained and stopped");
    }

    /// The first payload and whatever else is waiting, up to `max`; when no commit is running,
    /// lingers briefly so a burst makes one batch (one fsync) rather than many.
    async fn gather(
        &self,
        first: Submission,
        rx: &mut mpsc::Receiver<Submission>,
        max: usize,
        linger: bool,
    ) -> Vec<Submission> {
        let mut batch = vec![first];
        let deadline = Instant::now() + if linger { self.linger } else { Duration::ZERO };
        while batch.len() < max {
            match rx.try_recv() {
                Ok(s) => batch.push(s),
                Err(_) if !linger => break,
                Err(_) => match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(s)) => batch.push(s),
                    Ok(None) | Err(_) => break,
                },
            }
        }
        batch
    }

    /// Hands the oldest held payloads, up to a batch, to a commit of their own.
    fn start_commit(&self, held: &mut VecDeque<Held>) -> Commit {
        let n = held.len().min(self.batch_max);
        let (processed, flight): (Vec<ProcessedPayload>, Vec<Submission>) = held.drain(..n).unzip();
        let store = self.store.clone();
        let task = tokio::spawn(async move {
            let result = store.write_batch(&processed).await;
            (processed, result)
        });
        Commit { task, flight, started: Instant::now() }
    }

    /// A committed batch: remembered for the live view, counted, and acknowledged.
    fn stored(&mut self, processed: Vec<ProcessedPayload>, flight: Vec<Submission>, tally: &BatchTally) {
        self.remember_latest(&processed);
        self.arrivals.record(&processed);
        self.unmapped.count(&processed);
        self.attention.record(tally);
        self.tally.lock().unwrap_or_else(|e| e.into_inner()).add(tally);
        let now = self.clock.now();
        for s in flight {
            let waited = (now - s.envelope.received_at).num_microseconds().unwrap_or(0);
            self.latencies.ingest.observe(waited as f64 / 1e6);
            // A source that gave up waiting is no loss: the payload is stored.
            let _ = s.done.send(());
        }
    }

    /// Says on the board that the store is failing and how much waits unacknowledged.
    fn beat_unstored(&self, held: &VecDeque<Held>, failing: &Option<(String, Instant)>) {
        if let Some((why, _)) = failing {
            self.heartbeat.beat(
                HealthState::Down,
                &format!(
                    "store failing: {why}; {} payloads held unacknowledged, still evaluated by the rules",
                    held.len()
                ),
            );
        }
    }

    /// Idle: asks the store something cheap, so a dead disk shows before data arrives.
    async fn idle_check(&self) {
        match tokio::time::timeout(HEARTBEAT, self.store.registry_generation()).await {
            Ok(Ok(_)) => self.heartbeat.beat(HealthState::Up, "idle"),
            Ok(Err(e)) => self.heartbeat.beat(HealthState::Down, &format!("store failing: {e}")),
            Err(_) => self.heartbeat.beat(HealthState::Down, "store failing: it does not answer a read within 1 s"),
        }
    }

    /// Keeps the newest accepted value of each stream (held and quarantined ones are not shown).
    fn remember_latest(&self, processed: &[ProcessedPayload]) {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        for p in processed {
            let PayloadOutcome::Readings(ds) = &p.outcome else { continue };
            for d in ds {
                let Disposition::Accepted { reading, patient_id, .. } = d else { continue };
                let key = (reading.device_id.clone(), reading.metric.mdc_code);
                if latest.get(&key).is_some_and(|l| l.observed_at >= reading.observed_at) {
                    continue;
                }
                let value = Latest {
                    patient_id: *patient_id,
                    value: reading.value,
                    unit: reading.metric.unit,
                    observed_at: reading.observed_at,
                    validity: reading.validity,
                };
                latest.insert(key, value);
            }
        }
    }

    /// Normalises and identifies the batch against the current registry. A store that cannot say
    /// whether the registry changed (locked, failing) leaves the last one read in force: pairing is
    /// an operator action, and the rules must not wait for the store.
    async fn process(&mut self, batch: &[Submission]) -> Vec<ProcessedPayload> {
        loop {
            match self.refresh_registry().await {
                Ok(()) => break,
                Err(e) if self.registry.generation >= 0 => {
                    tracing::warn!(error = %e, "registry not re-read; identifying against the last one read");
                    break;
                }
                // Never read yet: nothing can be identified without it.
                Err(e) => Backoff::default().wait(&self.heartbeat, &e).await,
            }
        }
        let now = self.steady.at(self.clock.read());
        batch.iter().map(|s| process(&s.envelope, &self.profiles, &self.registry, &self.policy, now)).collect()
    }

    async fn refresh_registry(&mut self) -> Result<(), String> {
        let read = async {
            if self.store.registry_generation().await? != self.registry.generation {
                self.registry = self.store.load_registry().await?;
            }
            Ok::<(), crate::store::StoreError>(())
        };
        match tokio::time::timeout(REGISTRY_WAIT, read).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("the store did not answer within {} ms", REGISTRY_WAIT.as_millis())),
        }
    }

    /// Hands the identified readings to the rules before the commit: an alarm must not wait for an
    /// fsync, and a failing store must not silence alarms. The rules are idempotent (a reading seen
    /// twice, because its payload was resent, changes nothing). A full rules queue pushes back here.
    async fn forward(&self, processed: &[ProcessedPayload]) {
        let Some(rules) = &self.rules else { return };
        let inputs: Vec<RuleInput> = processed
            .iter()
            .filter_map(|p| match &p.outcome {
                PayloadOutcome::Readings(ds) => {
                    let profile = p.profile_id.as_deref().and_then(|id| self.profiles.get(id));
                    let live = profile.is_none_or(|p| p.delivery == Delivery::Live);
                    Some(ds.iter().filter_map(move |d| rule_input(d, live)))
                }
                PayloadOutcome::Rejected(_) => None,
            })
            .flatten()
            .collect();
        for input in inputs {
            if rules.send(input).await.is_err() {
                return;
            }
        }
    }
}

/// What the rules need to know of one disposition, if anything: it came from a `live` device, or in
/// a batch upload.
fn rule_input(d: &Disposition, live: bool) -> Option<RuleInput> {
    match d {
        Disposition::Accepted { reading, patient_id, .. } | Disposition::Held { reading, patient_id, .. } => {
            Some(RuleInput::Reading(Observed {
                patient_id: *patient_id,
                device_id: reading.device_id.clone(),
                metric: reading.metric,
                value: reading.value,
                observed_at: reading.observed_at,
                validity: reading.validity,
                live,
            }))
        }
        Disposition::Quarantined { reading, reason: QuarantineReason::Implausible, .. } => {
            Some(RuleInput::Implausible { device_id: reading.device_id.clone(), metric: reading.metric })
        }
        Disposition::Quarantined { reading, reason: QuarantineReason::UnknownDevice, .. } => {
            Some(RuleInput::Unknown { device_id: reading.device_id.clone() })
        }
        Disposition::Quarantined { reading, reason: QuarantineReason::NoActivePairing, .. } => {
            Some(RuleInput::Unpaired { device_id: reading.device_id.clone() })
        }
        _ => None,
    }
}

/// The writer's retry pacing: doubling from 100 ms up to 2 s.
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(Duration::from_millis(100))
    }
}

impl Backoff {
    /// The wait before the next attempt after `e`.
    fn next(&mut self, e: &str) -> Duration {
        tracing::error!(error = %e, retry_in_ms = self.0.as_millis() as u64, "store write failed; holding acknowledgements");
        let wait = self.0;
        self.0 = (self.0 * 2).min(Duration::from_secs(2));
        wait
    }

    async fn wait(&mut self, heartbeat: &Heartbeat, e: &str) {
        heartbeat.beat(HealthState::Down, &format!("store failing: {e}"));
        tokio::time::sleep(self.next(e)).await;
    }
}

/// Fields payloads carry that their profile does not read, per profile, in how many payloads received
/// (resends included): a firmware update that adds a field shows on the board instead of going unread
/// unnoticed.
struct Unmapped {
    heartbeat: Heartbeat,
    counts: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Unmapped {
    /// Fields shown per profile; the rest are counted.
    const SHOWN: usize = 5;

    fn count(&mut self, processed: &[ProcessedPayload]) {
        for p in processed {
            let Some(profile) = &p.profile_id else { continue };
            if p.unmapped.is_empty() {
                continue;
            }
            // Allocates only for a profile or field not seen before: this runs for every payload.
            if !self.counts.contains_key(profile) {
                self.counts.insert(profile.clone(), BTreeMap::new());
            }
            let fields = self.counts.get_mut(profile).expect("inserted above");
            for field in &p.unmapped {
                match fields.get_mut(field) {
                    Some(n) => *n += 1,
                    None => {
                        fields.insert(field.clone(), 1);
                    }
                }
            }
        }
    }

    fn beat(&self) {
        if self.counts.is_empty() {
            self.heartbeat.beat(HealthState::Up, "every field of every payload is read by its profile");
            return;
        }
        let profiles: Vec<String> = self
            .counts
            .iter()
            .map(|(profile, fields)| {
                let mut shown: Vec<String> = fields
                    .iter()
                    .take(Self::SHOWN)
                    .map(|(f, n)| format!("{f} (in {n} payload{})", plural(*n)))
                    .collect();
                if fields.len() > Self::SHOWN {
                    shown.push(format!("and {} more", fields.len() - Self::SHOWN));
                }
                format!("{profile}: {}", shown.join(", "))
            })
            .collect();
        self.heartbeat.beat(
            HealthState::Up,
            &format!("fields no profile reads (see vigil profile try): {}", profiles.join("; ")),
        );
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Summarises items needing an operator in the log at most once a minute, so a misbehaving device
/// cannot flood the log (the console and `vigil show` list each item).
#[derive(Default)]
struct Attention {
    pending: BatchTally,
    last_logged: Option<Instant>,
}

impl Attention {
    const EVERY: Duration = Duration::from_secs(60);

    fn record(&mut self, tally: &BatchTally) {
        self.pending.add(tally);
        let p = &self.pending;
        if p.rejected + p.quarantined + p.held == 0 || self.last_logged.is_some_and(|t| t.elapsed() < Self::EVERY) {
            return;
        }
        tracing::warn!(
            rejected = p.rejected,
            quarantined = p.quarantined,
            held = p.held,
            "payloads need attention (see vigil show rejected|quarantine|held)"
        );
        self.pending = BatchTally::default();
        self.last_logged = Some(Instant::now());
    }
}

/// The identity of a received payload: a resend of the same bytes on the same topic is a repeat.
pub fn payload_hash(envelope: &Envelope) -> ContentHash {
    let mut h = blake3::Hasher::new();
    h.update(b"vigil.payload.v1\0");
    for part in [envelope.source.as_bytes(), envelope.origin.as_bytes(), &envelope.payload[..]] {
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part);
    }
    ContentHash(*h.finalize().as_bytes())
}

/// Normalise and identify one payload: a pure function of the payload, the profiles, the registry
/// snapshot and the clock.
pub fn process(
    envelope: &Envelope,
    profiles: &ProfileSet,
    registry: &Registry,
    policy: &Policy,
    now: DateTime<Utc>,
) -> ProcessedPayload {
    let (profile_id, read) = match &envelope.format {
        Format::Profiles => {
            let profile = profiles.for_topic(&envelope.origin);
            (
                profile.map(|p| p.id.clone()),
                profile.map_or_else(|| Err(no_profile(envelope)), |p| read_json(p, envelope)),
            )
        }
        Format::Pcd01(terms) => (Some(pcd01::PROFILE_ID.to_string()), read_hl7(terms, envelope)),
    };
    let (outcome, unmapped, status) = match envelope.oversized.as_ref() {
        Some(o) => (PayloadOutcome::Rejected(too_large(o)), Vec::new(), DeviceStatus::default()),
        None => match read {
            Err(rejection) => (PayloadOutcome::Rejected(rejection), Vec::new(), DeviceStatus::default()),
            Ok(Read { readings, patient_named, unmapped, status }) => {
                let dispositions = readings
                    .into_iter()
                    .map(|mut reading| {
                        policy.stamp(&mut reading, registry);
                        dispose(reading, registry, policy, now, patient_named)
                    })
                    .collect();
                (PayloadOutcome::Readings(dispositions), unmapped, status)
            }
        },
    };
    ProcessedPayload {
        source: envelope.source,
        origin: envelope.origin.clone(),
        received_at: envelope.received_at,
        payload: envelope.payload.clone(),
        payload_hash: payload_hash(envelope),
        profile_id,
        outcome,
        unmapped,
        status,
    }
}

/// What a payload read into, before identify.
struct Read {
    readings: Vec<Reading>,
    /// Whether the payload may name its patient and does: an HL7 message must (PID), a JSON payload
    /// need not.
    patient_named: bool,
    unmapped: Vec<String>,
    status: DeviceStatus,
}

fn no_profile(envelope: &Envelope) -> Rejection {
    Rejection {
        reason: RejectReason::NoProfile,
        detail: format!("no device profile serves topic {:?}: add or fix a profile's topics", envelope.origin),
    }
}

fn too_large(o: &Oversized) -> Rejection {
    Rejection {
        reason: RejectReason::TooLarge,
        detail: format!(
            "a payload of {} bytes (blake3 {}) is over the {}-byte limit ({}); its first {} KiB are kept",
            o.bytes,
            o.blake3,
            o.limit,
            o.setting,
            KEPT_OF_OVERSIZED / 1024
        ),
    }
}

/// A JSON payload by its profile, refused when its publisher may not speak for its devices.
fn read_json(profile: &Profile, envelope: &Envelope) -> Result<Read, Rejection> {
    let trial = trial(profile, &envelope.payload, &envelope.limits);
    if !trial.problems.is_empty() {
        return Err(Rejection::combined(trial.problems));
    }
    if let Some(why) = trial.readings.iter().find_map(|r| envelope.publisher.refuses(&r.device_id, &envelope.origin)) {
        return Err(Rejection { reason: RejectReason::NotAuthorised, detail: why });
    }
    Ok(Read { readings: trial.readings, patient_named: true, unmapped: trial.unmapped, status: trial.status })
}

/// An HL7 v2 message by PCD-01.
fn read_hl7(terms: &Pcd01Terms, envelope: &Envelope) -> Result<Read, Rejection> {
    let oru = pcd01::decode(&envelope.payload, terms).outcome.map_err(|refusal| refusal.rejection())?;
    let status = DeviceStatus::default();
    Ok(Read { readings: oru.readings, patient_named: oru.patient_named, unmapped: oru.unmapped, status })
}

/// Where one reading goes. A reading that names no device, or no patient where its source must,
/// is quarantined whatever its pairing says: it can never be charted.
fn dispose(
    reading: Reading,
    registry: &Registry,
    policy: &Policy,
    now: DateTime<Utc>,
    patient_named: bool,
) -> Disposition {
    if reading.device_id.is_empty() {
        let detail =
            "the message names no device: neither the observation's OBX-18 nor its MDS row's OBX-18 gives one \
                      (set [sources.mllp] device_from = \"msh3\" only if each sender is one device)"
                .to_string();
        return Disposition::Quarantined { reading, reason: QuarantineReason::UnknownDevice, detail };
    }
    match identify(&reading, registry, policy, now) {
        Verdict::Accept { .. } | Verdict::Hold { .. } if !patient_named => {
            let detail = format!(
                "device {}: the message has no PID (patient identifier), so the reading cannot be checked against its pairing",
                reading.device_id
            );
            Disposition::Quarantined { reading, reason: QuarantineReason::NoPatientIdentity, detail }
        }
        Verdict::Accept { patient_id } => Disposition::Accepted { hash: reading.content_hash(), reading, patient_id },
        Verdict::Hold { patient_id, flow } => {
            Disposition::Held { hash: reading.content_hash(), reading, patient_id, flow }
        }
        Verdict::Quarantine { reason, detail } => Disposition::Quarantined { reading, reason, detail },
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::TimeZone;

    use super::*;
    use crate::clock::TokioClock;
    use crate::config::{Config, IngestConfig};
    use crate::health::HealthRegistry;
    use crate::store::fake::FakeStore;

    /// `fixtures/payloads/acme-ox100/ok.json` says it measured at 10:00:00.120 UTC.
    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 10, 0, 2).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_store_holds_every_acknowledgement_but_not_the_rules_nor_the_intake() {
        let clock = TokioClock::starting_at(t0());
        let store = Arc::new(FakeStore::new(clock.clone()));
        store.pair_new_patient("OX-1001", t0() - chrono::Duration::days(1));
        store.fail_writes(true);
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let profiles = Arc::new(ProfileSet::load_dir(fixtures.join("profiles")).unwrap());
        let (rules_tx, mut rules_rx) = mpsc::channel(16);
        let health = HealthRegistry::with_clock(clock.clone());
        let outputs = Outputs {
            rules: Some(rules_tx),
            latest: LatestValues::default(),
            arrivals: Arrivals::default(),
            latencies: Arc::default(),
            unmapped: health.register("profiles", HEARTBEAT),
        };
        let (ingest, tally, writer) = spawn(
            store.clone(),
            profiles,
            Policy::of(&Config::default()),
            &IngestConfig::default(),
            health.register("store", HEARTBEAT),
            outputs,
            clock.clone(),
        );
        let payload = std::fs::read_to_string(fixtures.join("payloads/acme-ox100/ok.json")).unwrap();
        let envelope = |payload: String| Envelope {
            source: "mqtt",
            origin: "vigil/devices/OX-1001/oximeter".into(),
            received_at: clock.now(),
            payload: payload.into_bytes().into(),
            oversized: None,
            publisher: Publisher::Anonymous,
            limits: PayloadLimits::default(),
            format: Format::Profiles,
        };
        let mut first = ingest.submit(envelope(payload.clone())).await.unwrap();
        // The store fails on and on; payloads that arrive meanwhile still reach the rules.
        tokio::time::sleep(Duration::from_secs(30)).await;
        let mut later = ingest.submit(envelope(payload.replace("10:00:00.120", "10:00:30.120"))).await.unwrap();
        for _ in 0..4 {
            let input = tokio::time::timeout(Duration::from_secs(5), rules_rx.recv()).await;
            assert!(matches!(input, Ok(Some(RuleInput::Reading(_)))), "{input:?}");
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            (first.try_stored(), later.try_stored()),
            (None, None),
            "nothing is acknowledged before it is stored"
        );
        assert_eq!(ingest.unstored(), 2, "both wait, counted");
        assert!(store.batches().is_empty());
        assert!(health.board().iter().any(|c| c.name == "store" && c.state == HealthState::Down));

        store.fail_writes(false);
        first.stored().await.unwrap();
        later.stored().await.unwrap();
        let written: usize = store.batches().iter().map(|b| b.len()).sum();
        assert_eq!(written, 2, "the held payloads are written once the store recovers");
        let stored = *tally.lock().unwrap();
        assert_eq!((stored.payloads, stored.stored), (2, 4));
        assert_eq!(ingest.unstored(), 0);
        drop(ingest);
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn an_implausible_value_is_quarantined_with_its_hint_and_the_rest_of_the_payload_goes_on() {
        use crate::store::RegistryStore;
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let profiles = ProfileSet::load_dir(fixtures.join("profiles")).unwrap();
        let store = FakeStore::new(TokioClock::starting_at(t0()));
        store.pair_new_patient("OX-1001", t0() - chrono::Duration::days(1));
        let registry = store.load_registry().await.unwrap();
        let payload = r#"{"sn":"OX-1001","ts":"2026-11-24T10:00:00.120Z","spo2":0.97,"pr":72,"status":"ok"}"#;
        let envelope = Envelope {
            source: "mqtt",
            origin: "vigil/devices/OX-1001/oximeter".into(),
            received_at: t0(),
            payload: payload.as_bytes().to_vec().into(),
            oversized: None,
            publisher: Publisher::Anonymous,
            limits: PayloadLimits::default(),
            format: Format::Profiles,
        };
        let processed = process(&envelope, &profiles, &registry, &Policy::of(&Config::default()), t0());
        let PayloadOutcome::Readings(dispositions) = processed.outcome else { panic!("{:?}", processed.outcome) };
        let spo2 = dispositions.iter().find_map(|d| match d {
            Disposition::Quarantined { reading, reason, detail } if reading.metric.mdc_code == 150456 => {
                Some((*reason, detail))
            }
            _ => None,
        });
        let (reason, detail) = spo2.expect("SpO2 0.97 % quarantined");
        assert_eq!(reason, crate::identify::QuarantineReason::Implausible);
        assert!(detail.contains("a fraction labelled percent?"), "{detail}");
        let pulse_stored = dispositions
            .iter()
            .any(|d| matches!(d, Disposition::Accepted { reading, .. } if reading.metric.mdc_code == 149530));
        assert!(pulse_stored, "the payload's other reading goes on: {dispositions:?}");
        // For the rules the implausible value is no valid signal; the pulse is a reading.
        let inputs: Vec<_> = dispositions.iter().filter_map(|d| rule_input(d, true)).collect();
        assert!(
            matches!(&inputs[..], [RuleInput::Implausible { metric, .. }, RuleInput::Reading(r)]
            if metric.mdc_code == 150456 && r.metric.mdc_code == 149530),
            "{inputs:?}"
        );
    }

    #[tokio::test]
    async fn a_demo_devices_readings_are_stamped_demo_and_an_invalid_one_stays_invalid() {
        use crate::store::RegistryStore;
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let profiles = ProfileSet::load_dir(fixtures.join("profiles")).unwrap();
        let store = FakeStore::new(TokioClock::starting_at(t0()));
        store.pair_new_patient("OX-1001", t0() - chrono::Duration::days(1));
        store.set_device_demo("OX-1001", true, "biomed").await.unwrap();
        let registry = store.load_registry().await.unwrap();
        let validities = |payload: &str| {
            let envelope = Envelope {
                source: "mqtt",
                origin: "vigil/devices/OX-1001/oximeter".into(),
                received_at: t0(),
                payload: std::fs::read(fixtures.join(payload)).unwrap().into(),
                oversized: None,
                publisher: Publisher::Anonymous,
                limits: PayloadLimits::default(),
                format: Format::Profiles,
            };
            let processed = process(&envelope, &profiles, &registry, &Policy::of(&Config::default()), t0());
            let PayloadOutcome::Readings(ds) = processed.outcome else { panic!("{:?}", processed.outcome) };
            ds.iter()
                .map(|d| match d {
                    Disposition::Accepted { reading, .. } => reading.validity,
                    other => panic!("{other:?}"),
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(validities("payloads/acme-ox100/ok.json"), [Validity::Demo, Validity::Demo]);
        assert_eq!(validities("payloads/acme-ox100/sensor-off.json"), [Validity::Invalid]);
    }

    #[tokio::test]
    async fn readings_held_for_want_of_store_consent_still_reach_the_rules() {
        use crate::identify::Flow;
        use crate::store::RegistryStore;
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures");
        let profiles = ProfileSet::load_dir(fixtures.join("profiles")).unwrap();
        let store = FakeStore::new(TokioClock::starting_at(t0()));
        let patient = store.pair_new_patient("OX-1001", t0() - chrono::Duration::days(1));
        store.consent(patient, Flow::Store, false);
        let registry = store.load_registry().await.unwrap();
        let envelope = Envelope {
            source: "mqtt",
            origin: "vigil/devices/OX-1001/oximeter".into(),
            received_at: t0(),
            payload: std::fs::read(fixtures.join("payloads/acme-ox100/ok.json")).unwrap().into(),
            oversized: None,
            publisher: Publisher::Anonymous,
            limits: PayloadLimits::default(),
            format: Format::Profiles,
        };
        let processed = process(&envelope, &profiles, &registry, &Policy::of(&Config::default()), t0());
        let PayloadOutcome::Readings(dispositions) = processed.outcome else { panic!("{:?}", processed.outcome) };
        assert!(dispositions.iter().all(|d| matches!(d, Disposition::Held { .. })), "{dispositions:?}");
        let inputs: Vec<_> = dispositions.iter().filter_map(|d| rule_input(d, true)).collect();
        assert_eq!(inputs.len(), 2);
        assert!(inputs.iter().all(|i| matches!(i, RuleInput::Reading(r) if r.patient_id == patient)), "{inputs:?}");
    }
}
