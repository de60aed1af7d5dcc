//! Each live device's clock, as the rules see it. Its offset is the median of (arrival time minus
//! measured time) over its last payloads, so one outlier moves neither the estimate nor the clock
//! alarm. The estimate counts as a clock error only once it is steady (a lagging clock lags every
//! payload alike): a device flushing the readings it buffered during a network outage has offsets
//! that fall payload by payload, and its readings are late data, evaluated by their own time as
//! before. A steadily lagging device is evaluated on corrected time, so a wrong clock cannot silence
//! it; a reading dated well ahead of its own device's clock (one future-dated payload, a spoofed
//! one) is stored but never evaluated, so it can neither mask nor clear a real condition.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use ts_rs::TS;

/// Payloads the median is taken over.
const SAMPLES: usize = 30;

/// A reading whose own offset is this far from its device's median is an outlier.
const OUTLIER: Duration = Duration::seconds(30);

/// Payloads before the estimate can be steady.
const SAMPLES_TO_TRUST: usize = 5;

/// The spread (interquartile range) of a steady estimate's offsets: network jitter.
const STEADY_SPREAD: Duration = Duration::seconds(2);

/// The rules task publishes each live device's clock offset here once a second; the board reads it.
pub type DeviceClocksBoard = std::sync::Arc<std::sync::Mutex<Vec<DeviceClock>>>;

/// One live device's clock, on the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, TS)]
#[ts(export)]
pub struct DeviceClock {
    /// The device.
    pub device_id: String,
    /// Arrival minus measured time, the median over its last payloads: positive when its clock is
    /// behind.
    pub offset_secs: i64,
}

/// Where the rules place one live reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Evaluate it at this time: its observed time, corrected by the device's offset once that is
    /// past the correction threshold.
    At(DateTime<Utc>),
    /// Its time disagrees with its device's clock: keep it out of every window.
    Outlier,
}

/// The offsets of every live device.
#[derive(Debug, Default)]
pub struct DeviceClocks {
    by_device: HashMap<String, Estimate>,
}

#[derive(Debug, Default)]
struct Estimate {
    /// (observed, arrival) time of the last payloads, in epoch milliseconds.
    samples: VecDeque<(i64, i64)>,
    /// The observed time of the last payload: a payload's readings share one.
    last_observed: Option<DateTime<Utc>>,
    /// The median offset, in milliseconds, and the steady offset: derived from `samples` once per
    /// payload, not per reading.
    median: i64,
    steady: Option<Duration>,
}

impl DeviceClocks {
    /// Records a live reading that arrived at `received`, and says where to evaluate it. Offsets of
    /// at least `correct_after` (either way) are corrected for.
    pub fn place(
        &mut self,
        device: &str,
        observed: DateTime<Utc>,
        received: DateTime<Utc>,
        correct_after: Duration,
    ) -> Placement {
        let clock = self.by_device.entry(device.to_string()).or_default();
        let own = (received - observed).num_milliseconds();
        // Judged from a device's second payload on: even early, one reading dated ahead of its own
        // clock cannot become the newest in its window.
        let ahead_of_its_clock = !clock.samples.is_empty() && own < clock.median - OUTLIER.num_milliseconds();
        if clock.last_observed != Some(observed) {
            clock.last_observed = Some(observed);
            if clock.samples.len() == SAMPLES {
                clock.samples.pop_front();
            }
            clock.samples.push_back((observed.timestamp_millis(), received.timestamp_millis()));
            clock.median = clock.median_of_samples();
            clock.steady = clock.steady_offset();
        }
        if ahead_of_its_clock {
            return Placement::Outlier;
        }
        match clock.steady {
            Some(offset) if offset.abs() >= correct_after => Placement::At(observed + offset),
            _ => Placement::At(observed),
        }
    }

    /// Every device's steady offset.
    pub fn offsets(&self) -> impl Iterator<Item = (&str, Duration)> {
        self.by_device.keys().filter_map(|d| Some((d.as_str(), self.offset(d)?)))
    }

    /// The device's offset once its estimate is steady (positive: its clock is behind).
    pub fn offset(&self, device: &str) -> Option<Duration> {
        self.by_device.get(device)?.steady
    }
}

impl Estimate {
    /// The payloads' offsets (arrival minus observed), sorted.
    fn sorted(&self) -> Vec<i64> {
        let mut sorted: Vec<i64> = self.samples.iter().map(|(observed, received)| received - observed).collect();
        sorted.sort_unstable();
        sorted
    }

    fn median_of_samples(&self) -> i64 {
        let sorted = self.sorted();
        match sorted.len() {
            0 => 0,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
        }
    }

