//! Who gets in at the embedded endpoint: CONNECT credentials checked against the store's hashes,
//! refused CONNECTs counted per address (rate-limited, audited once a minute per address, and a
//! technical alarm past the threshold), and live sessions closed when their credential is revoked
//! or rotated.
//!
//! The check never waits on the store: credentials are a snapshot, reloaded when the store's change
//! counter moves (polled every [`RELOAD_EVERY`]). A store that cannot be read keeps the last one.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rumqttc::ConnectReturnCode;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::access::{self, Credential, Publisher};
use crate::health::modes::{ANONYMOUS_ALLOWED, NO_DEVICE_CREDENTIALS};
use crate::health::{HealthState, Heartbeat};
use crate::store::{AuditLog, CredentialStore, StoreError};

/// How often the credentials' change counter is read.
pub const RELOAD_EVERY: Duration = Duration::from_secs(2);
/// The window refused CONNECTs are counted (and audited) in.
const WINDOW: Duration = Duration::from_secs(60);

/// A CONNECT let in: who it is, and what it may publish for.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// What binds the device ids of its payloads.
    pub publisher: Publisher,
    /// The credential and the secret hash it was admitted with (none when anonymous).
    credential: Option<(Arc<str>, [u8; 32])>,
}

/// Why a CONNECT was refused; each maps to a 3.1.1 CONNACK return code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No user name, and the endpoint does not allow anonymous clients.
    NoCredentials,
    /// Unknown user name, wrong secret, or a revoked credential.
    BadCredentials,
    /// Too many refused CONNECTs from this address in the last minute.
    RateLimited,
}

impl Refusal {
    /// The CONNACK return code that says so.
    pub fn return_code(self) -> ConnectReturnCode {
        match self {
            Refusal::BadCredentials => ConnectReturnCode::BadUserNamePassword,
            Refusal::NoCredentials | Refusal::RateLimited => ConnectReturnCode::NotAuthorized,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Refusal::NoCredentials => "no credentials",
            Refusal::BadCredentials => "bad user name or secret",
            Refusal::RateLimited => "rate-limited",
        }
    }
}

/// The credentials as last loaded.
#[derive(Default)]
struct Snapshot {
    key: [u8; 32],
    by_name: HashMap<String, Credential>,
    /// The change counter it was loaded at; `None` before the first load.
    generation: Option<i64>,
}

/// Refused CONNECTs from one address in the current window.
#[derive(Default)]
struct Failures {
    count: u32,
    reasons: HashMap<&'static str, u32>,
    usernames: Vec<String>,
}

/// The endpoint's door; shared by every connection.
pub struct Gate {
    allow_anonymous: bool,
    threshold: u32,
    snapshot: RwLock<Snapshot>,
    failures: Mutex<HashMap<IpAddr, Failures>>,
    /// Moves whenever the credentials change: live sessions check they still hold.
    changed: watch::Sender<i64>,
}

impl Gate {
    /// The gate over `store`'s credentials, loaded now (so the first CONNECTs find them).
    pub async fn load(
        store: &dyn CredentialStore,
        allow_anonymous: bool,
        failed_connects_per_minute: u32,
    ) -> Result<Arc<Gate>, StoreError> {
        let gate = Gate {
            allow_anonymous,
            threshold: failed_connects_per_minute.max(1),
            snapshot: RwLock::default(),
            failures: Mutex::default(),
            changed: watch::channel(0).0,
        };
        gate.reload(store).await?;
        Ok(Arc::new(gate))
    }

    async fn reload(&self, store: &dyn CredentialStore) -> Result<(), StoreError> {
        let generation = store.credentials_generation().await?;
        if Some(generation) == self.snapshot.read().unwrap_or_else(|e| e.into_inner()).generation {
            return Ok(());
        }
        let key = store.credential_key().await?;
        let by_name = store.credentials().await?.into_iter().map(|c| (c.username.clone(), c)).collect();
        *self.snapshot.write().unwrap_or_else(|e| e.into_inner()) =
            Snapshot { key, by_name, generation: Some(generation) };
        self.changed.send_replace(generation);
        Ok(())
    }

    /// Whether any live credential exists (the board warns when none does).
    pub fn has_credentials(&self) -> bool {
        self.snapshot.read().unwrap_or_else(|e| e.into_inner()).by_name.values().any(|c| c.revoked_at.is_none())
    }

