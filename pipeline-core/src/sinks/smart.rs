//! SMART Backend Services: OAuth 2.0 client credentials with a signed JWT assertion (RS384 or
//! ES384), the access token cached until shortly before it expires.

use crate::clock::SharedClock;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// Why a token could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SmartError {
    /// The private key file is unreadable or not a PEM key of the algorithm's kind.
    #[error("SMART private key {path}: {why}")]
    Key {
        /// The file.
        path: String,
        /// Why.
        why: String,
    },
    /// The token endpoint could not be reached (retryable).
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
    /// The token endpoint refused the client (fix the registration or the key).
    #[error("token endpoint refused the client: {0}")]
    Refused(String),
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    jti: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

/// A token's lifetime is taken as the server says, within these bounds: a server that says 0 or
/// 2^63 seconds (seen) neither makes Vigil ask for a token on every request nor overflows a deadline.
const TOKEN_LIFETIME: (u64, u64) = (5, 24 * 3600);

/// The access token and its lifetime in a token endpoint's answer (default 5 minutes, clamped to
/// [`TOKEN_LIFETIME`]).
pub fn token_response(body: &[u8]) -> Result<(String, Duration), SmartError> {
    let parsed: TokenResponse =
        serde_json::from_slice(body).map_err(|e| SmartError::Refused(format!("not a token response: {e}")))?;
    let secs = parsed.expires_in.unwrap_or(300).clamp(TOKEN_LIFETIME.0, TOKEN_LIFETIME.1);
    Ok((parsed.access_token, Duration::from_secs(secs)))
}

/// A SMART Backend Services client for one token endpoint.
pub struct SmartClient {
    token_url: String,
    client_id: String,
    scope: String,
    algorithm: Algorithm,
    key: EncodingKey,
    cached: Mutex<Option<(String, Instant)>>,
    /// Stamps the assertion's `iat` and `exp`, which the token endpoint checks against its clock.
    clock: SharedClock,
}

impl SmartClient {
    /// Loads the private key (PEM) for `algorithm` (`RS384` or `ES384`).
    pub fn new(
        token_url: &str,
        client_id: &str,
        scope: &str,
        algorithm: &str,
        key_file: &std::path::Path,
        clock: SharedClock,
    ) -> Result<SmartClient, SmartError> {
        let key_error = |why: String| SmartError::Key { path: key_file.display().to_string(), why };
        crate::secrets::check_private(key_file).map_err(|e| key_error(e.to_string()))?;
        let pem = std::fs::read(key_file).map_err(|e| key_error(e.to_string()))?;
        let (algorithm, key) = match algorithm {
            "RS384" => (Algorithm::RS384, EncodingKey::from_rsa_pem(&pem)),
            "ES384" => (Algorithm::ES384, EncodingKey::from_ec_pem(&pem)),
            other => return Err(key_error(format!("algorithm {other:?} is not RS384 or ES384"))),
        };
        Ok(SmartClient {
            token_url: token_url.into(),
            client_id: client_id.into(),
            scope: scope.into(),
            algorithm,
            key: key.map_err(|e| key_error(e.to_string()))?,
            cached: Mutex::new(None),
            clock,
        })
    }

    /// A valid access token: the cached one while it has time left, else a new one.
    pub async fn token(&self, http: &reqwest::Client) -> Result<String, SmartError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, refresh_at)) = cached.as_ref()
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let now = self.clock.now().timestamp();
        let claims = Claims {
            iss: &self.client_id,
            sub: &self.client_id,
            aud: &self.token_url,
            // At most five minutes ahead (SMART Backend Services).
            exp: now + 240,
            iat: now,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let assertion = jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.key)
            .map_err(|e| SmartError::Key { path: "(loaded key)".into(), why: e.to_string() })?;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            ("client_assertion", assertion.as_str()),
            ("scope", self.scope.as_str()),
        ];
        let response =
            http.post(&self.token_url).form(&form).send().await.map_err(|e| SmartError::Unreachable(e.to_string()))?;
        let status = response.status();
        let body = super::bounded_body(response, super::MAX_BODY).await.map_err(SmartError::Unreachable)?;
        let body = String::from_utf8_lossy(&body);
        if status.is_server_error() {
            return Err(SmartError::Unreachable(format!("HTTP {status}")));
        }
        if !status.is_success() {
            return Err(SmartError::Refused(format!("HTTP {status}: {body}")));
        }
        let (token, ttl) = token_response(body.as_bytes())?;
        // Renew a fifth of the lifetime early (1 s to 60 s), so a token never expires mid-request.
        let margin = (ttl / 5).clamp(Duration::from_secs(1), Duration::from_secs(60));
        *cached = Some((token.clone(), Instant::now() + ttl.saturating_sub(margin)));
        Ok(token)
    }

    /// Forgets the cached token (the server said it is no longer valid).
    pub async fn invalidate(&self) {
        *self.cached.lock().await = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_lifetime_is_taken_within_bounds() {
        let lifetime = |body: &str| token_response(body.as_bytes()).map(|(_, ttl)| ttl.as_secs());
        assert_eq!(lifetime(r#"{"access_token":"t","expires_in":3600}"#).unwrap(), 3600);
        assert_eq!(lifetime(r#"{"access_token":"t"}"#).unwrap(), 300, "none said: five minutes");
        assert_eq!(lifetime(r#"{"access_token":"t","expires_in":9223372036854775808}"#).unwrap(), 24 * 3600);
        assert_eq!(lifetime(r#"{"access_token":"t","expires_in":0}"#).unwrap(), 5);
        assert!(matches!(lifetime(r#"{"expires_in":60}"#), Err(SmartError::Refused(_))));
        assert!(matches!(lifetime(r#"{"access_token":"t","expires_in":-1}"#), Err(SmartError::Refused(_))));
    }
}
