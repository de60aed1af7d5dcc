//! Acknowledging and silencing alarms.

use chrono::{DateTime, Utc};

use super::{Admin, reason};
use crate::accounts::Action;
use crate::api::actor::Actor;
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::store::SilenceRequest;

/// The longest an alarm's re-notification may be held back, in minutes.
pub const MAX_SILENCE_MINUTES: u32 = 60;

impl Admin {
    /// Acknowledges an alarm, with a reason.
    pub async fn ack_alarm(&self, actor: &Actor, id: i64, why: &str) -> ApiResult<()> {
        self.permit(actor, Action::AckAlarm).await?;
        Ok(self.store.ack_alarm(id, actor.name(), reason(why)?).await?)
    }

    /// Acknowledges several infrastructure alarms (technical, about no patient) with one reason.
    /// Patient-level alarms (no valid signal, a device offline at a bed) are refused: each is
    /// acknowledged at its bed, one at a time. Nothing is acknowledged when any id is refused.
    pub async fn ack_alarms(&self, actor: &Actor, ids: &[i64], why: &str) -> ApiResult<u32> {
        self.permit(actor, Action::AckAlarm).await?;
        let why = reason(why)?;
        let active = self.store.alarms(true, 10_000).await?;
        for id in ids {
            match active.iter().find(|a| a.id == *id) {
                None => {
                    return Err(ApiError::new(
                        ErrorCode::NotFound,
                        format!("alarm {id} is not active (cleared, or no such alarm)"),
                    ));
                }
                Some(a) if !bulk_ackable(a) => {
                    return Err(ApiError::new(
                        ErrorCode::Refused,
                        format!("alarm {id} ({}) is about a patient: acknowledge it on its own, at its bed", a.rule_id),
                    ));
                }
                Some(_) => {}
            }
        }
        for id in ids {
            self.store.ack_alarm(*id, actor.name(), why).await?;
        }
        Ok(ids.len() as u32)
    }

    /// Silences an active alarm's escalation for 1 to 60 minutes, within the site's limits per
    /// alarm (`[alerts] max_silences`, `max_silence_minutes_total`); returns until when.
    pub async fn silence_alarm(&self, actor: &Actor, id: i64, why: &str, minutes: u32) -> ApiResult<DateTime<Utc>> {
        self.permit(actor, Action::SilenceAlarm).await?;
        let why = reason(why)?;
        if !(1..=MAX_SILENCE_MINUTES).contains(&minutes) {
            return Err(ApiError::new(
                ErrorCode::InvalidInput,
                format!("silence for 1 to {MAX_SILENCE_MINUTES} minutes, not {minutes}"),
            ));
        }
        let until = self.clock.now() + chrono::Duration::minutes(i64::from(minutes));
        let limits = &self.config.alerts;
        let silence = SilenceRequest {
            until,
            minutes,
            max_silences: limits.max_silences,
            max_total_minutes: limits.max_silence_minutes_total,
        };
        self.store.silence_alarm(id, &silence, actor.name(), why).await?;
        Ok(until)
    }
}

/// An infrastructure alarm (technical, about no patient), not yet acknowledged: one of many that
/// one reason may acknowledge together.
pub fn bulk_ackable(alarm: &crate::store::AlarmEntry) -> bool {
    alarm.kind == crate::model::alarm::AlarmKind::Technical && alarm.patient_id.is_none() && alarm.acked_at.is_none()
}
