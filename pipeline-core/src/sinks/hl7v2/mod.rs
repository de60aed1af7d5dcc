//! HL7 v2 sink: clinical events out as IHE PCD-01 ORU^R01 (v2.6) messages over MLLP.
//!
//! Invariant: a message counts as delivered only when an ACK whose MSA-2 equals its MSH-10 came back
//! on the connection it was sent on; any other outcome drops the connection, so a late reply can never
//! be taken for the acknowledgement of a later message.
//!
//! # Layout
//! - `oru`: [`build_oru_r01`], a plain function from a [`ClinicalEvent`](crate::model::event::ClinicalEvent)
//!   and its [`OruContext`] to the encoded message. It refuses demo data: test data must never
//!   reach an EHR.
//! - `ack`: [`parse_ack`], reading MSA and ERR from a receiver's reply into an [`Ack`].
//! - `mllp`: [`MllpClient`], one reused TCP connection, one framed message and one framed reply at a
//!   time. [`MllpError::is_retryable`] tells the outbox whether to send the same message (same
//!   MSH-10) again; AE and AR come back as `Ok(Ack)` for the outbox to dead-letter.

mod ack;
mod mllp;
mod oru;

pub use ack::{Ack, AckCode, AckError, Refusal, parse_ack};
pub use mllp::{MllpClient, MllpError, MllpTls};
pub use oru::{OruContext, OruError, build_oru_r01};

mod sink;
pub use sink::{Hl7v2Settings, Hl7v2Sink};
