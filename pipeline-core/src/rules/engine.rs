//! The evaluator: rolling windows per (patient, device, metric), the state of each condition, the
//! last time each paired device was heard from, and each stream's open charting period.
//!
//! It is a plain state machine: readings and clock ticks go in, decisions come out; the rules task
//! does the I/O.

use std::collections::HashMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use tokio::time::Instant;

use super::clock::{DeviceClocks, Placement};
use super::window::RollingWindow;
use super::{Condition, Decision, Observed, Questionable, Rule, RuleSet};
use crate::clock::{Now, Steady};
use crate::model::ContentHash;
use crate::model::Validity;
use crate::model::alarm::{AlarmKind, Firing, condition_key};
use crate::model::codes::{Metric, metric_by_code};
use crate::model::event::{ClinicalEvent, Effective, EventContent, Observation, Statistic};

/// (patient, device, MDC code)
type Stream = (i64, String, u32);

/// The non-invasive blood pressure components (MDC), which go out together as one panel.
const SYSTOLIC: u32 = 150021;
const DIASTOLIC: u32 = 150022;
const MEAN: u32 = 150023;

/// A device paired now: its patient and profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paired {
    /// The patient's store key.
    pub patient_id: i64,
    /// The device's profile, if known.
    pub profile_id: Option<String>,
}

/// A physiological alarm a previous run left open, to take back after a restart.
#[derive(Debug, Clone)]
pub struct OpenAlarm {
    /// Its condition's key.
    pub key: ContentHash,
    /// The rule that raised it.
    pub rule_id: String,
    /// The patient's store key.
    pub patient_id: i64,
    /// The device.
    pub device_id: String,
    /// The metric's MDC code.
    pub mdc_code: u32,
}

/// Everything kept for one (patient, device, metric).
struct StreamState {
    window: RollingWindow,
    /// Each rule's open condition on this stream, by rule index.
    active: Vec<Option<ContentHash>>,
    /// The start of each summary's open charting period, by summary index.
    periods: Vec<Option<DateTime<Utc>>>,
}

/// A systolic condition's clinical event, waiting for the diastolic and mean of the same cycle (they
/// arrive just after it, in the same payload) so it goes out as a blood pressure panel.
struct PendingPanel {
    firing: Firing,
    /// When to send it with what has arrived.
    due: Instant,
}

/// How long a systolic event waits for the rest of its cycle.
const PANEL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A rule's duration as monotonic time (a negative one is none).
fn std(d: Duration) -> std::time::Duration {
    d.to_std().unwrap_or_default()
}

/// A stream that has sent only invalid values: since when, and its "no valid signal" alarm once
/// raised.
struct InvalidRun {
    since: Now,
    alarm: Option<ContentHash>,
}

/// See the module doc.
pub struct Engine {
    rules: RuleSet,
    /// How much history each window keeps (derived from the rules once).
    horizon: Duration,
    streams: HashMap<Stream, StreamState>,
    /// Devices paired now.
    paired: HashMap<String, Paired>,
    /// When each paired device was last heard from (arrival, not observed time).
    last_heard: HashMap<String, Now>,
    /// Open "no data" conditions, per device and rule index.
    offline: HashMap<(String, usize), ContentHash>,
    /// Open "unpaired" conditions, per device and rule index, with the last unpaired data.
    unpaired: HashMap<(String, usize), (ContentHash, Now)>,
    /// Unregistered devices heard within the unpaired rule's quiet time, with when last (at most
    /// [`UNKNOWN_TRACKED`]), and their one aggregated alarm.
    unknown: HashMap<String, Now>,
    unknown_alarm: Option<ContentHash>,
    /// Streams sending only invalid values, per device, MDC code and rule index.
    invalid_since: HashMap<(String, u32, usize), InvalidRun>,
    /// Systolic events waiting for their cycle's diastolic and mean.
    panels: Vec<PendingPanel>,
    /// Each live device's clock offset.
    clocks: DeviceClocks,
    /// The offset from which a device's readings are placed by corrected time: its clock rule's
    /// threshold, or a minute.
    correct_after: Duration,
    /// Open "device clock off" conditions, per device and rule index.
    clock_off: HashMap<(String, usize), ContentHash>,
    /// The first time the engine was given: "now" on the workstation's wall clock is this plus the
    /// monotonic time since, so a jump of that clock moves neither devices' offsets nor lateness.
    anchor: Option<Steady>,
}

