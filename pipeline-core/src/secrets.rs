//! Secrets outside `vigil.toml`: from the environment or from files only their owner can read, and
//! files and folders Vigil creates readable by nobody else.
//!
//! Invariant: a secret file that its group or others may read is refused, never used: someone else
//! may already have it. Every file Vigil writes is 0600 and every folder 0700 ([`restrict_umask`]).

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a secret could not be had.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("the environment variable {0} is not set")]
    EnvMissing(String),
    /// The file cannot be read.
    #[error("cannot read the secret file {path}: {detail}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// The OS's words.
        detail: String,
    },
    /// Others than its owner may read the file.
    #[error(
        "the secret file {path} may be read by its group or others (mode {mode:o}): refused. \
         Fix: chmod 600 {path}, and replace the secret, as someone else may have it"
    )]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The file is empty.
    #[error("the secret file {0} is empty")]
    Empty(PathBuf),
    /// A reference that names no source.
    #[error("{0:?} names no secret source: write env:NAME or file:PATH")]
    BadReference(String),
}

/// Where a secret comes from, as `vigil.toml` names it: `env:NAME` or `file:PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SecretRef {
    /// An environment variable.
    Env(String),
    /// A file that only its owner may read (0600 or 0400).
    File(PathBuf),
}

impl TryFrom<String> for SecretRef {
    type Error = SecretError;

    fn try_from(text: String) -> Result<SecretRef, SecretError> {
        match text.split_once(':') {
            Some(("env", name)) if !name.trim().is_empty() => Ok(SecretRef::Env(name.trim().into())),
            Some(("file", path)) if !path.trim().is_empty() => Ok(SecretRef::File(path.trim().into())),
            _ => Err(SecretError::BadReference(text)),
        }
    }
}

impl From<SecretRef> for String {
    fn from(r: SecretRef) -> String {
        r.to_string()
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "env:{name}"),
            SecretRef::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl SecretRef {
    /// The secret, trimmed.
    pub fn resolve(&self) -> Result<String, SecretError> {
        match self {
            SecretRef::Env(name) => std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .map(|v| v.trim().to_string())
                .ok_or_else(|| SecretError::EnvMissing(name.clone())),
            SecretRef::File(path) => read_private(path),
        }
    }

    /// A file reference relative to the config's folder becomes absolute.
    pub fn resolve_paths(&mut self, base: &Path) {
        if let SecretRef::File(path) = self
            && path.is_relative()
        {
            *path = base.join(&*path);
        }
    }
}

/// Refuses a file that its group or others may read or write.
pub fn check_private(path: &Path) -> Result<(), SecretError> {
    let meta =
        std::fs::metadata(path).map_err(|e| SecretError::Unreadable { path: path.into(), detail: e.to_string() })?;
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretError::Exposed { path: path.into(), mode });
    }
    Ok(())
}

/// A secret file's text, trimmed; refused when its group or others may read it.
pub fn read_private(path: &Path) -> Result<String, SecretError> {
    check_private(path)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| SecretError::Unreadable { path: path.into(), detail: e.to_string() })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(SecretError::Empty(path.into()));
    }
    Ok(text.to_string())
}

/// Writes a file only its owner can read (0600), replacing what was there, and syncs it.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    // A file that existed keeps its mode through open(): set it.
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// From now on, files this process creates are 0600 and folders 0700: the database, its journal,
/// backups, exports and logs hold PHI or secrets.
pub fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_readable_file_is_refused_and_a_private_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        write_private(&path, "s3cret\n").unwrap();
        assert_eq!(read_private(&path).unwrap(), "s3cret");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_private(&path).unwrap_err();
        assert!(matches!(err, SecretError::Exposed { mode: 0o640, .. }), "{err}");
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn references_name_their_source() {
        assert_eq!(SecretRef::try_from("env:EHR_TOKEN".to_string()).unwrap(), SecretRef::Env("EHR_TOKEN".into()));
        assert_eq!(SecretRef::try_from("file:/etc/t".to_string()).unwrap(), SecretRef::File("/etc/t".into()));
        assert!(SecretRef::try_from("hunter2".to_string()).is_err());
        assert_eq!(SecretRef::Env("X".into()).to_string(), "env:X");
    }
}
