//! Local structural checks of the resources Vigil emits, against FHIR R4 and the vital-signs profile
//! rules (CLINICAL.md). A resource that fails never leaves: its event is held with these reasons.
//! The test suite also runs an independent validator over the same resources.

use serde_json::Value;

use super::{LOINC_SYSTEM, UCUM_SYSTEM};

const OBSERVATION_STATUS: [&str; 8] =
    ["registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"];

fn codings(concept: &Value) -> impl Iterator<Item = (&str, &str)> {
    concept["coding"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| Some((c["system"].as_str()?, c["code"].as_str()?)))
}

fn has_loinc(concept: &Value, code: &str) -> bool {
    codings(concept).any(|(s, c)| s == LOINC_SYSTEM && c == code)
}

fn is_datetime(v: &Value) -> bool {
    v.as_str().is_some_and(|s| chrono::DateTime::parse_from_rfc3339(s).is_ok())
}

/// Checks a value[x]/dataAbsentReason pair of an Observation or component.
fn check_value(v: &Value, at: &str, expected_units: &[&str], out: &mut Vec<String>) {
    match (v.get("valueQuantity"), v.get("dataAbsentReason")) {
        (Some(q), None) => {
            if !q["value"].is_number() {
                out.push(format!("{at}.valueQuantity.value is not a number"));
            }
            if q["system"] != UCUM_SYSTEM {
                out.push(format!("{at}.valueQuantity.system must be {UCUM_SYSTEM}"));
            }
            match q["code"].as_str() {
                None => out.push(format!("{at}.valueQuantity.code is missing")),
                Some(c) if !expected_units.is_empty() && !expected_units.contains(&c) => {
                    out.push(format!("{at}.valueQuantity.code {c:?} is not one of {expected_units:?}"))
                }
                Some(_) => {}
            }
        }
        (None, Some(_)) => {}
        (Some(_), Some(_)) => out.push(format!("{at} has both a value and a dataAbsentReason")),
        (None, None) => out.push(format!("{at} has neither valueQuantity nor dataAbsentReason")),
    }
}

/// Every problem found in one resource; empty means it may be sent.
pub fn check_resource(r: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match r["resourceType"].as_str() {
        Some("Observation") => check_observation(r, &mut out),
        Some("DiagnosticReport") => {
            if r["status"] != "final" && r["status"] != "preliminary" && r["status"] != "amended" {
                out.push("DiagnosticReport.status is missing or not final/preliminary/amended".into());
            }
            if codings(&r["code"]).next().is_none() && r["code"]["text"].as_str().is_none() {
                out.push("DiagnosticReport.code is empty".into());
            }
            if r["subject"].is_null() {
                out.push("DiagnosticReport.subject is missing".into());
            }
            if r["result"].as_array().is_none_or(Vec::is_empty) {
                out.push("DiagnosticReport.result is empty".into());
            }
        }
        Some("Device") => {
            if r["identifier"].as_array().is_none_or(Vec::is_empty) {
                out.push("Device.identifier is empty".into());
            }
        }
        other => out.push(format!("resourceType {other:?} is not one Vigil emits")),
    }
    out
}

