//! Clocks cannot hide an alarm, over MQTT against the real `vigil` binary: a device whose clock lags
//! by ten minutes still alarms (on corrected time) and raises the clock alarm; one reading dated
//! minutes ahead neither clears a desaturation nor stops one; a batch upload of yesterday's readings
//! raises no clock alarm and no live alarm.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde_json::json;
use vigil_tests::{BrokerKind, Site, eventually, of_kind, oximeter_spo2, publish_tracked};

/// The medi-mx700 monitor's SpO2 at `at` by its own clock.
fn monitor_spo2(spo2: f64, at: DateTime<Utc>) -> (String, Vec<u8>) {
    let payload = json!({
        "monitor": {"id": "MX-00A0", "patient": {"mrn": "MRN-100000"}},
        "obs": {"time": at.to_rfc3339(), "params": [{"label": "SPO2", "v": spo2, "uom": "%"}]}
    });
    ("vigil/devices/MX-00A0/monitor".into(), payload.to_string().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_device_clock_neither_silences_nor_fakes_an_alarm() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    site.edit_rules(|r| r.replace("for_secs = 60", "for_secs = 5"))?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    let alarms = |device: &str, rule: &str| -> anyhow::Result<Vec<serde_json::Value>> {
        Ok(site.alarms()?.into_iter().filter(|a| a["device_id"] == device && a["rule_id"] == rule).collect())
    };

    // OX-1000's clock is 10 minutes behind: by its own time every reading is late, yet it is live.
    // MX-00A0 desaturates with a normal reading dated 4 minutes ahead before and after its alarm.
    for i in 0..12 {
        let now = Utc::now();
        let mut messages = oximeter_spo2(85.0, now - chrono::Duration::minutes(10), 1);
        messages.push(monitor_spo2(85.0, now));
        if i == 2 || i == 11 {
            messages.push(monitor_spo2(97.0, now + chrono::Duration::minutes(4)));
        }
        publish_tracked(port, messages, 10, Duration::from_secs(10), |_| {}).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let mut last = Vec::new();
    eventually("the desaturation and clock alarms", Duration::from_secs(20), async || {
        last = site.alarms()?;
        anyhow::Ok(alarms("OX-1000", "spo2-low")?.len() == 1 && alarms("OX-1000", "device-clock-off")?.len() == 1)
    })
    .await
    .with_context(|| format!("alarms: {last:#?}"))?;
    let clock = &alarms("OX-1000", "device-clock-off")?[0];
    assert!(clock["description"].as_str().unwrap().starts_with("Device clock off by 6"), "{clock:#}");
    assert_eq!(clock["kind"], "technical");
    let monitor = alarms("MX-00A0", "spo2-low")?;
    assert_eq!(monitor.len(), 1, "the future-dated value stopped the alarm: {last:#?}");
    assert!(monitor[0]["cleared_at"].is_null(), "the future-dated value cleared it: {monitor:#?}");
    assert!(alarms("MX-00A0", "device-clock-off")?.is_empty(), "one outlier moves no clock alarm");
    // The board shows each live device's offset, the lagging one first.
    let board = vigil.status().await?;
    let first = &board["device_clocks"][0];
    assert_eq!(first["device_id"], "OX-1000", "{board:#}");
    assert!((595..=605).contains(&first["offset_secs"].as_i64().unwrap()), "{first}");

    // A wearable syncs 80 s of yesterday's desaturation: stored, no clock alarm, no live alarm.
    let before = site.count("readings")?;
    let start = Utc::now() - chrono::Duration::hours(23);
    let batch: Vec<_> = (0..80)
        .map(|i| json!({"t": (start + chrono::Duration::seconds(i)).timestamp_millis(), "spo2": 80, "q": "ok"}))
        .collect();
    let upload = json!({"device": {"eui64": "00-1B-C5-0C-00-00-00-00"}, "batch": batch});
    let topic = "vigil/devices/00-1B-C5-0C-00-00-00-00/wearable".to_string();
    publish_tracked(port, vec![(topic, upload.to_string().into_bytes())], 10, Duration::from_secs(10), |_| {}).await?;
    site.wait_counts(Duration::from_secs(20), |c| c["readings"].as_i64() == Some(before + 80)).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let band: Vec<_> = site.alarms()?.into_iter().filter(|a| a["device_id"] == "00-1B-C5-0C-00-00-00-00").collect();
    assert!(band.is_empty(), "{band:#?}");
    assert_eq!(of_kind(&site.alarms()?, "physiological").len(), 2, "OX-1000's and MX-00A0's only");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

/// libfaketime from Debian's `faketime` package (the Makefile's test packages install it).
fn libfaketime() -> anyhow::Result<String> {
    let found = std::fs::read_dir("/usr/lib")?
        .filter_map(Result::ok)
        .map(|arch| arch.path().join("faketime/libfaketime.so.1"))
        .find(|lib| lib.exists());
    Ok(found.context("libfaketime.so.1 is missing: install Debian's faketime (make test-deps)")?.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workstation_clock_jump_of_an_hour_raises_clears_escalates_and_unsilences_nothing() -> anyhow::Result<()> {
    let (url, pages) = vigil_tests::webhook().await?;
    let site = Site::new(BrokerKind::Embedded)?;
    site.edit_rules(|r| {
        r.replace("for_secs = 60", "for_secs = 5").replace("escalate_after_secs = 120", "escalate_after_secs = 20")
    })?;
    site.append_config(&format!("[alerts]\nwebhook_url = \"{url}\"\n"))?;
    // Only vigil's wall clock moves, through this file, while it runs; its monotonic clock does not.
    let offset = site.dir.path().join("faketime");
    std::fs::write(&offset, "+0")?;
    let (lib, file) = (libfaketime()?, offset.display().to_string());
    let env = [
        ("LD_PRELOAD", lib.as_str()),
        ("FAKETIME_TIMESTAMP_FILE", &file),
        ("FAKETIME_NO_CACHE", "1"),
        ("DONT_FAKE_MONOTONIC", "1"),
    ];
    let vigil = site.run_with_env(&env)?;
    let port = vigil.mqtt_addr.unwrap().port();
    let desaturate = |seconds: u64| async move {
        for _ in 0..seconds {
            publish_tracked(port, oximeter_spo2(85.0, Utc::now(), 1), 10, Duration::from_secs(10), |_| {}).await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        anyhow::Ok(())
    };

    // A desaturation pages once; the nurse silences it for a minute (its escalation is due at 20 s).
    desaturate(7).await?;
    eventually("the desaturation page", Duration::from_secs(20), async || anyhow::Ok(pages.lock().unwrap().len() == 1))
        .await?;
    let id = site.alarms()?[0]["id"].to_string();
    site.vigil(&["silence", "--config", &site.config_str(), &id, "--minutes", "1", "--reason", "at the bedside"])?;
    desaturate(2).await?;

    // The workstation's clock jumps an hour ahead, then two hours back, while the desaturation goes on.
    for (jump, hours) in [("+3600", 1), ("-3600", -1)] {
        std::fs::write(&offset, jump)?;
        // The board's time is vigil's wall clock: proof that the jump took.
        let at = vigil.status().await?["at"].as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok()).unwrap();
        let ahead = (at.to_utc() - Utc::now()).num_seconds();
        assert!((ahead - hours * 3600).abs() < 60, "vigil's clock is {ahead} s off, expected {hours} h");
        desaturate(10).await?;
    }
    let alarms = site.alarms()?;
    assert_eq!(alarms.len(), 1, "nothing new was raised: {alarms:#?}");
    assert!(alarms[0]["cleared_at"].is_null(), "nothing was cleared: {alarms:#?}");
    let paged = pages.lock().unwrap().clone();
    assert_eq!(paged.len(), 1, "no escalation, no silence lifted, no technical page: {paged:#?}");
    assert_eq!(site.count("quarantined")?, 0, "no reading taken for future-dated");
    assert!(vigil.terminate().await?.success());
    Ok(())
}
