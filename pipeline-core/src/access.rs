//! Device credentials: who may publish, and for which device ids.
//!
//! A secret is 160 random bits, shown once, when it is made. The store keeps only its keyed BLAKE3
//! hash, under a key of the site's own. The hash is fast on purpose: a slow one (argon2) on every
//! CONNECT would let anyone who reaches the port burn the CPU the alarm path runs on, and a random
//! secret of that size needs no stretching.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;

/// Characters of a credential's user name (and of a device id pattern, besides `*`).
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
}

/// Longest user name.
const MAX_USERNAME: usize = 64;

/// Checks a credential's user name: 1 to 64 of `A-Z a-z 0-9 - _ . :`.
pub fn check_username(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_USERNAME || !name.chars().all(name_char) {
        return Err(format!(
            "a credential's user name is 1 to {MAX_USERNAME} of the characters A-Z a-z 0-9 - _ . : (got {:?})",
            name.chars().take(MAX_USERNAME + 1).collect::<String>()
        ));
    }
    Ok(())
}

/// The device ids a credential may publish for: exact ids, or prefixes ending in `*` (`OX-*`; `*`
/// alone for a gateway that serves any device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceAcl(Vec<String>);

impl DeviceAcl {
    /// Parses a list of patterns; each is an id, or a prefix followed by one final `*`.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<DeviceAcl, String> {
        if patterns.is_empty() {
            return Err("give at least one device id or pattern the credential may publish for".into());
        }
        let mut out = Vec::new();
        for p in patterns {
            let p = p.as_ref().trim();
            let stem = p.strip_suffix('*').unwrap_or(p);
            if (stem.is_empty() && p != "*") || stem.len() > 128 || !stem.chars().all(name_char) {
                return Err(format!(
                    "{p:?} is not a device id pattern: an id, or a prefix ending in one '*' (OX-*, or * for any device)"
                ));
            }
            out.push(p.to_string());
        }
        Ok(DeviceAcl(out))
    }

    /// Whether the list allows this device id.
    pub fn permits(&self, device_id: &str) -> bool {
        self.0.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => device_id.starts_with(prefix),
            None => p == device_id,
        })
    }

    /// The patterns, as given.
    pub fn patterns(&self) -> &[String] {
        &self.0
    }
}

impl fmt::Display for DeviceAcl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(", "))
    }
}

/// A credential as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The CONNECT user name (or a client certificate's common name).
    pub username: String,
    /// The keyed hash of the current secret.
    pub secret_hash: [u8; 32],
    /// The device ids it may publish for.
    pub allowed: DeviceAcl,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When its secret last changed.
    pub rotated_at: Option<DateTime<Utc>>,
    /// When it was revoked; a revoked credential opens nothing.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A fresh secret: 160 random bits, as 40 lower-case hex digits.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh site key for the secrets' hash.
pub fn new_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    key
}

/// The keyed hash a secret is kept as.
pub fn hash_secret(key: &[u8; 32], secret: &[u8]) -> [u8; 32] {
    *blake3::keyed_hash(key, secret).as_bytes()
}

/// Whether `secret` is the one `stored` was made from (in constant time).
pub fn secret_matches(key: &[u8; 32], secret: &[u8], stored: &[u8; 32]) -> bool {
    blake3::keyed_hash(key, secret) == blake3::Hash::from_bytes(*stored)
}

/// A client's CONNECT credentials (the simulator's, the bench's, the demo's gateway).
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    /// The user name.
    pub username: String,
    /// The secret.
    pub secret: String,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login").field("username", &self.username).finish_non_exhaustive()
    }
}

impl Login {
    /// A user name with the secret kept in `secret_file` (surrounding whitespace ignored).
    pub fn from_file(username: &str, secret_file: &std::path::Path) -> Result<Login, String> {
        let secret = std::fs::read_to_string(secret_file)
            .map_err(|e| format!("cannot read the secret file {}: {e}", secret_file.display()))?;
        Ok(Login { username: username.into(), secret: secret.trim().into() })
    }
}

