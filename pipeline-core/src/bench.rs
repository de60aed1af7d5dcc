//! `vigil bench`: end-to-end ingest throughput, from MQTT publishers to readings durably stored.
//!
//! A benchmark, not a test: it measures, it asserts nothing. It runs the real pipeline in-process on a
//! fresh SQLite store, with publishers on the same machine (as on a clinic's one workstation), and
//! stops the clock when the last expected reading is committed.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};

use crate::access::Login;
use crate::config::{BrokerMode, Config};
use crate::identify::{Flow, NewPairing};
use crate::pipeline;
use crate::simulate::{DeviceKind, SimDevice};
use crate::store::{PatientIdentifier, Store};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Payloads in all.
    pub payloads: usize,
    /// Concurrent publishing connections (one simulated device each).
    pub publishers: usize,
    /// The payload shape.
    pub kind: DeviceKind,
    /// Run a Mosquitto (from PATH) and subscribe to it instead of using the embedded endpoint.
    pub mosquitto: bool,
    /// The device profiles directory.
    pub profiles: std::path::PathBuf,
}

/// What was measured.
#[derive(Debug, Clone)]
pub struct BenchResult {
    /// Payloads stored.
    pub payloads: u64,
    /// Readings stored.
    pub readings: u64,
    /// From the first publish to the last commit.
    pub elapsed: Duration,
}

impl BenchResult {
    /// Readings per second.
    pub fn readings_per_sec(&self) -> f64 {
        self.readings as f64 / self.elapsed.as_secs_f64()
    }

    /// Payloads per second.
    pub fn payloads_per_sec(&self) -> f64 {
        self.payloads as f64 / self.elapsed.as_secs_f64()
    }
}

struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_mosquitto(dir: &Path) -> anyhow::Result<(Broker, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\nlog_type error\n"
        ),
    )?;
    let child = Command::new("mosquitto").arg("-c").arg(&conf).stdout(Stdio::null()).spawn()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((Broker(child), port))
}