fn check_observation(r: &Value, out: &mut Vec<String>) {
    if !r["status"].as_str().is_some_and(|s| OBSERVATION_STATUS.contains(&s)) {
        out.push("Observation.status is missing or not a valid code".into());
    }
    let vital_sign =
        r["category"].as_array().into_iter().flatten().any(|c| codings(c).any(|(_, code)| code == "vital-signs"));
    if !vital_sign {
        out.push("Observation.category has no vital-signs coding".into());
    }
    if !codings(&r["code"]).any(|(s, _)| s == LOINC_SYSTEM) {
        out.push("Observation.code has no LOINC coding".into());
    }
    if r["subject"]["reference"].is_null() && r["subject"]["identifier"].is_null() {
        out.push("Observation.subject is missing".into());
    }
    let period_ok = is_datetime(&r["effectivePeriod"]["start"]) && is_datetime(&r["effectivePeriod"]["end"]);
    if !is_datetime(&r["effectiveDateTime"]) && !period_ok {
        out.push("Observation.effective[x] is missing or not a dateTime/Period".into());
    }
    if r["identifier"].as_array().is_none_or(|ids| ids.is_empty()) {
        out.push("Observation.identifier (the content hash) is missing".into());
    }
    if has_loinc(&r["code"], "85354-9") {
        if r.get("valueQuantity").is_some() {
            out.push("blood pressure panel must not have a top-level value".into());
        }
        let components = r["component"].as_array().cloned().unwrap_or_default();
        for (loinc, name) in [("8480-6", "systolic"), ("8462-4", "diastolic")] {
            match components.iter().find(|c| has_loinc(&c["code"], loinc)) {
                Some(c) => check_value(c, &format!("Observation.component[{name}]"), &["mm[Hg]"], out),
                None => out.push(format!("blood pressure panel lacks the {name} component ({loinc})")),
            }
        }
        return;
    }
    let profile = |url: &str| r["meta"]["profile"].as_array().is_some_and(|p| p.iter().any(|x| x == url));
    let sd = "http://hl7.org/fhir/StructureDefinition/";
    let rules: [(&str, &str, &[&str]); 4] = [
        ("oxygensat", "2708-6", &["%"]),
        ("heartrate", "8867-4", &["/min"]),
        ("resprate", "9279-1", &["/min"]),
        ("bodytemp", "8310-5", &["Cel", "[degF]"]),
    ];
    let mut units: &[&str] = &[];
    for (name, loinc, allowed) in rules {
        if profile(&format!("{sd}{name}")) {
            if !has_loinc(&r["code"], loinc) {
                out.push(format!("the {name} profile requires LOINC {loinc} in Observation.code"));
            }
            units = allowed;
        }
    }
    check_value(r, "Observation", units, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fhir::{PatientRef, observation};
    use crate::model::Validity;
    use crate::model::codes::metric_by_code;
    use crate::model::event::{Effective, Observation};
    use serde_json::json;

    fn subject() -> Value {
        PatientRef { fhir_id: Some("p1".into()), system: "urn:mrn".into(), value: "M1".into() }.reference()
    }

    fn vital(code: u32, value: f64, validity: Validity) -> Value {
        let obs = Observation::Vital {
            metric: metric_by_code(code).unwrap(),
            value,
            effective: Effective::At { at: chrono::Utc::now() },
            validity,
            method: None,
        };
        observation(&obs, "abc", &subject(), &json!({"reference": "Device/d1"}))
    }

    #[test]
    fn built_vitals_pass_and_carry_both_codings() {
        for code in [150456, 147842, 149530, 151562, 150364, 150021, 151708] {
            let r = vital(code, 97.0, Validity::Valid);
            assert_eq!(check_resource(&r), Vec::<String>::new(), "{code}: {r:#}");
            let systems: Vec<&str> = codings(&r["code"]).map(|(s, _)| s).collect();
            assert!(systems.contains(&LOINC_SYSTEM) && systems.contains(&crate::fhir::MDC_SYSTEM), "{r:#}");
        }
        let spo2 = vital(150456, 97.0, Validity::Valid);
        assert!(has_loinc(&spo2["code"], "2708-6") && has_loinc(&spo2["code"], "59408-5"));
    }

    #[test]
    fn invalid_measurements_have_no_value_and_a_reason() {
        let r = vital(150456, 97.0, Validity::Invalid);
        assert!(r.get("valueQuantity").is_none());
        assert_eq!(r["dataAbsentReason"]["coding"][0]["code"], "error");
        assert_eq!(r["meta"]["security"][0]["code"], "UNRELIABLE");
        assert_eq!(check_resource(&r), Vec::<String>::new());
    }

    #[test]
    fn questionable_measurements_carry_the_pocd_measurement_status_interpretation() {
        let r = vital(150456, 84.0, Validity::Questionable);
        assert_eq!(r["valueQuantity"]["value"], 84.0);
        let coding = &r["interpretation"][0]["coding"][0];
        assert_eq!(
            (&coding["system"], &coding["code"]),
            (&json!(crate::fhir::MEASUREMENT_STATUS_SYSTEM), &json!("questionable"))
        );
        assert_eq!(check_resource(&r), Vec::<String>::new());
    }

    #[test]
    fn catches_what_the_profiles_forbid() {
        let mut r = vital(150456, 97.0, Validity::Valid);
        r["code"]["coding"].as_array_mut().unwrap().retain(|c| c["code"] != "2708-6");
        r["valueQuantity"]["code"] = json!("mm[Hg]");
        r.as_object_mut().unwrap().remove("status");
        let problems = check_resource(&r);
        assert_eq!(problems.len(), 3, "{problems:#?}");
        let bp = json!({"resourceType": "Observation", "status": "final", "identifier": [{"value": "x"}],
            "category": [{"coding": [{"code": "vital-signs"}]}], "subject": subject(),
            "effectiveDateTime": "2026-11-24T10:00:00Z",
            "code": {"coding": [{"system": LOINC_SYSTEM, "code": "85354-9"}]},
            "valueQuantity": {"value": 1, "system": UCUM_SYSTEM, "code": "mm[Hg]"}});
        let problems = check_resource(&bp);
        assert!(problems.iter().any(|p| p.contains("top-level value")), "{problems:#?}");
        assert!(problems.iter().any(|p| p.contains("systolic")), "{problems:#?}");
    }
}
