//! `vigil`: the headless face of the pipeline. Every subcommand is a thin call into `pipeline_core`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use pipeline_core::api::{Actor, Admin, ApiError, ErrorCode, EventRequest};
use pipeline_core::config::{BrokerAddress, Config};
use pipeline_core::demo::{self, DemoFiles};
use pipeline_core::identify::Flow;
use pipeline_core::normalise::ProfileSet;
use pipeline_core::simulate::{self, DeviceKind, SimOptions};
use pipeline_core::store::{OutboxStatus, ReadingQuery, Store};
use pipeline_core::{bench, clock, pipeline};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "vigil", version, about = "Vigil: medical-device-to-EHR integration, headless")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline until SIGTERM or Ctrl-C, then drain and exit.
    Run {
        /// The config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run the embedded default with simulated devices and a live summary in the terminal.
    Demo(DemoArgs),
    /// Publish simulated device payloads to a broker (QoS 1).
    Simulate(SimulateArgs),
    /// Measure end-to-end ingest throughput (MQTT publish to durable readings).
    Bench(BenchArgs),
    /// Validate a config file and report every problem.
    CheckConfig {
        /// The config file.
        file: PathBuf,
    },
    /// Load every device profile in a directory and report every problem.
    CheckProfiles {
        /// The directory of profiles.
        dir: PathBuf,
    },
    /// List registered devices and their current pairing, or register one.
    Devices {
        #[command(flatten)]
        site: SiteArgs,
        /// Register this device id.
        #[arg(long)]
        register: Option<String>,
        /// Its profile id.
        #[arg(long, requires = "register")]
        profile: Option<String>,
        /// Its label.
        #[arg(long, requires = "register")]
        label: Option<String>,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Add or update a patient in the local registry.
    Patient {
        #[command(flatten)]
        site: SiteArgs,
        #[command(flatten)]
        patient: PatientArgs,
        /// Display name (kept in the store, shown in the console only).
        #[arg(long)]
        name: Option<String>,
        /// Who verified this identity; without it the patient is unverified and cannot be paired.
        #[arg(long)]
        verified_by: Option<String>,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Pair a device with a verified patient from a time (default now), open-ended or until a time.
    Pair {
        #[command(flatten)]
        site: SiteArgs,
        /// Device id.
        #[arg(long)]
        device: String,
        #[command(flatten)]
        patient: PatientArgs,
        /// Start of the pairing, RFC 3339 (default now).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// End of the pairing, RFC 3339 (default: open until unpaired).
        #[arg(long)]
        until: Option<DateTime<Utc>>,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Close a device's open pairing (default now).
    Unpair {
        #[command(flatten)]
        site: SiteArgs,
        /// Device id.
        #[arg(long)]
        device: String,
        /// End of the pairing, RFC 3339 (default now).
        #[arg(long)]
        at: Option<DateTime<Utc>>,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Record a patient's consent decision for a flow.
    Consent {
        #[command(flatten)]
        site: SiteArgs,
        #[command(flatten)]
        patient: PatientArgs,
        /// The flow: store, alert or ehr-write.
        #[arg(long)]
        flow: String,
        /// Record a refusal instead of a grant.
        #[arg(long)]
        refuse: bool,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Submit a clinical event (validated, then queued for the EHR, or held with its reasons).
    Event {
        #[command(flatten)]
        site: SiteArgs,
        /// The device that measured.
        #[arg(long)]
        device: String,
        #[command(flatten)]
        patient: PatientArgs,
        /// An observation as MDC_CODE=VALUE in the code's canonical unit, e.g. 150456=97 (repeat).
        #[arg(long = "obs")]
        observations: Vec<String>,
        /// A blood pressure panel as SYS/DIA or SYS/DIA/MEAN in mm[Hg].
        #[arg(long)]
        bp: Option<String>,
        /// When it was measured, RFC 3339 (default now).
        #[arg(long)]
        at: Option<DateTime<Utc>>,
        /// Group the observations in a DiagnosticReport with this title.
        #[arg(long)]
        report: Option<String>,
        /// valid, questionable, invalid or demo.
        #[arg(long, default_value = "valid")]
        validity: String,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// List the outbox as JSON (pending, delivered, dead-letter, held).
    Outbox {
        #[command(flatten)]
        site: SiteArgs,
        /// Only this status.
        #[arg(long, value_enum)]
        status: Option<OutboxStatusArg>,
        /// At most this many rows.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Put a dead-letter or held event back in the queue after fixing its cause.
    Requeue {
        #[command(flatten)]
        site: SiteArgs,
        /// The outbox id.
        id: i64,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Print the board of a running Vigil: components, active degradation modes, queue depths.
    Status {
        /// The config file (its status.listen says where to ask).
        #[arg(long, short, required_unless_present = "url")]
        config: Option<PathBuf>,
        /// Ask this status endpoint instead, e.g. http://127.0.0.1:9464.
        #[arg(long)]
        url: Option<String>,
        /// Print the JSON as the endpoint gives it.
        #[arg(long)]
        json: bool,
    },
    /// List alarms as JSON (newest first).
    Alarms {
        #[command(flatten)]
        site: SiteArgs,
        /// Only alarms whose condition has not cleared.
        #[arg(long)]
        active: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Acknowledge an alarm (audited, with your name and a reason).
    Ack(ReasonedAction),
    /// Silence an active alarm: hold back its re-notification for a while (audited, with your name
    /// and a reason). The alarm stays listed and latched.
    Silence {
        #[command(flatten)]
        site: SiteArgs,
        /// The alarm id.
        id: i64,
        /// For how long.
        #[arg(long, default_value_t = 2)]
        minutes: u32,
        /// Why (e.g. "clinician at the bedside").
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Release a quarantined reading: re-identify it against the pairings as they are now (audited).
    Release(ReasonedAction),
    /// Discard a quarantined reading: kept for forensics, never charted (audited).
    Discard(ReasonedAction),
    /// Print docs/degradation-modes.md, generated from the registry in code.
    DegradationModes,
    /// Check the hash-chained audit log for tampering (exit 4 if broken), or list it.
    Audit {
        #[command(flatten)]
        site: SiteArgs,
        /// `verify` or `list`.
        what: AuditWhat,
        /// At most this many entries (list).
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Import a registry file (patients, devices, pairings, consents).
    ImportRegistry {
        #[command(flatten)]
        site: SiteArgs,
        /// The registry file.
        file: PathBuf,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Print store contents as JSON: counts, readings, quarantine, rejected, held.
    Show {
        #[command(flatten)]
        site: SiteArgs,
        /// What to show.
        what: ShowWhat,
        /// At most this many rows.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Readings of this device only.
        #[arg(long)]
        device: Option<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum AuditWhat {
    Verify,
    List,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ShowWhat {
    Counts,
    Readings,
    Quarantine,
    Rejected,
    Held,
    Sandbox,
}

/// The site a command works on.
#[derive(clap::Args)]
struct SiteArgs {
    /// The config file.
    #[arg(long, short)]
    config: PathBuf,
}

impl SiteArgs {
    /// The operator facade on the site's store.
    async fn open(&self) -> anyhow::Result<Admin> {
        Ok(Admin::open(load_config(&self.config)?, clock::system()).await?)
    }
}

/// An audited action on one alarm or quarantined reading, with a reason.
#[derive(clap::Args)]
struct ReasonedAction {
    #[command(flatten)]
    site: SiteArgs,
    /// The alarm or quarantined reading's id.
    id: i64,
    /// Why (kept in the audit trail), e.g. "probe reseated".
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    operator: OperatorArgs,
}

/// Who does an audited action.
#[derive(clap::Args)]
struct OperatorArgs {
    /// Who does this (audited).
    #[arg(long, env = "USER", default_value = "operator")]
    operator: String,
}

impl OperatorArgs {
    fn actor(&self) -> Result<Actor, ApiError> {
        Actor::named(&self.operator)
    }
}

/// An outbox status, as `--status` takes it.
#[derive(Clone, Copy, clap::ValueEnum)]
enum OutboxStatusArg {
    Held,
    Pending,
    Delivered,
    Dead,
}

impl OutboxStatusArg {
    fn status(self) -> OutboxStatus {
        match self {
            OutboxStatusArg::Held => OutboxStatus::Held,
            OutboxStatusArg::Pending => OutboxStatus::Pending,
            OutboxStatusArg::Delivered => OutboxStatus::Delivered,
            OutboxStatusArg::Dead => OutboxStatus::Dead,
        }
    }
}

#[derive(clap::Args)]
struct PatientArgs {
    /// Identifier system of the patient (URI or OID).
    #[arg(long)]
    patient_system: String,
    /// Identifier value of the patient (e.g. the MRN).
    #[arg(long)]
    patient: String,
}

#[derive(clap::Args)]
struct SimulateArgs {
    /// Devices per profile.
    #[arg(long, default_value_t = 1)]
    devices: usize,
    /// Payloads per second per device.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Profiles to speak (repeat; default all three).
    #[arg(long = "profile", value_enum)]
    profiles: Vec<DeviceKind>,
    /// Broker URL.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    broker: String,
    /// Fraction of payloads sent twice.
    #[arg(long, default_value_t = 0.0)]
    duplicates: f64,
    /// Fraction of payloads replaced by malformed ones.
    #[arg(long, default_value_t = 0.0)]
    malformed: f64,
    /// Extra devices nobody paired.
    #[arg(long, default_value_t = 0)]
    unpaired: usize,
    /// Chance per second of a desaturation or tachycardia episode per device.
    #[arg(long, default_value_t = 1.0 / 600.0)]
    episodes: f64,
    /// Stop after this many payloads.
    #[arg(long)]
    count: Option<u64>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// Payloads in all.
    #[arg(long, default_value_t = 100_000)]
    payloads: usize,
    /// Concurrent publishing connections.
    #[arg(long, default_value_t = 4)]
    publishers: usize,
    /// Payload shape.
    #[arg(long, value_enum, default_value = "oximeter")]
    profile: DeviceKind,
    /// Run Mosquitto and subscribe to it, instead of the embedded endpoint.
    #[arg(long)]
    mosquitto: bool,
    /// The device profiles.
    #[arg(long, default_value = "fixtures/profiles")]
    profiles: PathBuf,
    /// Measure alarm latency (publish to webhook) instead of ingest throughput.
    #[arg(long)]
    alarm_latency: bool,
    /// Alarm latency: readings per second to sustain.
    #[arg(long, default_value_t = 10_000)]
    rate: u32,
    /// Alarm latency: seconds to run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Alarm latency: run with the EHR down (a FHIR endpoint that refuses connections).
    #[arg(long)]
    ehr_down: bool,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Where the demo keeps its database.
    #[arg(long, default_value = "demo-data")]
    data_dir: PathBuf,
    /// The device profiles.
    #[arg(long, default_value = "fixtures/profiles")]
    profiles: PathBuf,
    /// The registry to load.
    #[arg(long, default_value = "fixtures/demo/registry.toml")]
    registry: PathBuf,
    /// The alarm and event rules.
    #[arg(long, default_value = "fixtures/rules/adult-vitals.toml")]
    rules: PathBuf,
    /// Where the embedded endpoint listens.
    #[arg(long, default_value = "127.0.0.1:1883")]
    listen: String,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    seconds: Option<u64>,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("VIGIL_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(Cli::parse().command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            // The facade's errors say what kind of failure it was; scripts branch on the code.
            e.downcast_ref::<ApiError>().map_or(ExitCode::FAILURE, |api| ExitCode::from(api.code.exit_code()))
        }
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config } => run_pipeline(load_config(&config)?).await?,
        Command::Demo(args) => demo(args).await?,
        Command::Simulate(args) => simulate(args).await?,
        Command::Bench(args) if args.alarm_latency => {
            let r = bench::alarm_latency(&args.profiles, args.rate, args.seconds, 100, args.ehr_down).await?;
            println!(
                "{} alarms at {:.0} readings/s, EHR {}: p50 {:.1} ms, p99 {:.1} ms (publish to webhook)",
                r.alarms,
                r.readings_per_sec,
                if args.ehr_down { "down" } else { "up" },
                r.p50.as_secs_f64() * 1000.0,
                r.p99.as_secs_f64() * 1000.0
            );
        }
        Command::Bench(args) => {
            let options = bench::BenchOptions {
                payloads: args.payloads,
                publishers: args.publishers,
                kind: args.profile,
                mosquitto: args.mosquitto,
                profiles: args.profiles,
            };
            let r = bench::ingest_throughput(&options).await?;
            println!(
                "{} payloads, {} readings in {:.2} s: {:.0} payloads/s, {:.0} readings/s ({:?}, {} publishers, {})",
                r.payloads,
                r.readings,
                r.elapsed.as_secs_f64(),
                r.payloads_per_sec(),
                r.readings_per_sec(),
                options.kind,
                options.publishers,
                if options.mosquitto { "Mosquitto" } else { "embedded endpoint" }
            );
        }
        Command::CheckConfig { file } => {
            return Ok(match Config::load(&file) {
                Ok(_) => {
                    println!("{}: OK", file.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    print!("{e}");
                    ExitCode::from(2)
                }
            });
        }
        Command::CheckProfiles { dir } => {
            let profiles = ProfileSet::load_dir(&dir)?;
            for p in profiles.iter() {
                println!("{}: OK", p.id);
            }
        }
        Command::Devices { site, register, profile, label, operator } => {
            let admin = site.open().await?;
            if let Some(id) = register {
                let profile = profile.unwrap_or_default();
                admin.register_device(&operator.actor()?, &id, &profile, label.as_deref().unwrap_or("")).await?;
            }
            print_json(&admin.devices().await?)?;
        }
        Command::Patient { site, patient, name, verified_by, operator } => {
            let admin = site.open().await?;
            let (system, value) = (&patient.patient_system, &patient.patient);
            let key = admin
                .register_patient(&operator.actor()?, system, value, name.as_deref(), verified_by.as_deref())
                .await?;
            println!("patient {key}");
        }
        Command::Pair { site, device, patient, from, until, operator } => {
            let admin = site.open().await?;
            let (system, value) = (&patient.patient_system, &patient.patient);
            let p = admin.pair_device(&operator.actor()?, &device, system, value, from, until).await?;
            println!("pairing {}: device {device} with patient {}", p.id, p.patient_id);
        }
        Command::Unpair { site, device, at, operator } => {
            let id = site.open().await?.unpair_device(&operator.actor()?, &device, at).await?;
            println!("pairing {id} closed");
        }
        Command::Consent { site, patient, flow, refuse, operator } => {
            let flow = Flow::parse(&flow)
                .ok_or_else(|| invalid(format!("unknown flow {flow:?}: use store, alert or ehr-write")))?;
            let admin = site.open().await?;
            let (system, value) = (&patient.patient_system, &patient.patient);
            let key = admin.set_consent(&operator.actor()?, system, value, flow, !refuse).await?;
            println!("patient {key}: {flow} {}", if refuse { "refused" } else { "granted" });
        }
        Command::Event { site, device, patient, observations, bp, at, report, validity, operator } => {
            let request = EventRequest {
                device_id: device,
                system: patient.patient_system,
                value: patient.patient,
                observations,
                blood_pressure: bp,
                at,
                report,
                validity,
            };
            match site.open().await?.submit_event(&operator.actor()?, &request).await? {
                Some(id) => println!("queued as outbox {id}"),
                None => println!("already queued: the same event was submitted before"),
            }
        }
        Command::Alarms { site, active, limit } => print_json(&site.open().await?.alarms(active, limit).await?)?,
        Command::Ack(a) => {
            let actor = a.operator.actor()?;
            a.site.open().await?.ack_alarm(&actor, a.id, &a.reason).await?;
            println!("alarm {} acknowledged by {}", a.id, actor.name());
        }
        Command::Silence { site, id, minutes, reason, operator } => {
            let actor = operator.actor()?;
            let until = site.open().await?.silence_alarm(&actor, id, &reason, minutes).await?;
            let until = until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            println!("alarm {id} silenced by {} until {until}", actor.name());
        }
        Command::Release(a) => {
            let outcome = a.site.open().await?.release_quarantine(&a.operator.actor()?, a.id, &a.reason).await?;
            println!("quarantine {}: {}", a.id, outcome.detail);
        }
        Command::Discard(a) => {
            a.site.open().await?.discard_quarantine(&a.operator.actor()?, a.id, &a.reason).await?;
            println!("quarantine {} discarded (kept for forensics)", a.id);
        }
        Command::DegradationModes => print!("{}", pipeline_core::health::modes::render_markdown()),
        Command::Status { config, url, json } => {
            let url = match (url, config) {
                (Some(url), _) => url,
                (None, Some(config)) => format!("http://{}", load_config(&config)?.status.listen),
                (None, None) => return Err(invalid("give --config or --url".into()).into()),
            };
            let response = reqwest::get(format!("{}/status", url.trim_end_matches('/')))
                .await
                .with_context(|| format!("Vigil is not answering at {url}: is it running?"))?;
            let status: serde_json::Value = response.json().await?;
            if json {
                print_json(&status)?;
            } else {
                print_board(&status);
            }
            let critical = status["modes"].as_array().into_iter().flatten().any(|m| m["severity"] == "critical");
            return Ok(if critical { ExitCode::from(5) } else { ExitCode::SUCCESS });
        }
        Command::Audit { site, what, limit } => {
            let admin = site.open().await?;
            match what {
                AuditWhat::List => print_json(&admin.audit_entries(limit).await?)?,
                AuditWhat::Verify => {
                    let verdict = admin.verify_audit().await?;
                    match verdict.first_broken {
                        None => println!("audit log intact: {} entries", verdict.entries),
                        Some(id) => {
                            println!(
                                "audit log BROKEN at entry {id} of {}: it, or an entry before it, was altered",
                                verdict.entries
                            );
                            return Ok(ExitCode::from(4));
                        }
                    }
                }
            }
        }
        Command::Outbox { site, status, limit } => {
            print_json(&site.open().await?.outbox(status.map(OutboxStatusArg::status), limit).await?)?;
        }
        Command::Requeue { site, id, operator } => {
            site.open().await?.requeue(&operator.actor()?, id).await?;
            println!("outbox {id} queued again");
        }
        Command::ImportRegistry { site, file, operator } => {
            let (patients, devices) = site.open().await?.import_registry(&operator.actor()?, &file).await?;
            println!("imported {patients} patients, {devices} devices");
        }
        Command::Show { site, what, limit, device } => {
            let admin = site.open().await?;
            match what {
                ShowWhat::Counts => print_json(&admin.counts().await?)?,
                ShowWhat::Readings => print_json(&admin.readings(device, limit).await?)?,
                ShowWhat::Quarantine => print_json(&admin.quarantine(limit).await?)?,
                ShowWhat::Rejected => print_json(&admin.rejected(limit).await?)?,
                ShowWhat::Held => print_json(&admin.held(limit).await?)?,
                ShowWhat::Sandbox => {
                    let kept: Vec<serde_json::Value> = admin
                        .sandbox(limit)
                        .await?
                        .into_iter()
                        .map(|(id, body)| serde_json::json!({"outbox_id": id, "bundle": serde_json::from_str::<serde_json::Value>(&body).unwrap_or_default()}))
                        .collect();
                    print_json(&kept)?
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An invalid-input error, as the facade would give it (exit 2).
fn invalid(message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidInput, message)
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| ApiError::new(ErrorCode::InvalidConfig, e.to_string()).into())
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

async fn run_pipeline(config: Config) -> anyhow::Result<()> {
    let handle = pipeline::start(&config, clock::system()).await?;
    // Machine-readable, for scripts and tests that let the OS pick the ports.
    if let Some(addr) = handle.mqtt_listen_addr() {
        println!("vigil: mqtt endpoint listening on {addr}");
    }
    if let Some(addr) = handle.status_addr() {
        println!("vigil: status endpoint on http://{addr}");
    }
    println!("vigil: running");
    shutdown_signal().await;
    tracing::info!("stopping: draining sources and the ingest writer");
    handle.shutdown().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
    let addr = BrokerAddress::parse(&args.broker).map_err(|e| anyhow::anyhow!("--broker: {e}"))?;
    if addr.tls {
        bail!("--broker: the simulator speaks plain MQTT only");
    }
    let options = SimOptions {
        devices: args.devices,
        rate_hz: args.rate,
        kinds: if args.profiles.is_empty() { DeviceKind::ALL.to_vec() } else { args.profiles },
        duplicate_rate: args.duplicates,
        malformed_rate: args.malformed,
        unpaired: args.unpaired,
        episode_rate: args.episodes,
        count: args.count,
        seed: args.seed,
    };
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        on_signal.cancel();
    });
    let report = simulate::publish(options, &addr.host, addr.port, stop).await?;
    println!("published {} payloads, {} acknowledged", report.published, report.acknowledged);
    Ok(())
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let files =
        DemoFiles { profiles: args.profiles.clone(), registry: args.registry.clone(), rules: args.rules.clone() };
    let config = demo::config(&args.data_dir, &files, &args.listen, demo::DEFAULT_STATUS_LISTEN);
    let problems = config.validate();
    if !problems.is_empty() {
        bail!("demo settings: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "));
    }
    let handle = pipeline::start(&config, clock::system()).await?;
    let store = handle.store().clone();
    let (patients, devices) = demo::seed(store.as_ref(), &files, Utc::now()).await?;
    let addr = handle.mqtt_listen_addr().context("the embedded endpoint did not start")?;
    println!("Vigil demo: embedded MQTT endpoint on {addr}, store {}", config.store.url);
    if let Some(status) = handle.status_addr() {
        println!("Board: vigil status --url http://{status}   Metrics: http://{status}/metrics");
    }
    println!("Registry: {patients} patients, {devices} devices (one unpaired, one without consent). Ctrl-C to stop.");

    let stop = CancellationToken::new();
    let publisher = demo::simulate(addr, stop.clone());
    let deadline = args.seconds.map(|s| tokio::time::Instant::now() + Duration::from_secs(s));
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            _ = &mut signal => break,
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => break,
            _ = tick.tick() => print_summary(&store, &handle).await?,
        }
    }
    stop.cancel();
    let _ = publisher.await;
    handle.shutdown().await;
    print_summary_counts(store.as_ref()).await?;
    Ok(())
}

async fn print_summary(store: &Arc<dyn Store>, handle: &pipeline::Handle) -> anyhow::Result<()> {
    println!("\n── {} ──", Utc::now().format("%H:%M:%S"));
    for s in handle.sources() {
        println!("source {:<6} {:?}", s.name, s.state);
    }
    for d in store.devices().await? {
        let q = ReadingQuery { device_id: Some(d.device_id.clone()), limit: Some(20), ..ReadingQuery::default() };
        let readings = store.readings(&q).await?;
        let mut latest: Vec<String> = Vec::new();
        for r in &readings {
            let name = pipeline_core::model::codes::metric_by_code(r.mdc_code).map_or("?", |m| m.display);
            if !latest.iter().any(|l| l.starts_with(name)) {
                latest.push(format!("{name} {} {}", r.value, r.unit));
            }
        }
        let pairing = d.patient_id.map_or("unpaired".to_string(), |p| format!("patient #{p}"));
        let age = readings
            .first()
            .map_or("no data".to_string(), |r| format!("{} s ago", (Utc::now() - r.observed_at).num_seconds()));
        println!("{:<26} {:<12} {:<10} {}", d.device_id, pairing, age, latest.join(", "));
    }
    print_summary_counts(store.as_ref()).await
}

/// The board in words: modes first (they are what a clinician must read), then components.
fn print_board(status: &serde_json::Value) {
    let modes = status["modes"].as_array().cloned().unwrap_or_default();
    if modes.is_empty() {
        println!("No degradation mode is active.");
    }
    for m in &modes {
        println!("!! {} ({})", m["title"].as_str().unwrap_or_default(), m["severity"].as_str().unwrap_or_default());
        for (label, key) in [
            ("Off", "what_is_off"),
            ("Still works", "what_still_works"),
            ("Do", "what_to_do"),
            ("Call", "whom_to_call"),
        ] {
            println!("   {label}: {}", m[key].as_str().unwrap_or_default());
        }
    }
    println!("\nComponents:");
    for c in status["components"].as_array().into_iter().flatten() {
        println!(
            "  {:<11} {:<9} {}",
            c["name"].as_str().unwrap_or_default(),
            c["state"].as_str().unwrap_or_default(),
            c["reason"].as_str().unwrap_or_default()
        );
    }
    println!("\nIngest queue: {}   Outbox: {}", status["ingest_queue"], status["outbox"]);
}

async fn print_summary_counts(store: &dyn Store) -> anyhow::Result<()> {
    let c = store.counts().await?;
    let active = store.alarms(true, 1000).await?;
    if !active.is_empty() {
        let list: Vec<String> = active
            .iter()
            .map(|a| format!("{} {} on {}", a.priority.as_str().to_uppercase(), a.rule_id, a.device_id))
            .collect();
        println!("ALARMS: {}", list.join(" · "));
    }
    println!(
        "stored {} readings from {} payloads · duplicates {} · rejected {} · quarantined {} · held {}",
        c.readings, c.payloads, c.duplicates, c.rejected, c.quarantined, c.held
    );
    Ok(())
}
