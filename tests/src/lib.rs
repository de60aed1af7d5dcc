//! Harness for Vigil's end-to-end tests: real peers (Mosquitto, the `vigil` binary) started on
//! ephemeral loopback ports, and a QoS 1 publisher that records exactly which PUBLISHes were
//! acknowledged.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Json;
use axum::routing::post;
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, Outgoing, QoS};
use serde_json::Value;

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A fixture path under `fixtures/`.
pub fn fixture(rel: &str) -> PathBuf {
    workspace().join("fixtures").join(rel)
}

/// The `vigil` binary, built on demand (`cargo test` does not build another package's binaries).
pub fn vigil_bin() -> PathBuf {
    if let Ok(p) = std::env::var("VIGIL_BIN") {
        return p.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| workspace().join("target"));
    let bin = target.join("debug").join("vigil");
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "-q", "-p", "pipeline-core", "--bin", "vigil"])
            .current_dir(workspace())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building vigil failed");
    });
    bin
}

/// A free TCP port on loopback (bound and released; good enough for a test peer).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("bind loopback").port()
}

/// The longest pause between two looks of [`eventually`].
const MAX_PAUSE: Duration = Duration::from_millis(250);

/// What a polling check may say: `bool` (done or not yet), `Option<T>` (the value, once there), or
/// either inside a `Result` (an error ends the wait at once).
pub trait Outcome {
    /// What the wait returns once the check is satisfied.
    type Value;
    /// `Some` once done.
    fn into_outcome(self) -> anyhow::Result<Option<Self::Value>>;
}

impl Outcome for bool {
    type Value = ();
    fn into_outcome(self) -> anyhow::Result<Option<()>> {
        Ok(self.then_some(()))
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn into_outcome(self) -> anyhow::Result<Option<T>> {
        Ok(self)
    }
}

impl<O: Outcome, E: Into<anyhow::Error>> Outcome for Result<O, E> {
    type Value = O::Value;
    fn into_outcome(self) -> anyhow::Result<Option<O::Value>> {
        self.map_err(Into::into)?.into_outcome()
    }
}

/// The deadline and the pauses of a polling loop: look at once, then after 25 ms, 50 ms, 100 ms...
/// at most [`MAX_PAUSE`] apart, until the time is up.
struct Patience<'a> {
    what: &'a str,
    within: Duration,
    deadline: Instant,
    pause: Duration,
}

impl Patience<'_> {
    fn new(what: &str, within: Duration) -> Patience<'_> {
        Patience { what, within, deadline: Instant::now() + within, pause: Duration::from_millis(25) }
    }

    /// How long to pause before the next look; the error once the time is up.
    fn next_pause(&mut self) -> anyhow::Result<Duration> {
        anyhow::ensure!(Instant::now() < self.deadline, "{} did not happen within {:?}", self.what, self.within);
        let pause = self.pause;
        self.pause = (pause * 2).min(MAX_PAUSE);
        Ok(pause)
    }
}

/// Waits until `check` is satisfied and returns what it produced: the one way tests wait for
/// something to happen (never a bare sleep). Pauses with `tokio::time::sleep`, so the runtime keeps
/// serving the test's own peers meanwhile. Fails with "{what} did not happen within {within:?}",
/// or at once with the check's own error.
pub async fn eventually<O: Outcome>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> O,
) -> anyhow::Result<O::Value> {
    let mut patience = Patience::new(what, within);
    loop {
        if let Some(value) = check().await.into_outcome()? {
            return Ok(value);
        }
        tokio::time::sleep(patience.next_pause()?).await;
    }
}

/// [`eventually`] for code that cannot await (`Drop`): the same loop, pausing the thread.
fn eventually_blocking<O: Outcome>(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> O,
) -> anyhow::Result<O::Value> {
    let mut patience = Patience::new(what, within);
    loop {
        if let Some(value) = check().into_outcome()? {
            return Ok(value);
        }
        std::thread::sleep(patience.next_pause()?);
    }
}

async fn wait_for_port(port: u16, within: Duration) -> anyhow::Result<()> {
    eventually(&format!("a listener on 127.0.0.1:{port}"), within, async || {
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
    })
    .await
}

/// A Mosquitto broker (Debian's package) on an ephemeral loopback port; stopped on drop.
pub struct Mosquitto {
    child: Child,
    /// Its port.
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Stops the broker as an operator would (SIGTERM), so it saves its persistence file first.
    pub fn stop_gracefully(mut self) -> anyhow::Result<()> {
        signal_term(&self.child);
        self.child.wait()?;
        Ok(())
    }