/// Runs one measurement.
pub async fn ingest_throughput(options: &BenchOptions) -> anyhow::Result<BenchResult> {
    let dir = tempfile_dir()?;
    let mut config = Config::default();
    config.store.url = format!("sqlite://{}", dir.join("bench.db").display());
    config.profiles.dir = options.profiles.clone();
    config.broker.listen = "127.0.0.1:0".into();
    config.status.listen = "127.0.0.1:0".into();
    let _broker = if options.mosquitto {
        let (broker, port) = start_mosquitto(&dir)?;
        config.broker.mode = BrokerMode::External;
        config.broker.url = Some(format!("mqtt://127.0.0.1:{port}"));
        config.sources.mqtt.client_id = format!("vigil-bench-{}", std::process::id());
        Some((broker, port))
    } else {
        None
    };
    let login = provision_login(&config).await?;
    let handle = pipeline::start(&config, crate::clock::system()).await?;
    let store = handle.store().clone();
    let patient = PatientIdentifier { organisation: "default".into(), system: "urn:bench".into(), value: "B-1".into() };
    let patient = store.upsert_patient(&patient, None, Some("bench"), "bench").await?;
    store.set_consent(patient, Flow::Store, true, "bench").await?;
    let devices: Vec<SimDevice> = (0..options.publishers)
        .map(|n| SimDevice::new(&options.kind.device_id(n), options.kind, None, n as u64))
        .collect();
    for d in &devices {
        store.register_device(&d.id, Some(options.kind.profile_id()), None, "bench").await?;
        pair_since_yesterday(store.as_ref(), &d.id, patient).await?;
    }
    let port = match &_broker {
        Some((_, port)) => *port,
        None => handle.mqtt_listen_addr().map(|a| a.port()).ok_or_else(|| anyhow::anyhow!("no endpoint"))?,
    };
    if options.mosquitto {
        // Let the subscription settle before the clock starts.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let per_publisher = options.payloads / options.publishers.max(1);
    let expected_payloads = (per_publisher * devices.len()) as u64;
    // The wearable payload carries 2 mapped values per sample.
    let expected_readings = expected_payloads * options.kind.readings_per_payload() as u64;
    let started = Instant::now();
    let mut publishers = Vec::new();
    for (n, device) in devices.into_iter().enumerate() {
        publishers.push(tokio::spawn(publish_burst(port, login.clone(), n, device, per_publisher)));
    }
    loop {
        let tally = handle.tally();
        if tally.stored >= expected_readings {
            break;
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "bench did not finish in 10 minutes: {tally:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    for p in publishers {
        p.await??;
    }
    let tally = handle.tally();
    handle.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(BenchResult { payloads: tally.payloads, readings: tally.stored, elapsed })
}

/// HL7 v2 throughput: `connections` gateways each send `messages / connections` ORU^R01 messages
/// (SpO2 and pulse rate of one device each) over MLLP, one at a time as MLLP does, each waiting for
/// its ACK; the clock stops at the last AA, which Vigil sends only once the message is stored.
pub async fn mllp_throughput(messages: usize, connections: usize, profiles: &Path) -> anyhow::Result<BenchResult> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = tempfile_dir()?;
    let mut config = Config::default();
    config.store.url = format!("sqlite://{}", dir.join("bench.db").display());
    config.profiles.dir = profiles.to_path_buf();
    config.sources.mqtt.enabled = false;
    config.status.listen = "127.0.0.1:0".into();
    config.sources.mllp = Some(crate::config::MllpSourceConfig {
        listen: "127.0.0.1:0".into(),
        allow: vec!["127.0.0.1".into()],
        ..Default::default()
    });
    let handle = pipeline::start(&config, crate::clock::system()).await?;
    let store = handle.store().clone();
    let patient = PatientIdentifier { organisation: "default".into(), system: "urn:bench".into(), value: "B-1".into() };
    let patient = store.upsert_patient(&patient, None, Some("bench"), "bench").await?;
    store.set_consent(patient, Flow::Store, true, "bench").await?;
    let devices: Vec<String> = (0..connections.max(1)).map(|n| format!("001BC50C{n:08X}")).collect();
    for device in &devices {
        store.register_device(device, Some(crate::normalise::pcd01::PROFILE_ID), None, "bench").await?;
        pair_since_yesterday(store.as_ref(), device, patient).await?;
    }
    let addr = handle.mllp_listen_addr().ok_or_else(|| anyhow::anyhow!("no MLLP listener"))?;
    let per_connection = messages / devices.len();
    let t0 = Utc::now() - chrono::Duration::seconds(per_connection as i64 + 60);
    let started = Instant::now();
    let mut gateways = Vec::new();
    for (n, device) in devices.into_iter().enumerate() {
        gateways.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let mut reader = crate::hl7::FrameReader::new(1 << 20, 0);
            let mut buffer = bytes::BytesMut::new();
            for i in 0..per_connection {
                let at = (t0 + chrono::Duration::seconds(i as i64)).format("%Y%m%d%H%M%S+0000");
                let message = format!(
                    "MSH|^~\\&|BENCH-GW-{n}|WARD|VIGIL|CLINIC|{at}||ORU^R01^ORU_R01|B{n}-{i}|P|2.6\r\
                     PID|||B-1^^^urn:bench^MR\r\
                     OBR|1|||182777000^monitoring of patient^SCT|||{at}\r\
                     OBX|1||69965^MDC_DEV_MON_PHYSIO_MULTI_PARAM_MDS^MDC|1.0.0.0|||||||X|||||||{device}^^{device}^EUI-64\r\
                     OBX|2|NM|150456^MDC_PULS_OXIM_SAT_O2^MDC|1.1.1.150456|{}|262688^MDC_DIM_PERCENT^MDC|||||R\r\
                     OBX|3|NM|149530^MDC_PULS_OXIM_PULS_RATE^MDC|1.1.1.149530|{}|264864^MDC_DIM_BEAT_PER_MIN^MDC|||||R\r",
                    90 + i % 10,
                    60 + i % 40
                );
                stream.write_all(&crate::hl7::frame(message.as_bytes())).await?;
                let ack = loop {
                    if let Some(crate::hl7::Frame::Message(ack)) = reader.take(&mut buffer) {
                        break ack;
                    }
                    anyhow::ensure!(stream.read_buf(&mut buffer).await? > 0, "Vigil closed the connection");
                };
                let ack = String::from_utf8_lossy(&ack);
                anyhow::ensure!(ack.contains("\rMSA|AA|"), "not accepted: {ack}");
            }
            anyhow::Ok(())
        }));
    }
    for g in gateways {
        g.await??;
    }
    let elapsed = started.elapsed();
    let tally = handle.tally();
    handle.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(BenchResult { payloads: tally.payloads, readings: tally.stored, elapsed })
}

/// Pairs a bench device from a day ago, so every reading it sends finds the pairing.
async fn pair_since_yesterday(store: &dyn Store, device_id: &str, patient_id: i64) -> anyhow::Result<()> {
    let new = NewPairing {
        device_id,
        patient_id,
        from: Utc::now() - chrono::Duration::days(1),
        until: None,
        reason: Some("bench: back-dated so every reading finds the pairing"),
        replacing: None,
    };
    store.pair(&new, "bench").await?;
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("vigil-bench-{}-{}", std::process::id(), Utc::now().timestamp_millis()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A gateway credential (`*`) for the bench's publishers, made through the facade before the
/// endpoint opens: the measured path includes the CONNECT check, as at a site.
async fn provision_login(config: &Config) -> anyhow::Result<Login> {
    let admin = crate::api::Admin::open(config.clone(), crate::clock::system()).await?;
    let issued = admin.add_credential(&crate::api::Actor::system("bench"), "bench", &["*".to_string()]).await?;
    Ok(Login { username: issued.username, secret: issued.secret })
}

/// A publisher's options, with the bench's credential.
fn publisher(client_id: String, port: u16, login: &Login) -> MqttOptions {
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30)).set_credentials(login.username.clone(), login.secret.clone());
    opts
}

