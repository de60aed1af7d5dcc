//! A rolling window of one metric's readings, ordered by observed time (so late and out-of-order
//! readings land where they belong), pruned to a horizon behind the newest reading. Each reading
//! keeps its validity, so what is built from a span says whether a doubtful or demo value was in it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use super::Questionable;
use crate::model::Validity;

/// Aggregates over a span of the window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Readings in the span.
    pub count: usize,
    /// Demo when any reading in the span was demo data, else valid.
    pub validity: Validity,
    /// Mean.
    pub mean: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
    /// Median (the mean of the two middle values for an even count).
    pub median: f64,
}

/// Readings of one (patient, device, metric).
#[derive(Debug, Clone)]
pub struct RollingWindow {
    horizon: Duration,
    values: BTreeMap<DateTime<Utc>, (f64, Validity)>,
}

impl RollingWindow {
    /// A window that keeps `horizon` of readings behind the newest.
    pub fn new(horizon: Duration) -> RollingWindow {
        RollingWindow { horizon, values: BTreeMap::new() }
    }

    /// Adds a reading (a repeat at the same time replaces it) and prunes what fell behind.
    pub fn insert(&mut self, at: DateTime<Utc>, value: f64, validity: Validity) {
        self.values.insert(at, (value, validity));
        if let (Some((&oldest, _)), Some((&newest, _))) = (self.values.first_key_value(), self.values.last_key_value())
            && oldest < newest - self.horizon
        {
            self.values = self.values.split_off(&(newest - self.horizon));
        }
    }

