//! Escalations waiting for their time, on monotonic time: a wall-clock jump neither escalates an
//! alarm early nor lifts a silence. A silence's end is stored as wall-clock time (it survives a
//! restart) and turned into a monotonic deadline once, when the circuit first sees it.
//!
//! What operators did comes from the [`AlarmView`]; what the rules cleared comes straight from them.
//! An alarm the view does not know counts as open: an escalation is never lost for want of a row.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use super::Notice;
use super::ledger::{AlarmView, Handling};
use super::queue::Slot;
use crate::clock::Now;

/// An escalation waiting: the page it escalates, when, and the queue slot that keeps it.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The page that escalates if nobody acknowledges it.
    pub notice: Notice,
    /// When it is due.
    pub due: Instant,
    /// Where the queue keeps it, if it does.
    pub slot: Option<Slot>,
}

/// An escalation that ended: escalated (with the page to send), or made moot.
#[derive(Debug)]
pub struct Ended {
    /// The escalation that ended.
    pub pending: Pending,
    /// The escalated page, when nobody acknowledged in time.
    pub escalated: Option<Notice>,
}

/// The pending escalations.
#[derive(Default)]
pub struct Escalations {
    pending: HashMap<String, Pending>,
    silences: HashMap<(String, DateTime<Utc>), Instant>,
}

impl Escalations {
    /// Watches a page that escalates at `at` (wall time) if not acknowledged.
    pub fn watch(&mut self, notice: &Notice, at: DateTime<Utc>, slot: Option<Slot>, now: Now) {
        let pending = Pending { notice: notice.clone(), due: deadline(at, now), slot };
        self.pending.insert(notice.alarm_key.clone(), pending);
    }

    /// How many wait.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// The condition cleared: its escalation is moot.
    pub fn cleared(&mut self, key: &str) -> Option<Pending> {
        self.pending.remove(key)
    }

    /// Ends the escalations that are due, or moot because the alarm was acknowledged or cleared. A
    /// silenced alarm's escalation waits until its silence ends.
    pub fn due(&mut self, view: &AlarmView, now: Now) -> Vec<Ended> {
        for (key, handling) in view.iter() {
            if let Handling::Open { silenced_until: Some(until) } = handling {
                self.silences.entry((key.clone(), *until)).or_insert_with(|| deadline(*until, now));
            }
        }
        self.silences.retain(|(key, _), _| matches!(view.get(key), Some(Handling::Open { .. })));
        let keys: Vec<String> = self.pending.keys().cloned().collect();
        let mut out = Vec::new();
        for key in keys {
            let handling = view.get(&key).copied().unwrap_or(Handling::Open { silenced_until: None });
            let silence = match handling {
                Handling::Acknowledged | Handling::Cleared => {
                    if let Some(pending) = self.pending.remove(&key) {
                        out.push(Ended { pending, escalated: None });
                    }
                    continue;
                }
                Handling::Open { silenced_until } => {
                    silenced_until.and_then(|until| self.silences.get(&(key.clone(), until)).copied())
                }
            };
            let Some(p) = self.pending.get_mut(&key) else { continue };
            if p.due > now.mono {
                continue;
            }
            match silence {
                Some(ends) if ends > now.mono => p.due = ends,
                _ => {
                    let Some(pending) = self.pending.remove(&key) else { continue };
                    let mut n = pending.notice.clone();
                    n.escalated = true;
                    n.priority = n.priority.raised();
                    n.page_id = Notice::page_id(&n.alarm_key, 1);
                    tracing::warn!(rule = %n.rule_id, device = ?n.device_id, "alarm not acknowledged in time; escalating");
                    out.push(Ended { pending, escalated: Some(n) });
                }
            }
        }
        out
    }
}

