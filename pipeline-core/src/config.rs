//! `vigil.toml`: load and validate.
//!
//! Validation reports every problem at once (key, value, what is wrong, how to fix it), so an operator
//! fixes a file in one pass. Relative paths are resolved against the directory of the config file, so
//! the same file works whatever the working directory.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::model::alarm::{AlarmKind, Audience, Priority};
use crate::normalise::PayloadLimits;
use crate::normalise::pcd01::{DeviceFrom, Pcd01Terms};
use crate::secrets::SecretRef;

/// The whole configuration of one Vigil instance.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// What kind of site this is.
    pub site: SiteConfig,
    /// Where the inbox, readings and the registry are kept.
    pub store: StoreConfig,
    /// The MQTT broker devices publish to.
    pub broker: BrokerConfig,
    /// The ingest sources and their settings.
    pub sources: SourcesConfig,
    /// Where device profiles are read from.
    pub profiles: ProfilesConfig,
    /// How long raw telemetry is kept.
    pub retention: RetentionConfig,
    /// How readings are matched to patients.
    pub identity: IdentityConfig,
    /// Batching and queue bounds of the ingest writer.
    pub ingest: IngestConfig,
    /// Where clinical events go.
    pub ehr: EhrConfig,
    /// The loopback status and metrics endpoint.
    pub status: StatusConfig,
    /// What the board watches besides Vigil's own components.
    pub health: HealthConfig,
    /// The alarm and event rules.
    pub rules: RulesConfig,
    /// Where alarms are sent.
    pub alerts: AlertsConfig,
    /// A site's own plausible ranges, by MDC reference id, replacing the code table's.
    pub plausibility: BTreeMap<String, PlausibleRange>,
    /// `[audit]`
    pub audit: AuditConfig,
    /// `[console]`
    pub console: ConsoleConfig,
}

/// `[plausibility] MDC_TEMP_BODY = { low = 15.0, high = 45.0 }`: outside it, a value is refused as a
/// unit or scaling mistake. A site treating severe accidental hypothermia lowers the temperature
/// floor below the default 25 Cel.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlausibleRange {
    /// The lowest plausible value, inclusive, in the metric's canonical unit.
    pub low: f64,
    /// The highest plausible value, inclusive.
    pub high: f64,
}

/// `[health]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Watch whether the workstation's clock is NTP-synchronised (a warning mode when it is not, or
    /// when the host cannot tell). The test harness turns it off.
    pub clock_sync_check: bool,
    /// Test only: the clock state to report instead of asking the host.
    pub test_clock_sync: Option<ClockSync>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig { clock_sync_check: true, test_clock_sync: None }
    }
}

/// Whether the workstation's clock is synchronised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockSync {
    /// NTP-synchronised.
    Synchronised,
    /// Not synchronised.
    Unsynchronised,
    /// The host cannot say.
    Unknown,
}

/// `[site]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteConfig {
    /// A demo site (written by `vigil demo` and the console's demo): every reading is stamped demo at
    /// ingest, whatever its profile says, so none of it can pass as a patient's at a production EHR.
    pub demo: bool,
}

/// `[alerts]`: the alert circuit's sinks. Without any, alarms are recorded but nobody is paged.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Nurse call / paging webhook, for the clinical audience: alarms are POSTed as JSON.
    pub webhook_url: Option<String>,
    /// Biomed / IT webhook, for the technical audience (an EHR fault, an unknown device). Without
    /// one, technical alarms go to the clinical sinks rather than to nobody.
    pub technical_webhook_url: Option<String>,
    /// A broker for the MQTT alert topic (its own connection), `mqtt://host:port`.
    pub mqtt_url: Option<String>,
    /// The alert topic; the priority is appended (`vigil/alarms/high`).
    pub mqtt_topic: String,
    /// Webhook retries per alarm.
    pub retries: u32,
    /// Webhook timeout in seconds.
    pub timeout_secs: u64,
    /// `[alerts.routes]`: who each kind of alarm pages.
    pub routes: AlarmRoutes,
    /// Silences of one alarm's escalation at most; after that it escalates, whoever silences it.
    pub max_silences: u32,
    /// Minutes of silence of one alarm's escalation at most, in all.
    pub max_silence_minutes_total: u32,
}

/// `[alerts.routes]`: who each kind and priority of alarm pages, `clinical` (the ward's sinks),
/// `technical` (biomed/IT) or `both`. A patient's alarms must reach the ward: check-config refuses
/// routes that would send them to biomed only.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AlarmRoutes {
    /// Physiological alarms (a threshold, a trend).
    pub physiological: Audience,
    /// Technical alarms that leave one patient unmonitored (no valid signal, device offline,
    /// device clock off).
    pub patient_technical: Audience,
    /// Technical alarms about the infrastructure, by priority: low (an EHR fault, an unknown device)...
    pub technical_low: Audience,
    /// ...medium (device data not arriving, a paging sink failing)...
    pub technical_medium: Audience,
    /// ...and high (storage failing, the rules or the alert circuit stopped): many patients at once.
    pub technical_high: Audience,
}

impl Default for AlarmRoutes {
    fn default() -> Self {
        AlarmRoutes {
            physiological: Audience::Clinical,
            patient_technical: Audience::Clinical,
            technical_low: Audience::Technical,
            technical_medium: Audience::Both,
            technical_high: Audience::Both,
        }
    }
}

impl AlarmRoutes {
    /// Who an alarm of this kind, about a patient or not, at this priority, pages.
    pub fn audience(&self, kind: AlarmKind, about_a_patient: bool, priority: Priority) -> Audience {
        match (kind, about_a_patient, priority) {
            (AlarmKind::Physiological, _, _) => self.physiological,
            (AlarmKind::Technical, true, _) => self.patient_technical,
            (AlarmKind::Technical, false, Priority::Low) => self.technical_low,
            (AlarmKind::Technical, false, Priority::Medium) => self.technical_medium,
            (AlarmKind::Technical, false, Priority::High) => self.technical_high,
        }
    }
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            webhook_url: None,
            technical_webhook_url: None,
            mqtt_url: None,
            mqtt_topic: "vigil/alarms".into(),
            retries: 5,
            timeout_secs: 5,
            routes: AlarmRoutes::default(),
            max_silences: 4,
            max_silence_minutes_total: 120,
        }
    }
}

/// `[audit]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// The site's syslog, `host:port` (UDP): every audit checkpoint is also sent there, the one
    /// copy someone holding the service account's files cannot rewrite.
    pub syslog: Option<String>,
}

/// `[console]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// The console locks after this many seconds without input (0: never). Locked, it still shows
    /// the alarm count and the degradation banner; unlocking is needed only to act.
    pub lock_after_secs: u32,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig { lock_after_secs: 300 }
    }
}

/// `[rules]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// The rule file (relative to this file); without one, no alarms or events are raised.
    pub file: Option<PathBuf>,
}

/// `[status]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusConfig {
    /// Where `GET /status` (JSON board) and `GET /metrics` (Prometheus) answer. Keep it on loopback.
    pub listen: String,
    /// Allow failure drills (`POST /drill/alerts/stop`, `POST /drill/supervisor/stop`) that stop the
    /// alert circuit or the supervisor as a crash would, to prove the other one notices. Off in
    /// production; a drill needs a restart to undo.
    pub drills: bool,
    /// The bearer token's file (0600, made at the first start when missing); default
    /// `status.token` beside the database. Drills need the token, and so does every request when
    /// `listen` is off loopback.
    pub token_file: Option<PathBuf>,
    /// PEM certificate chain: with `tls_key_file`, the endpoint serves HTTPS only. Required when
    /// `listen` is off loopback.
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            listen: "127.0.0.1:9464".into(),
            drills: false,
            token_file: None,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

