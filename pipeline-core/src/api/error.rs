//! The facade's errors: a stable code both faces branch on (the console's UI, the CLI's exit code)
//! and words an operator can act on, never SQL or a stack.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::clinical::{ProvisionError, RequeueError};
use crate::store::StoreError;

/// What kind of failure: the UI branches on it, the CLI maps it to its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
#[ts(export, rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request itself is wrong: a missing operator or reason, an out-of-range value.
    InvalidInput,
    /// The site's configuration is unusable.
    InvalidConfig,
    /// No device profile of that id is loaded.
    UnknownProfile,
    /// No metric with that code.
    UnknownSeries,
    /// The thing named does not exist.
    NotFound,
    /// No patient with that identifier (locally, or at the EHR).
    PatientNotFound,
    /// The patient's identity has not been verified.
    UnverifiedPatient,
    /// The EHR knows several patients with that identifier.
    AmbiguousPatient,
    /// A rule refused the action (already acknowledged, no open pairing, ...).
    Refused,
    /// The event was kept, held, because validation or consent failed.
    Held,
    /// The EHR did not answer; try again.
    EhrUnreachable,
    /// The local store failed; try again.
    Store,
    /// The pipeline could not start.
    StartFailed,
    /// The console is restarting with new settings; try again in a moment.
    Restarting,
    /// The account's roles do not allow the action.
    Forbidden,
    /// Nobody is signed in, the session is locked, or the token expired.
    Unauthenticated,
    /// The name and password do not match, or the account must wait after failed sign-ins.
    SignInFailed,
}

impl ErrorCode {
    /// The `vigil` binary's exit code: 2 invalid input or config, 3 not found, 6 refused by a rule,
    /// 7 store or EHR unavailable (retryable), 1 anything else. (4 and 5 are verdicts, not errors:
    /// a tampered audit log, a critical mode.)
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorCode::InvalidInput
            | ErrorCode::InvalidConfig
            | ErrorCode::UnknownProfile
            | ErrorCode::UnknownSeries => 2,
            ErrorCode::NotFound | ErrorCode::PatientNotFound => 3,
            ErrorCode::Refused
            | ErrorCode::UnverifiedPatient
            | ErrorCode::AmbiguousPatient
            | ErrorCode::Held
            | ErrorCode::Forbidden
            | ErrorCode::Unauthenticated
            | ErrorCode::SignInFailed => 6,
            ErrorCode::Store | ErrorCode::EhrUnreachable => 7,
            ErrorCode::StartFailed | ErrorCode::Restarting => 1,
        }
    }
}

/// An error from the facade: its code and what to do.
#[derive(Debug, Clone, Serialize, thiserror::Error, PartialEq, Eq, TS)]
#[error("{message}")]
#[ts(export)]
pub struct ApiError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What went wrong and what to do.
    pub message: String,
}

impl ApiError {
    /// An error of `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into() }
    }
}

/// The facade's results.
pub type ApiResult<T> = Result<T, ApiError>;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Refused(why) => ApiError::new(ErrorCode::Refused, why),
            other => {
                tracing::error!(error = %other, "store error behind an operator request");
                ApiError::new(ErrorCode::Store, "the local store failed; see the board and the log, then try again")
            }
        }
    }
}

impl From<RequeueError> for ApiError {
    fn from(e: RequeueError) -> ApiError {
        match e {
            RequeueError::NotFound(id) => ApiError::new(ErrorCode::NotFound, format!("outbox {id} does not exist")),
            RequeueError::Store(e) => e.into(),
            other => ApiError::new(ErrorCode::Refused, other.to_string()),
        }
    }
}

impl From<ProvisionError> for ApiError {
    fn from(e: ProvisionError) -> ApiError {
        match e {
            ProvisionError::Refused(why) => ApiError::new(ErrorCode::Refused, why),
            ProvisionError::Unreachable(why) => ApiError::new(ErrorCode::EhrUnreachable, why),
            ProvisionError::Store(e) => e.into(),
        }
    }
}
