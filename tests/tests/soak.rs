//! The soak (`make soak`; not part of `make test`): a clinic's load for `SOAK_SECS` (default an hour)
//! with faults every few minutes, in turn: the EHR stops answering for 30 s, the broker restarts,
//! another process holds the store's write lock for 10 s. 50 oximeters, each paired with a patient
//! known to the FHIR test server, publish one payload a second through Mosquitto; now and then one of
//! them desaturates for 10 s, and the soak logs each episode it injects.
//!
//! At the end: every published payload is stored exactly once (nothing lost, nothing twice), and
//! every reading is stored, quarantined or held; every event reached the FHIR server exactly once,
//! counted by identifier; every injected episode was paged. The figures go to the log for
//! `docs/benchmarks.md`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use pipeline_core::simulate::{DeviceKind, SimDevice};
use rumqttc::{AsyncClient, QoS};
use sqlx::Connection;
use vigil_tests::{BrokerKind, DEMO_SYSTEM, FhirServer, Mosquitto, Site, eventually, webhook, with_status};

const DEVICES: usize = 50;

/// The desaturations injected: which device, from when.
type Episodes = Arc<std::sync::Mutex<Vec<(String, chrono::DateTime<Utc>)>>>;
const EPISODE_SECS: i64 = 10;

fn device_id(n: usize) -> String {
    format!("OX-{}", 2000 + n)
}

fn mrn(n: usize) -> String {
    format!("SOAK-{n:04}")
}

/// A broker that keeps its sessions and queues across a restart (saved on SIGTERM). Run as root,
/// Mosquitto drops to its own user, so its directory must be writable by that user: without it the
/// save fails, every session is lost, and clients drop what they still held (seen in the first run).
async fn broker(port: u16, dir: &std::path::Path) -> anyhow::Result<Mosquitto> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))?;
    Mosquitto::start_on(port, &format!("persistence true\npersistence_location {}/\n", dir.display())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "runs for SOAK_SECS (an hour by default): make soak"]