impl StatusConfig {
    /// Whether `listen` is a loopback address.
    pub fn on_loopback(&self) -> bool {
        self.listen.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback())
            || self.listen.starts_with("localhost:")
    }
}

/// `[store]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Database URL: `sqlite://PATH` (relative to this file). PostgreSQL is planned.
    pub url: String,
    /// Test only: the database may not grow beyond this many pages, so SQLite answers "disk full";
    /// `POST /drill/store/space` (with `[status] drills`) lifts it.
    pub test_max_pages: Option<u32>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { url: "sqlite://vigil.db".into(), test_max_pages: None }
    }
}

/// Whether Vigil runs its own MQTT ingest endpoint or subscribes to an external broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum BrokerMode {
    /// Devices connect to Vigil's own endpoint, which acknowledges after the durable write.
    #[default]
    Embedded,
    /// Vigil subscribes to an external MQTT 3.1.1/5 broker (Mosquitto, EMQX...).
    External,
}

/// `[broker]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    /// `embedded` (the default) or `external`.
    pub mode: BrokerMode,
    /// Embedded only: the address the endpoint listens on. Loopback unless you mean otherwise.
    pub listen: String,
    /// External only: `mqtt://host:port` or `mqtts://host:port`.
    pub url: Option<String>,
    /// External only: user name.
    pub username: Option<String>,
    /// External only: where the password comes from, `env:NAME` or `file:PATH` (0600), never the
    /// password itself.
    pub password: SecretRef,
    /// External TLS: a PEM file of CA certificates to trust (default: the system roots).
    pub ca_file: Option<PathBuf>,
    /// External TLS: PEM client certificate, for brokers that require mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    /// External TLS: PEM private key of the client certificate.
    pub client_key_file: Option<PathBuf>,
    /// Embedded TLS: the endpoint's PEM certificate chain; with `tls_key_file`, devices connect
    /// over TLS only.
    pub tls_cert_file: Option<PathBuf>,
    /// Embedded TLS: the PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// Embedded TLS: the PEM CA that devices' client certificates chain to. A verified certificate's
    /// common name stands for the credential of that name.
    pub tls_client_ca_file: Option<PathBuf>,
    /// Embedded TLS: refuse devices without a client certificate.
    pub require_client_cert: bool,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            mode: BrokerMode::Embedded,
            listen: "127.0.0.1:1883".into(),
            url: None,
            username: None,
            password: SecretRef::Env("VIGIL_MQTT_PASSWORD".into()),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            require_client_cert: false,
        }
    }
}

/// `[sources]`
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourcesConfig {
    /// `[sources.mqtt]`
    pub mqtt: MqttSourceConfig,
    /// `[sources.mllp]`: off unless the section is there.
    pub mllp: Option<MllpSourceConfig>,
}

/// `[sources.mllp]`: device gateways sending HL7 v2 ORU^R01 (IHE PCD-01) over MLLP.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MllpSourceConfig {
    /// The address the listener binds.
    pub listen: String,
    /// Peers that may connect: addresses or CIDRs. Required: an empty list refuses to start.
    pub allow: Vec<String>,
    /// The IANA time zone (`Europe/Berlin`) times without a UTC offset are read in; unset, such
    /// times are refused (AE), never guessed.
    pub timezone: Option<String>,
    /// `obx18` (default): the device is an observation's OBX-18 or its MDS row's. `msh3`: MSH-3
    /// names it when no OBX-18 does, for senders that are each one device.
    pub device_from: DeviceFrom,
    /// Largest message read, in bytes; a larger one is answered AE and kept truncated (its first
    /// 64 KiB, size and hash).
    pub max_message_bytes: usize,
    /// Connections open at once; more are closed at accept.
    pub max_connections: usize,
    /// A connection with nothing to read for this long is closed, in seconds.
    pub idle_timeout_secs: u64,
    /// How long a message read may wait for room in the pipeline before it is answered AR 207
    /// ("busy, resend"), in milliseconds.
    pub ack_timeout_ms: u64,
    /// Longest device id, in bytes.
    pub max_device_id_bytes: usize,
    /// Most readings one message may carry.
    pub max_readings_per_message: usize,
    /// TLS: the listener's PEM certificate chain; with `tls_key_file`, gateways connect over TLS.
    pub tls_cert_file: Option<PathBuf>,
    /// TLS: the PEM private key of `tls_cert_file`.
    pub tls_key_file: Option<PathBuf>,
    /// TLS: the PEM CA gateways' client certificates chain to.
    pub tls_client_ca_file: Option<PathBuf>,
    /// TLS: refuse gateways without a client certificate.
    pub require_client_cert: bool,
}

impl Default for MllpSourceConfig {
    fn default() -> Self {
        MllpSourceConfig {
            listen: "127.0.0.1:2575".into(),
            allow: Vec::new(),
            timezone: None,
            device_from: DeviceFrom::Obx18,
            max_message_bytes: 1024 * 1024,
            max_connections: 64,
            idle_timeout_secs: 300,
            ack_timeout_ms: 5000,
            max_device_id_bytes: 64,
            max_readings_per_message: 10_000,
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            require_client_cert: false,
        }
    }
}

impl MllpSourceConfig {
    /// The peers `allow` names; every entry that is neither an address nor a CIDR is named.
    pub fn allowed(&self) -> Result<Vec<ipnet::IpNet>, Vec<String>> {
        let mut nets = Vec::new();
        let mut bad = Vec::new();
        for entry in &self.allow {
            let parsed =
                entry.parse::<ipnet::IpNet>().or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from));
            match parsed {
                Ok(net) => nets.push(net),
                Err(_) => bad.push(entry.clone()),
            }
        }
        if bad.is_empty() { Ok(nets) } else { Err(bad) }
    }

    /// The time zone local times are read in.
    pub fn zone(&self) -> Result<Option<chrono_tz::Tz>, String> {
        match &self.timezone {
            None => Ok(None),
            Some(name) => name.parse::<chrono_tz::Tz>().map(Some).map_err(|_| name.clone()),
        }
    }

    /// How messages are read, once the configuration is valid.
    pub fn terms(&self) -> Pcd01Terms {
        Pcd01Terms {
            timezone: self.zone().ok().flatten(),
            device_from: self.device_from,
            limits: PayloadLimits {
                max_device_id_bytes: self.max_device_id_bytes,
                max_batch_elements: self.max_readings_per_message,
                max_readings: self.max_readings_per_message,
                section: "[sources.mllp]",
            },
        }
    }
}

