//! Profiles that explain themselves: `vigil profile try` shows what a payload yields, what the
//! profile leaves unread and every problem at once; a `system|value` patient token is checked
//! against the pairing like any other patient identifier.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use vigil_tests::{BrokerKind, Site, eventually, fixture, publish_tracked, vigil_bin};

fn try_profile(profile: &str, payload: &str, extra: &[&str]) -> anyhow::Result<(i32, Value)> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("payload.json");
    std::fs::write(&file, payload)?;
    let out =
        Command::new(vigil_bin()).args(["profile", "try", profile]).arg(&file).arg("--json").args(extra).output()?;
    let code = out.status.code().unwrap_or(-1);
    anyhow::ensure!(code <= 1, "vigil profile try failed: {}", String::from_utf8_lossy(&out.stderr));
    Ok((code, serde_json::from_slice(&out.stdout)?))
}

#[test]
fn profile_try_lists_unmapped_fields_and_every_problem_at_once() -> anyhow::Result<()> {
    let profile = fixture("profiles/pulse-oximeter.toml");
    let profile = profile.to_string_lossy();
    // A firmware update added a field: the payload reads, and the new field is named.
    let (code, good) = try_profile(
        &profile,
        r#"{"sn":"OX-1001","ts":"2026-11-24T10:00:00.120Z","spo2":97,"pr":72,"pi":3.1,"status":"ok","battery":{"pct":80}}"#,
        &[],
    )?;
    assert_eq!(code, 0, "{good:#}");
    assert_eq!(good["profile"], "acme-ox100");
    assert_eq!(good["readings"].as_array().map(Vec::len), Some(2), "{good:#}");
    assert_eq!(good["unmapped"], serde_json::json!(["/battery/pct", "/pi"]));
    // A bad time and an empty value: both reported in one round, each with its field.
    let (code, bad) =
        try_profile(&profile, r#"{"sn":"OX-1001","ts":"24/11/2026 10:00","spo2":"","pr":72,"status":"ok"}"#, &[])?;
    assert_eq!(code, 1);
    let problems: Vec<(String, String)> = bad["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| (p["reason"].as_str().unwrap_or_default().into(), p["detail"].as_str().unwrap_or_default().into()))
        .collect();
    assert_eq!(problems.len(), 2, "{bad:#}");
    assert!(problems[0].0 == "bad_time" && problems[0].1.contains("/ts"), "{problems:?}");
    assert!(problems[1].0 == "bad_value" && problems[1].1.contains("/spo2"), "{problems:?}");
    // An HL7 message through the built-in profile: the perfusion index is named, not dropped.
    let hl7 = std::fs::read_to_string(fixture("hl7/pcd01-gateway-two-devices.hl7"))?;
    let (code, oru) = try_profile("pcd-01", &hl7, &[])?;
    assert_eq!(code, 0, "{oru:#}");
    assert_eq!(oru["unmapped"], serde_json::json!(["OBX-3 150488^MDC_BLD_PERF_INDEX"]));
    assert!(!oru.to_string().contains("MRN-100001"), "patient identifier values are withheld");
    Ok(())
}

/// A spot-check monitor whose payload names its patient FHIR-search style, in one token.
const TOKEN_PROFILE: &str = r#"id = "north-spot"
vendor = "North Medical"
model = "Spot 2"
topics = ["vigil/devices/+/spot"]
device_id = "/device"
[time]
path = "/at"
format = "rfc3339"
[patient]
path = "/patientRef"
format = "token"
[[mapping]]
code = "MDC_PULS_OXIM_SAT_O2"
value = "/spo2"
unit = "%"
"#;

#[tokio::test]
async fn a_patient_token_that_disagrees_with_the_pairing_is_quarantined() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    let profiles = site.dir.path().join("profiles");
    std::fs::create_dir(&profiles)?;
    for entry in std::fs::read_dir(fixture("profiles"))? {
        let path = entry?.path();
        std::fs::copy(&path, profiles.join(path.file_name().unwrap_or_default()))?;
    }
    std::fs::write(profiles.join("north-spot.toml"), TOKEN_PROFILE)?;
    let config = std::fs::read_to_string(&site.config)?
        .replace(&format!("dir = \"{}\"", fixture("profiles").display()), &format!("dir = \"{}\"", profiles.display()));
    std::fs::write(&site.config, config)?;
    site.set_in("identity.systems", "NORTHCLINIC = \"urn:oid:2.16.840.1.113883.19.5.99999.2\"")?;
    site.vigil(&["devices", "--config", &site.config_str(), "--register", "SPOT-7", "--profile", "north-spot"])?;
    site.pair_anew("SPOT-7", "MRN-100001")?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.ok_or_else(|| anyhow::anyhow!("no endpoint"))?.port();

    let now = chrono::Utc::now();
    let payload = |mrn: &str, spo2: u32, seconds: i64| {
        let at = (now + chrono::Duration::seconds(seconds)).to_rfc3339();
        let body = format!(r#"{{"device":"SPOT-7","at":"{at}","spo2":{spo2},"patientRef":"NORTHCLINIC|{mrn}"}}"#);
        ("vigil/devices/SPOT-7/spot".to_string(), body.into_bytes())
    };
    let messages = vec![payload("MRN-100001", 97, 0), payload("MRN-100002", 88, 1)];
    publish_tracked(port, messages, 10, Duration::from_secs(20), |_| {}).await?;
    let (quarantine, stored) = eventually("both payloads processed", Duration::from_secs(15), async || {
        let quarantine = site.show("quarantine")?;
        let stored = site.vigil(&["show", "readings", "--config", &site.config_str(), "--device", "SPOT-7"])?;
        let stored: Value = serde_json::from_str(&stored)?;
        let done =
            quarantine.as_array().is_some_and(|q| !q.is_empty()) && stored.as_array().is_some_and(|s| !s.is_empty());
        Ok::<_, anyhow::Error>(done.then_some((quarantine, stored)))
    })
    .await?;
    let reasons: Vec<&str> = quarantine.as_array().into_iter().flatten().filter_map(|q| q["reason"].as_str()).collect();
    assert_eq!(reasons, ["patient_mismatch"], "{quarantine:#}");
    let values: Vec<f64> = stored.as_array().into_iter().flatten().filter_map(|r| r["value"].as_f64()).collect();
    assert_eq!(values, [97.0], "only the reading whose token names the paired patient is charted");
    Ok(())
}
