//! The `vigil` binary's checks of configs and profiles, as an operator runs them.

use std::process::Command;

use vigil_tests::{fixture, vigil_bin};

fn vigil(args: &[&str]) -> (i32, String) {
    let out = Command::new(vigil_bin()).args(args).output().expect("vigil runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
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