/// `[sources.mqtt]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttSourceConfig {
    /// Whether MQTT ingest runs at all.
    pub enabled: bool,
    /// External broker: topic filters to subscribe to (QoS 1).
    pub topics: Vec<String>,
    /// External broker: the persistent-session client id; keep it stable across restarts.
    pub client_id: String,
    /// Keep-alive interval in seconds.
    pub keep_alive_secs: u64,
    /// Largest payload processed, in bytes. A larger one (up to `hard_max_packet_bytes`) is
    /// acknowledged and kept in `rejected` as `too_large`: its first 64 KiB, size and hash.
    pub max_packet_bytes: usize,
    /// Largest MQTT packet read at all, in bytes. Set an external broker's `message_size_limit` (3.1.1)
    /// at or below it, or a larger publish is a poison message the broker redelivers forever.
    pub hard_max_packet_bytes: usize,
    /// Embedded endpoint: PUBLISHes one connection may have unacknowledged at once. While the store
    /// cannot write, a device goes on this far (its readings still reach the rules), then is pushed
    /// back. With an external broker the window is the broker's `max_inflight_messages`.
    pub unacked_window: usize,
    /// Longest device id a payload may name, in bytes; a longer one is rejected (`over_limit`).
    pub max_device_id_bytes: usize,
    /// Most elements in one payload's batch; more is rejected (`over_limit`).
    pub max_batch_elements: usize,
    /// Most readings one payload may carry; more is rejected (`over_limit`).
    pub max_readings_per_payload: usize,
    /// Embedded endpoint: let clients in without credentials. Off by default, loopback included;
    /// on, the board shows a warning mode.
    pub allow_anonymous: bool,
    /// Embedded endpoint: connections open at once, in all; more are closed at accept.
    pub max_connections: usize,
    /// Embedded endpoint: connections open at once from one address.
    pub max_connections_per_address: usize,
    /// Embedded endpoint: connections open at once that have not passed CONNECT (within the caps
    /// above); past it the oldest of them is closed, so silent sockets cannot keep devices out.
    pub max_unauthenticated_connections: usize,
    /// Embedded endpoint: the longest keep-alive a CONNECT may ask for, in seconds (0 is refused too).
    pub max_keepalive_secs: u16,
    /// Embedded endpoint: seconds a new connection has for its TLS handshake and CONNECT.
    pub connect_timeout_secs: u64,
    /// Embedded endpoint: refused CONNECTs from one address in a minute before it is refused
    /// outright for the rest of that minute, and a technical alarm is raised.
    pub failed_connects_per_minute: u32,
}

impl MqttSourceConfig {
    /// The largest packet read at all: never below the payload limit.
    pub fn read_limit(&self) -> usize {
        self.hard_max_packet_bytes.max(self.max_packet_bytes)
    }

    /// What one payload may carry.
    pub fn payload_limits(&self) -> PayloadLimits {
        PayloadLimits {
            max_device_id_bytes: self.max_device_id_bytes,
            max_batch_elements: self.max_batch_elements,
            max_readings: self.max_readings_per_payload,
            section: "[sources.mqtt]",
        }
    }
}

impl Default for MqttSourceConfig {
    fn default() -> Self {
        MqttSourceConfig {
            enabled: true,
            topics: vec!["vigil/devices/#".into()],
            client_id: "vigil-ingest".into(),
            keep_alive_secs: 30,
            max_packet_bytes: 64 * 1024,
            hard_max_packet_bytes: 2 * 1024 * 1024,
            unacked_window: 1024,
            max_device_id_bytes: 64,
            max_batch_elements: 2000,
            max_readings_per_payload: 10_000,
            allow_anonymous: false,
            max_connections: 256,
            max_connections_per_address: 32,
            max_unauthenticated_connections: 64,
            max_keepalive_secs: 300,
            connect_timeout_secs: 10,
            failed_connects_per_minute: 10,
        }
    }
}

/// `[profiles]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfilesConfig {
    /// Directory of device profile files (`*.toml`), relative to this file.
    pub dir: PathBuf,
}

impl Default for ProfilesConfig {
    fn default() -> Self {
        ProfilesConfig { dir: "profiles".into() }
    }
}

/// `[retention]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Raw payloads and readings older than this many days are purged.
    pub raw_days: u32,
    /// How often the purge job runs, in seconds.
    pub purge_every_secs: u64,
    /// Rejected payloads older than this many days are purged (summarised first).
    pub rejected_days: u32,
    /// Quarantined readings older than this many days are purged (summarised first). Quarantine of
    /// registered devices goes by age only.
    pub quarantine_days: u32,
    /// Rejected payloads kept at most: past it, the oldest that no known device sent
    /// (`not_authorised`, `no_profile`) are summarised and purged.
    pub max_rejected: u64,
    /// `unknown_device` quarantine kept at most: past it, the oldest is summarised and purged.
    pub max_unknown_quarantine: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            raw_days: 30,
            purge_every_secs: 3600,
            rejected_days: 90,
            quarantine_days: 90,
            max_rejected: 100_000,
            max_unknown_quarantine: 100_000,
        }
    }
}

/// `[identity]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// The organisation whose patient identifiers pairings use.
    pub organisation: String,
    /// Readings observed further in the future than this (seconds) go to quarantine.
    pub max_future_skew_secs: u64,
    /// Names that sources use for identifier systems (a profile's `system`, an HL7 CX-4, the
    /// system of a `system|value` token), each mapped to one absolute URI:
    /// `NORTHCLINIC = "urn:oid:1.2.3"`.
    pub systems: BTreeMap<String, String>,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig { organisation: "default".into(), max_future_skew_secs: 300, systems: BTreeMap::new() }
    }
}

impl IdentityConfig {
    /// The one system a source's name stands for: an alias's URI, or an absolute URI itself;
    /// `None` for a name that is neither (an unknown namespace).
    pub fn resolve_system(&self, name: &str) -> Option<String> {
        let name = name.trim();
        match self.systems.get(name) {
            Some(uri) => Some(uri.clone()),
            None => is_absolute_uri(name).then(|| name.to_string()),
        }
    }
}

/// `scheme:rest`, RFC 3986: a letter, then letters, digits, `+`, `-` or `.`, then `:` and more.
fn is_absolute_uri(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else { return false };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !s.contains(char::is_whitespace)
}

/// `[ingest]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Payloads waiting for the writer at most; beyond it sources stop acknowledging.
    pub queue_capacity: usize,
    /// Payloads written in one transaction at most.
    pub batch_max: usize,
    /// How long the writer waits to fill a batch, in milliseconds.
    pub batch_linger_ms: u64,
    /// Payloads taken in and evaluated by the rules but not yet stored, at most. While the store
    /// cannot write, each connection may go on up to its own window, and all of them together up to
    /// this; then the sources are pushed back. It bounds the memory a store outage can use.
    pub unstored_max: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig { queue_capacity: 8192, batch_max: 2000, batch_linger_ms: 2, unstored_max: 65_536 }
    }
}

/// Which EHR adapter delivers clinical events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum EhrKind {
    /// Keep what would have been sent, locally (the default when no EHR is configured).
    #[default]
    Sandbox,
    /// A FHIR R4 server over REST.
    Fhir,
    /// HL7 v2.6 ORU^R01 (IHE PCD-01) over MLLP.
    Hl7v2,
}

/// Whether the configured EHR holds real patients' records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum EhrEnvironment {
    /// Real records: demo and test data never go there (HL7 MSH-11 `P`).
    #[default]
    Production,
    /// A test EHR: demo and test data may go there, every resource labelled `HTEST` and every
    /// message MSH-11 `T`.
    Test,
}

impl EhrEnvironment {
    /// HL7 v2 MSH-11, the processing id (table 0103).
    pub fn processing_id(self) -> &'static str {
        match self {
            EhrEnvironment::Production => "P",
            EhrEnvironment::Test => "T",
        }
    }
}

/// Where events go, as the checks before and at the EHR hop need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EhrTarget {
    /// The adapter.
    pub kind: EhrKind,
    /// Production or test.
    pub environment: EhrEnvironment,
}

impl EhrTarget {
    /// Whether demo and test data may go there: the local sandbox, or an EHR declared a test one.
    pub fn takes_test_data(self) -> bool {
        self.kind == EhrKind::Sandbox || self.environment == EhrEnvironment::Test
    }
}

/// How the FHIR adapter authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum EhrAuth {
    /// None.
    #[default]
    None,
    /// A bearer token from `bearer_token` (`env:NAME` or `file:PATH`).
    Bearer,
    /// SMART Backend Services (client credentials with a signed JWT).
    Smart,
}