async fn a_clinic_through_outages_loses_nothing_and_pages_every_episode() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3600);
    let fault_every = Duration::from_secs((secs / 12).clamp(60, 300));
    let fhir = FhirServer::start(&[])?;
    let broker_dir = tempfile::tempdir()?;
    let port = vigil_tests::free_port();
    let mut mosquitto = Some(broker(port, broker_dir.path()).await?);
    let (hook, paged) = webhook().await?;

    let site = Site::new(BrokerKind::External(port))?;
    site.edit_rules(|r| {
        r.replace("below = 90.0\nclear_at = 92.0\nfor_secs = 60", "below = 90.0\nclear_at = 92.0\nfor_secs = 5")
    })?;
    site.append_config(&format!(
        "[ehr]\nkind = \"fhir\"\nbase_url = \"{}\"\ntimeout_secs = 2\nmax_backoff_secs = 5\n[alerts]\nwebhook_url = \"{hook}\"\n",
        fhir.base
    ))?;
    let mut registry = String::from("organisation = \"demo-clinic\"\nverified_by = \"soak\"\n");
    for n in 0..DEVICES {
        registry.push_str(&format!(
            "[[patients]]\nsystem = \"{DEMO_SYSTEM}\"\nvalue = \"{}\"\nname = \"Soak {n}\"\nconsent = [\"store\", \"ehr-write\"]\n\
             devices = [{{ id = \"{}\", profile = \"acme-ox100\", label = \"Soak {n}\" }}]\n",
            mrn(n),
            device_id(n)
        ));
        fhir.create(
            serde_json::json!({"resourceType": "Patient", "identifier": [{"system": DEMO_SYSTEM, "value": mrn(n)}]}),
        )
        .await?;
    }
    let file = site.dir.path().join("soak-registry.toml");
    std::fs::write(&file, registry)?;
    site.vigil(&["import-registry", "--config", &site.config_str(), &file.to_string_lossy()])?;
    for n in 0..DEVICES {
        site.pair_anew(&device_id(n), &mrn(n))?;
    }
    let vigil = site.run()?;
    vigil.wait_subscribed(Duration::from_secs(30)).await?;

    // Publishers: one persistent session per device, publishing once a second; the client resends
    // what the broker did not acknowledge after a restart.
    let published = Arc::new(AtomicU64::new(0));
    let episodes: Episodes = Arc::default();
    let started = Instant::now();
    let run_for = Duration::from_secs(secs);
    let mut publishers = Vec::new();
    for n in 0..DEVICES {
        let (published, episodes) = (published.clone(), episodes.clone());
        publishers.push(tokio::spawn(async move {
            let device = SimDevice::new(&device_id(n), DeviceKind::Oximeter, None, n as u64);
            let mut opts = vigil_tests::publisher_options(format!("soak-{n}-{}", std::process::id()), port);
            opts.set_clean_session(false).set_keep_alive(Duration::from_secs(5)).set_inflight(100);
            let (client, mut eventloop) = AsyncClient::new(opts, 100);
            tokio::spawn(async move {
                loop {
                    if eventloop.poll().await.is_err() {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            });
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            // Each device desaturates once in its turn: episodes spread over the run, each ending
            // well before it does (one cut short would not last the rule's 5 s).
            let span = run_for.saturating_sub(Duration::from_secs(EPISODE_SECS as u64 + 10));
            let episode_at = span.mul_f64((n as f64 + 0.5) / DEVICES as f64);
            let mut low_until = None;
            while started.elapsed() < run_for {
                tick.tick().await;
                let now = Utc::now();
                if low_until.is_none() && started.elapsed() >= episode_at {
                    low_until = Some(now + chrono::Duration::seconds(EPISODE_SECS));
                    episodes.lock().unwrap().push((device.id.clone(), now));
                    eprintln!("soak: desaturation injected on {} at {now}", device.id);
                }
                let mut payload = device.payload(now);
                payload["spo2"] = serde_json::json!(if low_until.is_some_and(|u| now < u) { 84 } else { 97 });
                client.publish(device.kind.topic(&device.id), QoS::AtLeastOnce, false, payload.to_string()).await?;
                published.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }

    // Faults, in turn, every `fault_every`.
    let mut faults: HashMap<&str, u32> = HashMap::new();
    let mut turn = 0;
    while started.elapsed() + fault_every < run_for {
        tokio::time::sleep(fault_every).await;
        let kind = ["ehr outage", "broker restart", "store stall"][turn % 3];
        turn += 1;
        *faults.entry(kind).or_default() += 1;
        eprintln!("soak: {kind} at {}", Utc::now());
        match kind {
            "ehr outage" => {
                fhir.pause();
                tokio::time::sleep(Duration::from_secs(30)).await;
                fhir.resume();
            }
            "broker restart" => {
                mosquitto.take().expect("the broker runs").stop_gracefully()?;
                tokio::time::sleep(Duration::from_secs(5)).await;
                mosquitto = Some(broker(port, broker_dir.path()).await?);
            }
            _ => {
                let db = site.dir.path().join("vigil.db");
                let mut blocker = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await?;
                sqlx::query("BEGIN EXCLUSIVE").execute(&mut blocker).await?;
                tokio::time::sleep(Duration::from_secs(10)).await;
                sqlx::query("COMMIT").execute(&mut blocker).await?;
                blocker.close().await?;
            }
        }
    }
    for p in publishers {
        p.await??;
    }
    let total = published.load(Ordering::Relaxed) as i64;
    let counts = site.wait_counts(Duration::from_secs(300), |c| c["payloads"].as_i64() >= Some(total)).await?;
    assert_eq!(counts["payloads"].as_i64(), Some(total), "every payload stored exactly once: {counts}");
    let readings = ["readings", "quarantined", "held"].iter().map(|k| counts[k].as_i64().unwrap_or(0)).sum::<i64>();
    assert_eq!(readings, 2 * total, "every reading stored, quarantined or held: {counts}");
    assert_eq!(counts["rejected"].as_i64(), Some(0), "{counts}");

    // Every event at the FHIR server exactly once, by identifier.
    let outbox = site.wait_outbox(Duration::from_secs(300), |o| with_status(o, "pending") == 0).await?;
    let delivered = with_status(&outbox, "delivered");
    assert_eq!(with_status(&outbox, "dead"), 0, "{outbox:#?}");
    let mut identifiers = HashSet::new();
    let mut url = "Observation?_count=1000".to_string();
    let mut seen = 0;
    loop {
        let page = fhir.get(&url).await?;
        for e in page["entry"].as_array().into_iter().flatten() {
            seen += 1;
            for id in e["resource"]["identifier"].as_array().into_iter().flatten() {
                identifiers.insert(format!("{}|{}", id["system"], id["value"]));
            }
        }
        match page["link"].as_array().into_iter().flatten().find(|l| l["relation"] == "next") {
            Some(next) => {
                url = next["url"].as_str().unwrap_or_default().split("/fhir/R4/").last().unwrap_or_default().to_string()
            }
            None => break,
        }
    }
    assert_eq!(seen, identifiers.len(), "an Observation at the EHR twice");
    assert!(seen >= delivered, "{seen} Observations for {delivered} delivered events");

    // Every injected episode paged.
    let episodes = episodes.lock().unwrap().clone();
    let unpaged = || {
        let pages = paged.lock().unwrap();
        let paged_for = |device: &str| pages.iter().any(|p| p["rule_id"] == "spo2-low" && p["device_id"] == device);
        episodes.iter().filter(|(device, _)| !paged_for(device)).cloned().collect::<Vec<_>>()
    };
    let all_paged =
        eventually("a page for every episode", Duration::from_secs(60), async || unpaged().is_empty()).await;
    all_paged.map_err(|e| anyhow::anyhow!("{e}: not paged: {:?}", unpaged()))?;
    eprintln!(
        "soak: {secs} s, {DEVICES} devices: {total} payloads published and stored once, {} readings; \
         {delivered} events delivered, {seen} Observations at the EHR; {} episodes, each paged; faults {faults:?}",
        2 * total,
        episodes.len()
    );
    assert!(vigil.terminate().await?.success());
    drop(mosquitto);
    Ok(())
}