/// The monotonic deadline of a wall-clock time, read against `now` once.
pub fn deadline(at: DateTime<Utc>, now: Now) -> Instant {
    match (at - now.wall).to_std() {
        Ok(ahead) => now.mono + ahead,
        Err(_) => now.mono,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::TimeZone;

    use super::*;
    use crate::alerts::component_alarm;
    use crate::alerts::ledger::view_of;
    use crate::clock::TokioClock;
    use crate::model::alarm::Priority;
    use crate::store::AlarmStore;
    use crate::store::fake::FakeStore;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 2, 8, 0, 0).unwrap()
    }

    async fn raised(store: &FakeStore, rule: &str) -> (i64, Notice) {
        let f = component_alarm(rule, "OX-1", "SpO2 low", Priority::Medium, t0());
        let id = store.raise_alarm(&f).await.unwrap().unwrap();
        (id, Notice::of(&f, t0()))
    }

    async fn view(store: &FakeStore) -> AlarmView {
        Arc::new(view_of(&store.alarms(false, 100).await.unwrap()))
    }

    #[tokio::test(start_paused = true)]
    async fn unacknowledged_alarms_escalate_once_silenced_ones_wait_acknowledged_ones_never() {
        for jump in [chrono::Duration::zero(), chrono::Duration::hours(1), chrono::Duration::hours(-1)] {
            let store = FakeStore::new(TokioClock::starting_at(t0()));
            let mut escalations = Escalations::default();
            let start: Now = t0().into();
            let (_, plain) = raised(&store, "plain").await;
            let (silenced, quiet) = raised(&store, "silenced").await;
            let (acked, seen) = raised(&store, "acked").await;
            // Paged, but its row never written (the store was failing): it escalates all the same.
            let unrecorded =
                Notice::of(&component_alarm("unrecorded", "OX-2", "SpO2 low", Priority::Medium, t0()), t0());
            let escalate_at = t0() + chrono::Duration::seconds(60);
            for n in [&plain, &quiet, &seen, &unrecorded] {
                escalations.watch(n, escalate_at, None, start);
            }
            let silence_ends = t0() + chrono::Duration::minutes(5);
            store
                .silence_alarm(
                    silenced,
                    &crate::store::SilenceRequest {
                        until: silence_ends,
                        minutes: 5,
                        max_silences: 4,
                        max_total_minutes: 120,
                    },
                    "ana",
                    "at the bedside",
                )
                .await
                .unwrap();
            store.ack_alarm(acked, "ana", "probe reseated").await.unwrap();
            // `secs` of monotonic time after the start; from 30 s on, the wall clock has jumped.
            let at = |secs: u64| Now {
                wall: t0()
                    + chrono::Duration::seconds(secs as i64)
                    + if secs >= 30 { jump } else { chrono::Duration::zero() },
                mono: start.mono + Duration::from_secs(secs),
            };
            // The circuit sees the silence and the acknowledgement on its next tick, before the jump.
            let moot = escalations.due(&view(&store).await, at(0));
            assert_eq!(moot.len(), 1);
            assert_eq!(
                (moot[0].pending.notice.alarm_key.as_str(), moot[0].escalated.is_none()),
                (seen.alarm_key.as_str(), true)
            );

            assert!(escalations.due(&view(&store).await, at(30)).is_empty(), "jump {jump}: not due yet");
            let escalated: Vec<Notice> =
                escalations.due(&view(&store).await, at(61)).into_iter().filter_map(|e| e.escalated).collect();
            let mut keys: Vec<&str> = escalated.iter().map(|n| n.alarm_key.as_str()).collect();
            keys.sort();
            let mut expected = [plain.alarm_key.as_str(), unrecorded.alarm_key.as_str()];
            expected.sort();
            assert_eq!(keys, expected, "jump {jump}");
            assert!(escalated.iter().all(|n| n.escalated && n.priority == Priority::High), "raised one level");
            assert!(escalated.iter().all(|n| n.page_id.ends_with("/1")), "the escalation is page 1 of its alarm");
            assert_eq!(escalations.len(), 1, "the silenced one waits");
            assert!(escalations.due(&view(&store).await, at(120)).is_empty(), "jump {jump}: the silence holds");
            let after_silence = escalations.due(&view(&store).await, at(302));
            let keys: Vec<&str> =
                after_silence.iter().filter_map(|e| e.escalated.as_ref()).map(|n| n.alarm_key.as_str()).collect();
            assert_eq!(keys, [quiet.alarm_key.as_str()], "jump {jump}");
            assert_eq!(escalations.len(), 0);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_cleared_condition_never_escalates() {
        let store = FakeStore::new(TokioClock::starting_at(t0()));
        let (_, n) = raised(&store, "plain").await;
        let mut escalations = Escalations::default();
        let start: Now = t0().into();
        escalations.watch(&n, t0(), None, start);
        assert!(escalations.cleared(&n.alarm_key).is_some());
        assert!(escalations.due(&view(&store).await, start).is_empty());
    }
}
