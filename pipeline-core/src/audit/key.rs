//! The site's audit key: 32 random bytes in `audit.key` beside the database, made at first start.
//!
//! It is kept outside the database on purpose: a copied database, or another OS user who can read
//! the database but not this 0600 file, cannot write a chain or a checkpoint that verifies.

use std::path::{Path, PathBuf};

use rand::RngCore;

use crate::secrets::{self, SecretError};

/// The key the chain and the checkpoint are hashed under.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditKey([u8; 32]);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

impl AuditKey {
    /// A key of these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> AuditKey {
        AuditKey(bytes)
    }

    /// A new random key (an in-memory store's, which keeps no file).
    pub fn random() -> AuditKey {
        let mut bytes = [0; 32];
        rand::rng().fill_bytes(&mut bytes);
        AuditKey(bytes)
    }

    /// The bytes, for the keyed hash.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key in `path`, made (0600) when the file does not exist yet; refused when others may
    /// read it or it is not a key.
    pub fn load_or_create(path: &Path) -> Result<AuditKey, SecretError> {
        if !path.exists() {
            let key = AuditKey::random();
            let hex: String = key.0.iter().map(|b| format!("{b:02x}")).collect();
            secrets::write_private(path, &hex)
                .map_err(|e| SecretError::Unreadable { path: path.into(), detail: e.to_string() })?;
            return Ok(key);
        }
        let text = secrets::read_private(path)?;
        let bytes: Option<Vec<u8>> = (text.len() == 64)
            .then(|| (0..32).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()).collect())
            .flatten();
        let bytes = bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()).ok_or_else(|| SecretError::Unreadable {
            path: path.into(),
            detail: "it does not hold a key (64 hexadecimal digits)".into(),
        })?;
        Ok(AuditKey(bytes))
    }
}

/// Where a database's audit key lives: `audit.key` beside it.
pub fn key_path(database: &Path) -> PathBuf {
    database.with_file_name("audit.key")
}
