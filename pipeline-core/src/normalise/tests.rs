//! Tests of the whole module against the real fixture profiles and payloads in `fixtures/`.

use std::fs;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures");

fn fixture(rel: &str) -> PathBuf {
    Path::new(FIXTURES).join(rel)
}

fn profiles() -> ProfileSet {
    ProfileSet::load_dir(fixture("profiles")).unwrap_or_else(|e| panic!("{e}"))
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// What one sample payload must yield: device, patient hint, and (code, value, time, validity).
struct Case {
    profile: &'static str,
    file: &'static str,
    device: &'static str,
    patient: Option<&'static str>,
    readings: &'static [(u32, f64, &'static str, Validity)],
}

const CASES: &[Case] = &[
    Case {
        profile: "acme-ox100",
        file: "ok.json",
        device: "OX-1001",
        patient: None,
        readings: &[
            (150456, 97.0, "2026-11-24T10:00:00.120Z", Validity::Valid),
            (149530, 72.0, "2026-11-24T10:00:00.120Z", Validity::Valid),
        ],
    },
    Case {
        profile: "acme-ox100",
        file: "low-perfusion-quoted-numbers.json",
        device: "OX-1001",
        patient: None,
        // Quoted numbers accepted; +01:00 converted to UTC; microseconds truncated to ms.
        readings: &[
            (150456, 93.0, "2026-11-24T09:00:05.123Z", Validity::Questionable),
            (149530, 88.0, "2026-11-24T09:00:05.123Z", Validity::Questionable),
        ],
    },
    Case {
        profile: "acme-ox100",
        file: "sensor-off.json",
        device: "OX-1001",
        patient: None,
        // spo2 is null: skipped. The 0 pulse rate is kept, flagged invalid.
        readings: &[(149530, 0.0, "2026-11-24T10:00:10Z", Validity::Invalid)],
    },
    Case {
        profile: "acme-ox100",
        file: "sensor-off-values-that-would-alarm.json",
        device: "OX-1001",
        patient: None,
        // SpO2 85 and pulse 64 would alarm if they were measurements: the payload's flag says not.
        readings: &[
            (150456, 85.0, "2026-11-24T10:00:20Z", Validity::Invalid),
            (149530, 64.0, "2026-11-24T10:00:20Z", Validity::Invalid),
        ],
    },
    Case {
        profile: "acme-ox100",
        file: "spo2-zero-flagged-valid.json",
        device: "OX-1001",
        patient: None,
        // Normalise keeps the device's word; identify refuses the 0 % as implausible.
        readings: &[
            (150456, 0.0, "2026-11-24T10:00:30Z", Validity::Valid),
            (149530, 72.0, "2026-11-24T10:00:30Z", Validity::Valid),
        ],
    },
    Case {
        profile: "medi-mx700",
        file: "spo2-probe-off.json",
        device: "MX-00A1",
        patient: Some("MRN-0042"),
        // Each parameter's own status: the SpO2 probe is off, the ECG is fine, the respiration doubtful.
        readings: &[
            (147842, 72.0, "2026-11-24T09:01:00Z", Validity::Valid),
            (150456, 85.0, "2026-11-24T09:01:00Z", Validity::Invalid),
            (151562, 17.0, "2026-11-24T09:01:00Z", Validity::Questionable),
        ],
    },
    Case {
        profile: "medi-mx700",
        file: "full-panel.json",
        device: "MX-00A1",
        patient: Some("MRN-0042"),
        readings: &[
            (147842, 72.0, "2026-11-24T09:00:00Z", Validity::Valid),
            (150456, 96.0, "2026-11-24T09:00:00Z", Validity::Valid),
            (151562, 16.0, "2026-11-24T09:00:00Z", Validity::Valid),
            (150364, 37.0, "2026-11-24T09:00:00Z", Validity::Valid),
            (150021, 120.0, "2026-11-24T09:00:00Z", Validity::Valid),
            (150022, 80.3, "2026-11-24T09:00:00Z", Validity::Valid),
            (150023, 93.0, "2026-11-24T09:00:00Z", Validity::Valid),
        ],
    },
    Case {
        profile: "medi-mx700",
        file: "si-units-partial.json",
        device: "MX-00A1",
        patient: None,
        readings: &[
            (147842, 64.0, "2026-11-24T10:15:30.500Z", Validity::Valid),
            (150364, 37.2, "2026-11-24T10:15:30.500Z", Validity::Valid),
            (151708, 39.8, "2026-11-24T10:15:30.500Z", Validity::Valid),
        ],
    },
    Case {
        profile: "medi-mx700",
        file: "nibp-mmhg.json",
        device: "MX-00A1",
        patient: Some("4711"),
        readings: &[
            (150021, 118.0, "2026-11-24T16:00:00Z", Validity::Valid),
            (150022, 76.0, "2026-11-24T16:00:00Z", Validity::Valid),
            (150023, 90.0, "2026-11-24T16:00:00Z", Validity::Valid),
        ],
    },
    Case {
        profile: "vitaband-2",
        file: "batch.json",
        device: "00-1B-C5-0C-00-00-00-01",
        patient: None,
        readings: &[
            (149530, 71.0, "2026-11-18T11:06:40Z", Validity::Valid),
            (150456, 98.0, "2026-11-18T11:06:40Z", Validity::Valid),
            (149530, 74.0, "2026-11-18T11:07:40Z", Validity::Questionable),
            (150456, 97.0, "2026-11-18T11:07:40Z", Validity::Questionable),
            (149530, 70.0, "2026-11-18T11:08:40Z", Validity::Valid),
        ],
    },
    Case {
        profile: "vitaband-2",
        file: "off-wrist.json",
        device: "00-1B-C5-0C-00-00-00-01",
        patient: None,
        readings: &[
            (149530, 52.0, "2026-11-18T11:09:40Z", Validity::Invalid),
            (150456, 85.0, "2026-11-18T11:09:40Z", Validity::Invalid),
            (149530, 72.0, "2026-11-18T11:10:40Z", Validity::Valid),
            (150456, 97.0, "2026-11-18T11:10:40Z", Validity::Valid),
        ],
    },
    Case {
        profile: "vitaband-2",
        file: "single-unknown-flag.json",
        device: "00-1B-C5-0C-00-00-00-01",
        patient: None,
        readings: &[(149530, 69.0, "2026-11-18T11:09:40.250Z", Validity::Questionable)],
    },
];

