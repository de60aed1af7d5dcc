//! The outbox delivery loop: takes due events in per-patient order, hands them to the sink, and
//! records each outcome durably.
//!
//! Invariant: an event leaves `pending` only after the EHR confirmed it (delivered) or refused it for
//! good (dead, with the EHR's answer). Retryable failures back off exponentially with jitter; a
//! circuit breaker stops hammering an EHR that keeps failing. Consent for `ehr-write` is checked
//! again here, at the hop: an event whose consent was withdrawn since it was queued is held.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::clock::SharedClock;
use crate::config::EhrTarget;
use crate::health::latency::{Histogram, Latencies};
use crate::health::{HealthState, Heartbeat};
use crate::normalise::ProfileSet;
use crate::sinks::{Outcome, Sink};
use crate::store::{OutboxItem, OutboxStore, Settlement};

/// Where events go: the EHR adapter, and the device profiles that name each event's device there.
pub struct Destination {
    /// The EHR adapter.
    pub sink: Arc<dyn Sink>,
    /// The profiles the devices are registered with.
    pub profiles: Arc<ProfileSet>,
}

/// Delivery settings.
#[derive(Debug, Clone, Copy)]
pub struct OutboxSettings {
    /// Events per request at most.
    pub batch: u32,
    /// First retry delay.
    pub base_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// Consecutive failed rounds that open the circuit.
    pub breaker_threshold: u32,
    /// Where the events go: demo data is held at this hop unless it may go there.
    pub target: EhrTarget,
}

/// The delay before retry number `attempts + 1`: exponential, capped, with full jitter in its
/// upper half so that events failed together do not retry in lockstep.
pub fn backoff(attempts: u32, s: &OutboxSettings) -> Duration {
    let exp = s.base_backoff.saturating_mul(1u32 << attempts.min(16)).min(s.max_backoff);
    exp.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// Opens after `threshold` consecutive failed rounds; stays open for a growing pause, then lets one
/// round through (half-open).
#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    pause: Duration,
}

impl Breaker {
    fn record(&mut self, failed: bool, s: &OutboxSettings) -> Option<Duration> {
        if !failed {
            *self = Breaker::default();
            return None;
        }
        self.failures += 1;
        if self.failures < s.breaker_threshold {
            return None;
        }
        self.pause = (self.pause * 2).clamp(s.base_backoff, s.max_backoff);
        Some(self.pause)
    }
}

/// Runs until `shutdown`, beating for the EHR adapter (`ehr` on the board).
pub async fn run(
    store: Arc<dyn OutboxStore>,
    Destination { sink, profiles }: Destination,
    settings: OutboxSettings,
    heartbeat: Heartbeat,
    latency: Arc<Latencies>,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let mut breaker = Breaker::default();
    let mut health = (HealthState::Up, "idle".to_string());
    let mut last_probe: Option<tokio::time::Instant> = None;
    loop {
        // A delivery in flight is abandoned at shutdown: the event stays pending and goes again
        // later, with the same identity, so the EHR recognises it.
        let delivered = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = round(store.as_ref(), sink.as_ref(), &profiles, &settings, &latency.ehr, &clock) => r,
        };
        let pause = match delivered {
            // Nothing due: ask the EHR now and then whether it answers, so an outage shows on the
            // board before an event waits on it.
            Ok(Round::Idle) => {
                if last_probe.is_none_or(|t| t.elapsed() >= PROBE_EVERY) {
                    last_probe = Some(tokio::time::Instant::now());
                    health = match sink.probe().await {
                        Ok(_) => (HealthState::Up, "idle; the EHR answers".into()),
                        Err(e) => (HealthState::Down, e),
                    };
                }
                Some(Duration::from_millis(200))
            }
            // The EHR refuses Vigil itself: nothing is dead-lettered, and delivery waits, as a mode,
            // for the configuration to be fixed (a retry now and then says when it is).
            Ok(Round::Paused(why)) => {
                tracing::error!(sink = sink.name(), "the EHR refuses Vigil's configuration; delivery paused");
                health = (HealthState::Down, format!("{CONFIGURATION}{why}"));
                Some(settings.max_backoff)
            }
            Ok(Round::Sent { all_failed: false }) => {
                breaker.record(false, &settings);
                health = (HealthState::Up, "delivering".into());
                None
            }
            Ok(Round::Sent { all_failed: true }) => match breaker.record(true, &settings) {
                Some(pause) => {
                    tracing::warn!(
                        sink = sink.name(),
                        pause_ms = pause.as_millis() as u64,
                        "EHR keeps failing; circuit open"
                    );
                    health = (
                        HealthState::Down,
                        format!("{} failing; circuit open, next try in {} s", sink.name(), pause.as_secs()),
                    );
                    Some(pause)
                }
                None => {
                    health = (HealthState::Degraded, format!("{} not answering; retrying with backoff", sink.name()));
                    None
                }
            },
            Err(e) => {
                tracing::error!(error = %e, "outbox store error; retrying");
                health = (HealthState::Degraded, format!("cannot read the outbox: {e}"));
                Some(Duration::from_secs(1))
            }
        };
        heartbeat.beat(health.0, &health.1);
        let Some(pause) = pause else {
            if shutdown.is_cancelled() {
                return;
            }
            continue;
        };
        // Sleep in heartbeat-sized steps, so a long circuit-open pause never looks like a dead loop.
        let until = tokio::time::Instant::now() + pause;
        while tokio::time::Instant::now() < until {
            let step = (until - tokio::time::Instant::now()).min(HEARTBEAT);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(step) => heartbeat.beat(health.0, &health.1),
            }
        }
    }
}

