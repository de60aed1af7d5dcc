//! The `vigil` binary's checks of configs and profiles, and its pairing rules, as an operator runs
//! them.

use std::process::Command;

use serde_json::Value;
use vigil_tests::{BrokerKind, DEMO_SYSTEM, Site, fixture, vigil_bin};

fn vigil(args: &[&str]) -> (i32, String) {
    let out = Command::new(vigil_bin()).args(args).output().expect("vigil runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

/// `vigil` signed in as the site's first administrator.
fn as_admin(site: &Site, args: &[&str]) -> (i32, String) {
    site.vigil_as(&site.token, args).expect("vigil runs")
}

#[test]
fn the_example_config_is_valid() {
    let (code, out) = vigil(&["check-config", &fixture("vigil.example.toml").to_string_lossy()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK"), "{out}");
}

#[test]
fn check_config_reports_all_three_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vigil.toml");
    // Three mistakes: a misspelt key, a URL with an unknown scheme, a retention of zero days.
    let config = format!(
        "[store]\nurl = \"sqlite://v.db\"\n[broker]\nmode = \"external\"\nurl = \"htp://broker\"\n\
         [retention]\nraw_days = 0\n[identity]\norganisation = \"x\"\nmax_future_skew = 10\n\
         [profiles]\ndir = {:?}\n",
        fixture("profiles")
    );
    std::fs::write(&file, config).unwrap();
    let (code, out) = vigil(&["check-config", &file.to_string_lossy()]);
    assert_eq!(code, 2, "{out}");
    for key in ["identity.max_future_skew", "broker.url", "retention.raw_days"] {
        assert!(out.contains(key), "{key} not reported:\n{out}");
    }
    assert!(out.contains("3 problem(s)"), "{out}");
    assert_eq!(out.matches("Fix:").count(), 3, "every problem says how to fix it:\n{out}");
}

#[test]
fn every_fixture_profile_loads() {
    let (code, out) = vigil(&["check-profiles", &fixture("profiles").to_string_lossy()]);
    assert_eq!(code, 0, "{out}");
    for id in ["acme-ox100", "medi-mx700", "vitaband-2"] {
        assert!(out.contains(&format!("{id}: OK")), "{out}");
    }
}

#[test]
fn a_spo2_mapping_in_mmhg_is_refused_naming_the_mapping() {
    let (code, out) = vigil(&["check-profiles", &fixture("profiles-invalid").to_string_lossy()]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("spo2-in-mmhg.toml:"), "names the file and line: {out}");
    assert!(out.contains("MDC_PULS_OXIM_SAT_O2"), "names the mapping: {out}");
    assert!(out.contains("mm[Hg]"), "names the unit: {out}");
}

#[test]
fn the_demo_runs_the_embedded_default_with_live_values() {
    let data = tempfile::tempdir().unwrap();
    let out = Command::new(vigil_bin())
        .args(["demo", "--seconds", "6", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .current_dir(vigil_tests::workspace())
        .output()
        .expect("vigil demo runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("embedded MQTT endpoint on 127.0.0.1:"), "{text}");
    // The last summary line reports stored readings from the simulated devices.
    let last = text.lines().rev().find(|l| l.starts_with("stored ")).expect("a summary line");
    let stored: i64 = last.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(stored > 0, "{last}");
    assert!(text.contains("SpO2"), "live values are shown: {text}");
    assert!(text.contains("unpaired"), "the unpaired monitor is shown as such: {text}");
}

#[test]
fn overlapping_and_unexplained_back_dated_pairings_are_refused() {
    let site = Site::new(BrokerKind::Embedded).unwrap();
    let config = site.config_str();
    let pair = |device: &str, mrn: &str, extra: &[&str]| {
        let mut args =
            vec!["pair", "--config", &config, "--device", device, "--patient-system", DEMO_SYSTEM, "--patient", mrn];
        args.extend_from_slice(extra);
        as_admin(&site, &args)
    };
    let devices: Value = serde_json::from_str(&site.vigil(&["devices", "--config", &config]).unwrap()).unwrap();
    let ox = devices.as_array().unwrap().iter().find(|d| d["device_id"] == "OX-1000").unwrap();
    let (alpha, pairing) = (ox["patient_id"].as_i64().unwrap(), ox["pairing_id"].as_i64().unwrap());
    let hours_ago = |h: i64| (chrono::Utc::now() - chrono::Duration::hours(h)).to_rfc3339();

    // OX-1000 is Alpha's (MRN-100000) since the import: pairing it again is refused, naming the pairing.
    let (code, out) = pair("OX-1000", "MRN-100000", &[]);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains(&format!("already paired with patient {alpha} (pairing {pairing}, since")), "{out}");
    // To Bravo, it needs an unpair or a confirmation naming the patient replaced: the right one.
    let (code, out) = pair("OX-1000", "MRN-100001", &[]);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("confirm the replacement naming both patients"), "{out}");
    let (code, out) = pair("OX-1000", "MRN-100001", &["--replacing", &(alpha + 100).to_string()]);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains(&format!("not with patient {}", alpha + 100)), "{out}");
    let (code, out) = pair("OX-1000", "MRN-100001", &["--replacing", &alpha.to_string()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("replacing patient {alpha} (pairing {pairing} ended)")), "{out}");

    // Back-dating the spare monitor's pairing needs a reason (exit 2 without); the audit keeps it.
    let from = hours_ago(2);
    let (code, out) = pair("MX-00A1", "MRN-100003", &["--from", &from]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("give the reason for back-dating it"), "{out}");
    let (code, out) = pair("MX-00A1", "MRN-100003", &["--from", &from, "--reason", "sent before it was paired"]);
    assert_eq!(code, 0, "{out}");
    // A period over that pairing's start overlaps it, reason or not.
    let (code, out) =
        pair("MX-00A1", "MRN-100002", &["--from", &hours_ago(3), "--until", &hours_ago(1), "--reason", "x"]);
    assert_eq!(code, 6, "{out}");
    assert!(out.contains("over part of that period"), "{out}");

    let (code, out) = as_admin(&site, &["audit", "list", "--config", &config, "--limit", "3"]);
    assert_eq!(code, 0, "{out}");
    let entries: Vec<(String, String)> = serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap().into(), e["detail"].as_str().unwrap().into()))
        .collect();
    assert_eq!(entries[0].0, "pairing.open", "the refusals left no entry: {entries:?}");
    assert!(entries[0].1.ends_with("reason: sent before it was paired"), "{entries:?}");
    assert!(entries[1].1.contains(&format!("replacing patient {alpha}")), "{entries:?}");
    assert_eq!(entries[2].0, "pairing.close", "{entries:?}");
}

#[test]
fn a_device_can_be_flagged_as_sending_demo_data_and_back() {
    let site = Site::new(BrokerKind::Embedded).unwrap();
    let config = site.config_str();
    let demo_of = |device: &str| -> Value {
        let (code, out) = as_admin(&site, &["devices", "--config", &config]);
        assert_eq!(code, 0, "{out}");
        let devices: Value = serde_json::from_str(&out).unwrap();
        devices.as_array().unwrap().iter().find(|d| d["device_id"] == device).unwrap()["demo"].clone()
    };
    assert_eq!(demo_of("OX-1000"), false);
    let (code, out) = as_admin(&site, &["device-demo", "--config", &config, "OX-1000"]);
    assert_eq!((code, out.trim()), (0, "device OX-1000: its readings are demo data"));
    assert_eq!(demo_of("OX-1000"), true);
    let (code, _) = as_admin(&site, &["device-demo", "--config", &config, "OX-1000", "--off"]);
    assert_eq!((code, demo_of("OX-1000")), (0, Value::Bool(false)));
    let (code, out) = as_admin(&site, &["device-demo", "--config", &config, "NO-SUCH"]);
    assert_eq!(code, 6, "refused: {out}");
    let (_, audit) = as_admin(&site, &["audit", "list", "--config", &config]);
    assert_eq!(audit.matches("device.demo").count(), 2, "{audit}");
}

/// A reader that closes the pipe early (`vigil show ... | head -1`) ends the command quietly, exit 0:
/// no panic, no backtrace. The reader here closes its end at once, so every write meets a closed pipe.
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let site = Site::new(BrokerKind::Embedded).unwrap();
    let config = site.config_str();
    for args in [
        format!("show readings --config {config}"),
        format!("audit list --config {config}"),
        "degradation-modes".into(),
    ] {
        let script =
            format!("{} {args} | (exec 0<&-; sleep 0.2); echo \"exit ${{PIPESTATUS[0]}}\"", vigil_bin().display());
        let out =
            Command::new("bash").arg("-c").arg(&script).env("VIGIL_TOKEN", &site.token).output().expect("bash runs");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("exit 0"), "vigil {args}: {stdout}{stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("Broken pipe"), "vigil {args}: {stderr}");
    }
}
