//! [`Console`]: the desktop console's facade. It runs the pipeline from a config file and adds the
//! live parts (board, live values, charts, settings) to the operator facade, [`Admin`], which it
//! shares with the CLI.
//!
//! Invariant: the console holds no rule of its own; every operator action goes through [`Admin`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::actor::{Actor, SignedInBy};
use super::admin::Admin;
use super::admin::bulk_ackable;
use super::chart;
use super::dto::{
    AlarmView, BrokerSettings, ConnectionResult, ConnectionTarget, DeviceView, EhrSettings, HeldView, LiveValue,
    OutboxView, PairingView, SessionView, Settings,
};
use super::error::{ApiError, ApiResult, ErrorCode};
use crate::accounts::Action;
use crate::clinical;
use crate::clock::SharedClock;
use crate::config::{BrokerAddress, BrokerMode, Config};
use crate::demo::{self, DemoFiles};
use crate::model::codes::{clinical_order, metric_by_code};
use crate::model::event::{ClinicalEvent, EventContent, Observation};
use crate::pipeline::{self, Handle};
use crate::registry_import::SeedError;
use crate::simulate::PublishReport;
use crate::status::Status;
use crate::store::{OutboxStatus, QuarantineEntry, ReadingQuery, Store};

mod fleet;

/// A live value older than this is marked stale.
pub const STALE_AFTER_SECS: f64 = 30.0;

/// Where the console keeps its site, and whether it is the demo.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// The site's `vigil.toml`; Settings saves to it.
    pub config_path: PathBuf,
    /// The demo's fixtures: with them, a missing config is created as the demo site, the demo
    /// registry is loaded and simulated devices publish to the embedded endpoint.
    pub demo: Option<DemoFiles>,
    /// Where a new demo site's MQTT and status endpoints listen (port 0: any free port).
    pub demo_listen: (String, String),
    /// Where "now" comes from.
    pub clock: SharedClock,
}

/// How long an alarm's escalation may still be silenced: nothing once acknowledged or cleared (a
/// silence would change nothing) or once its silences are spent.
fn silence_left(alarm: &crate::store::AlarmEntry, limits: &crate::config::AlertsConfig) -> u32 {
    if alarm.acked_at.is_some() || alarm.cleared_at.is_some() || alarm.silence_count >= limits.max_silences {
        return 0;
    }
    limits.max_silence_minutes_total.saturating_sub(alarm.silenced_minutes).min(super::MAX_SILENCE_MINUTES)
}

/// Who the window is signed in as.
#[derive(Debug, Clone, Default)]
struct Session {
    actor: Option<Actor>,
    locked: bool,
}

/// The running console: the pipeline, the operator facade over it and, in the demo, its simulated
/// ward.
pub struct Console {
    options: ConsoleOptions,
    admin: Admin,
    session: std::sync::Mutex<Session>,
    handle: Handle,
    rules_version: Option<String>,
    simulator: Option<(CancellationToken, JoinHandle<anyhow::Result<PublishReport>>)>,
}

impl Console {
    /// Starts the site at `options.config_path` (created as the demo site when demo files are given
    /// and it does not exist yet).
    pub async fn start(options: ConsoleOptions) -> ApiResult<Console> {
        if let Some(files) = &options.demo
            && !options.config_path.exists()
        {
            let dir = options.config_path.parent().map(PathBuf::from).unwrap_or_default();
            std::fs::create_dir_all(&dir).map_err(|e| {
                ApiError::new(ErrorCode::InvalidConfig, format!("cannot create {}: {e}", dir.display()))
            })?;
            let (mqtt, status) = &options.demo_listen;
            write_config(&options.config_path, &demo::config(&dir, files, mqtt, status))?;
        }
        let config =
            Config::load(&options.config_path).map_err(|e| ApiError::new(ErrorCode::InvalidConfig, e.to_string()))?;
        Console::launch(options, config).await
    }