impl Engine {
    /// An engine for a rule set.
    pub fn new(rules: RuleSet) -> Engine {
        let correct_after = rules
            .rules
            .iter()
            .find_map(|r| match r.condition {
                Condition::ClockOffset { threshold } => Some(threshold),
                _ => None,
            })
            .unwrap_or(Duration::minutes(1));
        Engine {
            horizon: rules.horizon(),
            rules,
            streams: HashMap::new(),
            paired: HashMap::new(),
            last_heard: HashMap::new(),
            offline: HashMap::new(),
            unpaired: HashMap::new(),
            unknown: HashMap::new(),
            unknown_alarm: None,
            invalid_since: HashMap::new(),
            panels: Vec::new(),
            correct_after,
            clocks: DeviceClocks::default(),
            clock_off: HashMap::new(),
            anchor: None,
        }
    }

    /// Feeds one identified reading; returns the conditions it starts or clears.
    pub fn observe(&mut self, r: &Observed, now: impl Into<Now>) -> Vec<Decision> {
        let now = now.into();
        let steady = self.steady(now);
        let mut out = Vec::new();
        match self.last_heard.get_mut(&r.device_id) {
            Some(heard) => *heard = now,
            None => {
                self.last_heard.insert(r.device_id.clone(), now);
            }
        }
        if !self.offline.is_empty() {
            self.offline.retain(|(device, _), key| {
                let back = *device == r.device_id;
                if back {
                    out.push(Decision::Cleared(*key));
                }
                !back
            });
        }
        let invalid = r.validity == Validity::Invalid;
        out.extend(self.signal_validity(&r.device_id, r.metric, Some(r.patient_id), invalid, now));
        // A live device is evaluated on its own clock's corrected time, so a lagging clock cannot
        // silence it; a reading its own clock disowns is kept out of every window.
        let at = match r.live {
            true => match self.clocks.place(&r.device_id, r.observed_at, steady, self.correct_after) {
                Placement::At(at) => at,
                Placement::Outlier => return out,
            },
            false => r.observed_at,
        };
        if r.live {
            out.extend(self.clock_condition(&r.device_id, Some(r.patient_id), now.wall));
        }
        // An invalid value (probe off, sensor fault) must never look like the patient's physiology;
        // late data is stored but never alarms.
        if invalid || at < steady - self.rules.late_after {
            return out;
        }
        let stream: Stream = (r.patient_id, r.device_id.clone(), r.metric.mdc_code);
        let (rules, horizon) = (&self.rules, self.horizon);
        let state = self.streams.entry(stream.clone()).or_insert_with(|| StreamState {
            window: RollingWindow::new(horizon),
            active: vec![None; rules.rules.len()],
            periods: vec![None; rules.summaries.len()],
        });
        state.window.insert(at, r.value, r.validity);
        for (index, rule) in rules.rules.iter().enumerate() {
            let watched = rule.condition.metric().is_some_and(|m| m.mdc_code == r.metric.mdc_code);
            if !watched || !rule.questionable.admits(r.validity) {
                continue;
            }
            match state.active[index] {
                Some(key) if clears(rule, &state.window) => {
                    state.active[index] = None;
                    out.push(Decision::Cleared(key));
                }
                Some(_) => {}
                None => {
                    if let Some(mut f) = starts(rule, &state.window, &stream, &rules.version) {
                        state.active[index] = Some(f.key);
                        // A systolic value alone is no blood pressure observation: its event waits
                        // for the cycle's other values. The alarm does not wait.
                        if f.event && r.metric.mdc_code == SYSTOLIC {
                            f.event = false;
                            self.panels.push(PendingPanel { firing: f.clone(), due: now.mono + PANEL_WAIT });
                        }
                        out.push(Decision::Started(f));
                    }
                }
            }
        }
        for (summary, period) in rules.summaries.iter().zip(state.periods.iter_mut()) {
            if period.is_none() && summary.metrics.iter().any(|m| m.mdc_code == r.metric.mdc_code) {
                *period = at.duration_trunc(summary.every).ok();
            }
        }
        if !self.panels.is_empty() && r.metric.mdc_code == MEAN {
            out.extend(self.send_panels(|p| p.firing.device_id == r.device_id && p.firing.at == at));
        }
        out
    }

    /// How much history the windows keep: what a restart must read back to rebuild them.
    pub fn horizon(&self) -> Duration {
        self.horizon
    }