/// `[ehr]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EhrConfig {
    /// `sandbox` (default), `fhir` or `hl7v2`.
    pub kind: EhrKind,
    /// `production` (default) or `test`.
    pub environment: EhrEnvironment,
    /// FHIR: the server's base URL, e.g. `https://ehr.example/fhir/R4`.
    pub base_url: Option<String>,
    /// FHIR: `none`, `bearer` or `smart`.
    pub auth: EhrAuth,
    /// Bearer auth: where the token comes from, `env:NAME` or `file:PATH` (0600), never the token.
    pub bearer_token: SecretRef,
    /// SMART: the token endpoint.
    pub token_url: Option<String>,
    /// SMART: the registered client id.
    pub client_id: Option<String>,
    /// SMART: the PEM private key whose public key the EHR registered.
    pub private_key_file: Option<PathBuf>,
    /// SMART: `RS384` or `ES384`.
    pub algorithm: String,
    /// SMART: scopes to ask for.
    pub scope: String,
    /// HL7 v2: the receiver's MLLP listener, `host:port`.
    pub mllp_address: Option<String>,
    /// HL7 v2: MLLP over TLS; the receiver's certificate must name the host of `mllp_address`.
    pub mllp_tls: bool,
    /// HL7 v2 over TLS: the PEM CA the receiver's certificate chains to (default: the system's roots).
    pub mllp_ca_file: Option<PathBuf>,
    /// HL7 v2 over TLS: Vigil's PEM client certificate, for a receiver that requires one.
    pub mllp_client_cert_file: Option<PathBuf>,
    /// HL7 v2 over TLS: the PEM private key of `mllp_client_cert_file`.
    pub mllp_client_key_file: Option<PathBuf>,
    /// HL7 v2: MSH-3, sending application.
    pub sending_application: String,
    /// HL7 v2: MSH-4, sending facility.
    pub sending_facility: String,
    /// HL7 v2: MSH-5, receiving application.
    pub receiving_application: String,
    /// HL7 v2: MSH-6, receiving facility.
    pub receiving_facility: String,
    /// Request timeout in seconds.
    pub timeout_secs: u64,
    /// Events per request at most.
    pub batch_events: u32,
    /// Longest retry delay, in seconds.
    pub max_backoff_secs: u64,
    /// Allow `http://` to an EHR that is not on this workstation: PHI then crosses the network in
    /// the clear, and the board shows a warning mode while it lasts. Loopback (a local
    /// TLS-terminating proxy) needs no such allowance.
    pub allow_insecure_ehr: bool,
}

impl EhrConfig {
    /// The remote host that an `http://` URL of this EHR (its base or token URL) names, if any.
    pub fn plain_http_host(&self) -> Option<String> {
        [&self.base_url, &self.token_url].into_iter().flatten().find_map(|u| {
            let url = url::Url::parse(u).ok().filter(|u| u.scheme() == "http")?;
            let host = url.host_str()?.to_string();
            let loopback = host == "localhost"
                || host.trim_matches(['[', ']']).parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
            (!loopback).then_some(host)
        })
    }

    /// The adapter and its environment.
    pub fn target(&self) -> EhrTarget {
        EhrTarget { kind: self.kind, environment: self.environment }
    }
}

impl Default for EhrConfig {
    fn default() -> Self {
        EhrConfig {
            kind: EhrKind::Sandbox,
            environment: EhrEnvironment::Production,
            base_url: None,
            auth: EhrAuth::None,
            bearer_token: SecretRef::Env("VIGIL_EHR_TOKEN".into()),
            token_url: None,
            client_id: None,
            private_key_file: None,
            algorithm: "RS384".into(),
            scope: "system/Observation.write system/DiagnosticReport.write system/Device.write system/Patient.read"
                .into(),
            mllp_address: None,
            mllp_tls: false,
            mllp_ca_file: None,
            mllp_client_cert_file: None,
            mllp_client_key_file: None,
            sending_application: "VIGIL".into(),
            sending_facility: "VIGIL".into(),
            allow_insecure_ehr: false,
            receiving_application: "EHR".into(),
            receiving_facility: "EHR".into(),
            timeout_secs: 10,
            batch_events: 20,
            max_backoff_secs: 60,
        }
    }
}

/// One thing wrong in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted key, e.g. `retention.raw_days`.
    pub key: String,
    /// The value found, as written (or `(missing)`).
    pub value: String,
    /// What is wrong with it.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {}: {}. Fix: {}", self.key, self.value, self.problem, self.fix)
    }
}

