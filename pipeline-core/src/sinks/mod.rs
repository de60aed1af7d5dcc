//! Sinks: where clinical events go. Each sink answers, per event, whether the EHR confirmed it,
//! failed in a way worth retrying, or refused it for good; the outbox acts on that.

pub mod fhir;
pub mod hl7v2;
pub mod sandbox;
pub mod smart;

use async_trait::async_trait;

use crate::store::OutboxItem;

/// How one event's delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Confirmed; with where the EHR put it, if it said.
    Delivered(Option<String>),
    /// Network, timeout, 5xx, 429, an expired token: try again later.
    Retryable(String),
    /// A refusal that a retry will not change (4xx with an OperationOutcome, HL7 AE/AR).
    Permanent(String),
}

/// An EHR adapter (or the sandbox).
#[async_trait]
pub trait Sink: Send + Sync + 'static {
    /// A name for logs and the board.
    fn name(&self) -> &str;
    /// Delivers the events; one outcome per item, in the same order.
    async fn deliver(&self, items: &[OutboxItem]) -> Vec<Outcome>;
    /// Checks that the EHR answers, without sending anything clinical: what it said, or why not.
    /// The outbox probes while idle, so the board shows an unreachable EHR before an event fails.
    async fn probe(&self) -> Result<String, String>;
}
