//! Simulated devices speaking the three fixture profiles, with realistic physiology (slow drift
//! around a personal baseline, occasional desaturation and tachycardia episodes) and optional faults
//! (duplicates, malformed payloads, an unpaired device). Used by `vigil simulate`, the demo, tests
//! and benchmarks.

use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Outgoing, QoS};
use serde_json::{Value, json};

use crate::access::Login;

/// Which fixture profile a simulated device speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceKind {
    /// `acme-ox100`: flat fields.
    Oximeter,
    /// `medi-mx700`: nested parameter array with its own units and the patient's MRN.
    Monitor,
    /// `vitaband-2`: arrays of samples with epoch-millisecond times.
    Wearable,
}

impl DeviceKind {
    /// Every kind, in a stable order.
    pub const ALL: [DeviceKind; 3] = [DeviceKind::Oximeter, DeviceKind::Monitor, DeviceKind::Wearable];

    /// The topic a device of this kind publishes to.
    pub fn topic(self, device_id: &str) -> String {
        let leaf = match self {
            DeviceKind::Oximeter => "oximeter",
            DeviceKind::Monitor => "monitor",
            DeviceKind::Wearable => "wearable",
        };
        format!("vigil/devices/{device_id}/{leaf}")
    }

    /// The fixture profile id.
    pub fn profile_id(self) -> &'static str {
        match self {
            DeviceKind::Oximeter => "acme-ox100",
            DeviceKind::Monitor => "medi-mx700",
            DeviceKind::Wearable => "vitaband-2",
        }
    }

    /// A plausible device id for the n-th device of this kind.
    pub fn device_id(self, n: usize) -> String {
        match self {
            DeviceKind::Oximeter => format!("OX-{:04}", 1000 + n),
            DeviceKind::Monitor => format!("MX-{:04X}", 0xA0 + n),
            DeviceKind::Wearable => format!("00-1B-C5-0C-00-00-{:02X}-{:02X}", n / 256, n % 256),
        }
    }

    /// How many readings one payload of this kind carries.
    pub fn readings_per_payload(self) -> usize {
        match self {
            DeviceKind::Oximeter => 2,
            DeviceKind::Monitor => 7,
            DeviceKind::Wearable => 2 * WEARABLE_SAMPLES,
        }
    }
}

/// Samples per wearable upload.
pub const WEARABLE_SAMPLES: usize = 5;

/// A patient's vital signs as they drift.
#[derive(Debug, Clone)]
pub struct Physiology {
    baseline_hr: f64,
    baseline_spo2: f64,
    hr: f64,
    spo2: f64,
    rr: f64,
    temp_c: f64,
    sys: f64,
    dia: f64,
    /// Seconds left in a desaturation episode.
    desat_left: f64,
    /// Seconds left in a tachycardia episode.
    tachy_left: f64,
}

impl Physiology {
    /// A random adult at rest.
    pub fn new(rng: &mut impl Rng) -> Physiology {
        let baseline_hr = rng.random_range(62.0..88.0);
        let baseline_spo2 = rng.random_range(95.0..99.0);
        Physiology {
            baseline_hr,
            baseline_spo2,
            hr: baseline_hr,
            spo2: baseline_spo2,
            rr: rng.random_range(12.0..18.0),
            temp_c: rng.random_range(36.5..37.2),
            sys: rng.random_range(110.0..132.0),
            dia: rng.random_range(68.0..84.0),
            desat_left: 0.0,
            tachy_left: 0.0,
        }
    }

