//! The pairing rules every store applies before it opens a pairing.
//!
//! Invariant: a device is paired with at most one patient at any instant, so a reading's patient is
//! never a guess. A new pairing may not overlap another of the same device; the one exception is the
//! open pairing of another patient that started by the new start, which is ended there when the
//! operator confirms the replacement by naming that patient. Patients are named by store key only.

use chrono::{DateTime, SecondsFormat, Utc};

use super::PairingRecord;

/// A pairing an operator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewPairing<'a> {
    /// The device.
    pub device_id: &'a str,
    /// The patient's store key.
    pub patient_id: i64,
    /// Start of the period (inclusive).
    pub from: DateTime<Utc>,
    /// End of the period (exclusive); `None` for open-ended.
    pub until: Option<DateTime<Utc>>,
    /// Why the pairing starts in the past; its audit entry keeps it.
    pub reason: Option<&'a str>,
    /// The store key of the patient whose open pairing of the device the operator confirmed ending
    /// at `from`: naming them makes a re-pairing deliberate.
    pub replacing: Option<i64>,
}

/// Why a new pairing cannot be opened as asked: what is in the way, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairingConflict {
    /// The device is already paired with the same patient over part of the period.
    #[error(
        "device {device_id} is already paired with patient {} ({}): unpair it first, or choose a period that does \
         not overlap it",
        existing.patient_id,
        span(existing)
    )]
    AlreadyPaired {
        /// The device.
        device_id: String,
        /// The pairing in the way.
        existing: PairingRecord,
    },
    /// The device is paired with another patient, open-ended, since before the new start.
    #[error(
        "device {device_id} is already paired with patient {} ({}): unpair it first, or confirm the replacement \
         naming both patients (patient {} replaced by patient {patient_id})",
        existing.patient_id,
        span(existing),
        existing.patient_id
    )]
    PairedWithAnother {
        /// The device.
        device_id: String,
        /// The patient asked for.
        patient_id: i64,
        /// The open pairing that a confirmation would end.
        existing: PairingRecord,
    },
    /// Another patient's pairing of the device overlaps the period and cannot be ended at its start
    /// (it has an end already, or starts later).
    #[error(
        "device {device_id} is paired with patient {} over part of that period ({}): a device is paired with one \
         patient at a time, so choose a period that does not overlap it",
        existing.patient_id,
        span(existing)
    )]
    Overlaps {
        /// The device.
        device_id: String,
        /// The pairing in the way.
        existing: PairingRecord,
    },
    /// The operator confirmed replacing a patient whose open pairing the new one does not meet.
    #[error("{}", not_paired_with(device_id, *confirmed, existing.as_ref()))]
    NotPairedWith {
        /// The device.
        device_id: String,
        /// The patient the operator named as replaced.
        confirmed: i64,
        /// The pairing the device has over the period instead, if any.
        existing: Option<PairingRecord>,
    },
}

impl NewPairing<'_> {
    /// Checks the new pairing against the device's pairings. Returns the open pairing to end at
    /// `from` when the operator confirmed replacing its patient, or why the pairing cannot be made.
    pub fn check(&self, existing: &[PairingRecord]) -> Result<Option<PairingRecord>, PairingConflict> {
        let device_id = self.device_id.to_string();
        let mut overlapping: Vec<&PairingRecord> = existing.iter().filter(|p| self.overlaps(p)).collect();
        overlapping.sort_by_key(|p| p.valid_from);
        let mut replaced = None;
        for p in overlapping {
            let existing = p.clone();
            if p.patient_id == self.patient_id {
                return Err(PairingConflict::AlreadyPaired { device_id, existing });
            }
            // Only an open pairing that started by `from` can end there and leave no overlap.
            let replaceable = p.valid_to.is_none() && p.valid_from <= self.from;
            match self.replacing {
                _ if !replaceable => return Err(PairingConflict::Overlaps { device_id, existing }),
                Some(confirmed) if confirmed == p.patient_id => replaced = Some(existing),
                Some(confirmed) => {
                    return Err(PairingConflict::NotPairedWith { device_id, confirmed, existing: Some(existing) });
                }
                None => {
                    return Err(PairingConflict::PairedWithAnother {
                        device_id,
                        patient_id: self.patient_id,
                        existing,
                    });
                }
            }
        }
        match self.replacing {
            Some(confirmed) if replaced.is_none() => {
                Err(PairingConflict::NotPairedWith { device_id, confirmed, existing: None })
            }
            _ => Ok(replaced),
        }
    }

    /// Whether the new period shares an instant with `p`'s (an empty period shares none).
    fn overlaps(&self, p: &PairingRecord) -> bool {
        let start = self.from.max(p.valid_from);
        let end = match (self.until, p.valid_to) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        end.is_none_or(|end| start < end)
    }
}

/// A pairing as an operator reads it: its key and period.
fn span(p: &PairingRecord) -> String {
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    match p.valid_to {
        None => format!("pairing {}, since {}", p.id, at(p.valid_from)),
        Some(end) => format!("pairing {}, from {} until {}", p.id, at(p.valid_from), at(end)),
    }
}

