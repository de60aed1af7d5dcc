//! The alert circuit's sinks: an HTTP webhook (nurse call, paging) with retries, and an MQTT alert
//! topic on the circuit's own broker connection. Each delivery runs on its own, so one slow sink does
//! not hold up another.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Outgoing, QoS};
use tokio::task::JoinHandle;

use super::deliveries::PageLog;
use super::topic_acks::TopicAcks;
use super::{Audience, Notice, SinkState};
use crate::config::{AlertsConfig, BrokerAddress};
use crate::health::HealthState;

/// The configured sinks.
pub(super) struct Sinks {
    /// The clinical webhook's URL and state.
    pub webhook: Option<(String, SinkState)>,
    /// The technical webhook's URL and state.
    pub technical: Option<(String, SinkState)>,
    /// The alert topic's connection.
    pub mqtt: Option<AlertTopic>,
    /// The webhook's client.
    pub http: reqwest::Client,
    /// Topic, retries, timeout.
    pub config: AlertsConfig,
    /// Where each page's fate is noted for the console.
    pub log: PageLog,
}

impl Sinks {
    /// One notice to the sinks of its audience; the handles finish when each sink has taken it or
    /// given up. A technical notice goes to the clinical sinks when no technical sink is configured:
    /// paged to the wrong desk beats paged to nobody.
    pub fn send(&self, notice: &Notice) -> Vec<JoinHandle<()>> {
        let mut deliveries = Vec::new();
        let clinical = match notice.audience {
            Audience::Clinical | Audience::Both => true,
            Audience::Technical => self.technical.is_none(),
        };
        let step = u8::from(notice.escalated);
        let mut post_to = |url: &String, state: &SinkState, sink: &'static str| {
            self.log.sent(&notice.alarm_key, step, sink, None);
            let page = Page { notice: notice.clone(), sink, log: self.log.clone() };
            deliveries.push(post(url.clone(), state.clone(), self.http.clone(), page, self.config.retries));
        };
        if notice.audience != Audience::Clinical
            && let Some((url, state)) = &self.technical
        {
            post_to(url, state, BIOMED_WEBHOOK);
        }
        if !clinical {
            return deliveries;
        }
        if let Some((url, state)) = &self.webhook {
            post_to(url, state, WARD_WEBHOOK);
        }
        if let Some(topic) = &self.mqtt {
            topic.publish(notice, step, &self.config.mqtt_topic);
        }
        deliveries
    }
}

/// The console's names for the webhooks.
const WARD_WEBHOOK: &str = "ward webhook";
const BIOMED_WEBHOOK: &str = "biomed webhook";

/// The alert topic's own broker connection, and its pages awaiting the broker's acknowledgement.
pub(super) struct AlertTopic {
    client: AsyncClient,
    acks: Arc<Mutex<TopicAcks>>,
}

impl AlertTopic {
    /// Queues a notice (QoS 1) on `{topic}/{priority}`; the page stays "sending" until the broker
    /// acknowledges it.
    fn publish(&self, notice: &Notice, step: u8, topic: &str) {
        let topic = format!("{topic}/{}", notice.priority.as_str());
        let payload = serde_json::to_vec(notice).unwrap_or_default();
        // Held while queueing, so the page is in line before its publish can go out.
        let mut acks = lock(&self.acks);
        acks.queue(&notice.alarm_key, step);
        if let Err(e) = self.client.try_publish(topic, QoS::AtLeastOnce, false, payload) {
            tracing::error!(rule = %notice.rule_id, error = %e, "alarm not queued for the MQTT alert topic");
            acks.refused(format!("not queued: {e}"));
        }
    }
}

fn lock(acks: &Mutex<TopicAcks>) -> MutexGuard<'_, TopicAcks> {
    acks.lock().unwrap_or_else(|e| e.into_inner())
}

/// One notice on its way to one sink, and where its fate is noted.
struct Page {
    notice: Notice,
    sink: &'static str,
    log: PageLog,
}