    /// Starts a broker that queues without limit for persistent sessions, so a slow or absent
    /// subscriber loses nothing (its default silently drops beyond 1000 queued QoS 1 messages).
    pub async fn start() -> anyhow::Result<Mosquitto> {
        Mosquitto::start_on(free_port(), "").await
    }

    /// Starts a broker on `port` with extra configuration lines (more listeners, TLS...).
    pub async fn start_on(port: u16, extra: &str) -> anyhow::Result<Mosquitto> {
        let dir = tempfile::tempdir()?;
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "per_listener_settings false\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n\
                 max_inflight_messages 100\nlog_dest stderr\nlog_type error\nlistener {port} 127.0.0.1\n{extra}"
            ),
        )?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("mosquitto is not installed (make test installs it)")?;
        let broker = Mosquitto { child, port, _dir: dir };
        wait_for_port(port, Duration::from_secs(10)).await?;
        Ok(broker)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test gateway's credential name: it may publish for any device.
pub const GATEWAY: &str = "test-gateway";

/// A client's CONNECT credentials.
pub use pipeline_core::access::Login;

/// The gateway login of each running Vigil's embedded endpoint, by port: the publish helpers take
/// a port, as a device is configured with an address, and find the site's credential here.
fn logins() -> &'static Mutex<HashMap<u16, Login>> {
    static LOGINS: std::sync::OnceLock<Mutex<HashMap<u16, Login>>> = std::sync::OnceLock::new();
    LOGINS.get_or_init(Mutex::default)
}

/// Publishes to the embedded endpoint at `port` as the site's gateway, for a Vigil the tests did
/// not start with [`VigilProcess`] (the console).
pub fn publish_as_gateway(site: &Site, port: u16) -> anyhow::Result<()> {
    let secret = std::fs::read_to_string(site.gateway_secret_file())?;
    let login = Login { username: GATEWAY.into(), secret: secret.trim().into() };
    logins().lock().unwrap_or_else(|e| e.into_inner()).insert(port, login);
    Ok(())
}

/// Publisher options for a broker at `port`, with the site's gateway login when it is Vigil's
/// embedded endpoint (an external Mosquitto in the tests allows anonymous clients).
pub fn publisher_options(client_id: String, port: u16) -> MqttOptions {
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    if let Some(login) = logins().lock().unwrap_or_else(|e| e.into_inner()).get(&port) {
        opts.set_credentials(login.username.clone(), login.secret.clone());
    }
    opts
}

/// Which broker a test site uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    /// Vigil's own endpoint.
    Embedded,
    /// An external Mosquitto at this port.
    External(u16),
}

/// A site: a temp dir with a `vigil.toml`, a store seeded from the demo registry.
pub struct Site {
    /// The temp dir.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// The broker kind.
    pub broker: BrokerKind,
    /// The first administrator's session token: every `vigil` command of the site runs with it
    /// as VIGIL_TOKEN.
    pub token: String,
}

/// The first administrator every test site is made with, and its password.
pub const ADMIN: (&str, &str) = ("test-admin", "test-admin-password");

