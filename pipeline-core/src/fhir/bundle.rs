//! The transaction Bundle that carries clinical events to a FHIR server: for each event its Device,
//! its Observations and (for a report) its DiagnosticReport, each created conditionally on its
//! identifier, linked by `urn:uuid` full URLs.

use chrono::Utc;
use serde_json::{Value, json};

use super::{PatientRef, device, diagnostic_report, observation};
use crate::model::event::{ClinicalEvent, EventContent};

/// One event ready to go: its identity and its patient as the EHR knows them.
#[derive(Debug, Clone)]
pub struct EventEnvelope<'a> {
    /// The event.
    pub event: &'a ClinicalEvent,
    /// Its content hash, hex.
    pub hash: String,
    /// Its patient.
    pub patient: &'a PatientRef,
}

/// The resources of one event, in the order they go into a Bundle (Device first).
pub fn event_resources(envelope: &EventEnvelope<'_>) -> Vec<(String, Value)> {
    let uuid = || format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let subject = envelope.patient.reference();
    let device_url = uuid();
    let device_ref = json!({"reference": device_url});
    let mut out = vec![(device_url, device(&envelope.event.device_id))];
    match &envelope.event.content {
        EventContent::Single { observation: obs } => {
            out.push((uuid(), observation(obs, &envelope.hash, &subject, &device_ref)));
        }
        EventContent::Report { title, effective, observations } => {
            let mut results = Vec::new();
            for (i, obs) in observations.iter().enumerate() {
                let url = uuid();
                results.push(json!({"reference": url}));
                out.push((url, observation(obs, &format!("{}-{i}", envelope.hash), &subject, &device_ref)));
            }
            out.push((uuid(), diagnostic_report(title, effective, &envelope.hash, &subject, results, Utc::now())));
        }
    }
    out
}

/// The conditional-create query for a resource: its first identifier.
fn if_none_exist(resource: &Value) -> Option<String> {
    let id = resource["identifier"].get(0)?;
    Some(format!("identifier={}|{}", id["system"].as_str()?, id["value"].as_str()?))
}

/// A transaction Bundle for several events. Returns the Bundle and, for each event, the range of
/// entry indices that belong to it (to map the response back).
pub fn transaction(events: &[EventEnvelope<'_>]) -> (Value, Vec<std::ops::Range<usize>>) {
    let mut entries = Vec::new();
    let mut ranges = Vec::new();
    for envelope in events {
        let start = entries.len();
        for (full_url, resource) in event_resources(envelope) {
            let resource_type = resource["resourceType"].as_str().unwrap_or_default().to_string();
            let mut request = json!({"method": "POST", "url": resource_type});
            if let Some(q) = if_none_exist(&resource) {
                request["ifNoneExist"] = json!(q);
            }
            entries.push(json!({"fullUrl": full_url, "resource": resource, "request": request}));
        }
        ranges.push(start..entries.len());
    }
    (json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}), ranges)
}
