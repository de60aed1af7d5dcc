//! The running pipeline: start every configured component from a config, query it, stop it. It is
//! the runtime behind the facade ([`crate::api`]), which both faces drive; the `vigil run` command
//! starts it alone.
//!
//! Invariant: [`Handle::shutdown`] returns only after the sources stopped taking payloads and the
//! ingest writer stored everything it had accepted, so nothing acknowledged is left in memory.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::access::Publisher;
use crate::alerts::ledger::Ledger;
use crate::audit::syslog::Syslog;
use crate::clock::SharedClock;
use crate::config::{BrokerConfig, BrokerMode, Config, RetentionConfig};
use crate::health::latency::Latencies;
use crate::health::{Drills, HealthRegistry, HealthState, Heartbeat};
use crate::identify::Policy;
use crate::ingest::{self, Format, IngestHandle, IngestTally, Latest, LatestValues, SourceTerms};
use crate::normalise::{ProfileError, ProfileSet};
use crate::outbox::{self, OutboxSettings};
use crate::rules::{Engine, RuleSet};
use crate::sources::mqtt::gate::{self, Gate};
use crate::sources::mqtt::{client, endpoint};
use crate::sources::tls::{self, ServerTls};
use crate::sources::{SourceStatus, StatusReporter};
use crate::status::{Status, StatusSources};
use crate::store::{self, BatchTally, Inbox, Store, StoreError};
use crate::supervisor::{self, Supervisor};

/// Why the pipeline could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `[audit] syslog` names no address this machine can send to.
    #[error("audit.syslog: {0}")]
    Syslog(std::io::Error),
    /// A device profile is invalid.
    #[error(transparent)]
    Profiles(#[from] ProfileError),
    /// The MQTT endpoint could not listen.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The external broker settings are unusable.
    #[error(transparent)]
    Mqtt(#[from] client::ClientSetupError),
    /// A TLS certificate or key is unusable.
    #[error("TLS: {0}")]
    Tls(String),
    /// `[sources.mllp]` is unusable.
    #[error("[sources.mllp]: {0}")]
    Mllp(String),
    /// The status endpoint's token file cannot be read or made.
    #[error("cannot read or make the status token file {}: {source}", .path.display())]
    TokenFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The rule file is invalid.
    #[error(transparent)]
    Rules(#[from] crate::rules::RuleError),
    /// The EHR adapter settings are unusable.
    #[error(transparent)]
    Ehr(#[from] crate::clinical::EhrSetupError),
    /// Another pipeline holds the store.
    #[error(
        "another Vigil pipeline (vigil run, or a console) already runs on {}: stop it first; CLI commands still work beside it",
        .0.display()
    )]
    Locked(std::path::PathBuf),
    /// The store's lock file cannot be opened.
    #[error("cannot open the lock file {}: {source}", .path.display())]
    Lock {
        /// The lock file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Takes the store's pipeline lock (`<database>.lock` beside it, held while the pipeline runs): two
/// pipelines on one store would both acknowledge, evaluate and page. CLI commands do not take it.
/// How long a shutdown waits for the sources, the outbox, the store and the rules, in all. The alert
/// circuit's own drain (2 s at most) comes after: a stop, or a Settings restart, takes 4 s at most.
pub const SHUTDOWN_BOUND: Duration = Duration::from_secs(2);

/// The embedded endpoint's TLS, when `[broker] tls_cert_file` and `tls_key_file` are set.
fn endpoint_tls(broker: &BrokerConfig) -> Result<Option<ServerTls>, StartError> {
    let (Some(cert), Some(key)) = (&broker.tls_cert_file, &broker.tls_key_file) else { return Ok(None) };
    tls::server(cert, key, broker.tls_client_ca_file.as_deref(), broker.require_client_cert)
        .map(Some)
        .map_err(StartError::Tls)
}

/// Keeps the board saying that the EHR is reached over plain http, while it is.
async fn plain_http_warning(host: String, heartbeat: Heartbeat, shutdown: CancellationToken) {
    let reason = format!("plain http to the EHR at {host} (ehr.allow_insecure_ehr = true)");
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => heartbeat.beat(HealthState::Degraded, &reason),
        }
    }
}

/// The status endpoint's token file: `[status] token_file`, else `status.token` beside the
/// database (a store that is not a file gets one in a fresh temporary directory).
pub fn status_token_file(config: &Config) -> std::path::PathBuf {
    if let Some(file) = &config.status.token_file {
        return file.clone();
    }
    match database_file(&config.store.url) {
        Some(db) => std::path::Path::new(db).with_file_name("status.token"),
        None => std::env::temp_dir().join(format!("vigil-{}-{}.status.token", std::process::id(), rand_id())),
    }
}

/// The alert circuit's queue file, beside the database: `<database>.alert-queue`. A store that is
/// not a file (an in-memory one, for tests) gets one in a fresh temporary directory.
pub fn alert_queue_file(store_url: &str) -> std::path::PathBuf {
    match database_file(store_url) {
        Some(db) => format!("{db}.alert-queue").into(),
        None => std::env::temp_dir().join(format!("vigil-{}-{}.alert-queue", std::process::id(), rand_id())),
    }
}

/// The database file a store URL names; `None` for a store that is not a file (in memory).
fn database_file(url: &str) -> Option<&str> {
    url.strip_prefix("sqlite://").filter(|p| !p.starts_with(':'))
}

fn rand_id() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos() as u64).unwrap_or(0)
}