/// Who published a payload, as its source established it: what binds the device ids it may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publisher {
    /// An anonymous client of an endpoint that allows them (`allow_anonymous = true`): nothing binds.
    Anonymous,
    /// A client that presented a credential: its access list binds.
    Credential {
        /// The credential's user name.
        username: Arc<str>,
        /// The ids it may publish for.
        allowed: Arc<DeviceAcl>,
    },
    /// A client an external broker authenticated: the topic's device level (`vigil/devices/<id>/…`)
    /// is the only device it may publish for (the broker's ACL binds the topic to the client).
    BrokerTopic,
}

impl Publisher {
    /// Why this publisher may not speak for `device_id` on `topic`, if it may not.
    pub fn refuses(&self, device_id: &str, topic: &str) -> Option<String> {
        match self {
            Publisher::Anonymous => None,
            Publisher::Credential { username, allowed } => (!allowed.permits(device_id)).then(|| {
                format!(
                    "credential {username:?} may not publish for device {device_id:?} (it may for: {allowed}); the payload is kept"
                )
            }),
            Publisher::BrokerTopic => match topic_device(topic) {
                Some(level) if level == device_id => None,
                Some(level) => Some(format!(
                    "the payload names device {device_id:?} but came on the topic of device {level:?}; a device publishes only on its own topic"
                )),
                None => Some(format!(
                    "topic {topic:?} has no device level (vigil/devices/<id>/…), so it cannot speak for device {device_id:?}"
                )),
            },
        }
    }
}

/// The device level of a `vigil/devices/<id>/…` topic.
pub fn topic_device(topic: &str) -> Option<&str> {
    let mut levels = topic.split('/');
    match (levels.next(), levels.next(), levels.next()) {
        (Some("vigil"), Some("devices"), Some(id)) if !id.is_empty() => Some(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exact_ids_and_prefixes() {
        let acl = DeviceAcl::parse(&["OX-1", "MX-*"]).unwrap();
        assert!(acl.permits("OX-1") && acl.permits("MX-00A1") && acl.permits("MX-"));
        assert!(!acl.permits("OX-2") && !acl.permits("OX-10") && !acl.permits("mx-1"));
        assert!(DeviceAcl::parse(&["*"]).unwrap().permits("anything"));
        for bad in ["", "O*X", "**", "a b", "OX/1"] {
            assert!(DeviceAcl::parse(&[bad]).is_err(), "{bad:?}");
        }
        assert!(DeviceAcl::parse::<&str>(&[]).is_err());
    }

    #[test]
    fn a_secret_matches_only_its_own_hash_under_its_own_key() {
        let (key, other_key) = (new_key(), new_key());
        let secret = new_secret();
        assert_eq!(secret.len(), 40);
        let stored = hash_secret(&key, secret.as_bytes());
        assert!(secret_matches(&key, secret.as_bytes(), &stored));
        assert!(!secret_matches(&other_key, secret.as_bytes(), &stored));
        assert!(!secret_matches(&key, new_secret().as_bytes(), &stored));
    }

    #[test]
    fn a_publisher_speaks_only_for_the_devices_it_is_bound_to() {
        let device =
            Publisher::Credential { username: "ox1".into(), allowed: Arc::new(DeviceAcl::parse(&["OX-1"]).unwrap()) };
        assert_eq!(device.refuses("OX-1", "vigil/devices/x/oximeter"), None);
        assert!(device.refuses("OX-2", "vigil/devices/OX-2/oximeter").unwrap().contains("\"ox1\""));
        assert_eq!(Publisher::BrokerTopic.refuses("OX-1", "vigil/devices/OX-1/oximeter"), None);
        assert!(Publisher::BrokerTopic.refuses("OX-2", "vigil/devices/OX-1/oximeter").is_some());
        assert!(Publisher::BrokerTopic.refuses("OX-2", "ward/OX-2").is_some());
        assert_eq!(Publisher::Anonymous.refuses("OX-2", "anything"), None);
        assert!(check_username("gw-1").is_ok() && check_username("").is_err() && check_username("a b").is_err());
    }
}