impl Site {
    /// Writes the config and imports `fixtures/demo/registry.toml`.
    pub fn new(broker: BrokerKind) -> anyhow::Result<Site> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("vigil.toml");
        let broker_section = match broker {
            BrokerKind::Embedded => "mode = \"embedded\"\nlisten = \"127.0.0.1:0\"".to_string(),
            BrokerKind::External(port) => format!("mode = \"external\"\nurl = \"mqtt://127.0.0.1:{port}\""),
        };
        std::fs::write(
            &config,
            format!(
                "[store]\nurl = \"sqlite://vigil.db\"\n[broker]\n{broker_section}\n[profiles]\ndir = \"{}\"\n\
                 [identity]\norganisation = \"demo-clinic\"\n[status]\nlisten = \"127.0.0.1:0\"\n[health]\nclock_sync_check = false\n[rules]\nfile = \"{}\"\n[sources.mqtt]\nclient_id = \"vigil-test-{}\"\n",
                fixture("profiles").display(),
                fixture("rules/adult-vitals.toml").display(),
                std::process::id()
            ),
        )?;
        let mut site = Site { dir, config, broker, token: String::new() };
        let init = Command::new(vigil_bin())
            .args(["accounts", "--config", &site.config_str(), "init", "--name", ADMIN.0])
            .env("VIGIL_PASSWORD", ADMIN.1)
            .output()?;
        anyhow::ensure!(init.status.success(), "accounts init: {}", String::from_utf8_lossy(&init.stderr));
        site.token = site.sign_in(ADMIN.0, ADMIN.1)?;
        site.vigil(&[
            "import-registry",
            "--config",
            &site.config_str(),
            &fixture("demo/registry.toml").to_string_lossy(),
        ])?;
        // The test publishers connect as a gateway that may publish for any device.
        let secret = site.gateway_secret_file();
        site.vigil(&[
            "credentials",
            "--config",
            &site.config_str(),
            "add",
            GATEWAY,
            "--allow",
            "*",
            "--secret-file",
            &secret.to_string_lossy(),
        ])?;
        Ok(site)
    }

    /// Where the test gateway's secret is kept.
    pub fn gateway_secret_file(&self) -> PathBuf {
        self.dir.path().join("gateway.secret")
    }

    /// Makes a credential that may publish for `allowed`; returns its login.
    pub fn credential(&self, username: &str, allowed: &[&str]) -> anyhow::Result<Login> {
        let file = self.dir.path().join(format!("{username}.secret"));
        let config = self.config_str();
        let mut args = vec!["credentials", "--config", &config, "add", username];
        for pattern in allowed {
            args.extend(["--allow", pattern]);
        }
        let file_arg = file.to_string_lossy().into_owned();
        args.extend(["--secret-file", &file_arg]);
        self.vigil(&args)?;
        Ok(Login { username: username.into(), secret: std::fs::read_to_string(&file)?.trim().into() })
    }

    /// The config path as a string.
    pub fn config_str(&self) -> String {
        self.config.to_string_lossy().into_owned()
    }

    /// A `vigil` command signed in as the first administrator.
    pub fn command(&self) -> Command {
        let mut c = Command::new(vigil_bin());
        c.env("VIGIL_TOKEN", &self.token).env_remove("VIGIL_USER").env_remove("VIGIL_PASSWORD");
        c
    }

    /// A session token for an account, from `vigil accounts token` signed in with its password.
    pub fn sign_in(&self, name: &str, password: &str) -> anyhow::Result<String> {
        let out = Command::new(vigil_bin())
            .args(["accounts", "--config", &self.config_str(), "token", "--ttl", "24", "--user", name])
            .env("VIGIL_PASSWORD", password)
            .env_remove("VIGIL_TOKEN")
            .output()?;
        anyhow::ensure!(out.status.success(), "accounts token: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8(out.stdout)?.trim().to_string())
    }

    /// Adds an account with these roles (by the first administrator); returns its token.
    pub fn account(&self, name: &str, roles: &[&str]) -> anyhow::Result<String> {
        let password = format!("{name}-password");
        let config = self.config_str();
        let mut args = vec!["accounts", "--config", &config, "add", name];
        for role in roles {
            args.extend(["--role", role]);
        }
        let out = self.command().args(&args).env("VIGIL_NEW_PASSWORD", &password).output()?;
        anyhow::ensure!(out.status.success(), "accounts add: {}", String::from_utf8_lossy(&out.stderr));
        self.sign_in(name, &password)
    }

    /// Runs a `vigil` subcommand with a token; its exit code and all it printed.
    pub fn vigil_as(&self, token: &str, args: &[&str]) -> anyhow::Result<(i32, String)> {
        let out = self.command().env("VIGIL_TOKEN", token).args(args).output()?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Ok((out.status.code().unwrap_or(-1), text))
    }

    /// Runs a `vigil` subcommand to completion; fails on a non-zero exit.
    pub fn vigil(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self.command().args(args).output()?;
        if !out.status.success() {
            // Only the subcommand: the arguments may hold identifiers that tests check Vigil never prints.
            let sub = args.first().copied().unwrap_or_default();
            bail!(
                "vigil {sub} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?)
    }

    /// `vigil show WHAT` parsed as JSON.
    pub fn show(&self, what: &str) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.vigil(&["show", what, "--config", &self.config_str(), "--limit", "100000"])?)?)
    }

    /// A count from `vigil show counts`.
    pub fn count(&self, name: &str) -> anyhow::Result<i64> {
        self.show("counts")?[name].as_i64().with_context(|| format!("no count {name}"))
    }

    /// Everything the site's `vigil run` processes logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(log_path(&self.config)).unwrap_or_default()
    }

    /// Starts `vigil run` on this site.
    pub fn run(&self) -> anyhow::Result<VigilProcess> {
        VigilProcess::start(&self.config, &[])
    }

    /// Starts `vigil run` with extra environment variables (secrets such as a bearer token).
    pub fn run_with_env(&self, env: &[(&str, &str)]) -> anyhow::Result<VigilProcess> {
        VigilProcess::start(&self.config, env)
    }

    /// Waits until `done` holds for `vigil show counts`; returns those counts.
    pub async fn wait_counts(
        &self,
        within: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> anyhow::Result<serde_json::Value> {
        let mut last = serde_json::Value::Null;
        let counts = eventually("the expected counts", within, async || -> anyhow::Result<_> {
            last = self.show("counts")?;
            Ok(done(&last).then(|| last.clone()))
        })
        .await;
        counts.with_context(|| format!("the last counts: {last}"))
    }
}

