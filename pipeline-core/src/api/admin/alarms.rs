//! Acknowledging and silencing alarms.

use chrono::{DateTime, Utc};

use super::{Admin, reason};
use crate::api::actor::Actor;
use crate::api::error::{ApiError, ApiResult, ErrorCode};

/// The longest an alarm's re-notification may be held back, in minutes.
pub const MAX_SILENCE_MINUTES: u32 = 60;

impl Admin {
    /// Acknowledges an alarm, with a reason.
    pub async fn ack_alarm(&self, actor: &Actor, id: i64, why: &str) -> ApiResult<()> {
        Ok(self.store.ack_alarm(id, actor.name(), reason(why)?).await?)
    }

    /// Holds back an active alarm's re-notification for 1 to 60 minutes; returns until when.
    pub async fn silence_alarm(&self, actor: &Actor, id: i64, why: &str, minutes: u32) -> ApiResult<DateTime<Utc>> {
        let why = reason(why)?;
        if !(1..=MAX_SILENCE_MINUTES).contains(&minutes) {
            return Err(ApiError::new(
                ErrorCode::InvalidInput,
                format!("silence for 1 to {MAX_SILENCE_MINUTES} minutes, not {minutes}"),
            ));
        }
        let until = self.clock.now() + chrono::Duration::minutes(i64::from(minutes));
        self.store.silence_alarm(id, until, actor.name(), why).await?;
        Ok(until)
    }
}
