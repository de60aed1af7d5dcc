//! Crash safety: `vigil run` is SIGKILLed in the middle of a QoS 1 burst and restarted; every
//! payload whose PUBACK the publisher received is stored, exactly once. With an external broker
//! (Mosquitto keeps the unacknowledged messages) and with the embedded endpoint (where Vigil itself
//! sends the PUBACK, only after the durable write).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use pipeline_core::simulate::{DeviceKind, SimDevice};
use vigil_tests::{BrokerKind, Mosquitto, Site, VigilProcess, publish_tracked};

const BURST: usize = 20_000;

fn burst() -> (Vec<(String, Vec<u8>)>, Vec<i64>) {
    let device = SimDevice::new("OX-1000", DeviceKind::Oximeter, None, 1);
    let t0 = Utc::now() - chrono::Duration::minutes(30);
    let times: Vec<_> = (0..BURST as i64).map(|i| t0 + chrono::Duration::milliseconds(i * 10)).collect();
    let messages =
        times.iter().map(|t| (device.kind.topic(&device.id), device.payload(*t).to_string().into_bytes())).collect();
    (messages, times.iter().map(|t| t.timestamp_millis()).collect())
}

/// Readings of OX-1000 per observed time (ms).
fn stored_per_time(site: &Site) -> anyhow::Result<HashMap<i64, usize>> {
    let readings =
        site.vigil(&["show", "readings", "--config", &site.config_str(), "--device", "OX-1000", "--limit", "1000000"])?;
    let readings: serde_json::Value = serde_json::from_str(&readings)?;
    let mut per_time = HashMap::new();
    for r in readings.as_array().unwrap() {
        let t = chrono::DateTime::parse_from_rfc3339(r["observed_at"].as_str().unwrap())?.timestamp_millis();
        *per_time.entry(t).or_insert(0) += 1;
    }
    Ok(per_time)
}

