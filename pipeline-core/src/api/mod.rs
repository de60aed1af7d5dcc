//! The console's facade: one [`Console`] runs the pipeline from a config file and answers every
//! question and operator action the desktop console has, so the Tauri shell only wires calls to it.
//!
//! Invariant: every operator action names its operator and is audited in the store; errors come
//! back as `{code, message}` with a message an operator can act on, never SQL or a stack.

pub mod chart;
pub mod dto;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::clinical::{self, ProvisionError, RequeueError};
use crate::config::{BrokerAddress, BrokerMode, Config, EhrKind};
use crate::demo::{self, DemoFiles};
use crate::health::endpoint::Status;
use crate::identify::{Flow, Verdict, identify};
use crate::model::event::{ClinicalEvent, EventContent, Observation};
use crate::normalise::codes::metric_by_code;
use crate::normalise::normalise;
use crate::pipeline::{self, Handle};
use crate::rules::RuleSet;
use crate::simulate::PublishReport;
use crate::sinks::fhir::PatientLookup;
use crate::store::{
    OutboxStatus, PatientEntry, PatientIdentifier, QuarantineEntry, ReadingQuery, Resolution, Store, StoreError,
};
use dto::{
    AlarmView, BrokerSettings, ConnectionResult, DeviceView, EhrSettings, LiveValue, OutboxView, ReleaseOutcome,
    Settings, VerifiedPatient,
};

/// A live value older than this is marked stale.
pub const STALE_AFTER_SECS: f64 = 30.0;

/// An error for the console: a stable code the UI may branch on, and words for the operator.
#[derive(Debug, Clone, Serialize, thiserror::Error, PartialEq, Eq)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// e.g. `invalid_input`, `not_found`, `refused`, `ehr_unreachable`, `store`.
    pub code: &'static str,
    /// What went wrong and what to do.
    pub message: String,
}

impl ApiError {
    fn new(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into() }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Refused(why) => ApiError::new("refused", why),
            other => {
                tracing::error!(error = %other, "store error behind a console request");
                ApiError::new("store", "the local store failed; see the board and the log")
            }
        }
    }
}

impl From<RequeueError> for ApiError {
    fn from(e: RequeueError) -> ApiError {
        match e {
            RequeueError::NotFound(id) => ApiError::new("not_found", format!("outbox {id} does not exist")),
            RequeueError::Store(e) => e.into(),
            other => ApiError::new("refused", other.to_string()),
        }
    }
}

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
}

/// The running console: the pipeline and, in the demo, its simulated ward.
pub struct Console {
    options: ConsoleOptions,
    config: Config,
    handle: Handle,
    rules_version: Option<String>,
    simulator: Option<(CancellationToken, JoinHandle<anyhow::Result<PublishReport>>)>,
}

type ApiResult<T> = Result<T, ApiError>;

impl Console {
    /// Starts the site at `options.config_path` (created as the demo site when demo files are given
    /// and it does not exist yet).
    pub async fn start(options: ConsoleOptions) -> ApiResult<Console> {
        if let Some(files) = &options.demo
            && !options.config_path.exists()
        {
            let dir = options.config_path.parent().map(PathBuf::from).unwrap_or_default();
            std::fs::create_dir_all(&dir)
                .map_err(|e| ApiError::new("invalid_config", format!("cannot create {}: {e}", dir.display())))?;
            let (mqtt, status) = &options.demo_listen;
            write_config(&options.config_path, &demo::config(&dir, files, mqtt, status))?;
        }
        let config = Config::load(&options.config_path).map_err(|e| ApiError::new("invalid_config", e.to_string()))?;
        Console::launch(options, config).await
    }

