//! Subscription to an external MQTT broker (Mosquitto, EMQX, HiveMQ...): QoS 1, persistent session,
//! manual acknowledgements.
//!
//! Invariant: `ack()` is called for a PUBLISH only after its receipt says it is durable. Until then
//! the broker keeps it and redelivers it after a crash; the inbox recognises the redelivery.
//!
//! Deadlock avoidance (FACTS.md): acknowledgements travel through rumqttc's request channel, which
//! only the polling task drains. So the acknowledging task must never wait on that channel while the
//! polling task waits on it. The request channel and the hand-over channel are both sized to the
//! packet-identifier space, which bounds the broker's unacknowledged QoS 1 messages; neither can
//! fill on acknowledgements, so the polling task can block on the bounded ingest queue (pushback)
//! without stalling the acknowledgements that would free it.

use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, Incoming, MqttOptions, Publish, QoS, SubscribeReasonCode, TlsConfiguration,
    Transport,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::{BrokerAddress, BrokerConfig, MqttSourceConfig};
use crate::ingest::{Envelope, IngestHandle, Receipt, SourceTerms};
use crate::sources::{ConnectionState, StatusReporter};

/// More than the broker can ever have unacknowledged with us (packet ids are 16-bit).
const MAX_UNACKED: usize = u16::MAX as usize;

/// A configuration the client cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ClientSetupError {
    /// `broker.url` is unusable.
    #[error("broker.url: {0}")]
    Url(String),
    /// The broker's password could not be had.
    #[error("broker.password: {0}")]
    Password(String),
    /// A TLS file could not be read.
    #[error("cannot read {path}: {source}")]
    TlsFile {
        /// Which file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Builds the rumqttc options from the config.
pub fn options(broker: &BrokerConfig, source: &MqttSourceConfig) -> Result<MqttOptions, ClientSetupError> {
    let url = broker.url.as_deref().unwrap_or_default();
    let addr = BrokerAddress::parse(url).map_err(ClientSetupError::Url)?;
    let mut opts = MqttOptions::new(source.client_id.clone(), addr.host, addr.port);
    opts.set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(source.keep_alive_secs))
        .set_max_packet_size(source.read_limit(), source.read_limit());
    if let Some(user) = &broker.username {
        let password = broker.password.resolve().map_err(|e| ClientSetupError::Password(e.to_string()))?;
        opts.set_credentials(user.clone(), password);
    }
    if addr.tls {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|source| ClientSetupError::TlsFile { path: p.display().to_string(), source })
        };
        let tls = match &broker.ca_file {
            None => TlsConfiguration::default(),
            Some(ca) => {
                let client_auth = match (&broker.client_cert_file, &broker.client_key_file) {
                    (Some(cert), Some(key)) => Some((read(cert)?, read(key)?)),
                    _ => None,
                };
                TlsConfiguration::Simple { ca: read(ca)?, alpn: None, client_auth }
            }
        };
        opts.set_transport(Transport::Tls(tls));
    }
    Ok(opts)
}

/// What to subscribe to, and the largest payload processed (a larger one is kept truncated).
pub struct Feed {
    /// Topic filters, at QoS 1.
    pub topics: Vec<String>,
    /// What payloads may carry. The publisher is bound by topic: the broker authenticated it, and
    /// its ACL binds the topic's device level to it.
    pub terms: SourceTerms,
}

/// Runs the subscription until `shutdown`, reconnecting with backoff; then acknowledges what is
/// stored and disconnects.
pub async fn run(
    opts: MqttOptions,
    feed: Feed,
    ingest: IngestHandle,
    status: StatusReporter,
    shutdown: CancellationToken,
) {
    let (client, mut eventloop) = AsyncClient::new(opts, MAX_UNACKED);
    let (ack_tx, ack_rx) = mpsc::channel::<(Receipt, Publish)>(MAX_UNACKED);
    let acker = tokio::spawn(acknowledge(client.clone(), ack_rx));
    poll(&client, &mut eventloop, &feed, &ingest, &ack_tx, &status, &shutdown).await;

    // Drain: let the acknowledger finish, then keep the event loop turning so the acks leave.
    drop(ack_tx);
    let flush = async {
        let _ = acker.await;
        let _ = client.disconnect().await;
        while let Ok(event) = eventloop.poll().await {
            if let Event::Outgoing(rumqttc::Outgoing::Disconnect) = event {
                break;
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), flush).await.is_err() {
        tracing::warn!("MQTT source did not drain within 5 s; the broker will redeliver what was not acknowledged");
    }
    status.set(ConnectionState::Stopped);
}

async fn poll(
    client: &AsyncClient,
    eventloop: &mut EventLoop,
    feed: &Feed,
    ingest: &IngestHandle,
    ack_tx: &mpsc::Sender<(Receipt, Publish)>,
    status: &StatusReporter,
    shutdown: &CancellationToken,
) {
    let mut backoff = Duration::from_millis(250);
    let mut heartbeat = tokio::time::interval(crate::sources::HEARTBEAT);
    loop {
        let event = tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = heartbeat.tick() => {
                status.tick();
                continue;
            }
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                backoff = Duration::from_millis(250);
                status.set(ConnectionState::Connected);
                let filters = feed.topics.iter().map(|t| rumqttc::SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
                if let Err(e) = client.try_subscribe_many(filters) {
                    tracing::error!(error = %e, "could not queue the subscription");
                }
            }
            Ok(Event::Incoming(Incoming::SubAck(suback))) => {
                let granted =
                    suback.return_codes.iter().filter(|c| matches!(c, SubscribeReasonCode::Success(_))).count();
                if granted < feed.topics.len() {
                    tracing::error!(granted, requested = feed.topics.len(), "the broker refused topic filters");
                }
                status.set(ConnectionState::Subscribed { granted, requested: feed.topics.len() });
            }
            Ok(Event::Incoming(Incoming::Publish(publish))) => {
                let envelope = Envelope::received(
                    &feed.terms,
                    publish.topic.clone(),
                    status.clock().now(),
                    publish.payload.clone(),
                );
                let receipt = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = ingest.submit(envelope) => match r {
                        Ok(r) => r,
                        Err(_) => return,
                    },
                };
                if publish.qos != QoS::AtMostOnce && ack_tx.send((receipt, publish)).await.is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                status.set(ConnectionState::Reconnecting {
                    reason: e.to_string(),
                    retry_in_ms: backoff.as_millis() as u64,
                });
                // Keep beating while waiting, so the board shows why (not just "stale").
                let until = tokio::time::Instant::now() + backoff;
                while tokio::time::Instant::now() < until {
                    let step = (until - tokio::time::Instant::now()).min(crate::sources::HEARTBEAT);
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(step) => status.tick(),
                    }
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Acknowledges each PUBLISH, in order, once it is stored.
async fn acknowledge(client: AsyncClient, mut rx: mpsc::Receiver<(Receipt, Publish)>) {
    while let Some((receipt, publish)) = rx.recv().await {
        if receipt.stored().await.is_err() {
            // Not stored: never acknowledge; the broker redelivers after reconnect.
            return;
        }
        if client.ack(&publish).await.is_err() {
            return;
        }
    }
}
