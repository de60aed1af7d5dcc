//! The audit trail as FHIR R4: a Bundle (type `collection`) with one AuditEvent per entry and the
//! Device that stands for this Vigil, so every `source.observer` resolves inside the Bundle.
//!
//! The event types are DICOM's audit codes, as IHE BALP and ATNA use them; Vigil's own action name
//! travels as the subtype. An entry about a patient names the patient by identifier (the export is
//! PHI: only an administrator may make it, and making it is audited).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::AuditEntry;

const DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// Vigil's action names, as the subtype's system.
const VIGIL_ACTIONS: &str = "urn:vigil:audit-action";

/// Who an entry's subject is, when it is a patient or a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A patient, by identifier.
    Patient {
        /// The identifier's system.
        system: String,
        /// Its value.
        value: String,
    },
    /// A device, by its id.
    Device(String),
    /// Something else (an alarm, an outbox row, the store).
    Other,
}

/// The DICOM event type, FHIR action code and outcome of a Vigil action.
fn classify(action: &str) -> (&'static str, &'static str, &'static str, &'static str) {
    let (code, display, verb) = match action {
        a if a.starts_with("account.sign_in") || a == "account.sign_out" || a == "console.lock" => {
            ("110114", "User Authentication", "E")
        }
        "access.refused" | "account.break_glass" => ("110113", "Security Alert", "E"),
        a if a.starts_with("audit.") => ("110101", "Audit Log Used", "R"),
        "store.backup" | "ehr.deliver" | "ehr.refuse" => ("110106", "Export", "E"),
        "phi.view" => ("110110", "Patient Record", "R"),
        a if a.starts_with("patient.") || a.starts_with("pairing.") || a.starts_with("consent.") => {
            ("110110", "Patient Record", if a.ends_with("register") || a.ends_with("open") { "C" } else { "U" })
        }
        a if a.starts_with("quarantine.") || a.starts_with("held.") || a.starts_with("event.") => {
            ("110110", "Patient Record", "U")
        }
        a if a.starts_with("retention.") => ("110110", "Patient Record", "D"),
        _ => ("110100", "Application Activity", "E"),
    };
    let outcome = match action {
        "access.refused" | "account.sign_in_failed" | "ehr.refuse" => "4",
        _ => "0",
    };
    (code, display, verb, outcome)
}

/// The Bundle of `entries`, observed by the Vigil of `site` (version `version`); `subject` says
/// who each entry is about.
pub fn bundle(
    entries: &[AuditEntry],
    site: &str,
    version: &str,
    now: DateTime<Utc>,
    subject: impl Fn(&AuditEntry) -> Subject,
) -> Value {
    let observer = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let device = json!({
        "resourceType": "Device",
        "identifier": [{ "system": "urn:vigil:site", "value": site }],
        "deviceName": [{ "name": format!("Vigil at {site}"), "type": "user-friendly-name" }],
        "version": [{ "value": version }],
    });
    let mut resources = vec![json!({ "fullUrl": observer, "resource": device })];
    for e in entries {
        let (code, display, verb, outcome) = classify(&e.action);
        let mut event = json!({
            "resourceType": "AuditEvent",
            "type": { "system": DCM, "code": code, "display": display },
            "subtype": [{ "system": VIGIL_ACTIONS, "code": e.action }],
            "action": verb,
            "recorded": e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "outcome": outcome,
            "agent": [{
                "who": { "identifier": { "system": "urn:vigil:account", "value": e.actor }, "display": e.actor },
                "requestor": true,
            }],
            "source": {
                "site": site,
                "observer": { "reference": observer },
                "type": [{
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }],
            },
        });
        let what = match subject(e) {
            Subject::Patient { system, value } => Some((
                json!({ "type": "Patient", "identifier": { "system": system, "value": value } }),
                "1",
                "Person",
                "1",
                "Patient",
            )),
            Subject::Device(id) => Some((
                json!({ "type": "Device", "identifier": { "system": "urn:vigil:device", "value": id } }),
                "2",
                "System Object",
                "4",
                "Domain Resource",
            )),
            Subject::Other => None,
        };
        let mut entity = json!({ "description": format!("{}: {}", e.subject, e.detail) });
        if let Some((what, type_code, type_display, role_code, role_display)) = what {
            entity["what"] = what;
            entity["type"] = json!({
                "system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                "code": type_code,
                "display": type_display,
            });
            entity["role"] = json!({
                "system": "http://terminology.hl7.org/CodeSystem/object-role",
                "code": role_code,
                "display": role_display,
            });
        }
        event["entity"] = json!([entity]);
        resources.push(json!({ "fullUrl": format!("urn:uuid:{}", uuid::Uuid::new_v4()), "resource": event }));
    }
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "entry": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str, subject: &str) -> AuditEntry {
        AuditEntry {
            id: 1,
            at: chrono::DateTime::parse_from_rfc3339("2026-12-02T10:00:00Z").unwrap().into(),
            actor: "nurse-ann".into(),
            action: action.into(),
            subject: subject.into(),
            detail: "reason: probe reseated".into(),
        }
    }

    #[test]
    fn each_entry_becomes_an_audit_event_observed_by_the_bundled_device() {
        let entries = [entry("pairing.open", "OX-1000"), entry("access.refused", "pair a device")];
        let b = bundle(&entries, "demo-clinic", "0.1.0", Utc::now(), |e| match e.action.as_str() {
            "pairing.open" => Subject::Device(e.subject.clone()),
            _ => Subject::Other,
        });
        let observer = b["entry"][0]["fullUrl"].as_str().unwrap();
        assert_eq!(b["entry"][0]["resource"]["resourceType"], "Device");
        let events: Vec<&Value> = b["entry"].as_array().unwrap()[1..].iter().map(|e| &e["resource"]).collect();
        assert_eq!(events.len(), 2);
        assert!(events.iter().all(|e| e["source"]["observer"]["reference"] == observer));
        assert_eq!((events[0]["type"]["code"].as_str(), events[0]["action"].as_str()), (Some("110110"), Some("C")));
        assert_eq!(events[0]["entity"][0]["what"]["identifier"]["value"], "OX-1000");
        assert_eq!((events[1]["type"]["code"].as_str(), events[1]["outcome"].as_str()), (Some("110113"), Some("4")));
        assert_eq!(events[1]["agent"][0]["requestor"], true);
    }
}
