//! FHIR R4: the typed subset Vigil emits (Observation on the vital-signs profiles, the blood-pressure
//! panel, DiagnosticReport, Device) and the transaction Bundle that carries a clinical event.
//!
//! Invariant: every Observation carries both its MDC and LOINC codings, a UCUM `valueQuantity` (or a
//! `dataAbsentReason`), and the event's content hash as an identifier; every resource is created
//! conditionally on that identifier, so a retried Bundle creates nothing new.

pub mod bundle;
pub mod validate;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::model::codes::{Metric, metric_by_code};
use crate::model::event::{Effective, Observation};
use crate::model::{DeviceIdentity, Validity};

/// Identifier system of Vigil's content hashes (idempotency keys at the EHR).
pub const CONTENT_HASH_SYSTEM: &str = "https://fhir.vigil.health/NamingSystem/content-hash";
/// Identifier system for device serial numbers that are not EUI-64s; a device's profile id is
/// appended (`.../device-serial/acme-ox100`), scoping the serial to its maker's model.
pub const DEVICE_SERIAL_SYSTEM: &str = "https://fhir.vigil.health/NamingSystem/device-serial";
/// EUI-64 system used by the HL7 Personal Health Device IG.
pub const EUI64_SYSTEM: &str = "urn:oid:1.2.840.10004.1.1.1.0.0.1.0.0.1.2680";

/// The PoCD IG's measurement-status code system (`questionable`, ...), for `Observation.interpretation`.
pub const MEASUREMENT_STATUS_SYSTEM: &str = "http://hl7.org/fhir/uv/pocd/CodeSystem/measurement-status";

/// The PHD IG's code system for device identifier types (`SYSID`: the IEEE EUI-64 system id).
pub const CONTINUA_DEVICE_IDENTIFIERS: &str = "http://hl7.org/fhir/uv/phd/CodeSystem/ContinuaDeviceIdentifiers";
/// IEEE 11073-10101 (MDC) code system.
pub const MDC_SYSTEM: &str = "urn:iso:std:iso:11073:10101";
/// LOINC.
pub const LOINC_SYSTEM: &str = "http://loinc.org";
/// UCUM.
pub const UCUM_SYSTEM: &str = "http://unitsofmeasure.org";
const CATEGORY_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
const VITALSIGNS_PROFILE: &str = "http://hl7.org/fhir/StructureDefinition/vitalsigns";

/// A patient as the EHR knows it: by verified id where we have one, and by identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatientRef {
    /// The EHR's resource id, when the pairing was verified there.
    pub fhir_id: Option<String>,
    /// Identifier system.
    pub system: String,
    /// Identifier value. PHI.
    pub value: String,
}

impl PatientRef {
    /// `Observation.subject`: a literal reference when verified at the EHR, plus the identifier.
    pub fn reference(&self) -> Value {
        let identifier = json!({"system": self.system, "value": self.value});
        match &self.fhir_id {
            Some(id) => json!({"reference": format!("Patient/{id}"), "identifier": identifier}),
            None => json!({"identifier": identifier}),
        }
    }
}

/// FHIR dateTime/instant text, in UTC with milliseconds.
pub fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The identifier of a device: an EUI-64 (when its profile says so) in the PHD system, anything
/// else as a serial number in a system of its profile, so two vendors' "SN-1" stay two devices.
pub fn device_identifier(device: &DeviceIdentity) -> Value {
    let hex: String = device.id.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    let separators_only = device.id.chars().all(|c| c.is_ascii_hexdigit() || c == '-' || c == ':');
    if device.eui64 && hex.len() == 16 && separators_only {
        // HL7 PHD IG, PhdDevice `systemIdIdentifier`: upper-case bytes separated by dashes, typed
        // SYSID, so a PHD gateway writing the same device to the same EHR finds the same Device.
        let bytes: Vec<String> =
            hex.to_uppercase().as_bytes().chunks(2).map(|b| String::from_utf8_lossy(b).into()).collect();
        json!({
            "type": {"coding": [{"system": CONTINUA_DEVICE_IDENTIFIERS, "code": "SYSID"}]},
            "system": EUI64_SYSTEM,
            "value": bytes.join("-"),
        })
    } else {
        let system = match &device.profile_id {
            Some(profile) => format!("{DEVICE_SERIAL_SYSTEM}/{profile}"),
            None => DEVICE_SERIAL_SYSTEM.to_string(),
        };
        json!({"system": system, "value": device.id})
    }
}

