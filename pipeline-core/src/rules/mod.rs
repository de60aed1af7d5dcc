//! Rules as versioned data, evaluated over rolling windows of readings.
//!
//! Invariant: a condition raises one alarm (and at most one event) from the moment it has held for
//! the rule's duration until it clears past the hysteresis value; repeats inside it raise nothing.
//! Readings observed longer ago than `late_after_secs` are never evaluated (late data is stored, but a
//! night's upload must not page anyone). Readings may arrive out of order: the window is ordered by
//! observed time, not arrival.
//!
//! This first version knows sustained thresholds with hysteresis. Rate-of-change, periodic charting
//! summaries and no-data rules are still to come.

pub mod run;
pub mod window;

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::model::ContentHash;
use crate::normalise::codes::{Metric, metric_by_ref};
use window::RollingWindow;

/// Alarm priority per IEC 60601-1-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Immediate response: failure can cause death or irreversible injury.
    High,
    /// Prompt response: reversible injury.
    Medium,
    /// Awareness: discomfort or minor injury.
    Low,
}

impl Priority {
    /// The stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }
}

/// What a rule emits when its condition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Emit {
    /// An alarm, to the alarm path.
    Alarm,
    /// A clinical event, to validation and the outbox.
    Event,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    version: String,
    late_after_secs: u64,
    #[serde(default)]
    rule: Vec<RuleEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    id: String,
    description: String,
    metric: String,
    below: Option<f64>,
    above: Option<f64>,
    clear_at: f64,
    for_secs: u64,
    priority: Priority,
    emit: Vec<Emit>,
    #[serde(default)]
    escalate_after_secs: Option<u64>,
}

/// A sustained-threshold rule with hysteresis.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable id, e.g. `spo2-low`.
    pub id: String,
    /// What it means, in words.
    pub description: String,
    /// The metric it watches.
    pub metric: &'static Metric,
    /// The threshold, and whether breaching means below it.
    pub threshold: f64,
    /// True for "below", false for "above".
    pub below: bool,
    /// The value past which the condition clears (hysteresis).
    pub clear_at: f64,
    /// How long the breach must last.
    pub sustain: Duration,
    /// Alarm priority.
    pub priority: Priority,
    /// Whether it raises an alarm.
    pub alarm: bool,
    /// Whether it raises a clinical event.
    pub event: bool,
    /// Re-notify, with raised priority, when not acknowledged this long after the alarm.
    pub escalate_after: Option<Duration>,
}

impl Rule {
    fn breaches(&self, v: f64) -> bool {
        if self.below { v < self.threshold } else { v > self.threshold }
    }

    fn cleared_by(&self, v: f64) -> bool {
        if self.below { v >= self.clear_at } else { v <= self.clear_at }
    }
}

/// A loaded, checked rule file.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// The file's version id.
    pub version: String,
    /// Readings older than this are not evaluated.
    pub late_after: Duration,
    /// The rules.
    pub rules: Vec<Rule>,
}

/// Why a rule file was refused.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {problems:?}")]
pub struct RuleError {
    /// The file.
    pub file: String,
    /// Every problem found.
    pub problems: Vec<String>,
}

impl RuleSet {
    /// Loads and checks a rule file, reporting every problem.
    pub fn load(path: &Path) -> Result<RuleSet, RuleError> {
        let fail = |problems| RuleError { file: path.display().to_string(), problems };
        let text = std::fs::read_to_string(path).map_err(|e| fail(vec![e.to_string()]))?;
        let file: RuleFile = toml::from_str(&text).map_err(|e| fail(vec![e.to_string()]))?;
        let mut problems = Vec::new();
        let mut rules = Vec::new();
        for r in file.rule {
            let Some(metric) = metric_by_ref(&r.metric) else {
                problems.push(format!("rule {}: unknown metric {:?}", r.id, r.metric));
                continue;
            };
            let (threshold, below) = match (r.below, r.above) {
                (Some(t), None) => (t, true),
                (None, Some(t)) => (t, false),
                _ => {
                    problems.push(format!("rule {}: give exactly one of `below` and `above`", r.id));
                    continue;
                }
            };
            if (below && r.clear_at < threshold) || (!below && r.clear_at > threshold) {
                problems
                    .push(format!("rule {}: clear_at {} lies on the breaching side of {threshold}", r.id, r.clear_at));
            }
            if r.emit.is_empty() {
                problems.push(format!("rule {}: emits nothing", r.id));
            }
            rules.push(Rule {
                id: r.id,
                description: r.description,
                metric,
                threshold,
                below,
                clear_at: r.clear_at,
                sustain: Duration::seconds(r.for_secs as i64),
                priority: r.priority,
                alarm: r.emit.contains(&Emit::Alarm),
                event: r.emit.contains(&Emit::Event),
                escalate_after: r.escalate_after_secs.map(|s| Duration::seconds(s as i64)),
            });
        }
        if problems.is_empty() {
            Ok(RuleSet { version: file.version, late_after: Duration::seconds(file.late_after_secs as i64), rules })
        } else {
            Err(fail(problems))
        }
    }
}

