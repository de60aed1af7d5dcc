//! The alert circuit's own durable queue: pages not yet delivered, and alarms whose escalation is
//! still pending, survive a restart (and a Settings save) without the main store.
//!
//! Invariant: a slot that holds a page still owed to someone is never overwritten. The ring file is
//! preallocated with real zeros (not a sparse file), so a full disk cannot stop a page from being
//! kept: every write lands on blocks the file already owns. When every slot is taken, or the file
//! cannot be written, the page leaves from memory and the circuit says so on the board.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Notice;

/// A page as the queue keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kept {
    /// What was (or is to be) sent.
    pub notice: Notice,
    /// When it escalates if nobody acknowledges it (wall time: it must mean the same after a restart).
    pub escalate_at: Option<DateTime<Utc>>,
    /// Whether some sink is still owed this page.
    pub undelivered: bool,
}

impl Kept {
    /// Whether the page still needs its slot.
    pub fn owed(&self) -> bool {
        self.undelivered || self.escalate_at.is_some()
    }
}

/// Where a kept page lives.
pub type Slot = usize;

/// Why a page could not be kept durably (it then leaves from memory).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Every slot holds a page still owed.
    #[error("the alert queue is full ({0} pages owed)")]
    Full(usize),
    /// The page does not fit a slot.
    #[error("a page of {0} bytes does not fit a slot")]
    TooLarge(usize),
    /// The file could not be read or written.
    #[error("alert queue file {path}: {source}")]
    Io {
        /// Which file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// Keeps pages until they are no longer owed. One writer (the circuit); a shared backend for
/// several workstations can come later behind the same trait.
pub trait AlertQueue: Send {
    /// Keeps a new page.
    fn put(&mut self, page: &Kept) -> Result<Slot, QueueError>;
    /// Rewrites a kept page (delivered, escalated); frees its slot once nothing is owed.
    fn update(&mut self, slot: Slot, page: &Kept) -> Result<(), QueueError>;
    /// Every page kept, oldest first (read once, at start).
    fn kept(&mut self) -> Result<Vec<(Slot, Kept)>, QueueError>;
    /// Slots in use, and in all.
    fn usage(&self) -> (usize, usize);
}

/// A fixed-size ring file of equal slots. A slot is a 32-byte header (magic, sequence, length,
/// checksum) and the page as JSON; a torn write fails its checksum and reads as free.
pub struct RingFile {
    path: PathBuf,
    file: File,
    used: Vec<bool>,
    seq: u64,
    next: Slot,
}

const MAGIC: &[u8; 8] = b"VIGILAQ1";
const HEADER: usize = 32;
/// Bytes per slot: a page is well under 1 KiB of JSON.
pub const SLOT_BYTES: usize = 4096;
/// Slots in a ring: 1 MiB on disk.
pub const SLOTS: usize = 256;

impl RingFile {
    /// Opens the ring at `path`, creating and preallocating it when missing.
    pub fn open(path: &Path) -> Result<RingFile, QueueError> {
        let io_err = |source| QueueError::Io { path: path.to_path_buf(), source };
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).map_err(io_err)?;
        let size = (SLOTS * SLOT_BYTES) as u64;
        if file.metadata().map_err(io_err)?.len() < size {
            // Real zeros, so the blocks are ours before the disk can fill.
            file.write_all_at(&vec![0; SLOTS * SLOT_BYTES], 0).map_err(io_err)?;
            file.sync_all().map_err(io_err)?;
        }
        Ok(RingFile { path: path.to_path_buf(), file, used: vec![false; SLOTS], seq: 0, next: 0 })
    }

    fn io(&self, source: io::Error) -> QueueError {
        QueueError::Io { path: self.path.clone(), source }
    }

    fn write_slot(&mut self, slot: Slot, page: &Kept) -> Result<(), QueueError> {
        let body = serde_json::to_vec(page).map_err(|e| self.io(io::Error::other(e)))?;
        if body.len() > SLOT_BYTES - HEADER {
            return Err(QueueError::TooLarge(body.len()));
        }
        self.seq += 1;
        let mut buf = vec![0u8; HEADER + body.len()];
        buf[..8].copy_from_slice(MAGIC);
        buf[8..16].copy_from_slice(&self.seq.to_le_bytes());
        buf[16..20].copy_from_slice(&(body.len() as u32).to_le_bytes());
        buf[20..28].copy_from_slice(&blake3::hash(&body).as_bytes()[..8]);
        buf[HEADER..].copy_from_slice(&body);
        self.file.write_all_at(&buf, (slot * SLOT_BYTES) as u64).map_err(|e| self.io(e))?;
        self.file.sync_data().map_err(|e| self.io(e))
    }

    fn free(&mut self, slot: Slot) -> Result<(), QueueError> {
        self.file.write_all_at(&[0; HEADER], (slot * SLOT_BYTES) as u64).map_err(|e| self.io(e))?;
        self.file.sync_data().map_err(|e| self.io(e))?;
        self.used[slot] = false;
        Ok(())
    }

    fn read_slot(&self, slot: Slot) -> Result<Option<(u64, Kept)>, QueueError> {
        let mut buf = vec![0u8; SLOT_BYTES];
        self.file.read_exact_at(&mut buf, (slot * SLOT_BYTES) as u64).map_err(|e| self.io(e))?;
        if &buf[..8] != MAGIC {
            return Ok(None);
        }
        let seq = u64::from_le_bytes(buf[8..16].try_into().unwrap_or_default());
        let len = u32::from_le_bytes(buf[16..20].try_into().unwrap_or_default()) as usize;
        let Some(body) = buf.get(HEADER..HEADER + len) else { return Ok(None) };
        if blake3::hash(body).as_bytes()[..8] != buf[20..28] {
            tracing::warn!(slot, "alert queue slot failed its checksum (a torn write); read as free");
            return Ok(None);
        }
        Ok(serde_json::from_slice(body).ok().map(|kept| (seq, kept)))
    }
}