/// The Device resource: its identifier, and its maker and model as its profile names them.
pub fn device(device: &DeviceIdentity) -> Value {
    let mut resource = json!({
        "resourceType": "Device",
        "identifier": [device_identifier(device)],
        "status": "active",
    });
    if let Some(manufacturer) = &device.manufacturer {
        resource["manufacturer"] = json!(manufacturer);
    }
    if let Some(model) = &device.model {
        resource["deviceName"] = json!([{"name": model, "type": "model-name"}]);
        resource["modelNumber"] = json!(model);
    }
    if !device.eui64 {
        resource["serialNumber"] = json!(device.id);
    }
    resource
}

/// The vital-signs profiles an Observation of this metric conforms to (empty: not a vital sign).
fn profiles(metric: &Metric) -> Vec<&'static str> {
    let specific = match metric.mdc_code {
        150456 => Some("http://hl7.org/fhir/StructureDefinition/oxygensat"),
        147842 | 149530 => Some("http://hl7.org/fhir/StructureDefinition/heartrate"),
        151562 => Some("http://hl7.org/fhir/StructureDefinition/resprate"),
        150364 => Some("http://hl7.org/fhir/StructureDefinition/bodytemp"),
        150021..=150023 => None,
        _ => return vec![],
    };
    std::iter::once(VITALSIGNS_PROFILE).chain(specific).collect()
}

/// `Observation.code`: every LOINC coding of the metric and its MDC coding.
pub fn code(metric: &Metric) -> Value {
    let mut codings: Vec<Value> =
        metric.loinc.iter().map(|c| json!({"system": LOINC_SYSTEM, "code": c, "display": metric.display})).collect();
    codings.push(json!({"system": MDC_SYSTEM, "code": metric.mdc_code.to_string(), "display": metric.mdc_ref}));
    json!({"coding": codings, "text": metric.display})
}

fn quantity(value: f64, unit: &str) -> Value {
    json!({"value": value, "unit": unit, "system": UCUM_SYSTEM, "code": unit})
}

fn set_effective(resource: &mut Value, effective: &Effective) {
    match effective {
        Effective::At { at } => resource["effectiveDateTime"] = json!(instant(*at)),
        Effective::Period { start, end } => {
            resource["effectivePeriod"] = json!({"start": instant(*start), "end": instant(*end)})
        }
    }
}

/// Applies the validity mapping of CLINICAL.md. Invalid: no value, `dataAbsentReason` = error and
/// the UNRELIABLE security label. Questionable: kept, with the PoCD measurement status in
/// `Observation.interpretation` (as the PHD IG does: a reader must consider it, unlike a tag).
fn apply_validity(resource: &mut Value, validity: Validity, value_key: &str) {
    match validity {
        Validity::Valid => {}
        Validity::Questionable => {
            resource["interpretation"] = json!([{
                "coding": [{"system": MEASUREMENT_STATUS_SYSTEM, "code": "questionable", "display": "questionable"}],
                "text": "The device flagged this measurement as questionable"
            }]);
        }
        Validity::Invalid => {
            if let Some(obj) = resource.as_object_mut() {
                obj.remove(value_key);
            }
            resource["dataAbsentReason"] = json!({"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason", "code": "error", "display": "Error"
            }]});
            resource["meta"]["security"] = json!([{
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "UNRELIABLE"
            }]);
        }
        Validity::Demo => label_test_data(resource),
    }
}

/// Labels a resource as test data (`meta.security` v3-ActReason `HTEST`, as the PHD IG does), once.
pub fn label_test_data(resource: &mut Value) {
    let label = json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST"});
    let security = &mut resource["meta"]["security"];
    match security.as_array_mut() {
        Some(labels) if labels.contains(&label) => {}
        Some(labels) => labels.push(label),
        None => *security = json!([label]),
    }
}

