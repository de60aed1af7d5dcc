//! The HL7 v2 sink: one ORU^R01 per event over one reused MLLP connection. MSH-10 is derived from
//! the event's content hash, so a retry carries the same control id and the receiver can
//! de-duplicate.

use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::ack::Refusal;
use super::{MllpClient, MllpTls, OruContext, build_oru_r01};
use crate::clock::SharedClock;
use crate::config::EhrEnvironment;
use crate::sinks::{Outcome, Sink};
use crate::store::OutboxItem;

/// Who we are and whom we send to (MSH-3..6), and where.
#[derive(Debug, Clone)]
pub struct Hl7v2Settings {
    /// `host:port` of the receiver's MLLP listener.
    pub address: String,
    /// TLS to it, when configured.
    pub tls: Option<MllpTls>,
    /// MSH-3.
    pub sending_application: String,
    /// MSH-4.
    pub sending_facility: String,
    /// MSH-5.
    pub receiving_application: String,
    /// MSH-6.
    pub receiving_facility: String,
    /// Connect and reply timeout.
    pub timeout: Duration,
    /// MSH-11: production or test.
    pub environment: EhrEnvironment,
}

/// An EHR (or interface engine) that takes HL7 v2 over MLLP.
pub struct Hl7v2Sink {
    settings: Hl7v2Settings,
    client: Mutex<MllpClient>,
    clock: SharedClock,
}

impl Hl7v2Sink {
    /// A sink; it connects on the first delivery.
    pub fn new(settings: Hl7v2Settings, clock: SharedClock) -> Hl7v2Sink {
        let client = MllpClient::new(settings.address.clone(), settings.timeout, settings.timeout)
            .with_tls(settings.tls.clone());
        Hl7v2Sink { settings, client: Mutex::new(client), clock }
    }

    fn context(&self, item: &OutboxItem) -> OruContext {
        let s = &self.settings;
        OruContext {
            // 20 characters: the v2.5 length of MSH-10, and stable across retries.
            control_id: item.hash[..20].to_uppercase(),
            sending_application: s.sending_application.clone(),
            sending_facility: s.sending_facility.clone(),
            receiving_application: s.receiving_application.clone(),
            receiving_facility: s.receiving_facility.clone(),
            created_at: self.clock.now(),
            patient_id_value: item.patient.value.clone(),
            patient_id_system: item.patient.system.clone(),
            patient_location: None,
            device_id: item.device.id.clone(),
            device_eui64: item.device.eui64,
            order_number: item.hash.clone(),
            environment: s.environment,
        }
    }
}

#[async_trait]
impl Sink for Hl7v2Sink {
    fn name(&self) -> &str {
        "hl7v2"
    }

    async fn probe(&self) -> Result<String, String> {
        let address = &self.settings.address;
        match tokio::time::timeout(self.settings.timeout, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(_)) => Ok(format!("MLLP receiver at {address} accepts connections")),
            Ok(Err(e)) => Err(format!("MLLP receiver at {address}: {e}")),
            Err(_) => Err(format!("MLLP receiver at {address}: no answer within {:?}", self.settings.timeout)),
        }
    }

    async fn deliver(&self, items: &[OutboxItem]) -> Vec<Outcome> {
        let mut client = self.client.lock().await;
        let mut outcomes = Vec::with_capacity(items.len());
        for item in items {
            let context = self.context(item);
            let message = match build_oru_r01(&context, &item.event) {
                Ok(m) => m,
                Err(e) => {
                    outcomes.push(Outcome::Permanent(format!("cannot be sent as ORU^R01: {e}")));
                    continue;
                }
            };
            let outcome = match client.send(&message).await {
                Ok(ack) => {
                    let why = || {
                        let reason = ack.error.clone().or(ack.text.clone()).unwrap_or_else(|| "no reason given".into());
                        format!("{}: {reason}", ack.code)
                    };
                    match ack.refusal() {
                        None => Outcome::Delivered(Some(format!("MSH-10 {}", context.control_id))),
                        Some(Refusal::Message) => Outcome::Permanent(why()),
                        Some(Refusal::Configuration) => Outcome::Configuration(why()),
                        Some(Refusal::Transient) => Outcome::Retryable(why()),
                    }
                }
                Err(e) if e.is_retryable() => Outcome::Retryable(e.to_string()),
                Err(e) => Outcome::Permanent(e.to_string()),
            };
            // Keep the per-patient order: after a retryable failure, later events wait too.
            let stop = matches!(outcome, Outcome::Retryable(_) | Outcome::Configuration(_));
            outcomes.push(outcome);
            if stop {
                let error = "an earlier event in this batch must be delivered first".to_string();
                outcomes.extend(std::iter::repeat_n(Outcome::Retryable(error), items.len() - outcomes.len()));
                break;
            }
        }
        outcomes
    }
}