    /// The median, once it is steady: enough payloads, arriving about as fast as the device says it
    /// measured them (a flush of buffered readings arrives all at once), with offsets that agree
    /// to within network jitter.
    fn steady_offset(&self) -> Option<Duration> {
        let sorted = self.sorted();
        let n = sorted.len();
        if n < SAMPLES_TO_TRUST || sorted[n * 3 / 4] - sorted[n / 4] > STEADY_SPREAD.num_milliseconds() {
            return None;
        }
        // Over the payloads that agree with the median (an outlier is no evidence either way).
        let median = self.median;
        let agree: Vec<&(i64, i64)> =
            self.samples.iter().filter(|(o, r)| (r - o - median).abs() <= STEADY_SPREAD.num_milliseconds()).collect();
        let span = |pick: fn(&(i64, i64)) -> i64| {
            let (lo, hi) =
                agree.iter().map(|s| pick(s)).fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
            hi - lo
        };
        let (measured, arrived) = (span(|(o, _)| *o), span(|(_, r)| *r));
        (agree.len() >= SAMPLES_TO_TRUST && arrived * 2 >= measured).then(|| Duration::milliseconds(median))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORRECT_AFTER: Duration = Duration::seconds(60);

    #[test]
    fn a_device_ten_minutes_behind_is_placed_at_its_corrected_time_once_its_offset_is_steady() {
        let mut clocks = DeviceClocks::default();
        let now = Utc::now();
        let behind = Duration::minutes(10);
        let mut placed = Vec::new();
        for i in 0..20 {
            let received = now + Duration::seconds(i);
            placed.push((clocks.place("OX-1", received - behind, received, CORRECT_AFTER), received));
        }
        assert!(placed[..4].iter().all(|(p, r)| *p == Placement::At(*r - behind)), "not yet steady: {placed:?}");
        assert!(placed[4..].iter().all(|(p, r)| *p == Placement::At(*r)), "{placed:?}");
        assert_eq!(clocks.offset("OX-1"), Some(behind));
    }

    #[test]
    fn a_flush_of_buffered_readings_is_late_data_not_a_clock_error() {
        let mut clocks = DeviceClocks::default();
        let now = Utc::now();
        // 120 s of readings buffered during an outage arrive within a second.
        for i in 0..120 {
            let observed = now - Duration::seconds(120 - i);
            let received = now + Duration::milliseconds(i * 5);
            assert_eq!(clocks.place("OX-1", observed, received, CORRECT_AFTER), Placement::At(observed), "payload {i}");
        }
        assert_eq!(clocks.offset("OX-1"), None, "no steady offset, so no clock alarm");
    }

    #[test]
    fn a_future_dated_second_payload_is_already_an_outlier() {
        let mut clocks = DeviceClocks::default();
        let now = Utc::now();
        assert_eq!(clocks.place("OX-1", now, now, CORRECT_AFTER), Placement::At(now));
        let later = now + Duration::seconds(1);
        assert_eq!(clocks.place("OX-1", later + Duration::minutes(4), later, CORRECT_AFTER), Placement::Outlier);
    }

    #[test]
    fn one_future_dated_reading_is_an_outlier_and_moves_nothing() {
        let mut clocks = DeviceClocks::default();
        let now = Utc::now();
        for i in 0..12 {
            let t = now + Duration::seconds(i);
            assert_eq!(clocks.place("OX-1", t, t, CORRECT_AFTER), Placement::At(t));
        }
        let received = now + Duration::seconds(12);
        assert_eq!(clocks.place("OX-1", received + Duration::minutes(4), received, CORRECT_AFTER), Placement::Outlier);
        assert_eq!(clocks.offset("OX-1"), Some(Duration::zero()), "the median did not move");
        let next = now + Duration::seconds(13);
        assert_eq!(clocks.place("OX-1", next, next, CORRECT_AFTER), Placement::At(next));
    }

    #[test]
    fn a_small_offset_is_not_corrected_and_a_clock_stepped_back_is_followed() {
        let mut clocks = DeviceClocks::default();
        let now = Utc::now();
        let lag = Duration::milliseconds(400);
        for i in 0..12 {
            let received = now + Duration::seconds(i);
            let t = received - lag;
            assert_eq!(
                clocks.place("OX-1", t, received, CORRECT_AFTER),
                Placement::At(t),
                "network delay is no clock error"
            );
        }
        // The device's clock steps back by 5 minutes for good: its readings are late data at first,
        // then the median follows and they are placed at their corrected time.
        let mut last = None;
        for i in 12..50 {
            let received = now + Duration::seconds(i);
            last = Some(clocks.place("OX-1", received - Duration::minutes(5), received, CORRECT_AFTER));
        }
        assert_eq!(last, Some(Placement::At(now + Duration::seconds(49))));
        assert_eq!(clocks.offset("OX-1"), Some(Duration::minutes(5)));
    }
}
