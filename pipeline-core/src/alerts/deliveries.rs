//! What became of each alarm's pages, for the console: where each went and whether its sink took
//! it. The circuit's thread writes, the console reads; the lock is held for a few map operations
//! only, so the alert path never waits on a reader. Kept in memory for the newest alarms only: after
//! a restart the console says no page is on record rather than guess.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use ts_rs::TS;

use crate::clock::SharedClock;

/// Whether a sink took a page.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, TS)]
#[ts(export)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Sent, not yet taken (retrying, or a broker acknowledgement not tracked per page).
    Sending,
    /// The sink took it.
    Delivered,
    /// Given up after the retries.
    Failed,
}

/// One page of an alarm at one sink.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, TS)]
#[ts(export)]
pub struct PageDelivery {
    /// 0 the first page, 1 its escalation.
    pub step: u8,
    /// The escalation of an unacknowledged alarm.
    pub escalated: bool,
    /// Where: "ward webhook", "biomed webhook", "alert topic".
    pub sink: String,
    /// Sending, delivered or failed.
    pub state: DeliveryState,
    /// When it was sent.
    pub sent_at: DateTime<Utc>,
    /// When the sink took it, or it was given up.
    pub settled_at: Option<DateTime<Utc>>,
    /// Why it failed, or what is not known of it.
    pub detail: Option<String>,
}

/// Alarms whose pages are remembered at most (the oldest are forgotten first).
const ALARMS_KEPT: usize = 2000;

#[derive(Default)]
struct Kept {
    by_alarm: HashMap<String, Vec<PageDelivery>>,
    order: VecDeque<String>,
}

/// The page log shared by the circuit and the console.
#[derive(Clone)]
pub struct PageLog {
    kept: Arc<Mutex<Kept>>,
    clock: SharedClock,
}

impl PageLog {
    /// An empty log stamping with `clock`.
    pub fn new(clock: SharedClock) -> PageLog {
        PageLog { kept: Arc::default(), clock }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A page left for `sink`.
    pub fn sent(&self, alarm_key: &str, step: u8, sink: &str, detail: Option<String>) {
        let page = PageDelivery {
            step,
            escalated: step > 0,
            sink: sink.to_string(),
            state: DeliveryState::Sending,
            sent_at: self.clock.now(),
            settled_at: None,
            detail,
        };
        let mut kept = self.kept();
        if !kept.by_alarm.contains_key(alarm_key) {
            kept.order.push_back(alarm_key.to_string());
            while kept.order.len() > ALARMS_KEPT {
                if let Some(old) = kept.order.pop_front() {
                    kept.by_alarm.remove(&old);
                }
            }
        }
        kept.by_alarm.entry(alarm_key.to_string()).or_default().push(page);
    }

    /// The newest page of `alarm_key` at step `step` and `sink` was taken, or given up with why.
    pub fn settled(&self, alarm_key: &str, step: u8, sink: &str, outcome: Result<(), String>) {
        let now = self.clock.now();
        let mut kept = self.kept();
        let Some(pages) = kept.by_alarm.get_mut(alarm_key) else { return };
        if let Some(page) = pages.iter_mut().rev().find(|p| p.step == step && p.sink == sink) {
            page.settled_at = Some(now);
            (page.state, page.detail) = match outcome {
                Ok(()) => (DeliveryState::Delivered, None),
                Err(why) => (DeliveryState::Failed, Some(why)),
            };
        }
    }

    /// An alarm's pages, oldest first.
    pub fn of(&self, alarm_key: &str) -> Vec<PageDelivery> {
        self.kept().by_alarm.get(alarm_key).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_sending_until_its_sink_settles_it_and_old_alarms_are_forgotten_first() {
        let log = PageLog::new(crate::clock::system());
        log.sent("a", 0, "ward webhook", None);
        log.sent("a", 0, "biomed webhook", None);
        assert!(log.of("a").iter().all(|p| p.state == DeliveryState::Sending));
        log.settled("a", 0, "ward webhook", Ok(()));
        log.settled("a", 0, "biomed webhook", Err("HTTP 503".into()));
        let pages = log.of("a");
        assert_eq!(pages[0].state, DeliveryState::Delivered);
        assert_eq!((pages[1].state, pages[1].detail.as_deref()), (DeliveryState::Failed, Some("HTTP 503")));
        log.sent("a", 1, "ward webhook", None);
        assert!(log.of("a")[2].escalated);
        for n in 0..ALARMS_KEPT {
            log.sent(&n.to_string(), 0, "ward webhook", None);
        }
        assert!(log.of("a").is_empty(), "the oldest alarm is forgotten");
        assert_eq!(log.of(&(ALARMS_KEPT - 1).to_string()).len(), 1);
    }
}
