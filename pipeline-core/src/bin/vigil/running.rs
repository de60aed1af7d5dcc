//! The long-running commands: the pipeline, the simulator and the terminal demo.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use pipeline_core::access::Login;
use pipeline_core::api::Admin;
use pipeline_core::config::{BrokerAddress, Config};
use pipeline_core::demo::{self, DemoFiles};
use pipeline_core::simulate::{self, DeviceKind, SimOptions};
use pipeline_core::store::{ReadingQuery, Store};
use pipeline_core::{clock, pipeline};
use tokio_util::sync::CancellationToken;

use crate::args::{DemoArgs, SimulateArgs};

/// SIGTERM or Ctrl-C. The handlers are registered when this is called, not when it is first awaited,
/// so a signal sent the moment "vigil: running" is printed stops Vigil cleanly instead of killing it.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    async move {
        tokio::select! {
            _ = recv(term.as_mut()) => {}
            _ = recv(interrupt.as_mut()) => {}
        }
    }
}

/// The next signal of a registered kind; never, when it could not be registered.
async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

pub(crate) async fn run_pipeline(config: Config) -> anyhow::Result<()> {
    let stop = shutdown_signal();
    let handle = pipeline::start(&config, clock::system()).await?;
    // Machine-readable, for scripts and tests that let the OS pick the ports.
    if let Some(addr) = handle.mqtt_listen_addr() {
        println!("vigil: mqtt endpoint listening on {addr}");
    }
    if let Some(addr) = handle.mllp_listen_addr() {
        println!("vigil: mllp listener on {addr}");
    }
    if let Some(addr) = handle.status_addr() {
        println!("vigil: status endpoint on http://{addr}");
    }
    println!("vigil: running");
    stop.await;
    tracing::info!("stopping: draining sources and the ingest writer");
    handle.shutdown().await;
    tracing::info!("stopped cleanly");
    Ok(())
}

pub(crate) async fn simulate(args: SimulateArgs) -> anyhow::Result<()> {
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
        drop: args.drop.zip(args.after),
        login: match (&args.username, &args.password_file) {
            (Some(user), Some(file)) => Some(Login::from_file(user, file).map_err(|e| anyhow::anyhow!(e))?),
            (None, None) => None,
            _ => bail!("--username and --password-file go together"),
        },
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

pub(crate) async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let files =
        DemoFiles { profiles: args.profiles.clone(), registry: args.registry.clone(), rules: args.rules.clone() };
    let config = demo::config(&args.data_dir, &files, &args.listen, demo::DEFAULT_STATUS_LISTEN);
    let problems = config.validate();
    if !problems.is_empty() {
        bail!("demo settings: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "));
    }
    // The gateway's credential exists before the endpoint opens, so the ward's first CONNECT passes.
    let login = Admin::open(config.clone(), clock::system()).await?.demo_gateway(&args.data_dir).await?;
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
    let publisher = demo::simulate(addr, login, stop.clone());
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