    /// Puts a stored reading back into its window after a restart, evaluating nothing: what
    /// conditions were open is settled by [`Engine::resume`], and nothing is paged or charted twice.
    pub fn replay(&mut self, r: &Observed) {
        if r.validity == Validity::Invalid {
            return;
        }
        let stream: Stream = (r.patient_id, r.device_id.clone(), r.metric.mdc_code);
        let (rules, horizon) = (&self.rules, self.horizon);
        let state = self.streams.entry(stream).or_insert_with(|| StreamState {
            window: RollingWindow::new(horizon),
            active: vec![None; rules.rules.len()],
            periods: vec![None; rules.summaries.len()],
        });
        state.window.insert(r.observed_at, r.value, r.validity);
    }

    /// Takes back a condition whose alarm a previous run left open, if the rebuilt window shows it
    /// still holds (its newest reading does not clear it): the alarm keeps its key, so no duplicate
    /// is raised. `false` when it no longer holds, or its rule is gone.
    pub fn resume(&mut self, open: &OpenAlarm) -> bool {
        let Some(index) = self.rules.rules.iter().position(|r| r.id == open.rule_id) else { return false };
        let rule = &self.rules.rules[index];
        let stream: Stream = (open.patient_id, open.device_id.clone(), open.mdc_code);
        let Some(state) = self.streams.get_mut(&stream) else { return false };
        let holds = state.window.latest(rule.questionable).is_some() && !clears(rule, &state.window);
        if holds {
            state.active[index] = Some(open.key);
        }
        holds
    }

    /// Sends the pending panels `ready` picks, each with the diastolic and mean of its cycle.
    fn send_panels(&mut self, ready: impl Fn(&PendingPanel) -> bool) -> Vec<Decision> {
        let (now_ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.panels).into_iter().partition(ready);
        self.panels = waiting;
        now_ready.into_iter().filter_map(|p| self.panel_event(&p.firing)).map(Decision::Event).collect()
    }

    /// The blood pressure panel of a systolic firing: its value with the diastolic and mean observed
    /// at the same time by the same device, the graver validity of the three. Without a diastolic it
    /// stays the systolic observation alone.
    fn panel_event(&self, f: &Firing) -> Option<ClinicalEvent> {
        let patient_id = f.patient_id?;
        let companion =
            |code: u32| self.streams.get(&(patient_id, f.device_id.clone(), code)).and_then(|s| s.window.at(f.at));
        let systolic = f.value?;
        let observation = match companion(DIASTOLIC) {
            Some((diastolic, dia_validity)) => {
                let mean = companion(MEAN);
                let validity = mean.iter().fold(f.validity.worst(dia_validity), |v, (_, m)| v.worst(*m));
                Observation::BloodPressure {
                    systolic,
                    diastolic,
                    mean: mean.map(|(m, _)| m),
                    effective: Effective::At { at: f.at },
                    validity,
                }
            }
            None => Observation::Vital {
                metric: f.metric?,
                value: systolic,
                effective: Effective::At { at: f.at },
                validity: f.validity,
                method: None,
            },
        };
        Some(ClinicalEvent {
            patient_id,
            device_id: f.device_id.clone(),
            origin: format!("rule:{}@{}", f.rule_id, f.rule_version),
            content: EventContent::Single { observation },
        })
    }

    /// The workstation's wall-clock time as of the engine's first reading, moved on by monotonic
    /// time: what devices' measured times are compared with.
    fn steady(&mut self, now: Now) -> DateTime<Utc> {
        self.anchor.get_or_insert_with(|| Steady::new(now)).at(now)
    }

    /// Each live device's clock offset, largest first (for the board).
    pub fn device_clocks(&self) -> Vec<super::clock::DeviceClock> {
        let mut clocks: Vec<_> = self
            .clocks
            .offsets()
            .map(|(device_id, offset)| super::clock::DeviceClock {
                device_id: device_id.to_string(),
                offset_secs: offset.num_seconds(),
            })
            .collect();
        clocks.sort_by_key(|c| (std::cmp::Reverse(c.offset_secs.abs()), c.device_id.clone()));
        clocks
    }

