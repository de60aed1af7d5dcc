//! Device and gateway credentials for the embedded MQTT endpoint. A secret is shown once, when it is
//! made or rotated; the store keeps its keyed hash only.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Admin;
use crate::access::{self, DeviceAcl, Login};
use crate::accounts::Action;
use crate::api::actor::Actor;
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::demo;

/// A credential as operators see it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CredentialView {
    /// The CONNECT user name.
    pub username: String,
    /// The device ids or patterns it may publish for.
    pub allowed: Vec<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When its secret last changed.
    pub rotated_at: Option<DateTime<Utc>>,
    /// When it was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A secret just made: shown this once, never again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssuedSecret {
    /// The credential's user name.
    pub username: String,
    /// The secret (the CONNECT password).
    pub secret: String,
}

impl Admin {
    /// Every credential, revoked ones included.
    pub async fn credentials(&self, actor: &Actor) -> ApiResult<Vec<CredentialView>> {
        self.permit(actor, Action::ManageCredentials).await?;
        Ok(self
            .store
            .credentials()
            .await?
            .into_iter()
            .map(|c| CredentialView {
                username: c.username,
                allowed: c.allowed.patterns().to_vec(),
                created_at: c.created_at,
                rotated_at: c.rotated_at,
                revoked_at: c.revoked_at,
            })
            .collect())
    }

    /// Makes a credential that may publish for `allowed` (ids, or prefixes ending in `*`); audited.
    pub async fn add_credential(&self, actor: &Actor, username: &str, allowed: &[String]) -> ApiResult<IssuedSecret> {
        self.permit(actor, Action::ManageCredentials).await?;
        let username = username.trim();
        access::check_username(username).map_err(|e| ApiError::new(ErrorCode::InvalidInput, e))?;
        let allowed = DeviceAcl::parse(allowed).map_err(|e| ApiError::new(ErrorCode::InvalidInput, e))?;
        let secret = access::new_secret();
        let key = self.store.credential_key().await?;
        let hash = access::hash_secret(&key, secret.as_bytes());
        self.store.add_credential(username, &hash, &allowed, actor.name()).await?;
        Ok(IssuedSecret { username: username.into(), secret })
    }

    /// Gives a live credential a new secret; the old one stops working, and its live sessions are
    /// closed within seconds. Audited.
    pub async fn rotate_credential(&self, actor: &Actor, username: &str) -> ApiResult<IssuedSecret> {
        self.permit(actor, Action::ManageCredentials).await?;
        let username = username.trim();
        let secret = access::new_secret();
        let key = self.store.credential_key().await?;
        let hash = access::hash_secret(&key, secret.as_bytes());
        self.store.rotate_credential(username, &hash, actor.name()).await?;
        Ok(IssuedSecret { username: username.into(), secret })
    }

    /// Revokes a credential; its live sessions are closed within seconds. Audited.
    pub async fn revoke_credential(&self, actor: &Actor, username: &str) -> ApiResult<()> {
        self.permit(actor, Action::ManageCredentials).await?;
        Ok(self.store.revoke_credential(username.trim(), actor.name()).await?)
    }

    /// The demo gateway's credential (pattern `*`, so the simulated ward connects as real devices
    /// do), its secret kept 0600 in `data_dir`. Made at the first start, and made again (rotated)
    /// when the file is gone, so the demo needs no configuration.
    pub async fn demo_gateway(&self, data_dir: &std::path::Path) -> ApiResult<Login> {
        let file = data_dir.join(format!("{}.secret", demo::GATEWAY));
        let actor = Actor::system("demo");
        let live =
            self.store.credentials().await?.iter().any(|c| c.username == demo::GATEWAY && c.revoked_at.is_none());
        if live && let Ok(login) = Login::from_file(demo::GATEWAY, &file) {
            return Ok(login);
        }
        let issued = match live {
            true => self.rotate_credential(&actor, demo::GATEWAY).await?,
            false => self.add_credential(&actor, demo::GATEWAY, &["*".to_string()]).await?,
        };
        crate::secrets::write_private(&file, &issued.secret)
            .map_err(|e| ApiError::new(ErrorCode::InvalidConfig, format!("cannot write {}: {e}", file.display())))?;
        Ok(Login { username: issued.username, secret: issued.secret })
    }

    /// What `check-config` says about device access on this site: no credential at all, or
    /// registered devices that no live credential may publish for (the upgrade note of a site made
    /// before credentials existed).
    pub async fn access_warnings(&self) -> ApiResult<Vec<String>> {
        let mqtt = &self.config.sources.mqtt;
        if !mqtt.enabled || self.config.broker.mode != crate::config::BrokerMode::Embedded {
            return Ok(Vec::new());
        }
        if mqtt.allow_anonymous {
            return Ok(vec!["[sources.mqtt] allow_anonymous = true: anyone who reaches the device port can send readings for any device".into()]);
        }
        let live: Vec<_> = self.store.credentials().await?.into_iter().filter(|c| c.revoked_at.is_none()).collect();
        if live.is_empty() {
            return Ok(vec![
                "no device credential exists: the embedded endpoint refuses every device until one is made (vigil credentials add NAME --allow DEVICE-ID)".into(),
            ]);
        }
        let uncovered: Vec<String> = self
            .store
            .devices()
            .await?
            .into_iter()
            .map(|d| d.device_id)
            .filter(|id| !live.iter().any(|c| c.allowed.permits(id)))
            .collect();
        Ok(match uncovered.is_empty() {
            true => Vec::new(),
            false => vec![format!(
                "no credential may publish for these registered devices, so they cannot connect: {} (vigil credentials add NAME --allow DEVICE-ID)",
                uncovered.join(", ")
            )],
        })
    }
}
