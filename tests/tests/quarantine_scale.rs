//! Quarantine at scale through the `vigil` CLI, against a running pipeline over real MQTT: a spare
//! monitor nobody paired sends for hours; one `vigil pair --release-quarantine` pairs it from its
//! first reading and stores every reading under the patient, each re-identified.

use std::time::Duration;

use pipeline_core::simulate::{DeviceKind, SimDevice};
use vigil_tests::*;

/// The spare monitor in the demo registry, registered and paired with nobody.
const SPARE: &str = "MX-00A1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_quarantined_readings_are_paired_and_released_as_one_action() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    publish_as_gateway(&site, port)?;

    // 286 payloads of 7 parameters, one every 10 s over the last 48 minutes: 2,002 readings.
    let monitor = SimDevice::new(SPARE, DeviceKind::Monitor, Some("MRN-100001"), 11);
    let first = chrono::Utc::now() - chrono::Duration::minutes(48);
    let payloads = 286;
    let messages = (0..payloads)
        .map(|i| {
            let at = first + chrono::Duration::seconds(i * 10);
            (monitor.kind.topic(SPARE), monitor.payload(at).to_string().into_bytes())
        })
        .collect();
    publish_tracked(port, messages, 50, Duration::from_secs(60), |_| {}).await?;
    let expected = payloads as usize * monitor.kind.readings_per_payload();
    assert_eq!(expected, 2002);
    site.wait_counts(Duration::from_secs(60), |c| c["quarantined"].as_u64() == Some(expected as u64)).await?;

    let from = first.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let said = site.for_patient(
        "pair",
        SPARE,
        "MRN-100001",
        &[
            "--from",
            &from,
            "--reason",
            "the spare monitor went to Bravo's bed at the start of the shift",
            "--release-quarantine",
            "paired late: recover the shift's readings",
        ],
    )?;
    assert!(said.contains(&format!("{expected} stored under the patient")), "{said}");

    // Counted in the store: every reading of the monitor is now telemetry of the patient.
    let devices: serde_json::Value =
        serde_json::from_str(&site.vigil(&["devices", "--config", &site.config_str()])?)?;
    let bravo =
        devices.as_array().and_then(|ds| ds.iter().find(|d| d["device_id"] == SPARE)).map(|d| d["patient_id"].clone());
    assert!(bravo.as_ref().is_some_and(serde_json::Value::is_i64), "{devices}");
    let readings = site.show("readings")?;
    let stored = readings.as_array().map_or(0, |rs| {
        rs.iter().filter(|r| r["device_id"] == SPARE && Some(&r["patient_id"]) == bravo.as_ref()).count()
    });
    assert_eq!(stored, expected, "{said}");
    assert!(site.show("quarantine")?.as_array().is_some_and(|q| q.iter().all(|e| e["device_id"] != SPARE)));
    let audit: Vec<serde_json::Value> =
        serde_json::from_str(&site.vigil(&["audit", "list", "--config", &site.config_str(), "--limit", "100"])?)?;
    let steps = audit.iter().filter(|e| e["action"] == "quarantine.group_resolved").count();
    assert_eq!(steps, expected.div_ceil(500), "one audited step per 500 readings");
    vigil.terminate().await?;
    Ok(())
}