    /// Raises "device clock off by N s" past the rule's threshold; clears it under half of it.
    fn clock_condition(&mut self, device: &str, patient_id: Option<i64>, now: DateTime<Utc>) -> Vec<Decision> {
        let Some(offset) = self.clocks.offset(device) else { return Vec::new() };
        let mut out = Vec::new();
        for (index, rule) in self.rules.rules.iter().enumerate() {
            let Condition::ClockOffset { threshold } = rule.condition else { continue };
            let condition = (device.to_string(), index);
            match self.clock_off.get(&condition) {
                Some(key) if offset.abs() < threshold / 2 => {
                    out.push(Decision::Cleared(*key));
                    self.clock_off.remove(&condition);
                }
                None if offset.abs() > threshold => {
                    let mut f = technical(rule, &self.rules.version, device, None, patient_id, now, now);
                    let (secs, way) =
                        (offset.num_seconds().abs(), if offset > Duration::zero() { "behind" } else { "ahead" });
                    f.description = format!("Device clock off by {secs} s ({way}): {}", rule.description);
                    self.clock_off.insert(condition, f.key);
                    out.push(Decision::Started(f));
                }
                _ => {}
            }
        }
        out
    }

    /// A device sent a value outside its metric's plausible range (it went to quarantine): no
    /// valid signal for that metric, like an invalid one.
    pub fn implausible(&mut self, device_id: &str, metric: &'static Metric, now: impl Into<Now>) -> Vec<Decision> {
        let patient_id = self.paired.get(device_id).map(|p| p.patient_id);
        self.signal_validity(device_id, metric, patient_id, true, now.into())
    }

    /// Tracks how long a stream has sent only invalid values, by arrival time: past the rule's
    /// time it raises "no valid signal"; the first value that is not invalid clears it.
    fn signal_validity(
        &mut self,
        device_id: &str,
        metric: &'static Metric,
        patient_id: Option<i64>,
        invalid: bool,
        now: Now,
    ) -> Vec<Decision> {
        let mut out = Vec::new();
        for (index, rule) in self.rules.rules.iter().enumerate() {
            let Condition::NoValidSignal { after } = rule.condition else { continue };
            let condition = (device_id.to_string(), metric.mdc_code, index);
            if !invalid {
                if let Some(InvalidRun { alarm: Some(key), .. }) = self.invalid_since.remove(&condition) {
                    out.push(Decision::Cleared(key));
                }
                continue;
            }
            let run = self.invalid_since.entry(condition).or_insert(InvalidRun { since: now, alarm: None });
            if run.alarm.is_none() && now.mono - run.since.mono >= std(after) {
                let version = &self.rules.version;
                let f = technical(rule, version, device_id, Some(metric), patient_id, run.since.wall, now.wall);
                run.alarm = Some(f.key);
                out.push(Decision::Started(f));
            }
        }
        out
    }

    /// A device sent data while unpaired.
    pub fn unpaired_data(&mut self, device_id: &str, now: impl Into<Now>) -> Vec<Decision> {
        let now = now.into();
        let mut out = Vec::new();
        for (index, rule) in self.rules.rules.iter().enumerate() {
            if !matches!(rule.condition, Condition::Unpaired { .. }) {
                continue;
            }
            let condition = (device_id.to_string(), index);
            if let Some((_, last)) = self.unpaired.get_mut(&condition) {
                *last = now;
                continue;
            }
            let f = technical(rule, &self.rules.version, device_id, None, None, now.wall, now.wall);
            self.unpaired.insert(condition, (f.key, now));
            out.push(Decision::Started(f));
        }
        out
    }

    /// An unregistered device sent data. Unknown devices share one alarm, raised at the next tick
    /// with how many there were ("N unknown devices in the last M minutes").
    pub fn unknown_data(&mut self, device_id: &str, now: impl Into<Now>) -> Vec<Decision> {
        let now = now.into();
        if let Some(last) = self.unknown.get_mut(device_id) {
            *last = now;
        } else if self.unknown.len() < UNKNOWN_TRACKED {
            self.unknown.insert(device_id.to_string(), now);
        }
        Vec::new()
    }