    /// Advances `dt` seconds: mean-reverting noise around the baseline, and now and then an episode.
    /// `episode_rate` is the chance per second that an episode starts.
    pub fn step(&mut self, dt: f64, episode_rate: f64, rng: &mut impl Rng) {
        if self.desat_left <= 0.0 && rng.random_bool((episode_rate * dt).clamp(0.0, 1.0)) {
            self.desat_left = rng.random_range(40.0..120.0);
        }
        if self.tachy_left <= 0.0 && rng.random_bool((episode_rate * dt).clamp(0.0, 1.0)) {
            self.tachy_left = rng.random_range(30.0..90.0);
        }
        let spo2_target = if self.desat_left > 0.0 { 85.0 } else { self.baseline_spo2 };
        let hr_target = if self.tachy_left > 0.0 { 132.0 } else { self.baseline_hr };
        let pull = (0.15 * dt).min(1.0);
        let mut noise = |scale: f64| rng.random_range(-scale..scale) * dt.sqrt();
        self.spo2 = (self.spo2 + (spo2_target - self.spo2) * pull + noise(0.4)).clamp(70.0, 100.0);
        self.hr = (self.hr + (hr_target - self.hr) * pull + noise(1.5)).clamp(35.0, 190.0);
        self.rr = (self.rr + (15.0 - self.rr) * pull * 0.2 + noise(0.3)).clamp(6.0, 40.0);
        self.temp_c = (self.temp_c + (36.9 - self.temp_c) * pull * 0.05 + noise(0.01)).clamp(35.0, 41.0);
        self.sys = (self.sys + (122.0 - self.sys) * pull * 0.1 + noise(0.8)).clamp(70.0, 200.0);
        self.dia = (self.dia + (78.0 - self.dia) * pull * 0.1 + noise(0.5)).clamp(40.0, 120.0);
        self.desat_left -= dt;
        self.tachy_left -= dt;
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// One simulated device.
#[derive(Debug, Clone)]
pub struct SimDevice {
    /// Device id as it appears in payloads.
    pub id: String,
    /// Which profile it speaks.
    pub kind: DeviceKind,
    /// The MRN a monitor sends (monitors carry the patient's identifier).
    pub patient_mrn: Option<String>,
    /// The patient wearing it.
    pub body: Physiology,
}

impl SimDevice {
    /// A device with a random (seeded) patient at rest.
    pub fn new(id: &str, kind: DeviceKind, patient_mrn: Option<&str>, seed: u64) -> SimDevice {
        let body = Physiology::new(&mut StdRng::seed_from_u64(seed));
        SimDevice { id: id.to_string(), kind, patient_mrn: patient_mrn.map(str::to_string), body }
    }

    /// The battery charge this device reports: steady, 60 to 100 %, told apart by its id.
    fn battery(&self) -> u32 {
        60 + self.id.bytes().map(u32::from).sum::<u32>() % 41
    }

    /// The payload this device sends at `now`.
    pub fn payload(&self, now: DateTime<Utc>) -> Value {
        let b = &self.body;
        match self.kind {
            DeviceKind::Oximeter => json!({
                "sn": self.id,
                "ts": now.to_rfc3339_opts(SecondsFormat::Millis, true),
                "spo2": b.spo2.round(),
                "pr": b.hr.round(),
                "pi": 3.1,
                "status": "ok",
                "bat": self.battery(),
                "fw": "2.4.1",
            }),
            DeviceKind::Monitor => {
                let kpa = |mmhg: f64| (mmhg / 7.500_617 * 100.0).round() / 100.0;
                let f = b.temp_c * 9.0 / 5.0 + 32.0;
                json!({
                    "monitor": {"id": self.id, "fw": "MX-7.2.0", "patient": {"mrn": self.patient_mrn}},
                    "obs": {
                        "time": now.to_rfc3339_opts(SecondsFormat::Millis, true),
                        "params": [
                            {"label": "HR", "v": b.hr.round(), "uom": "bpm"},
                            {"label": "SPO2", "v": b.spo2.round(), "uom": "%"},
                            {"label": "RR", "v": b.rr.round(), "uom": "rpm"},
                            {"label": "TEMP", "v": round1(f), "uom": "degF"},
                            {"label": "NIBP_SYS", "v": kpa(b.sys), "uom": "kPa"},
                            {"label": "NIBP_DIA", "v": kpa(b.dia), "uom": "kPa"},
                            {"label": "NIBP_MEAN", "v": kpa((b.sys + 2.0 * b.dia) / 3.0), "uom": "kPa"}
                        ]
                    }
                })
            }
            DeviceKind::Wearable => {
                let end = now.timestamp_millis();
                let samples: Vec<Value> = (0..WEARABLE_SAMPLES as i64)
                    .rev()
                    .map(
                        |k| json!({"t": end - k * 1000, "hr": b.hr.round(), "spo2": b.spo2.round(), "skin_temp": 33.1}),
                    )
                    .collect();
                json!({"device": {"eui64": self.id}, "batch": samples})
            }
        }
    }
}

/// What `vigil simulate` is asked to do.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Devices per kind in `kinds`.
    pub devices: usize,
    /// Payloads per second per device.
    pub rate_hz: f64,
    /// Which profiles to speak.
    pub kinds: Vec<DeviceKind>,
    /// Chance that a payload is sent twice.
    pub duplicate_rate: f64,
    /// Chance that a payload is replaced by a malformed one.
    pub malformed_rate: f64,
    /// Extra devices nobody paired.
    pub unpaired: usize,
    /// Chance per second that a desaturation or tachycardia episode starts.
    pub episode_rate: f64,
    /// Stop after this many payloads (None: run until stopped).
    pub count: Option<u64>,
    /// Random seed, for repeatable runs.
    pub seed: u64,
    /// The CONNECT credentials, when the broker wants them.
    pub login: Option<Login>,
    /// One device that stops sending (as if switched off) after the given time from the start.
    pub drop: Option<(String, Duration)>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            devices: 1,
            rate_hz: 1.0,
            kinds: DeviceKind::ALL.to_vec(),
            duplicate_rate: 0.0,
            malformed_rate: 0.0,
            unpaired: 0,
            episode_rate: 1.0 / 600.0,
            count: None,
            seed: 1,
            login: None,
            drop: None,
        }
    }
}

/// A fleet of simulated devices.
pub struct Fleet {
    /// The devices; the unpaired ones come last.
    pub devices: Vec<SimDevice>,
    rng: StdRng,
    options: SimOptions,
    last_upload: Vec<Option<DateTime<Utc>>>,
    /// When the first round was made: `drop` counts from it.
    started: Option<DateTime<Utc>>,
}

