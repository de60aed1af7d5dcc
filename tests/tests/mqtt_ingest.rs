//! Acceptance of the telemetry plane: MQTT payloads to durable, de-duplicated, patient-verified
//! readings, against a real Mosquitto and against the embedded endpoint.

use std::time::Duration;

use chrono::{DateTime, Utc};
use pipeline_core::simulate::{DeviceKind, SimDevice};
use vigil_tests::{BrokerKind, Mosquitto, Site, publish_tracked};

fn payload(device: &SimDevice, at: DateTime<Utc>) -> (String, Vec<u8>) {
    (device.kind.topic(&device.id), device.payload(at).to_string().into_bytes())
}

/// The mix every broker must handle, and what each part must become.
struct Scenario {
    messages: Vec<(String, Vec<u8>)>,
    unique_payloads: i64,
    readings: i64,
    duplicates: i64,
    rejected: i64,
    quarantined: i64,
    held: i64,
}

fn scenario() -> Scenario {
    let t0 = Utc::now() - chrono::Duration::minutes(5);
    let at = |ms: i64| t0 + chrono::Duration::milliseconds(ms);
    let oximeter = SimDevice::new("OX-1000", DeviceKind::Oximeter, None, 1);
    let monitor = SimDevice::new("MX-00A0", DeviceKind::Monitor, Some("MRN-100000"), 2);
    let wearable = SimDevice::new("00-1B-C5-0C-00-00-00-00", DeviceKind::Wearable, None, 3);
    let mut m = Vec::new();
    for i in 0..200 {
        m.push(payload(&oximeter, at(i * 250)));
    }
    for i in 0..40 {
        m.push(payload(&monitor, at(i * 1000)));
    }
    for i in 0..20 {
        // Each upload carries five samples a second apart; uploads are five seconds apart.
        m.push(payload(&wearable, at(i * 5000)));
    }
    let readings = 200 * 2 + 40 * 7 + 20 * 10;
    // Resent payloads: counted, not stored twice.
    let resent: Vec<_> = m.iter().step_by(37).cloned().collect();
    let duplicates = resent.len() as i64;
    m.extend(resent);
    // Malformed: each must land in `rejected` with its own reason.
    let ox_topic = oximeter.kind.topic("OX-1000");
    m.push((ox_topic.clone(), b"{\"sn\":\"OX-1000\",\"ts\":".to_vec()));
    m.push((ox_topic.clone(), br#"{"sn":"OX-1000","ts":"yesterday","spo2":97,"pr":70}"#.to_vec()));
    m.push((ox_topic.clone(), br#"{"sn":"OX-1000","ts":"2026-11-24T10:00:00Z","spo2":"ninety","pr":70}"#.to_vec()));
    m.push(("vigil/devices/T-1/toaster".into(), b"{}".to_vec()));
    // Quarantine: an unknown device, a registered but unpaired monitor, and a monitor that names
    // another patient than the one it is paired with.
    let stranger = SimDevice::new("OX-7777", DeviceKind::Oximeter, None, 4);
    m.push(payload(&stranger, at(1)));
    m.push(payload(&stranger, at(2)));
    let spare = SimDevice::new("MX-00A1", DeviceKind::Monitor, Some("MRN-100000"), 5);
    m.push(payload(&spare, at(3)));
    let impostor = SimDevice::new("MX-00A0", DeviceKind::Monitor, Some("MRN-999999"), 6);
    m.push(payload(&impostor, at(250_000)));
    let quarantined = 2 * 2 + 7 + 7;
    // Held: a paired patient who has not consented to storage.
    let unconsented = SimDevice::new("OX-1001", DeviceKind::Oximeter, None, 7);
    for i in 0..3 {
        m.push(payload(&unconsented, at(i * 1000)));
    }
    let held = 3 * 2;
    let unique_payloads = m.len() as i64 - duplicates;
    Scenario { messages: m, unique_payloads, readings, duplicates, rejected: 4, quarantined, held }
}

async fn run_scenario(site: &Site, port: u16) -> anyhow::Result<()> {
    let s = scenario();
    let total = s.messages.len();
    let published = publish_tracked(port, s.messages, 100, Duration::from_secs(60), |_| {}).await?;
    assert_eq!(published.acked.len(), total, "every payload must be acknowledged");
    let counts =
        site.wait_counts(Duration::from_secs(30), |c| c["payloads"].as_i64() == Some(s.unique_payloads)).await?;
    assert_eq!(counts["readings"], s.readings, "{counts}");
    assert_eq!(counts["duplicates"], s.duplicates, "{counts}");
    assert_eq!(counts["rejected"], s.rejected, "{counts}");
    assert_eq!(counts["quarantined"], s.quarantined, "{counts}");
    assert_eq!(counts["held"], s.held, "{counts}");

    let rejected = site.show("rejected")?;
    let mut reasons: Vec<&str> = rejected.as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    reasons.sort();
    assert_eq!(reasons, ["bad_time", "bad_value", "no_profile", "not_json"], "{rejected:#}");
    for r in rejected.as_array().unwrap() {
        assert!(!r["detail"].as_str().unwrap().is_empty(), "a rejection says why: {r}");
        assert!(!r["payload"].as_str().unwrap().is_empty(), "the raw payload is kept: {r}");
    }

    let quarantine = site.show("quarantine")?;
    let count_reason = |reason: &str| quarantine.as_array().unwrap().iter().filter(|q| q["reason"] == reason).count();
    assert_eq!(count_reason("unknown_device"), 4, "{quarantine:#}");
    assert_eq!(count_reason("no_active_pairing"), 7, "{quarantine:#}");
    assert_eq!(count_reason("patient_mismatch"), 7, "{quarantine:#}");
    for q in quarantine.as_array().unwrap() {
        assert!(!q["payload"].as_str().unwrap().is_empty(), "the raw payload is kept: {q}");
        assert!(!q["detail"].as_str().unwrap().contains("MRN-999999"), "no PHI in the reason: {q}");
    }
    let held = site.show("held")?;
    assert!(held.as_array().unwrap().iter().all(|h| h["flow"] == "store" && h["device_id"] == "OX-1001"), "{held:#}");

    // No patient identifier reaches the log, even at debug level.
    let log = site.log();
    assert!(!log.is_empty(), "the harness captures the log");
    for mrn in ["MRN-100000", "MRN-999999"] {
        assert!(!log.contains(mrn), "PHI {mrn} in the log");
    }

    // Quarantined and held readings never reach the telemetry store.
    let readings = site.show("readings")?;
    for r in readings.as_array().unwrap() {
        let device = r["device_id"].as_str().unwrap();
        assert!(["OX-1000", "MX-00A0", "00-1B-C5-0C-00-00-00-00"].contains(&device), "{r}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_payloads_become_verified_readings() -> anyhow::Result<()> {
    let broker = Mosquitto::start().await?;
    let site = Site::new(BrokerKind::External(broker.port))?;
    let vigil = site.run()?;
    vigil.wait_subscribed(Duration::from_secs(20)).await?;
    run_scenario(&site, broker.port).await?;
    assert!(vigil.terminate().await?.success(), "SIGTERM drains and exits cleanly");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_endpoint_payloads_become_verified_readings() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.expect("embedded endpoint address").port();
    run_scenario(&site, port).await?;
    assert!(vigil.terminate().await?.success(), "SIGTERM drains and exits cleanly");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulator_speaks_every_profile_and_injects_faults() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.expect("embedded endpoint address").port();
    let out = site.vigil(&[
        "simulate",
        "--broker",
        &format!("mqtt://127.0.0.1:{port}"),
        "--devices",
        "1",
        "--rate",
        "20",
        "--count",
        "120",
        "--duplicates",
        "0.2",
        "--malformed",
        "0.2",
        "--unpaired",
        "1",
        "--seed",
        "7",
        "--username",
        vigil_tests::GATEWAY,
        "--password-file",
        &site.gateway_secret_file().to_string_lossy(),
    ])?;
    assert!(out.contains("120 acknowledged"), "{out}");
    let counts = site
        .wait_counts(Duration::from_secs(30), |c| {
            c["payloads"].as_i64().unwrap_or(0) + c["duplicates"].as_i64().unwrap_or(0) >= 120
        })
        .await?;
    assert!(counts["readings"].as_i64().unwrap() > 0, "{counts}");
    assert!(counts["duplicates"].as_i64().unwrap() > 0, "injected duplicates are counted: {counts}");
    assert!(counts["rejected"].as_i64().unwrap() > 0, "injected malformed payloads are rejected: {counts}");
    let quarantine = site.show("quarantine")?;
    assert!(
        quarantine
            .as_array()
            .unwrap()
            .iter()
            .any(|q| q["device_id"] == "OX-UNPAIRED-0" && q["reason"] == "unknown_device"),
        "the unpaired device is quarantined"
    );
    let devices: std::collections::HashSet<String> = site
        .show("readings")?
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["device_id"].as_str().unwrap().to_string())
        .collect();
    for device in ["OX-1000", "MX-00A0", "00-1B-C5-0C-00-00-00-00"] {
        assert!(devices.contains(device), "{device} (one per profile) is stored: {devices:?}");
    }
    assert!(vigil.terminate().await?.success());
    Ok(())
}