/// A reading as the rules see it: already stored, with its patient.
#[derive(Debug, Clone)]
pub struct Observed {
    /// The patient's store key.
    pub patient_id: i64,
    /// The device.
    pub device_id: String,
    /// What was measured.
    pub metric: &'static Metric,
    /// The value in canonical units.
    pub value: f64,
    /// When.
    pub observed_at: DateTime<Utc>,
}

/// A condition that started: raise its alarm and/or event.
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// The condition's identity: patient, device, rule, version and start. The alarm's key.
    pub key: ContentHash,
    /// The rule's id.
    pub rule_id: String,
    /// The rule set's version.
    pub rule_version: String,
    /// Alarm priority.
    pub priority: Priority,
    /// Whether to raise an alarm.
    pub alarm: bool,
    /// Whether to raise a clinical event.
    pub event: bool,
    /// When to escalate if not acknowledged.
    pub escalate_after: Option<Duration>,
    /// The patient's store key.
    pub patient_id: i64,
    /// The device.
    pub device_id: String,
    /// The metric.
    pub metric: &'static Metric,
    /// The reading that completed the condition.
    pub value: f64,
    /// When the breach began.
    pub since: DateTime<Utc>,
    /// When it had lasted long enough.
    pub at: DateTime<Utc>,
}

/// What the engine decided about one reading.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A condition started.
    Started(Firing),
    /// A condition cleared (its alarm's key).
    Cleared(ContentHash),
}

type Key = (i64, String, u32);

/// The evaluator: rolling windows per (patient, device, metric) and the state of each condition.
pub struct Engine {
    rules: RuleSet,
    windows: HashMap<Key, RollingWindow>,
    active: HashMap<(Key, String), ContentHash>,
}

impl Engine {
    /// An engine for a rule set.
    pub fn new(rules: RuleSet) -> Engine {
        Engine { rules, windows: HashMap::new(), active: HashMap::new() }
    }

    /// Feeds one stored reading; returns the conditions it starts or clears.
    pub fn observe(&mut self, r: &Observed, now: DateTime<Utc>) -> Vec<Decision> {
        if r.observed_at < now - self.rules.late_after {
            return Vec::new();
        }
        let key: Key = (r.patient_id, r.device_id.clone(), r.metric.mdc_code);
        let horizon = self.rules.rules.iter().map(|x| x.sustain).max().unwrap_or_default() + Duration::minutes(5);
        let window = self.windows.entry(key.clone()).or_insert_with(|| RollingWindow::new(horizon));
        window.insert(r.observed_at, r.value);
        let latest = window.latest();
        let mut out = Vec::new();
        for rule in self.rules.rules.iter().filter(|x| x.metric.mdc_code == r.metric.mdc_code) {
            let condition = (key.clone(), rule.id.clone());
            if let Some(alarm) = self.active.get(&condition) {
                if latest.is_some_and(|(_, v)| rule.cleared_by(v)) {
                    out.push(Decision::Cleared(*alarm));
                    self.active.remove(&condition);
                }
                continue;
            }
            let Some((latest_at, latest_value)) = latest else { continue };
            let Some(since) = window.breach_start(|v| rule.breaches(v)) else { continue };
            if latest_at - since < rule.sustain {
                continue;
            }
            let firing = Firing {
                key: condition_key(&key, &rule.id, &self.rules.version, since),
                rule_id: rule.id.clone(),
                rule_version: self.rules.version.clone(),
                priority: rule.priority,
                alarm: rule.alarm,
                event: rule.event,
                escalate_after: rule.escalate_after,
                patient_id: r.patient_id,
                device_id: r.device_id.clone(),
                metric: r.metric,
                value: latest_value,
                since,
                at: latest_at,
            };
            self.active.insert(condition, firing.key);
            out.push(Decision::Started(firing));
        }
        out
    }
}

