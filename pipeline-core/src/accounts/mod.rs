//! Operator accounts: names, roles, argon2 passwords, sign-in backoff and session tokens.
//!
//! Invariant: the store keeps only an argon2 PHC string per password and the BLAKE3 hash of each
//! session token; a token is shown once. At most [`MAX_CONCURRENT_VERIFICATIONS`] argon2
//! computations run at once, on blocking threads, so a flood of sign-ins cannot take the CPU the
//! alarm path runs on.

pub mod roles;

use std::sync::LazyLock;
use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;
use tokio::sync::Semaphore;

pub use roles::{Action, Role, permissions_markdown};

/// argon2 computations at once, across the process.
pub const MAX_CONCURRENT_VERIFICATIONS: usize = 2;

/// Failed sign-ins in a row before the account waits between attempts.
pub const FREE_FAILURES: u32 = 3;

/// The longest wait after failed sign-ins.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// A password's shortest length.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// The built-in account the demo signs in automatically; its password is its name.
pub const DEMO_ACCOUNT: &str = "demo";

static ARGON2_SLOTS: LazyLock<Semaphore> = LazyLock::new(|| Semaphore::new(MAX_CONCURRENT_VERIFICATIONS));

/// An account as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRecord {
    /// Its name, as the audit log records it.
    pub name: String,
    /// Its argon2 PHC string.
    pub password_hash: String,
    /// Its roles.
    pub roles: Vec<Role>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Failed sign-ins since the last success.
    pub failures: u32,
    /// No sign-in is tried before this.
    pub retry_after: Option<DateTime<Utc>>,
}

/// An account as operators see it: no hash.
#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    /// Its name.
    pub name: String,
    /// Its roles.
    pub roles: Vec<Role>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// Failed sign-ins since the last success.
    pub failures: u32,
}

impl From<&AccountRecord> for AccountView {
    fn from(a: &AccountRecord) -> AccountView {
        AccountView { name: a.name.clone(), roles: a.roles.clone(), created_at: a.created_at, failures: a.failures }
    }
}

/// What kind of session a token opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A token made by `vigil accounts token` for scripts: the account's roles, live.
    Token,
    /// An emergency admin session of the OS user that owns the data directory.
    BreakGlass,
}

impl SessionKind {
    /// How the store writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionKind::Token => "token",
            SessionKind::BreakGlass => "break_glass",
        }
    }

    /// The kind the store wrote.
    pub fn parse(text: &str) -> Option<SessionKind> {
        [SessionKind::Token, SessionKind::BreakGlass].into_iter().find(|k| k.as_str() == text)
    }
}

/// A session as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// The account (for break-glass, `break-glass:OSUSER`).
    pub account: String,
    /// Its kind.
    pub kind: SessionKind,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// Checks an account's name: 1 to 64 of `a-z A-Z 0-9 . _ -` (it appears in the audit log).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok { Ok(()) } else { Err(format!("an account name is 1 to 64 of a-z A-Z 0-9 . _ - (got {name:?})")) }
}

/// Checks a new password: at least [`MIN_PASSWORD_CHARS`] characters.
pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("a password needs at least {MIN_PASSWORD_CHARS} characters"));
    }
    Ok(())
}

/// Hashes a password with argon2id (a random salt), off the async threads.
pub async fn hash_password(password: &str) -> Result<String, String> {
    let password = password.to_string();
    let _slot = ARGON2_SLOTS.acquire().await.map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        rand::rng().fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Whether `password` matches the PHC string, off the async threads. A `None` hash (no such
/// account) is checked against a dummy, so a wrong name costs as long as a wrong password.
pub async fn verify_password(password: &str, phc: Option<&str>) -> bool {
    static DUMMY: LazyLock<String> = LazyLock::new(|| {
        let salt = SaltString::encode_b64(&[0u8; 16]).expect("a fixed salt encodes");
        Argon2::default().hash_password(b"no such account", &salt).expect("argon2 hashes").to_string()
    });
    let known = phc.is_some();
    let phc = phc.map_or_else(|| DUMMY.clone(), str::to_string);
    let password = password.to_string();
    let Ok(_slot) = ARGON2_SLOTS.acquire().await else { return false };
    let matched = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
    })
    .await
    .unwrap_or(false);
    known && matched
}

/// How long an account waits before its next sign-in after `failures` failed ones in a row:
/// nothing for the first few, then doubling from 2 s to [`MAX_BACKOFF`].
pub fn backoff(failures: u32) -> Option<Duration> {
    let over = failures.checked_sub(FREE_FAILURES)?;
    Some(Duration::from_secs(2u64.saturating_pow(over + 1)).min(MAX_BACKOFF))
}

/// A new session token (shown once) and the hash the store keeps.
pub fn new_token() -> (String, [u8; 32]) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = format!("vgt_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let hash = token_hash(&token);
    (token, hash)
}

/// The hash the store keeps of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.trim().as_bytes()).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_verifies_against_its_hash_and_nothing_else() {
        let phc = hash_password("correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", Some(&phc)).await);
        assert!(!verify_password("wrong horse battery", Some(&phc)).await);
        assert!(!verify_password("no such account", None).await);
    }

    #[test]
    fn backoff_starts_after_the_free_failures_and_is_capped() {
        assert_eq!(backoff(2), None);
        assert_eq!(backoff(3), Some(Duration::from_secs(2)));
        assert_eq!(backoff(4), Some(Duration::from_secs(4)));
        assert_eq!(backoff(40), Some(MAX_BACKOFF));
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_name("nurse-ann").is_ok());
        assert!(check_name("nurse ann").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("twelve chars").is_ok());
    }
}