fn log_path(config: &Path) -> PathBuf {
    config.with_file_name("vigil.log")
}

impl Drop for Site {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of vigil.log ---");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A running `vigil run`; SIGTERMed on drop.
pub struct VigilProcess {
    child: Child,
    /// The embedded endpoint's address, when it runs.
    pub mqtt_addr: Option<SocketAddr>,
    /// The MLLP listener's address, when it runs.
    pub mllp_addr: Option<SocketAddr>,
    /// The status endpoint's base URL.
    pub status_url: String,
    /// The status endpoint's bearer token file (beside the site's database).
    token_file: PathBuf,
}

impl VigilProcess {
    /// Starts `vigil run --config FILE` and waits until it says it is running. Its log (debug level
    /// for Vigil's own code) goes to `vigil.log` beside the config, where tests look for PHI.
    pub fn start(config: &Path, env: &[(&str, &str)]) -> anyhow::Result<VigilProcess> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log_path(config))?;
        let mut child = Command::new(vigil_bin())
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .env("VIGIL_LOG", "info,pipeline_core=debug")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut mqtt_addr: Option<SocketAddr> = None;
        let mut mllp_addr: Option<SocketAddr> = None;
        let mut status_url = String::new();
        for line in lines.by_ref() {
            let line = line?;
            if let Some(addr) = line.strip_prefix("vigil: mqtt endpoint listening on ") {
                mqtt_addr = Some(addr.parse()?);
            }
            if let Some(addr) = line.strip_prefix("vigil: mllp listener on ") {
                mllp_addr = Some(addr.parse()?);
            }
            if let Some(url) = line.strip_prefix("vigil: status endpoint on ") {
                status_url = url.to_string();
            }
            if line == "vigil: running" {
                // Keep draining stdout so the child never blocks on a full pipe.
                std::thread::spawn(move || lines.for_each(drop));
                let secret = config.with_file_name("gateway.secret");
                if let (Some(addr), Ok(secret)) = (mqtt_addr, std::fs::read_to_string(secret)) {
                    let login = Login { username: GATEWAY.into(), secret: secret.trim().into() };
                    logins().lock().unwrap_or_else(|e| e.into_inner()).insert(addr.port(), login);
                }
                let token_file = config.with_file_name("status.token");
                return Ok(VigilProcess { child, mqtt_addr, mllp_addr, status_url, token_file });
            }
        }
        let status = child.wait()?;
        bail!("vigil run exited before it was running: {status}")
    }

    /// `GET /status` of this process.
    pub async fn status(&self) -> anyhow::Result<serde_json::Value> {
        Ok(reqwest::get(format!("{}/status", self.status_url)).await?.json().await?)
    }

    /// Waits until `done` holds for `GET /status`; returns it.
    pub async fn wait_status(
        &self,
        within: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> anyhow::Result<serde_json::Value> {
        let mut last = serde_json::Value::Null;
        let status = eventually("the expected board", within, async || -> anyhow::Result<_> {
            last = self.status().await?;
            Ok(done(&last).then(|| last.clone()))
        })
        .await;
        status.with_context(|| format!("the board last showed: {last:#}"))
    }

    /// Waits until the MQTT source holds its subscription: the board's `mqtt` component says the
    /// broker granted every topic filter (the client reports this on SUBACK, not on CONNACK). From
    /// then on the broker delivers what devices publish.
    pub async fn wait_subscribed(&self, within: Duration) -> anyhow::Result<()> {
        self.wait_status(within, |s| {
            let mqtt = component(s, "mqtt");
            mqtt["state"] == "up"
                && mqtt["reason"].as_str().is_some_and(|r| r.starts_with("subscribed to") && !r.contains("refused"))
        })
        .await
        .map(drop)
    }

    /// `POST` to the status endpoint (`/drill/...`) with the site's bearer token.
    pub async fn post_status(&self, path: &str) -> anyhow::Result<reqwest::Response> {
        let token = std::fs::read_to_string(&self.token_file)?;
        Ok(reqwest::Client::new().post(format!("{}{path}", self.status_url)).bearer_auth(token.trim()).send().await?)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The most memory the process has held so far (VmHWM, in KiB).
    pub fn peak_memory_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM in /proc/PID/status")?;
        Ok(line.split_whitespace().nth(1).context("VmHWM without a value")?.parse()?)
    }

    /// SIGKILL: no chance to drain.
    pub fn kill9(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, then wait for the exit status (SIGKILL if it takes more than 20 s).
    pub async fn terminate(mut self) -> anyhow::Result<std::process::ExitStatus> {
        signal_term(&self.child);
        let exited =
            eventually("vigil's exit after SIGTERM", Duration::from_secs(20), async || self.child.try_wait()).await;
        if exited.is_err() {
            self.child.kill()?;
        }
        exited
    }
}

fn signal_term(child: &Child) {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
}

impl Drop for VigilProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            signal_term(&self.child);
            let exited =
                eventually_blocking("vigil's exit after SIGTERM", Duration::from_secs(10), || self.child.try_wait());
            if exited.is_err() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// Which messages a tracked publish got PUBACKs for.
#[derive(Debug, Default)]
pub struct Published {
    /// Indices (into the message list) whose PUBLISH was sent.
    pub sent: usize,
    /// Indices whose PUBACK arrived.
    pub acked: HashSet<usize>,
    /// Whether the connection broke before the end.
    pub broken: bool,
}

/// Publishes `messages` in order at QoS 1 on one connection and records which were acknowledged.
/// Stops at the first connection error (a retransmission after reconnect would blur which PUBACK
/// belongs to which message). `on_progress` sees the acknowledged count as it grows.
pub async fn publish_tracked(
    port: u16,
    messages: Vec<(String, Vec<u8>)>,
    inflight: u16,
    within: Duration,
    mut on_progress: impl FnMut(usize),
) -> anyhow::Result<Published> {
    let mut opts = publisher_options(format!("test-pub-{}-{}", std::process::id(), rand_suffix()), port);
    opts.set_keep_alive(Duration::from_secs(30)).set_inflight(inflight).set_max_packet_size(64 * 1024, 64 * 1024);
    let (client, mut eventloop) = AsyncClient::new(opts, 10);
    let total = messages.len();
    let feeder = tokio::spawn(async move {
        for (topic, payload) in messages {
            if client.publish(topic, QoS::AtLeastOnce, false, payload).await.is_err() {
                break;
            }
        }
        client
    });
    let mut result = Published::default();
    let mut by_pkid: HashMap<u16, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + within;
    while result.acked.len() < total {
        match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Err(_) => {
                bail!("publishing did not finish within {within:?}: {} of {total} acknowledged", result.acked.len())
            }
            Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                by_pkid.insert(pkid, result.sent);
                result.sent += 1;
            }
            Ok(Ok(Event::Incoming(Incoming::PubAck(ack)))) => {
                if let Some(i) = by_pkid.remove(&ack.pkid) {
                    result.acked.insert(i);
                    on_progress(result.acked.len());
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) => {
                result.broken = true;
                break;
            }
        }
    }
    feeder.abort();
    Ok(result)
}

