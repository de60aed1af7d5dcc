//! Overload is pushback, never loss: while the store cannot commit, nothing is acknowledged; the
//! writer takes payloads (and the rules see them) up to its bound of unstored payloads, the ingest
//! queue then fills to its own bound, and the endpoint stops reading from the device; once the store
//! recovers, everything is stored exactly once and acknowledged.

use std::time::Duration;

use chrono::Utc;
use pipeline_core::config::Config;
use pipeline_core::pipeline;
use pipeline_core::simulate::{DeviceKind, SimDevice};
use pipeline_core::{clock, registry_import};
use sqlx::Connection;
use vigil_tests::{eventually, fixture, publish_tracked};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_store_pushes_back_and_loses_nothing() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("vigil.db");
    let mut config = Config::default();
    config.store.url = format!("sqlite://{}", db.display());
    config.profiles.dir = fixture("profiles");
    config.broker.listen = "127.0.0.1:0".into();
    config.status.listen = "127.0.0.1:0".into();
    config.identity.organisation = "demo-clinic".into();
    config.ingest.queue_capacity = 64;
    config.ingest.batch_max = 32;
    config.ingest.unstored_max = 100;
    // The pipeline runs in this process, without a site's credentials: what is measured here is
    // pushback, not the door.
    config.sources.mqtt.allow_anonymous = true;
    let handle = pipeline::start(&config, clock::system()).await?;
    registry_import::import(handle.store().as_ref(), &fixture("demo/registry.toml"), chrono::Utc::now(), "test")
        .await?;
    let port = handle.mqtt_listen_addr().unwrap().port();

    // Another process holds SQLite's write lock: every commit of the writer must wait.
    let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await?;
    sqlx::query("BEGIN IMMEDIATE").execute(&mut blocker).await?;

    let device = SimDevice::new("OX-1000", DeviceKind::Oximeter, None, 1);
    let t0 = Utc::now() - chrono::Duration::minutes(10);
    let messages: Vec<_> = (0..2000)
        .map(|i| {
            (
                device.kind.topic(&device.id),
                device.payload(t0 + chrono::Duration::milliseconds(i)).to_string().into_bytes(),
            )
        })
        .collect();
    let publisher = tokio::spawn(publish_tracked(port, messages, 2000, Duration::from_secs(120), |_| {}));

    // The writer takes up to its bound, the queue fills to its own and stays there: the endpoint
    // waits instead of dropping.
    eventually("the writer's bound reached and a full ingest queue", Duration::from_secs(30), async || {
        handle.unstored() == 100 && handle.queue_depth() == 64
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((handle.unstored(), handle.queue_depth()), (100, 64), "taken in up to the bound, no further");
    assert_eq!(handle.tally().payloads, 0, "nothing can be committed while the store is locked");
    assert!(!publisher.is_finished(), "no PUBACK may leave before the commit");

    sqlx::query("ROLLBACK").execute(&mut blocker).await?;
    let published = publisher.await??;
    assert_eq!(published.acked.len(), 2000);
    let tally = handle.tally();
    assert_eq!((tally.payloads, tally.stored, tally.duplicate_payloads), (2000, 4000, 0));
    handle.shutdown().await;
    Ok(())
}