/// Every problem found in one config file.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors {
    /// The file that was read.
    pub file: PathBuf,
    /// Its problems, in file order where known.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {} problem(s)", self.file.display(), self.problems.len())?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads, parses and validates a config file; relative paths become relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let fail = |problems| ConfigErrors { file: path.to_path_buf(), problems };
        let text = std::fs::read_to_string(path)
            .map_err(|e| fail(vec![problem("(file)", path.display(), e, "check the path and permissions")]))?;
        let (mut config, mut problems) = Config::parse_lenient(&text).map_err(fail)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        problems.extend(config.validate());
        if problems.is_empty() { Ok(config) } else { Err(fail(problems)) }
    }

    /// Parses TOML text, reporting every unknown key and wrong type, not only the first.
    pub fn parse(text: &str) -> Result<Config, Vec<ConfigProblem>> {
        match Config::parse_lenient(text)? {
            (config, problems) if problems.is_empty() => Ok(config),
            (_, problems) => Err(problems),
        }
    }

    /// Parses what it can: each unknown key or wrong value is reported and left out (its default
    /// stands in), so the remaining values can still be checked. Only a syntax error stops it.
    fn parse_lenient(text: &str) -> Result<(Config, Vec<ConfigProblem>), Vec<ConfigProblem>> {
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            vec![problem("(syntax)", "", e.message(), format!("fix the TOML syntax {}", where_is(text, e.span())))]
        })?;
        let mut problems = Vec::new();
        // serde stops at the first error: note it, remove the offending key, and try again.
        loop {
            match serde_path_to_error::deserialize::<_, Config>(toml::Value::Table(table.clone())) {
                Ok(config) => return Ok((config, problems)),
                Err(e) => {
                    let message = e.inner().to_string();
                    let (key, value) = take_key(&mut table, e.path(), &message);
                    let fix = if message.starts_with("unknown field") {
                        "remove it, or correct its spelling"
                    } else {
                        "give a value of the type named"
                    };
                    let removed = value.is_some();
                    problems.push(problem(&key, value.as_deref().unwrap_or("(missing)"), message, fix));
                    if !removed {
                        return Err(problems);
                    }
                }
            }
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        rebase(&mut self.profiles.dir);
        if let Some(p) = &mut self.ehr.private_key_file {
            rebase(p);
        }
        if let Some(p) = &mut self.rules.file {
            rebase(p);
        }
        for p in [
            &mut self.broker.ca_file,
            &mut self.broker.client_cert_file,
            &mut self.broker.client_key_file,
            &mut self.broker.tls_cert_file,
            &mut self.broker.tls_key_file,
            &mut self.broker.tls_client_ca_file,
            &mut self.status.token_file,
            &mut self.ehr.mllp_ca_file,
            &mut self.ehr.mllp_client_cert_file,
            &mut self.ehr.mllp_client_key_file,
            &mut self.status.tls_cert_file,
            &mut self.status.tls_key_file,
        ]
        .into_iter()
        .chain(
            self.sources
                .mllp
                .iter_mut()
                .flat_map(|m| [&mut m.tls_cert_file, &mut m.tls_key_file, &mut m.tls_client_ca_file]),
        )
        .flatten()
        {
            rebase(p);
        }
        self.ehr.bearer_token.resolve_paths(base);
        self.broker.password.resolve_paths(base);
        if let Some(rest) = self.store.url.strip_prefix("sqlite://")
            && !rest.starts_with('/')
            && !rest.starts_with(':')
        {
            self.store.url = format!("sqlite://{}", base.join(rest).display());
        }
    }

    /// Secrets must not sit in this file: a URL with a password in it is refused, and so is a
    /// secret file (key, token, password) that others than its owner may read.
    fn secret_problems(&self, out: &mut Vec<ConfigProblem>) {
        let urls = [
            ("store.url", Some(&self.store.url)),
            ("broker.url", self.broker.url.as_ref()),
            ("alerts.mqtt_url", self.alerts.mqtt_url.as_ref()),
            ("alerts.webhook_url", self.alerts.webhook_url.as_ref()),
            ("alerts.technical_webhook_url", self.alerts.technical_webhook_url.as_ref()),
            ("ehr.base_url", self.ehr.base_url.as_ref()),
            ("ehr.token_url", self.ehr.token_url.as_ref()),
        ];
        for (key, url) in urls.into_iter().filter_map(|(k, u)| Some((k, u?))) {
            if url::Url::parse(url).is_ok_and(|u| u.password().is_some()) {
                out.push(problem(
                    key,
                    "(a URL with a password: not repeated here)",
                    "a password must not sit in vigil.toml",
                    "remove it from the URL; give it as env:NAME or file:PATH (0600) in the section's password setting",
                ));
            }
        }
        let files = [
            ("ehr.private_key_file", self.ehr.private_key_file.as_ref()),
            ("ehr.mllp_client_key_file", self.ehr.mllp_client_key_file.as_ref()),
            ("broker.client_key_file", self.broker.client_key_file.as_ref()),
            ("broker.tls_key_file", self.broker.tls_key_file.as_ref()),
            ("status.tls_key_file", self.status.tls_key_file.as_ref()),
            ("status.token_file", self.status.token_file.as_ref()),
        ];
        let mllp_key = self.sources.mllp.as_ref().and_then(|m| m.tls_key_file.as_ref());
        let secret_file = |r: &SecretRef| match r {
            SecretRef::File(p) => Some(p.clone()),
            SecretRef::Env(_) => None,
        };
        let refs = [
            ("ehr.bearer_token", secret_file(&self.ehr.bearer_token)),
            ("broker.password", secret_file(&self.broker.password)),
        ];
        let all = files
            .into_iter()
            .map(|(k, p)| (k, p.cloned()))
            .chain([("sources.mllp.tls_key_file", mllp_key.cloned())])
            .chain(refs);
        for (key, path) in all.filter_map(|(k, p)| Some((k, p?))) {
            if path.exists()
                && let Err(e @ crate::secrets::SecretError::Exposed { .. }) = crate::secrets::check_private(&path)
            {
                out.push(problem(
                    key,
                    path.display().to_string(),
                    e.to_string(),
                    format!("chmod 600 {}", path.display()),
                ));
            }
        }
    }

    /// Checks the values that parsed: ranges, URLs, files that must exist.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        self.secret_problems(&mut out);
        for (metric, range) in &self.plausibility {
            let key = format!("plausibility.{metric}");
            match crate::model::codes::metric_by_ref(metric) {
                None => out.push(problem(
                    &key,
                    metric,
                    "no such metric in Vigil's code table",
                    "use an MDC reference id, e.g. MDC_TEMP_BODY",
                )),
                Some(m) if !(range.low.is_finite() && range.high.is_finite() && range.low < range.high) => {
                    out.push(problem(
                        &key,
                        format!("{}-{}", range.low, range.high),
                        "the range must have a finite low below its high",
                        format!("e.g. {{ low = {}, high = {} }} ({})", m.plausible.0, m.plausible.1, m.unit),
                    ))
                }
                Some(_) => {}
            }
        }
        for (alias, uri) in &self.identity.systems {
            if !is_absolute_uri(uri) {
                out.push(problem(
                    &format!("identity.systems.{alias}"),
                    uri,
                    "an identifier system alias must name an absolute URI",
                    "write the system's URI, e.g. \"urn:oid:2.16.840.1.113883.19.5\" or \"https://hospital.example/mrn\"",
                ));
            }
        }
        for (key, url) in [
            ("alerts.webhook_url", &self.alerts.webhook_url),
            ("alerts.technical_webhook_url", &self.alerts.technical_webhook_url),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                out.push(problem(
                    key,
                    url,
                    "a webhook is an http:// or https:// URL",
                    "e.g. https://nursecall.example/vigil",
                ));
            }
        }
        if let Some(url) = &self.alerts.mqtt_url
            && let Err(why) = BrokerAddress::parse(url)
        {
            out.push(problem("alerts.mqtt_url", url, why, "write it like mqtt://host:1883 or mqtts://host:8883"));
        }
        let routes = &self.alerts.routes;
        for (key, audience) in [
            ("alerts.routes.physiological", routes.physiological),
            ("alerts.routes.patient_technical", routes.patient_technical),
        ] {
            if !audience.clinical() {
                out.push(problem(
                    key,
                    "technical",
                    "a patient's alarms must reach the ward",
                    "use \"clinical\" or \"both\"",
                ));
            }
        }
        if !self.store.url.starts_with("sqlite://") {
            out.push(problem(
                "store.url",
                &self.store.url,
                "only SQLite stores are supported in this version",
                "use sqlite://PATH, e.g. sqlite://vigil.db",
            ));
        }
        match self.broker.mode {
            BrokerMode::Embedded => {
                if self.broker.listen.parse::<std::net::SocketAddr>().is_err() {
                    out.push(problem(
                        "broker.listen",
                        &self.broker.listen,
                        "not an IP address and port",
                        "write it like 127.0.0.1:1883",
                    ));
                }
            }
            BrokerMode::External => match &self.broker.url {
                None => out.push(problem(
                    "broker.url",
                    "(missing)",
                    "an external broker needs a URL",
                    "set broker.url = \"mqtt://host:1883\", or broker.mode = \"embedded\"",
                )),
                Some(url) => {
                    if let Err(why) = BrokerAddress::parse(url) {
                        out.push(problem(
                            "broker.url",
                            url,
                            why,
                            "write it like mqtt://host:1883 or mqtts://host:8883",
                        ));
                    }
                }
            },
        }
        for (key, file) in [
            ("broker.ca_file", &self.broker.ca_file),
            ("broker.client_cert_file", &self.broker.client_cert_file),
            ("broker.client_key_file", &self.broker.client_key_file),
            ("broker.tls_cert_file", &self.broker.tls_cert_file),
            ("broker.tls_key_file", &self.broker.tls_key_file),
            ("broker.tls_client_ca_file", &self.broker.tls_client_ca_file),
            ("ehr.mllp_ca_file", &self.ehr.mllp_ca_file),
            ("ehr.mllp_client_cert_file", &self.ehr.mllp_client_cert_file),
            ("ehr.mllp_client_key_file", &self.ehr.mllp_client_key_file),
        ] {
            if let Some(f) = file
                && !f.is_file()
            {
                out.push(problem(key, f.display(), "no such file", "give the path of a PEM file"));
            }
        }
        if self.broker.client_cert_file.is_some() != self.broker.client_key_file.is_some() {
            out.push(problem(
                "broker.client_key_file",
                "(one of two)",
                "a client certificate needs its key, and a key its certificate",
                "set both broker.client_cert_file and broker.client_key_file, or neither",
            ));
        }
        if !self.status.on_loopback() && (self.status.tls_cert_file.is_none() || self.status.tls_key_file.is_none()) {
            out.push(problem(
                "status.listen",
                &self.status.listen,
                "off loopback, the board and the drills would cross the network in plain text",
                "set status.tls_cert_file and status.tls_key_file, or keep it on 127.0.0.1",
            ));
        }
        if self.ehr.mllp_client_cert_file.is_some() != self.ehr.mllp_client_key_file.is_some() {
            out.push(problem(
                "ehr.mllp_client_key_file",
                "(one of two)",
                "a client certificate needs its key, and a key its certificate",
                "set both ehr.mllp_client_cert_file and ehr.mllp_client_key_file, or neither",
            ));
        }
        if self.status.tls_cert_file.is_some() != self.status.tls_key_file.is_some() {
            out.push(problem(
                "status.tls_key_file",
                "(one of two)",
                "a certificate needs its key, and a key its certificate",
                "set both status.tls_cert_file and status.tls_key_file, or neither",
            ));
        }
        if self.broker.tls_cert_file.is_some() != self.broker.tls_key_file.is_some() {
            out.push(problem(
                "broker.tls_key_file",
                "(one of two)",
                "the endpoint's certificate needs its key, and a key its certificate",
                "set both broker.tls_cert_file and broker.tls_key_file, or neither",
            ));
        }
        if (self.broker.require_client_cert || self.broker.tls_client_ca_file.is_some())
            && self.broker.tls_cert_file.is_none()
        {
            out.push(problem(
                "broker.require_client_cert",
                self.broker.require_client_cert,
                "client certificates need TLS on the endpoint",
                "set broker.tls_cert_file and broker.tls_key_file",
            ));
        }
        if self.broker.require_client_cert && self.broker.tls_client_ca_file.is_none() {
            out.push(problem(
                "broker.tls_client_ca_file",
                "(unset)",
                "required client certificates must chain to a CA Vigil knows",
                "give the PEM file of the CA that signs the devices' certificates",
            ));
        }
        if let Some(mllp) = &self.sources.mllp {
            out.extend(mllp_problems(mllp));
        }
        let mqtt = &self.sources.mqtt;
        for (key, value) in [
            ("sources.mqtt.max_connections", mqtt.max_connections),
            ("sources.mqtt.max_connections_per_address", mqtt.max_connections_per_address),
            ("sources.mqtt.max_unauthenticated_connections", mqtt.max_unauthenticated_connections),
            ("sources.mqtt.max_device_id_bytes", mqtt.max_device_id_bytes),
            ("sources.mqtt.max_batch_elements", mqtt.max_batch_elements),
            ("sources.mqtt.max_readings_per_payload", mqtt.max_readings_per_payload),
            ("sources.mqtt.max_keepalive_secs", usize::from(mqtt.max_keepalive_secs)),
        ] {
            if value == 0 {
                out.push(problem(key, value, "a bound of 0 refuses everything", "give a positive number"));
            }
        }
        if mqtt.topics.is_empty() && self.broker.mode == BrokerMode::External && mqtt.enabled {
            out.push(problem("sources.mqtt.topics", "[]", "nothing to subscribe to", "list at least one topic filter"));
        }
        for t in &mqtt.topics {
            if !rumqttc::valid_filter(t) {
                out.push(problem(
                    "sources.mqtt.topics",
                    t,
                    "not a valid MQTT topic filter",
                    "use / separated levels with + or a final #",
                ));
            }
        }
        if !(1024..=16 * 1024 * 1024).contains(&mqtt.max_packet_bytes) {
            out.push(problem(
                "sources.mqtt.max_packet_bytes",
                mqtt.max_packet_bytes,
                "out of range",
                "use a size between 1024 and 16777216 bytes",
            ));
        }
        if mqtt.keep_alive_secs < 5 {
            out.push(problem(
                "sources.mqtt.keep_alive_secs",
                mqtt.keep_alive_secs,
                "too short",
                "use at least 5 seconds",
            ));
        }
        if !self.profiles.dir.is_dir() {
            out.push(problem(
                "profiles.dir",
                self.profiles.dir.display(),
                "no such directory",
                "point it at the folder of device profile files (relative to the config file)",
            ));
        }
        if self.retention.raw_days == 0 {
            out.push(problem(
                "retention.raw_days",
                0,
                "would purge every reading as soon as it is stored",
                "keep raw telemetry at least 1 day (30 is usual)",
            ));
        }
        if self.retention.purge_every_secs == 0 {
            out.push(problem("retention.purge_every_secs", 0, "the purge job would never sleep", "use e.g. 3600"));
        }
        if self.identity.organisation.trim().is_empty() {
            out.push(problem(
                "identity.organisation",
                "\"\"",
                "empty",
                "name the organisation that issues the patient identifiers",
            ));
        }
        let ehr = &self.ehr;
        if let Some(host) = ehr.plain_http_host().filter(|_| ehr.kind == EhrKind::Fhir && !ehr.allow_insecure_ehr) {
            out.push(problem(
                "ehr.base_url",
                format!("http://{host}/..."),
                "plain http to an EHR on another machine would carry PHI across the network in the clear",
                "use https://, or set ehr.allow_insecure_ehr = true (the board then shows a warning)",
            ));
        }
        if ehr.kind == EhrKind::Fhir {
            match ehr.base_url.as_deref().map(url::Url::parse) {
                None => out.push(problem(
                    "ehr.base_url",
                    "(missing)",
                    "a FHIR EHR needs its base URL",
                    "set ehr.base_url, e.g. \"https://ehr.example/fhir/R4\"",
                )),
                Some(Err(e)) => out.push(problem(
                    "ehr.base_url",
                    ehr.base_url.as_deref().unwrap_or(""),
                    format!("not a URL ({e})"),
                    "write it like https://ehr.example/fhir/R4",
                )),
                Some(Ok(_)) => {}
            }
            if ehr.auth == EhrAuth::Smart {
                for (key, missing) in
                    [("ehr.token_url", ehr.token_url.is_none()), ("ehr.client_id", ehr.client_id.is_none())]
                {
                    if missing {
                        out.push(problem(
                            key,
                            "(missing)",
                            "SMART Backend Services needs it",
                            "set it to what the EHR registered",
                        ));
                    }
                }
                match &ehr.private_key_file {
                    None => out.push(problem(
                        "ehr.private_key_file",
                        "(missing)",
                        "SMART needs the client's private key",
                        "give the PEM file whose public key the EHR registered",
                    )),
                    Some(f) if !f.is_file() => out.push(problem(
                        "ehr.private_key_file",
                        f.display(),
                        "no such file",
                        "give the path of a PEM private key",
                    )),
                    Some(_) => {}
                }
                if ehr.algorithm != "RS384" && ehr.algorithm != "ES384" {
                    out.push(problem(
                        "ehr.algorithm",
                        &ehr.algorithm,
                        "not an algorithm SMART Backend Services allows",
                        "use RS384 or ES384",
                    ));
                }
            }
        }
        if ehr.kind == EhrKind::Hl7v2 && ehr.mllp_address.is_none() {
            out.push(problem(
                "ehr.mllp_address",
                "(missing)",
                "an HL7 v2 EHR needs its MLLP listener",
                "set ehr.mllp_address = \"host:port\"",
            ));
        }
        if ehr.timeout_secs == 0 || ehr.batch_events == 0 || ehr.max_backoff_secs == 0 {
            out.push(problem(
                "ehr.timeout_secs / batch_events / max_backoff_secs",
                0,
                "must be positive",
                "use e.g. 10, 20 and 60",
            ));
        }
        if self.status.listen.parse::<std::net::SocketAddr>().is_err() {
            out.push(problem(
                "status.listen",
                &self.status.listen,
                "not an IP address and port",
                "write it like 127.0.0.1:9464",
            ));
        }
        if let Some(f) = &self.rules.file
            && !f.is_file()
        {
            out.push(problem(
                "rules.file",
                f.display(),
                "no such file",
                "give the path of a rule file, e.g. rules/adult-vitals.toml",
            ));
        }
        let ingest = &self.ingest;
        if ingest.batch_max == 0 || ingest.batch_max > 5000 {
            out.push(problem(
                "ingest.batch_max",
                ingest.batch_max,
                "out of range",
                "use 1 to 5000 (2000 is a good default)",
            ));
        }
        if ingest.queue_capacity < ingest.batch_max {
            out.push(problem(
                "ingest.queue_capacity",
                ingest.queue_capacity,
                "smaller than ingest.batch_max, so batches could never fill",
                "make it at least ingest.batch_max",
            ));
        }
        out
    }
}