fn lock_store(url: &str) -> Result<Option<std::fs::File>, StartError> {
    let Some(db) = database_file(url) else { return Ok(None) };
    let path = std::path::PathBuf::from(format!("{db}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| StartError::Lock { path: path.clone(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(StartError::Locked(path)),
        Err(std::fs::TryLockError::Error(source)) => Err(StartError::Lock { path, source }),
    }
}

impl StartError {
    /// What an operator is shown: the store's internal error stays in the log.
    pub fn operator_text(&self) -> String {
        match self {
            StartError::Store(e @ StoreError::Damaged { .. }) => e.to_string(),
            StartError::Store(_) => "the local store could not be opened; see the log".into(),
            other => other.to_string(),
        }
    }
}

/// A running pipeline.
pub struct Handle {
    store: Arc<dyn Store>,
    rules_version: Option<String>,
    /// The active rules' alarm limits, for the trend charts.
    alarm_limits: Vec<crate::rules::RuleLimit>,
    /// Per profile, after how long without data its devices raise the no-data alarm.
    no_data_after: HashMap<String, u32>,
    /// When each device's payloads arrived, for the fleet's message rate.
    arrivals: ingest::Arrivals,
    /// What became of each alarm's pages.
    pages: crate::alerts::deliveries::PageLog,
    profiles: Arc<ProfileSet>,
    policy: Policy,
    ingest: IngestHandle,
    tally: IngestTally,
    latest: LatestValues,
    status: Arc<StatusSources>,
    writer: JoinHandle<()>,
    rules_task: Option<JoinHandle<()>>,
    sources: Vec<watch::Receiver<SourceStatus>>,
    mqtt_listen_addr: Option<SocketAddr>,
    mllp_listen_addr: Option<SocketAddr>,
    status_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// The alert circuit's thread: it ends once the rules and the supervisor have let go of it.
    alerts_thread: Option<std::thread::JoinHandle<()>>,
    /// The store's pipeline lock, released when the pipeline is dropped.
    _lock: Option<std::fs::File>,
}

/// Audits what changed in the configuration since the last start: the keys, secrets redacted.
async fn audit_config_changes(store: &dyn Store, config: &Config) -> Result<(), StoreError> {
    let now = crate::config::snapshot(config);
    let before: std::collections::BTreeMap<String, String> =
        store.config_snapshot().await?.and_then(|s| serde_json::from_str(&s).ok()).unwrap_or_default();
    let changes = if before.is_empty() {
        Some(format!("first start with {} settings", now.len()))
    } else {
        crate::config::snapshot_changes(&before, &now)
    };
    if let Some(changes) = changes {
        let json = serde_json::to_string(&now).unwrap_or_default();
        store.save_config_snapshot(&json, &changes).await?;
    }
    Ok(())
}

/// Starts every configured component.
pub async fn start(config: &Config, clock: SharedClock) -> Result<Handle, StartError> {
    let lock = lock_store(&config.store.url)?;
    let page_limit = store::PageLimit::of(config.store.test_max_pages.unwrap_or(0));
    let syslog = Syslog::of_site(config.audit.syslog.as_deref()).map_err(StartError::Syslog)?;
    let store = store::open_limited(&config.store.url, clock.clone(), page_limit.clone(), syslog).await?;
    // A damaged file is met at the start, with how to restore, not by failures mid-shift.
    store.check_integrity().await?;
    audit_config_changes(store.as_ref(), config).await?;
    store.clear_technical_alarms().await?;
    let profiles = Arc::new(ProfileSet::load_dir(&config.profiles.dir)?);
    let policy = Policy::of(config);
    let health = HealthRegistry::with_clock(clock.clone());
    let shutdown = CancellationToken::new();
    let drills = Drills { page_limit, ..Drills::default() };
    let (ledger, ledger_task) = Ledger::new(store.clone());
    // Not tracked: it may be retrying a row against a failing store when the pipeline stops.
    tokio::spawn(ledger_task);
    let (view_tx, view) = tokio::sync::watch::channel(crate::alerts::ledger::AlarmView::default());
    let wanted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let pages = crate::alerts::deliveries::PageLog::new(clock.clone());
    let wiring = crate::alerts::Wiring {
        queue_file: alert_queue_file(&config.store.url),
        view,
        wanted: wanted.clone(),
        ledger: ledger.clone(),
        pages: pages.clone(),
    };
    let circuit = crate::alerts::start(&config.alerts, wiring, &health, clock.clone(), drills.alerts.clone())
        .map_err(|source| StartError::Bind { addr: "the alert circuit's thread".into(), source })?;
    let (alerts, alerts_thread) = match circuit {
        Some(c) => (Some(c.handle), Some(c.thread)),
        None => (None, None),
    };
    let device_clocks = crate::rules::clock::DeviceClocksBoard::default();
    let mut no_data_after = HashMap::new();
    let (rules_tx, rules_task, rules_version, alarm_limits) = match &config.rules.file {
        None => (None, None, None, Vec::new()),
        Some(file) => {
            let rules = RuleSet::load(file)?;
            let version = rules.version.clone();
            let limits = rules.alarm_limits();
            for profile in profiles.iter() {
                if let Some(after) = rules.no_data_after(&profile.id) {
                    no_data_after.insert(profile.id.clone(), after.num_seconds().max(1) as u32);
                }
            }
            let engine = Engine::new(rules);
            let (tx, rx) = tokio::sync::mpsc::channel(crate::rules::run::QUEUE);
            (
                Some(tx),
                Some(tokio::spawn(crate::rules::run::run(
                    engine,
                    crate::rules::run::RulesTask {
                        store: store.clone(),
                        ehr: config.ehr.target(),
                        alerts: alerts.clone(),
                        clock: clock.clone(),
                        device_clocks: device_clocks.clone(),
                        health: health.clone(),
                        drill: drills.rules.clone(),
                    },
                    rx,
                ))),
                Some(version),
                limits,
            )
        }
    };
    let latest = LatestValues::default();
    let arrivals = ingest::Arrivals::default();
    let latencies = Arc::new(Latencies::default());
    let outputs = ingest::Outputs {
        rules: rules_tx,
        latest: latest.clone(),
        arrivals: arrivals.clone(),
        latencies: latencies.clone(),
        unmapped: health.register("profiles", ingest::HEARTBEAT),
    };
    let (ingest, tally, writer) = ingest::spawn(
        store.clone(),
        profiles.clone(),
        policy.clone(),
        &config.ingest,
        health.register("store", ingest::HEARTBEAT),
        outputs,
        clock.clone(),
    );
    let tasks = TaskTracker::new();
    tasks.spawn(crate::alerts::ledger::watch_handling(
        store.clone(),
        view_tx,
        wanted,
        crate::alerts::TICK,
        shutdown.clone(),
    ));
    let mut sources = Vec::new();
    let mut mqtt_listen_addr = None;

    let mqtt = &config.sources.mqtt;
    if mqtt.enabled {
        let (status, rx) = StatusReporter::new("mqtt", &health);
        sources.push(rx);
        match config.broker.mode {
            BrokerMode::Embedded => {
                let listener = TcpListener::bind(&config.broker.listen)
                    .await
                    .map_err(|source| StartError::Bind { addr: config.broker.listen.clone(), source })?;
                mqtt_listen_addr = listener.local_addr().ok();
                let limits = endpoint::Limits {
                    max_packet_bytes: mqtt.read_limit(),
                    payload_limit: mqtt.max_packet_bytes,
                    payload: mqtt.payload_limits(),
                    unacked_window: mqtt.unacked_window,
                    max_connections: mqtt.max_connections,
                    max_connections_per_address: mqtt.max_connections_per_address,
                    max_unauthenticated: mqtt.max_unauthenticated_connections,
                    max_keepalive_secs: mqtt.max_keepalive_secs,
                    connect_timeout: Duration::from_secs(mqtt.connect_timeout_secs),
                };
                let gate = Gate::load(store.as_ref(), mqtt.allow_anonymous, mqtt.failed_connects_per_minute).await?;
                let tls = endpoint_tls(&config.broker)?;
                let beats = gate::GateBeats {
                    auth: health.register("mqtt-auth", Duration::from_secs(1)),
                    access: health.register("mqtt-access", Duration::from_secs(1)),
                    certificate: tls
                        .as_ref()
                        .map(|t| (health.register("mqtt-certificate", Duration::from_secs(1)), t.expires)),
                };
                tasks.spawn(gate::watch(gate.clone(), store.clone(), store.clone(), beats, shutdown.clone()));
                let endpoint = endpoint::Endpoint { ingest: ingest.clone(), limits, gate, tls };
                tasks.spawn(endpoint::serve(listener, endpoint, status, shutdown.clone()));
            }
            BrokerMode::External => {
                let opts = client::options(&config.broker, mqtt)?;
                let terms = SourceTerms {
                    source: "mqtt",
                    publisher: Publisher::BrokerTopic,
                    max_bytes: mqtt.max_packet_bytes,
                    max_bytes_setting: endpoint::MAX_PACKET_SETTING,
                    limits: mqtt.payload_limits(),
                    format: Format::Profiles,
                };
                let feed = client::Feed { topics: mqtt.topics.clone(), terms };
                tasks.spawn(client::run(opts, feed, ingest.clone(), status, shutdown.clone()));
            }
        }
    }
    let mut mllp_listen_addr = None;
    if let Some(mllp) = &config.sources.mllp {
        let (status, rx) = StatusReporter::new(crate::sources::mllp::SOURCE, &health);
        sources.push(rx);
        let listener = TcpListener::bind(&mllp.listen)
            .await
            .map_err(|source| StartError::Bind { addr: mllp.listen.clone(), source })?;
        mllp_listen_addr = listener.local_addr().ok();
        let tls = match (&mllp.tls_cert_file, &mllp.tls_key_file) {
            (Some(cert), Some(key)) => Some(
                tls::server(cert, key, mllp.tls_client_ca_file.as_deref(), mllp.require_client_cert)
                    .map_err(StartError::Tls)?,
            ),
            _ => None,
        };
        let allow =
            mllp.allowed().map_err(|bad| StartError::Mllp(format!("allow has bad entries: {}", bad.join(", "))))?;
        if allow.is_empty() {
            return Err(StartError::Mllp("allow is empty: list the gateways that may connect".into()));
        }
        let pcd01 = mllp.terms();
        let listener_settings = crate::sources::mllp::Listener {
            ingest: ingest.clone(),
            terms: SourceTerms {
                source: crate::sources::mllp::SOURCE,
                publisher: Publisher::Anonymous,
                max_bytes: mllp.max_message_bytes,
                max_bytes_setting: crate::sources::mllp::MAX_MESSAGE_SETTING,
                limits: pcd01.limits,
                format: Format::Pcd01(Arc::new(pcd01)),
            },
            allow,
            tls,
            idle_timeout: Duration::from_secs(mllp.idle_timeout_secs),
            ack_timeout: Duration::from_millis(mllp.ack_timeout_ms),
            max_connections: mllp.max_connections,
            tally: tally.clone(),
            audit: store.clone(),
        };
        tasks.spawn(crate::sources::mllp::serve(listener, listener_settings, status, shutdown.clone()));
    }
    if let Some(host) = config.ehr.plain_http_host().filter(|_| config.ehr.kind == crate::config::EhrKind::Fhir) {
        let heartbeat = health.register("ehr-transport", Duration::from_secs(5));
        tasks.spawn(plain_http_warning(host, heartbeat, shutdown.clone()));
    }
    let retention = health.register("retention", Duration::from_secs(config.retention.purge_every_secs));
    tasks.spawn(purge(store.clone(), config.retention.clone(), clock.clone(), retention, shutdown.clone()));
    if alerts.is_none() {
        tasks.spawn(crate::alerts::nobody_paged(health.register("alert-sinks", crate::alerts::TICK), shutdown.clone()));
    }
    let sink = crate::clinical::sink(&config.ehr, store.clone(), clock.clone())?;
    let settings = OutboxSettings {
        batch: config.ehr.batch_events,
        base_backoff: Duration::from_millis(250),
        max_backoff: Duration::from_secs(config.ehr.max_backoff_secs),
        breaker_threshold: 5,
        target: config.ehr.target(),
    };
    tasks.spawn(outbox::run(
        store.clone(),
        outbox::Destination { sink, profiles: profiles.clone() },
        settings,
        health.register("ehr", outbox::HEARTBEAT),
        latencies.clone(),
        clock.clone(),
        shutdown.clone(),
    ));
    let supervisor = Supervisor { health: health.clone(), ledger, alerts, clock: clock.clone() };
    tasks.spawn(supervisor::run(supervisor, shutdown.clone(), drills.supervisor.clone()));
    if config.health.clock_sync_check {
        let heartbeat = health.register("workstation-clock", crate::health::clock_sync::HEARTBEAT);
        tasks.spawn(crate::health::clock_sync::run(heartbeat, config.health.test_clock_sync, shutdown.clone()));
    }
    let status_listener = TcpListener::bind(&config.status.listen)
        .await
        .map_err(|source| StartError::Bind { addr: config.status.listen.clone(), source })?;
    let status_addr = status_listener.local_addr().ok();
    let status = Arc::new(StatusSources {
        health,
        store: store.clone(),
        ingest: ingest.clone(),
        tally: tally.clone(),
        drills: config.status.drills.then_some(drills),
        rates: Default::default(),
        latencies,
        device_clocks,
    });
    let token_file = status_token_file(config);
    let guard = crate::status::Guard {
        token: crate::status::token(&token_file)
            .map_err(|source| StartError::TokenFile { path: token_file.clone(), source })?,
        loopback: config.status.on_loopback(),
        port: status_addr.map_or(0, |a| a.port()),
    };
    let status_tls = match (&config.status.tls_cert_file, &config.status.tls_key_file) {
        (Some(cert), Some(key)) => Some(tls::server(cert, key, None, false).map_err(StartError::Tls)?.acceptor),
        _ => None,
    };
    tasks.spawn(crate::status::serve(status_listener, status.clone(), guard, status_tls, shutdown.clone()));
    tasks.close();
    Ok(Handle {
        alerts_thread,
        _lock: lock,
        store,
        rules_version,
        alarm_limits,
        no_data_after,
        arrivals,
        pages,
        profiles,
        policy,
        ingest,
        tally,
        latest,
        status,
        writer,
        rules_task,
        sources,
        mqtt_listen_addr,
        mllp_listen_addr,
        status_addr,
        shutdown,
        tasks,
    })
}

/// Enforces raw retention on a timer.
/// Purges raw telemetry past its retention, beating as `retention` after each round.
async fn purge(
    store: Arc<dyn Inbox>,
    retention: RetentionConfig,
    clock: SharedClock,
    heartbeat: Heartbeat,
    shutdown: CancellationToken,
) {
    let raw_days = retention.raw_days;
    let mut tick = tokio::time::interval(Duration::from_secs(retention.purge_every_secs));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let cutoff = clock.now() - chrono::Duration::days(i64::from(raw_days));
        let purged = async {
            let rows = store.purge_before(cutoff).await?;
            if rows > 0 {
                tracing::info!(rows, raw_days, "retention purge removed old telemetry");
            }
            for s in store.purge_forensic(&retention).await? {
                tracing::info!(what = %s.what, reason = %s.reason, rows = s.rows, why = %s.why, "forensic records purged (summarised, audited)");
            }
            store.forensic_fill().await
        };
        match purged.await {
            Ok((rejected, unknown)) => heartbeat.beat(
                HealthState::Up,
                &format!(
                    "keeping {raw_days} days of raw telemetry; rejected {rejected} of {}, unknown-device quarantine {unknown} of {}",
                    retention.max_rejected, retention.max_unknown_quarantine
                ),
            ),
            Err(e) => {
                tracing::error!(error = %e, "retention purge failed; will retry");
                heartbeat.beat(HealthState::Degraded, &format!("purge failed, will retry: {e}"));
            }
        }
    }
}

