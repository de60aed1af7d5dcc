//! The rules task: fed every stored reading by the ingest writer, it raises and clears alarms and
//! queues clinical events. Alarms are recorded (latched, one per condition) and logged; the alert
//! circuit that pages people is the next step of this plane.

use std::sync::Arc;

use chrono::Utc;
use tokio::sync::mpsc;

use super::{Decision, Engine, Firing};
use crate::clinical;
use crate::config::EhrKind;
use crate::model::Validity;
use crate::model::event::{ClinicalEvent, Effective, EventContent, Observation};
use crate::rules::Observed;
use crate::store::Store;

/// Readings waiting for the rules at most; beyond it the ingest writer waits (pushback).
pub const QUEUE: usize = 65_536;

/// Runs until the ingest writer drops its sender.
pub async fn run(mut engine: Engine, store: Arc<dyn Store>, ehr: EhrKind, mut rx: mpsc::Receiver<Observed>) {
    while let Some(reading) = rx.recv().await {
        for decision in engine.observe(&reading, Utc::now()) {
            if let Err(e) = act(&decision, store.as_ref(), ehr).await {
                tracing::error!(error = %e, "could not record a rule decision");
            }
        }
    }
}

async fn act(decision: &Decision, store: &dyn Store, ehr: EhrKind) -> Result<(), crate::store::StoreError> {
    match decision {
        Decision::Cleared(key) => store.clear_alarm(key).await,
        Decision::Started(f) => {
            if f.alarm && store.raise_alarm(f).await? {
                tracing::warn!(rule = %f.rule_id, priority = f.priority.as_str(), device = %f.device_id, "alarm raised");
            }
            if f.event {
                clinical::submit(store, &event(f), ehr).await?;
            }
            Ok(())
        }
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