/// Where an external broker is, parsed from `broker.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Whether to speak TLS.
    pub tls: bool,
}

impl BrokerAddress {
    /// Parses `mqtt://host[:port]` or `mqtts://host[:port]`.
    pub fn parse(url: &str) -> Result<BrokerAddress, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
        let tls = match parsed.scheme() {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => return Err(format!("unknown scheme {other:?}")),
        };
        let host = parsed.host_str().filter(|h| !h.is_empty()).ok_or("no host")?.to_string();
        let port = parsed.port().unwrap_or(if tls { 8883 } else { 1883 });
        Ok(BrokerAddress { host, port, tls })
    }
}

/// What is wrong with `[sources.mllp]`.
fn mllp_problems(mllp: &MllpSourceConfig) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    if mllp.listen.parse::<std::net::SocketAddr>().is_err() {
        out.push(problem(
            "sources.mllp.listen",
            &mllp.listen,
            "not an IP address and port",
            "write it like 127.0.0.1:2575",
        ));
    }
    if mllp.allow.is_empty() {
        out.push(problem(
            "sources.mllp.allow",
            "[]",
            "the MLLP listener needs the list of gateways that may connect",
            "list their addresses or networks, e.g. allow = [\"10.20.0.15\", \"10.20.1.0/24\"]",
        ));
    }
    if let Err(bad) = mllp.allowed() {
        for entry in bad {
            out.push(problem(
                "sources.mllp.allow",
                entry,
                "neither an address nor a CIDR",
                "write e.g. 10.20.0.15 or 10.20.1.0/24",
            ));
        }
    }
    if let Err(name) = mllp.zone() {
        out.push(problem(
            "sources.mllp.timezone",
            name,
            "not an IANA time zone",
            "write the devices' zone, e.g. \"Europe/Berlin\" or \"America/Chicago\"",
        ));
    }
    for (key, value) in [
        ("sources.mllp.max_message_bytes", mllp.max_message_bytes),
        ("sources.mllp.max_connections", mllp.max_connections),
        ("sources.mllp.max_device_id_bytes", mllp.max_device_id_bytes),
        ("sources.mllp.max_readings_per_message", mllp.max_readings_per_message),
        ("sources.mllp.idle_timeout_secs", usize::try_from(mllp.idle_timeout_secs).unwrap_or(usize::MAX)),
        ("sources.mllp.ack_timeout_ms", usize::try_from(mllp.ack_timeout_ms).unwrap_or(usize::MAX)),
    ] {
        if value == 0 {
            out.push(problem(key, 0, "must be at least 1", "raise it"));
        }
    }
    for (key, file) in [
        ("sources.mllp.tls_cert_file", &mllp.tls_cert_file),
        ("sources.mllp.tls_key_file", &mllp.tls_key_file),
        ("sources.mllp.tls_client_ca_file", &mllp.tls_client_ca_file),
    ] {
        if let Some(f) = file
            && !f.is_file()
        {
            out.push(problem(key, f.display(), "no such file", "give the path of a PEM file"));
        }
    }
    if mllp.tls_cert_file.is_some() != mllp.tls_key_file.is_some() {
        out.push(problem(
            "sources.mllp.tls_key_file",
            "(one of two)",
            "the listener's certificate needs its key, and a key its certificate",
            "set both sources.mllp.tls_cert_file and sources.mllp.tls_key_file, or neither",
        ));
    }
    if mllp.require_client_cert && (mllp.tls_cert_file.is_none() || mllp.tls_client_ca_file.is_none()) {
        out.push(problem(
            "sources.mllp.require_client_cert",
            true,
            "client certificates need TLS on the listener and the CA that signs them",
            "set sources.mllp.tls_cert_file, tls_key_file and tls_client_ca_file",
        ));
    }
    out
}