/// Publishes `messages` (any size up to 8 MiB) at QoS 1 on one connection and waits for every PUBACK.
pub fn publish_large(port: u16, messages: Vec<(String, Vec<u8>)>) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let mut opts = publisher_options(format!("test-large-{}", rand_suffix()), port);
        opts.set_keep_alive(Duration::from_secs(30)).set_max_packet_size(8 << 20, 8 << 20);
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        let total = messages.len();
        tokio::spawn(async move {
            for (topic, payload) in messages {
                if client.publish(topic, QoS::AtLeastOnce, false, payload).await.is_err() {
                    break;
                }
            }
        });
        let mut acked = 0;
        while acked < total {
            if let Event::Incoming(Incoming::PubAck(_)) =
                tokio::time::timeout(Duration::from_secs(30), eventloop.poll()).await??
            {
                acked += 1;
            }
        }
        Ok(())
    })
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or_default()
}

/// The FHIR R4 test server (`tests/peers/fhir-server`, medplum's FHIR router with R4 and
/// vital-signs profile validation on every write) on an ephemeral port; stopped on drop.
pub struct FhirServer {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub root: String,
    /// The FHIR base, `{root}/fhir/R4`.
    pub base: String,
    http: reqwest::Client,
}

impl FhirServer {
    /// Starts `node server.mjs --port 0` with extra flags and waits for its ready line.
    pub fn start(flags: &[&str]) -> anyhow::Result<FhirServer> {
        let dir = workspace().join("tests/peers/fhir-server");
        let mut child = Command::new("node")
            .arg(dir.join("server.mjs"))
            .args(["--port", "0", "--quiet"])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("node is not installed")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        for line in lines.by_ref() {
            if let Some(root) = line?.strip_prefix("fhir-server listening on ") {
                let root = root.trim().to_string();
                std::thread::spawn(move || lines.for_each(drop));
                let base = format!("{root}/fhir/R4");
                return Ok(FhirServer { child, root, base, http: reqwest::Client::new() });
            }
        }
        let status = child.wait()?;
        bail!("the FHIR test server exited before it was ready: {status}")
    }

