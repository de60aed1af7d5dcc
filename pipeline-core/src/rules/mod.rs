//! Rules as versioned data, evaluated over rolling windows of readings.
//!
//! Invariant: a condition raises one alarm (and at most one event) from the moment it starts until
//! it clears; repeats inside it raise nothing. Readings observed longer ago than `late_after_secs`
//! are never evaluated (late data is stored, but a night's upload must not page anyone), except a
//! steadily lagging device's, which are placed by corrected time (`clock`). Readings may arrive out
//! of order: windows are ordered by observed time, not arrival. Invalid readings enter no window;
//! each rule says whether questionable ones count.
//!
//! Rules watch readings and devices: sustained thresholds with hysteresis, rate of change, and the
//! technical conditions (no data from a paired device, data from an unpaired one, no valid signal,
//! a device clock off); charting summaries turn a period's valid readings into one Observation each.

pub mod clock;
pub mod engine;
pub mod recover;
pub mod run;
pub mod window;

use std::path::Path;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

pub use engine::Engine;

use crate::model::alarm::{AlarmKind, Firing, Priority};
use crate::model::codes::{Metric, metric_by_ref};
use crate::model::{ContentHash, Validity};

/// What a physiological rule emits when its condition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Emit {
    /// An alarm, to the alarm path.
    Alarm,
    /// A clinical event, to validation and the outbox.
    Event,
}

/// What a physiological rule does with readings the device flagged questionable (low perfusion,
/// motion). Every such rule must say: it is a clinical choice, signed off per rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Questionable {
    /// They count: a low-perfusion desaturation in a shocked patient must still alarm. The alarm
    /// says "questionable signal".
    Include,
    /// They are ignored: neither start nor clear the condition.
    Exclude,
}

