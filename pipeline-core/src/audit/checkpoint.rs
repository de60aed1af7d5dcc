//! The sealed checkpoint of the audit chain's head: which entry was last, and its hash, sealed with
//! a keyed hash under the site's audit key. Written after every append (atomic rename) by whichever
//! process appended, and stored with every backup.
//!
//! Invariant: a checkpoint never moves backwards: a process that read an older head than the file
//! already holds leaves the file alone.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::AuditKey;

/// The context string of the seal's key, so the seal and the chain never share a hash.
const SEAL_CONTEXT: &str = "vigil 2026-12 audit checkpoint seal v1";

/// The head of the chain at a moment, sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last entry's id (entries are numbered from 1 with no gaps, so also how many there are).
    pub head_id: i64,
    /// The last entry's hash, hexadecimal.
    pub head_hash: String,
    /// When it was written.
    pub at: DateTime<Utc>,
    /// The keyed hash of the three fields above, hexadecimal.
    pub seal: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn seal_of(key: &AuditKey, head_id: i64, head_hash: &str, at: &DateTime<Utc>) -> String {
    let mut h = blake3::Hasher::new_keyed(&blake3::derive_key(SEAL_CONTEXT, key.bytes()));
    h.update(&head_id.to_be_bytes());
    h.update(head_hash.as_bytes());
    h.update(at.to_rfc3339().as_bytes());
    hex(h.finalize().as_bytes())
}

impl Checkpoint {
    /// A checkpoint of the entry `head_id` whose hash is `head_hash`, sealed under `key`.
    pub fn seal(key: &AuditKey, head_id: i64, head_hash: [u8; 32], at: DateTime<Utc>) -> Checkpoint {
        let head_hash = hex(&head_hash);
        let seal = seal_of(key, head_id, &head_hash, &at);
        Checkpoint { head_id, head_hash, at, seal }
    }

    /// Whether `key` sealed it, unaltered.
    pub fn sealed_by(&self, key: &AuditKey) -> bool {
        // Both sides are hex of a hash under a secret key: comparing them reveals nothing useful.
        seal_of(key, self.head_id, &self.head_hash, &self.at) == self.seal
    }

    /// Whether its head is the entry whose hash is `hash`.
    pub fn names_hash(&self, hash: &[u8]) -> bool {
        self.head_hash == hex(hash)
    }

    /// The checkpoint in `path`, if there is one.
    pub fn read(path: &Path) -> std::io::Result<Option<Checkpoint>> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes it to `path` by atomic rename (0600), unless the file already holds a later head.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        if let Ok(Some(held)) = Checkpoint::read(path)
            && held.head_id > self.head_id
        {
            return Ok(());
        }
        let tmp = path.with_extension(format!("checkpoint.{}.tmp", std::process::id()));
        crate::secrets::write_private(&tmp, &serde_json::to_string(self).map_err(std::io::Error::other)?)?;
        std::fs::rename(&tmp, path)
    }

    /// The line sent to the site's syslog: enough to compare with the file later.
    pub fn syslog_line(&self) -> String {
        format!(
            "vigil audit checkpoint head_id={} head_hash={} at={} seal={}",
            self.head_id,
            self.head_hash,
            self.at.to_rfc3339(),
            self.seal
        )
    }
}

/// Where a database's checkpoint lives: `audit.checkpoint` beside it.
pub fn path_for(database: &Path) -> PathBuf {
    database.with_file_name("audit.checkpoint")
}

/// Where a backup's checkpoint lives: `FILE.checkpoint`.
pub fn path_for_backup(backup: &Path) -> PathBuf {
    let mut name = backup.as_os_str().to_owned();
    name.push(".checkpoint");
    PathBuf::from(name)
}