    /// SIGSTOP: the server stops answering (requests time out) but keeps its data.
    pub fn pause(&self) {
        let _ = Command::new("kill").arg("-STOP").arg(self.child.id().to_string()).status();
    }

    /// SIGCONT: the server answers again.
    pub fn resume(&self) {
        let _ = Command::new("kill").arg("-CONT").arg(self.child.id().to_string()).status();
    }

    /// POSTs a resource; returns the server's answer (fails on a non-2xx status).
    pub async fn create(&self, resource: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let kind = resource["resourceType"].as_str().context("resourceType")?.to_string();
        let response = self.http.post(format!("{}/{kind}", self.base)).json(&resource).send().await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        anyhow::ensure!(status.is_success(), "creating {kind}: HTTP {status}: {body}");
        Ok(body)
    }

    /// A search, e.g. `get("Observation?identifier=...")`; returns the Bundle.
    pub async fn get(&self, path_and_query: &str) -> anyhow::Result<serde_json::Value> {
        let response = self.http.get(format!("{}/{path_and_query}", self.base)).send().await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        anyhow::ensure!(status.is_success(), "GET {path_and_query}: HTTP {status}: {body}");
        Ok(body)
    }

    /// A test control call (`/__control/...`).
    pub async fn control(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<serde_json::Value> {
        let mut request = self.http.request(method, format!("{}/__control/{path}", self.root));
        if let Some(b) = body {
            request = request.json(&b);
        }
        let response = request.send().await?;
        let status = response.status();
        let text = response.text().await?;
        anyhow::ensure!(status.is_success(), "control {path}: HTTP {status}: {text}");
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }
}

impl Drop for FhirServer {
    fn drop(&mut self) {
        self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the independent validator (`tests/peers/fhir-server/validate.mjs`, medplum's R4 and
/// vital-signs profile validation) over resources; returns its report, failing if any is invalid.
pub fn validate_fhir(resources: &[serde_json::Value]) -> anyhow::Result<String> {
    let dir = tempfile::tempdir()?;
    let mut files = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let f = dir.path().join(format!("{i}-{}.json", r["resourceType"].as_str().unwrap_or("x")));
        std::fs::write(&f, serde_json::to_vec_pretty(r)?)?;
        files.push(f);
    }
    let out =
        Command::new("node").arg(workspace().join("tests/peers/fhir-server/validate.mjs")).args(&files).output()?;
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    anyhow::ensure!(out.status.success(), "validator refused:\n{report}");
    Ok(report)
}

/// The HL7 v2 MLLP receiver (`tests/peers/mllp-peer`, PyPI `hl7` transport, `hl7apy` validation)
/// on an ephemeral port, recording every message it receives as a JSON line; stopped on drop.
pub struct MllpPeer {
    child: Child,
    /// Its port.
    pub port: u16,
    /// The JSON-lines record of received messages.
    pub record: PathBuf,
    _dir: tempfile::TempDir,
}

impl MllpPeer {
    /// Starts the peer with extra flags (`--reply AE`, `--error-text ...`).
    pub fn start(flags: &[&str]) -> anyhow::Result<MllpPeer> {
        let dir = tempfile::tempdir()?;
        let record = dir.path().join("record.jsonl");
        let python = workspace().join("tests/peers/.venv/bin/python");
        let mut child = Command::new(&python)
            .arg(workspace().join("tests/peers/mllp-peer/mllp_peer.py"))
            .args(["--port", "0", "--record"])
            .arg(&record)
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("{} is missing (make test creates the venv)", python.display()))?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        for line in lines.by_ref() {
            if let Some(addr) = line?.strip_prefix("mllp-peer listening on ") {
                let port = addr.trim().rsplit(':').next().unwrap_or_default().parse()?;
                std::thread::spawn(move || lines.for_each(drop));
                return Ok(MllpPeer { child, port, record, _dir: dir });
            }
        }
        let status = child.wait()?;
        bail!("the MLLP peer exited before it was ready: {status}")
    }

    /// Every message received so far.
    pub fn received(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let text = std::fs::read_to_string(&self.record).unwrap_or_default();
        Ok(text.lines().map(serde_json::from_str).collect::<Result<_, _>>()?)
    }
}

impl Drop for MllpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Site {
    /// Appends lines (e.g. an `[ehr]` section) to the site's config.
    pub fn append_config(&self, text: &str) -> anyhow::Result<()> {
        let mut config = std::fs::read_to_string(&self.config)?;
        config.push('\n');
        config.push_str(text);
        std::fs::write(&self.config, config)?;
        Ok(())
    }