    async fn launch(options: ConsoleOptions, config: Config) -> ApiResult<Console> {
        // The demo gateway's credential exists before the endpoint opens: the ward's first CONNECT passes.
        let gateway = match &options.demo {
            Some(_) => {
                let data_dir = options.config_path.parent().map(PathBuf::from).unwrap_or_default();
                // A store that does not open is for the pipeline's start to explain.
                match Admin::open(config.clone(), options.clock.clone()).await {
                    Ok(admin) => Some(admin.demo_gateway(&data_dir).await?),
                    Err(_) => None,
                }
            }
            None => None,
        };
        let handle = pipeline::start(&config, options.clock.clone()).await.map_err(|e| {
            tracing::error!(error = %e, "the pipeline did not start");
            ApiError::new(ErrorCode::StartFailed, format!("the pipeline did not start: {}", e.operator_text()))
        })?;
        let admin =
            Admin::over(config.clone(), handle.store().clone(), handle.profiles().clone(), options.clock.clone());
        let mut simulator = None;
        if let Some(files) = &options.demo {
            demo::seed(admin.store().as_ref(), files, options.clock.now()).await.map_err(|e| match e {
                SeedError::Store(e) => ApiError::from(e),
                other => ApiError::new(ErrorCode::InvalidConfig, other.to_string()),
            })?;
            if let (Some(addr), Some(login)) = (handle.mqtt_listen_addr(), gateway) {
                let stop = CancellationToken::new();
                simulator = Some((stop.clone(), demo::simulate(addr, login, stop)));
            }
        }
        let rules_version = handle.rules_version().map(str::to_string);
        // The demo signs its built-in administrator in: the top bar says DEMO.
        let session = match &options.demo {
            Some(_) => Session { actor: Some(admin.demo_actor().await?), locked: false },
            None => Session::default(),
        };
        Ok(Console { options, admin, session: std::sync::Mutex::new(session), handle, rules_version, simulator })
    }

    /// Stops the simulated ward and the pipeline, storing everything already accepted.
    pub async fn stop(self) {
        // The simulated devices disconnect first, as real ones would on a restart.
        if let Some((stop, publisher)) = self.simulator {
            stop.cancel();
            let _ = publisher.await;
        }
        self.handle.shutdown().await;
    }

    /// The operator facade: every action both faces offer.
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    fn store(&self) -> &Arc<dyn Store> {
        self.admin.store()
    }

    fn config(&self) -> &Config {
        self.admin.config()
    }

