//! Where "now" comes from. Every module that reads the time takes a [`Clock`], so tasks can be
//! tested under `tokio::time::pause` and a workstation's wall clock is read in one place.

use std::fmt::Debug;
use std::sync::Arc;

use chrono::{DateTime, Utc};

/// A source of the current wall-clock time, and of monotonic time for deadlines.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time: it stamps records.
    fn now(&self) -> DateTime<Utc>;

    /// Monotonic time: it times deadlines (staleness, no data, escalation, silence), so a jump of
    /// the workstation's clock (NTP correcting an hour, daylight saving on a badly set machine)
    /// can neither raise nor clear anything. tokio's, so paused test time moves it.
    fn instant(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }

    /// Both at once.
    fn read(&self) -> Now {
        Now { wall: self.now(), mono: self.instant() }
    }
}

/// One reading of both clocks: the wall clock for what is recorded, the monotonic one for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Wall-clock time.
    pub wall: DateTime<Utc>,
    /// Monotonic time.
    pub mono: tokio::time::Instant,
}

/// The wall-clock time at a start, moved on by monotonic time since: what a running pipeline
/// compares devices' measured times with. A jump of the workstation's clock while it runs then
/// neither quarantines good readings as future-dated nor makes them late, nor moves a device's
/// clock offset; records are still stamped with the wall clock.
#[derive(Debug, Clone, Copy)]
pub struct Steady {
    anchor: Now,
}

impl Steady {
    /// Anchored at `now`.
    pub fn new(now: Now) -> Steady {
        Steady { anchor: now }
    }

    /// The steady wall-clock time at `now`.
    pub fn at(&self, now: Now) -> DateTime<Utc> {
        let since = now.mono.saturating_duration_since(self.anchor.mono);
        self.anchor.wall + chrono::Duration::from_std(since).unwrap_or(chrono::Duration::MAX)
    }
}

/// Tests name instants by wall time: the monotonic time is derived from it, as if the wall clock
/// never jumped.
#[cfg(test)]
impl From<DateTime<Utc>> for Now {
    fn from(wall: DateTime<Utc>) -> Now {
        static BASE: std::sync::OnceLock<(DateTime<Utc>, tokio::time::Instant)> = std::sync::OnceLock::new();
        let (base_wall, base_mono) = *BASE
            .get_or_init(|| (Utc::now(), tokio::time::Instant::now() + std::time::Duration::from_secs(90 * 86_400)));
        let mono = match (wall - base_wall).to_std() {
            Ok(ahead) => base_mono + ahead,
            Err(_) => base_mono - (base_wall - wall).to_std().unwrap_or_default(),
        };
        Now { wall, mono }
    }
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
#[derive(Debug, Clone)]
pub struct TokioClock {
    start_wall: DateTime<Utc>,
    start: tokio::time::Instant,
    jumped: WallJump,
}

/// Moves a [`TokioClock`]'s wall time, and only its wall time, as NTP or a badly set machine does.
#[cfg(any(test, feature = "test-util"))]
#[derive(Debug, Clone, Default)]
pub struct WallJump(Arc<std::sync::atomic::AtomicI64>);

#[cfg(any(test, feature = "test-util"))]
impl WallJump {
    /// Jumps the wall clock by `by` (negative: back).
    pub fn by(&self, by: chrono::Duration) {
        self.0.fetch_add(by.num_milliseconds(), std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(any(test, feature = "test-util"))]
impl TokioClock {
    /// A clock reading `start_wall` now.
    pub fn starting_at(start_wall: DateTime<Utc>) -> SharedClock {
        TokioClock::with_jumps(start_wall).0
    }

    /// A clock reading `start_wall` now, and the handle that jumps its wall time.
    pub fn with_jumps(start_wall: DateTime<Utc>) -> (SharedClock, WallJump) {
        let jumped = WallJump::default();
        (Arc::new(TokioClock { start_wall, start: tokio::time::Instant::now(), jumped: jumped.clone() }), jumped)
    }
}

#[cfg(any(test, feature = "test-util"))]
impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = chrono::Duration::from_std(self.start.elapsed()).unwrap_or(chrono::Duration::MAX);
        let jumped = chrono::Duration::milliseconds(self.jumped.0.load(std::sync::atomic::Ordering::SeqCst));
        self.start_wall + elapsed + jumped
    }
}