impl Questionable {
    /// Whether a reading of this validity feeds the rule (invalid ones never do).
    pub fn admits(self, validity: Validity) -> bool {
        match validity {
            Validity::Invalid => false,
            Validity::Questionable => self == Questionable::Include,
            Validity::Valid | Validity::Demo => true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    version: String,
    late_after_secs: u64,
    #[serde(default)]
    rule: Vec<RuleEntry>,
    #[serde(default)]
    summary: Vec<SummaryEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum RuleEntry {
    Threshold {
        id: String,
        description: String,
        metric: String,
        below: Option<f64>,
        above: Option<f64>,
        clear_at: f64,
        for_secs: u64,
        priority: Priority,
        emit: Vec<Emit>,
        escalate_after_secs: Option<u64>,
        questionable: Questionable,
    },
    Rate {
        id: String,
        description: String,
        metric: String,
        rises_by: Option<f64>,
        falls_by: Option<f64>,
        within_secs: u64,
        clear_at: f64,
        priority: Priority,
        emit: Vec<Emit>,
        escalate_after_secs: Option<u64>,
        questionable: Questionable,
    },
    NoData {
        id: String,
        description: String,
        after_secs: u64,
        priority: Priority,
        #[serde(default)]
        profiles: Vec<String>,
    },
    Unpaired {
        id: String,
        description: String,
        priority: Priority,
        clear_after_secs: u64,
    },
    NoValidSignal {
        id: String,
        description: String,
        after_secs: u64,
        priority: Priority,
        escalate_after_secs: Option<u64>,
    },
    ClockOffset {
        id: String,
        description: String,
        threshold_secs: u64,
        priority: Priority,
        escalate_after_secs: Option<u64>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SummaryEntry {
    id: String,
    description: String,
    metrics: Vec<String>,
    every_secs: u64,
}

/// What a rule watches for.
#[derive(Debug, Clone)]
pub enum Condition {
    /// A metric beyond a threshold for a sustained time; clears past `clear_at` (hysteresis).
    Threshold {
        /// The metric.
        metric: &'static Metric,
        /// The threshold.
        threshold: f64,
        /// True for "below", false for "above".
        below: bool,
        /// The value past which the condition clears.
        clear_at: f64,
        /// How long the breach must last.
        sustain: Duration,
    },
    /// A metric that rose (or fell) by at least `by` within `within`; clears when the change over
    /// `within` is back under `clear_at`.
    Rate {
        /// The metric.
        metric: &'static Metric,
        /// The change that starts the condition, always positive.
        by: f64,
        /// True for "falls by", false for "rises by".
        falling: bool,
        /// The window the change is measured over.
        within: Duration,
        /// The change under which it clears.
        clear_at: f64,
    },
    /// A paired device sent nothing for `after` (technical).
    NoData {
        /// Silence that starts the condition.
        after: Duration,
        /// Only devices of these profiles (all when empty): overnight uploaders are not offline.
        profiles: Vec<String>,
    },
    /// A device sends data while paired with no patient (technical); clears when it is paired or
    /// has been quiet for `clear_after`.
    Unpaired {
        /// Quiet time that clears it.
        clear_after: Duration,
    },
    /// A device keeps sending a metric, but only invalid values (probe off, sensor fault), for
    /// `after` (technical, per device and metric): the patient is not monitored for it. Clears when a
    /// value that is not invalid arrives.
    NoValidSignal {
        /// How long only invalid values may arrive.
        after: Duration,
    },
    /// A live device's clock is off by more than `threshold` either way (technical, per device);
    /// clears once the offset is back under half of it. Its readings are evaluated on corrected time
    /// meanwhile.
    ClockOffset {
        /// The offset that starts it.
        threshold: Duration,
    },
}

impl Condition {
    /// The metric a physiological condition watches.
    pub fn metric(&self) -> Option<&'static Metric> {
        match self {
            Condition::Threshold { metric, .. } | Condition::Rate { metric, .. } => Some(metric),
            _ => None,
        }
    }

    /// How far back the condition needs readings.
    fn span(&self) -> Duration {
        match self {
            Condition::Threshold { sustain, .. } => *sustain,
            Condition::Rate { within, .. } => *within,
            _ => Duration::zero(),
        }
    }
}

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Stable id, e.g. `spo2-low`.
    pub id: String,
    /// What it means, in words.
    pub description: String,
    /// What it watches for.
    pub condition: Condition,
    /// Alarm priority.
    pub priority: Priority,
    /// Whether it raises an alarm.
    pub alarm: bool,
    /// Whether it raises a clinical event.
    pub event: bool,
    /// Re-notify, with raised priority, when not acknowledged this long after the alarm.
    pub escalate_after: Option<Duration>,
    /// Whether questionable readings feed it (technical rules: not used).
    pub questionable: Questionable,
}

impl Rule {
    /// Physiological rules watch a patient; technical ones watch the monitoring.
    pub fn kind(&self) -> AlarmKind {
        if self.condition.metric().is_some() { AlarmKind::Physiological } else { AlarmKind::Technical }
    }
}

/// A periodic charting summary: each period's median of each metric, per device, as one
/// Observation with an effective period (what a nurse would chart every 15 minutes).
#[derive(Debug, Clone)]
pub struct Summary {
    /// Stable id, e.g. `charting-15min`.
    pub id: String,
    /// What it is, in words.
    pub description: String,
    /// The metrics summarised.
    pub metrics: Vec<&'static Metric>,
    /// The period, aligned to the clock (00, 15, 30, 45 for 15 minutes).
    pub every: Duration,
}

/// A loaded, checked rule file.
#[derive(Debug, Clone)]
pub struct RuleSet {
    /// The file's version id.
    pub version: String,
    /// Readings older than this are not evaluated; a summary period closes this long after its end.
    pub late_after: Duration,
    /// The rules.
    pub rules: Vec<Rule>,
    /// The charting summaries.
    pub summaries: Vec<Summary>,
}

/// An alarm limit of an active threshold rule: what the trend chart draws.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleLimit {
    /// The metric's MDC code.
    pub mdc_code: u32,
    /// The threshold.
    pub value: f64,
    /// The rule and its direction, e.g. `spo2-low: below 90`.
    pub label: String,
}

impl RuleSet {
    /// The limits of the threshold rules that raise alarms.
    pub fn alarm_limits(&self) -> Vec<RuleLimit> {
        self.rules
            .iter()
            .filter(|r| r.alarm)
            .filter_map(|r| match &r.condition {
                Condition::Threshold { metric, threshold, below, .. } => Some(RuleLimit {
                    mdc_code: metric.mdc_code,
                    value: *threshold,
                    label: format!("{}: {} {threshold}", r.id, if *below { "below" } else { "above" }),
                }),
                _ => None,
            })
            .collect()
    }

    /// After how long without data a device of `profile_id` raises its no-data alarm: the shortest
    /// no-data rule that watches the profile, if any does.
    pub fn no_data_after(&self, profile_id: &str) -> Option<Duration> {
        self.rules
            .iter()
            .filter_map(|r| match &r.condition {
                Condition::NoData { after, profiles }
                    if profiles.is_empty() || profiles.iter().any(|p| p == profile_id) =>
                {
                    Some(*after)
                }
                _ => None,
            })
            .min()
    }
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
        let rules = file.rule.into_iter().filter_map(|entry| rule(entry, &mut problems)).collect();
        let summaries = file
            .summary
            .into_iter()
            .map(|s| {
                let metrics: Vec<_> = s
                    .metrics
                    .iter()
                    .filter_map(|m| {
                        let found = metric_by_ref(m);
                        if found.is_none() {
                            problems.push(format!("summary {}: unknown metric {m:?}", s.id));
                        }
                        found
                    })
                    .collect();
                if s.every_secs < 60 {
                    problems.push(format!("summary {}: every_secs must be at least 60", s.id));
                }
                Summary { id: s.id, description: s.description, metrics, every: Duration::seconds(s.every_secs as i64) }
            })
            .collect();
        if problems.is_empty() {
            Ok(RuleSet {
                version: file.version,
                late_after: Duration::seconds(file.late_after_secs as i64),
                rules,
                summaries,
            })
        } else {
            Err(fail(problems))
        }
    }

    /// How much history the engine must keep per stream.
    pub fn horizon(&self) -> Duration {
        let rules = self.rules.iter().map(|r| r.condition.span());
        let summaries = self.summaries.iter().map(|s| s.every + self.late_after);
        rules.chain(summaries).max().unwrap_or_default() + Duration::minutes(5)
    }
}

fn secs(s: u64) -> Duration {
    Duration::seconds(s as i64)
}

fn metric_of(id: &str, m: &str, problems: &mut Vec<String>) -> Option<&'static Metric> {
    let found = metric_by_ref(m);
    if found.is_none() {
        problems.push(format!("rule {id}: unknown metric {m:?}"));
    }
    found
}