/// One connection publishing `count` distinct payloads as fast as the window allows.
async fn publish_burst(port: u16, login: Login, n: usize, device: SimDevice, count: usize) -> anyhow::Result<()> {
    let mut opts = publisher(format!("bench-pub-{n}-{}", std::process::id()), port, &login);
    opts.set_inflight(1000).set_max_packet_size(64 * 1024, 64 * 1024);
    let (client, mut eventloop) = AsyncClient::new(opts, 1000);
    // All in the past, so none is quarantined as a future time.
    let t0 = Utc::now() - chrono::Duration::milliseconds(count as i64 * 1_429) - chrono::Duration::minutes(1);
    let topic = device.kind.topic(&device.id);
    let feeder = tokio::spawn(async move {
        for i in 0..count {
            // Wearable samples are 1 s apart within a payload: space payloads so none overlap.
            let at = t0 + chrono::Duration::milliseconds(i as i64 * 10_000 / 7);
            let payload = device.payload(at).to_string();
            client.publish(topic.clone(), QoS::AtLeastOnce, false, payload).await?;
        }
        anyhow::Ok(())
    });
    let mut acked = 0;
    while acked < count {
        if let Event::Incoming(Incoming::PubAck(_)) = eventloop.poll().await? {
            acked += 1;
        }
    }
    feeder.await?
}