    /// Checks a CONNECT from `peer`: its user name and password, or the common name of a client
    /// certificate the TLS layer verified.
    pub fn admit(
        &self,
        peer: IpAddr,
        login: Option<(&str, &str)>,
        certificate_name: Option<&str>,
    ) -> Result<Admitted, Refusal> {
        if self.failures(peer) >= self.threshold {
            self.refused(peer, Refusal::RateLimited, login.map(|l| l.0));
            return Err(Refusal::RateLimited);
        }
        let snapshot = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        let credential = |name: &str| snapshot.by_name.get(name).filter(|c| c.revoked_at.is_none());
        let found = match (login, certificate_name) {
            (Some((user, secret)), _) => credential(user)
                .filter(|c| access::secret_matches(&snapshot.key, secret.as_bytes(), &c.secret_hash))
                .ok_or(Refusal::BadCredentials),
            (None, Some(name)) => credential(name).ok_or(Refusal::BadCredentials),
            (None, None) if self.allow_anonymous => {
                return Ok(Admitted { publisher: Publisher::Anonymous, credential: None });
            }
            (None, None) => Err(Refusal::NoCredentials),
        };
        match found {
            Ok(c) => {
                let username: Arc<str> = c.username.as_str().into();
                Ok(Admitted {
                    publisher: Publisher::Credential {
                        username: username.clone(),
                        allowed: Arc::new(c.allowed.clone()),
                    },
                    credential: Some((username, c.secret_hash)),
                })
            }
            Err(refusal) => {
                drop(snapshot);
                self.refused(peer, refusal, login.map(|l| l.0).or(certificate_name));
                Err(refusal)
            }
        }
    }

    /// Whether a session admitted earlier still holds: its credential neither revoked nor rotated.
    pub fn still_admits(&self, admitted: &Admitted) -> bool {
        let Some((name, hash)) = &admitted.credential else { return self.allow_anonymous };
        let snapshot = self.snapshot.read().unwrap_or_else(|e| e.into_inner());
        snapshot.by_name.get(&**name).is_some_and(|c| c.revoked_at.is_none() && c.secret_hash == *hash)
    }

    /// Moves whenever the credentials change.
    pub fn changes(&self) -> watch::Receiver<i64> {
        self.changed.subscribe()
    }

    fn failures(&self, peer: IpAddr) -> u32 {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).get(&peer).map_or(0, |f| f.count)
    }

    fn refused(&self, peer: IpAddr, why: Refusal, username: Option<&str>) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let f = failures.entry(peer).or_default();
        f.count += 1;
        *f.reasons.entry(why.as_str()).or_default() += 1;
        if let Some(name) = username
            && f.usernames.len() < 5
            && !f.usernames.iter().any(|u| u == name)
        {
            f.usernames.push(name.chars().take(64).collect());
        }
    }

    /// The addresses past the threshold in the current window, with their counts.
    fn over_threshold(&self) -> Vec<(IpAddr, u32)> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let mut over: Vec<(IpAddr, u32)> =
            failures.iter().filter(|(_, f)| f.count >= self.threshold).map(|(ip, f)| (*ip, f.count)).collect();
        over.sort();
        over
    }

    /// Ends the window: what each address was refused in it.
    fn close_window(&self) -> Vec<(IpAddr, Failures)> {
        std::mem::take(&mut *self.failures.lock().unwrap_or_else(|e| e.into_inner())).into_iter().collect()
    }
}

/// The board rows the gate keeps current.
pub struct GateBeats {
    /// `mqtt-auth`: degraded while an address was past the limit of refused CONNECTs.
    pub auth: Heartbeat,
    /// `mqtt-access`: degraded while anonymous clients are let in, or no credential exists.
    pub access: Heartbeat,
    /// `mqtt-certificate` and when the server certificate expires, with TLS.
    pub certificate: Option<(Heartbeat, DateTime<Utc>)>,
}

/// A certificate this close to expiry shows its mode.
const EXPIRY_WARNING: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// Reloads credentials when they change, and once a minute audits the refused CONNECTs of each
/// address (one entry per address); beats the gate's rows every second.
pub async fn watch(
    gate: Arc<Gate>,
    store: Arc<dyn CredentialStore>,
    audit: Arc<dyn AuditLog>,
    beats: GateBeats,
    shutdown: CancellationToken,
) {
    let mut reload = tokio::time::interval(RELOAD_EVERY);
    let mut window = tokio::time::interval(WINDOW);
    window.tick().await;
    // The last closed window's offenders: the mode lasts at least until the next window closes.
    let mut offenders: Vec<(IpAddr, u32)> = Vec::new();
    let mut beat = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = beat.tick() => {}
            _ = reload.tick() => {
                if let Err(e) = gate.reload(store.as_ref()).await {
                    tracing::warn!(error = %e, "credentials not reloaded; the last ones stay in force");
                }
            }
            _ = window.tick() => offenders = close_window(&gate, audit.as_ref()).await,
        }
        let now = gate.over_threshold();
        let (state, reason) = match if now.is_empty() { &offenders } else { &now } {
            over if over.is_empty() => (HealthState::Up, "no address past the limit of refused CONNECTs".to_string()),
            over => {
                let listed: Vec<String> = over.iter().map(|(ip, n)| format!("{ip} ({n})")).collect();
                let limit = gate.threshold;
                (HealthState::Degraded, format!("refused CONNECTs past {limit} a minute from {}", listed.join(", ")))
            }
        };
        beats.auth.beat(state, &reason);
        let (state, reason) = match (gate.allow_anonymous, gate.has_credentials()) {
            (true, _) => {
                (HealthState::Degraded, format!("{ANONYMOUS_ALLOWED} ([sources.mqtt] allow_anonymous = true)"))
            }
            (false, false) => (
                HealthState::Degraded,
                format!("{NO_DEVICE_CREDENTIALS} exists: every device is refused (vigil credentials add)"),
            ),
            (false, true) => (HealthState::Up, "devices log in with credentials".to_string()),
        };
        beats.access.beat(state, &reason);
        if let Some((heartbeat, expires)) = &beats.certificate {
            let left = *expires - heartbeat.clock().now();
            let state = if left < EXPIRY_WARNING { HealthState::Degraded } else { HealthState::Up };
            heartbeat.beat(state, &format!("server certificate expires {}", expires.format("%Y-%m-%d %H:%M UTC")));
        }
    }
}