fn not_paired_with(device_id: &str, confirmed: i64, existing: Option<&PairingRecord>) -> String {
    match existing {
        Some(p) => format!(
            "device {device_id} is paired with patient {} ({}), not with patient {confirmed} named as replaced: \
             nothing was changed; check which device this is and whom it is on",
            p.patient_id,
            span(p)
        ),
        None => format!(
            "device {device_id} has no open pairing with patient {confirmed} to replace: nothing was changed; check \
             which device this is, or pair it without confirming a replacement"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hour: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&format!("2026-12-02T{hour:02}:00:00Z")).unwrap().with_timezone(&Utc)
    }

    fn pairing(id: i64, patient_id: i64, from: u32, to: Option<u32>) -> PairingRecord {
        PairingRecord { id, patient_id, valid_from: at(from), valid_to: to.map(at) }
    }

    fn new(patient_id: i64, from: u32, until: Option<u32>, replacing: Option<i64>) -> NewPairing<'static> {
        NewPairing { device_id: "OX-1", patient_id, from: at(from), until: until.map(at), reason: None, replacing }
    }

    #[test]
    fn a_pairing_beside_others_is_made() {
        let existing = [pairing(1, 3, 2, Some(4)), pairing(2, 5, 8, Some(10))];
        assert_eq!(new(4, 4, Some(8), None).check(&existing), Ok(None), "touching ends do not overlap");
        assert_eq!(new(4, 10, None, None).check(&existing), Ok(None));
        assert_eq!(new(4, 0, Some(2), None).check(&existing), Ok(None));
        // An empty period (unpaired at its own start) is in nobody's way.
        assert_eq!(new(4, 5, None, None).check(&[pairing(3, 5, 6, Some(6))]), Ok(None));
    }

    #[test]
    fn the_same_patient_over_the_period_is_already_paired() {
        let open = pairing(7, 3, 6, None);
        let refused = new(3, 8, None, None).check(std::slice::from_ref(&open)).unwrap_err();
        assert_eq!(refused, PairingConflict::AlreadyPaired { device_id: "OX-1".into(), existing: open });
        assert_eq!(
            refused.to_string(),
            "device OX-1 is already paired with patient 3 (pairing 7, since 2026-12-02T06:00:00Z): unpair it first, \
             or choose a period that does not overlap it"
        );
        // Naming the same patient as replaced changes nothing.
        let closed = pairing(8, 3, 2, Some(5));
        assert!(matches!(
            new(3, 4, Some(6), Some(3)).check(&[closed]),
            Err(PairingConflict::AlreadyPaired { existing, .. }) if existing.id == 8
        ));
    }

    #[test]
    fn another_patients_open_pairing_is_replaced_only_when_confirmed_by_name() {
        let open = pairing(7, 3, 6, None);
        let refused = new(4, 8, None, None).check(std::slice::from_ref(&open)).unwrap_err();
        assert!(matches!(refused, PairingConflict::PairedWithAnother { patient_id: 4, .. }), "{refused:?}");
        let text = refused.to_string();
        assert!(text.contains("patient 3 replaced by patient 4") && text.contains("pairing 7"), "{text}");
        assert_eq!(new(4, 8, None, Some(3)).check(std::slice::from_ref(&open)), Ok(Some(open.clone())));
        assert_eq!(new(4, 6, Some(9), Some(3)).check(std::slice::from_ref(&open)), Ok(Some(open.clone())));
        // Naming the wrong patient is refused, naming the right one.
        let wrong = new(4, 8, None, Some(5)).check(std::slice::from_ref(&open)).unwrap_err();
        assert!(wrong.to_string().contains("paired with patient 3 (pairing 7"), "{wrong}");
        assert!(wrong.to_string().contains("not with patient 5"), "{wrong}");
    }

    #[test]
    fn what_cannot_end_at_the_new_start_is_an_overlap_even_when_confirmed() {
        // Another patient's open pairing that starts after the new start.
        let later = pairing(7, 3, 6, None);
        assert!(matches!(new(4, 5, None, Some(3)).check(&[later]), Err(PairingConflict::Overlaps { .. })));
        // A pairing made for a period, or closed.
        let period = pairing(8, 3, 2, Some(10));
        let refused = new(4, 5, None, Some(3)).check(&[period]).unwrap_err();
        assert!(matches!(refused, PairingConflict::Overlaps { .. }), "{refused:?}");
        assert!(refused.to_string().contains("from 2026-12-02T02:00:00Z until 2026-12-02T10:00:00Z"), "{refused}");
        // A closed pairing in the way of a replacement that would otherwise be allowed.
        let existing = [pairing(1, 5, 1, Some(5)), pairing(2, 3, 5, None)];
        assert!(matches!(
            new(4, 4, None, Some(3)).check(&existing),
            Err(PairingConflict::Overlaps { existing, .. }) if existing.id == 1
        ));
    }

    #[test]
    fn confirming_a_replacement_where_there_is_none_is_refused() {
        let refused = new(4, 8, None, Some(3)).check(&[pairing(1, 3, 2, Some(5))]).unwrap_err();
        assert_eq!(refused, PairingConflict::NotPairedWith { device_id: "OX-1".into(), confirmed: 3, existing: None });
        assert!(refused.to_string().contains("no open pairing with patient 3"), "{refused}");
    }
}
