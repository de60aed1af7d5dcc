//! No store fault silences an alarm. With SQLite answering "disk full" mid-burst (a test-only page
//! ceiling), or its write lock held by another process for 10 s: nothing is acknowledged that is not
//! stored; a desaturation that arrives meanwhile still pages the ward within 5 s; "Storage failing"
//! pages both the ward and biomed; once the store has room again everything is stored, exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;
use sqlx::Connection;
use vigil_tests::{
    BrokerKind, Mosquitto, Received, Site, VigilProcess, component, eventually, of_kind, oximeter_spo2_from,
    publish_tracked, webhook,
};

/// Messages of the filling burst: fewer than an external broker's in-flight window (1000, as the
/// docs require), so the desaturation behind them reaches Vigil while the store is full.
const BURST: usize = 900;

struct Peers {
    site: Site,
    clinical: Received,
    technical: Received,
}

/// A site whose SpO2 rule completes after 5 s, with clinical and technical webhooks, drills on, and
/// (for the disk-full tests) a page ceiling a little above what the store holds now.
async fn peers(broker: BrokerKind, room_pages: Option<u32>) -> anyhow::Result<Peers> {
    let (clinical_url, clinical) = webhook().await?;
    let (technical_url, technical) = webhook().await?;
    let site = Site::new(broker)?;
    site.edit_rules(|r| {
        r.replace("below = 90.0\nclear_at = 92.0\nfor_secs = 60", "below = 90.0\nclear_at = 92.0\nfor_secs = 5")
    })?;
    site.pair_anew("OX-1000", "MRN-100000")?;
    site.pair_anew("OX-1001", "MRN-100002")?;
    if let Some(room) = room_pages {
        let db = site.dir.path().join("vigil.db");
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await?;
        let (pages,): (i64,) = sqlx::query_as("PRAGMA page_count").fetch_one(&mut conn).await?;
        conn.close().await?;
        let config = std::fs::read_to_string(&site.config)?.replacen(
            "url = \"sqlite://vigil.db\"",
            &format!("url = \"sqlite://vigil.db\"\ntest_max_pages = {}", pages as u32 + room),
            1,
        );
        std::fs::write(&site.config, config)?;
    }
    site.append_config(&format!(
        "[alerts]\nwebhook_url = \"{clinical_url}\"\ntechnical_webhook_url = \"{technical_url}\"\n"
    ))?;
    let config = std::fs::read_to_string(&site.config)?.replacen("[status]\n", "[status]\ndrills = true\n", 1);
    std::fs::write(&site.config, config)?;
    Ok(Peers { site, clinical, technical })
}

fn paged(received: &Received, rule: &str) -> Vec<Value> {
    received.lock().unwrap().iter().filter(|p| p["rule_id"] == rule).cloned().collect()
}

fn store_state(status: &Value) -> String {
    component(status, "store")["state"].as_str().unwrap_or_default().to_string()
}

/// The burst that fills (or waits on) the store, from OX-1000, with its acknowledged count shared.
fn burst(port: u16, acked: Arc<AtomicUsize>) -> tokio::task::JoinHandle<anyhow::Result<vigil_tests::Published>> {
    let start = Utc::now() - chrono::Duration::seconds(BURST as i64 + 60);
    let messages = oximeter_spo2_from("OX-1000", 97.0, start, BURST as i64);
    tokio::spawn(publish_tracked(port, messages, 100, Duration::from_secs(180), move |n| {
        acked.store(n, Ordering::Relaxed)
    }))
}

/// A desaturation from OX-1001 while the store cannot write: the ward is paged within 5 s of the
/// reading that completes the rule. Vigil's own endpoint does not acknowledge it (a broker does).
async fn desaturation_pages_while_the_store_fails(peers: &Peers, port: u16, embedded: bool) -> anyhow::Result<()> {
    let desat = oximeter_spo2_from("OX-1001", 84.0, Utc::now() - chrono::Duration::seconds(8), 8);
    let sent = Instant::now();
    let publisher = tokio::spawn(publish_tracked(port, desat, 100, Duration::from_secs(120), |_| {}));
    eventually("the desaturation page", Duration::from_secs(10), async || {
        !paged(&peers.clinical, "spo2-low").is_empty()
    })
    .await?;
    let took = sent.elapsed();
    assert!(took <= Duration::from_secs(5), "paged {took:?} after the completing reading was sent");
    if embedded {
        assert!(!publisher.is_finished(), "the desaturation itself is not acknowledged: it is not stored yet");
    }
    publisher.abort();
    Ok(())
}

