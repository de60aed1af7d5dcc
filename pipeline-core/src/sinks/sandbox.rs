//! The sandbox sink: the default when no EHR is configured, and the only sink replay may use. It
//! keeps the exact transaction Bundle that would have gone to an EHR, browsable with
//! `vigil show sandbox`.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Outcome, Sink};
use crate::clock::SharedClock;
use crate::config::EhrEnvironment;
use crate::fhir::bundle::{EventEnvelope, transaction};
use crate::store::{OutboxItem, Store};

/// Keeps what would have been sent in the store.
pub struct SandboxSink {
    store: Arc<dyn Store>,
    environment: EhrEnvironment,
    clock: SharedClock,
}

impl SandboxSink {
    /// A sandbox writing into `store`, building what would go to an EHR of this environment.
    pub fn new(store: Arc<dyn Store>, environment: EhrEnvironment, clock: SharedClock) -> SandboxSink {
        SandboxSink { store, environment, clock }
    }
}

#[async_trait]
impl Sink for SandboxSink {
    fn name(&self) -> &str {
        "sandbox"
    }

    async fn probe(&self) -> Result<String, String> {
        Ok("sandbox: events are kept on this workstation, nothing is sent to an EHR".into())
    }

    async fn deliver(&self, items: &[OutboxItem]) -> Vec<Outcome> {
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let envelope = EventEnvelope {
                event: &item.event,
                hash: item.hash.clone(),
                patient: &item.patient,
                issued: self.clock.now(),
                environment: self.environment,
                device: &item.device,
            };
            let (bundle, _) = transaction(&[envelope]);
            out.push(match self.store.sandbox_record(item.id, &bundle.to_string()).await {
                Ok(()) => Outcome::Delivered(Some(format!("sandbox/{}", item.id))),
                Err(e) => Outcome::Retryable(e.to_string()),
            });
        }
        out
    }
}