fn condition_key(key: &Key, rule: &str, version: &str, since: DateTime<Utc>) -> ContentHash {
    let mut h = blake3::Hasher::new();
    h.update(b"vigil.condition.v1\0");
    h.update(&key.0.to_be_bytes());
    for part in [key.1.as_str(), rule, version] {
        h.update(&(part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(&key.2.to_be_bytes());
    h.update(&since.timestamp_millis().to_be_bytes());
    ContentHash(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalise::codes::metric_by_code;

    fn rules() -> RuleSet {
        RuleSet::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/rules/adult-vitals.toml"))).unwrap()
    }

    fn spo2(value: f64, at: DateTime<Utc>) -> Observed {
        Observed {
            patient_id: 1,
            device_id: "OX-1".into(),
            metric: metric_by_code(150456).unwrap(),
            value,
            observed_at: at,
        }
    }

    fn started(d: &[Decision]) -> usize {
        d.iter().filter(|d| matches!(d, Decision::Started(_))).count()
    }

    #[test]
    fn the_default_rules_load() {
        let set = rules();
        assert!(set.rules.len() >= 6);
        assert!(set.rules.iter().any(|r| r.id == "spo2-low" && r.priority == Priority::High && r.alarm && r.event));
    }

    #[test]
    fn a_sustained_desaturation_raises_once_and_clears_past_the_hysteresis() {
        let mut engine = Engine::new(rules());
        let t0 = Utc::now() - Duration::seconds(120);
        let mut decisions = Vec::new();
        // 100 readings below 90 % over 99 s: one condition.
        for i in 0..100 {
            decisions.extend(engine.observe(&spo2(86.0, t0 + Duration::seconds(i)), Utc::now()));
        }
        assert_eq!(started(&decisions), 1, "{decisions:?}");
        let Decision::Started(f) = decisions.iter().find(|d| matches!(d, Decision::Started(_))).unwrap() else {
            unreachable!()
        };
        assert_eq!((f.since, f.at), (t0, t0 + Duration::seconds(60)));
        // 91 % is above the threshold but below the hysteresis: still active, nothing new.
        assert!(engine.observe(&spo2(91.0, t0 + Duration::seconds(100)), Utc::now()).is_empty());
        assert_eq!(
            engine.observe(&spo2(93.0, t0 + Duration::seconds(101)), Utc::now()),
            vec![Decision::Cleared(f.key)]
        );
    }

    #[test]
    fn a_short_dip_or_late_data_raises_nothing() {
        let mut engine = Engine::new(rules());
        let t0 = Utc::now() - Duration::seconds(100);
        for i in 0..30 {
            assert!(engine.observe(&spo2(85.0, t0 + Duration::seconds(i)), Utc::now()).is_empty());
        }
        assert!(engine.observe(&spo2(97.0, t0 + Duration::seconds(30)), Utc::now()).is_empty());
        let hour_ago = Utc::now() - Duration::hours(1);
        let mut late = Engine::new(rules());
        for i in 0..120 {
            assert!(late.observe(&spo2(80.0, hour_ago + Duration::seconds(i)), Utc::now()).is_empty());
        }
    }

    #[test]
    fn out_of_order_readings_are_placed_by_observed_time() {
        let mut engine = Engine::new(rules());
        let t0 = Utc::now() - Duration::seconds(100);
        let mut decisions = engine.observe(&spo2(86.0, t0 + Duration::seconds(61)), Utc::now());
        decisions.extend(engine.observe(&spo2(86.0, t0), Utc::now()));
        assert_eq!(started(&decisions), 1, "the earlier reading completes the 60 s breach");
        // A normal reading arriving late inside the breach would break it, but the condition already fired.
        let mut other = Engine::new(rules());
        let mut d = other.observe(&spo2(86.0, t0), Utc::now());
        d.extend(other.observe(&spo2(97.0, t0 + Duration::seconds(30)), Utc::now()));
        d.extend(other.observe(&spo2(86.0, t0 + Duration::seconds(61)), Utc::now()));
        assert_eq!(started(&d), 0, "a normal reading inside the span breaks the breach");
    }
}
