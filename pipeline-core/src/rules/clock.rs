//! Each live device's clock, as the rules see it: its offset is the median of (arrival time minus
//! observed time) over its last payloads, so one outlier moves neither the estimate nor the clock
//! alarm. A device that lags is evaluated on its corrected time, and a reading whose time disagrees
//! with its own device's clock by far (a single future-dated payload, a spoofed one) is stored but
//! never evaluated: it can neither mask nor clear a real condition.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Duration, Utc};

/// Payloads the median is taken over.
const SAMPLES: usize = 30;

/// A reading whose own offset is this far from its device's median is an outlier.
const OUTLIER: Duration = Duration::seconds(30);

/// Payloads seen before a reading can be judged an outlier: from the second payload on, so that even
/// early in a device's life one future-dated reading cannot become the newest in its window.
const SAMPLES_TO_JUDGE: usize = 1;

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
    by_device: HashMap<String, DeviceClock>,
}

#[derive(Debug, Default)]
struct DeviceClock {
    /// Arrival minus observed time of the last payloads, in milliseconds.
    samples: VecDeque<i64>,
    /// The observed time of the last payload: a payload's readings share one.
    last_observed: Option<DateTime<Utc>>,
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
        let judged = clock.samples.len() >= SAMPLES_TO_JUDGE;
        let before = clock.median();
        if clock.last_observed != Some(observed) {
            clock.last_observed = Some(observed);
            if clock.samples.len() == SAMPLES {
                clock.samples.pop_front();
            }
            clock.samples.push_back(own);
        }
        if judged && (own - before).abs() > OUTLIER.num_milliseconds() {
            return Placement::Outlier;
        }
        let offset = Duration::milliseconds(clock.median());
        Placement::At(if offset.abs() >= correct_after { observed + offset } else { observed })
    }

    /// Every device's estimated offset.
    pub fn offsets(&self) -> impl Iterator<Item = (&str, Duration)> {
        self.by_device.keys().filter_map(|d| Some((d.as_str(), self.offset(d)?)))
    }

    /// The device's estimated offset (positive: its clock is behind).
    pub fn offset(&self, device: &str) -> Option<Duration> {
        self.by_device.get(device).filter(|c| !c.samples.is_empty()).map(|c| Duration::milliseconds(c.median()))
    }
}

impl DeviceClock {
    fn median(&self) -> i64 {
        let mut sorted: Vec<i64> = self.samples.iter().copied().collect();
        sorted.sort_unstable();
        match sorted.len() {
            0 => 0,
            n if n % 2 == 1 => sorted[n / 2],
            n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CORRECT_AFTER: Duration = Duration::seconds(60);

    #[test]
    fn a_device_ten_minutes_behind_is_placed_at_its_corrected_time() {
        let mut clocks = DeviceClocks::default();
        let now = Utc::now();
        let behind = Duration::minutes(10);
        for i in 0..10 {
            let received = now + Duration::seconds(i);
            let placed = clocks.place("OX-1", received - behind, received, CORRECT_AFTER);
            assert_eq!(placed, Placement::At(received), "payload {i}");
        }
        assert_eq!(clocks.offset("OX-1"), Some(behind));
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
        for i in 0..10 {
            let t = now + Duration::seconds(i);
            assert_eq!(clocks.place("OX-1", t, t, CORRECT_AFTER), Placement::At(t));
        }
        let received = now + Duration::seconds(10);
        let ahead = received + Duration::minutes(4);
        assert_eq!(clocks.place("OX-1", ahead, received, CORRECT_AFTER), Placement::Outlier);
        assert_eq!(clocks.offset("OX-1"), Some(Duration::zero()), "the median did not move");
        let next = now + Duration::seconds(11);
        assert_eq!(clocks.place("OX-1", next, next, CORRECT_AFTER), Placement::At(next));
    }

    #[test]
    fn a_small_offset_is_not_corrected_and_a_stepped_clock_is_followed() {
        let mut clocks = DeviceClocks::default();
        let now = Utc::now();
        let lag = Duration::milliseconds(400);
        for i in 0..10 {
            let received = now + Duration::seconds(i);
            let t = received - lag;
            assert_eq!(
                clocks.place("OX-1", t, received, CORRECT_AFTER),
                Placement::At(t),
                "network delay is no clock error"
            );
        }
        // The device's clock steps back by 5 minutes for good: outliers at first, then the median
        // follows and the readings are placed at their corrected time.
        let mut placed = Vec::new();
        for i in 10..30 {
            let received = now + Duration::seconds(i);
            placed.push(clocks.place("OX-1", received - Duration::minutes(5), received, CORRECT_AFTER));
        }
        assert_eq!(placed[0], Placement::Outlier);
        assert_eq!(placed.last(), Some(&Placement::At(now + Duration::seconds(29))), "{placed:?}");
        assert_eq!(clocks.offset("OX-1"), Some(Duration::minutes(5)));
    }
}