/// POSTs a notice to the webhook, retrying with backoff; the sink's state follows the result.
fn post(url: String, state: SinkState, http: reqwest::Client, page: Page, retries: u32) -> JoinHandle<()> {
    let Page { notice, sink, log } = page;
    let step = u8::from(notice.escalated);
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(200);
        for attempt in 0..=retries {
            match http.post(&url).json(&notice).send().await {
                Ok(r) if r.status().is_success() => {
                    *state.lock().unwrap_or_else(|e| e.into_inner()) = (HealthState::Up, "delivered".into());
                    log.settled(&notice.alarm_key, step, sink, Ok(()));
                    return;
                }
                outcome => {
                    let why = match outcome {
                        Ok(r) => format!("HTTP {}", r.status()),
                        Err(e) => e.to_string(),
                    };
                    tracing::warn!(rule = %notice.rule_id, attempt, error = %why, "webhook delivery failed");
                    if attempt == retries {
                        log.settled(
                            &notice.alarm_key,
                            step,
                            sink,
                            Err(format!("{why}, after {} attempts", retries + 1)),
                        );
                    }
                    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                    // The last page given up stays named until a delivery succeeds.
                    let given_up = match (attempt == retries, state.1.find(NOT_REACHED)) {
                        (true, _) => not_reached(&notice, retries),
                        (false, Some(at)) => state.1[at..].to_string(),
                        (false, None) => String::new(),
                    };
                    *state = (HealthState::Down, format!("webhook failing: {why}{given_up}"));
                }
            }
            if attempt < retries {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
        tracing::error!(rule = %notice.rule_id, page = %notice.page_id, "webhook retries exhausted; page not delivered");
    })
}

/// Where a sink's reason names a page it never took.
const NOT_REACHED: &str = "; NOT REACHED";

/// Names the page a webhook never took, for the board and the mode's technical alarm: whoever reads
/// it knows which alarm the desk behind that webhook has not heard of. Store keys only, no PHI.
fn not_reached(notice: &Notice, retries: u32) -> String {
    let patient = notice.patient_id.map(|p| format!(", patient #{p}")).unwrap_or_default();
    format!(
        "{NOT_REACHED} after {} attempts: {} alarm '{}' from {}{patient} (page {})",
        retries + 1,
        notice.priority.as_str(),
        notice.rule_id,
        notice.device_id,
        notice.page_id
    )
}

/// The alert topic's own connection; its state follows the connection, and each page is settled
/// when the broker acknowledges it.
pub(super) fn connect_mqtt(url: &str, state: SinkState, log: PageLog) -> Option<AlertTopic> {
    let addr = match BrokerAddress::parse(url) {
        Ok(a) => a,
        Err(e) => {
            *state.lock().unwrap_or_else(|e| e.into_inner()) = (HealthState::Down, format!("alerts.mqtt_url: {e}"));
            return None;
        }
    };
    let mut options = MqttOptions::new(format!("vigil-alerts-{}", std::process::id()), addr.host, addr.port);
    options.set_keep_alive(Duration::from_secs(5));
    // mqtts:// is TLS against the system's trusted roots, never plain text.
    if addr.tls {
        options.set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::default()));
    }
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let acks = Arc::new(Mutex::new(TopicAcks::new(log)));
    let settles = acks.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    *state.lock().unwrap_or_else(|e| e.into_inner()) = (HealthState::Up, "connected".into());
                }
                Ok(Event::Outgoing(Outgoing::Publish(pkid))) => lock(&settles).sent(pkid),
                Ok(Event::Incoming(Incoming::PubAck(ack))) => lock(&settles).acked(ack.pkid),
                Ok(_) => {}
                Err(e) => {
                    *state.lock().unwrap_or_else(|e| e.into_inner()) =
                        (HealthState::Down, format!("alert broker: {e}"));
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    Some(AlertTopic { client, acks })
}
