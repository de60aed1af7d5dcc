//! The alert circuit: the path that pages people, kept apart from everything else.
//!
//! Invariant: the circuit runs on its own OS thread with its own tokio runtime and its own bounded
//! queue, and its sinks (HTTP webhook to nurse call or paging, an MQTT alert topic on its own broker
//! connection) share nothing with the EHR outbox, so an EHR outage cannot delay an alarm. Each sink
//! retries on its own; one slow sink does not hold up another. An alarm not acknowledged in time is
//! notified once more, marked escalated, with its priority raised.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{AlertsConfig, BrokerAddress};
use crate::health::{HealthRegistry, HealthState, Heartbeat};
use crate::store::Store;

/// What the sinks receive about an alarm. No patient identifier: the patient's store key only.
#[derive(Debug, Clone, Serialize)]
pub struct Notice {
    /// The condition's key (hex): the alarm's identity in the store and at every sink.
    pub alarm_key: String,
    /// The rule that raised it.
    pub rule_id: String,
    /// `high`, `medium` or `low` (raised one level when escalated).
    pub priority: String,
    /// `physiological` or `technical`.
    pub kind: &'static str,
    /// The device.
    pub device_id: String,
    /// The patient's store key (look it up in the console).
    pub patient_id: i64,
    /// MDC code of the metric.
    pub mdc_code: u32,
    /// The value that completed the condition.
    pub value: f64,
    /// When the condition began.
    pub since: DateTime<Utc>,
    /// Whether this is the escalation of an unacknowledged alarm.
    pub escalated: bool,
    /// Escalate if not acknowledged by then.
    #[serde(skip)]
    pub escalate_at: Option<DateTime<Utc>>,
}

/// Where the rules hand alarms in.
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

/// How often the circuit beats and looks for escalations.
const TICK: Duration = Duration::from_millis(500);

/// A sink's last result, re-beaten on every tick.
type SinkState = Arc<Mutex<(HealthState, String)>>;

/// Starts the circuit on its own thread. Returns `None` when no sink is configured.
pub fn start(
    config: &AlertsConfig,
    store: Arc<dyn Store>,
    health: &HealthRegistry,
    shutdown: CancellationToken,
) -> std::io::Result<Option<AlertHandle>> {
    if config.webhook_url.is_none() && config.mqtt_url.is_none() {
        return Ok(None);
    }
    let (tx, rx) = mpsc::channel(1024);
    let config = config.clone();
    let health = health.clone();
    std::thread::Builder::new().name("vigil-alerts".into()).spawn(move || {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(run(config, store, health, rx, shutdown)),
            Err(e) => tracing::error!(error = %e, "the alert circuit could not start its runtime"),
        }
    })?;
    Ok(Some(AlertHandle { tx }))
}

async fn run(
    config: AlertsConfig,
    store: Arc<dyn Store>,
    health: HealthRegistry,
    mut rx: mpsc::Receiver<Notice>,
    shutdown: CancellationToken,
) {
    let circuit = health.register("alerts", TICK);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(config.timeout_secs)).build().unwrap_or_default();
    let mut sinks: Vec<(Heartbeat, SinkState)> = Vec::new();
    let webhook = config.webhook_url.clone().map(|url| {
        let state: SinkState = Arc::new(Mutex::new((HealthState::Up, "ready".into())));
        sinks.push((health.register("alert-webhook", TICK), state.clone()));
        (url, state)
    });
    let mqtt = match &config.mqtt_url {
        None => None,
        Some(url) => {
            let state: SinkState = Arc::new(Mutex::new((HealthState::Degraded, "connecting".into())));
            sinks.push((health.register("alert-mqtt", TICK), state.clone()));
            connect_mqtt(url, state.clone()).map(|client| (client, state))
        }
    };
    let mut pending: HashMap<String, Notice> = HashMap::new();
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            notice = rx.recv() => {
                let Some(notice) = notice else { break };
                if notice.escalate_at.is_some() {
                    pending.insert(notice.alarm_key.clone(), notice.clone());
                }
                send(&notice, webhook.as_ref(), mqtt.as_ref(), &http, &config);
            }
            _ = tick.tick() => {
                circuit.beat(HealthState::Up, "watching");
                for (heartbeat, state) in &sinks {
                    let (s, reason) = state.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    heartbeat.beat(s, &reason);
                }
                for notice in due_escalations(&mut pending, store.as_ref()).await {
                    send(&notice, webhook.as_ref(), mqtt.as_ref(), &http, &config);
                }
            }
        }
    }
}

