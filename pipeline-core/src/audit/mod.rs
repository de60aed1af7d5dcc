//! The keyed, hash-chained audit log, independent of the backend that keeps its rows.
//!
//! Invariant: each entry's hash is a BLAKE3 keyed hash, under the site's audit key (kept outside the
//! database, [`key`]), of the previous entry's hash and every field of its own, length-prefixed. So
//! changing, removing or reordering any entry breaks every hash after it, and someone with the
//! database but not the key cannot write a chain that verifies. The tail is covered by a sealed
//! [`checkpoint`] of the head, written after every append: cutting entries off the end no longer
//! leaves a shorter chain that verifies.

pub mod checkpoint;
pub mod export;
pub mod key;
pub mod syslog;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use checkpoint::Checkpoint;
pub use key::AuditKey;

/// The `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// One entry, as shown to operators.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    /// Its position in the chain.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// Who (an operator, or `outbox`/`system`).
    pub actor: String,
    /// What, e.g. `pairing.open`, `ehr.deliver`.
    pub action: String,
    /// On what.
    pub subject: String,
    /// Details (store keys, never identifiers).
    pub detail: String,
}

/// An entry as the backend stores it: its fields, in milliseconds, with both hashes.
#[derive(Debug, Clone)]
pub struct ChainLink {
    /// Its position in the chain.
    pub id: i64,
    /// When, in milliseconds since the epoch (what the hash covers).
    pub at_millis: i64,
    /// Actor, action, subject and detail, in that order.
    pub parts: [String; 4],
    /// The previous entry's hash as recorded.
    pub prev_hash: Vec<u8>,
    /// This entry's hash as recorded.
    pub hash: Vec<u8>,
}

/// The result of checking the audit chain against the key and the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditVerdict {
    /// Entries checked.
    pub entries: u64,
    /// The first entry that is wrong or missing, if any.
    pub first_broken: Option<i64>,
    /// What is wrong, in words, when something is.
    pub problem: Option<String>,
    /// The checkpoint compared with, if there was one.
    pub checkpoint: Option<Checkpoint>,
}

impl AuditVerdict {
    /// Whether the chain verified against the key and the checkpoint.
    pub fn intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// The hash of an entry that follows `prev`, under the site's key.
pub fn link(key: &AuditKey, prev: &[u8], at_millis: i64, parts: [&str; 4]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_keyed(key.bytes());
    h.update(prev);
    h.update(&at_millis.to_be_bytes());
    for part in parts {
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    *h.finalize().as_bytes()
}

/// Walks the chain from the first entry, then compares its head with the checkpoint; names the
/// first entry that does not match or is missing.
pub fn verify(key: &AuditKey, chain: &[ChainLink], checkpoint: Option<&Checkpoint>) -> AuditVerdict {
    let entries = chain.len() as u64;
    let verdict = |first_broken: Option<i64>, problem: Option<String>| AuditVerdict {
        entries,
        first_broken,
        problem,
        checkpoint: checkpoint.cloned(),
    };
    let mut prev: &[u8] = &GENESIS;
    for (expected_id, l) in (1..).zip(chain) {
        if l.id != expected_id {
            return verdict(
                Some(expected_id),
                Some(format!(
                    "entry {expected_id} is missing: the chain goes from entry {} to entry {}",
                    expected_id - 1,
                    l.id
                )),
            );
        }
        let [a, b, c, d] = &l.parts;
        let expected = link(key, prev, l.at_millis, [a, b, c, d]);
        if l.prev_hash != prev || l.hash[..] != expected[..] {
            return verdict(
                Some(l.id),
                Some(format!(
                    "entry {} does not match its keyed hash: it, or the entry before it, was altered or removed, \
                     or the chain was written without the site's audit key",
                    l.id
                )),
            );
        }
        prev = &l.hash;
    }
    let Some(cp) = checkpoint else {
        return match chain.last() {
            None => verdict(None, None),
            Some(_) => verdict(
                None,
                Some("there is no audit checkpoint: entries cut from the end could not be noticed".into()),
            ),
        };
    };
    if !cp.sealed_by(key) {
        return verdict(
            None,
            Some("the audit checkpoint's seal does not match the site's audit key: it was altered".into()),
        );
    }
    let last = chain.last().map_or(0, |l| l.id);
    if last < cp.head_id {
        return verdict(
            Some(last + 1),
            Some(format!(
                "entries {} to {} are missing: the chain ends at entry {last}, but the checkpoint of {} records entry {}",
                last + 1,
                cp.head_id,
                cp.at.to_rfc3339(),
                cp.head_id
            )),
        );
    }
    match chain.iter().find(|l| l.id == cp.head_id) {
        Some(head) if !cp.names_hash(&head.hash) => verdict(
            Some(cp.head_id),
            Some(format!("entry {} is not the one the checkpoint of {} sealed", cp.head_id, cp.at.to_rfc3339())),
        ),
        _ => verdict(None, None),
    }
}

#[cfg(test)]
mod tests;