/// What the alarm-latency benchmark measured.
#[derive(Debug, Clone)]
pub struct LatencyResult {
    /// Alarms timed.
    pub alarms: usize,
    /// Readings published per second, as achieved.
    pub readings_per_sec: f64,
    /// Median publish-to-webhook latency.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

/// Alarm latency from MQTT publish to webhook receipt, at `readings_per_sec` (oximeter payloads:
/// 2 readings each) for `seconds`, one desaturation in every `alarm_every` payloads per device, with
/// the EHR up (sandbox) or down (a FHIR endpoint that refuses connections, so the outbox backs off),
/// and the store writing or stalled (another connection holds SQLite's write lock for the whole run,
/// so nothing commits and nothing is acknowledged; each device's window is widened to hold the run).
pub async fn alarm_latency(
    profiles: &Path,
    readings_per_sec: u32,
    seconds: u64,
    alarm_every: usize,
    ehr_down: bool,
    store_stalled: bool,
) -> anyhow::Result<LatencyResult> {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    let dir = tempfile_dir()?;
    // An instant threshold (no duration) with hysteresis: every desaturation after a normal reading
    // is a new condition, hence a new alarm to time.
    let rules = dir.join("rules.toml");
    std::fs::write(
        &rules,
        "version = \"bench\"\nlate_after_secs = 300\n[[rule]]\nkind = \"threshold\"\nid = \"spo2-low\"\ndescription = \"bench\"\n\
         metric = \"MDC_PULS_OXIM_SAT_O2\"\nbelow = 90.0\nclear_at = 92.0\nfor_secs = 0\npriority = \"high\"\n\
         emit = [\"alarm\", \"event\"]\nquestionable = \"include\"\n",
    )?;
    // The webhook receiver records when each alarm (device, start) arrived.
    let arrived: Arc<Mutex<HashMap<(String, i64), Instant>>> = Arc::default();
    let sink = arrived.clone();
    let app = axum::Router::new().route(
        "/page",
        axum::routing::post(move |axum::Json(n): axum::Json<serde_json::Value>| {
            let sink = sink.clone();
            async move {
                let since = chrono::DateTime::parse_from_rfc3339(n["since"].as_str().unwrap_or_default())
                    .map(|t| t.timestamp_millis())
                    .unwrap_or_default();
                let device = n["device_id"].as_str().unwrap_or_default().to_string();
                sink.lock().unwrap_or_else(|e| e.into_inner()).insert((device, since), Instant::now());
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = format!("http://{}/page", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut config = Config::default();
    config.store.url = format!("sqlite://{}", dir.join("bench.db").display());
    config.profiles.dir = profiles.to_path_buf();
    config.broker.listen = "127.0.0.1:0".into();
    config.status.listen = "127.0.0.1:0".into();
    config.rules.file = Some(rules);
    config.alerts.webhook_url = Some(hook);
    if ehr_down {
        config.ehr.kind = crate::config::EhrKind::Fhir;
        config.ehr.base_url =
            Some(format!("http://127.0.0.1:{}/fhir", std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()));
    }
    // Stalled: every payload of the run stays unacknowledged, so the windows must hold the run.
    let window = (readings_per_sec as usize / 2 / 10 * seconds as usize + 1000).min(u16::MAX as usize);
    if store_stalled {
        config.sources.mqtt.unacked_window = window;
        config.ingest.unstored_max = window * 10;
    }
    let login = provision_login(&config).await?;
    let handle = pipeline::start(&config, crate::clock::system()).await?;
    let store = handle.store().clone();
    let id = PatientIdentifier { organisation: "default".into(), system: "urn:bench".into(), value: "B-1".into() };
    let patient = store.verify_patient(&id, "bench", Some("bench-1")).await?;
    for flow in Flow::ALL {
        store.set_consent(patient, flow, true, "bench").await?;
    }
    let devices = 10usize;
    for n in 0..devices {
        let d = DeviceKind::Oximeter.device_id(n);
        store.register_device(&d, Some("acme-ox100"), None, "bench").await?;
        pair_since_yesterday(store.as_ref(), &d, patient).await?;
    }
    let port = handle.mqtt_listen_addr().ok_or_else(|| anyhow::anyhow!("no endpoint"))?.port();
    let mut blocker = match store_stalled {
        false => None,
        true => {
            // One payload per device first, stored, so the writer has read the registry with these
            // pairings before the store stalls.
            for n in 0..devices {
                let device = SimDevice::new(&DeviceKind::Oximeter.device_id(n), DeviceKind::Oximeter, None, n as u64);
                publish_burst(port, login.clone(), n, device, 1).await?;
            }
            let stored = Instant::now();
            while handle.tally().payloads < devices as u64 {
                anyhow::ensure!(stored.elapsed() < Duration::from_secs(30), "the warm-up payloads were not stored");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            use sqlx::Connection;
            let mut conn = sqlx::SqliteConnection::connect(&config.store.url).await?;
            sqlx::query("BEGIN EXCLUSIVE").execute(&mut conn).await?;
            Some(conn)
        }
    };
    let before = handle.tally().payloads;
    let per_device = (readings_per_sec as usize / 2 / devices).max(1);
    let sent: Arc<Mutex<HashMap<(String, i64), Instant>>> = Arc::default();
    let started = Instant::now();
    let mut publishers = Vec::new();
    for n in 0..devices {
        let sent = sent.clone();
        let mut opts = publisher(format!("bench-lat-{n}-{}", std::process::id()), port, &login);
        opts.set_inflight(window as u16);
        publishers.push(tokio::spawn(async move {
            let device = SimDevice::new(&DeviceKind::Oximeter.device_id(n), DeviceKind::Oximeter, None, n as u64);
            let (client, mut eventloop) = AsyncClient::new(opts, 1000);
            tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
            let t0 = Utc::now() - chrono::Duration::seconds(60);
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut i: i64 = 0;
            while started.elapsed() < Duration::from_secs(seconds) {
                tick.tick().await;
                // Paced in 10 ms steps: per_device / 100 payloads each step.
                for _ in 0..(per_device / 100).max(1) {
                    let at = t0 + chrono::Duration::milliseconds(i * 10);
                    let low = i as usize % alarm_every == alarm_every - 1;
                    let mut payload = device.payload(at);
                    payload["spo2"] = serde_json::json!(if low { 85 } else { 97 });
                    if low {
                        sent.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert((device.id.clone(), at.timestamp_millis()), Instant::now());
                    }
                    client.publish(device.kind.topic(&device.id), QoS::AtLeastOnce, false, payload.to_string()).await?;
                    i += 1;
                }
            }
            anyhow::Ok(i)
        }));
    }
    let mut payloads = 0i64;
    for p in publishers {
        payloads += p.await??;
    }
    let elapsed = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let Some(mut conn) = blocker.take() {
        anyhow::ensure!(handle.tally().payloads == before, "the store was to stay stalled through the run");
        sqlx::query("ROLLBACK").execute(&mut conn).await?;
    }
    handle.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    let sent = sent.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let arrived = arrived.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let mut latencies: Vec<Duration> =
        sent.iter().filter_map(|(k, t)| arrived.get(k).map(|a| a.saturating_duration_since(*t))).collect();
    anyhow::ensure!(!latencies.is_empty(), "no alarm arrived at the webhook");
    anyhow::ensure!(latencies.len() == sent.len(), "{} of {} alarms arrived", latencies.len(), sent.len());
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    Ok(LatencyResult {
        alarms: latencies.len(),
        readings_per_sec: payloads as f64 * 2.0 / elapsed.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
    })
}
