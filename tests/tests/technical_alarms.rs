//! Technical alarms, kept apart from physiological ones: a paired bedside device gone quiet, a
//! device sending data while unpaired, and the mutual watch between the supervisor and the alert
//! circuit (each stopped by a failure drill, the other raises a technical alarm).

use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use pipeline_core::simulate::{DeviceKind, SimDevice};
use serde_json::Value;
use vigil_tests::{
    BrokerKind, Mosquitto, Site, VigilProcess, eventually, mode_active, of_kind, oximeter_spo2, publish_tracked,
    subscriber, webhook,
};

fn technical(site: &Site, rule: &str) -> anyhow::Result<Vec<Value>> {
    Ok(of_kind(&site.alarms()?, "technical").into_iter().filter(|a| a["rule_id"] == rule).collect())
}

async fn wait_alarm(site: &Site, rule: &str, done: impl Fn(&[Value]) -> bool) -> anyhow::Result<Vec<Value>> {
    let mut last = Vec::new();
    let alarms = eventually(&format!("the expected {rule} alarms"), Duration::from_secs(20), async || {
        last = technical(site, rule)?;
        anyhow::Ok(done(&last).then(|| last.clone()))
    })
    .await;
    alarms.with_context(|| format!("the last {rule} alarms: {last:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_paired_device_and_an_unpaired_one_raise_technical_alarms_that_clear() -> anyhow::Result<()> {
    let (hook, paged) = webhook().await?;
    let site = Site::new(BrokerKind::Embedded)?;
    site.edit_rules(|r| r.replace("after_secs = 60", "after_secs = 3"))?;
    site.append_config(&format!("[alerts]\nwebhook_url = \"{hook}\"\n"))?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();

    // The demo registry pairs OX-1000 with a patient; it has sent nothing.
    let offline = wait_alarm(&site, "device-offline", |a| a.iter().any(|a| a["device_id"] == "OX-1000")).await?;
    let ox = offline.iter().find(|a| a["device_id"] == "OX-1000").unwrap();
    assert_eq!(ox["priority"], "medium");
    assert!(ox["patient_id"].is_i64() && ox["mdc_code"].is_null() && ox["value"].is_null(), "{ox}");
    assert!(
        offline.iter().all(|a| a["device_id"] != "00-1B-C5-0C-00-00-00-00"),
        "a wearable uploads in batches and is not watched: {offline:#?}"
    );
    eventually("the technical page", Duration::from_secs(10), async || {
        of_kind(&paged.lock().unwrap(), "technical").iter().any(|p| p["rule_id"] == "device-offline")
    })
    .await?;

    // It speaks again: that device's alarm clears, and is not raised twice meanwhile.
    publish_tracked(port, oximeter_spo2(97.0, Utc::now(), 1), 10, Duration::from_secs(30), |_| {}).await?;
    let after = wait_alarm(&site, "device-offline", |a| {
        a.iter().any(|a| a["device_id"] == "OX-1000" && !a["cleared_at"].is_null())
    })
    .await?;
    assert_eq!(after.iter().filter(|a| a["device_id"] == "OX-1000").count(), 1, "{after:#?}");

    // MX-00A1 is registered but paired with nobody: its data is quarantined and raises an alarm.
    let device = SimDevice::new("MX-00A1", DeviceKind::Monitor, None, 1);
    let payload = (device.kind.topic(&device.id), device.payload(Utc::now()).to_string().into_bytes());
    publish_tracked(port, vec![payload], 10, Duration::from_secs(30), |_| {}).await?;
    let unpaired = wait_alarm(&site, "device-unpaired", |a| !a.is_empty()).await?;
    assert_eq!((unpaired[0]["device_id"].as_str(), unpaired[0]["priority"].as_str()), (Some("MX-00A1"), Some("low")));
    assert!(unpaired[0]["cleared_at"].is_null());

    // Pairing it clears the condition.
    site.for_patient("pair", "MX-00A1", "MRN-100001", &[])?;
    wait_alarm(&site, "device-unpaired", |a| a.len() == 1 && !a[0]["cleared_at"].is_null()).await?;
    assert_eq!(of_kind(&site.alarms()?, "physiological").len(), 0, "technical alarms are not the patient's");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

/// Turns on failure drills in the site's `[status]` section.
fn allow_drills(site: &Site) -> anyhow::Result<()> {
    let config = std::fs::read_to_string(&site.config)?;
    std::fs::write(&site.config, config.replace("[status]\n", "[status]\ndrills = true\n"))?;
    Ok(())
}

/// Starts a drill, with the site's bearer token (a drill without it is refused: tested below).
async fn drill(vigil: &VigilProcess, component: &str) -> anyhow::Result<()> {
    let answer = vigil.post_status(&format!("/drill/{component}/stop")).await?;
    anyhow::ensure!(answer.status().is_success(), "drill refused: {}", answer.text().await?);
    Ok(())
}

fn state_of(status: &Value, component: &str) -> String {
    let components = status["components"].as_array().cloned().unwrap_or_default();
    components.iter().find(|c| c["name"] == component).map(|c| c["state"].to_string()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_supervisor_and_the_alert_circuit_each_alarm_when_the_other_stops() -> anyhow::Result<()> {
    let broker = Mosquitto::start().await?;
    let listened = subscriber(broker.port).await?;
    let (hook, paged) = webhook().await?;
    let site = Site::new(BrokerKind::Embedded)?;
    allow_drills(&site)?;
    site.append_config(&format!(
        "[alerts]\nwebhook_url = \"{hook}\"\nmqtt_url = \"mqtt://127.0.0.1:{}\"\n",
        broker.port
    ))?;

    // The supervisor stops: its beat goes stale, its mode shows, and the alert circuit pages it.
    let vigil = site.run()?;
    vigil.wait_status(Duration::from_secs(15), |s| state_of(s, "alert-mqtt") == "\"up\"").await?;
    // Only the holder of the token starts a drill; a web page (a foreign Origin, or a rebound Host)
    // reads and starts nothing.
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", vigil.status_url);
    let bare = http.post(url("/drill/supervisor/stop")).send().await?;
    assert_eq!(bare.status(), reqwest::StatusCode::UNAUTHORIZED);
    let token = std::fs::read_to_string(site.dir.path().join("status.token"))?;
    let from_page =
        http.post(url("/drill/supervisor/stop")).bearer_auth(token.trim()).header("Origin", "http://evil.example");
    assert_eq!(from_page.send().await?.status(), reqwest::StatusCode::FORBIDDEN);
    let rebound = http.get(url("/status")).header("Host", "evil.example:9464").send().await?;
    assert_eq!(rebound.status(), reqwest::StatusCode::FORBIDDEN);
    assert!(http.get(url("/status")).send().await?.status().is_success(), "the board stays open on loopback");
    drill(&vigil, "supervisor").await?;
    let status = vigil.wait_status(Duration::from_secs(15), |s| mode_active(s, "supervisor_down")).await?;
    assert_eq!(state_of(&status, "supervisor"), "\"stale\"");
    let stopped = |r: &vigil_tests::Received| {
        of_kind(&r.lock().unwrap(), "technical").into_iter().find(|p| p["rule_id"] == "supervisor-stopped")
    };
    eventually("the supervisor's page", Duration::from_secs(10), async || stopped(&paged).is_some()).await?;
    eventually("the supervisor's MQTT alert", Duration::from_secs(10), async || stopped(&listened).is_some()).await?;
    assert_eq!(stopped(&listened).unwrap()["topic"], "vigil/alarms/high");
    assert_eq!(technical(&site, "supervisor-stopped")?.len(), 1);
    assert!(vigil.terminate().await?.success());

    // After a restart, the alert circuit stops: the supervisor records the alarm (nobody can be
    // paged through a stopped circuit), and a patient's alarm is still recorded meanwhile.
    let vigil = site.run()?;
    vigil.wait_status(Duration::from_secs(15), |s| state_of(s, "alerts") == "\"up\"").await?;
    let pages_before = paged.lock().unwrap().len();
    drill(&vigil, "alerts").await?;
    vigil.wait_status(Duration::from_secs(15), |s| mode_active(s, "alert_circuit_down")).await?;
    let circuit = wait_alarm(&site, "alert_circuit_down", |a| !a.is_empty()).await?;
    assert_eq!((circuit[0]["priority"].as_str(), circuit[0]["device_id"].as_str()), (Some("high"), Some("alerts")));
    let port = vigil.mqtt_addr.unwrap().port();
    publish_tracked(
        port,
        oximeter_spo2(85.0, Utc::now() - chrono::Duration::seconds(70), 70),
        100,
        Duration::from_secs(30),
        |_| {},
    )
    .await?;
    eventually("the desaturation's alarm", Duration::from_secs(20), async || {
        anyhow::Ok(!of_kind(&site.alarms()?, "physiological").is_empty())
    })
    .await?;
    assert_eq!(paged.lock().unwrap().len(), pages_before, "a stopped circuit pages nobody");
    let drills = site.log();
    assert!(drills.contains("drill: the alert circuit stops"), "the drill is in the log");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_rules_task_shows_within_three_heartbeats_and_pages() -> anyhow::Result<()> {
    let (hook, paged) = webhook().await?;
    let site = Site::new(BrokerKind::Embedded)?;
    allow_drills(&site)?;
    site.append_config(&format!("[alerts]\nwebhook_url = \"{hook}\"\n"))?;
    let vigil = site.run()?;
    vigil.wait_status(Duration::from_secs(15), |s| state_of(s, "rules") == "\"up\"").await?;
    drill(&vigil, "rules").await?;
    // Three missed one-second beats make it stale; the deadline is generous.
    let status = vigil.wait_status(Duration::from_secs(10), |s| mode_active(s, "alarm_rules_stopped")).await?;
    assert_eq!(state_of(&status, "rules"), "\"stale\"");
    let stopped = |r: &vigil_tests::Received| {
        of_kind(&r.lock().unwrap(), "technical").into_iter().find(|p| p["rule_id"] == "alarm_rules_stopped")
    };
    eventually("the stuck rules task's page", Duration::from_secs(15), async || stopped(&paged).is_some()).await?;
    assert_eq!(stopped(&paged).unwrap()["priority"], "high");
    assert!(vigil.terminate().await?.success());
    Ok(())
}