/// How often an idle outbox checks that the EHR answers.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// How often the outbox beats.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

enum Round {
    Idle,
    Sent {
        all_failed: bool,
    },
    /// The EHR refused Vigil's configuration; why.
    Paused(String),
}

use crate::health::modes::EHR_CONFIGURATION as CONFIGURATION;

async fn round(
    store: &dyn OutboxStore,
    sink: &dyn Sink,
    profiles: &ProfileSet,
    s: &OutboxSettings,
    latency: &Histogram,
    clock: &SharedClock,
) -> Result<Round, crate::store::StoreError> {
    let mut due = store.outbox_due(clock.now(), s.batch, s.batch).await?;
    if due.is_empty() {
        return Ok(Round::Idle);
    }
    // Each device is named at the EHR as its profile says (an EUI-64, or a serial of that model).
    for item in &mut due {
        if let Some(identity) = item.device.profile_id.as_deref().and_then(|id| profiles.identity(id, &item.device.id))
        {
            item.device = identity;
        }
    }
    // The last hop checks again: consent may have been withdrawn, and an event queued for a test EHR
    // must not reach a production one the settings now name.
    let refusal = |item: &OutboxItem| {
        if !item.consented {
            Some("consent for ehr-write is no longer recorded")
        } else if item.event.has_demo_data() && !s.target.takes_test_data() {
            Some("demo or test data never goes to a production EHR")
        } else {
            None
        }
    };
    let (consented, refused): (Vec<_>, Vec<_>) = due.into_iter().partition(|item| refusal(item).is_none());
    let mut settlements: Vec<(i64, Settlement)> =
        refused.iter().filter_map(|i| Some((i.id, Settlement::Held { reason: refusal(i)?.into() }))).collect();
    let outcomes = if consented.is_empty() {
        Vec::new()
    } else {
        let started = std::time::Instant::now();
        let outcomes = sink.deliver(&consented).await;
        latency.observe(started.elapsed().as_secs_f64());
        outcomes
    };
    let all_failed = !outcomes.is_empty() && outcomes.iter().all(|o| matches!(o, Outcome::Retryable(_)));
    let mut paused = None;
    for (item, outcome) in consented.iter().zip(outcomes) {
        let settlement = match outcome {
            Outcome::Delivered(ehr_ref) => Settlement::Delivered { ehr_ref },
            Outcome::Retryable(error) => Settlement::Retry { next_at: clock.now() + backoff(item.attempts, s), error },
            Outcome::Configuration(error) => {
                paused = Some(error.clone());
                Settlement::Retry { next_at: clock.now() + s.max_backoff, error }
            }
            Outcome::Permanent(reason) => {
                tracing::warn!(sink = sink.name(), outbox_id = item.id, "EHR refused an event; dead-lettered");
                Settlement::Dead { reason }
            }
        };
        settlements.push((item.id, settlement));
    }
    store.outbox_settle(&settlements).await?;
    Ok(match paused {
        Some(why) => Round::Paused(why),
        None => Round::Sent { all_failed },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use chrono::{DateTime, TimeZone, Utc};

    use super::*;
    use crate::clock::TokioClock;
    use crate::config::{EhrEnvironment, EhrKind};
    use crate::health::HealthRegistry;
    use crate::identify::Flow;
    use crate::model::Validity;
    use crate::model::codes::metric_by_code;
    use crate::model::event::{ClinicalEvent, Effective, EventContent, Observation};
    use crate::store::fake::FakeStore;
    use crate::store::{OutboxStatus, OutboxStore};

    /// A sink that answers from a script (then confirms everything) and notes what it was given.
    #[derive(Default)]
    struct ScriptedSink {
        script: Mutex<VecDeque<Outcome>>,
        given: Mutex<Vec<i64>>,
    }

    impl ScriptedSink {
        fn answering(script: impl IntoIterator<Item = Outcome>) -> Arc<ScriptedSink> {
            Arc::new(ScriptedSink { script: Mutex::new(script.into_iter().collect()), ..ScriptedSink::default() })
        }
    }

    #[async_trait::async_trait]
    impl Sink for ScriptedSink {
        fn name(&self) -> &str {
            "scripted"
        }
        async fn deliver(&self, items: &[crate::store::OutboxItem]) -> Vec<Outcome> {
            self.given.lock().unwrap().extend(items.iter().map(|i| i.id));
            let mut script = self.script.lock().unwrap();
            items
                .iter()
                .map(|_| script.pop_front().unwrap_or(Outcome::Delivered(Some("Observation/1".into()))))
                .collect()
        }
        async fn probe(&self) -> Result<String, String> {
            Ok("answers".into())
        }
    }

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 8, 0, 0).unwrap()
    }

    fn spo2(patient_id: i64, value: f64) -> ClinicalEvent {
        ClinicalEvent {
            patient_id,
            device_id: "OX-1".into(),
            origin: "test".into(),
            content: EventContent::Single {
                observation: Observation::Vital {
                    metric: metric_by_code(150456).unwrap(),
                    value,
                    effective: Effective::At { at: t0() },
                    validity: Validity::Valid,
                    method: None,
                },
            },
        }
    }

    async fn queue(store: &FakeStore, patient_id: i64, value: f64) -> i64 {
        store.enqueue_event(&spo2(patient_id, value), OutboxStatus::Pending, None, None).await.unwrap().unwrap()
    }

    async fn status(store: &FakeStore, id: i64) -> (OutboxStatus, Option<String>, u32) {
        let e = store.outbox_entry(id).await.unwrap().unwrap();
        (e.status, e.reason, e.attempts)
    }

    #[tokio::test(start_paused = true)]
    async fn a_round_settles_each_outcome_and_holds_what_lost_consent() {
        let clock = TokioClock::starting_at(t0());
        let store = FakeStore::new(clock.clone());
        let patients: Vec<i64> = (0..4).map(|i| store.pair_new_patient(&format!("OX-{i}"), t0())).collect();
        store.consent(patients[2], Flow::EhrWrite, false);
        let mut ids = Vec::new();
        for (i, p) in patients.iter().enumerate() {
            ids.push(queue(&store, *p, 90.0 + i as f64).await);
        }
        let sink = ScriptedSink::answering([
            Outcome::Delivered(Some("Observation/7".into())),
            Outcome::Retryable("503 busy".into()),
            Outcome::Permanent("OperationOutcome: unknown code".into()),
        ]);
        let latency = Latencies::default();
        let s = settings();
        let round = round(&store, sink.as_ref(), &ProfileSet::default(), &s, &latency.ehr, &clock).await.unwrap();
        assert!(matches!(round, Round::Sent { all_failed: false }));
        assert_eq!(*sink.given.lock().unwrap(), [ids[0], ids[1], ids[3]], "the unconsented event is not sent");
        assert_eq!(status(&store, ids[0]).await, (OutboxStatus::Delivered, None, 1));
        assert_eq!(status(&store, ids[1]).await, (OutboxStatus::Pending, Some("503 busy".into()), 1));
        let held = status(&store, ids[2]).await;
        assert_eq!(held.0, OutboxStatus::Held);
        assert!(held.1.unwrap().contains("consent"), "held with its reason");
        assert_eq!(status(&store, ids[3]).await.0, OutboxStatus::Dead);
        // The retry waits its backoff: not due now, due once the first backoff has passed.
        assert!(store.outbox_due(clock.now(), 10, 10).await.unwrap().is_empty());
        let later = clock.now() + chrono::Duration::from_std(s.base_backoff).unwrap();
        assert_eq!(store.outbox_due(later, 10, 10).await.unwrap().iter().map(|i| i.id).collect::<Vec<_>>(), [ids[1]]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_ehr_refusing_vigils_configuration_pauses_delivery_and_dead_letters_nothing() {
        let clock = TokioClock::starting_at(t0());
        let store = FakeStore::new(clock.clone());
        let patient = store.pair_new_patient("OX-1", t0());
        let ids = [queue(&store, patient, 91.0).await, queue(&store, patient, 92.0).await];
        let sink = ScriptedSink::answering([
            Outcome::Configuration("HTTP 401: without an OperationOutcome".into()),
            Outcome::Configuration("HTTP 401: without an OperationOutcome".into()),
        ]);
        let latency = Latencies::default();
        let s = settings();
        let round = round(&store, sink.as_ref(), &ProfileSet::default(), &s, &latency.ehr, &clock).await.unwrap();
        assert!(matches!(&round, Round::Paused(why) if why.contains("401")));
        for id in ids {
            assert_eq!(status(&store, id).await.0, OutboxStatus::Pending, "nothing is dead-lettered");
        }
        // Tried again after the longest backoff, not before.
        let soon = clock.now() + chrono::Duration::from_std(s.max_backoff).unwrap() - chrono::Duration::milliseconds(1);
        assert!(store.outbox_due(soon, 10, 10).await.unwrap().is_empty());
        let later = soon + chrono::Duration::milliseconds(2);
        assert_eq!(store.outbox_due(later, 10, 10).await.unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn demo_data_is_held_at_the_hop_to_a_production_ehr_and_sent_to_a_test_one() {
        let clock = TokioClock::starting_at(t0());
        let store = FakeStore::new(clock.clone());
        let patient = store.pair_new_patient("OX-1", t0());
        let mut demo = spo2(patient, 95.0);
        if let EventContent::Single { observation: Observation::Vital { validity, .. } } = &mut demo.content {
            *validity = Validity::Demo;
        }
        // Queued while the EHR was a test one; the settings now name a production EHR.
        let id = store.enqueue_event(&demo, OutboxStatus::Pending, None, None).await.unwrap().unwrap();
        let sink = ScriptedSink::answering([Outcome::Delivered(None)]);
        let latency = Latencies::default();
        round(&store, sink.as_ref(), &ProfileSet::default(), &settings(), &latency.ehr, &clock).await.unwrap();
        assert!(sink.given.lock().unwrap().is_empty(), "nothing reached the production EHR");
        let (held, reason, _) = status(&store, id).await;
        assert_eq!(held, OutboxStatus::Held);
        assert_eq!(reason.as_deref(), Some("demo or test data never goes to a production EHR"));

        let test = OutboxSettings {
            target: EhrTarget { kind: EhrKind::Fhir, environment: EhrEnvironment::Test },
            ..settings()
        };
        store.outbox_requeue(id, "test").await.unwrap();
        round(&store, sink.as_ref(), &ProfileSet::default(), &test, &latency.ehr, &clock).await.unwrap();
        assert_eq!(*sink.given.lock().unwrap(), [id], "a test EHR takes it");
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_retries_after_its_backoff_then_delivers() {
        let clock = TokioClock::starting_at(t0());
        let store = Arc::new(FakeStore::new(clock.clone()));
        let id = queue(&store, store.pair_new_patient("OX-1", t0()), 88.0).await;
        let sink = ScriptedSink::answering([Outcome::Retryable("connection refused".into())]);
        let health = HealthRegistry::with_clock(clock.clone());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(
            store.clone(),
            Destination { sink: sink.clone(), profiles: Arc::new(ProfileSet::default()) },
            settings(),
            health.register("ehr", HEARTBEAT),
            Arc::new(Latencies::default()),
            clock.clone(),
            shutdown.clone(),
        ));
        // Paused time advances only while every task waits, so this loop costs no wall-clock time.
        while status(&store, id).await.0 != OutboxStatus::Delivered {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (delivered, _, attempts) = status(&store, id).await;
        assert_eq!((delivered, attempts), (OutboxStatus::Delivered, 2));
        assert_eq!(*sink.given.lock().unwrap(), [id, id], "sent twice: the failure, then the retry");
        shutdown.cancel();
        task.await.unwrap();
    }

    fn settings() -> OutboxSettings {
        OutboxSettings {
            batch: 10,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            breaker_threshold: 3,
            target: EhrTarget { kind: EhrKind::Fhir, environment: EhrEnvironment::Production },
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let s = settings();
        for attempts in 0..20 {
            let d = backoff(attempts, &s);
            let full = (s.base_backoff * 2u32.pow(attempts.min(16))).min(s.max_backoff);
            assert!(d >= full / 2 && d <= full, "attempt {attempts}: {d:?} not in [{:?}, {full:?}]", full / 2);
        }
    }

    #[test]
    fn breaker_opens_after_the_threshold_and_resets_on_success() {
        let s = settings();
        let mut b = Breaker::default();
        assert_eq!(b.record(true, &s), None);
        assert_eq!(b.record(true, &s), None);
        assert_eq!(b.record(true, &s), Some(Duration::from_millis(100)));
        assert_eq!(b.record(true, &s), Some(Duration::from_millis(200)));
        assert_eq!(b.record(false, &s), None);
        assert_eq!(b.record(true, &s), None);
    }
}
