//! The rules task: fed every stored reading by the ingest writer, it raises and clears alarms and
//! queues clinical events. An alarm is recorded (latched, one per condition) and handed to the
//! alert circuit, which pages people on its own thread.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::mpsc;

use super::{Decision, Engine, Firing};
use crate::alerts::{AlertHandle, Notice};
use crate::clinical;
use crate::config::EhrKind;
use crate::model::Validity;
use crate::model::event::{ClinicalEvent, Effective, EventContent, Observation};
use crate::rules::Observed;
use crate::store::Store;

/// Readings waiting for the rules at most; beyond it the ingest writer waits (pushback).
pub const QUEUE: usize = 65_536;

/// Runs until the ingest writer drops its sender.
pub async fn run(
    mut engine: Engine,
    store: Arc<dyn Store>,
    ehr: EhrKind,
    alerts: Option<AlertHandle>,
    mut rx: mpsc::Receiver<Observed>,
) {
    while let Some(reading) = rx.recv().await {
        for decision in engine.observe(&reading, Utc::now()) {
            if let Err(e) = act(&decision, store.as_ref(), ehr, alerts.as_ref()).await {
                tracing::error!(error = %e, "could not record a rule decision");
            }
        }
    }
}

async fn act(
    decision: &Decision,
    store: &dyn Store,
    ehr: EhrKind,
    alerts: Option<&AlertHandle>,
) -> Result<(), crate::store::StoreError> {
    match decision {
        Decision::Cleared(key) => store.clear_alarm(key).await,
        Decision::Started(f) => {
            // The page first: neither the alarm row's commit nor the event's validation may delay
            // it. The engine raises each condition once, and the row is keyed by the same hash.
            if f.alarm {
                if let Some(alerts) = alerts {
                    alerts.raise(notice(f)).await;
                }
                if store.raise_alarm(f).await?.is_some() {
                    tracing::warn!(rule = %f.rule_id, priority = f.priority.as_str(), device = %f.device_id, "alarm raised");
                }
            }
            if f.event {
                clinical::submit(store, &event(f), ehr).await?;
            }
            Ok(())
        }
    }
}

fn notice(f: &Firing) -> Notice {
    Notice {
        alarm_key: f.key.to_hex(),
        rule_id: f.rule_id.clone(),
        priority: f.priority.as_str().into(),
        kind: "physiological",
        device_id: f.device_id.clone(),
        patient_id: f.patient_id,
        mdc_code: f.metric.mdc_code,
        value: f.value,
        since: f.since,
        escalated: false,
        escalate_at: f.escalate_after.map(|d| Utc::now() + d),
    }
}

/// The clinical event of a condition: the observation that completed it.
fn event(f: &Firing) -> ClinicalEvent {
    ClinicalEvent {
        patient_id: f.patient_id,
        device_id: f.device_id.clone(),
        origin: format!("rule:{}@{}", f.rule_id, f.rule_version),
        content: EventContent::Single {
            observation: Observation::Vital {
                metric: f.metric,
                value: f.value,
                effective: Effective::At { at: f.at },
                validity: Validity::Valid,
            },
        },
    }
}
