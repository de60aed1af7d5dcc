//! The board: heartbeats of the running components and the degradation modes they trigger, as
//! `GET /status`, `GET /metrics` and `vigil status` show them, when real peers go away and return.

use std::time::Duration;

use sqlx::Connection;
use vigil_tests::{
    BrokerKind, DEMO_SYSTEM, FhirServer, Mosquitto, Site, component, mode_active, publish_tracked, with_status,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ehr_outage_shows_ehr_sync_paused_until_it_returns() -> anyhow::Result<()> {
    let fhir = FhirServer::start(&[])?;
    fhir.create(
        serde_json::json!({"resourceType": "Patient", "identifier": [{"system": DEMO_SYSTEM, "value": "MRN-100000"}]}),
    )
    .await?;
    let site = Site::new(BrokerKind::Embedded)?;
    site.append_config(&format!(
        "[ehr]\nkind = \"fhir\"\nbase_url = \"{}\"\ntimeout_secs = 1\nmax_backoff_secs = 1\n",
        fhir.base
    ))?;
    site.pair_anew("MX-00A0", "MRN-100000")?;
    let vigil = site.run()?;
    let healthy = vigil
        .wait_status(Duration::from_secs(10), |s| {
            ["mqtt", "store", "ehr", "supervisor"].iter().all(|c| component(s, c)["state"] == "up")
        })
        .await?;
    // The site pages nobody (no alert sink), and the board says so; nothing else is off.
    let modes: Vec<&str> = healthy["modes"].as_array().unwrap().iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(modes, ["no_alert_sink"], "{healthy:#}");

    fhir.pause();
    site.for_patient("event", "MX-00A0", "MRN-100000", &["--obs", "150456=89"])?;
    let paused = vigil.wait_status(Duration::from_secs(20), |s| mode_active(s, "ehr_sync_paused")).await?;
    let mode = &paused["modes"][0];
    assert_eq!(mode["title"], "EHR sync paused");
    assert!(mode["what_still_works"].as_str().unwrap().contains("nothing is lost"));
    assert!(!mode["whom_to_call"].as_str().unwrap().is_empty());
    let board = site.vigil(&["status", "--url", &vigil.status_url])?;
    assert!(board.contains("!! EHR sync paused (warning)"), "{board}");
    let metrics = reqwest::get(format!("{}/metrics", vigil.status_url)).await?.text().await?;
    assert!(metrics.contains("vigil_degradation_mode_active{mode=\"ehr_sync_paused\"} 1"), "{metrics}");
    assert!(metrics.contains("vigil_outbox_events{status=\"pending\"} 1"), "{metrics}");

    fhir.resume();
    vigil.wait_status(Duration::from_secs(30), |s| !mode_active(s, "ehr_sync_paused")).await?;
    site.wait_outbox(Duration::from_secs(30), |o| with_status(o, "delivered") == 1).await?;
    // The delivery round trips are in the EHR latency histogram.
    let metrics = reqwest::get(format!("{}/metrics", vigil.status_url)).await?.text().await?;
    let count = metrics
        .lines()
        .find_map(|l| l.strip_prefix("vigil_ehr_delivery_seconds_count "))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(count.is_some_and(|n| n >= 1), "{metrics}");
    assert!(metrics.contains("vigil_ehr_delivery_seconds_bucket{le=\"+Inf\"}"), "{metrics}");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_broker_shows_device_data_not_arriving() -> anyhow::Result<()> {
    let broker = Mosquitto::start().await?;
    let site = Site::new(BrokerKind::External(broker.port))?;
    let vigil = site.run()?;
    vigil.wait_status(Duration::from_secs(10), |s| component(s, "mqtt")["state"] == "up").await?;
    drop(broker);
    let down = vigil.wait_status(Duration::from_secs(20), |s| mode_active(s, "mqtt_ingest_down")).await?;
    assert_eq!(component(&down, "mqtt")["state"], "down");
    assert!(component(&down, "mqtt")["reason"].as_str().unwrap().starts_with("reconnecting"), "{down:#}");
    let out =
        std::process::Command::new(vigil_tests::vigil_bin()).args(["status", "--url", &vigil.status_url]).output()?;
    assert_eq!(out.status.code(), Some(5), "a critical mode makes vigil status fail");
    assert!(String::from_utf8_lossy(&out.stdout).contains("!! Device data not arriving (critical)"));
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_store_shows_storage_failing_until_it_is_released() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    let db = site.dir.path().join("vigil.db");
    let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut blocker).await?;
    let device =
        pipeline_core::simulate::SimDevice::new("OX-1000", pipeline_core::simulate::DeviceKind::Oximeter, None, 1);
    let message = (device.kind.topic(&device.id), device.payload(chrono::Utc::now()).to_string().into_bytes());
    let publisher = tokio::spawn(publish_tracked(port, vec![message], 10, Duration::from_secs(60), |_| {}));
    let failing = vigil.wait_status(Duration::from_secs(30), |s| mode_active(s, "store_failing")).await?;
    // The writer is stuck in a commit that waits for the lock: silent (stale), or down once it fails.
    let store_state = component(&failing, "store")["state"].as_str().unwrap().to_string();
    assert!(store_state == "stale" || store_state == "down", "{failing:#}");
    assert!(!publisher.is_finished(), "nothing is acknowledged while the store fails");
    sqlx::query("ROLLBACK").execute(&mut blocker).await?;
    assert_eq!(publisher.await??.acked.len(), 1);
    vigil.wait_status(Duration::from_secs(20), |s| !mode_active(s, "store_failing")).await?;
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_board_says_whether_the_workstation_clock_is_synchronised() -> anyhow::Result<()> {
    // The host's own answer never decides a test: the test-only key forces each state.
    for (state, mode, health) in
        [("unsynchronised", true, "degraded"), ("unknown", true, "degraded"), ("synchronised", false, "up")]
    {
        let site = Site::new(BrokerKind::Embedded)?;
        let config = std::fs::read_to_string(&site.config)?
            .replace("clock_sync_check = false", &format!("clock_sync_check = true\ntest_clock_sync = \"{state}\""));
        std::fs::write(&site.config, config)?;
        let vigil = site.run()?;
        let board = vigil
            .wait_status(Duration::from_secs(20), |s| component(s, "workstation-clock")["state"] == health)
            .await?;
        assert_eq!(mode_active(&board, "workstation_clock_unsynced"), mode, "{state}: {board:#}");
        assert!(vigil.terminate().await?.success());
    }
    Ok(())
}
