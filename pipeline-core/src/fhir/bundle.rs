//! The transaction Bundle that carries clinical events to a FHIR server: for each event its Device,
//! its Observations and (for a report) its DiagnosticReport, each created conditionally on its
//! identifier, linked by `urn:uuid` full URLs.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{PatientRef, device, diagnostic_report, label_test_data, observation};
use crate::config::EhrEnvironment;
use crate::model::DeviceIdentity;
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
    /// When it is sent (a DiagnosticReport's `issued`).
    pub issued: DateTime<Utc>,
    /// A test EHR's resources are all labelled `HTEST`.
    pub environment: EhrEnvironment,
    /// The event's device, as the EHR is told of it.
    pub device: &'a DeviceIdentity,
}

/// The resources of one event (its Observations, and its DiagnosticReport last), with their
/// `urn:uuid` full URLs. `device` is the reference to the event's Device.
pub fn event_resources(envelope: &EventEnvelope<'_>, device: &Value) -> Vec<(String, Value)> {
    let uuid = || format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let subject = envelope.patient.reference();
    let mut out = Vec::new();
    match &envelope.event.content {
        EventContent::Single { observation: obs } => {
            out.push((uuid(), observation(obs, &envelope.hash, &subject, device)));
        }
        EventContent::Report { title, effective, observations } => {
            let mut results = Vec::new();
            for (i, obs) in observations.iter().enumerate() {
                let url = uuid();
                results.push(json!({"reference": url}));
                out.push((url, observation(obs, &format!("{}-{i}", envelope.hash), &subject, device)));
            }
            out.push((uuid(), diagnostic_report(title, effective, &envelope.hash, &subject, results, envelope.issued)));
        }
    }
    if envelope.environment == EhrEnvironment::Test {
        for (_, resource) in &mut out {
            label_test_data(resource);
        }
    }
    out
}

/// The conditional-create query for a resource: its first identifier.
fn if_none_exist(resource: &Value) -> Option<String> {
    let id = resource["identifier"].get(0)?;
    // The query part of a URL: each escaped part is URL-encoded too; the `|` between them is FHIR's.
    let part = |s: &str| url::form_urlencoded::byte_serialize(super::search_escape(s).as_bytes()).collect::<String>();
    Some(format!("identifier={}|{}", part(id["system"].as_str()?), part(id["value"].as_str()?)))
}

/// A transaction Bundle for several events. Returns the Bundle and, for each event, the range of
/// entry indices that belong to it (to map the response back).
pub fn transaction(events: &[EventEnvelope<'_>]) -> (Value, Vec<std::ops::Range<usize>>) {
    let mut entries = Vec::new();
    let mut ranges = Vec::new();
    // One Device entry per device in the Bundle, however many of its events the Bundle carries.
    let mut devices: HashMap<&str, String> = HashMap::new();
    for envelope in events {
        let start = entries.len();
        let device_id = envelope.device.id.as_str();
        let mut resources = Vec::new();
        let device_url = match devices.get(device_id) {
            Some(url) => url.clone(),
            None => {
                let url = format!("urn:uuid:{}", uuid::Uuid::new_v4());
                devices.insert(device_id, url.clone());
                let mut resource = device(envelope.device);
                if envelope.environment == EhrEnvironment::Test {
                    label_test_data(&mut resource);
                }
                resources.push((url.clone(), resource));
                url
            }
        };
        resources.extend(event_resources(envelope, &json!({"reference": device_url})));
        for (full_url, resource) in resources {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eui64_is_written_dashed_and_typed_sysid_as_the_phd_ig_says() {
        let eui64 = |id: &str| DeviceIdentity { id: id.into(), eui64: true, ..Default::default() };
        let id = super::super::device_identifier(&eui64("001bc50c00000001"));
        assert_eq!(id["value"], "00-1B-C5-0C-00-00-00-01");
        assert_eq!(id["system"], super::super::EUI64_SYSTEM);
        assert_eq!(id["type"]["coding"][0]["code"], "SYSID");
        let colons = super::super::device_identifier(&eui64("00:1B:C5:0C:00:00:00:01"));
        assert_eq!(colons["value"], "00-1B-C5-0C-00-00-00-01");
        // Sixteen digits are a serial unless the profile says EUI-64.
        let serial = DeviceIdentity { id: "1234567890123456".into(), ..Default::default() };
        assert_eq!(super::super::device_identifier(&serial)["system"], super::super::DEVICE_SERIAL_SYSTEM);
    }

    #[test]
    fn two_vendors_serial_sn_1_are_two_devices() {
        let of = |profile: &str| DeviceIdentity {
            id: "SN-1".into(),
            profile_id: Some(profile.into()),
            manufacturer: Some(format!("{profile} Inc.")),
            model: Some("M1".into()),
            ..Default::default()
        };
        let (a, b) = (super::super::device(&of("acme-ox100")), super::super::device(&of("medi-mx700")));
        assert_ne!(a["identifier"], b["identifier"]);
        assert_ne!(if_none_exist(&a), if_none_exist(&b), "the conditional create finds each its own");
        assert_eq!((&a["serialNumber"], &a["deviceName"][0]["name"]), (&json!("SN-1"), &json!("M1")));
    }

    #[test]
    fn search_values_are_escaped_so_a_comma_is_not_an_or() {
        assert_eq!(super::super::search_token("urn:mrn", "MRN-1,2"), "urn:mrn|MRN-1\\,2");
        assert_eq!(super::super::search_token("urn:a|b", "x$y\\z"), "urn:a\\|b|x\\$y\\\\z");
        let device = json!({"identifier": [{"system": "urn:sn", "value": "SN 1,2&x"}]});
        assert_eq!(if_none_exist(&device).unwrap(), "identifier=urn%3Asn|SN+1%5C%2C2%26x");
    }

    #[test]
    fn a_report_carries_no_physician_category() {
        let event = ClinicalEvent {
            patient_id: 1,
            device_id: "MX-1".into(),
            origin: "manual".into(),
            content: EventContent::Report {
                title: "Spot check".into(),
                effective: crate::model::event::Effective::At { at: Utc::now() },
                observations: Vec::new(),
            },
        };
        let patient = PatientRef { fhir_id: Some("p1".into()), system: "urn:mrn".into(), value: "M1".into() };
        let envelope = EventEnvelope {
            event: &event,
            hash: "ab".into(),
            patient: &patient,
            issued: Utc::now(),
            environment: EhrEnvironment::Production,
            device: &DeviceIdentity { id: "MX-1".into(), ..Default::default() },
        };
        let resources = event_resources(&envelope, &json!({"reference": "Device/1"}));
        let report = &resources.last().unwrap().1;
        assert_eq!(report["resourceType"], "DiagnosticReport");
        assert!(report.get("category").is_none(), "{report}");
    }
}
