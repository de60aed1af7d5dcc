//! The command line: every subcommand and its arguments.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use pipeline_core::accounts::Role;
use pipeline_core::api::{Actor, Admin, ApiError, ErrorCode};
use pipeline_core::clock;
use pipeline_core::simulate::DeviceKind;
use pipeline_core::store::OutboxStatus;

use crate::load_config;

#[derive(Parser)]
#[command(name = "vigil", version, about = "Vigil: medical-device-to-EHR integration, headless")]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// Work on device profiles.
    Profile {
        #[command(subcommand)]
        action: ProfileAction,
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
    /// Flag a registered device as sending demo or test data (audited): its readings alarm and chart,
    /// marked DEMO, but never reach a production EHR. `--off` clears the flag.
    DeviceDemo {
        #[command(flatten)]
        site: SiteArgs,
        /// Device id.
        device: String,
        /// Its readings are real again.
        #[arg(long)]
        off: bool,
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
        /// Why the pairing starts in the past: required when `--from` is more than a minute ago;
        /// audited with it.
        #[arg(long)]
        reason: Option<String>,
        /// The store key of the patient the device is paired with now, as the refusal names them:
        /// confirms that this pairing replaces theirs from `--from`.
        #[arg(long, value_name = "PATIENT_KEY")]
        replacing: Option<i64>,
        /// Then release every reading of the device quarantined inside the new pairing, each
        /// re-identified, with this reason (audited): one action for what an unpaired device sent.
        #[arg(long, value_name = "WHY")]
        release_quarantine: Option<String>,
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
        /// The flow: store or ehr-write (alarms never depend on consent).
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
        #[command(flatten)]
        operator: OperatorArgs,
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
        /// The endpoint's bearer token file (off loopback it is needed; with --config it is found).
        #[arg(long)]
        token_file: Option<PathBuf>,
        /// Print the JSON as the endpoint gives it.
        #[arg(long)]
        json: bool,
    },
    /// List alarms as JSON (newest first).
    Alarms {
        #[command(flatten)]
        site: SiteArgs,
        #[command(flatten)]
        operator: OperatorArgs,
        /// Only alarms whose condition has not cleared.
        #[arg(long)]
        active: bool,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Acknowledge an alarm (audited, with your name and a reason).
    Ack(ReasonedAction),
    /// Silence an active alarm's escalation for 1 to 60 minutes (audited, with your account and a
    /// reason); at most 4 silences or 120 minutes per alarm. The alarm stays listed and latched.
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
    /// Store a patient's readings held for want of `store` consent, once it is recorded (audited).
    ReleaseHeld {
        #[command(flatten)]
        site: SiteArgs,
        #[command(flatten)]
        patient: PatientArgs,
        /// Why (kept in the audit trail), e.g. "consent signed 2026-12-02".
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Print docs/degradation-modes.md, generated from the registry in code.
    DegradationModes,
    /// Check the keyed audit chain against its checkpoint (exit 4 if broken), list it, or export it.
    Audit {
        #[command(flatten)]
        site: SiteArgs,
        #[command(flatten)]
        operator: OperatorArgs,
        /// `verify`, `list` or `export`.
        what: AuditWhat,
        /// At most this many entries (list).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// verify: check this backup (made by `vigil backup`) against the checkpoint stored with it.
        #[arg(long)]
        backup: Option<PathBuf>,
        /// export: entries recorded from (RFC 3339; default: the first).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// export: entries recorded until (RFC 3339; default: now).
        #[arg(long)]
        to: Option<DateTime<Utc>>,
    },
    /// Operator accounts: the first administrator, accounts and roles, tokens for scripts,
    /// break-glass.
    Accounts {
        #[command(flatten)]
        site: SiteArgs,
        #[command(subcommand)]
        action: AccountAction,
    },
    /// Print the permissions table (who may do what) as Markdown.
    Permissions,
    /// Device and gateway credentials for the embedded MQTT endpoint: add, rotate, revoke, list.
    /// A secret is printed once (or written to a 0600 file with --secret-file), never shown again.
    Credentials {
        #[command(flatten)]
        site: SiteArgs,
        #[command(subcommand)]
        action: CredentialAction,
    },
    /// Write a consistent copy of the whole store to a new file, while Vigil runs (audited).
    Backup {
        #[command(flatten)]
        site: SiteArgs,
        /// The new file.
        file: PathBuf,
        #[command(flatten)]
        operator: OperatorArgs,
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
        #[command(flatten)]
        operator: OperatorArgs,
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

/// What `vigil profile` does.
#[derive(clap::Subcommand)]
pub(crate) enum ProfileAction {
    /// Print the readings a payload yields under a profile, the fields the profile leaves unread,
    /// and every problem, without a running pipeline. Exits 1 when there is a problem.
    Try {
        /// A profile file, the id of a profile in the config's profile directory, or `pcd-01` for
        /// an HL7 v2 ORU^R01 message.
        profile: String,
        /// The payload file (JSON, or an HL7 v2 message for `pcd-01`).
        payload: PathBuf,
        /// The site's config: its profile directory, and `[sources.mllp]` for `pcd-01`.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Print JSON instead of words.
        #[arg(long)]
        json: bool,
    },
}

/// What `vigil credentials` does.
#[derive(clap::Subcommand)]
pub(crate) enum CredentialAction {
    /// Make a credential that may publish for the given device ids or patterns.
    Add {
        /// The CONNECT user name.
        username: String,
        /// A device id, or a prefix ending in `*` (`OX-*`; `*` for a gateway); repeat for more.
        #[arg(long = "allow", required = true)]
        allow: Vec<String>,
        /// Write the secret to this file (mode 0600) instead of printing it.
        #[arg(long)]
        secret_file: Option<PathBuf>,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Give a credential a new secret; the old one stops working and its sessions are closed.
    Rotate {
        /// The user name.
        username: String,
        /// Write the secret to this file (mode 0600) instead of printing it.
        #[arg(long)]
        secret_file: Option<PathBuf>,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Revoke a credential; its live sessions are closed.
    Revoke {
        /// The user name.
        username: String,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// List the credentials (never their secrets).
    List {
        #[command(flatten)]
        operator: OperatorArgs,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum AuditWhat {
    Verify,
    List,
    /// A FHIR R4 Bundle of AuditEvents (admin only; audited).
    Export,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum ShowWhat {
    Counts,
    Readings,
    Quarantine,
    Rejected,
    Held,
    Sandbox,
    Purged,
}

/// The site a command works on.
#[derive(clap::Args)]
pub(crate) struct SiteArgs {
    /// The config file (before or after the subcommand's own action).
    #[arg(long, short, global = true)]
    pub(crate) config: Option<PathBuf>,
}

impl SiteArgs {
    /// The operator facade on the site's store.
    pub(crate) async fn open(&self) -> anyhow::Result<Admin> {
        let config = self
            .config
            .as_ref()
            .ok_or_else(|| ApiError::new(ErrorCode::InvalidInput, "give the site's config file: --config PATH"))?;
        Ok(Admin::open(load_config(config)?, clock::system()).await?)
    }

    /// The operator facade on the site's store, and the account the command acts as.
    pub(crate) async fn open_as(&self, operator: &OperatorArgs) -> anyhow::Result<(Admin, Actor)> {
        let admin = self.open().await?;
        let actor = operator.actor(&admin).await?;
        Ok((admin, actor))
    }
}

/// An audited action on one alarm or quarantined reading, with a reason.
#[derive(clap::Args)]
pub(crate) struct ReasonedAction {
    #[command(flatten)]
    pub(crate) site: SiteArgs,
    /// The alarm or quarantined reading's id.
    pub(crate) id: i64,
    /// Why (kept in the audit trail), e.g. "probe reseated".
    #[arg(long)]
    pub(crate) reason: String,
    #[command(flatten)]
    pub(crate) operator: OperatorArgs,
}

/// What `vigil accounts` does.
#[derive(Subcommand)]
pub(crate) enum AccountAction {
    /// Create the first administrator of a new site (password from VIGIL_PASSWORD, or asked).
    Init {
        /// The administrator's account name.
        #[arg(long)]
        name: String,
    },
    /// Add an account (its password from VIGIL_NEW_PASSWORD, or asked).
    Add {
        /// The account name.
        name: String,
        /// A role: viewer, clinician, biomed, admin (repeat for several).
        #[arg(long = "role", required = true)]
        roles: Vec<Role>,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Replace an account's roles.
    Roles {
        /// The account name.
        name: String,
        /// A role (repeat for several).
        #[arg(long = "role", required = true)]
        roles: Vec<Role>,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Set an account's password (VIGIL_NEW_PASSWORD, or asked).
    Password {
        /// The account name.
        name: String,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// List the accounts.
    List {
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Print a token for scripts (use it as VIGIL_TOKEN), valid for --ttl hours.
    Token {
        /// Hours it lives.
        #[arg(long, default_value_t = 8)]
        ttl: i64,
        #[command(flatten)]
        operator: OperatorArgs,
    },
    /// Open a one-hour emergency admin session (prints its token). Only the OS user that owns the
    /// site's data directory may; it raises a technical alarm and is audited.
    BreakGlass {
        /// Why (kept in the audit trail and the alarm).
        #[arg(long)]
        reason: String,
    },
}

/// Who does an action: the account of VIGIL_TOKEN, or --user with its password (VIGIL_PASSWORD,
/// or asked on the terminal).
#[derive(clap::Args)]
pub(crate) struct OperatorArgs {
    /// The account to sign in as (its password from VIGIL_PASSWORD, or asked); not needed with
    /// VIGIL_TOKEN.
    #[arg(long, env = "VIGIL_USER")]
    pub(crate) user: Option<String>,
}

impl OperatorArgs {
    /// Signs in: the token in VIGIL_TOKEN, else the account of --user with its password.
    pub(crate) async fn actor(&self, admin: &Admin) -> anyhow::Result<Actor> {
        if let Some(token) = std::env::var("VIGIL_TOKEN").ok().filter(|t| !t.trim().is_empty()) {
            return Ok(admin.actor_for_token(&token).await?);
        }
        let Some(user) = &self.user else {
            return Err(ApiError::new(
                ErrorCode::Unauthenticated,
                "sign in: set VIGIL_TOKEN (from `vigil accounts token`) or give --user NAME",
            )
            .into());
        };
        let password = password_from("VIGIL_PASSWORD", &format!("password for {user}: "))?;
        Ok(admin.sign_in(user, &password, "cli").await?)
    }
}

/// A password from the environment variable, else asked on the terminal without echo.
pub(crate) fn password_from(var: &str, prompt: &str) -> anyhow::Result<String> {
    if let Ok(p) = std::env::var(var) {
        return Ok(p);
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(ApiError::new(ErrorCode::Unauthenticated, format!("no terminal to ask on: set {var}")).into());
    }
    Ok(rpassword::prompt_password(prompt)?)
}

/// An outbox status, as `--status` takes it.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum OutboxStatusArg {
    Held,
    Pending,
    Delivered,
    Dead,
}

impl OutboxStatusArg {
    pub(crate) fn status(self) -> OutboxStatus {
        match self {
            OutboxStatusArg::Held => OutboxStatus::Held,
            OutboxStatusArg::Pending => OutboxStatus::Pending,
            OutboxStatusArg::Delivered => OutboxStatus::Delivered,
            OutboxStatusArg::Dead => OutboxStatus::Dead,
        }
    }
}

#[derive(clap::Args)]
pub(crate) struct PatientArgs {
    /// Identifier system of the patient (URI or OID).
    #[arg(long)]
    pub(crate) patient_system: String,
    /// Identifier value of the patient (e.g. the MRN).
    #[arg(long)]
    pub(crate) patient: String,
}

#[derive(clap::Args)]
pub(crate) struct SimulateArgs {
    /// Devices per profile.
    #[arg(long, default_value_t = 1)]
    pub(crate) devices: usize,
    /// Payloads per second per device.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) rate: f64,
    /// Profiles to speak (repeat; default all three).
    #[arg(long = "profile", value_enum)]
    pub(crate) profiles: Vec<DeviceKind>,
    /// Broker URL.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub(crate) broker: String,
    /// Fraction of payloads sent twice.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) duplicates: f64,
    /// Fraction of payloads replaced by malformed ones.
    #[arg(long, default_value_t = 0.0)]
    pub(crate) malformed: f64,
    /// Extra devices nobody paired.
    #[arg(long, default_value_t = 0)]
    pub(crate) unpaired: usize,
    /// Chance per second of a desaturation or tachycardia episode per device.
    #[arg(long, default_value_t = 1.0 / 600.0)]
    pub(crate) episodes: f64,
    /// Stop after this many payloads.
    #[arg(long)]
    pub(crate) count: Option<u64>,
    /// Random seed.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Stop one device's payloads (as if switched off) after `--after`; the others go on.
    #[arg(long, value_name = "DEVICE", requires = "after")]
    pub(crate) drop: Option<String>,
    /// When `--drop` stops its device, e.g. 10s or 2m.
    #[arg(long, value_parser = seconds_or_minutes, requires = "drop")]
    pub(crate) after: Option<std::time::Duration>,
    /// The CONNECT user name (a credential from `vigil credentials add`).
    #[arg(long, requires = "password_file")]
    pub(crate) username: Option<String>,
    /// A file holding the credential's secret.
    #[arg(long, requires = "username")]
    pub(crate) password_file: Option<PathBuf>,
}

#[derive(clap::Args)]
pub(crate) struct BenchArgs {
    /// Payloads in all.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) payloads: usize,
    /// Concurrent publishing connections.
    #[arg(long, default_value_t = 4)]
    pub(crate) publishers: usize,
    /// Payload shape.
    #[arg(long, value_enum, default_value = "oximeter")]
    pub(crate) profile: DeviceKind,
    /// Run Mosquitto and subscribe to it, instead of the embedded endpoint.
    #[arg(long)]
    pub(crate) mosquitto: bool,
    /// The device profiles.
    #[arg(long, default_value = "fixtures/profiles")]
    pub(crate) profiles: PathBuf,
    /// Measure HL7 v2 over MLLP instead: `--payloads` messages over `--publishers` connections,
    /// each message waiting for its ACK.
    #[arg(long)]
    pub(crate) mllp: bool,
    /// Measure alarm latency (publish to webhook) instead of ingest throughput.
    #[arg(long)]
    pub(crate) alarm_latency: bool,
    /// Alarm latency: readings per second to sustain.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) rate: u32,
    /// Alarm latency: seconds to run.
    #[arg(long, default_value_t = 10)]
    pub(crate) seconds: u64,
    /// Alarm latency: run with the EHR down (a FHIR endpoint that refuses connections).
    #[arg(long)]
    pub(crate) ehr_down: bool,
    /// Alarm latency: run with the store stalled (its write lock held by another connection).
    #[arg(long)]
    pub(crate) store_stalled: bool,
}

#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// Where the demo keeps its database.
    #[arg(long, default_value = "demo-data")]
    pub(crate) data_dir: PathBuf,
    /// The device profiles.
    #[arg(long, default_value = "fixtures/profiles")]
    pub(crate) profiles: PathBuf,
    /// The registry to load.
    #[arg(long, default_value = "fixtures/demo/registry.toml")]
    pub(crate) registry: PathBuf,
    /// The alarm and event rules.
    #[arg(long, default_value = "fixtures/rules/adult-vitals.toml")]
    pub(crate) rules: PathBuf,
    /// Where the embedded endpoint listens.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub(crate) listen: String,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub(crate) seconds: Option<u64>,
}

/// A duration as "10s", "2m" or "1h" (a bare number is seconds).
fn seconds_or_minutes(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) =
        text.trim().split_at(text.trim().find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.trim().len()));
    let n: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration: write e.g. 10s, 2m or 1h"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        other => return Err(format!("unknown unit {other:?} in {text:?}: use s, m or h")),
    };
    Ok(std::time::Duration::from_secs(secs))
}