/// Builds one Observation. `identifier` is its content-hash identifier value; `subject` and
/// `device` are reference objects.
pub fn observation(obs: &Observation, identifier: &str, subject: &Value, device: &Value) -> Value {
    let mut resource = json!({
        "resourceType": "Observation",
        "identifier": [{"system": CONTENT_HASH_SYSTEM, "value": identifier}],
        "status": "final",
        "category": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "vital-signs", "display": "Vital Signs"}], "text": "Vital Signs"}],
        "subject": subject,
        "device": device,
    });
    match obs {
        Observation::Vital { metric, value, effective, validity, method } => {
            let profiles = profiles(metric);
            if !profiles.is_empty() {
                resource["meta"] = json!({"profile": profiles});
            }
            resource["code"] = code(metric);
            resource["valueQuantity"] = quantity(*value, metric.unit);
            set_effective(&mut resource, effective);
            if let Some(statistic) = method {
                resource["method"] = json!({"text": statistic.describe()});
            }
            apply_validity(&mut resource, *validity, "valueQuantity");
        }
        Observation::BloodPressure { systolic, diastolic, mean, effective, validity } => {
            resource["meta"] = json!({"profile": [VITALSIGNS_PROFILE, "http://hl7.org/fhir/StructureDefinition/bp"]});
            let panel = Metric {
                mdc_code: 150020,
                mdc_ref: "MDC_PRESS_BLD_NONINV",
                loinc: &["85354-9"],
                unit: "mm[Hg]",
                dimension: crate::model::units::Dimension::Pressure,
                display: "Blood pressure panel",
                plausible: (10.0, 300.0),
                decimals: 0,
            };
            resource["code"] = code(&panel);
            let mut components = Vec::new();
            for (mdc, value) in [(150021, Some(*systolic)), (150022, Some(*diastolic)), (150023, *mean)] {
                let (Some(metric), Some(value)) = (metric_by_code(mdc), value) else { continue };
                let mut component = json!({"code": code(metric), "valueQuantity": quantity(value, metric.unit)});
                if *validity == Validity::Invalid {
                    apply_validity(&mut component, Validity::Invalid, "valueQuantity");
                    if let Some(obj) = component.as_object_mut() {
                        obj.remove("meta");
                    }
                }
                components.push(component);
            }
            resource["component"] = json!(components);
            set_effective(&mut resource, effective);
            if *validity != Validity::Invalid {
                apply_validity(&mut resource, *validity, "valueQuantity");
            } else {
                resource["meta"]["security"] = json!([{
                    "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "UNRELIABLE"
                }]);
            }
        }
    }
    resource
}

/// A token search value `system|value`, each part escaped as FHIR R4 search requires (`\\`, `,`,
/// `$`, `|`), so a comma in an MRN or a serial is part of the value, not an OR of two values.
pub fn search_token(system: &str, value: &str) -> String {
    format!("{}|{}", search_escape(system), search_escape(value))
}

/// One part of a search value, escaped (FHIR R4 search, "Escaping search parameters").
pub fn search_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '$' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Builds the DiagnosticReport grouping `results` (reference objects).
pub fn diagnostic_report(
    title: &str,
    effective: &Effective,
    identifier: &str,
    subject: &Value,
    results: Vec<Value>,
    issued: DateTime<Utc>,
) -> Value {
    let mut resource = json!({
        "resourceType": "DiagnosticReport",
        "identifier": [{"system": CONTENT_HASH_SYSTEM, "value": identifier}],
        "status": "final",
        // No category: v2-0074 `PHY` would claim physician history and notes; the binding is an
        // example and nothing else fits device monitoring.
        "code": {"coding": [{"system": LOINC_SYSTEM, "code": "85353-1", "display": "Vital signs, weight, height, head circumference, oxygen saturation and BMI panel"}], "text": title},
        "subject": subject,
        "issued": instant(issued),
        "result": results,
    });
    set_effective(&mut resource, effective);
    resource
}