/// Audits the window's refused CONNECTs, one entry per address; returns the addresses that were
/// past the threshold.
async fn close_window(gate: &Gate, audit: &dyn AuditLog) -> Vec<(IpAddr, u32)> {
    let over = gate.over_threshold();
    for (ip, f) in &gate.close_window() {
        let mut reasons: Vec<String> = f.reasons.iter().map(|(r, n)| format!("{r}: {n}")).collect();
        reasons.sort();
        let detail = format!(
            "{} CONNECTs refused in the last minute ({}); user names tried: {:?}",
            f.count,
            reasons.join(", "),
            f.usernames
        );
        if let Err(e) = audit.audit("mqtt-endpoint", "device.connect_refused", &ip.to_string(), &detail).await {
            tracing::warn!(error = %e, "refused CONNECTs not audited");
        }
    }
    if !over.is_empty() {
        tracing::warn!(addresses = ?over, "addresses past the limit of refused CONNECTs");
    }
    over
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::access::DeviceAcl;
    use crate::clock::TokioClock;
    use crate::store::fake::FakeStore;

    const HOME: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    async fn store_with(name: &str, secret: &str) -> Arc<FakeStore> {
        let store = Arc::new(FakeStore::new(TokioClock::starting_at(Utc::now())));
        let key = store.credential_key().await.unwrap();
        let acl = DeviceAcl::parse(&["OX-1"]).unwrap();
        store.add_credential(name, &access::hash_secret(&key, secret.as_bytes()), &acl, "t").await.unwrap();
        store
    }

    #[tokio::test]
    async fn a_credential_is_checked_and_refusals_are_rate_limited_per_address() {
        let store = store_with("ox1", "s3cret").await;
        let gate = Gate::load(store.as_ref(), false, 3).await.unwrap();
        let ok = gate.admit(HOME, Some(("ox1", "s3cret")), None).unwrap();
        assert!(matches!(ok.publisher, Publisher::Credential { .. }));
        assert_eq!(gate.admit(HOME, None, None).unwrap_err(), Refusal::NoCredentials);
        assert_eq!(gate.admit(HOME, Some(("ox1", "wrong")), None).unwrap_err(), Refusal::BadCredentials);
        assert_eq!(gate.admit(HOME, Some(("nobody", "s3cret")), None).unwrap_err(), Refusal::BadCredentials);
        // Three refusals: this address is now refused whatever it sends, others are not.
        assert_eq!(gate.admit(HOME, Some(("ox1", "s3cret")), None).unwrap_err(), Refusal::RateLimited);
        let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
        assert!(gate.admit(other, Some(("ox1", "s3cret")), None).is_ok());
        assert_eq!(gate.over_threshold(), vec![(HOME, 4)]);
        assert_eq!(gate.close_window().len(), 1);
        assert!(gate.admit(HOME, Some(("ox1", "s3cret")), None).is_ok(), "a new window starts clean");
    }

    #[tokio::test]
    async fn revoking_or_rotating_ends_what_the_credential_admitted() {
        let store = store_with("ox1", "s3cret").await;
        let gate = Gate::load(store.as_ref(), false, 10).await.unwrap();
        let session = gate.admit(HOME, Some(("ox1", "s3cret")), None).unwrap();
        assert!(gate.still_admits(&session));
        let key = store.credential_key().await.unwrap();
        store.rotate_credential("ox1", &access::hash_secret(&key, b"new"), "t").await.unwrap();
        let changes = gate.changes();
        gate.reload(store.as_ref()).await.unwrap();
        assert!(changes.has_changed().unwrap());
        assert!(!gate.still_admits(&session), "a rotated secret ends the session");
        let again = gate.admit(HOME, Some(("ox1", "new")), None).unwrap();
        store.revoke_credential("ox1", "t").await.unwrap();
        gate.reload(store.as_ref()).await.unwrap();
        assert!(!gate.still_admits(&again));
        assert_eq!(gate.admit(HOME, Some(("ox1", "new")), None).unwrap_err(), Refusal::BadCredentials);
        assert!(!gate.has_credentials());
    }

    #[tokio::test]
    async fn anonymous_clients_get_in_only_where_allowed() {
        let store = Arc::new(FakeStore::new(TokioClock::starting_at(Utc::now())));
        let open = Gate::load(store.as_ref(), true, 10).await.unwrap();
        assert_eq!(open.admit(HOME, None, None).unwrap().publisher, Publisher::Anonymous);
        let closed = Gate::load(store.as_ref(), false, 10).await.unwrap();
        assert_eq!(closed.admit(HOME, None, None).unwrap_err(), Refusal::NoCredentials);
    }
}
