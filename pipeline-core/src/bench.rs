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

use crate::config::{BrokerMode, Config};
use crate::identify::Flow;
use crate::pipeline;
use crate::simulate::{DeviceKind, SimDevice};
use crate::store::PatientIdentifier;

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
    let handle = pipeline::start(&config).await?;
    let store = handle.store().clone();
    let patient = PatientIdentifier { organisation: "default".into(), system: "urn:bench".into(), value: "B-1".into() };
    let patient = store.upsert_patient(&patient, None, Some("bench")).await?;
    store.set_consent(patient, Flow::Store, true, "bench").await?;
    let devices: Vec<SimDevice> = (0..options.publishers)
        .map(|n| SimDevice::new(&options.kind.device_id(n), options.kind, None, n as u64))
        .collect();
    for d in &devices {
        store.register_device(&d.id, Some(options.kind.profile_id()), None).await?;
        store.pair(&d.id, patient, Utc::now() - chrono::Duration::days(1), "bench").await?;
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
        publishers.push(tokio::spawn(publish_burst(port, n, device, per_publisher)));
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

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("vigil-bench-{}-{}", std::process::id(), Utc::now().timestamp_millis()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// One connection publishing `count` distinct payloads as fast as the window allows.
async fn publish_burst(port: u16, n: usize, device: SimDevice, count: usize) -> anyhow::Result<()> {
    let mut opts = MqttOptions::new(format!("bench-pub-{n}-{}", std::process::id()), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30)).set_inflight(1000).set_max_packet_size(64 * 1024, 64 * 1024);
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