    /// Adds `lines` (`key = value` lines) to `[section]` of the site's config, making the section if
    /// it is not there yet.
    pub fn set_in(&self, section: &str, lines: &str) -> anyhow::Result<()> {
        let mut config = std::fs::read_to_string(&self.config)?;
        let header = format!("[{section}]\n");
        match config.find(&header) {
            Some(at) => config.insert_str(at + header.len(), &format!("{}\n", lines.trim_end())),
            None => config.push_str(&format!("\n{header}{}\n", lines.trim_end())),
        }
        std::fs::write(&self.config, config)?;
        Ok(())
    }

    /// Runs `vigil SUBCOMMAND` for a device and a demo-registry patient, e.g. `pair` or `event`.
    pub fn for_patient(&self, subcommand: &str, device: &str, mrn: &str, extra: &[&str]) -> anyhow::Result<String> {
        let config = self.config_str();
        let mut args = vec![
            subcommand,
            "--config",
            &config,
            "--device",
            device,
            "--patient-system",
            DEMO_SYSTEM,
            "--patient",
            mrn,
        ];
        args.extend_from_slice(extra);
        self.vigil(&args)
    }

    /// Pairs a device with a demo-registry patient from now, unpairing it first if the demo registry
    /// paired it (a device is paired once at a time). With an EHR configured, pairing is what
    /// verifies the patient there.
    pub fn pair_anew(&self, device: &str, mrn: &str) -> anyhow::Result<String> {
        let config = self.config_str();
        let devices: serde_json::Value = serde_json::from_str(&self.vigil(&["devices", "--config", &config])?)?;
        let open = devices
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["device_id"] == device && !d["pairing_id"].is_null() && d["paired_until"].is_null());
        if open {
            self.vigil(&["unpair", "--config", &config, "--device", device])?;
        }
        self.for_patient("pair", device, mrn, &[])
    }

    /// The outbox as `vigil outbox` prints it.
    pub fn outbox(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let out = self.vigil(&["outbox", "--config", &self.config_str(), "--limit", "100000"])?;
        Ok(serde_json::from_str(&out)?)
    }