fn rule(entry: RuleEntry, problems: &mut Vec<String>) -> Option<Rule> {
    let (id, description, condition, priority, emit, escalate, questionable) = match entry {
        RuleEntry::Threshold {
            id,
            description,
            metric,
            below,
            above,
            clear_at,
            for_secs,
            priority,
            emit,
            escalate_after_secs,
            questionable,
        } => {
            let metric = metric_of(&id, &metric, problems);
            let (threshold, below) = match (below, above) {
                (Some(t), None) => (t, true),
                (None, Some(t)) => (t, false),
                _ => {
                    problems.push(format!("rule {id}: give exactly one of `below` and `above`"));
                    return None;
                }
            };
            if (below && clear_at < threshold) || (!below && clear_at > threshold) {
                problems.push(format!("rule {id}: clear_at {clear_at} lies on the breaching side of {threshold}"));
            }
            let condition =
                Condition::Threshold { metric: metric?, threshold, below, clear_at, sustain: secs(for_secs) };
            (id, description, condition, priority, emit, escalate_after_secs, questionable)
        }
        RuleEntry::Rate {
            id,
            description,
            metric,
            rises_by,
            falls_by,
            within_secs,
            clear_at,
            priority,
            emit,
            escalate_after_secs,
            questionable,
        } => {
            let metric = metric_of(&id, &metric, problems);
            let (by, falling) = match (rises_by, falls_by) {
                (Some(by), None) => (by, false),
                (None, Some(by)) => (by, true),
                _ => {
                    problems.push(format!("rule {id}: give exactly one of `rises_by` and `falls_by`"));
                    return None;
                }
            };
            if by <= 0.0 || clear_at >= by || within_secs == 0 {
                problems.push(format!(
                    "rule {id}: the change ({by}) must be positive, above clear_at ({clear_at}), over a within_secs above 0"
                ));
            }
            let condition = Condition::Rate { metric: metric?, by, falling, within: secs(within_secs), clear_at };
            (id, description, condition, priority, emit, escalate_after_secs, questionable)
        }
        RuleEntry::NoData { id, description, after_secs, priority, profiles } => {
            let condition = Condition::NoData { after: secs(after_secs), profiles };
            (id, description, condition, priority, vec![Emit::Alarm], None, Questionable::Include)
        }
        RuleEntry::Unpaired { id, description, priority, clear_after_secs } => {
            let condition = Condition::Unpaired { clear_after: secs(clear_after_secs) };
            (id, description, condition, priority, vec![Emit::Alarm], None, Questionable::Include)
        }
        RuleEntry::ClockOffset { id, description, threshold_secs, priority, escalate_after_secs } => {
            let condition = Condition::ClockOffset { threshold: secs(threshold_secs) };
            (id, description, condition, priority, vec![Emit::Alarm], escalate_after_secs, Questionable::Include)
        }
        RuleEntry::NoValidSignal { id, description, after_secs, priority, escalate_after_secs } => {
            let condition = Condition::NoValidSignal { after: secs(after_secs) };
            (id, description, condition, priority, vec![Emit::Alarm], escalate_after_secs, Questionable::Include)
        }
    };
    if emit.is_empty() {
        problems.push(format!("rule {id}: emits nothing"));
    }
    Some(Rule {
        id,
        description,
        condition,
        priority,
        alarm: emit.contains(&Emit::Alarm),
        event: emit.contains(&Emit::Event),
        escalate_after: escalate.map(secs),
        questionable,
    })
}