    /// The aggregated unknown-device alarm: raised while unknown devices were heard within the
    /// unpaired rule's quiet time, cleared once none was.
    fn unknown_devices(&mut self, now: Now) -> Vec<Decision> {
        let Some(rule) = self.rules.rules.iter().find(|r| matches!(r.condition, Condition::Unpaired { .. })) else {
            self.unknown.clear();
            return Vec::new();
        };
        let Condition::Unpaired { clear_after } = rule.condition else { return Vec::new() };
        self.unknown.retain(|_, last| now.mono - last.mono <= std(clear_after));
        match (self.unknown.is_empty(), self.unknown_alarm) {
            (true, Some(key)) => {
                self.unknown_alarm = None;
                vec![Decision::Cleared(key)]
            }
            (false, None) => {
                let n = self.unknown.len();
                let mut examples: Vec<&str> = self.unknown.keys().map(String::as_str).collect();
                examples.sort_unstable();
                examples.truncate(3);
                let at_least = if n >= UNKNOWN_TRACKED { "at least " } else { "" };
                let mut f = technical(rule, &self.rules.version, UNKNOWN_DEVICES, None, None, now.wall, now.wall);
                f.description = format!(
                    "{at_least}{n} unknown device{} in the last {} minutes (e.g. {}): register them, or find what sends as them",
                    if n == 1 { "" } else { "s" },
                    clear_after.num_minutes().max(1),
                    examples.join(", ")
                );
                self.unknown_alarm = Some(f.key);
                vec![Decision::Started(f)]
            }
            _ => Vec::new(),
        }
    }

    /// The clock moved on: devices gone quiet, unpaired devices gone quiet or paired, charting
    /// periods closed. `paired`, when given, is the registry's current pairings.
    pub fn tick(&mut self, now: impl Into<Now>, paired: Option<HashMap<String, Paired>>) -> Vec<Decision> {
        let now = now.into();
        let steady = self.steady(now);
        let mut out = Vec::new();
        if let Some(paired) = paired {
            for device in paired.keys() {
                // A device's silence is counted from when we first knew it paired.
                self.last_heard.entry(device.clone()).or_insert(now);
            }
            self.paired = paired;
        }
        let paired = &self.paired;
        self.offline.retain(|(device, _), key| {
            let still = paired.contains_key(device);
            if !still {
                out.push(Decision::Cleared(*key));
            }
            still
        });
        self.unpaired.retain(|(device, index), (key, last)| {
            let Condition::Unpaired { clear_after } = self.rules.rules[*index].condition else { return true };
            let over = paired.contains_key(device) || now.mono - last.mono > std(clear_after);
            if over {
                out.push(Decision::Cleared(*key));
            }
            !over
        });
        for (index, rule) in self.rules.rules.iter().enumerate() {
            let Condition::NoData { after, profiles } = &rule.condition else { continue };
            for (device, p) in paired {
                let watched = profiles.is_empty() || p.profile_id.as_ref().is_some_and(|id| profiles.contains(id));
                let heard = self.last_heard.get(device).copied().unwrap_or(now);
                let condition = (device.clone(), index);
                if watched && now.mono - heard.mono > std(*after) && !self.offline.contains_key(&condition) {
                    let f =
                        technical(rule, &self.rules.version, device, None, Some(p.patient_id), heard.wall, now.wall);
                    self.offline.insert(condition, f.key);
                    out.push(Decision::Started(f));
                }
            }
        }
        out.extend(self.unknown_devices(now));
        out.extend(self.close_periods(steady));
        out.extend(self.send_panels(|p| p.due <= now.mono));
        out
    }

    /// Summarises every charting period that ended `late_after` ago (so late readings made it in).
    fn close_periods(&mut self, now: DateTime<Utc>) -> Vec<Decision> {
        let mut out = Vec::new();
        let late_after = self.rules.late_after;
        for (stream, state) in self.streams.iter_mut() {
            let Some(latest) = state.window.newest() else { continue };
            for (summary, period) in self.rules.summaries.iter().zip(state.periods.iter_mut()) {
                let Some(start) = period else { continue };
                while *start + summary.every + late_after <= now && *start <= latest {
                    let next = *start + summary.every;
                    // Inclusive, as FHIR's Period.end is: the period's last millisecond.
                    let end = next - Duration::milliseconds(1);
                    // A period without a valid reading sends nothing.
                    if let (Some(stats), Some(metric)) = (state.window.stats(*start, end), metric_by_code(stream.2)) {
                        out.push(Decision::Event(ClinicalEvent {
                            patient_id: stream.0,
                            device_id: stream.1.clone(),
                            origin: format!("summary:{}@{}", summary.id, self.rules.version),
                            content: EventContent::Single {
                                observation: Observation::Vital {
                                    metric,
                                    value: round_to(stats.median, metric.decimals),
                                    effective: Effective::Period { start: *start, end },
                                    validity: stats.validity,
                                    method: Some(Statistic {
                                        minutes: summary.every.num_minutes(),
                                        readings: stats.count,
                                    }),
                                },
                            },
                        }));
                    }
                    *start = next;
                }
            }
        }
        out
    }
}