    async fn launch(options: ConsoleOptions, config: Config) -> ApiResult<Console> {
        let handle = pipeline::start(&config).await.map_err(|e| ApiError::new("start_failed", e.to_string()))?;
        let mut simulator = None;
        if let Some(files) = &options.demo {
            demo::seed(handle.store().as_ref(), files)
                .await
                .map_err(|e| ApiError::new("invalid_config", e.to_string()))?;
            if let Some(addr) = handle.mqtt_listen_addr() {
                let stop = CancellationToken::new();
                simulator = Some((stop.clone(), demo::simulate(addr, stop)));
            }
        }
        let rules_version = config.rules.file.as_deref().and_then(|f| RuleSet::load(f).ok()).map(|r| r.version);
        Ok(Console { options, config, handle, rules_version, simulator })
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

    fn store(&self) -> &Arc<dyn Store> {
        self.handle.store()
    }

    /// The board.
    pub async fn board(&self) -> Status {
        self.handle.board().await
    }

    /// The newest value of every stream of a paired device, with labels and age.
    pub async fn live_values(&self) -> ApiResult<Vec<LiveValue>> {
        let latest = self.handle.latest();
        let labels = self.labels(latest.iter().map(|(_, l)| l.patient_id).collect()).await?;
        let devices: HashMap<String, Option<String>> =
            self.store().devices().await?.into_iter().map(|d| (d.device_id, d.label)).collect();
        let now = Utc::now();
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
                    value: l.value,
                    unit: l.unit.to_string(),
                    observed_at: l.observed_at,
                    age_secs,
                    stale: age_secs > STALE_AFTER_SECS,
                }
            })
            .collect();
        values.sort_by(|a, b| {
            (a.patient_label.as_deref(), &a.device_id, a.mdc_code).cmp(&(
                b.patient_label.as_deref(),
                &b.device_id,
                b.mdc_code,
            ))
        });
        Ok(values)
    }

    /// A stream's trend over the last `minutes`, as SVG.
    pub async fn chart(&self, device_id: &str, mdc_code: u32, minutes: u32) -> ApiResult<String> {
        let metric = metric_by_code(mdc_code)
            .ok_or_else(|| ApiError::new("unknown_series", format!("no metric with MDC code {mdc_code}")))?;
        let minutes = minutes.clamp(1, 24 * 60);
        let now = Utc::now();
        let query = ReadingQuery {
            device_id: Some(device_id.to_string()),
            mdc_code: Some(mdc_code),
            from: Some(now - chrono::Duration::minutes(i64::from(minutes))),
            limit: Some(20_000),
            ..ReadingQuery::default()
        };
        let readings = self.store().readings(&query).await?;
        Ok(chart::trend(&format!("{} {device_id}", metric.display), metric.unit, &readings, minutes, now))
    }

    /// Alarms, newest first (only active ones when asked).
    pub async fn alarms(&self, active_only: bool) -> ApiResult<Vec<AlarmView>> {
        let alarms = self.store().alarms(active_only, 500).await?;
        let labels = self.labels(alarms.iter().filter_map(|a| a.patient_id).collect()).await?;
        Ok(alarms
            .into_iter()
            .map(|alarm| AlarmView {
                patient_label: alarm.patient_id.and_then(|p| labels.get(&p).cloned()),
                unit: alarm.mdc_code.and_then(metric_by_code).map(|m| m.unit.to_string()),
                alarm,
            })
            .collect())
    }

    /// Acknowledges an alarm.
    pub async fn ack_alarm(&self, id: i64, operator: &str, reason: &str) -> ApiResult<()> {
        let (operator, reason) = (named(operator)?, reasoned(reason)?);
        Ok(self.store().ack_alarm(id, operator, reason).await?)
    }

    /// Silences an alarm's re-notification for `minutes`.
    pub async fn silence_alarm(&self, id: i64, operator: &str, reason: &str, minutes: u32) -> ApiResult<()> {
        let (operator, reason) = (named(operator)?, reasoned(reason)?);
        if !(1..=60).contains(&minutes) {
            return Err(ApiError::new("invalid_input", "silence for 1 to 60 minutes"));
        }
        let until = Utc::now() + chrono::Duration::minutes(i64::from(minutes));
        Ok(self.store().silence_alarm(id, until, operator, reason).await?)
    }

    /// Quarantined readings still to be resolved.
    pub async fn quarantine(&self) -> ApiResult<Vec<QuarantineEntry>> {
        Ok(self.store().quarantine(500).await?)
    }

    /// Re-identifies a quarantined reading against the registry as it is now (after the pairing was
    /// fixed): stored or held like any reading when it now checks out, else left in quarantine.
    pub async fn release_quarantine(&self, id: i64, operator: &str, reason: &str) -> ApiResult<ReleaseOutcome> {
        let (operator, reason) = (named(operator)?, reasoned(reason)?);
        let store = self.store();
        let entry = store
            .quarantine_entry(id)
            .await?
            .ok_or_else(|| ApiError::new("not_found", format!("quarantined reading {id} does not exist")))?;
        let profile = self.handle.profiles().for_topic(&entry.origin).ok_or_else(|| {
            ApiError::new("refused", format!("no device profile serves topic {:?} any more", entry.origin))
        })?;
        let reading = normalise(profile, entry.payload.as_bytes())
            .map_err(|r| ApiError::new("refused", r.detail))?
            .into_iter()
            .find(|r| {
                r.device_id == entry.device_id
                    && r.metric.mdc_code == entry.mdc_code
                    && r.observed_at == entry.observed_at
            })
            .ok_or_else(|| ApiError::new("refused", "the payload no longer yields this reading"))?;
        let registry = store.load_registry().await?;
        let hash = reading.content_hash();
        let (resolution, stored, held) = match identify(&reading, &registry, self.handle.policy(), Utc::now()) {
            Verdict::Accept { patient_id } => {
                (Resolution::Release { reading, hash, patient_id, held_for: None }, "stored", false)
            }
            Verdict::Hold { patient_id, flow } => {
                (Resolution::Release { reading, hash, patient_id, held_for: Some(flow) }, "held", true)
            }
            Verdict::Quarantine { detail, .. } => {
                store.audit(operator, "quarantine.release_refused", &format!("quarantine {id}"), reason).await?;
                return Ok(ReleaseOutcome {
                    outcome: "quarantined",
                    detail: format!("still quarantined: {detail}. Fix the pairing, then release again."),
                });
            }
        };
        let fresh = store.resolve_quarantine(id, &resolution, operator, reason).await?;
        Ok(match (fresh, held) {
            (false, _) => ReleaseOutcome {
                outcome: "duplicate",
                detail: "released; the same reading was already stored, so nothing new was added".into(),
            },
            (true, false) => ReleaseOutcome {
                outcome: stored,
                detail: "released: the reading now identifies its patient and is stored as telemetry".into(),
            },
            (true, true) => ReleaseOutcome {
                outcome: stored,
                detail: "released, and held: the patient has not consented to this use yet".into(),
            },
        })
    }

    /// Discards a quarantined reading (kept for forensics, never charted).
    pub async fn discard_quarantine(&self, id: i64, operator: &str, reason: &str) -> ApiResult<()> {
        let (operator, reason) = (named(operator)?, reasoned(reason)?);
        self.store().resolve_quarantine(id, &Resolution::Discard, operator, reason).await?;
        Ok(())
    }

    /// Registered devices with their pairing.
    pub async fn devices(&self) -> ApiResult<Vec<DeviceView>> {
        let devices = self.store().devices().await?;
        let labels = self.labels(devices.iter().filter_map(|d| d.patient_id).collect()).await?;
        Ok(devices
            .into_iter()
            .map(|device| DeviceView { patient_label: device.patient_id.and_then(|p| labels.get(&p).cloned()), device })
            .collect())
    }

    /// The device profiles loaded.
    pub fn profiles(&self) -> Vec<String> {
        self.handle.profiles().iter().map(|p| p.id.clone()).collect()
    }

    /// Registers (or relabels) a device.
    pub async fn register_device(
        &self,
        device_id: &str,
        profile_id: &str,
        label: &str,
        operator: &str,
    ) -> ApiResult<()> {
        let operator = named(operator)?;
        let device_id = device_id.trim();
        if device_id.is_empty() {
            return Err(ApiError::new("invalid_input", "a device id is required"));
        }
        if !self.profiles().iter().any(|p| p == profile_id) {
            return Err(ApiError::new("unknown_profile", format!("no device profile {profile_id:?} is loaded")));
        }
        let label = Some(label.trim()).filter(|l| !l.is_empty());
        self.store().register_device(device_id, Some(profile_id), label).await?;
        self.store().audit(operator, "device.register", device_id, &format!("profile {profile_id}")).await?;
        Ok(())
    }

    /// Looks a patient up: at the EHR when one is configured for FHIR, else in the local registry
    /// (verified patients only).
    pub async fn lookup_patient(&self, system: &str, value: &str) -> ApiResult<VerifiedPatient> {
        let id = self.identifier(system, value)?;
        if self.config.ehr.kind == EhrKind::Fhir {
            let ehr =
                clinical::fhir_sink(&self.config.ehr).map_err(|e| ApiError::new("invalid_config", e.to_string()))?;
            return match ehr.find_patient(&id.system, &id.value).await {
                Err(e) => Err(ApiError::new("ehr_unreachable", format!("the EHR did not answer: {e}"))),
                Ok(PatientLookup::Unknown) => Err(not_found_at_ehr(&id.system)),
                Ok(PatientLookup::Ambiguous(n)) => Err(ApiError::new(
                    "ambiguous_patient",
                    format!("the EHR knows {n} patients with that identifier in {}; it must identify one", id.system),
                )),
                Ok(PatientLookup::One(found)) => Ok(VerifiedPatient {
                    display: found.name.unwrap_or_else(|| "(the EHR gives no name)".into()),
                    birth_date: found.birth_date,
                    fhir_id: Some(found.id),
                    verified_by: format!("EHR {}", self.config.ehr.base_url.clone().unwrap_or_default()),
                    system: id.system,
                    value: id.value,
                }),
            };
        }
        let patient = self.verified_locally(&id).await?;
        Ok(VerifiedPatient {
            display: patient.display_name.unwrap_or_else(|| patient.value.clone()),
            birth_date: None,
            fhir_id: patient.fhir_id,
            verified_by: "the local registry (verified identity)".into(),
            system: patient.system,
            value: patient.value,
        })
    }

    /// Pairs a device with a patient verified as [`Console::lookup_patient`] does, from `from`
    /// (default now) until `until` (default open).
    pub async fn pair_device(
        &self,
        device_id: &str,
        system: &str,
        value: &str,
        from: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        operator: &str,
    ) -> ApiResult<()> {
        let operator = named(operator)?;
        let id = self.identifier(system, value)?;
        let from = from.unwrap_or_else(Utc::now);
        if until.is_some_and(|u| u <= from) {
            return Err(ApiError::new("invalid_input", "the pairing must end after it starts"));
        }
        if self.config.ehr.kind == EhrKind::Fhir {
            let ehr =
                clinical::fhir_sink(&self.config.ehr).map_err(|e| ApiError::new("invalid_config", e.to_string()))?;
            clinical::pair_verified(self.store().as_ref(), &ehr, device_id, &id, from, operator).await.map_err(
                |e| match e {
                    ProvisionError::Refused(why) => ApiError::new("refused", why),
                    ProvisionError::Unreachable(why) => ApiError::new("ehr_unreachable", why),
                    ProvisionError::Store(e) => e.into(),
                },
            )?;
        } else {
            let patient = self.verified_locally(&id).await?;
            self.store().pair(device_id, patient.id, from, operator).await?;
        }
        if let Some(until) = until {
            self.store().unpair(device_id, until, operator).await?;
        }
        Ok(())
    }

    /// Ends a device's pairing now.
    pub async fn unpair_device(&self, device_id: &str, operator: &str) -> ApiResult<()> {
        self.store().unpair(device_id, Utc::now(), named(operator)?).await?;
        Ok(())
    }

    /// Records a patient's consent decision for one flow.
    pub async fn set_consent(
        &self,
        system: &str,
        value: &str,
        flow: Flow,
        granted: bool,
        operator: &str,
    ) -> ApiResult<()> {
        let operator = named(operator)?;
        let id = self.identifier(system, value)?;
        let key = self.store().find_patient(&id).await?.ok_or_else(|| not_found_locally(&id.system))?;
        Ok(self.store().set_consent(key, flow, granted, operator).await?)
    }

    /// The outbox, newest first (one status when given).
    pub async fn outbox(&self, status: Option<OutboxStatus>) -> ApiResult<Vec<OutboxView>> {
        let entries = self.store().outbox(status, 500).await?;
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

    /// Puts a dead-letter or held event back in the queue (held ones are validated again first).
    pub async fn resend(&self, id: i64, operator: &str) -> ApiResult<()> {
        Ok(clinical::requeue(self.store().as_ref(), id, self.config.ehr.kind, named(operator)?).await?)
    }

    /// The settings an operator sees.
    pub fn settings(&self) -> Settings {
        let c = &self.config;
        Settings {
            ehr: EhrSettings {
                kind: c.ehr.kind,
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
    pub async fn apply_settings(self, settings: &Settings, operator: &str) -> ApiResult<(Console, ApiResult<()>)> {
        let operator = match named(operator) {
            Ok(o) => o.to_string(),
            Err(e) => return Ok((self, Err(e))),
        };
        let mut config = self.config.clone();
        config.ehr.kind = settings.ehr.kind;
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
            return Ok((self, Err(ApiError::new("invalid_config", text))));
        }
        let (options, previous) = (self.options.clone(), self.config.clone());
        let detail = format!("ehr {:?}, broker {:?}", config.ehr.kind, config.broker.mode);
        self.stop().await;
        match Console::launch(options.clone(), config.clone()).await {
            Ok(console) => {
                let saved = write_config(&options.config_path, &config);
                let audited = console.store().audit(&operator, "settings.change", "vigil.toml", &detail).await;
                Ok((console, saved.and(audited.map_err(ApiError::from))))
            }
            Err(e) => {
                let console = Console::launch(options, previous).await.map_err(|again| {
                    ApiError::new(
                        "start_failed",
                        format!("neither the new settings ({e}) nor the previous ({again}) start"),
                    )
                })?;
                Ok((console, Err(e)))
            }
        }
    }

    /// Checks that the EHR or the broker answers, with the saved settings.
    pub async fn test_connection(&self, target: &str) -> ApiResult<ConnectionResult> {
        let result = match target {
            "ehr" => match clinical::sink(&self.config.ehr, self.store().clone()) {
                Err(e) => Err(e.to_string()),
                Ok(sink) => sink.probe().await,
            },
            "broker" => match self.config.broker.mode {
                BrokerMode::Embedded => match self.handle.mqtt_listen_addr() {
                    Some(addr) => Ok(format!("the embedded MQTT endpoint listens on {addr}")),
                    None => Err("the embedded MQTT endpoint is not running (MQTT ingest is disabled)".into()),
                },
                BrokerMode::External => broker_answers(self.config.broker.url.as_deref()).await,
            },
            other => return Err(ApiError::new("invalid_input", format!("cannot test {other:?}: use ehr or broker"))),
        };
        Ok(match result {
            Ok(message) => ConnectionResult { ok: true, message },
            Err(message) => ConnectionResult { ok: false, message },
        })
    }

    /// A patient of the local registry whose identity was verified (pairing needs one).
    async fn verified_locally(&self, id: &PatientIdentifier) -> ApiResult<PatientEntry> {
        let key = self.store().find_patient(id).await?.ok_or_else(|| not_found_locally(&id.system))?;
        let patient = self.store().patient(key).await?.ok_or_else(|| not_found_locally(&id.system))?;
        if !patient.verified {
            return Err(ApiError::new("unverified_patient", "this patient's identity has not been verified"));
        }
        Ok(patient)
    }

    fn identifier(&self, system: &str, value: &str) -> ApiResult<PatientIdentifier> {
        let (system, value) = (system.trim(), value.trim());
        if system.is_empty() || value.is_empty() {
            return Err(ApiError::new("invalid_input", "give the identifier's system and value"));
        }
        Ok(PatientIdentifier {
            organisation: self.config.identity.organisation.clone(),
            system: system.into(),
            value: value.into(),
        })
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
    let text = toml::to_string(config).map_err(|e| ApiError::new("invalid_config", e.to_string()))?;
    std::fs::write(path, text)
        .map_err(|e| ApiError::new("invalid_config", format!("cannot write {}: {e}", path.display())))
}

fn named(operator: &str) -> ApiResult<&str> {
    let operator = operator.trim();
    if operator.is_empty() {
        return Err(ApiError::new("invalid_input", "an operator name is required for every action"));
    }
    Ok(operator)
}

fn reasoned(reason: &str) -> ApiResult<&str> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ApiError::new("invalid_input", "give a reason: it is kept in the audit trail"));
    }
    Ok(reason)
}

fn not_found_at_ehr(system: &str) -> ApiError {
    ApiError::new("patient_not_found", format!("the EHR knows no patient with that identifier in {system}"))
}

fn not_found_locally(system: &str) -> ApiError {
    ApiError::new("patient_not_found", format!("no patient with that identifier in {system} is registered"))
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

#[cfg(test)]
mod tests;