#[test]
fn every_sample_payload_yields_exactly_the_expected_readings() {
    let set = profiles();
    for case in CASES {
        let profile = set.get(case.profile).unwrap();
        let path = fixture(&format!("payloads/{}/{}", case.profile, case.file));
        let payload = fs::read(&path).unwrap();
        let readings = normalise(profile, &payload, &PayloadLimits::default())
            .unwrap_or_else(|r| panic!("{}: rejected: {r}", path.display()));
        let got: Vec<_> = readings.iter().map(|r| (r.metric.mdc_code, r.value, r.observed_at, r.validity)).collect();
        let want: Vec<_> =
            case.readings.iter().map(|(code, value, at, validity)| (*code, *value, utc(at), *validity)).collect();
        assert_eq!(got, want, "{}", path.display());
        for r in &readings {
            assert_eq!(r.device_id, case.device, "{}", path.display());
            assert_eq!(r.patient_hints.first().map(|h| h.value.as_str()), case.patient, "{}", path.display());
            assert_eq!(crate::model::codes::metric_by_code(r.metric.mdc_code), Some(r.metric));
        }
    }
}

#[test]
fn every_sample_payload_on_disk_has_a_case() {
    let mut on_disk = Vec::new();
    for profile in profiles().iter() {
        for entry in fs::read_dir(fixture(&format!("payloads/{}", profile.id))).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            on_disk.push(format!("{}/{name}", profile.id));
        }
    }
    on_disk.sort();
    let mut covered: Vec<_> = CASES.iter().map(|c| format!("{}/{}", c.profile, c.file)).collect();
    covered.sort();
    assert_eq!(on_disk, covered);
}

#[test]
fn fixture_profiles_load_and_serve_their_topics() {
    let set = profiles();
    let ids: Vec<_> = set.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["medi-mx700", "acme-ox100", "vitaband-2"], "file-name order");
    let topic = |t: &str| set.for_topic(t).map(|p| p.id.as_str());
    assert_eq!(topic("vigil/devices/OX-1001/oximeter"), Some("acme-ox100"));
    assert_eq!(topic("vigil/devices/MX-00A1/monitor"), Some("medi-mx700"));
    assert_eq!(topic("vigil/devices/band-7/wearable"), Some("vitaband-2"));
    assert_eq!(topic("vigil/devices/x/toaster"), None);
    assert_eq!(topic("vigil/devices/oximeter"), None);
    let monitor = set.get("medi-mx700").unwrap();
    assert_eq!(monitor.patient_system.as_deref(), Some("urn:oid:2.16.840.1.113883.19.5.99999.2"));
    assert_eq!(monitor.vendor, "Medi Systems");
    assert!(monitor.source.ends_with("multiparameter-monitor.toml"));
    assert!(set.get("nope").is_none());
}

