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
    /// A refusal of this event that a retry will not change (4xx with an OperationOutcome, HL7 AE).
    Permanent(String),
    /// The EHR refuses Vigil itself, not this event (credentials, permissions, a wrong endpoint, a
    /// message type or version it does not take): nothing is dead-lettered; delivery pauses, as a
    /// mode for biomed/IT, until the configuration is fixed.
    Configuration(String),
}

/// The largest response body read from an EHR or a token endpoint: a FHIR transaction response for
/// a batch is a few KiB; anything near this is a misbehaving peer.
pub const MAX_BODY: usize = 1 << 20;

/// Reads a response body up to `limit` bytes, refusing (without reading on) one that is larger.
pub async fn bounded_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    if let Some(len) = response.content_length()
        && len > limit as u64
    {
        return Err(format!("the answer's body is {len} bytes, over the {limit}-byte bound"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| format!("reading the answer: {e}"))? {
        if body.len() + chunk.len() > limit {
            return Err(format!("the answer's body is over the {limit}-byte bound"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
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