fn problem(key: &str, value: impl fmt::Display, what: impl fmt::Display, fix: impl fmt::Display) -> ConfigProblem {
    ConfigProblem { key: key.to_string(), value: value.to_string(), problem: what.to_string(), fix: fix.to_string() }
}

fn where_is(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(s) => format!("at line {}", text[..s.start.min(text.len())].lines().count().max(1)),
        None => String::new(),
    }
}

/// Removes the key that `path` points at (or, for an unknown field, the field named in `message`)
/// and returns its dotted name and the value it had.
fn take_key(table: &mut toml::Table, path: &serde_path_to_error::Path, message: &str) -> (String, Option<String>) {
    use serde_path_to_error::Segment;
    let mut keys: Vec<String> = path
        .iter()
        .filter_map(|s| match s {
            Segment::Map { key } => Some(key.clone()),
            _ => None,
        })
        .collect();
    if let Some(field) = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next())
        && keys.last().map(String::as_str) != Some(field)
    {
        keys.push(field.to_string());
    }
    let dotted = keys.join(".");
    let Some((last, parents)) = keys.split_last() else { return (dotted, None) };
    let mut current = table;
    for k in parents {
        match current.get_mut(k).and_then(toml::Value::as_table_mut) {
            Some(t) => current = t,
            None => return (dotted, None),
        }
    }
    let value = current.remove(last).map(|v| v.to_string());
    (dotted, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_every_unknown_key_and_wrong_type() {
        let text = r#"
            [store]
            ulr = "sqlite://x.db"
            [retention]
            raw_days = "thirty"
            [identty]
            organisation = "x"
        "#;
        let problems = Config::parse(text).unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(keys.contains(&"store.ulr"), "{keys:?}");
        assert!(keys.contains(&"retention.raw_days"), "{keys:?}");
        assert!(keys.contains(&"identty"), "{keys:?}");
        let raw_days = problems.iter().find(|p| p.key == "retention.raw_days").unwrap();
        assert_eq!(raw_days.value, "\"thirty\"");
    }

    #[test]
    fn semantic_checks_name_key_value_and_fix() {
        let mut config = Config::parse("[broker]\nmode = \"external\"\n[retention]\nraw_days = 0").unwrap();
        config.profiles.dir = std::env::temp_dir();
        let problems = config.validate();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert_eq!(problems[0].key, "broker.url");
        assert_eq!(problems[1].key, "retention.raw_days");
        assert!(problems[1].to_string().contains("Fix:"));
    }

    #[test]
    fn alarm_routes_are_configured_but_a_patients_alarms_always_reach_the_ward() {
        let text = "[alerts]\nwebhook_url = \"ftp://pager\"\n[alerts.routes]\nphysiological = \"technical\"\ntechnical_low = \"both\"\n";
        let mut config = Config::parse(text).unwrap();
        config.profiles.dir = std::env::temp_dir();
        assert_eq!(config.alerts.routes.audience(AlarmKind::Technical, false, Priority::Low), Audience::Both);
        let problems = config.validate();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["alerts.webhook_url", "alerts.routes.physiological"]);
        assert!(Config::parse("[alerts.routes]\ntechnical_low = \"nobody\"\n").is_err(), "only the three audiences");
    }

    #[test]
    fn endpoints_off_loopback_need_tls_and_client_certificates_need_a_ca() {
        let text = "[status]\nlisten = \"0.0.0.0:9464\"\n[broker]\nrequire_client_cert = true\n\
                    [sources.mqtt]\nmax_connections = 0\n";
        let mut config = Config::parse(text).unwrap();
        config.profiles.dir = std::env::temp_dir();
        let keys: Vec<String> = config.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "status.listen",
                "broker.require_client_cert",
                "broker.tls_client_ca_file",
                "sources.mqtt.max_connections"
            ]
        );
        assert!(Config::default().status.on_loopback());
    }

    #[test]
    fn plain_http_reaches_only_an_ehr_on_this_workstation_unless_allowed() {
        let config = |url: &str, allowed: bool| {
            let text = format!("[ehr]\nkind = \"fhir\"\nbase_url = \"{url}\"\nallow_insecure_ehr = {allowed}\n");
            let mut config = Config::parse(&text).unwrap();
            config.profiles.dir = std::env::temp_dir();
            config
        };
        let remote = config("http://ehr.example/fhir", false);
        assert_eq!(remote.validate().iter().map(|p| p.key.as_str()).collect::<Vec<_>>(), ["ehr.base_url"]);
        assert_eq!(remote.ehr.plain_http_host().as_deref(), Some("ehr.example"));
        assert!(config("http://ehr.example/fhir", true).validate().is_empty(), "allowed: a warning mode instead");
        for local in
            ["http://127.0.0.1:8080/fhir", "http://localhost/fhir", "http://[::1]:80/fhir", "https://ehr.example/fhir"]
        {
            let c = config(local, false);
            assert!(c.validate().is_empty() && c.ehr.plain_http_host().is_none(), "{local}");
        }
    }

    #[test]
    fn the_mllp_listener_needs_its_allow_list_and_a_real_time_zone() {
        let keys = |text: &str| {
            let mut config = Config::parse(text).unwrap();
            config.profiles.dir = std::env::temp_dir();
            config.validate().into_iter().map(|p| format!("{} {}", p.key, p.value)).collect::<Vec<_>>()
        };
        assert!(Config::parse("").unwrap().sources.mllp.is_none(), "off unless configured");
        assert_eq!(keys("[sources.mllp]\n"), ["sources.mllp.allow []"]);
        assert_eq!(
            keys("[sources.mllp]\nallow = [\"10.0.0.0/33\", \"gateway\"]\ntimezone = \"Mars/Olympus\"\n"),
            ["sources.mllp.allow 10.0.0.0/33", "sources.mllp.allow gateway", "sources.mllp.timezone Mars/Olympus"]
        );
        let text = "[sources.mllp]\nallow = [\"10.1.2.3\", \"10.20.1.0/24\"]\ntimezone = \"Europe/Berlin\"\n";
        assert!(keys(text).is_empty());
        let mllp = Config::parse(text).unwrap().sources.mllp.unwrap();
        assert_eq!(mllp.allowed().unwrap().len(), 2);
        assert_eq!(mllp.terms().timezone, Some(chrono_tz::Europe::Berlin));
        assert_eq!(mllp.terms().limits.section, "[sources.mllp]");
    }

    #[test]
    fn identifier_system_aliases_name_absolute_uris_and_resolve() {
        let text = "[identity.systems]\nNORTHCLINIC = \"urn:oid:1.2.3\"\nSOUTH = \"south-mrn\"\n";
        let mut config = Config::parse(text).unwrap();
        config.profiles.dir = std::env::temp_dir();
        let problems = config.validate();
        assert_eq!(problems.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(), ["identity.systems.SOUTH"]);
        let id = &config.identity;
        assert_eq!(id.resolve_system("NORTHCLINIC").as_deref(), Some("urn:oid:1.2.3"));
        assert_eq!(id.resolve_system("https://h.example/mrn").as_deref(), Some("https://h.example/mrn"));
        assert_eq!(id.resolve_system("MRN"), None, "a bare name that is no alias is an unknown namespace");
        assert_eq!(id.resolve_system("1.2.3"), None, "a bare OID is not a URI: write urn:oid:1.2.3");
    }

    #[test]
    fn a_sites_plausible_ranges_name_known_metrics_and_proper_ranges() {
        let text = "[plausibility]\nMDC_TEMP_BODY = { low = 15.0, high = 45.0 }\nMDC_NOPE = { low = 1.0, high = 2.0 }\n\
                    MDC_PULS_OXIM_SAT_O2 = { low = 100.0, high = 1.0 }\n";
        let mut config = Config::parse(text).unwrap();
        config.profiles.dir = std::env::temp_dir();
        let keys: Vec<String> = config.validate().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["plausibility.MDC_NOPE", "plausibility.MDC_PULS_OXIM_SAT_O2"]);
    }

    #[test]
    fn the_example_config_loads_with_paths_relative_to_it() {
        let file = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/vigil.example.toml"));
        let config = Config::load(file).unwrap();
        assert_eq!(config.broker.mode, BrokerMode::Embedded);
        assert!(config.profiles.dir.ends_with("fixtures/profiles"), "{:?}", config.profiles.dir);
        assert!(config.store.url.ends_with("fixtures/vigil.db"), "{}", config.store.url);
    }

    #[test]
    fn broker_urls() {
        assert_eq!(
            BrokerAddress::parse("mqtts://broker.local").unwrap(),
            BrokerAddress { host: "broker.local".into(), port: 8883, tls: true }
        );
        assert_eq!(BrokerAddress::parse("mqtt://127.0.0.1:2000").unwrap().port, 2000);
        assert!(BrokerAddress::parse("http://x").is_err());
    }
}

