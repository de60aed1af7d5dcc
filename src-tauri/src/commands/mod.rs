//! IPC commands, one per console operation, grouped per domain. Each is one call into
//! `pipeline_core::api::Console`; errors cross as `{ code, message }`.

pub mod alarms;
pub mod board;
pub mod devices;
pub mod fleet;
pub mod live;
pub mod outbox;
pub mod quarantine;
pub mod session;
pub mod settings;

use pipeline_core::api::ApiError;

/// What every command returns.
pub type Answer<T> = Result<T, ApiError>;