/// "Storage failing" reaches both webhooks, as a high-priority alarm for both desks.
async fn storage_failing_pages_both_desks(peers: &Peers) -> anyhow::Result<()> {
    eventually("'Storage failing' at both desks", Duration::from_secs(20), async || {
        !paged(&peers.clinical, "store_failing").is_empty() && !paged(&peers.technical, "store_failing").is_empty()
    })
    .await?;
    let page = &paged(&peers.technical, "store_failing")[0];
    assert_eq!((page["priority"].as_str(), page["audience"].as_str()), (Some("high"), Some("both")));
    assert!(
        of_kind(&paged(&peers.technical, "spo2-low"), "physiological").is_empty(),
        "biomed is not paged for a patient"
    );
    Ok(())
}

/// After the store recovers: every message of the burst acknowledged, each stored once.
async fn nothing_lost(
    peers: &Peers,
    vigil: &VigilProcess,
    publisher: tokio::task::JoinHandle<anyhow::Result<vigil_tests::Published>>,
    expected: usize,
) -> anyhow::Result<()> {
    let published = publisher.await??;
    assert_eq!(published.acked.len(), BURST, "every message of the burst acknowledged in the end");
    vigil.wait_status(Duration::from_secs(30), |s| store_state(s) == "up").await?;
    let counts =
        peers.site.wait_counts(Duration::from_secs(30), |c| c["payloads"].as_i64() >= Some(expected as i64)).await?;
    assert_eq!(counts["payloads"].as_i64(), Some(expected as i64), "each payload stored once: {counts}");
    Ok(())
}

async fn disk_full(broker: BrokerKind) -> anyhow::Result<()> {
    let peers = peers(broker, Some(40)).await?;
    let vigil = peers.site.run()?;
    let port = match broker {
        BrokerKind::Embedded => vigil.mqtt_addr.unwrap().port(),
        BrokerKind::External(port) => {
            vigil.wait_subscribed(Duration::from_secs(15)).await?;
            port
        }
    };
    let acked = Arc::new(AtomicUsize::new(0));
    let publisher = burst(port, acked.clone());
    let status = vigil.wait_status(Duration::from_secs(60), |s| store_state(s) == "down").await?;
    assert!(
        component(&status, "store")["reason"].as_str().unwrap_or_default().contains("full"),
        "the board says why: {status:#}"
    );
    if broker == BrokerKind::Embedded {
        // No PUBACK for what is not stored: acknowledged never runs ahead of the inbox.
        for _ in 0..3 {
            let stored = peers.site.count("payloads")?;
            let acknowledged = acked.load(Ordering::Relaxed) as i64;
            assert!(acknowledged <= stored, "{acknowledged} acknowledged, {stored} stored");
            assert!(acknowledged < BURST as i64, "the store filled before the burst ended");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    desaturation_pages_while_the_store_fails(&peers, port, broker == BrokerKind::Embedded).await?;
    storage_failing_pages_both_desks(&peers).await?;

    vigil.post_status("/drill/store/space").await?.error_for_status()?;
    // The burst, and the 8 desaturation payloads Vigil took in (and evaluated) while it could not
    // store them.
    nothing_lost(&peers, &vigil, publisher, BURST + 8).await?;
    assert!(vigil.terminate().await?.success());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_acknowledgements_but_not_alarms() -> anyhow::Result<()> {
    disk_full(BrokerKind::Embedded).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_behind_mosquitto_as_the_docs_configure_it() -> anyhow::Result<()> {
    let broker = Mosquitto::start_on(vigil_tests::free_port(), "max_inflight_messages 1000\n").await?;
    disk_full(BrokerKind::External(broker.port)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_locked_by_another_process_for_10_s_does_not_silence_alarms() -> anyhow::Result<()> {
    let peers = peers(BrokerKind::Embedded, None).await?;
    let vigil = peers.site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();
    let db = peers.site.dir.path().join("vigil.db");
    let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await?;
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut blocker).await?;
    let locked = Instant::now();
    let acked = Arc::new(AtomicUsize::new(0));
    let publisher = burst(port, acked.clone());
    desaturation_pages_while_the_store_fails(&peers, port, true).await?;
    assert!(locked.elapsed() < Duration::from_secs(10), "paged while the store was locked");
    storage_failing_pages_both_desks(&peers).await?;
    assert_eq!(acked.load(Ordering::Relaxed), 0, "nothing acknowledged while the store is locked");
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(locked.elapsed())).await;
    sqlx::query("COMMIT").execute(&mut blocker).await?;
    blocker.close().await?;
    nothing_lost(&peers, &vigil, publisher, BURST + 8).await?;
    assert!(vigil.terminate().await?.success());
    Ok(())
}