/// A statistic at its metric's precision (half away from zero).
fn round_to(value: f64, decimals: u8) -> f64 {
    let scale = 10f64.powi(i32::from(decimals));
    (value * scale).round() / scale
}

/// Whether an open condition is over, judged on the newest reading.
fn clears(rule: &Rule, window: &RollingWindow) -> bool {
    let q = rule.questionable;
    let Some((at, value)) = window.latest(q) else { return false };
    match &rule.condition {
        Condition::Threshold { below, clear_at, .. } => {
            if *below {
                value >= *clear_at
            } else {
                value <= *clear_at
            }
        }
        Condition::Rate { falling, within, clear_at, .. } => {
            change(window, at, value, *falling, *within, q).is_none_or(|(_, c)| c < *clear_at)
        }
        _ => false,
    }
}

/// The change over `within` up to the newest reading, and when the extreme it is measured from was.
fn change(
    window: &RollingWindow,
    at: DateTime<Utc>,
    value: f64,
    falling: bool,
    within: Duration,
    q: Questionable,
) -> Option<(DateTime<Utc>, f64)> {
    let (since, extreme) = window.extreme(at - within, at, falling, q)?;
    Some((since, if falling { extreme - value } else { value - extreme }))
}

/// The condition a physiological rule sees in the window, if it holds now.
fn starts(rule: &Rule, window: &RollingWindow, stream: &Stream, version: &str) -> Option<Firing> {
    let q = rule.questionable;
    let (at, value) = window.latest(q)?;
    let (metric, since) = match &rule.condition {
        Condition::Threshold { metric, threshold, below, sustain, .. } => {
            let since = window.breach_start(|v| if *below { v < *threshold } else { v > *threshold }, q)?;
            (at - since >= *sustain).then_some((*metric, since))?
        }
        Condition::Rate { metric, by, falling, within, .. } => {
            let (since, c) = change(window, at, value, *falling, *within, q)?;
            (c >= *by).then_some((*metric, since))?
        }
        _ => return None,
    };
    let parts: [&[u8]; 5] =
        [&stream.0.to_be_bytes(), stream.1.as_bytes(), rule.id.as_bytes(), version.as_bytes(), &stream.2.to_be_bytes()];
    let validity = window.validity(since, at, q);
    let description = match validity {
        Validity::Questionable => format!("{} (questionable signal)", rule.description),
        _ => rule.description.clone(),
    };
    Some(Firing {
        key: condition_key(&parts, since),
        kind: AlarmKind::Physiological,
        rule_id: rule.id.clone(),
        rule_version: version.to_string(),
        description,
        priority: rule.priority,
        alarm: rule.alarm,
        event: rule.event,
        escalate_after: rule.escalate_after,
        patient_id: Some(stream.0),
        device_id: stream.1.clone(),
        metric: Some(metric),
        value: Some(value),
        validity,
        since,
        at,
    })
}

/// A technical condition about a device, or about one of its metrics when `metric` is given (the
/// metric's code is then part of the condition's key).
/// Unknown devices tracked at once for their aggregated alarm; more are counted as "at least".
const UNKNOWN_TRACKED: usize = 10_000;
/// The device field of the aggregated unknown-device alarm.
pub const UNKNOWN_DEVICES: &str = "unknown-devices";

fn technical(
    rule: &Rule,
    version: &str,
    device: &str,
    metric: Option<&'static Metric>,
    patient_id: Option<i64>,
    since: DateTime<Utc>,
    at: DateTime<Utc>,
) -> Firing {
    let code = metric.map(|m| m.mdc_code.to_be_bytes());
    let mut parts: Vec<&[u8]> = vec![device.as_bytes()];
    parts.extend(code.as_ref().map(|c| &c[..]));
    parts.extend([rule.id.as_bytes(), version.as_bytes()]);
    Firing {
        key: condition_key(&parts, since),
        kind: AlarmKind::Technical,
        rule_id: rule.id.clone(),
        rule_version: version.to_string(),
        description: rule.description.clone(),
        priority: rule.priority,
        alarm: true,
        event: false,
        escalate_after: rule.escalate_after,
        patient_id,
        device_id: device.to_string(),
        metric,
        value: None,
        validity: Validity::Valid,
        since,
        at,
    }
}

#[cfg(test)]
mod tests;