/// A reading as the rules see it: identified, with its patient.
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
    /// What the device said of it: an invalid reading shows the device is sending, but never enters
    /// a window, so it feeds no alarm and no charting statistic.
    pub validity: Validity,
    /// It comes from a live device (its profile's `delivery = "live"`), whose clock is watched; a
    /// batch upload is old by design.
    pub live: bool,
}

/// What the ingest writer tells the rules.
#[derive(Debug, Clone)]
pub enum RuleInput {
    /// A reading of a paired patient: accepted, or held for want of consent to store it (a bedside
    /// alarm never waits on consent).
    Reading(Observed),
    /// A registered device sent data while paired with no patient (it went to quarantine).
    Unpaired {
        /// The device.
        device_id: String,
    },
    /// A device no one registered sent data (it went to quarantine). Such devices share one
    /// aggregated alarm: a flood of made-up ids must not page once per id.
    Unknown {
        /// The device id the payload named.
        device_id: String,
    },
    /// A value outside its metric's plausible range (quarantined): the device sends, but not a
    /// value that can be the patient's, so for the rules it is no valid signal.
    Implausible {
        /// The device.
        device_id: String,
        /// What it claimed to measure.
        metric: &'static Metric,
    },
}

/// What the engine decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// A condition started.
    Started(Firing),
    /// A condition cleared (its alarm's key).
    Cleared(ContentHash),
    /// A clinical event to submit that no firing carries: a charting summary, or the blood pressure
    /// panel of a systolic condition once its cycle's other values arrived.
    Event(crate::model::event::ClinicalEvent),
}