impl Handle {
    /// The store, for queries and registry commands.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// After how long without data a device of `profile_id` raises its no-data alarm, if a rule
    /// watches the profile.
    pub fn no_data_after(&self, profile_id: &str) -> Option<u32> {
        self.no_data_after.get(profile_id).copied()
    }

    /// Payloads per minute of each device heard in the last minute.
    pub fn message_rates(&self, now: chrono::DateTime<chrono::Utc>) -> HashMap<String, f64> {
        self.arrivals.per_minute(now)
    }

    /// What became of each alarm's pages since the pipeline started.
    pub fn pages(&self) -> &crate::alerts::deliveries::PageLog {
        &self.pages
    }

    /// Each live device's clock offset, as the rules last estimated it.
    pub fn device_clocks(&self) -> Vec<crate::rules::clock::DeviceClock> {
        self.status.device_clocks.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The active rules' alarm limits (threshold rules that raise alarms).
    pub fn alarm_limits(&self) -> &[crate::rules::RuleLimit] {
        &self.alarm_limits
    }

    /// The rule set's version, when rules are loaded.
    pub fn rules_version(&self) -> Option<&str> {
        self.rules_version.as_deref()
    }

    /// The device profiles in use.
    pub fn profiles(&self) -> &Arc<ProfileSet> {
        &self.profiles
    }

    /// The identification policy in use.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The newest value of each stream.
    pub fn latest(&self) -> Vec<((String, u32), Latest)> {
        self.latest.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// The board: components, modes, queues, totals and rates.
    pub async fn board(&self) -> Status {
        crate::status::status(&self.status).await
    }

    /// Where the embedded MQTT endpoint listens, if it runs.
    pub fn mqtt_listen_addr(&self) -> Option<SocketAddr> {
        self.mqtt_listen_addr
    }

    /// Where the MLLP listener listens, if it runs.
    pub fn mllp_listen_addr(&self) -> Option<SocketAddr> {
        self.mllp_listen_addr
    }

    /// Where the status and metrics endpoint answers.
    pub fn status_addr(&self) -> Option<SocketAddr> {
        self.status_addr
    }

    /// Every source's current state.
    pub fn sources(&self) -> Vec<SourceStatus> {
        self.sources.iter().map(|rx| rx.borrow().clone()).collect()
    }

    /// What the ingest writer did since start.
    pub fn tally(&self) -> BatchTally {
        *self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Payloads waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.ingest.queue_depth()
    }

    /// Payloads taken in but not yet stored.
    pub fn unstored(&self) -> usize {
        self.ingest.unstored()
    }

    /// Stops the sources, stores everything already accepted, and returns when all is durable, or
    /// after [`SHUTDOWN_BOUND`] whatever the peers and the store do. What is not stored by then was
    /// never acknowledged, so its devices (or the broker) send it again; nothing is lost.
    pub async fn shutdown(self) {
        let deadline = tokio::time::Instant::now() + SHUTDOWN_BOUND;
        self.shutdown.cancel();
        if tokio::time::timeout_at(deadline, self.tasks.wait()).await.is_err() {
            tracing::warn!("a source or the outbox did not stop in time; stopping without it");
        }
        // The board holds a sender too: every sender must go for the writer to drain and stop.
        drop(self.status);
        drop(self.ingest);
        let mut writer = self.writer;
        if tokio::time::timeout_at(deadline, &mut writer).await.is_err() {
            writer.abort();
            tracing::warn!(
                "the store did not take the last payloads in time; they were not acknowledged and will be sent again"
            );
        }
        // The writer dropped the rules' sender: they finish what was stored, then stop.
        if let Some(mut rules) = self.rules_task
            && tokio::time::timeout_at(deadline, &mut rules).await.is_err()
        {
            rules.abort();
            tracing::warn!("the rules did not finish in time; their state is rebuilt from the store at the next start");
        }
        // The circuit sends what the drain raised (its own drain is bounded), then stops; a new
        // pipeline (a Settings save) must not start a second circuit on the same queue file before.
        if let Some(thread) = self.alerts_thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}
