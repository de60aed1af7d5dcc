//! The hash-chained audit log, independent of the backend that keeps its rows.
//!
//! Invariant: each entry's hash covers the previous entry's hash and every field of its own,
//! length-prefixed, so changing, removing or reordering any entry breaks every hash after it. A
//! backend stores [`ChainLink`]s and appends with [`link`]; [`verify`] walks them in order.

use chrono::{DateTime, Utc};
use serde::Serialize;

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

/// The result of checking the audit chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AuditVerdict {
    /// Entries checked.
    pub entries: u64,
    /// The first entry whose hash or link does not match, if any: it, or one before it, was altered.
    pub first_broken: Option<i64>,
}

/// The hash of an entry that follows `prev`.
pub fn link(prev: &[u8], at_millis: i64, parts: [&str; 4]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(prev);
    h.update(&at_millis.to_be_bytes());
    for part in parts {
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    *h.finalize().as_bytes()
}

/// Walks the chain from the first entry; names the first link that does not match.
pub fn verify(chain: &[ChainLink]) -> AuditVerdict {
    let entries = chain.len() as u64;
    let mut prev: &[u8] = &GENESIS;
    for l in chain {
        let [a, b, c, d] = &l.parts;
        let expected = link(prev, l.at_millis, [a, b, c, d]);
        if l.prev_hash != prev || l.hash[..] != expected[..] {
            return AuditVerdict { entries, first_broken: Some(l.id) };
        }
        prev = &l.hash;
    }
    AuditVerdict { entries, first_broken: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<ChainLink> {
        let mut out: Vec<ChainLink> = Vec::new();
        for id in 1..=n {
            let prev = out.last().map_or(GENESIS.to_vec(), |l| l.hash.clone());
            let parts = ["ana".to_string(), "alarm.ack".into(), format!("alarm {id}"), "reseated".into()];
            let hash = link(&prev, id * 1000, ["ana", "alarm.ack", &parts[2], "reseated"]).to_vec();
            out.push(ChainLink { id, at_millis: id * 1000, parts, prev_hash: prev, hash });
        }
        out
    }

    #[test]
    fn an_intact_chain_verifies() {
        assert_eq!(verify(&chain(3)), AuditVerdict { entries: 3, first_broken: None });
    }

    #[test]
    fn an_altered_field_breaks_its_entry() {
        let mut c = chain(3);
        c[1].parts[3] = "nothing happened".into();
        assert_eq!(verify(&c).first_broken, Some(2));
    }

    #[test]
    fn a_removed_entry_breaks_the_next() {
        let mut c = chain(3);
        c.remove(1);
        assert_eq!(verify(&c).first_broken, Some(3));
    }
}