/// Removes and returns the escalations that are due and still unacknowledged (each escalates once).
async fn due_escalations(pending: &mut HashMap<String, Notice>, store: &dyn Store) -> Vec<Notice> {
    let now = Utc::now();
    if !pending.values().any(|n| n.escalate_at.is_some_and(|t| t <= now)) {
        return Vec::new();
    }
    let Ok(active) = store.alarms(true, 10_000).await else { return Vec::new() };
    let unacked: std::collections::HashSet<&str> =
        active.iter().filter(|a| a.acked_at.is_none()).map(|a| a.key.as_str()).collect();
    let due: Vec<String> =
        pending.iter().filter(|(_, n)| n.escalate_at.is_some_and(|t| t <= now)).map(|(k, _)| k.clone()).collect();
    due.into_iter()
        .filter_map(|key| pending.remove(&key))
        .filter(|n| unacked.contains(n.alarm_key.as_str()))
        .map(|mut n| {
            n.escalated = true;
            n.escalate_at = None;
            n.priority = match n.priority.as_str() {
                "low" => "medium".into(),
                _ => "high".into(),
            };
            tracing::warn!(rule = %n.rule_id, device = %n.device_id, "alarm not acknowledged in time; escalating");
            n
        })
        .collect()
}

fn send(
    notice: &Notice,
    webhook: Option<&(String, SinkState)>,
    mqtt: Option<&(AsyncClient, SinkState)>,
    http: &reqwest::Client,
    config: &AlertsConfig,
) {
    if let Some((url, state)) = webhook {
        let (url, state, http, notice, retries) =
            (url.clone(), state.clone(), http.clone(), notice.clone(), config.retries);
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            for attempt in 0..=retries {
                match http.post(&url).json(&notice).send().await {
                    Ok(r) if r.status().is_success() => {
                        *state.lock().unwrap_or_else(|e| e.into_inner()) = (HealthState::Up, "delivered".into());
                        return;
                    }
                    outcome => {
                        let why = match outcome {
                            Ok(r) => format!("HTTP {}", r.status()),
                            Err(e) => e.to_string(),
                        };
                        tracing::warn!(rule = %notice.rule_id, attempt, error = %why, "webhook delivery failed");
                        *state.lock().unwrap_or_else(|e| e.into_inner()) =
                            (HealthState::Down, format!("webhook failing: {why}"));
                    }
                }
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        });
    }
    if let Some((client, _)) = mqtt {
        let topic = format!("{}/{}", config.mqtt_topic, notice.priority);
        let payload = serde_json::to_vec(notice).unwrap_or_default();
        if let Err(e) = client.try_publish(topic, QoS::AtLeastOnce, false, payload) {
            tracing::error!(rule = %notice.rule_id, error = %e, "alarm not queued for the MQTT alert topic");
        }
    }
}

/// The alert topic's own connection; its state follows the connection.
fn connect_mqtt(url: &str, state: SinkState) -> Option<AsyncClient> {
    let addr = match BrokerAddress::parse(url) {
        Ok(a) => a,
        Err(e) => {
            *state.lock().unwrap_or_else(|e| e.into_inner()) = (HealthState::Down, format!("alerts.mqtt_url: {e}"));
            return None;
        }
    };
    let mut options = MqttOptions::new(format!("vigil-alerts-{}", std::process::id()), addr.host, addr.port);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Incoming::ConnAck(_))) => {
                    *state.lock().unwrap_or_else(|e| e.into_inner()) = (HealthState::Up, "connected".into());
                }
                Ok(_) => {}
                Err(e) => {
                    *state.lock().unwrap_or_else(|e| e.into_inner()) =
                        (HealthState::Down, format!("alert broker: {e}"));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    Some(client)
}
