//! Whatever the peers and the store do, a stop ends Vigil within 5 s: here an EHR that accepts the
//! connection and never answers (an event in flight, with a 30 s timeout) and a store whose write
//! lock another process holds (payloads waiting, unacknowledged). What was not stored was not
//! acknowledged, so it comes again; the event stays queued.

use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::Connection;
use vigil_tests::{BrokerKind, Site, component, oximeter_spo2, publish_tracked};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_takes_at_most_5_s_whatever_the_ehr_and_the_store_do() -> anyhow::Result<()> {
    // An "EHR" that accepts every connection and then neither reads nor answers.
    let ehr = std::net::TcpListener::bind("127.0.0.1:0")?;
    let ehr_addr = ehr.local_addr()?;
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in ehr.incoming().flatten() {
            held.push(stream);
        }
    });
    let site = Site::new(BrokerKind::Embedded)?;
    site.append_config(&format!(
        "[ehr]\nkind = \"hl7v2\"\nmllp_address = \"{ehr_addr}\"\ntimeout_secs = 30\nmax_backoff_secs = 30\n"
    ))?;
    site.for_patient("event", "MX-00A0", "MRN-100000", &["--obs", "150456=97"])?;
    let vigil = site.run()?;
    let port = vigil.mqtt_addr.unwrap().port();

    let db = site.dir.path().join("vigil.db");
    let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await?;
    sqlx::query("BEGIN EXCLUSIVE").execute(&mut blocker).await?;
    let messages = oximeter_spo2(97.0, Utc::now() - chrono::Duration::seconds(60), 50);
    let publisher = tokio::spawn(publish_tracked(port, messages, 100, Duration::from_secs(60), |_| {}));
    vigil.wait_status(Duration::from_secs(15), |s| component(s, "store")["state"] == "down").await?;

    let asked = Instant::now();
    let status = vigil.terminate().await?;
    let took = asked.elapsed();
    assert!(took <= Duration::from_secs(5), "the stop took {took:?}");
    assert!(status.success(), "{status}");
    publisher.abort();
    sqlx::query("ROLLBACK").execute(&mut blocker).await?;
    blocker.close().await?;
    let outbox = site.outbox()?;
    assert_eq!(vigil_tests::with_status(&outbox, "pending"), 1, "the event in flight stays queued: {outbox:#?}");
    Ok(())
}