    /// Waits until `done` holds for the outbox; returns it.
    pub async fn wait_outbox(
        &self,
        within: Duration,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> anyhow::Result<Vec<serde_json::Value>> {
        let mut last = Vec::new();
        let outbox = eventually("the expected outbox", within, async || -> anyhow::Result<_> {
            last = self.outbox()?;
            Ok(done(&last).then(|| last.clone()))
        })
        .await;
        outbox.with_context(|| {
            let statuses: Vec<String> =
                last.iter().map(|o| format!("{} {} {}", o["id"], o["status"], o["reason"])).take(20).collect();
            format!("the outbox last held: {statuses:#?}")
        })
    }
}

/// How many outbox rows have this status.
pub fn with_status(outbox: &[serde_json::Value], status: &str) -> usize {
    outbox.iter().filter(|o| o["status"] == status).count()
}

/// Oximeter payloads from OX-1000 with a fixed SpO2, one a second of observed time from `start` on.
pub fn oximeter_spo2(spo2: f64, start: chrono::DateTime<chrono::Utc>, n: i64) -> Vec<(String, Vec<u8>)> {
    oximeter_spo2_from("OX-1000", spo2, start, n)
}

/// Oximeter payloads from `device` with a fixed SpO2, one a second of observed time from `start` on.
pub fn oximeter_spo2_from(
    device: &str,
    spo2: f64,
    start: chrono::DateTime<chrono::Utc>,
    n: i64,
) -> Vec<(String, Vec<u8>)> {
    let device =
        pipeline_core::simulate::SimDevice::new(device, pipeline_core::simulate::DeviceKind::Oximeter, None, 1);
    (0..n)
        .map(|i| {
            let mut p = device.payload(start + chrono::Duration::seconds(i));
            p["spo2"] = serde_json::json!(spo2);
            (device.kind.topic(&device.id), p.to_string().into_bytes())
        })
        .collect()
}

/// A component of the board (`GET /status`) by name; `null` when the board has none of that name.
pub fn component<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["components"].as_array().and_then(|c| c.iter().find(|c| c["name"] == name)).unwrap_or(&Value::Null)
}

/// Whether the board shows this degradation mode as active.
pub fn mode_active(status: &serde_json::Value, id: &str) -> bool {
    status["modes"].as_array().is_some_and(|m| m.iter().any(|m| m["id"] == id))
}

/// The demo registry's identifier system.
pub const DEMO_SYSTEM: &str = "urn:oid:2.16.840.1.113883.19.5.99999.2";

/// What a test peer received, in order.
pub type Received = Arc<Mutex<Vec<Value>>>;

/// A nurse-call webhook that records what it is sent.
pub async fn webhook() -> anyhow::Result<(String, Received)> {
    let received: Received = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/page",
        post(move |Json(body): Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/page", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((url, received))
}

/// A subscriber to the alert topic that records what it receives.
pub async fn subscriber(port: u16) -> anyhow::Result<Received> {
    let received: Received = Arc::default();
    let (client, mut eventloop) = AsyncClient::new(MqttOptions::new("alert-listener", "127.0.0.1", port), 100);
    client.subscribe("vigil/alarms/#", QoS::AtLeastOnce).await?;
    let sink = received.clone();
    tokio::spawn(async move {
        while let Ok(event) = eventloop.poll().await {
            if let Event::Incoming(Incoming::Publish(p)) = event {
                let mut v: Value = serde_json::from_slice(&p.payload).unwrap_or_default();
                v["topic"] = Value::String(p.topic.clone());
                sink.lock().unwrap().push(v);
            }
        }
    });
    Ok(received)
}

impl Site {
    /// Replaces the site's rule file with an edited copy of the default one.
    pub fn edit_rules(&self, edit: impl Fn(String) -> String) -> anyhow::Result<()> {
        let default = fixture("rules/adult-vitals.toml");
        let rules = self.dir.path().join("rules.toml");
        std::fs::write(&rules, edit(std::fs::read_to_string(&default)?))?;
        let config = std::fs::read_to_string(&self.config)?
            .replace(&default.display().to_string(), &rules.display().to_string());
        std::fs::write(&self.config, config)?;
        Ok(())
    }

    /// `vigil alarms` (every alarm, newest first).
    pub fn alarms(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        Ok(serde_json::from_str(&self.vigil(&["alarms", "--config", &self.config_str()])?)?)
    }
}

/// The alarms (or notices) of one kind: `physiological` or `technical`.
pub fn of_kind(alarms: &[serde_json::Value], kind: &str) -> Vec<serde_json::Value> {
    alarms.iter().filter(|a| a["kind"] == kind).cloned().collect()
}

/// Makes a CA, a server certificate for 127.0.0.1 (20 days) and a client certificate whose common
/// name is `client_cn`, with openssl, in `dir`.
pub fn certificates(dir: &std::path::Path, client_cn: &str) -> anyhow::Result<()> {
    let run = |command: &str, subject: &str| -> anyhow::Result<()> {
        let out = Command::new("openssl")
            .args(command.split_whitespace())
            .args(["-subj", subject].iter().filter(|_| !subject.is_empty()))
            .current_dir(dir)
            .output()?;
        anyhow::ensure!(out.status.success(), "openssl {command}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    };
    run("req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 30", "/CN=Test Device CA")?;
    // Extensions make X.509 v3 certificates (webpki refuses v1).
    std::fs::write(dir.join("server.ext"), "subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n")?;
    std::fs::write(dir.join("client.ext"), "basicConstraints = CA:FALSE\nextendedKeyUsage = clientAuth\n")?;
    for (name, subject) in [("server", "/CN=127.0.0.1".to_string()), ("client", format!("/CN={client_cn}"))] {
        run(&format!("req -newkey rsa:2048 -nodes -keyout {name}.key -out {name}.csr"), &subject)?;
        run(
            &format!(
                "x509 -req -in {name}.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out {name}.pem -days 20 -extfile {name}.ext"
            ),
            "",
        )?;
    }
    Ok(())
}
