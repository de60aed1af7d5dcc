//! The demo site that `vigil demo` and the console's demo mode run: the embedded MQTT endpoint,
//! SQLite, the sandbox EHR, the demo registry (made-up patients, one device unpaired, one patient
//! without consent) and simulated devices that desaturate now and then.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use chrono::{DateTime, Utc};

use crate::access::Login;
use crate::config::Config;
use crate::registry_import::{self, SeedError};
use crate::simulate::{self, PublishReport, SimOptions};
use crate::store::Store;

/// The fixture files a demo site is made of.
#[derive(Debug, Clone)]
pub struct DemoFiles {
    /// The device profiles.
    pub profiles: PathBuf,
    /// The registry to load.
    pub registry: PathBuf,
    /// The alarm and event rules.
    pub rules: PathBuf,
}

/// Where a demo site's endpoints listen.
pub const DEFAULT_MQTT_LISTEN: &str = "127.0.0.1:1883";
/// The status endpoint's usual address.
pub const DEFAULT_STATUS_LISTEN: &str = "127.0.0.1:9464";

impl DemoFiles {
    /// The files under a `fixtures/` folder laid out as in this repository.
    pub fn in_fixtures(fixtures: &Path) -> DemoFiles {
        DemoFiles {
            profiles: fixtures.join("profiles"),
            registry: fixtures.join("demo/registry.toml"),
            rules: fixtures.join("rules/adult-vitals.toml"),
        }
    }
}

/// The demo's settings: the store in `data_dir`, the MQTT endpoint on `mqtt_listen` and the status
/// endpoint on `status_listen` (each on a free port instead when taken: a system Mosquitto on 1883
/// must not stop the demo).
pub fn config(data_dir: &Path, files: &DemoFiles, mqtt_listen: &str, status_listen: &str) -> Config {
    let mut config = Config::default();
    config.site.demo = true;
    // The console's end-to-end test runs where no time service answers: it turns the check off.
    config.health.clock_sync_check = std::env::var("VIGIL_DEMO_CLOCK_SYNC_CHECK").map_or(true, |v| v != "off");
    config.store.url = format!("sqlite://{}", data_dir.join("vigil.db").display());
    config.profiles.dir = files.profiles.clone();
    config.broker.listen = free_or_any(mqtt_listen);
    config.identity.organisation = "demo-clinic".into();
    config.rules.file = Some(files.rules.clone());
    config.status.listen = free_or_any(status_listen);
    config
}

fn free_or_any(addr: &str) -> String {
    match std::net::TcpListener::bind(addr) {
        Ok(_) => addr.to_string(),
        Err(e) => {
            tracing::warn!(addr, error = %e, "address taken; using a free port instead");
            "127.0.0.1:0".into()
        }
    }
}

/// Loads the demo registry (idempotent: pairings on record are kept); returns (patients, devices).
pub async fn seed(store: &dyn Store, files: &DemoFiles, now: DateTime<Utc>) -> Result<(usize, usize), SeedError> {
    registry_import::import(store, &files.registry, now, "demo").await
}

/// The simulated ward: two devices of each kind (the second monitor is the unpaired one), one
/// payload a second, a desaturation or tachycardia episode every two minutes or so.
pub fn simulator() -> SimOptions {
    SimOptions { devices: 2, rate_hz: 1.0, episode_rate: 1.0 / 120.0, ..SimOptions::default() }
}

/// The demo gateway's credential name.
pub const GATEWAY: &str = "demo-gateway";

/// Publishes the simulated ward to the endpoint at `addr` with `login` until `stop`.
pub fn simulate(addr: SocketAddr, login: Login, stop: CancellationToken) -> JoinHandle<anyhow::Result<PublishReport>> {
    let options = SimOptions { login: Some(login), ..simulator() };
    tokio::spawn(async move { simulate::publish(options, &addr.ip().to_string(), addr.port(), stop).await })
}