/// The MRN the demo registry gives the patient of the n-th monitor.
pub fn demo_mrn(n: usize) -> String {
    format!("MRN-{:06}", 100_000 + n)
}

impl Fleet {
    /// Builds the fleet the options describe.
    pub fn new(options: SimOptions) -> Fleet {
        let mut rng = StdRng::seed_from_u64(options.seed);
        let mut devices = Vec::new();
        for &kind in &options.kinds {
            for n in 0..options.devices {
                let patient_mrn = (kind == DeviceKind::Monitor).then(|| demo_mrn(n));
                devices.push(SimDevice { id: kind.device_id(n), kind, patient_mrn, body: Physiology::new(&mut rng) });
            }
        }
        for n in 0..options.unpaired {
            devices.push(SimDevice {
                id: format!("OX-UNPAIRED-{n}"),
                kind: DeviceKind::Oximeter,
                patient_mrn: None,
                body: Physiology::new(&mut rng),
            });
        }
        let last_upload = vec![None; devices.len()];
        Fleet { devices, rng, options, last_upload, started: None }
    }

    /// One round: every device's next payload as (topic, bytes), faults included.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<(String, Vec<u8>)> {
        let dt = 1.0 / self.options.rate_hz.max(1e-3);
        let started = *self.started.get_or_insert(now);
        let dropped = self
            .options
            .drop
            .as_ref()
            .filter(|(_, after)| (now - started).to_std().is_ok_and(|elapsed| elapsed >= *after));
        let mut out = Vec::with_capacity(self.devices.len());
        for (d, last_upload) in self.devices.iter_mut().zip(&mut self.last_upload) {
            d.body.step(dt, self.options.episode_rate, &mut self.rng);
            if dropped.is_some_and(|(id, _)| *id == d.id) {
                continue;
            }
            // A wearable uploads its samples (one a second) every WEARABLE_SAMPLES seconds.
            if d.kind == DeviceKind::Wearable {
                if last_upload.is_some_and(|t| (now - t).num_seconds() < WEARABLE_SAMPLES as i64) {
                    continue;
                }
                *last_upload = Some(now);
            }
            let topic = d.kind.topic(&d.id);
            let payload = if self.rng.random_bool(self.options.malformed_rate.clamp(0.0, 1.0)) {
                malformed(&d.id, &mut self.rng)
            } else {
                d.payload(now).to_string().into_bytes()
            };
            if self.rng.random_bool(self.options.duplicate_rate.clamp(0.0, 1.0)) {
                out.push((topic.clone(), payload.clone()));
            }
            out.push((topic, payload));
        }
        out
    }
}

/// A payload a profile must reject, with a different fault each time.
fn malformed(device_id: &str, rng: &mut impl Rng) -> Vec<u8> {
    match rng.random_range(0..3) {
        0 => format!("{{\"sn\":\"{device_id}\",\"ts\":").into_bytes(),
        1 => json!({"sn": device_id, "ts": "yesterday", "spo2": 97}).to_string().into_bytes(),
        _ => json!({"sn": device_id, "ts": Utc::now().to_rfc3339(), "spo2": "ninety"}).to_string().into_bytes(),
    }
}

/// What a publishing run achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// PUBLISHes sent.
    pub published: u64,
    /// PUBACKs received.
    pub acknowledged: u64,
}

/// Publishes the fleet's payloads at QoS 1 to a broker until `count` payloads or `stop`.
pub async fn publish(
    options: SimOptions,
    host: &str,
    port: u16,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<PublishReport> {
    let count = options.count;
    let period = Duration::from_secs_f64(1.0 / options.rate_hz.max(1e-3));
    let mut fleet = Fleet::new(options);
    let mut mqtt = MqttOptions::new(format!("vigil-sim-{}", std::process::id()), host, port);
    mqtt.set_keep_alive(Duration::from_secs(30)).set_inflight(1000).set_max_packet_size(64 * 1024, 64 * 1024);
    if let Some(login) = &fleet.options.login {
        mqtt.set_credentials(login.username.clone(), login.secret.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(mqtt, 1000);
    let mut report = PublishReport::default();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut pending: Vec<(String, Vec<u8>)> = Vec::new();
    let mut queued = 0u64;
    loop {
        if count.is_some_and(|c| report.acknowledged >= c) {
            break;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick(), if pending.is_empty() && count.is_none_or(|c| queued < c) => {
                pending = fleet.tick(Utc::now());
                pending.reverse();
            }
            event = eventloop.poll() => match event {
                Ok(Event::Incoming(Incoming::PubAck(_))) => report.acknowledged += 1,
                Ok(Event::Outgoing(Outgoing::Publish(_))) => report.published += 1,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "simulator lost the broker; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            },
        }
        while let Some((topic, payload)) = pending.pop() {
            if count.is_some_and(|c| queued >= c) {
                pending.clear();
                break;
            }
            if let Err(e) = client.try_publish(topic.clone(), QoS::AtLeastOnce, false, payload.clone()) {
                tracing::trace!(error = %e, "request queue full; will retry");
                pending.push((topic, payload));
                break;
            }
            queued += 1;
        }
    }
    Ok(report)
}
