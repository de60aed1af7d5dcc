//! Rule state after a restart: the windows are rebuilt from the stored readings of the live
//! horizon, then each physiological alarm the previous run left open is taken back if its condition
//! still holds (same key: no duplicate alarm, no second page) or cleared, with an audit entry, if it
//! no longer does. A condition that began while Vigil was down is raised by the next reading, as
//! any other.

use chrono::{DateTime, Utc};

use super::engine::OpenAlarm;
use super::{Engine, Observed};
use crate::model::alarm::AlarmKind;
use crate::model::codes::metric_by_code;
use crate::model::{ContentHash, Validity};
use crate::store::{ReadingQuery, Store, StoreError};

/// What a recovery did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Readings put back into windows.
    pub readings: usize,
    /// Open alarms whose condition still holds.
    pub kept: usize,
    /// Open alarms cleared because their condition no longer holds.
    pub cleared: usize,
}

/// The actor recorded for what Vigil itself does at a restart.
const ACTOR: &str = "vigil";

/// Rebuilds `engine`'s rule state from the store, as of `now`.
pub async fn recover(engine: &mut Engine, store: &dyn Store, now: DateTime<Utc>) -> Result<Recovered, StoreError> {
    let query = ReadingQuery { from: Some(now - engine.horizon()), ..ReadingQuery::default() };
    let mut readings = store.readings(&query).await?;
    readings.reverse();
    let mut done = Recovered::default();
    for r in &readings {
        let Some(metric) = metric_by_code(r.mdc_code) else { continue };
        engine.replay(&Observed {
            patient_id: r.patient_id,
            device_id: r.device_id.clone(),
            metric,
            value: r.value,
            observed_at: r.observed_at,
            validity: Validity::parse(&r.validity).unwrap_or(Validity::Questionable),
            live: false,
        });
        done.readings += 1;
    }
    for alarm in store.alarms(true, 100_000).await? {
        let open = match (alarm.kind, alarm.patient_id, alarm.mdc_code, ContentHash::from_hex(&alarm.key)) {
            (AlarmKind::Physiological, Some(patient_id), Some(mdc_code), Some(key)) => OpenAlarm {
                key,
                rule_id: alarm.rule_id.clone(),
                patient_id,
                device_id: alarm.device_id.clone(),
                mdc_code,
            },
            _ => continue,
        };
        if engine.resume(&open) {
            done.kept += 1;
            continue;
        }
        store.clear_alarm(&open.key).await?;
        store
            .audit(
                ACTOR,
                "alarm.cleared_at_restart",
                &format!("alarm {}", alarm.id),
                &format!(
                    "rule {} on device {}: the condition no longer holds in the readings stored before the restart",
                    alarm.rule_id, alarm.device_id
                ),
            )
            .await?;
        done.cleared += 1;
    }
    Ok(done)
}