impl AlertQueue for RingFile {
    fn put(&mut self, page: &Kept) -> Result<Slot, QueueError> {
        let Some(slot) = (0..SLOTS).map(|i| (self.next + i) % SLOTS).find(|s| !self.used[*s]) else {
            return Err(QueueError::Full(SLOTS));
        };
        self.write_slot(slot, page)?;
        self.used[slot] = true;
        self.next = (slot + 1) % SLOTS;
        Ok(slot)
    }

    fn update(&mut self, slot: Slot, page: &Kept) -> Result<(), QueueError> {
        if page.owed() { self.write_slot(slot, page) } else { self.free(slot) }
    }

    fn kept(&mut self) -> Result<Vec<(Slot, Kept)>, QueueError> {
        let mut kept = Vec::new();
        for slot in 0..SLOTS {
            if let Some((seq, page)) = self.read_slot(slot)? {
                self.used[slot] = true;
                self.seq = self.seq.max(seq);
                kept.push((seq, slot, page));
            }
        }
        kept.sort_by_key(|(seq, _, _)| *seq);
        Ok(kept.into_iter().map(|(_, slot, page)| (slot, page)).collect())
    }

    fn usage(&self) -> (usize, usize) {
        (self.used.iter().filter(|u| **u).count(), SLOTS)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::alerts::component_alarm;
    use crate::model::alarm::Priority;

    fn page(n: usize) -> Kept {
        let at = Utc.with_ymd_and_hms(2026, 12, 2, 8, 0, 0).unwrap();
        let f = component_alarm("spo2-low", &format!("OX-{n}"), "SpO2 low", Priority::High, at);
        Kept { notice: Notice::of(&f, at), escalate_at: Some(at), undelivered: true }
    }

    #[test]
    fn kept_pages_survive_a_reopen_in_order_and_delivered_ones_free_their_slot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.ring");
        let mut ring = RingFile::open(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), (SLOTS * SLOT_BYTES) as u64, "preallocated");
        let slots: Vec<Slot> = (0..3).map(|n| ring.put(&page(n)).unwrap()).collect();
        let mut done = page(1);
        (done.undelivered, done.escalate_at) = (false, None);
        ring.update(slots[1], &done).unwrap();
        let mut delivered = page(2);
        delivered.undelivered = false;
        ring.update(slots[2], &delivered).unwrap();
        drop(ring);

        let mut ring = RingFile::open(&path).unwrap();
        let kept = ring.kept().unwrap();
        let devices: Vec<(&str, bool)> =
            kept.iter().map(|(_, k)| (k.notice.device_id.as_str(), k.undelivered)).collect();
        assert_eq!(devices, [("OX-0", true), ("OX-2", false)]);
        assert_eq!(ring.usage(), (2, SLOTS));
        // New pages never take an owed slot.
        let next = ring.put(&page(9)).unwrap();
        assert!(!kept.iter().any(|(s, _)| *s == next));
    }

    #[test]
    fn a_full_ring_refuses_rather_than_overwrite_and_a_torn_slot_reads_as_free() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.ring");
        let mut ring = RingFile::open(&path).unwrap();
        for n in 0..SLOTS {
            ring.put(&page(n)).unwrap();
        }
        assert!(matches!(ring.put(&page(999)), Err(QueueError::Full(_))));
        drop(ring);
        // Corrupt the body of slot 0, as a write torn by a power cut would.
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"garbage", (HEADER + 10) as u64).unwrap();
        let mut ring = RingFile::open(&path).unwrap();
        assert_eq!(ring.kept().unwrap().len(), SLOTS - 1);
        assert!(ring.put(&page(1000)).is_ok(), "the torn slot is free again");
    }
}