    /// The window's session (a poisoned lock still holds a usable session).
    fn held(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Who is signed in, whether locked, and what the window should ask for.
    pub async fn session(&self) -> ApiResult<SessionView> {
        let needs_first_admin = self.admin.needs_first_admin().await?;
        let s = self.held().clone();
        Ok(SessionView {
            account: s.actor.as_ref().map(|a| a.name().to_string()),
            roles: s.actor.as_ref().map(|a| a.roles().to_vec()).unwrap_or_default(),
            demo: self.options.demo.is_some(),
            locked: s.locked,
            needs_first_admin,
            lock_after_secs: self.config().console.lock_after_secs,
            break_glass: s.actor.as_ref().is_some_and(|a| a.signed_in_by() == SignedInBy::BreakGlass),
        })
    }

    /// The signed-in, unlocked actor every action of the window is done by.
    pub fn actor(&self) -> ApiResult<Actor> {
        let s = self.held();
        match (&s.actor, s.locked) {
            (Some(actor), false) => Ok(actor.clone()),
            (Some(_), true) => {
                Err(ApiError::new(ErrorCode::Unauthenticated, "the console is locked: unlock it to act"))
            }
            (None, _) => Err(ApiError::new(ErrorCode::Unauthenticated, "sign in first")),
        }
    }

    /// Signs an account in with its password.
    pub async fn sign_in(&self, name: &str, password: &str) -> ApiResult<SessionView> {
        let actor = self.admin.sign_in(name, password, "console").await?;
        *self.held() = Session { actor: Some(actor), locked: false };
        self.session().await
    }

    /// Creates the first administrator (a site with no account yet) and signs it in.
    pub async fn create_first_admin(&self, name: &str, password: &str) -> ApiResult<SessionView> {
        let actor = self.admin.create_first_admin(name, password).await?;
        *self.held() = Session { actor: Some(actor), locked: false };
        self.session().await
    }

    /// Locks the window: the board, the alarm count and the banner stay; acting needs the password.
    pub async fn lock(&self) -> ApiResult<SessionView> {
        let name = {
            let mut s = self.held();
            s.locked = s.actor.is_some();
            s.actor.as_ref().map(|a| a.name().to_string())
        };
        if let Some(name) = name {
            self.store().audit(&name, "console.lock", "console", "").await?;
        }
        self.session().await
    }

    /// Unlocks the window with the locked account's password.
    pub async fn unlock(&self, password: &str) -> ApiResult<SessionView> {
        let held = self.held().actor.clone();
        let Some(held) = held else {
            return Err(ApiError::new(ErrorCode::Unauthenticated, "sign in first"));
        };
        // The demo's built-in account signs in with its name as password, like any other.
        let actor = self.admin.sign_in(held.name(), password, "console unlock").await?;
        *self.held() = Session { actor: Some(actor), locked: false };
        self.session().await
    }

    /// Signs out.
    pub async fn sign_out(&self) -> ApiResult<SessionView> {
        let held = std::mem::take(&mut *self.held());
        if let Some(actor) = held.actor {
            self.store().audit(actor.name(), "account.sign_out", actor.name(), "console").await?;
        }
        self.session().await
    }

    /// The board.
    pub async fn board(&self) -> Status {
        self.handle.board().await
    }

    /// The newest value of every stream of a paired device, with labels and age.
    pub async fn live_values(&self) -> ApiResult<Vec<LiveValue>> {
        let actor = self.actor()?;
        self.admin.audit_view(&actor, "live values").await;
        let latest = self.handle.latest();
        let labels = self.labels(latest.iter().map(|(_, l)| l.patient_id).collect()).await?;
        let devices: HashMap<String, Option<String>> =
            self.admin.devices(&actor).await?.into_iter().map(|d| (d.device_id, d.label)).collect();
        let now = self.admin.clock().now();
        let mut values: Vec<LiveValue> = latest
            .into_iter()
            .map(|((device_id, mdc_code), l)| {
                let age_secs = (now - l.observed_at).num_milliseconds().max(0) as f64 / 1000.0;
                LiveValue {
                    device_label: devices.get(&device_id).cloned().flatten(),
                    patient_id: Some(l.patient_id),
                    patient_label: labels.get(&l.patient_id).cloned(),
                    device_id,
                    mdc_code,
                    metric: metric_by_code(mdc_code).map_or_else(|| mdc_code.to_string(), |m| m.display.to_string()),
                    order: clinical_order(mdc_code),
                    decimals: metric_by_code(mdc_code).map_or(2, |m| m.decimals),
                    value: l.value,
                    unit: l.unit.to_string(),
                    observed_at: l.observed_at,
                    age_secs,
                    stale: age_secs > STALE_AFTER_SECS,
                    validity: l.validity,
                }
            })
            .collect();
        values.sort_by(|a, b| {
            (a.patient_label.as_deref(), &a.device_id, a.order).cmp(&(
                b.patient_label.as_deref(),
                &b.device_id,
                b.order,
            ))
        });
        Ok(values)
    }

    /// A stream's trend over the last `minutes`, as SVG.
    pub async fn chart(&self, device_id: &str, mdc_code: u32, minutes: u32) -> ApiResult<String> {
        let metric = metric_by_code(mdc_code)
            .ok_or_else(|| ApiError::new(ErrorCode::UnknownSeries, format!("no metric with MDC code {mdc_code}")))?;
        let actor = self.actor()?;
        self.admin.permit(&actor, Action::View).await?;
        self.admin.audit_view(&actor, &format!("trend of {device_id} {}", metric.mdc_ref)).await;
        let minutes = minutes.clamp(1, 24 * 60);
        let now = self.admin.clock().now();
        let query = ReadingQuery {
            device_id: Some(device_id.to_string()),
            mdc_code: Some(mdc_code),
            from: Some(now - chrono::Duration::minutes(i64::from(minutes))),
            limit: Some(20_000),
            ..ReadingQuery::default()
        };
        let readings = self.store().readings(&query).await?;
        let limits = self.limits_of(mdc_code);
        let series = chart::Series {
            title: format!("{} {device_id}", metric.display),
            ucum: metric.unit,
            decimals: usize::from(metric.decimals),
            readings: &readings,
            limits: &limits,
        };
        Ok(chart::trend(&series, minutes, now))
    }

    /// The active rules' alarm limits on a metric.
    fn limits_of(&self, mdc_code: u32) -> Vec<chart::AlarmLimit> {
        self.handle
            .alarm_limits()
            .iter()
            .filter(|l| l.mdc_code == mdc_code)
            .map(|l| chart::AlarmLimit { value: l.value, label: l.label.clone() })
            .collect()
    }

    /// Every parameter of one patient over the last `minutes`, stacked on one time axis in
    /// clinical order, as SVG.
    pub async fn bed_chart(&self, patient_id: i64, minutes: u32) -> ApiResult<String> {
        let actor = self.actor()?;
        self.admin.permit(&actor, Action::View).await?;
        let label = self
            .labels(vec![patient_id])
            .await?
            .remove(&patient_id)
            .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no patient with store key {patient_id}")))?;
        self.admin.audit_view(&actor, &format!("bed trend of patient {patient_id}")).await;
        let minutes = minutes.clamp(1, 24 * 60);
        let now = self.admin.clock().now();
        let query = ReadingQuery {
            patient_id: Some(patient_id),
            from: Some(now - chrono::Duration::minutes(i64::from(minutes))),
            limit: Some(100_000),
            ..ReadingQuery::default()
        };
        let readings = self.store().readings(&query).await?;
        let mut by_stream: std::collections::BTreeMap<(u32, String, u32), Vec<crate::store::StoredReading>> =
            std::collections::BTreeMap::new();
        for r in readings {
            by_stream.entry((clinical_order(r.mdc_code), r.device_id.clone(), r.mdc_code)).or_default().push(r);
        }
        let limits: Vec<Vec<chart::AlarmLimit>> = by_stream.keys().map(|(_, _, code)| self.limits_of(*code)).collect();
        let series: Vec<chart::Series> = by_stream
            .iter()
            .zip(&limits)
            .filter_map(|(((_, device_id, code), readings), limits)| {
                let metric = metric_by_code(*code)?;
                Some(chart::Series {
                    title: format!("{} {device_id}", metric.display),
                    ucum: metric.unit,
                    decimals: usize::from(metric.decimals),
                    readings,
                    limits,
                })
            })
            .collect();
        Ok(chart::bed(&label, &series, minutes, now))
    }

    /// Alarms, newest first (only active ones when asked), with the patient's label.
    pub async fn alarms(&self, active_only: bool) -> ApiResult<Vec<AlarmView>> {
        let alarms = self.admin.alarms(&self.actor()?, active_only, 500).await?;
        let labels = self.labels(alarms.iter().filter_map(|a| a.patient_id).collect()).await?;
        Ok(alarms
            .into_iter()
            .map(|alarm| {
                let pages = self.handle.pages().of(&alarm.key);
                AlarmView {
                    patient_label: alarm.patient_id.and_then(|p| labels.get(&p).cloned()),
                    unit: alarm.mdc_code.and_then(metric_by_code).map(|m| m.unit.to_string()),
                    silence_minutes_left: silence_left(&alarm, &self.config().alerts),
                    escalated_at: pages.iter().find(|p| p.escalated).map(|p| p.sent_at),
                    bulk_ack: bulk_ackable(&alarm),
                    pages,
                    alarm,
                }
            })
            .collect())
    }

    /// Quarantined readings still to be resolved.
    pub async fn quarantine(&self) -> ApiResult<Vec<QuarantineEntry>> {
        self.admin.quarantine(&self.actor()?, 500).await
    }

    /// Readings held for want of consent, newest first, with the patient's label and raw payload.
    pub async fn held_readings(&self) -> ApiResult<Vec<HeldView>> {
        let held = self.admin.held(&self.actor()?, 500).await?;
        let labels = self.labels(held.iter().map(|h| h.patient_id).collect()).await?;
        Ok(held
            .into_iter()
            .map(|entry| HeldView { patient_label: labels.get(&entry.patient_id).cloned(), entry })
            .collect())
    }

    /// A device's pairings, past and current, newest first, with the patients' labels.
    pub async fn pairing_history(&self, device_id: &str) -> ApiResult<Vec<PairingView>> {
        let pairings = self.admin.pairings_of(&self.actor()?, device_id).await?;
        let labels = self.labels(pairings.iter().map(|p| p.patient_id).collect()).await?;
        Ok(pairings
            .into_iter()
            .map(|p| PairingView {
                patient_label: labels.get(&p.patient_id).cloned(),
                id: p.id,
                patient_id: p.patient_id,
                valid_from: p.valid_from,
                valid_to: p.valid_to,
                created_by: p.created_by,
                created_at: p.created_at,
            })
            .collect())
    }

    /// Registered devices with their pairing and the patient's label.
    pub async fn devices(&self) -> ApiResult<Vec<DeviceView>> {
        let devices = self.admin.devices(&self.actor()?).await?;
        let labels = self.labels(devices.iter().filter_map(|d| d.patient_id).collect()).await?;
        Ok(devices
            .into_iter()
            .map(|device| DeviceView { patient_label: device.patient_id.and_then(|p| labels.get(&p).cloned()), device })
            .collect())
    }

    /// The outbox, newest first (one status when given), with the patient's label.
    pub async fn outbox(&self, status: Option<OutboxStatus>) -> ApiResult<Vec<OutboxView>> {
        let entries = self.admin.outbox(&self.actor()?, status, 500).await?;
        let labels = self.labels(entries.iter().map(|e| e.patient_id).collect()).await?;
        Ok(entries
            .into_iter()
            .map(|e| OutboxView {
                summary: summary(&e.event),
                patient_label: labels.get(&e.patient_id).cloned(),
                id: e.id,
                hash: e.hash,
                patient_id: e.patient_id,
                status: e.status,
                reason: e.reason,
                attempts: e.attempts,
                ehr_ref: e.ehr_ref,
                created_at: e.created_at,
                delivered_at: e.delivered_at,
            })
            .collect())
    }

    /// The settings an operator sees.
    pub fn settings(&self) -> Settings {
        let c = self.config();
        Settings {
            ehr: EhrSettings {
                kind: c.ehr.kind,
                environment: c.ehr.environment,
                base_url: c.ehr.base_url.clone(),
                auth: c.ehr.auth,
                mllp_addr: c.ehr.mllp_address.clone(),
            },
            broker: BrokerSettings {
                mode: c.broker.mode,
                url: c.broker.url.clone(),
                listen: Some(c.broker.listen.clone()),
            },
            store_url: c.store.url.clone(),
            rules_version: self.rules_version.clone(),
            demo: self.simulator.is_some(),
        }
    }

    /// Saves new EHR and broker settings and restarts the pipeline on them. When the new settings
    /// cannot start, the previous ones are restored and the second value says why; the outer error
    /// means neither started (nothing runs).
    pub async fn apply_settings(self, settings: &Settings, why: &str) -> ApiResult<(Console, ApiResult<()>)> {
        let actor = match self.actor() {
            Ok(actor) => actor,
            Err(e) => return Ok((self, Err(e))),
        };
        if let Err(e) = self.admin.permit(&actor, Action::ChangeSettings).await {
            return Ok((self, Err(e)));
        }
        let why = why.trim();
        if why.is_empty() {
            let e = ApiError::new(
                ErrorCode::InvalidInput,
                "give a reason for changing the settings: it is kept in the audit trail",
            );
            return Ok((self, Err(e)));
        }
        let mut config = self.config().clone();
        config.ehr.kind = settings.ehr.kind;
        config.ehr.environment = settings.ehr.environment;
        config.ehr.base_url = settings.ehr.base_url.clone().filter(|s| !s.trim().is_empty());
        config.ehr.auth = settings.ehr.auth;
        config.ehr.mllp_address = settings.ehr.mllp_addr.clone().filter(|s| !s.trim().is_empty());
        config.broker.mode = settings.broker.mode;
        config.broker.url = settings.broker.url.clone().filter(|s| !s.trim().is_empty());
        if let Some(listen) = settings.broker.listen.clone().filter(|s| !s.trim().is_empty()) {
            config.broker.listen = listen;
        }
        let problems = config.validate();
        if !problems.is_empty() {
            let text = problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ");
            return Ok((self, Err(ApiError::new(ErrorCode::InvalidConfig, text))));
        }
        let (options, previous) = (self.options.clone(), self.config().clone());
        let detail = format!("ehr {:?}, broker {:?}: {why}", config.ehr.kind, config.broker.mode);
        let session = self.held().clone();
        self.stop().await;
        match Console::launch(options.clone(), config.clone()).await {
            Ok(console) => {
                *console.held() = session;
                let saved = write_config(&options.config_path, &config);
                let audited = console.store().audit(actor.name(), "settings.change", "vigil.toml", &detail).await;
                Ok((console, saved.and(audited.map_err(ApiError::from))))
            }
            Err(e) => {
                let console = Console::launch(options, previous).await.map_err(|again| {
                    ApiError::new(
                        ErrorCode::StartFailed,
                        format!("neither the new settings ({e}) nor the previous ({again}) start"),
                    )
                })?;
                *console.held() = session;
                Ok((console, Err(e)))
            }
        }
    }

    /// Checks that the EHR or the broker answers, with the saved settings.
    pub async fn test_connection(&self, target: ConnectionTarget) -> ConnectionResult {
        let config = self.config();
        let result = match target {
            ConnectionTarget::Ehr => {
                match clinical::sink(&config.ehr, self.store().clone(), self.admin.clock().clone()) {
                    Err(e) => Err(e.to_string()),
                    Ok(sink) => sink.probe().await,
                }
            }
            ConnectionTarget::Broker => match config.broker.mode {
                BrokerMode::Embedded => match self.handle.mqtt_listen_addr() {
                    Some(addr) => Ok(format!("the embedded MQTT endpoint listens on {addr}")),
                    None => Err("the embedded MQTT endpoint is not running (MQTT ingest is disabled)".into()),
                },
                BrokerMode::External => broker_answers(config.broker.url.as_deref()).await,
            },
        };
        match result {
            Ok(message) => ConnectionResult { ok: true, message },
            Err(message) => ConnectionResult { ok: false, message },
        }
    }

    /// Patient store key → the name, or the identifier when no name is known (console only).
    async fn labels(&self, patients: Vec<i64>) -> ApiResult<HashMap<i64, String>> {
        let mut labels = HashMap::new();
        for p in patients {
            if !labels.contains_key(&p)
                && let Some(patient) = self.store().patient(p).await?
            {
                labels.insert(p, patient.display_name.unwrap_or(patient.value));
            }
        }
        Ok(labels)
    }
}

async fn broker_answers(url: Option<&str>) -> Result<String, String> {
    let url = url.ok_or("no broker URL is set")?;
    let addr = BrokerAddress::parse(url).map_err(|e| e.to_string())?;
    let target = format!("{}:{}", addr.host, addr.port);
    match tokio::time::timeout(std::time::Duration::from_secs(5), tokio::net::TcpStream::connect(&target)).await {
        Ok(Ok(_)) => Ok(format!("the broker at {target} accepts connections")),
        Ok(Err(e)) => Err(format!("the broker at {target}: {e}")),
        Err(_) => Err(format!("the broker at {target} did not answer within 5 s")),
    }
}

fn write_config(path: &std::path::Path, config: &Config) -> ApiResult<()> {
    let text = toml::to_string(config).map_err(|e| ApiError::new(ErrorCode::InvalidConfig, e.to_string()))?;
    std::fs::write(path, text)
        .map_err(|e| ApiError::new(ErrorCode::InvalidConfig, format!("cannot write {}: {e}", path.display())))
}

/// One line about an event, e.g. "SpO2 86 % (rule:spo2-low@...)".
fn summary(event: &serde_json::Value) -> String {
    let Ok(event) = serde_json::from_value::<ClinicalEvent>(event.clone()) else {
        return "(unreadable event)".into();
    };
    let observation = |o: &Observation| match o {
        Observation::Vital { metric, value, .. } => format!("{} {value} {}", metric.display, metric.unit),
        Observation::BloodPressure { systolic, diastolic, .. } => format!("BP {systolic}/{diastolic} mm[Hg]"),
    };
    let what = match &event.content {
        EventContent::Single { observation: o } => observation(o),
        EventContent::Report { title, observations, .. } => {
            format!("{title}: {}", observations.iter().map(observation).collect::<Vec<_>>().join(", "))
        }
    };
    format!("{what} ({})", event.origin)
}