fn assert_acked_stored_once(site: &Site, times: &[i64], acked: impl Iterator<Item = usize>) -> anyhow::Result<usize> {
    let per_time = stored_per_time(site)?;
    let mut checked = 0;
    for i in acked {
        // Each oximeter payload holds two readings: SpO2 and pulse rate.
        assert_eq!(per_time.get(&times[i]).copied(), Some(2), "acknowledged payload {i} is not stored exactly once");
        checked += 1;
    }
    assert!(per_time.values().all(|&n| n == 2), "some payload is stored partially or twice");
    Ok(checked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_embedded_endpoint_loses_no_acknowledged_payload() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.expect("endpoint address").port();
    let (messages, times) = burst();
    let mut victim = Some(vigil);
    let published = publish_tracked(port, messages, 500, Duration::from_secs(120), |acked| {
        if acked >= 3000
            && let Some(v) = victim.take()
        {
            v.kill9().expect("SIGKILL vigil");
        }
    })
    .await?;
    assert!(published.broken, "the kill must break the connection mid-burst");
    assert!(published.acked.len() >= 3000 && published.acked.len() < BURST, "acked {}", published.acked.len());

    let restarted = site.run()?;
    let checked = assert_acked_stored_once(&site, &times, published.acked.iter().copied())?;
    assert_eq!(checked, published.acked.len());
    let payloads = site.count("payloads")?;
    assert!(payloads as usize >= published.acked.len(), "{payloads} stored < {} acknowledged", published.acked.len());
    assert!(restarted.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_with_mosquitto_loses_nothing_and_stores_once() -> anyhow::Result<()> {
    let broker = Mosquitto::start().await?;
    let site = Site::new(BrokerKind::External(broker.port))?;
    let vigil: VigilProcess = site.run()?;
    vigil.wait_subscribed(Duration::from_secs(20)).await?;
    let (messages, times) = burst();
    let site_ref = &site;
    let mut victim = Some(vigil);
    let published = publish_tracked(broker.port, messages, 500, Duration::from_secs(120), |acked| {
        // Kill once Vigil has stored part of the burst, so the crash lands mid-stream.
        if acked % 250 == 0 && victim.is_some() && site_ref.count("payloads").unwrap_or(0) >= 2000 {
            victim.take().unwrap().kill9().expect("SIGKILL vigil");
        }
    })
    .await?;
    assert!(victim.is_none(), "vigil was never killed: the burst finished before 2000 payloads were stored");
    assert_eq!(published.acked.len(), BURST, "Mosquitto acknowledges the whole burst");

    // Restart with the same client id: the broker delivers what the dead process never acknowledged.
    let restarted = site.run()?;
    site.wait_counts(Duration::from_secs(120), |c| c["payloads"].as_i64() == Some(BURST as i64)).await?;
    let checked = assert_acked_stored_once(&site, &times, 0..BURST)?;
    assert_eq!(checked, BURST);
    assert_eq!(site.count("readings")?, 2 * BURST as i64);
    assert!(restarted.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_pipeline_on_the_same_store_refuses_to_start_and_cli_commands_still_work() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    let first = site.run()?;
    let second = site.run().err().context("a second vigil run on the same store started")?;
    assert!(second.to_string().contains("exited before it was running"), "{second}");
    assert!(site.log().contains("another Vigil pipeline (vigil run, or a console) already runs on"), "{}", site.log());
    // The CLI works beside the running pipeline, and after it stops, a pipeline starts again.
    assert!(site.count("readings").is_ok());
    assert!(first.terminate().await?.success());
    let again = site.run()?;
    assert!(again.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_ingesting_opens_and_its_audit_log_verifies() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    // A paging sink, so the alert circuit keeps its queue file beside the store.
    let (hook, _paged) = vigil_tests::webhook().await?;
    site.append_config(&format!("[alerts]\nwebhook_url = \"{hook}\"\n"))?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    let device = SimDevice::new("OX-1000", DeviceKind::Oximeter, None, 1);
    let start = Utc::now() - chrono::Duration::seconds(600);
    let burst: Vec<_> = (0..600)
        .map(|i| {
            (
                device.kind.topic(&device.id),
                device.payload(start + chrono::Duration::seconds(i)).to_string().into_bytes(),
            )
        })
        .collect();
    let publishing =
        tokio::spawn(async move { publish_tracked(port, burst, 50, Duration::from_secs(60), |_| {}).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let copy = site.dir.path().join("backup.db");
    let out = site.vigil(&["backup", "--config", &site.config_str(), &copy.to_string_lossy()])?;
    assert!(out.contains("store copied to"), "{out}");
    let queue = std::fs::metadata(site.dir.path().join("backup.db.alert-queue"))?;
    assert_eq!(queue.len(), 1 << 20, "the alert queue file is copied with the store");
    publishing.await??;
    // A second backup to the same file is refused: a backup never overwrites.
    let again = site.vigil(&["backup", "--config", &site.config_str(), &copy.to_string_lossy()]).unwrap_err();
    assert!(again.to_string().contains("exists"), "{again}");
    // The copy opens as a store of its own, its audit chain is intact and it holds its backup entry.
    let config =
        std::fs::read_to_string(&site.config)?.replace("sqlite://vigil.db", &format!("sqlite://{}", copy.display()));
    assert!(config.contains("backup.db"), "the copy's config names the copy: {config}");
    let copy_config = site.dir.path().join("copy.toml");
    std::fs::write(&copy_config, config)?;
    let verified =
        site.vigil(&["audit", "verify", "--config", &site.config_str(), "--backup", &copy.to_string_lossy()])?;
    assert!(verified.contains("intact"), "{verified}");
    let audit = site.vigil(&["audit", "list", "--config", &copy_config.to_string_lossy()])?;
    assert!(audit.contains("store.backup") && audit.contains(vigil_tests::ADMIN.0), "{audit}");
    let counts: serde_json::Value =
        serde_json::from_str(&site.vigil(&["show", "counts", "--config", &copy_config.to_string_lossy()])?)?;
    assert!(counts["payloads"].as_i64().is_some(), "{counts}");
    assert!(vigil.terminate().await?.success());
    Ok(())
}

/// A way to damage a database file.
type Damage = fn(&std::path::Path) -> std::io::Result<()>;

/// The decision for a damaged database (docs/decisions.md): Vigil refuses to start on it and says how
/// to restore, rather than run the alarm path without the pairings the store holds. A database whose
/// header is overwritten, and one cut short, are both met this way; the backup then restores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_database_is_refused_at_start_with_how_to_restore_it() -> anyhow::Result<()> {
    let site = Site::new(BrokerKind::Embedded)?;
    let db = site.dir.path().join("vigil.db");
    let good = site.dir.path().join("good.db");
    site.vigil(&["backup", "--config", &site.config_str(), &good.to_string_lossy()])?;
    let damages: [(&str, Damage); 2] = [
        ("header overwritten", |db| {
            let mut bytes = std::fs::read(db)?;
            bytes[..100].fill(0x5a);
            std::fs::write(db, bytes)
        }),
        ("cut short", |db| {
            let len = std::fs::metadata(db)?.len();
            std::fs::OpenOptions::new().write(true).open(db)?.set_len(len / 2)
        }),
    ];
    for (what, damage) in damages {
        let _ = std::fs::remove_file(site.dir.path().join("vigil.db-wal"));
        let _ = std::fs::remove_file(site.dir.path().join("vigil.db-shm"));
        std::fs::copy(&good, &db)?;
        damage(&db)?;
        let refused = site.run().err().with_context(|| format!("vigil run started on a database {what}"))?;
        assert!(refused.to_string().contains("exited before it was running"), "{what}: {refused}");
        let log = site.log();
        let said = log.lines().rev().find(|l| l.contains("is damaged")).unwrap_or_default();
        assert!(said.contains("vigil backup") && said.contains("move"), "{what}: says how to restore: {log}");
    }
    // Restored from the backup, as the message says.
    std::fs::copy(&good, &db)?;
    let vigil = site.run()?;
    assert!(vigil.terminate().await?.success());
    Ok(())
}
