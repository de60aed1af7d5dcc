//! Where "now" comes from. Every module that reads the time takes a [`Clock`], so tasks can be
//! tested under `tokio::time::pause` and a workstation's wall clock is read in one place.

use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, Utc};

/// A source of the current wall-clock time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// A clock shared by the tasks of one pipeline.
pub type SharedClock = Arc<dyn Clock>;

/// The workstation's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The workstation's clock, shared.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that follows tokio's: it starts at a given wall time and advances exactly as
/// `tokio::time::Instant` does, so under `tokio::time::pause` wall-clock deadlines and tokio
/// sleeps move together.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Clone, Copy)]
pub struct TokioClock {
    start_wall: DateTime<Utc>,
    start: tokio::time::Instant,
}

#[cfg(any(test, feature = "test-util"))]
impl TokioClock {
    /// A clock reading `start_wall` now.
    pub fn starting_at(start_wall: DateTime<Utc>) -> SharedClock {
        Arc::new(TokioClock { start_wall, start: tokio::time::Instant::now() })
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.start.elapsed()).unwrap_or(chrono::Duration::MAX);
        self.start_wall + elapsed
    }
}