    /// The readings in `[from, to]` a rule admits, oldest first.
    fn admitted(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        q: Questionable,
    ) -> impl DoubleEndedIterator<Item = (DateTime<Utc>, f64)> + '_ {
        self.values.range(from..=to).filter(move |(_, (_, v))| q.admits(*v)).map(|(t, (v, _))| (*t, *v))
    }

    /// The highest (or lowest) admitted reading observed in `[from, to]`, with its time; the earliest
    /// wins a tie.
    pub fn extreme(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        highest: bool,
        q: Questionable,
    ) -> Option<(DateTime<Utc>, f64)> {
        let better = |v: f64, best: f64| if highest { v > best } else { v < best };
        self.admitted(from, to, q).fold(None, |best, (t, v)| match best {
            Some((_, b)) if !better(v, b) => best,
            _ => Some((t, v)),
        })
    }

    /// The newest admitted reading.
    pub fn latest(&self, q: Questionable) -> Option<(DateTime<Utc>, f64)> {
        self.admitted(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC, q).next_back()
    }

    /// The reading observed exactly at `at`, with its validity.
    pub fn at(&self, at: DateTime<Utc>) -> Option<(f64, Validity)> {
        self.values.get(&at).copied()
    }

    /// When the newest reading of any validity was observed.
    pub fn newest(&self) -> Option<DateTime<Utc>> {
        self.values.last_key_value().map(|(t, _)| *t)
    }

    /// When the current run of admitted readings satisfying `breaches` began, if the newest
    /// admitted reading breaches.
    pub fn breach_start(&self, breaches: impl Fn(f64) -> bool, q: Questionable) -> Option<DateTime<Utc>> {
        let mut start = None;
        for (t, v) in self.admitted(DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC, q).rev() {
            if !breaches(v) {
                break;
            }
            start = Some(t);
        }
        start
    }

    /// What a span's admitted readings were: demo if any was demo data (it must never pass as
    /// real), else questionable if any was, else valid.
    pub fn validity(&self, from: DateTime<Utc>, to: DateTime<Utc>, q: Questionable) -> Validity {
        let in_span = |wanted| self.values.range(from..=to).any(|(_, (_, v))| *v == wanted && q.admits(*v));
        [Validity::Demo, Validity::Questionable].into_iter().find(|v| in_span(*v)).unwrap_or(Validity::Valid)
    }

    /// Aggregates over the readings observed in `[from, to]` that are not questionable (a charted
    /// statistic is made of measurements the device stood by).
    pub fn stats(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Option<Stats> {
        let span = self.values.range(from..=to).filter(|(_, (_, v))| *v != Validity::Questionable);
        let (mut values, validities): (Vec<f64>, Vec<Validity>) = span.map(|(_, (value, v))| (*value, *v)).unzip();
        if values.is_empty() {
            return None;
        }
        let validity = if validities.contains(&Validity::Demo) { Validity::Demo } else { Validity::Valid };
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
        Some(Stats {
            count: n,
            validity,
            mean: values.iter().sum::<f64>() / n as f64,
            min: values[0],
            max: values[n - 1],
            median,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_a_span_and_prunes_behind_the_horizon() {
        let t0 = Utc::now();
        let mut w = RollingWindow::new(Duration::seconds(60));
        for (i, v) in [4.0, 1.0, 3.0, 2.0].into_iter().enumerate() {
            w.insert(t0 + Duration::seconds(i as i64), v, Validity::Valid);
        }
        let s = w.stats(t0, t0 + Duration::seconds(3)).unwrap();
        assert_eq!((s.count, s.mean, s.min, s.max, s.median), (4, 2.5, 1.0, 4.0, 2.5));
        assert_eq!(w.stats(t0 + Duration::seconds(1), t0 + Duration::seconds(3)).unwrap().median, 2.0);
        w.insert(t0 + Duration::seconds(62), 9.0, Validity::Valid);
        assert_eq!(w.stats(t0, t0 + Duration::seconds(100)).unwrap().count, 3, "readings before t0+2 fell out");
        assert_eq!(w.latest(Questionable::Include), Some((t0 + Duration::seconds(62), 9.0)));
        let (from, to) = (t0, t0 + Duration::seconds(62));
        assert_eq!(w.extreme(from, to, true, Questionable::Include), Some((t0 + Duration::seconds(62), 9.0)));
        assert_eq!(w.extreme(from, to, false, Questionable::Include), Some((t0 + Duration::seconds(3), 2.0)));
    }

    #[test]
    fn questionable_readings_stay_out_of_statistics_and_mark_the_span() {
        let t0 = Utc::now();
        let mut w = RollingWindow::new(Duration::seconds(60));
        w.insert(t0, 97.0, Validity::Valid);
        w.insert(t0 + Duration::seconds(1), 70.0, Validity::Questionable);
        w.insert(t0 + Duration::seconds(2), 95.0, Validity::Valid);
        let s = w.stats(t0, t0 + Duration::seconds(2)).unwrap();
        assert_eq!((s.count, s.median, s.validity), (2, 96.0, Validity::Valid), "the doubtful 70 is not charted");
        let q = Questionable::Include;
        assert_eq!(w.validity(t0, t0 + Duration::seconds(2), q), Validity::Questionable);
        assert_eq!(w.validity(t0, t0 + Duration::seconds(2), Questionable::Exclude), Validity::Valid);
        assert_eq!(w.validity(t0 + Duration::seconds(2), t0 + Duration::seconds(2), q), Validity::Valid);
        w.insert(t0 + Duration::seconds(3), 96.0, Validity::Demo);
        assert_eq!(w.validity(t0, t0 + Duration::seconds(3), q), Validity::Demo, "demo data never passes as real");
        assert_eq!(w.stats(t0, t0 + Duration::seconds(3)).unwrap().validity, Validity::Demo);
        let only_doubt = w.stats(t0 + Duration::seconds(1), t0 + Duration::seconds(1));
        assert_eq!(only_doubt, None, "a span of questionable readings gives no statistic");
    }

    #[test]
    fn a_rule_that_excludes_questionable_readings_does_not_see_them() {
        let t0 = Utc::now();
        let mut w = RollingWindow::new(Duration::seconds(60));
        w.insert(t0, 85.0, Validity::Valid);
        w.insert(t0 + Duration::seconds(1), 84.0, Validity::Questionable);
        w.insert(t0 + Duration::seconds(2), 86.0, Validity::Questionable);
        let (from, to) = (t0, t0 + Duration::seconds(2));
        assert_eq!(w.latest(Questionable::Exclude), Some((t0, 85.0)));
        assert_eq!(w.latest(Questionable::Include), Some((to, 86.0)));
        assert_eq!(w.extreme(from, to, false, Questionable::Exclude), Some((t0, 85.0)));
        assert_eq!(w.extreme(from, to, false, Questionable::Include), Some((t0 + Duration::seconds(1), 84.0)));
        w.insert(t0 + Duration::seconds(3), 95.0, Validity::Questionable);
        let low = |v: f64| v < 90.0;
        assert_eq!(w.breach_start(low, Questionable::Exclude), Some(t0), "the doubtful 95 does not end the run");
        assert_eq!(w.breach_start(low, Questionable::Include), None);
        assert_eq!(w.newest(), Some(t0 + Duration::seconds(3)));
    }
}
