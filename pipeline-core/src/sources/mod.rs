//! Sources: where payloads enter. Each source hands payloads to the ingest writer and acknowledges
//! to its peer only when the writer's receipt says the payload is durable.

pub mod mllp;
pub mod mqtt;
pub mod tls;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

use crate::clock::SharedClock;
use crate::health::{HealthRegistry, HealthState, Heartbeat};

/// A source's connection state, visible on the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ConnectionState {
    /// Not started yet.
    Starting,
    /// Accepting device connections on an address.
    Listening {
        /// The bound address.
        addr: String,
    },
    /// Connected to its peer; the subscription is requested but not yet granted.
    Connected,
    /// Connected, and the peer answered the subscription: payloads flow from here on.
    Subscribed {
        /// How many topic filters the peer granted.
        granted: usize,
        /// How many were requested.
        requested: usize,
    },
    /// Lost its peer; retrying.
    Reconnecting {
        /// Why the last attempt failed (no PHI: transport errors only).
        reason: String,
        /// When it tries again.
        retry_in_ms: u64,
    },
    /// Stopped on shutdown.
    Stopped,
}

/// One source's state and when it last changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceStatus {
    /// The source's name, e.g. `mqtt`.
    pub name: String,
    /// Its state.
    pub state: ConnectionState,
    /// When the state last changed.
    pub since: DateTime<Utc>,
}

/// Publishes a source's state changes and heartbeats; cheap to clone.
#[derive(Debug, Clone)]
pub struct StatusReporter {
    name: Arc<str>,
    tx: Arc<watch::Sender<SourceStatus>>,
    heartbeat: Heartbeat,
}

/// How often sources beat.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(1);

impl StatusReporter {
    /// A reporter, registered on the board, and the receiver the facade reads.
    pub fn new(name: &str, health: &HealthRegistry) -> (StatusReporter, watch::Receiver<SourceStatus>) {
        let since = health.clock().now();
        let (tx, rx) = watch::channel(SourceStatus { name: name.into(), state: ConnectionState::Starting, since });
        let heartbeat = health.register(name, HEARTBEAT);
        (StatusReporter { name: name.into(), tx: Arc::new(tx), heartbeat }, rx)
    }

    /// The clock the source stamps what it receives with.
    pub fn clock(&self) -> &SharedClock {
        self.heartbeat.clock()
    }

    /// Records a new state (and logs the change).
    pub fn set(&self, state: ConnectionState) {
        self.tx.send_if_modified(|s| {
            if s.state == state {
                return false;
            }
            tracing::info!(source = %self.name, state = ?state, "source state changed");
            *s = SourceStatus { name: self.name.to_string(), state, since: self.heartbeat.clock().now() };
            true
        });
        self.tick();
    }

    /// Beats with the current state; sources call it at least every [`HEARTBEAT`].
    pub fn tick(&self) {
        self.tick_noting("");
    }

    /// Beats with the current state and a note for the board (counts an operator should see).
    pub fn tick_noting(&self, note: &str) {
        let (health, reason) = match &self.tx.borrow().state {
            ConnectionState::Starting => (HealthState::Degraded, "starting".to_string()),
            ConnectionState::Listening { addr } => (HealthState::Up, format!("listening on {addr}")),
            ConnectionState::Connected => (HealthState::Up, "connected".to_string()),
            ConnectionState::Subscribed { granted, requested } if granted == requested => (
                HealthState::Up,
                format!("subscribed to {granted} topic filter{}", if *granted == 1 { "" } else { "s" }),
            ),
            // Connected but deaf to what was refused: as down as a lost connection.
            ConnectionState::Subscribed { granted, requested } => (
                HealthState::Down,
                format!(
                    "subscription refused: the broker granted {granted} of {requested} topic filters (check its ACL for Vigil's user)"
                ),
            ),
            ConnectionState::Reconnecting { reason, .. } => (HealthState::Down, format!("reconnecting: {reason}")),
            ConnectionState::Stopped => (HealthState::Down, "stopped".to_string()),
        };
        if note.is_empty() {
            self.heartbeat.beat(health, &reason);
        } else {
            self.heartbeat.beat(health, &format!("{reason}; {note}"));
        }
    }
}
