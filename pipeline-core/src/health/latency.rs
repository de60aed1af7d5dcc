//! Latency histograms for `/metrics`, in Prometheus' cumulative-bucket form. Lock-free: the ingest
//! writer and the outbox record into them on their hot paths.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bucket upper bounds, in seconds.
const BOUNDS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// One latency distribution.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative), the last one for "above every bound".
    buckets: [AtomicU64; BOUNDS.len() + 1],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, seconds: f64) {
        let seconds = seconds.max(0.0);
        let bucket = BOUNDS.iter().position(|b| seconds <= *b).unwrap_or(BOUNDS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// Appends the histogram in the Prometheus text format.
    pub fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in BOUNDS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// The latencies Vigil measures.
#[derive(Debug, Default)]
pub struct Latencies {
    /// From a payload's arrival to its durable commit (what a device waits for its acknowledgement).
    pub ingest: Histogram,
    /// One delivery round trip to the EHR.
    pub ehr: Histogram,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_sum_and_count_add_up() {
        let h = Histogram::default();
        for s in [0.0005, 0.003, 0.003, 0.2, 20.0] {
            h.observe(s);
        }
        let mut out = String::new();
        h.render("x_seconds", "test", &mut out);
        assert!(out.contains("x_seconds_bucket{le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"0.005\"} 3\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"0.25\"} 4\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"10\"} 4\n"), "{out}");
        assert!(out.contains("x_seconds_bucket{le=\"+Inf\"} 5\nx_seconds_sum 20.2065\nx_seconds_count 5\n"), "{out}");
    }
}