/// The configuration's settings as `dotted.key = value` lines, sorted, with any value whose key
/// names a secret redacted: what start-up compares with the last start and audits.
pub fn snapshot(config: &Config) -> BTreeMap<String, String> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            other => {
                let last = prefix.rsplit('.').next().unwrap_or(prefix);
                let secret = ["password", "secret", "bearer_token"].iter().any(|s| last.contains(s));
                let shown = if secret && !other.is_null() { "(redacted)".to_string() } else { other.to_string() };
                out.insert(prefix.to_string(), shown);
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(value) = serde_json::to_value(config) {
        walk("", &value, &mut out);
    }
    out
}

/// What changed between two snapshots, in words; `None` when nothing did.
pub fn snapshot_changes(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Option<String> {
    let mut parts = Vec::new();
    for (key, value) in after {
        match before.get(key) {
            None => parts.push(format!("{key} added ({value})")),
            Some(old) if old != value => parts.push(format!("{key}: {old} -> {value}")),
            Some(_) => {}
        }
    }
    parts.extend(before.keys().filter(|k| !after.contains_key(*k)).map(|k| format!("{k} removed")));
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;

    #[test]
    fn a_changed_setting_is_named_and_secret_sources_are_redacted() {
        let before = snapshot(&Config::default());
        let mut config = Config::default();
        config.ehr.base_url = Some("https://ehr.example/fhir".into());
        config.ehr.bearer_token = SecretRef::File("/etc/vigil/ehr.token".into());
        let after = snapshot(&config);
        assert_eq!(after["ehr.bearer_token"], "(redacted)");
        assert_eq!(after["broker.password"], "(redacted)");
        let changes = snapshot_changes(&before, &after).unwrap();
        assert!(changes.contains("ehr.base_url: null -> \"https://ehr.example/fhir\""), "{changes}");
        assert!(!changes.contains("/etc/vigil"), "{changes}");
        assert_eq!(snapshot_changes(&after, &after), None);
    }
}
