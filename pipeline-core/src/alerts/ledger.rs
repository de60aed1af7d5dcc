//! What the alert circuit learns from the main store, and what it (and the supervisor) ask the store
//! to record, without ever waiting on it: both run as tasks on the pipeline's runtime, on the far
//! side of a channel. A store that stalls leaves the circuit with its last view, which errs towards
//! escalating.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::model::ContentHash;
use crate::model::alarm::Firing;
use crate::store::{AlarmEntry, AlarmStore};

/// What operators did about an alarm, as the store last said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Active, nobody has acknowledged it; re-notification may be held back until a time.
    Open {
        /// The end of an operator's silence.
        silenced_until: Option<DateTime<Utc>>,
    },
    /// Acknowledged: it escalates no more.
    Acknowledged,
    /// The condition ended.
    Cleared,
}

/// The recent alarms by key. An alarm not in it (its row not written yet, or the store failing)
/// counts as open and unsilenced: an escalation is never lost for want of a row.
pub type AlarmView = Arc<HashMap<String, Handling>>;

/// Alarm rows read per look: the newest ones, which hold every pending escalation but in a flood.
const VIEW_ROWS: u32 = 2000;

/// The view of `alarms`.
pub fn view_of(alarms: &[AlarmEntry]) -> HashMap<String, Handling> {
    alarms
        .iter()
        .map(|a| {
            let handling = match (a.cleared_at, a.acked_at) {
                (Some(_), _) => Handling::Cleared,
                (None, Some(_)) => Handling::Acknowledged,
                (None, None) => Handling::Open { silenced_until: a.silenced_until },
            };
            (a.key.clone(), handling)
        })
        .collect()
}

/// Reads the recent alarms every `every` while the circuit has escalations pending (`wanted`), and
/// publishes them for it, until `shutdown`.
pub async fn watch_handling(
    store: Arc<dyn AlarmStore>,
    view: watch::Sender<AlarmView>,
    wanted: Arc<AtomicUsize>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if wanted.load(Ordering::Relaxed) == 0 {
            continue;
        }
        match tokio::time::timeout(every * 4, store.alarms(false, VIEW_ROWS)).await {
            Ok(Ok(alarms)) => {
                view.send_replace(Arc::new(view_of(&alarms)));
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "could not read alarms for escalation; keeping the last view"),
            Err(_) => tracing::warn!("alarms not read for escalation within the deadline; keeping the last view"),
        }
    }
}

enum Entry {
    Raise(Box<Firing>),
    Clear(ContentHash),
}

/// Records alarm rows for those who must not wait on the store: the supervisor and the circuit.
/// Rows are written in order by one task, each retried until the store takes it.
#[derive(Clone)]
pub struct Ledger {
    tx: mpsc::Sender<Entry>,
}

/// Entries waiting for the store at most; beyond it new ones are logged and dropped (the page has
/// already gone; only the console's row is missing).
const LEDGER_QUEUE: usize = 1024;

impl Ledger {
    /// The ledger and the task that writes it (run it on the pipeline's runtime).
    pub fn new(store: Arc<dyn AlarmStore>) -> (Ledger, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(LEDGER_QUEUE);
        (Ledger { tx }, write(store, rx))
    }

    /// Records a raised alarm.
    pub fn raise(&self, f: &Firing) {
        self.put(Entry::Raise(Box::new(f.clone())));
    }

    /// Records a cleared alarm.
    pub fn clear(&self, key: ContentHash) {
        self.put(Entry::Clear(key));
    }

    fn put(&self, entry: Entry) {
        if self.tx.try_send(entry).is_err() {
            tracing::error!("alarm ledger full or stopped: an alarm row was not recorded (its page was sent)");
        }
    }
}

async fn write(store: Arc<dyn AlarmStore>, mut rx: mpsc::Receiver<Entry>) {
    while let Some(entry) = rx.recv().await {
        let mut wait = Duration::from_millis(200);
        loop {
            let result = match &entry {
                Entry::Raise(f) => store.raise_alarm(f).await.map(|_| ()),
                Entry::Clear(key) => store.clear_alarm(key).await,
            };
            match result {
                Ok(()) => break,
                Err(e) => {
                    tracing::error!(error = %e, "could not record an alarm row; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}
