//! The library's facade, for both faces: the `vigil` CLI and the desktop console.
//!
//! - [`Admin`] holds every operator action that needs no running pipeline (register, pair, consent,
//!   acknowledge, silence, release, requeue, events, registry import) and the list and show queries.
//!   The CLI opens it on a site's store; the console builds it over its running pipeline.
//! - [`Console`] wraps an [`Admin`] and adds the live parts: board, live values, charts, settings.
//!
//! Invariant: every rule an operator action obeys lives in [`Admin`], so both faces refuse and
//! accept the same input; every action names its [`Actor`] and is audited in the same transaction
//! as its change; errors are an [`ApiError`] with a stable [`ErrorCode`], never SQL or a stack.

mod actor;
mod admin;
pub mod chart;
mod console;
pub mod dto;
mod error;
mod profile_trial;

pub use actor::{Actor, SignedInBy};
pub use admin::{
    Admin, BREAK_GLASS_MINUTES, CredentialView, EventRequest, IssuedSecret, MAX_SILENCE_MINUTES, MAX_TOKEN_HOURS,
    Pairing,
};
pub use console::{Console, ConsoleOptions, STALE_AFTER_SECS};
pub use error::{ApiError, ApiResult, ErrorCode};
pub use profile_trial::{ProfileTrial, TrialProblem, TrialReading, try_profile};

pub use crate::accounts::Role;
pub use crate::clock::{SharedClock, system as system_clock};
pub use crate::demo::DemoFiles;
pub use crate::secrets::restrict_umask;

/// Where a new demo site's endpoints listen by default.
pub mod demo_listen {
    pub use crate::demo::{DEFAULT_MQTT_LISTEN as MQTT, DEFAULT_STATUS_LISTEN as STATUS};
}

#[cfg(test)]
mod tests;
