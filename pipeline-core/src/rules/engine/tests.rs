use std::path::Path;

use super::*;
use crate::model::Validity;
use crate::model::alarm::Priority;

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
        validity: Validity::Valid,
        live: false,
    }
}

fn started(d: &[Decision]) -> Vec<&Firing> {
    d.iter()
        .filter_map(|d| match d {
            Decision::Started(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn started_by<'a>(d: &'a [Decision], rule: &str) -> Vec<&'a Firing> {
    started(d).into_iter().filter(|f| f.rule_id == rule).collect()
}

fn paired(device: &str, profile: &str) -> Option<HashMap<String, Paired>> {
    Some(HashMap::from([(device.to_string(), Paired { patient_id: 1, profile_id: Some(profile.into()) })]))
}

#[test]
fn the_default_rules_load_with_every_kind() {
    let set = rules();
    let has = |id: &str| set.rules.iter().find(|r| r.id == id).unwrap();
    assert!(has("spo2-low").priority == Priority::High && has("spo2-low").alarm && has("spo2-low").event);
    assert!(matches!(has("spo2-falling").condition, Condition::Rate { falling: true, .. }));
    assert_eq!(has("device-offline").kind(), AlarmKind::Technical);
    assert!(matches!(has("device-unpaired").condition, Condition::Unpaired { .. }));
    assert_eq!(set.summaries[0].every, Duration::minutes(15));
}

#[test]
fn a_rule_file_with_mistakes_reports_each() {
    let dir = std::env::temp_dir().join(format!("vigil-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        r#"version = "x"
late_after_secs = 60
[[rule]]
kind = "rate"
id = "r"
description = "d"
metric = "MDC_NOPE"
rises_by = 2.0
within_secs = 10
clear_at = 5.0
priority = "low"
emit = ["alarm"]
questionable = "exclude"
[[summary]]
id = "s"
description = "d"
metrics = ["MDC_RESP_RATE"]
every_secs = 10
"#,
    )
    .unwrap();
    let err = RuleSet::load(&file).unwrap_err();
    assert_eq!(err.problems.len(), 3, "{:?}", err.problems);
    assert!(err.problems.iter().any(|p| p.contains("unknown metric \"MDC_NOPE\"")));
    assert!(err.problems.iter().any(|p| p.contains("above clear_at")));
    assert!(err.problems.iter().any(|p| p.contains("every_secs")));
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
    let low = started_by(&decisions, "spo2-low");
    assert_eq!(low.len(), 1, "{decisions:?}");
    let f = low[0].clone();
    assert_eq!((f.since, f.at, f.kind), (t0, t0 + Duration::seconds(60), AlarmKind::Physiological));
    // 91 % is above the threshold but below the hysteresis: still active, nothing new.
    assert!(started(&engine.observe(&spo2(91.0, t0 + Duration::seconds(100)), Utc::now())).is_empty());
    let cleared = engine.observe(&spo2(93.0, t0 + Duration::seconds(101)), Utc::now());
    assert!(cleared.contains(&Decision::Cleared(f.key)), "{cleared:?}");
}

#[test]
fn invalid_readings_feed_no_alarm_and_no_window() {
    let mut engine = Engine::new(rules());
    let t0 = Utc::now() - Duration::seconds(120);
    let probe_off = |value, at| Observed { validity: Validity::Invalid, ..spo2(value, at) };
    // Probe off: the device sends SpO2 0 (or 85) flagged invalid for 100 s. No condition starts.
    for i in 0..100 {
        let value = if i % 2 == 0 { 0.0 } else { 85.0 };
        let d = engine.observe(&probe_off(value, t0 + Duration::seconds(i)), Utc::now());
        assert!(started(&d).is_empty(), "reading {i}: {d:?}");
    }
    // The device still counts as heard from: no "device offline" alarm.
    let ticked = engine.tick(Utc::now(), paired("OX-1", "acme-ox100"));
    assert!(started_by(&ticked, "device-offline").is_empty(), "{ticked:?}");
    // Valid low readings after it start their own 60 s: the invalid ones did not count towards it.
    let t1 = t0 + Duration::seconds(100);
    for i in 0..59 {
        assert!(started_by(&engine.observe(&spo2(85.0, t1 + Duration::seconds(i)), Utc::now()), "spo2-low").is_empty());
    }
    let d = engine.observe(&spo2(85.0, t1 + Duration::seconds(60)), Utc::now());
    assert_eq!(started_by(&d, "spo2-low").len(), 1, "{d:?}");
}

#[test]
fn a_stream_of_only_invalid_values_raises_no_valid_signal_once_and_clears_on_valid_data() {
    let mut engine = Engine::new(rules());
    let t0 = Utc::now() - Duration::seconds(120);
    let probe_off = |at| Observed { validity: Validity::Invalid, ..spo2(0.0, at) };
    let mut raised = Vec::new();
    for i in 0..=40 {
        let at = t0 + Duration::seconds(i);
        let d = engine.observe(&probe_off(at), at);
        let fired = started_by(&d, "no-valid-signal");
        if i < 30 {
            assert!(fired.is_empty(), "after {i} s: {d:?}");
        }
        raised.extend(fired.into_iter().cloned());
    }
    assert_eq!(raised.len(), 1, "one alarm per device and metric while it lasts");
    let f = &raised[0];
    assert_eq!((f.kind, f.priority, f.patient_id), (AlarmKind::Technical, Priority::Medium, Some(1)));
    assert_eq!((f.metric.map(|m| m.mdc_code), f.since), (Some(150456), t0));
    // Another metric of the same device keeps its own state.
    let pulse = Observed { metric: metric_by_code(149530).unwrap(), ..probe_off(t0 + Duration::seconds(41)) };
    assert!(started(&engine.observe(&pulse, t0 + Duration::seconds(41))).is_empty());
    // A questionable value is a signal: it clears the alarm.
    let back = Observed { validity: Validity::Questionable, ..spo2(96.0, t0 + Duration::seconds(42)) };
    let d = engine.observe(&back, t0 + Duration::seconds(42));
    assert!(d.contains(&Decision::Cleared(f.key)), "{d:?}");
}

#[test]
fn a_questionable_desaturation_still_alarms_and_says_so() {
    // Low perfusion in a shocked patient: the device doubts its values, and the alarm must still sound.
    let mut engine = Engine::new(rules());
    let t0 = Utc::now() - Duration::seconds(120);
    let mut decisions = Vec::new();
    for i in 0..=60 {
        let validity = if i % 3 == 0 { Validity::Questionable } else { Validity::Valid };
        decisions.extend(engine.observe(&Observed { validity, ..spo2(84.0, t0 + Duration::seconds(i)) }, Utc::now()));
    }
    let low = started_by(&decisions, "spo2-low");
    assert_eq!(low.len(), 1, "{decisions:?}");
    assert_eq!(low[0].validity, Validity::Questionable);
    assert!(low[0].description.ends_with("(questionable signal)"), "{}", low[0].description);
}

#[test]
fn every_physiological_rule_must_say_what_it_does_with_questionable_readings() {
    let file = std::env::temp_dir().join(format!("vigil-rules-q-{}.toml", std::process::id()));
    let text = "version = \"x\"\nlate_after_secs = 60\n[[rule]]\nkind = \"threshold\"\nid = \"t\"\n\
                description = \"d\"\nmetric = \"MDC_PULS_OXIM_SAT_O2\"\nbelow = 90.0\nclear_at = 92.0\n\
                for_secs = 0\npriority = \"high\"\nemit = [\"alarm\"]\n";
    std::fs::write(&file, text).unwrap();
    let err = RuleSet::load(&file).unwrap_err();
    std::fs::remove_file(&file).unwrap();
    assert!(err.problems[0].contains("missing field `questionable`"), "{:?}", err.problems);
}

#[test]
fn a_rule_that_excludes_questionable_readings_neither_starts_nor_clears_on_them() {
    // Motion artefact on an ECG reads as tachycardia: heart-rate-high only counts values the device
    // stands by, while heart-rate-low (high priority) counts doubtful ones too.
    let mut engine = Engine::new(rules());
    let t0 = Utc::now() - Duration::seconds(120);
    let hr = |value, at, validity| Observed { metric: metric_by_code(147842).unwrap(), validity, ..spo2(value, at) };
    let mut decisions = Vec::new();
    for i in 0..=70 {
        decisions.extend(engine.observe(&hr(150.0, t0 + Duration::seconds(i), Validity::Questionable), Utc::now()));
    }
    assert!(started_by(&decisions, "heart-rate-high").is_empty(), "{decisions:?}");
    // Valid tachycardia raises it; a doubtful normal value does not clear it, a valid one does.
    let t1 = t0 + Duration::seconds(71);
    let mut high = Vec::new();
    for i in 0..=60 {
        let d = engine.observe(&hr(150.0, t1 + Duration::seconds(i), Validity::Valid), Utc::now());
        high.extend(started_by(&d, "heart-rate-high").into_iter().cloned());
    }
    assert_eq!(high.len(), 1);
    assert_eq!(high[0].validity, Validity::Valid, "no doubtful value fed it");
    let doubtful = engine.observe(&hr(80.0, t1 + Duration::seconds(61), Validity::Questionable), Utc::now());
    assert!(!doubtful.contains(&Decision::Cleared(high[0].key)), "{doubtful:?}");
    let valid = engine.observe(&hr(80.0, t1 + Duration::seconds(62), Validity::Valid), Utc::now());
    assert!(valid.contains(&Decision::Cleared(high[0].key)), "{valid:?}");
}

#[test]
fn implausible_values_count_as_no_valid_signal_for_the_paired_patient() {
    let mut engine = Engine::new(rules());
    engine.tick(Utc::now(), paired("OX-1", "acme-ox100"));
    let spo2_metric = metric_by_code(150456).unwrap();
    let t0 = Utc::now();
    let mut raised = Vec::new();
    for i in 0..=30 {
        let d = engine.implausible("OX-1", spo2_metric, t0 + Duration::seconds(i));
        raised.extend(started_by(&d, "no-valid-signal").into_iter().cloned());
    }
    assert_eq!(raised.len(), 1, "after 30 s of implausible values only");
    assert_eq!((raised[0].patient_id, raised[0].metric.map(|m| m.mdc_code)), (Some(1), Some(150456)));
    let d = engine.observe(&spo2(97.0, t0 + Duration::seconds(31)), t0 + Duration::seconds(31));
    assert!(d.contains(&Decision::Cleared(raised[0].key)), "{d:?}");
}

#[test]
fn a_short_dip_or_late_data_raises_nothing() {
    let mut engine = Engine::new(rules());
    let t0 = Utc::now() - Duration::seconds(100);
    for i in 0..30 {
        assert!(started_by(&engine.observe(&spo2(85.0, t0 + Duration::seconds(i)), Utc::now()), "spo2-low").is_empty());
    }
    assert!(engine.observe(&spo2(97.0, t0 + Duration::seconds(30)), Utc::now()).iter().all(|d| !matches!(
        d,
        Decision::Started(f) if f.rule_id == "spo2-low"
    )));
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
    assert_eq!(started_by(&decisions, "spo2-low").len(), 1, "the earlier reading completes the 60 s breach");
    let mut other = Engine::new(rules());
    let mut d = other.observe(&spo2(86.0, t0), Utc::now());
    d.extend(other.observe(&spo2(97.0, t0 + Duration::seconds(30)), Utc::now()));
    d.extend(other.observe(&spo2(86.0, t0 + Duration::seconds(61)), Utc::now()));
    assert!(started_by(&d, "spo2-low").is_empty(), "a normal reading inside the span breaks the breach");
}

#[test]
fn a_fast_fall_raises_the_rate_rule_once_and_it_clears_when_the_trend_flattens() {
    let mut engine = Engine::new(rules());
    let t0 = Utc::now() - Duration::seconds(200);
    let mut d = Vec::new();
    // 98 → 91 over 35 s: a fall of 7 within 60 s, without ever going below 90.
    for (i, v) in [98.0, 97.0, 96.0, 95.0, 94.0, 93.0, 92.0, 91.0].into_iter().enumerate() {
        d.extend(engine.observe(&spo2(v, t0 + Duration::seconds(5 * i as i64)), Utc::now()));
    }
    let fall = started_by(&d, "spo2-falling");
    assert_eq!(fall.len(), 1, "{d:?}");
    assert_eq!((fall[0].since, fall[0].value), (t0, Some(92.0)), "measured from the peak, when the fall reached 6");
    assert!(started_by(&d, "spo2-low").is_empty());
    // Steady at 91 % for 60 s more: the change over the last 60 s is 0, under clear_at.
    let mut later = Vec::new();
    for i in 1..=13 {
        later.extend(engine.observe(&spo2(91.0, t0 + Duration::seconds(35 + 5 * i)), Utc::now()));
    }
    assert!(later.contains(&Decision::Cleared(fall[0].key)), "{later:?}");
}

#[test]
fn a_paired_device_gone_quiet_raises_one_technical_alarm_that_clears_when_it_returns() {
    let mut engine = Engine::new(rules());
    let t0 = Utc::now();
    assert!(engine.tick(t0, paired("OX-1", "acme-ox100")).is_empty());
    assert!(engine.tick(t0 + Duration::seconds(59), None).is_empty());
    let d = engine.tick(t0 + Duration::seconds(61), None);
    let offline = started_by(&d, "device-offline");
    assert_eq!(offline.len(), 1, "{d:?}");
    assert_eq!((offline[0].kind, offline[0].patient_id, offline[0].alarm), (AlarmKind::Technical, Some(1), true));
    assert!(engine.tick(t0 + Duration::seconds(90), None).is_empty(), "latched: raised once");
    let back = engine.observe(&spo2(97.0, t0 + Duration::seconds(91)), t0 + Duration::seconds(91));
    assert!(back.contains(&Decision::Cleared(offline[0].key)));
    // A wearable (not a continuous monitor) is not watched.
    let mut wearable = Engine::new(rules());
    wearable.tick(t0, paired("00-1B", "vitaband-2"));
    assert!(wearable.tick(t0 + Duration::seconds(600), None).is_empty());
}

#[test]
fn an_unpaired_device_raises_once_and_clears_when_paired() {
    let mut engine = Engine::new(rules());
    let t0 = Utc::now();
    let d = engine.unpaired_data("MX-9", t0);
    assert_eq!(started_by(&d, "device-unpaired").len(), 1);
    assert!(engine.unpaired_data("MX-9", t0 + Duration::seconds(1)).is_empty());
    let key = started(&d)[0].key;
    let cleared = engine.tick(t0 + Duration::seconds(2), paired("MX-9", "medi-mx700"));
    assert_eq!(cleared, vec![Decision::Cleared(key)]);
}

#[test]
fn a_thousand_unknown_devices_raise_one_alarm_that_counts_them_and_clears_when_quiet() {
    let mut engine = Engine::new(rules());
    let t0 = Utc::now();
    for n in 0..1000 {
        assert!(engine.unknown_data(&format!("FAKE-{n:04}"), t0).is_empty(), "no page per device");
    }
    let d = engine.tick(t0 + Duration::seconds(1), None);
    let raised = started_by(&d, "device-unpaired");
    assert_eq!(raised.len(), 1, "{d:?}");
    assert_eq!(raised[0].device_id, "unknown-devices");
    assert!(
        raised[0].description.starts_with("1000 unknown devices in the last 10 minutes (e.g. FAKE-0000"),
        "{}",
        raised[0].description
    );
    assert!(engine.unknown_data("FAKE-1000", t0 + Duration::seconds(2)).is_empty());
    assert!(started(&engine.tick(t0 + Duration::seconds(3), None)).is_empty(), "one alarm while it lasts");
    let cleared = engine.tick(t0 + Duration::seconds(2) + Duration::minutes(11), None);
    assert_eq!(cleared, vec![Decision::Cleared(raised[0].key)]);
}

#[test]
fn a_charting_period_gives_one_median_observation_once_it_is_late_enough() {
    let mut engine = Engine::new(rules());
    let start = (Utc::now() - Duration::minutes(20)).duration_trunc(Duration::minutes(15)).unwrap();
    let now = start + Duration::minutes(15) + Duration::seconds(299);
    for (i, v) in [96.0, 94.0, 99.0, 95.0, 97.0].into_iter().enumerate() {
        let at = start + Duration::minutes(3 * i as i64);
        engine.observe(&spo2(v, at), at + Duration::seconds(1));
    }
    assert!(engine.tick(now, None).is_empty(), "not until late_after past the period's end");
    let d = engine.tick(now + Duration::seconds(1), None);
    let [Decision::Event(event)] = d.as_slice() else { panic!("{d:?}") };
    let Observation::Vital { value, effective, metric, method, .. } = event.observations()[0].clone() else { panic!() };
    assert_eq!((value, metric.mdc_code), (96.0, 150456));
    let end = start + Duration::minutes(15) - Duration::milliseconds(1);
    assert_eq!(effective, Effective::Period { start, end }, "the end is inclusive, as FHIR's Period.end");
    assert_eq!(method.map(|m| m.describe()).as_deref(), Some("15-minute median of 5 valid readings"));
    assert!(event.origin.starts_with("summary:charting-15min@"));
    assert!(engine.tick(now + Duration::seconds(2), None).is_empty(), "each period once");
}

#[test]
fn a_median_is_charted_at_its_metrics_precision_and_a_period_without_valid_readings_sends_nothing() {
    let mut engine = Engine::new(rules());
    let start = (Utc::now() - Duration::minutes(40)).duration_trunc(Duration::minutes(15)).unwrap();
    let temp = |v: f64, at, validity| Observed { metric: metric_by_code(150364).unwrap(), validity, ..spo2(v, at) };
    let arrived = |at: DateTime<Utc>| at + Duration::seconds(1);
    for (i, v) in [36.8, 36.9].into_iter().enumerate() {
        let at = start + Duration::minutes(i as i64);
        engine.observe(&temp(v, at, Validity::Valid), arrived(at));
    }
    // The next period has only doubtful and invalid values: no statistic to chart.
    for (i, validity) in [Validity::Questionable, Validity::Invalid].into_iter().enumerate() {
        let at = start + Duration::minutes(15 + i as i64);
        engine.observe(&temp(37.5, at, validity), arrived(at));
    }
    let d = engine.tick(start + Duration::minutes(40), None);
    let values: Vec<f64> = d
        .iter()
        .filter_map(|d| match d {
            Decision::Event(e) => match e.observations()[0] {
                Observation::Vital { value, .. } => Some(*value),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(values.len(), 1, "one summary, for the period with valid readings: {d:?}");
    assert!(values[0] == 36.8 || values[0] == 36.9, "one decimal, not {}", values[0]);
}

#[test]
fn a_systolic_low_event_goes_out_as_the_panel_of_its_cycle_and_its_alarm_does_not_wait() {
    let mut engine = Engine::new(rules());
    let at = Utc::now() - Duration::seconds(1);
    let bp = |code: u32, value: f64| Observed { metric: metric_by_code(code).unwrap(), ..spo2(value, at) };
    let systolic = engine.observe(&bp(150021, 85.0), Utc::now());
    let alarm = started_by(&systolic, "systolic-low");
    assert_eq!(alarm.len(), 1, "the alarm at once: {systolic:?}");
    assert!(!alarm[0].event, "the event waits for the rest of the cycle");
    assert!(engine.observe(&bp(150022, 50.0), Utc::now()).iter().all(|d| !matches!(d, Decision::Event(_))));
    let mean = engine.observe(&bp(150023, 62.0), Utc::now());
    let [Decision::Event(event)] = mean.as_slice() else { panic!("{mean:?}") };
    assert!(event.origin.starts_with("rule:systolic-low@"));
    let Observation::BloodPressure { systolic, diastolic, mean, .. } = event.observations()[0].clone() else {
        panic!("{event:?}")
    };
    assert_eq!((systolic, diastolic, mean), (85.0, 50.0, Some(62.0)));

    // A monitor that sends no mean: the panel goes once its wait is over.
    let later = at + Duration::seconds(60);
    let bp = |code: u32, value: f64| Observed { metric: metric_by_code(code).unwrap(), ..spo2(value, later) };
    engine.observe(&bp(150021, 120.0), Utc::now());
    engine.observe(&bp(150021, 80.0), Utc::now() + Duration::seconds(1));
    engine.observe(&bp(150022, 45.0), Utc::now() + Duration::seconds(1));
    let sent = engine.tick(Utc::now() + Duration::seconds(10), None);
    assert!(sent.iter().any(|d| matches!(d, Decision::Event(e)
        if matches!(e.observations()[0], Observation::BloodPressure { diastolic, mean: None, .. } if *diastolic == 45.0))), "{sent:?}");
}

/// A live oximeter's SpO2, measured at `at` by its own clock (it arrives when the test says `now`).
fn live(value: f64, at: DateTime<Utc>) -> Observed {
    Observed { live: true, ..spo2(value, at) }
}

#[test]
fn a_device_ten_minutes_behind_still_alarms_on_corrected_time_and_its_clock_alarm_says_so() {
    let mut engine = Engine::new(rules());
    let t0 = Utc::now();
    let behind = Duration::minutes(10);
    let mut decisions = Vec::new();
    for i in 0..=90 {
        let received = t0 + Duration::seconds(i);
        decisions.extend(engine.observe(&live(85.0, received - behind), received));
    }
    assert_eq!(started_by(&decisions, "spo2-low").len(), 1, "late by its clock, live in fact: {decisions:?}");
    let clock = started_by(&decisions, "device-clock-off");
    assert_eq!(clock.len(), 1);
    assert!(clock[0].description.starts_with("Device clock off by 600 s (behind)"), "{}", clock[0].description);
    assert_eq!(clock[0].kind, AlarmKind::Technical);
    // The device's clock is set right: once the median follows, the clock alarm clears.
    let mut later = Vec::new();
    for i in 91..=140 {
        let received = t0 + Duration::seconds(i);
        later.extend(engine.observe(&live(97.0, received), received));
    }
    assert!(later.contains(&Decision::Cleared(clock[0].key)), "{later:?}");
}

#[test]
fn one_reading_dated_minutes_ahead_neither_clears_nor_masks_a_desaturation() {
    let mut engine = Engine::new(rules());
    let t0 = Utc::now();
    let mut decisions = Vec::new();
    for i in 0..=70 {
        let t = t0 + Duration::seconds(i);
        decisions.extend(engine.observe(&live(85.0, t), t));
        if i == 30 || i == 65 {
            // A normal value dated 4 minutes ahead, in the middle of the episode and after its alarm.
            decisions.extend(engine.observe(&live(97.0, t + Duration::minutes(4)), t));
        }
    }
    let low = started_by(&decisions, "spo2-low");
    assert_eq!(low.len(), 1, "{decisions:?}");
    assert!(!decisions.contains(&Decision::Cleared(low[0].key)), "the future-dated value cleared it");
    assert!(started_by(&decisions, "device-clock-off").is_empty(), "one outlier moves no clock alarm");
}

#[test]
fn a_batch_upload_of_yesterday_raises_no_clock_alarm_and_no_live_alarm() {
    let mut engine = Engine::new(rules());
    let now = Utc::now();
    let yesterday = now - Duration::days(1);
    let mut decisions = Vec::new();
    for i in 0..=120 {
        let r = Observed { live: false, ..spo2(80.0, yesterday + Duration::seconds(i)) };
        decisions.extend(engine.observe(&r, now));
    }
    assert!(started(&decisions).is_empty(), "{decisions:?}");
}

#[test]
fn a_wall_clock_jump_of_an_hour_either_way_neither_raises_nor_clears_anything() {
    use crate::clock::Now;
    for jump in [Duration::hours(1), Duration::hours(-1)] {
        let mut engine = Engine::new(rules());
        let start: Now = Utc::now().into();
        // `s` seconds of monotonic time after the start, with the wall clock jumped once.
        let after = |s: u64| Now {
            wall: start.wall + Duration::seconds(s as i64) + jump,
            mono: start.mono + std::time::Duration::from_secs(s),
        };
        engine.tick(start, paired("OX-1", "acme-ox100"));
        let probe_off = Observed { validity: Validity::Invalid, ..spo2(0.0, start.wall) };
        engine.observe(&probe_off, start);
        let unpaired = engine.unpaired_data("MX-9", start);
        assert_eq!(started_by(&unpaired, "device-unpaired").len(), 1);
        // 10 s later by the monotonic clock, an hour away by the wall clock: nothing is due yet.
        let mut d = engine.tick(after(10), None);
        d.extend(engine.observe(&Observed { validity: Validity::Invalid, ..spo2(0.0, after(10).wall) }, after(10)));
        assert!(started(&d).is_empty(), "jump {jump}: {d:?}");
        assert!(!d.iter().any(|d| matches!(d, Decision::Cleared(_))), "jump {jump}: {d:?}");
        // The deadlines still come when they are due by the monotonic clock.
        let d = engine.observe(&Observed { validity: Validity::Invalid, ..spo2(0.0, after(31).wall) }, after(31));
        assert_eq!(started_by(&d, "no-valid-signal").len(), 1, "jump {jump}");
        let d = engine.tick(after(61), None);
        assert_eq!(started_by(&d, "device-offline").len(), 0, "OX-1 was heard at 31 s");
        let d = engine.tick(after(92), None);
        assert_eq!(started_by(&d, "device-offline").len(), 1, "jump {jump}: {d:?}");
    }
}

#[test]
fn a_flush_of_buffered_readings_alarms_on_their_own_time_and_raises_no_clock_alarm() {
    // A monitor back from a 70 s network outage sends what it buffered, all at once.
    let mut engine = Engine::new(rules());
    let now = Utc::now();
    let mut decisions = Vec::new();
    for i in 0..70 {
        let arrived = now + Duration::milliseconds(i * 10);
        decisions.extend(engine.observe(&live(85.0, now - Duration::seconds(70 - i)), arrived));
    }
    assert_eq!(started_by(&decisions, "spo2-low").len(), 1, "{decisions:?}");
    assert!(started_by(&decisions, "device-clock-off").is_empty(), "{decisions:?}");
}