/// The 1-based line of the first line of `file` containing `needle`.
fn line_containing(file: &Path, needle: &str) -> usize {
    let text = fs::read_to_string(file).unwrap();
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn spo2_in_mm_hg_is_refused_with_file_line_and_mapping() {
    let file = fixture("profiles-invalid/spo2-in-mmhg.toml");
    let err = load_profile(&file).unwrap_err();
    let line = line_containing(&file, "unit = \"mm[Hg]\"");
    let expected = format!(
        "{}:{line}: mapping for MDC_PULS_OXIM_SAT_O2 (150456) declares unit \"mm[Hg]\" (pressure), \
         but SpO2 is a fraction measured in \"%\": use \"%\"",
        file.display()
    );
    assert_eq!(err.to_string(), expected);
    let from_dir = ProfileSet::load_dir(fixture("profiles-invalid")).unwrap_err();
    assert_eq!(from_dir.to_string(), expected);
}

/// A directory of profiles written by a test, removed afterwards.
struct ProfileDir(PathBuf);

impl ProfileDir {
    fn new(name: &str, files: &[(&str, &str)]) -> ProfileDir {
        let dir = std::env::temp_dir().join(format!("vigil-normalise-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for (file, text) in files {
            fs::write(dir.join(file), text).unwrap();
        }
        ProfileDir(dir)
    }

    fn load(&self) -> Result<ProfileSet, ProfileError> {
        ProfileSet::load_dir(&self.0)
    }
}

impl Drop for ProfileDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A minimal valid profile with the given id, topic and extra mapping lines.
fn profile_text(id: &str, topic: &str, mapping: &str) -> String {
    format!(
        "id = \"{id}\"\nvendor = \"V\"\nmodel = \"M\"\ntopics = [\"{topic}\"]\ndevice_id = \"/sn\"\n\
         [time]\npath = \"/ts\"\nformat = \"rfc3339\"\n\n[[mapping]]\n{mapping}\n"
    )
}

const SPO2: &str = "code = \"MDC_PULS_OXIM_SAT_O2\"\nvalue = \"/spo2\"\nunit = \"%\"";

fn messages(err: &ProfileError) -> Vec<String> {
    err.problems.iter().map(ToString::to_string).collect()
}

#[test]
fn every_bad_file_is_reported_with_its_line() {
    let dir = ProfileDir::new(
        "every-bad-file",
        &[
            ("a-good.toml", &profile_text("good", "t/good", SPO2)),
            (
                "b-unknown-code.toml",
                &profile_text("b", "t/b", "code = \"MDC_HEART_BEATS\"\nvalue = \"/x\"\nunit = \"bpm\""),
            ),
            ("c-typo.toml", &profile_text("c", "t/c", &format!("{SPO2}\nunits_path = \"/u\""))),
            ("d-syntax.toml", "id = \"d\"\nvendor = \n"),
            ("notes.txt", "not a profile"),
        ],
    );
    let err = dir.load().unwrap_err();
    let msgs = messages(&err);
    assert_eq!(msgs.len(), 3, "{msgs:#?}");
    let b = dir.0.join("b-unknown-code.toml");
    assert!(
        msgs[0].starts_with(&format!("{}:11: mapping with code \"MDC_HEART_BEATS\": no such code", b.display())),
        "{}",
        msgs[0]
    );
    assert!(msgs[0].contains("MDC_PULS_OXIM_SAT_O2 (150456)"), "lists the known codes: {}", msgs[0]);
    let c = dir.0.join("c-typo.toml");
    assert!(msgs[1].starts_with(&format!("{}:14: unknown field `units_path`", c.display())), "{}", msgs[1]);
    let d = dir.0.join("d-syntax.toml");
    assert!(msgs[2].starts_with(&format!("{}:2: ", d.display())), "{}", msgs[2]);
}

#[test]
fn duplicate_ids_and_overlapping_topics_are_refused() {
    let dir = ProfileDir::new(
        "duplicates",
        &[
            ("a.toml", &profile_text("same", "vigil/devices/+/oximeter", SPO2)),
            ("b.toml", &profile_text("same", "vigil/devices/other", SPO2)),
            ("c.toml", &profile_text("c", "vigil/devices/OX-1/oximeter", SPO2)),
        ],
    );
    let msgs = messages(&dir.load().unwrap_err());
    let a = dir.0.join("a.toml");
    assert_eq!(
        msgs,
        [
            format!(
                "{}:1: profile id \"same\" is already used by {}:1: give every profile its own id",
                dir.0.join("b.toml").display(),
                a.display()
            ),
            format!(
                "{}:4: topic filter \"vigil/devices/OX-1/oximeter\" overlaps \"vigil/devices/+/oximeter\" of \
                 profile \"same\" ({}:4): a message could match both profiles; make the filters disjoint",
                dir.0.join("c.toml").display(),
                a.display()
            ),
        ]
    );
}

#[test]
fn mapping_mistakes_are_each_refused_with_what_to_do() {
    let cases = [
        (
            "code = \"MDC_TEMP_BODY\"\nvalue = \"/t\"\nunit = \"degf\"",
            "13: mapping for MDC_TEMP_BODY (150364) declares unit \"degf\", which Vigil does not know: \
             use \"Cel\" or another temperature unit (\"[degF]\", \"K\")",
        ),
        (
            "code = \"MDC_ECG_HEART_RATE\"\nvalue = \"/hr\"\nunit_path = \"/u\"\nunits = [\"bpm\", \"mmHg\"]",
            "14: mapping for MDC_ECG_HEART_RATE (147842) declares unit \"mmHg\" (mm[Hg], a pressure), \
             but Heart rate is a frequency measured in \"/min\": use \"/min\"",
        ),
        (
            "code = \"MDC_ECG_HEART_RATE\"\nvalue = \"/hr\"\nunit_path = \"/u\"",
            "11: mapping for MDC_ECG_HEART_RATE (147842) has a unit_path but no units",
        ),
        (
            "code = \"MDC_ECG_HEART_RATE\"\nvalue = \"/hr\"",
            "11: mapping for MDC_ECG_HEART_RATE (147842) declares no unit: add unit = \"/min\"",
        ),
        (
            "code = \"MDC_ECG_HEART_RATE\"\nvalue = \"/hr\"\nunit = \"bpm\"\nunit_path = \"/u\"\nunits = [\"bpm\"]",
            "11: mapping for MDC_ECG_HEART_RATE (147842) declares both a fixed unit and payload units",
        ),
        (
            "code = \"MDC_ECG_HEART_RATE\"\nvalue = \"/p[label]/v\"\nunit = \"bpm\"",
            "12: mapping for MDC_ECG_HEART_RATE (147842): value: path \"/p[label]/v\" has a filter that \
             is not of the form [field=value]",
        ),
        (
            "code = \"150456\"\nvalue = \"spo2\"\nunit = \"%\"",
            "12: mapping for MDC_PULS_OXIM_SAT_O2 (150456): value: path \"spo2\" must start with \"/\"",
        ),
        (
            &format!("{SPO2}\n\n[[mapping]]\ncode = \"150456\"\nvalue = \"/s2\"\nunit = \"%\""),
            "16: mapping for MDC_PULS_OXIM_SAT_O2 (150456) is mapped twice (first on line 11)",
        ),
    ];
    for (i, (mapping, expected)) in cases.iter().enumerate() {
        let dir = ProfileDir::new(&format!("mapping-{i}"), &[("p.toml", &profile_text("p", "t/p", mapping))]);
        let msgs = messages(&dir.load().unwrap_err());
        let prefix = format!("{}:{expected}", dir.0.join("p.toml").display());
        assert_eq!(msgs.len(), 1, "{msgs:#?}");
        assert!(msgs[0].starts_with(&prefix), "got:  {}\nwant: {prefix}", msgs[0]);
    }
}

#[test]
fn profile_level_mistakes_are_all_reported_at_once() {
    let text = "id = \"bad id\"\nvendor = \"V\"\nmodel = \"M\"\ntopics = [\"a/#/b\"]\neach = \"batch\"\n\
                device_id = \"/sn~\"\n[time]\npath = \"/ts\"\nformat = \"rfc3339\"\n\
                [patient]\npath = \"/mrn\"\nsystem = \"\"\n\n[[mapping]]\n"
        .to_string()
        + SPO2;
    let dir = ProfileDir::new("profile-level", &[("p.toml", &text)]);
    let msgs = messages(&dir.load().unwrap_err());
    let at = |line: usize, rest: &str| format!("{}:{line}: {rest}", dir.0.join("p.toml").display());
    let expected_starts = [
        at(1, "profile id \"bad id\" must be non-empty"),
        at(4, "topic filter \"a/#/b\" uses '#' other than as the whole last level"),
        at(5, "each: path \"batch\" must start with \"/\""),
        at(6, "device_id: path \"/sn~\" has a \"~\" not followed by 0 or 1"),
        at(12, "patient.system is empty"),
    ];
    assert_eq!(msgs.len(), expected_starts.len(), "{msgs:#?}");
    for (msg, start) in msgs.iter().zip(&expected_starts) {
        assert!(msg.starts_with(start), "got:  {msg}\nwant: {start}");
    }
}

#[test]
fn a_missing_directory_is_refused() {
    let err = ProfileSet::load_dir(fixture("no-such-dir")).unwrap_err();
    assert!(err.to_string().contains("cannot read the profile directory"), "{err}");
}

fn reject(profile_id: &str, payload: &str) -> Rejection {
    let set = profiles();
    let profile = set.get(profile_id).unwrap();
    match normalise(profile, payload.as_bytes(), &PayloadLimits::default()) {
        Ok(readings) => panic!("accepted {payload}: {readings:?}"),
        Err(rejection) => rejection,
    }
}

fn assert_rejects(profile_id: &str, payload: &str, reason: RejectReason, detail: &str) {
    let rejection = reject(profile_id, payload);
    assert_eq!(rejection.reason, reason, "{payload}: {rejection}");
    assert!(rejection.detail.contains(detail), "{payload}\ngot:  {}\nwant: {detail}", rejection.detail);
}

const OX_TS: &str = r#""ts":"2026-11-24T10:00:00Z""#;

#[test]
fn not_json_is_rejected() {
    assert_rejects("acme-ox100", r#"{"sn":"OX-1"#, RejectReason::NotJson, "payload is not JSON: EOF");
    assert_rejects("acme-ox100", "", RejectReason::NotJson, "payload is not JSON");
    assert_rejects("acme-ox100", "spo2=97", RejectReason::NotJson, "payload is not JSON");
}

#[test]
fn missing_device_id_time_or_batch_is_rejected() {
    use RejectReason::MissingField;
    assert_rejects(
        "acme-ox100",
        &format!(r#"{{{OX_TS},"spo2":97}}"#),
        MissingField,
        "device id is missing: nothing at /sn",
    );
    assert_rejects(
        "acme-ox100",
        r#"{"sn":"OX-1","spo2":97}"#,
        MissingField,
        "observed time is missing: nothing at /ts",
    );
    assert_rejects("acme-ox100", r#"{"sn":"OX-1","ts":null,"spo2":97}"#, MissingField, "nothing at /ts");
    assert_rejects("acme-ox100", "[1,2]", MissingField, "device id is missing");
    assert_rejects("vitaband-2", r#"{"device":{"eui64":"E"}}"#, MissingField, "batch is missing: nothing at /batch");
    assert_rejects(
        "vitaband-2",
        r#"{"device":{"eui64":"E"},"batch":[{"t":1795000000000,"hr":70},{"hr":71}]}"#,
        MissingField,
        "observed time is missing: nothing at /batch/1/t",
    );
    assert_rejects(
        "medi-mx700",
        r#"{"monitor":{"id":"M"},"obs":{"time":"2026-11-24T10:00:00Z","params":[{"label":"HR","v":72}]}}"#,
        MissingField,
        "MDC_ECG_HEART_RATE unit is missing: nothing at /obs/params[label=HR]/uom",
    );
}

#[test]
fn values_of_the_wrong_type_are_rejected() {
    use RejectReason::BadValue;
    assert_rejects(
        "medi-mx700",
        r#"{"monitor":{"id":"M","patient":{"mrn":"MRN-SECRET"}},"obs":{"time":"2026-11-24T10:00:00Z",
            "params":[{"label":"HR","v":"abc","uom":"bpm"}]}}"#,
        BadValue,
        r#"MDC_ECG_HEART_RATE value at /obs/params[label=HR]/v is "abc", expected a number"#,
    );
    assert_rejects(
        "acme-ox100",
        &format!(r#"{{"sn":"OX-1",{OX_TS},"spo2":true}}"#),
        BadValue,
        "value at /spo2 is true, expected a number",
    );
    assert_rejects(
        "acme-ox100",
        &format!(r#"{{"sn":"OX-1",{OX_TS},"spo2":[97]}}"#),
        BadValue,
        "value at /spo2 is an array, expected a number",
    );
    assert_rejects(
        "acme-ox100",
        &format!(r#"{{"sn":"OX-1",{OX_TS},"spo2":"NaN"}}"#),
        BadValue,
        r#"value at /spo2 is "NaN", expected a finite number"#,
    );
    assert_rejects(
        "acme-ox100",
        &format!(r#"{{"sn":"OX-1",{OX_TS},"pr":"-inf"}}"#),
        BadValue,
        "expected a finite number",
    );
    assert_rejects(
        "acme-ox100",
        &format!(r#"{{"sn":{{"a":1}},{OX_TS},"spo2":97}}"#),
        BadValue,
        "device id at /sn is an object",
    );
    assert_rejects(
        "acme-ox100",
        &format!(r#"{{"sn":"",{OX_TS},"spo2":97}}"#),
        BadValue,
        r#"device id at /sn is "", expected a non-empty"#,
    );
    assert_rejects(
        "acme-ox100",
        &format!(r#"{{"sn":"OX-1",{OX_TS},"spo2":97,"status":"calibrating"}}"#),
        BadValue,
        r#"validity flag at /status is "calibrating", which the profile's validity map does not list"#,
    );
    assert_rejects(
        "vitaband-2",
        r#"{"device":{"eui64":"E"},"batch":[{"t":1795000000000,"hr":70},{"t":1795000060000,"hr":"x"}]}"#,
        BadValue,
        r#"MDC_PULS_OXIM_PULS_RATE value at /batch/1/hr is "x", expected a number"#,
    );
    assert_rejects(
        "vitaband-2",
        r#"{"device":{"eui64":"E"},"batch":{"t":1}}"#,
        BadValue,
        "batch at /batch is an object, expected an array",
    );
    let long = "x".repeat(500);
    let rejection = reject("acme-ox100", &format!(r#"{{"sn":"OX-1",{OX_TS},"spo2":"{long}"}}"#));
    assert!(rejection.detail.len() < 150, "details quote only a fragment: {}", rejection.detail);
}

#[test]
fn a_patient_identifier_never_appears_in_a_rejection() {
    let rejection = reject(
        "medi-mx700",
        r#"{"monitor":{"id":"M","patient":{"mrn":["MRN-SECRET"]}},"obs":{"time":"2026-11-24T10:00:00Z",
            "params":[{"label":"HR","v":72,"uom":"bpm"}]}}"#,
    );
    assert_eq!(rejection.reason, RejectReason::BadValue);
    assert_eq!(
        rejection.detail,
        "patient identifier at /monitor/patient/mrn is not a string or an integer (value withheld: PHI)"
    );
    let rejection = reject(
        "medi-mx700",
        r#"{"monitor":{"id":"M","patient":{"mrn":"MRN-SECRET"}},"obs":{"time":"MRN-SECRET","params":[]}}"#,
    );
    assert_eq!(rejection.reason, RejectReason::BadTime);
    // The time is echoed (it is not PHI by position), but a value read as the patient id never is.
    let rejection = reject(
        "medi-mx700",
        r#"{"monitor":{"id":"M","patient":{"mrn":"MRN-SECRET"}},"obs":{"time":"2026-11-24T10:00:00Z","params":[]}}"#,
    );
    assert!(!rejection.to_string().contains("MRN-SECRET"), "{rejection}");
}

#[test]
fn bad_times_are_rejected() {
    use RejectReason::BadTime;
    let ox = |ts: &str| format!(r#"{{"sn":"OX-1","ts":{ts},"spo2":97}}"#);
    assert_rejects(
        "acme-ox100",
        &ox(r#""yesterday""#),
        BadTime,
        r#"observed time at /ts is "yesterday", expected an RFC 3339 time"#,
    );
    assert_rejects("acme-ox100", &ox(r#""2026-11-24T10:00:00""#), BadTime, "expected an RFC 3339 time with an offset");
    assert_rejects("acme-ox100", &ox("1795000000000"), BadTime, "observed time at /ts is 1795000000000");
    let band = |t: &str| format!(r#"{{"device":{{"eui64":"E"}},"batch":[{{"t":{t},"hr":70}}]}}"#);
    assert_rejects(
        "vitaband-2",
        &band(r#""soon""#),
        BadTime,
        r#"observed time at /batch/0/t is "soon", expected epoch milliseconds"#,
    );
    assert_rejects("vitaband-2", &band("1e300"), BadTime, "expected epoch milliseconds");
    assert_rejects("vitaband-2", &band("9223372036854775807"), BadTime, "expected epoch milliseconds");
}

#[test]
fn epoch_times_accept_numbers_and_numeric_strings() {
    let set = profiles();
    let band = set.get("vitaband-2").unwrap();
    for t in ["1795000000000", "\"1795000000000\"", "1795000000000.4"] {
        let payload = format!(r#"{{"device":{{"eui64":"E"}},"batch":[{{"t":{t},"hr":70}}]}}"#);
        let readings = normalise(band, payload.as_bytes(), &PayloadLimits::default()).unwrap();
        assert_eq!(readings[0].observed_at, utc("2026-11-18T11:06:40Z"), "{t}");
    }
    assert_eq!(epoch_millis(&serde_json::json!(1795000000.1234), 1000), Some(1795000000123));
    assert_eq!(epoch_millis(&serde_json::json!(1795000000), 1000), Some(1795000000000));
    assert_eq!(epoch_millis(&serde_json::json!(i64::MAX), 1000), None);
}

#[test]
fn bad_units_are_rejected_with_the_reason() {
    use RejectReason::BadUnit;
    let temp = |uom: &str| {
        format!(
            r#"{{"monitor":{{"id":"M"}},"obs":{{"time":"2026-11-24T10:00:00Z","params":[{{"label":"TEMP","v":37,"uom":{uom}}}]}}}}"#
        )
    };
    assert_rejects(
        "medi-mx700",
        &temp(r#""furlongs""#),
        BadUnit,
        r#"MDC_TEMP_BODY unit at /obs/params[label=TEMP]/uom is "furlongs": a unit Vigil does not know (accepted: "degF", "degC")"#,
    );
    assert_rejects(
        "medi-mx700",
        &temp(r#""mmHg""#),
        BadUnit,
        r#"is "mmHg": a pressure, but Body temperature is a temperature measured in "Cel""#,
    );
    assert_rejects("medi-mx700", &temp(r#""K""#), BadUnit, r#"is "K": not among the profile's accepted units for it"#);
    assert_rejects(
        "medi-mx700",
        &temp("5"),
        BadUnit,
        "unit at /obs/params[label=TEMP]/uom is 5, expected a unit string",
    );
}

#[test]
fn payloads_without_readings_are_rejected() {
    use RejectReason::NoReadings;
    assert_rejects(
        "acme-ox100",
        &format!(r#"{{"sn":"OX-1",{OX_TS},"pi":2.0,"status":"ok"}}"#),
        NoReadings,
        "none of the profile's 2 mapped values",
    );
    assert_rejects(
        "medi-mx700",
        r#"{"monitor":{"id":"M"},"obs":{"time":"2026-11-24T10:00:00Z","params":[{"label":"ST_II","v":0.1,"uom":"mV"}]}}"#,
        NoReadings,
        "none of the profile's 8 mapped values",
    );
    assert_rejects(
        "vitaband-2",
        r#"{"device":{"eui64":"E"},"batch":[]}"#,
        NoReadings,
        "none of the 0 elements of /batch",
    );
    assert_rejects(
        "vitaband-2",
        r#"{"device":{"eui64":"E"},"batch":[{"t":1795000000000,"skin_temp":33.0}]}"#,
        NoReadings,
        "none of the 1 elements of /batch",
    );
}

#[test]
fn reject_reasons_have_stable_names() {
    let names: Vec<_> = [
        RejectReason::NoProfile,
        RejectReason::NotJson,
        RejectReason::MissingField,
        RejectReason::BadValue,
        RejectReason::BadTime,
        RejectReason::BadUnit,
        RejectReason::NoReadings,
        RejectReason::TooLarge,
        RejectReason::NotHl7,
        RejectReason::UnsupportedMessage,
    ]
    .iter()
    .map(|r| r.as_str())
    .collect();
    assert_eq!(
        names,
        [
            "no_profile",
            "not_json",
            "missing_field",
            "bad_value",
            "bad_time",
            "bad_unit",
            "no_readings",
            "too_large",
            "not_hl7",
            "unsupported_message"
        ]
    );
    let rejection = Rejection::no_profile("vigil/devices/x/toaster");
    assert_eq!(rejection.reason, RejectReason::NoProfile);
    assert_eq!(
        rejection.to_string(),
        "no_profile: no device profile serves topic \"vigil/devices/x/toaster\": add a profile whose topics match it"
    );
}

#[test]
fn integer_device_ids_become_strings() {
    let set = profiles();
    let ox = set.get("acme-ox100").unwrap();
    let readings =
        normalise(ox, format!(r#"{{"sn":1001,{OX_TS},"spo2":97}}"#).as_bytes(), &PayloadLimits::default()).unwrap();
    assert_eq!(readings.len(), 1);
    assert_eq!(readings[0].device_id, "1001");
    assert_eq!(readings[0].validity, Validity::Valid, "no status flag: valid");
}

#[test]
fn a_value_takes_the_worse_of_its_own_flag_and_the_payloads_and_a_sentinel_is_no_measurement() {
    let mapping = "code = \"MDC_PULS_OXIM_SAT_O2\"\nvalue = \"/spo2/v\"\nunit = \"%\"\nno_value = -1\n\
         validity = { path = \"/spo2/s\", map = { ok = \"valid\", off = \"invalid\" } }";
    let text = profile_text("own-flag", "t/own", mapping)
        .replace("[time]", "[validity]\npath = \"/q\"\nmap = { ok = \"valid\", doubt = \"questionable\" }\n[time]");
    let dir = ProfileDir::new("own-flag", &[("p.toml", &text)]);
    let set = dir.load().unwrap_or_else(|e| panic!("{e}"));
    let profile = set.get("own-flag").unwrap();
    let read = |payload: &str| {
        normalise(profile, payload.as_bytes(), &PayloadLimits::default())
            .map(|r| r.iter().map(|r| (r.value, r.validity)).collect::<Vec<_>>())
    };
    let ts = "\"ts\":\"2026-11-24T10:00:00Z\"";
    assert_eq!(
        read(&format!("{{\"sn\":\"A\",{ts},\"q\":\"ok\",\"spo2\":{{\"v\":97,\"s\":\"ok\"}}}}")),
        Ok(vec![(97.0, Validity::Valid)])
    );
    assert_eq!(
        read(&format!("{{\"sn\":\"A\",{ts},\"q\":\"doubt\",\"spo2\":{{\"v\":97}}}}")),
        Ok(vec![(97.0, Validity::Questionable)])
    );
    assert_eq!(
        read(&format!("{{\"sn\":\"A\",{ts},\"q\":\"doubt\",\"spo2\":{{\"v\":85,\"s\":\"off\"}}}}")),
        Ok(vec![(85.0, Validity::Invalid)])
    );
    assert_eq!(
        read(&format!("{{\"sn\":\"A\",{ts},\"spo2\":{{\"v\":-1,\"s\":\"ok\"}}}}")),
        Ok(vec![(-1.0, Validity::Invalid)]),
        "the sentinel"
    );
    let unknown = read(&format!("{{\"sn\":\"A\",{ts},\"spo2\":{{\"v\":97,\"s\":\"??\"}}}}")).unwrap_err();
    assert_eq!(unknown.reason, RejectReason::BadValue);
    assert!(unknown.detail.starts_with("validity flag at /spo2/s is \"??\""), "{}", unknown.detail);
}

#[test]
fn a_bad_time_and_an_empty_value_are_both_reported() {
    let set = profiles();
    let ox = set.get("acme-ox100").unwrap();
    let trial = trial(ox, br#"{"sn":"OX-1","ts":"yesterday","spo2":"","pr":72}"#, &PayloadLimits::default());
    let found: Vec<RejectReason> = trial.problems.iter().map(|p| p.reason).collect();
    assert_eq!(found, [RejectReason::BadTime, RejectReason::BadValue]);
    let rejection = Rejection::combined(trial.problems);
    assert!(rejection.detail.contains("/ts") && rejection.detail.contains("/spo2"), "{}", rejection.detail);
}

#[test]
fn fields_the_profile_does_not_read_are_listed_with_array_elements_folded() {
    let set = profiles();
    let ox = set.get("acme-ox100").unwrap();
    let payload =
        br#"{"sn":"OX-1","ts":"2026-11-24T10:00:00Z","spo2":97,"pr":72,"pi":3.1,"status":"ok","fw":{"v":"2.1"}}"#;
    let trial = trial(ox, payload, &PayloadLimits::default());
    assert!(trial.problems.is_empty(), "{:?}", trial.problems);
    assert_eq!(trial.unmapped, ["/fw/v", "/pi"]);
    let full = fs::read(fixture("payloads/medi-mx700/full-panel.json")).unwrap();
    let monitor = set.get("medi-mx700").unwrap();
    let read = self::trial(monitor, &full, &PayloadLimits::default());
    assert!(read.problems.is_empty(), "{:?}", read.problems);
    assert!(read.unmapped.iter().all(|p| !p.contains("label")), "a filter's field counts as read: {:?}", read.unmapped);
}

#[test]
fn a_patient_token_names_its_system_in_the_field() {
    let text = profile_text("tok", "t/+", SPO2)
        .replace("[[mapping]]", "[patient]\npath = \"/patientRef\"\nformat = \"token\"\n\n[[mapping]]");
    let dir = ProfileDir::new("token", &[("tok.toml", &text)]);
    let set = dir.load().unwrap_or_else(|e| panic!("{e}"));
    let profile = set.get("tok").unwrap();
    let readings = normalise(
        profile,
        br#"{"sn":"OX-1","ts":"2026-11-24T10:00:00Z","spo2":97,"patientRef":"NORTHCLINIC|MRN-100877"}"#,
        &PayloadLimits::default(),
    )
    .unwrap();
    assert_eq!(readings[0].patient_hints, [PatientHint { system: "NORTHCLINIC".into(), value: "MRN-100877".into() }]);
    let bad = normalise(
        profile,
        br#"{"sn":"OX-1","ts":"2026-11-24T10:00:00Z","spo2":97,"patientRef":"MRN-100877"}"#,
        &PayloadLimits::default(),
    )
    .unwrap_err();
    assert_eq!(bad.reason, RejectReason::BadValue);
    assert!(bad.detail.contains("system|value") && !bad.detail.contains("MRN-100877"), "{}", bad.detail);
    let both = text.replace("format = \"token\"", "format = \"token\"\nsystem = \"urn:x\"");
    let dir = ProfileDir::new("token-and-system", &[("tok.toml", &both)]);
    assert!(dir.load().unwrap_err().to_string().contains("remove system"));
    let reserved = profile_text("pcd-01", "t/+", SPO2);
    let dir = ProfileDir::new("reserved", &[("p.toml", &reserved)]);
    assert!(dir.load().unwrap_err().to_string().contains("built-in profile for HL7 v2 devices"));
}

#[test]
fn battery_and_firmware_are_device_status_never_readings() {
    let set = profiles();
    let ox = set.get("acme-ox100").unwrap();
    assert_eq!(ox.expected_interval_secs, 2);
    let payload = br#"{"sn":"OX-1","ts":"2026-11-24T10:00:00Z","spo2":97,"pi":3.1,"bat":87,"fw":"2.4.1"}"#;
    let read = trial(ox, payload, &PayloadLimits::default());
    assert_eq!(read.status, DeviceStatus { battery_pct: Some(87.0), firmware: Some("2.4.1".into()) });
    assert_eq!(read.readings.len(), 1, "only SpO2 is a reading");
    assert_eq!(read.unmapped, ["/pi"]);
    // A charge out of range is left out, and listed as unread; it never rejects the payload.
    let odd = trial(ox, br#"{"sn":"OX-1","ts":"2026-11-24T10:00:00Z","spo2":97,"bat":140}"#, &PayloadLimits::default());
    assert!(odd.problems.is_empty() && odd.status.battery_pct.is_none());
    assert_eq!(odd.unmapped, ["/bat"]);
    let top = profile_text("zero", "z/+", SPO2).replacen("device_id =", "expected_interval_secs = 0\ndevice_id =", 1);
    let dir = ProfileDir::new("zero-interval", &[("zero.toml", &top)]);
    let refused = dir.load().unwrap_err().to_string();
    assert!(refused.contains("expected_interval_secs is 0"), "{refused}");
}
